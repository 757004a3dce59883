package imports

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/imports/fts"
	"github.com/tranche-ledger/tranche/internal/isocodes"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// Placeholder parties for flows whose side FTS leaves empty (a parked
// allocation not yet given to a recipient): matched by name on every import.
const (
	unreportedDonor     = "Donor not reported to OCHA FTS"
	unreportedRecipient = "Recipient not reported to OCHA FTS"
)

// ftsSource is an FTS import parsed and analysed.
type ftsSource struct {
	imp *fts.Import
	an  fts.Report
}

// parseFTS reads the pages of one FTS response. A page that cannot be read
// is a problem naming the file; flows that cannot be read are problems
// naming the flow (the import goes on without them only with SkipInvalid).
func parseFTS(req Request, rep *Report) (*ftsSource, bool) {
	files := make([]fts.File, len(req.Files))
	for i, f := range req.Files {
		files[i] = fts.File{Name: f.Name, Data: f.Data}
	}
	imp, err := fts.Parse(files...)
	if err != nil {
		rep.Problems = append(rep.Problems, Problem{Record: "file", Message: err.Error()})
		return nil, false
	}
	an := fts.Analyse(imp)
	perFile := map[int]int{}
	for _, f := range imp.Flows {
		perFile[f.Provenance.Page]++
	}
	for i := range rep.Files {
		rep.Files[i].Records = perFile[i+1]
	}
	var probs []Problem
	for _, p := range imp.Problems {
		rec := "flow " + p.FlowID
		if p.FlowID == "" {
			rec = fmt.Sprintf("%s: flow at index %d", p.File, p.Position)
		}
		probs = append(probs, Problem{Record: rec, Field: p.Field, Message: p.Message})
	}
	if len(probs) > 0 && !req.SkipInvalid {
		rep.Problems = append(rep.Problems, probs...)
		return nil, false
	}
	rep.Skipped = append(rep.Skipped, probs...)
	rep.Records = len(imp.Flows)
	return &ftsSource{imp: imp, an: an}, true
}

// ftsRoadmap proposes the roadmap an FTS import creates when none is given:
// the country of the location most flows go to, the years they are for, in
// USD (FTS's reporting currency).
func ftsRoadmap(src *ftsSource, hint RoadmapHint) (roadmap.Input, error) {
	in := roadmap.Input{Country: hint.Country, Title: hint.Title, ReportingCurrency: "USD"}
	locs := map[string]int{}
	var years []int
	for _, f := range src.imp.Flows {
		for _, l := range f.Destination.Locations {
			locs[l.Name]++
		}
		for _, y := range f.Destination.UsageYears {
			if n, err := strconv.Atoi(y.Name); err == nil && n >= 1990 && n <= 2100 {
				years = append(years, n)
			}
		}
	}
	var place string
	for name, n := range locs {
		if n > locs[place] || (n == locs[place] && name < place) {
			place = name
		}
	}
	if in.Country == "" {
		c, ok := isocodes.CountryByName(place)
		if !ok {
			return in, fmt.Errorf("the flows' location %q is not an ISO 3166-1 country name: give the roadmap's country", place)
		}
		in.Country = c
	}
	first, last := time.Now().Year(), time.Now().Year()
	if len(years) > 0 {
		first, last = slices.Min(years), slices.Max(years)
	}
	in.StartDate = time.Date(first, 1, 1, 0, 0, 0, 0, time.UTC)
	in.EndDate = time.Date(last, 12, 31, 0, 0, 0, 0, time.UTC)
	if in.Title == "" {
		span := strconv.Itoa(first)
		if last != first {
			span += "–" + strconv.Itoa(last)
		}
		in.Title = fmt.Sprintf("OCHA FTS flows: %s %s", place, span)
	}
	return in, nil
}

// planFTS maps the counted flows onto organisations, grants and entries (the
// mapping table is in the package doc) and fills the report's source figures.
func planFTS(src *ftsSource, reportingCurrency string, milestones map[string]uuid.UUID, rep *Report) (*plan, error) {
	pl := newPlan(FTS)
	an := src.an
	refKind := map[string]string{}
	for _, g := range an.RepeatedRefs {
		for _, id := range g.FlowIDs {
			refKind[id] = g.Kind
		}
	}
	journaled := map[string]bool{}
	reference := map[fts.GrantKey]string{}
	for _, g := range an.Grants {
		reference[g.Key] = g.Reference
	}
	for i := range src.imp.Flows {
		f := &src.imp.Flows[i]
		c := an.Classes[i]
		rec := &planRecord{source: source{RecordID: f.ID, Position: fmt.Sprintf("page %d, data.flows[%d]", f.Provenance.Page, f.Provenance.Position),
			FileSHA256: f.Provenance.FileSHA256}, label: "flow " + f.ID}
		if f.HasVersion {
			rec.Version = strconv.Itoa(f.Version)
		}
		pl.records = append(pl.records, rec)
		switch c.Reason {
		case fts.ReasonInternal, fts.ReasonShared, fts.ReasonOutgoing:
			rep.NotCounted = append(rep.NotCounted, Note{Record: rec.label, Type: f.EntryType, Reason: c.Reason, Amount: f.AmountUSD, Currency: "USD"})
			continue
		}
		if f.Amount.IsZero() || f.AmountUSD.IsZero() {
			rep.NotCounted = append(rep.NotCounted, Note{Record: rec.label, Type: f.EntryType, Amount: f.AmountUSD, Currency: "USD",
				Reason: "amount 0: nothing to journal (as a parked flow wholly split into its children is)"})
			continue
		}
		if f.Amount.IsNegative() && f.EntryType != fts.EntryPledge && f.EntryType != fts.EntryCommitment {
			return nil, invalid(rec.label, "originalAmount",
				"a negative %s flow cannot be journaled (only pledges and commitments are amended downwards)", f.Status)
		}
		sv := map[string]string{}
		for _, r := range f.Rounded {
			sv[r.Field] = r.Source
			rep.Rounded = append(rep.Rounded, Rounded{Record: rec.label, Field: r.Field, Source: r.Source, Stored: r.Value.String()})
		}

		var gInferred []string
		donor := ftsOrg(c.Donor, c.HasDonor, true)
		if !c.HasDonor {
			gInferred = append(gInferred, "donorOrgId: not reported to FTS")
		} else if c.DonorFrom == "parent" {
			gInferred = append(gInferred, "donorOrgId: from the parked parent flow")
		}
		recipient := ftsOrg(c.Recipient, c.HasRecipient, false)
		if !c.HasRecipient {
			gInferred = append(gInferred, "recipientOrgId: not reported to FTS")
		} else if c.RecipientFrom == "parent" {
			gInferred = append(gInferred, "recipientOrgId: from the parked parent flow")
		}
		if c.HasDonor && c.HasRecipient && donor.FTSOrgID == recipient.FTSOrgID {
			// FTS names one organisation on both sides for its own funds
			// (UNICEF's carry-over, an NGO's private funds); a grant needs
			// two parties, so the donor is the organisation's own funds.
			donor = org.Organization{Name: fitName(recipient.Name, " (own funds)"), Kind: "DONOR"}
			gInferred = append(gInferred, "donorOrgId: the recipient's own funds (FTS names the organisation on both sides)")
		}
		di := pl.org(donor, true, rec.source, "kind: from the FTS organisation type and its role in the flows")
		ri := pl.org(recipient, false, rec.source, "kind: from the FTS organisation type and its role in the flows")

		start, end := ftsPeriod(f)
		gsv := map[string]string{}
		title := f.Description
		if title == "" {
			title = "OCHA FTS flow " + c.Grant.Agreement
			gInferred = append(gInferred, "title: the flow has no description")
		}
		g := planGrant{donor: di, recipient: ri, rec: rec.source, inferred: gInferred, sourceValues: gsv,
			in: ledger.GrantInput{Reference: reference[c.Grant], Title: fit("title", title, 300, gsv), Currency: f.Currency,
				Pledged: amount(decimal.Zero, f.Currency), StartDate: start, EndDate: end}}
		gi := pl.grant(g)

		valueDate, err := day(f.Date)
		if err != nil {
			return nil, invalid(rec.label, "date", "%q is not a date", f.Date)
		}
		if !plausible(valueDate) {
			return nil, invalid(rec.label, "date", "%s is outside %s to %s", f.Date, apperr.Earliest.Format(time.DateOnly), apperr.Latest.Format(time.DateOnly))
		}
		// The payment reference is the flow's refCode. Flows of one parked
		// family share it by design (one agreement split), so theirs is
		// told apart by the flow id and detection does not take them for
		// one payment entered twice; other repeated codes stay as they are.
		ref := f.RefCode
		if k := refKind[f.ID]; ref != "" && (k == fts.RefParentChild || k == fts.RefParkedSiblings) {
			ref = f.RefCode + " (flow " + f.ID + ")"
		}
		esv := map[string]string{}
		for k, v := range sv {
			esv[k] = v
		}
		ref = fit("reference", ref, 200, esv)
		note := fit("note", strings.TrimSpace(fmt.Sprintf("FTS flow %s: %s", f.ID, f.Description)), 2000, esv)
		inferred := slices.Clone(f.Inferred)
		var rate *decimal.Decimal
		if reportingCurrency == "USD" && f.Currency != "USD" {
			// The reported amountUSD is the flow's reporting value: the
			// entry's own rate is the one that gives it exactly.
			if r, ok := reportingRate(f.Amount, f.AmountUSD); ok {
				rate = &r
				inferred = append(inferred, "fxRate: originalAmount / amountUSD, so the reporting value is FTS's amountUSD")
			} else {
				inferred = append(inferred, "fxRate: the FX table's (no rate of 15 significant digits gives amountUSD)")
			}
			esv["amountUSD"] = f.AmountUSDSource
			if f.HasRate {
				esv["exchangeRate"] = f.ExchangeRateSource
			}
		}
		ms := ftsMilestone(f, milestones)
		if ms != uuid.Nil {
			inferred = append(inferred, "milestoneId: the milestone whose code is the flow's cluster")
		}
		e := ledger.EntryInput{Type: f.EntryType, Amount: amount(f.Amount, f.Currency), ValueDate: valueDate,
			Reference: ref, Note: note, FxRate: rate, MilestoneID: ms}
		if f.Status == "paid" {
			// FTS counts a paid flow as funding on its own: its commitment
			// is implied, so the journal holds it before the disbursement
			// (disbursed never exceeds committed).
			c := e
			c.Type = ledger.Commitment
			rec.entries = append(rec.entries, planEntry{grant: gi, in: c, sourceValues: esv,
				inferred: addInferred(slices.Clone(inferred), "type: COMMITMENT implied by the paid flow")})
			e.Type = ledger.Disbursement
		}
		rec.entries = append(rec.entries, planEntry{grant: gi, in: e, inferred: inferred, sourceValues: esv})
		journaled[f.ID] = true
	}
	pl.settleKinds()
	rep.RepeatedReferences = ftsRefGroups(an.RepeatedRefs, journaled)

	// What the source publishes beside what the import computes.
	t := an.Totals
	rep.Totals = append(rep.Totals,
		Total{Name: "incoming funding (commitment + paid), reported USD", Currency: "USD",
			Source: an.Source.IncomingFundingTotal, Computed: t.FundingUSD, Matches: an.Source.IncomingFundingTotal.Equal(t.FundingUSD)},
		Total{Name: "incoming pledges, reported USD", Currency: "USD",
			Source: an.Source.IncomingPledgeTotal, Computed: t.PledgeUSD, Matches: an.Source.IncomingPledgeTotal.Equal(t.PledgeUSD)},
		Total{Name: "incoming flows (count)", Source: decimal.NewFromInt(int64(an.Source.IncomingFlowCount)),
			Computed: decimal.NewFromInt(int64(t.IncomingFlows)), Matches: an.Source.IncomingFlowCount == t.IncomingFlows},
		Total{Name: "internal flows (count)", Source: decimal.NewFromInt(int64(an.Source.InternalFlowCount)),
			Computed: decimal.NewFromInt(int64(t.InternalFlows)), Matches: an.Source.InternalFlowCount == t.InternalFlows},
	)
	for _, v := range an.Variances {
		rep.Variances = append(rep.Variances, Variance{Record: "flow " + v.FlowID, ReportedUSD: v.ReportedUSD,
			ComputedUSD: v.ComputedUSD, Difference: v.Difference})
	}
	if an.TotalsError != "" {
		rep.Notes = append(rep.Notes, an.TotalsError)
	}
	rep.Notes = append(rep.Notes, an.Notes...)
	return pl, nil
}

// ftsOrg is the organisation an FTS object names, or the placeholder of
// its side when FTS names none.
func ftsOrg(o fts.Object, has, donor bool) org.Organization {
	if !has {
		if donor {
			return org.Organization{Name: unreportedDonor, Kind: "DONOR"}
		}
		return org.Organization{Name: unreportedRecipient, Kind: "IMPLEMENTER"}
	}
	out := org.Organization{Name: o.Name, FTSOrgID: o.ID}
	if out.Name == "" {
		out.Name = "FTS organisation " + o.ID
	}
	if slices.ContainsFunc(o.OrganizationTypes, func(t string) bool { return strings.EqualFold(t, "Pooled fund") }) {
		out.Kind = "POOLED_FUND"
	}
	return out
}

// ftsPeriod is a flow's part of its grant's period: from its decision (or
// value) date to the end of the last year it is for.
func ftsPeriod(f *fts.Flow) (time.Time, time.Time) {
	d, _ := day(f.Date)
	start, end := d, d
	if dd, err := day(f.DecisionDate); err == nil && dd.Before(start) && plausible(dd) {
		start = dd
	}
	for _, y := range f.Destination.UsageYears {
		if n, err := strconv.Atoi(y.Name); err == nil && n >= 1990 && n <= 2100 {
			if e := time.Date(n, 12, 31, 0, 0, 0, 0, time.UTC); e.After(end) {
				end = e
			}
		}
	}
	if end.After(start.AddDate(ledger.MaxGrantYears, 0, 0)) {
		end = start.AddDate(ledger.MaxGrantYears, 0, 0)
	}
	return start, end
}

// ftsMilestone is the roadmap milestone whose code is one of the flow's
// destination clusters (global or country cluster, by name or FTS id, case
// ignored), when exactly one matches; else none.
func ftsMilestone(f *fts.Flow, milestones map[string]uuid.UUID) uuid.UUID {
	found := map[uuid.UUID]bool{}
	for _, set := range [][]fts.Object{f.Destination.GlobalClusters, f.Destination.Clusters} {
		for _, o := range set {
			for _, k := range []string{o.Name, o.ID} {
				if id, ok := milestones[strings.ToLower(strings.TrimSpace(k))]; ok && k != "" {
					found[id] = true
				}
			}
		}
	}
	if len(found) != 1 {
		return uuid.Nil
	}
	for id := range found {
		return id
	}
	return uuid.Nil
}

func prefixed(p string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = p + id
	}
	return out
}

// ftsRefGroups explains each reference code on several flows. A group of
// the same amount is expected to be flagged by detection when at least two
// of its flows are in the ledger; every group says which of its flows are
// not (internal or shared flows are kept out so no money counts twice).
func ftsRefGroups(groups []fts.RefCodeGroup, journaled map[string]bool) []RefGroup {
	out := []RefGroup{}
	for _, g := range groups {
		in := 0
		var out2 []string
		for _, id := range g.FlowIDs {
			if journaled[id] {
				in++
			} else {
				out2 = append(out2, id)
			}
		}
		why := g.Why
		if len(out2) > 0 {
			why += fmt.Sprintf(". Not in the ledger (not counted, or amount 0): flow %s", strings.Join(out2, ", "))
		}
		out = append(out, RefGroup{Code: g.RefCode, Kind: g.Kind, Records: prefixed("flow ", g.FlowIDs), Explanation: why,
			Flagged: g.Kind == fts.RefSameAmount && in >= 2})
	}
	return out
}

// fitName is name with suffix, the name cut to keep within an
// organisation's 300 characters.
func fitName(name, suffix string) string {
	r := []rune(name)
	if max := 300 - len([]rune(suffix)); len(r) > max {
		r = append(r[:max-1], '…')
	}
	return string(r) + suffix
}

// reportingRate is the rate (units of the currency per USD) of at most 15
// significant digits, the ledger's limit, at which amount converts to usd
// exactly, and whether there is one.
func reportingRate(amount, usd decimal.Decimal) (decimal.Decimal, bool) {
	q := amount.DivRound(usd, 30)
	n := int32(len(q.Coefficient().String()))
	r := q.Round(15 - (q.Exponent() + n))
	if err := fx.CheckRate(r); err != nil {
		return r, false
	}
	return r, money.Convert(amount, r, false, "USD").Equal(usd)
}
