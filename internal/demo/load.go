package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// Stores are the domain stores a load writes through: the ones the API's
// services use, so each row is checked by the same rules and has its audit
// event. The caller's context carries the principal (the operator) and the
// audit call.
type Stores struct {
	Orgs        *org.Store
	Roadmaps    *roadmap.Store
	Ledger      *ledger.Store
	FX          *fx.Store
	Procurement *procurement.Store
}

// Loaded is the programme as stored: its database ids by programme key.
type Loaded struct {
	Roadmap    roadmap.Roadmap
	Orgs       map[string]string // org key → id
	Milestones map[string]string // code → id
	Grants     map[string]string // reference → id
	Items      map[string]string // item key → id
	Entries    int               // journal entries recorded (pledges included)
}

// RateSource is the source FX rates of the sample programme are stored with.
const RateSource = "Tranche demo: generated monthly rates (UN operational rates style)"

// Find looks for the sample roadmap of seed (by its title): found tells
// whether a programme was loaded (or began to be) on this database.
func Find(ctx context.Context, roadmaps *roadmap.Store, seed int64) (roadmap.Roadmap, bool, error) {
	return FindByTitle(ctx, roadmaps, RoadmapTitle(seed))
}

// FindByTitle finds a roadmap by its exact title.
func FindByTitle(ctx context.Context, roadmaps *roadmap.Store, title string) (roadmap.Roadmap, bool, error) {
	token := ""
	for {
		list, next, err := roadmaps.List(ctx, 200, token)
		if err != nil {
			return roadmap.Roadmap{}, false, err
		}
		for _, r := range list {
			if r.Title == title {
				return r, true, nil
			}
		}
		if next == "" {
			return roadmap.Roadmap{}, false, nil
		}
		token = next
	}
}

// Load writes p. Every write carries a request id derived from the seed
// and the row's key, so loading the same programme again (a resumed or
// repeated load: Generate with the same seed and day) replays the stored
// answers and writes nothing twice. progress, if set, hears each phase.
func Load(ctx context.Context, st Stores, p *Programme, progress func(string)) (*Loaded, error) {
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	rid := func(parts ...any) string { return fmt.Sprintf("demo-%d-%s", p.Seed, fmt.Sprint(parts...)) }
	out := &Loaded{Orgs: map[string]string{}, Milestones: map[string]string{}, Grants: map[string]string{}, Items: map[string]string{}}

	// Organisations are the same for every seed: their request ids are too.
	for _, o := range p.Orgs {
		id, err := ensureOrg(ctx, st.Orgs, o)
		if err != nil {
			return nil, fmt.Errorf("organisation %s: %w", o.Name, err)
		}
		out.Orgs[o.Key] = id
	}
	say("%d organisations", len(p.Orgs))

	rm, err := st.Roadmaps.Create(ctx, roadmap.Input{Country: p.Roadmap.Country, Title: p.Roadmap.Title,
		StartDate: p.Roadmap.Start, EndDate: p.Roadmap.End, ReportingCurrency: ReportingCurrency}, rid("roadmap"))
	if err != nil {
		return nil, fmt.Errorf("roadmap: %w", err)
	}
	out.Roadmap = rm
	rmID := uuid.MustParse(rm.ID)
	for _, m := range p.Milestones {
		ms, err := st.Roadmaps.CreateMilestone(ctx, rmID, roadmap.MilestoneInput{Code: m.Code, Title: m.Title,
			ActivityType: m.Activity, Region: m.Region, TargetQuantity: m.Quantity, TargetUnit: m.Unit, DueDate: m.Due,
			FundingRequirement: money.Amount{Value: m.Requirement, Currency: ReportingCurrency},
			ResponsibleOrgID:   uuid.MustParse(out.Orgs[m.Responsible]), Status: m.Status}, rid("milestone-", m.Code))
		if err != nil {
			return nil, fmt.Errorf("milestone %s: %w", m.Code, err)
		}
		out.Milestones[m.Code] = ms.ID
	}
	say("roadmap %q with %d milestones", rm.Title, len(p.Milestones))

	rates := make([]fx.RateInput, len(p.Rates))
	for i, r := range p.Rates {
		rates[i] = fx.RateInput{Currency: r.Currency, QuoteCurrency: ReportingCurrency, Date: r.Date, Rate: r.Rate, Source: RateSource}
	}
	if _, err := st.FX.Create(ctx, rates); err != nil {
		return nil, fmt.Errorf("FX rates: %w", err)
	}
	say("%d FX rates", len(rates))

	for _, g := range p.Grants {
		gr, err := st.Ledger.CreateGrant(ctx, ledger.GrantInput{RoadmapID: rmID, DonorOrgID: uuid.MustParse(out.Orgs[g.Donor]),
			RecipientOrgID: uuid.MustParse(out.Orgs[g.Recipient]), Reference: g.Ref, Title: g.Title, Currency: g.Currency,
			Pledged: money.Amount{Value: g.Pledged, Currency: g.Currency}, StartDate: g.Start, EndDate: g.End}, rid("grant-", g.Ref))
		if err != nil {
			return nil, fmt.Errorf("grant %s: %w", g.Ref, err)
		}
		out.Grants[g.Ref] = gr.ID
		out.Entries++
	}
	say("%d grants", len(p.Grants))

	// The journal, grant by grant in value-date order: runs of ordinary
	// entries in one batch each, entries keyed by hand one by one.
	byGrant := map[string][]EntrySpec{}
	for _, e := range p.Entries {
		byGrant[e.Grant] = append(byGrant[e.Grant], e)
	}
	for _, g := range p.Grants {
		entries := byGrant[g.Ref]
		var run []ledger.EntryInput
		part := 0
		flush := func() error {
			if len(run) == 0 {
				return nil
			}
			part++
			if _, err := st.Ledger.BatchRecord(ctx, run, rid("journal-", g.Ref, "-", part)); err != nil {
				return fmt.Errorf("journal of grant %s: %w", g.Ref, err)
			}
			out.Entries += len(run)
			run = nil
			return nil
		}
		for i, e := range entries {
			in := ledger.EntryInput{GrantID: uuid.MustParse(out.Grants[g.Ref]), Type: e.Type,
				Amount: money.Amount{Value: e.Amount, Currency: g.Currency}, ValueDate: e.Date, Reference: e.Reference,
				Note: e.Note}
			if e.Milestone != "" {
				in.MilestoneID = uuid.MustParse(out.Milestones[e.Milestone])
			}
			if !e.Single {
				run = append(run, in)
				continue
			}
			if err := flush(); err != nil {
				return nil, err
			}
			if _, err := st.Ledger.RecordTransaction(ctx, in, rid("entry-", g.Ref, "-", i)); err != nil {
				return nil, fmt.Errorf("entry %s of grant %s: %w", e.Reference, g.Ref, err)
			}
			out.Entries++
		}
		if err := flush(); err != nil {
			return nil, err
		}
		if g.Allocation.IsPositive() {
			if _, err := st.Ledger.SetAllocations(ctx, uuid.MustParse(out.Grants[g.Ref]), []ledger.AllocationInput{{
				MilestoneID: uuid.MustParse(out.Milestones[g.Milestone]),
				Amount:      money.Amount{Value: g.Allocation, Currency: g.Currency}}}, rid("allocations-", g.Ref)); err != nil {
				return nil, fmt.Errorf("allocations of grant %s: %w", g.Ref, err)
			}
		}
	}
	say("%d journal entries and the allocations", out.Entries)

	for _, it := range p.Items {
		item, err := st.Procurement.Create(ctx, procurement.Input{GrantID: uuid.MustParse(out.Grants[it.Grant]),
			MilestoneID: uuid.MustParse(out.Milestones[it.Milestone]), Description: it.Description, Category: it.Category,
			Critical: it.Critical, EstimatedCost: money.Amount{Value: it.Cost, Currency: it.Currency},
			ExpectedDeliveryDate: it.Expected, RequisitionedOn: it.Requisitioned}, rid("item-", it.Key))
		if err != nil {
			return nil, fmt.Errorf("procurement item %s: %w", it.Key, err)
		}
		id := uuid.MustParse(item.ID)
		for i, s := range it.Stages {
			if _, err := st.Procurement.Advance(ctx, id, s.Stage, s.On, s.Note, rid("item-", it.Key, "-", i)); err != nil {
				return nil, fmt.Errorf("procurement item %s to %s: %w", it.Key, s.Stage, err)
			}
		}
		out.Items[it.Key] = item.ID
	}
	say("%d procurement items", len(p.Items))
	return out, nil
}

// ensureOrg registers o, or finds it when an organisation with its IATI
// identifier is already registered (by an earlier load, or by hand).
func ensureOrg(ctx context.Context, st *org.Store, o OrgSpec) (string, error) {
	created, err := st.Create(ctx, org.Organization{Name: o.Name, Kind: o.Kind, IATIRef: o.IATIRef, Country: o.Country},
		"demo-org-"+o.Key)
	if err == nil {
		return created.ID, nil
	}
	if !errors.Is(err, apperr.ErrAlreadyExists) {
		return "", err
	}
	token := ""
	for {
		list, next, lerr := st.List(ctx, o.Kind, 200, token)
		if lerr != nil {
			return "", lerr
		}
		for _, x := range list {
			if x.IATIRef == o.IATIRef {
				return x.ID, nil
			}
		}
		if next == "" {
			return "", err
		}
		token = next
	}
}

// Day is when the loaded programme was generated for, from its roadmap.
func (l *Loaded) Day() time.Time { return Anchor(l.Roadmap.StartDate) }

// Existing reads the ids of a programme loaded earlier into rm, writing
// nothing: organisations by IATI identifier, milestones by code, grants by
// reference.
func Existing(ctx context.Context, st Stores, p *Programme, rm roadmap.Roadmap) (*Loaded, error) {
	out := &Loaded{Roadmap: rm, Orgs: map[string]string{}, Milestones: map[string]string{}, Grants: map[string]string{}, Items: map[string]string{}}
	byRef := map[string]string{}
	token := ""
	for {
		list, next, err := st.Orgs.List(ctx, "", 500, token)
		if err != nil {
			return nil, err
		}
		for _, o := range list {
			if o.IATIRef != "" {
				byRef[o.IATIRef] = o.ID
			}
		}
		if token = next; token == "" {
			break
		}
	}
	for _, o := range p.Orgs {
		id, ok := byRef[o.IATIRef]
		if !ok {
			return nil, fmt.Errorf("organisation %s (%s) of the loaded programme is missing", o.Name, o.IATIRef)
		}
		out.Orgs[o.Key] = id
	}
	rmID := uuid.MustParse(rm.ID)
	ms, err := st.Roadmaps.ListMilestones(ctx, rmID)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		out.Milestones[m.Code] = m.ID
	}
	for {
		list, next, err := st.Ledger.ListGrants(ctx, ledger.GrantFilter{RoadmapID: rmID, PageSize: 500, PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, g := range list {
			out.Grants[g.Reference] = g.ID
		}
		if token = next; token == "" {
			break
		}
	}
	return out, nil
}
