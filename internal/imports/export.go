package imports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/imports/iati"
	"github.com/tranche-ledger/tranche/internal/isocodes"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
)

// exportTypes are the IATI 2.0x transaction type codes of the journal's
// entry types, seen from the donor who publishes the activity.
var exportTypes = map[string]int{
	ledger.Receipt:      1,  // Incoming Funds (the recipient confirms)
	ledger.Commitment:   2,  // Outgoing Commitment
	ledger.Disbursement: 3,  // Disbursement
	ledger.Expenditure:  4,  // Expenditure
	ledger.Pledge:       12, // Outgoing Pledge
}

// ExportIATI writes the roadmap's grants the caller may read, with their
// journals, as an IATI 2.03 activity file (the mapping is in the README's
// "Publishing as IATI"): one activity per grant, reported by its donor; a
// REVERSAL is a negative transaction of the type it cancels. Every role may
// export; a donor gets the grants it gives, an implementer those it receives.
func (s *Store) ExportIATI(ctx context.Context, w io.Writer, roadmapID uuid.UUID) error {
	rm, err := s.roadmaps.Get(ctx, roadmapID)
	if errors.Is(err, apperr.ErrNotFound) {
		return fmt.Errorf("roadmap %s: %w", roadmapID, apperr.ErrNotFound)
	}
	if err != nil {
		return err
	}
	var grants []ledger.Grant
	for token := ""; ; {
		page, next, err := s.ledger.ListGrants(ctx, ledger.GrantFilter{RoadmapID: roadmapID, PageSize: 1000, PageToken: token})
		if err != nil {
			return fmt.Errorf("exporting IATI: %w", err)
		}
		grants = append(grants, page...)
		if token = next; token == "" {
			break
		}
	}
	ids := make([]string, len(grants))
	for i, g := range grants {
		ids[i] = g.ID
	}
	prov, err := ProvenanceOf(ctx, s.pool, EntityGrant, ids)
	if err != nil {
		return err
	}
	orgs := map[string]org.Organization{}
	party := func(id string) (org.Organization, error) {
		if o, ok := orgs[id]; ok {
			return o, nil
		}
		o, err := s.orgs.Get(ctx, id)
		orgs[id] = o
		return o, err
	}
	// An activity imported with several grants (one per funder) is exported
	// as one activity per grant, numbered (-G1, -G2 in grant order), so each
	// reads back as the grant it is: an identifier twice in a file counts once.
	base, uses := map[string]string{}, map[string]int{}
	for _, g := range grants {
		donor, err := party(g.DonorOrgID)
		if err != nil {
			return err
		}
		base[g.ID] = activityID(g, donor, prov[g.ID])
		uses[base[g.ID]]++
	}
	seq := map[string]int{}
	now := time.Now().UTC().Truncate(time.Second)
	ex := iati.Export{GeneratedAt: now}
	country, _ := isocodes.Alpha2(rm.Country)
	for _, g := range grants {
		donor, err := party(g.DonorOrgID)
		if err != nil {
			return err
		}
		recipient, err := party(g.RecipientOrgID)
		if err != nil {
			return err
		}
		a := iati.ExportActivity{
			Identifier:   base[g.ID],
			ReportingOrg: exportOrg(donor),
			Title:        g.Title,
			Description:  fmt.Sprintf("Grant %s under %s (%s), exported by Tranche.", g.Reference, rm.Title, rm.ID),
			Status:       2,
			Start:        g.StartDate, End: g.EndDate,
			Funding: exportOrg(donor), Implementing: exportOrg(recipient),
			RecipientCountry: country,
			DefaultCurrency:  g.Currency,
		}
		if uses[a.Identifier] > 1 {
			seq[a.Identifier]++
			a.Identifier += fmt.Sprintf("-G%d", seq[a.Identifier])
		}
		if g.EndDate.Before(now) {
			a.Status = 3 // finalisation: the period is over
		}
		a.ReportingOrg.Type = orgType(donor.Kind)
		for token := ""; ; {
			page, next, err := s.ledger.ListTransactions(ctx, uuid.MustParse(g.ID), "", 1000, token)
			if err != nil {
				return fmt.Errorf("exporting IATI: %w", err)
			}
			for _, t := range page {
				typ, value := exportTypes[t.Bucket], t.Amount
				if t.Type == ledger.Reversal {
					value = value.Neg()
				}
				x := iati.ExportTransaction{Ref: t.Reference, Type: typ, Date: t.ValueDate,
					Value: value, Currency: t.Currency, ValueDate: t.ValueDate, Description: t.Note,
					Provider: exportOrg(donor), Receiver: exportOrg(recipient)}
				if t.Bucket == ledger.Expenditure {
					// The recipient spends; whom it paid the ledger does not say.
					x.Provider, x.Receiver = exportOrg(recipient), iati.Org{}
				}
				a.Transactions = append(a.Transactions, x)
			}
			if token = next; token == "" {
				break
			}
		}
		ex.Activities = append(ex.Activities, a)
	}
	if len(ex.Activities) == 0 {
		return fmt.Errorf("roadmap %s has no grants the caller may read to export: %w", roadmapID, apperr.ErrFailedPrecondition)
	}
	return iati.WriteExport(w, ex)
}

// activityID is a grant's iati-identifier: the one it was imported under,
// else the reporting organisation's identifier and the grant's reference.
func activityID(g ledger.Grant, donor org.Organization, p Provenance) string {
	if p.SourceKind == IATI {
		if id, _, ok := strings.Cut(p.RecordID, "#"); ok {
			return id
		}
	}
	return orgRef(donor) + "-" + idChars.ReplaceAllString(strings.TrimSpace(g.Reference), "-")
}

// idChars are the characters an identifier is better without.
var idChars = regexp.MustCompile(`[^A-Za-z0-9._:/-]+`)

// orgRef is an organisation's IATI identifier, or, for one without, a local
// reference built from its Tranche id (prefix XX: not a registered
// identifier; IATI requires a reference on reporting-org).
func orgRef(o org.Organization) string {
	if o.IATIRef != "" {
		return o.IATIRef
	}
	return "XX-TRANCHE-" + o.ID
}

func exportOrg(o org.Organization) iati.Org {
	return iati.Org{Ref: orgRef(o), Name: o.Name}
}

// orgType is the IATI organisation type code the reporting organisation
// needs (the schema requires one). Tranche knows the organisation's role,
// not its legal form, so only a pooled fund maps to a code of its own
// (40, multilateral); the others are 90, other.
func orgType(kind string) string {
	if kind == "POOLED_FUND" {
		return "40"
	}
	return "90"
}
