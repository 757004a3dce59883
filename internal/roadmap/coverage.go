package roadmap

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// Funding is the money behind one milestone, in the reporting currency: the
// grants' current allocations to it and the journal entries tagged with it,
// and how many donors these come from.
type Funding struct {
	Allocated, Committed, Disbursed, Spent decimal.Decimal
	Donors                                 int
}

// FundingSource gives the funding of a roadmap's milestones (the ledger
// does), and how many donors fund the roadmap at all.
type FundingSource interface {
	MilestoneFunding(ctx context.Context, roadmapID string, milestoneIDs []string) (map[string]Funding, int, error)
}

// MilestoneCoverage is who funds one milestone, in reporting currency.
type MilestoneCoverage struct {
	MilestoneID, Code, Title                                 string
	Requirement, Allocated, Committed, Disbursed, Spent, Gap decimal.Decimal
	Donors                                                   int
}

// Coverage is a roadmap's funding per milestone and in total.
type Coverage struct {
	RoadmapID, Currency string
	Milestones          []MilestoneCoverage
	Totals              MilestoneCoverage
}

// Coverage answers, per milestone: requirement, current allocations,
// committed, disbursed and spent (entries tagged to the milestone), the gap
// (requirement − allocated) and the number of donors. Every role may read
// it: it shows other donors only in aggregate.
func (s *Store) Coverage(ctx context.Context, roadmapID uuid.UUID, funding FundingSource) (Coverage, error) {
	if auth.FromContext(ctx).Role == "" {
		return Coverage{}, apperr.ErrPermissionDenied
	}
	rm, err := Get(ctx, s.pool, roadmapID.String())
	if err != nil {
		return Coverage{}, err
	}
	ms, err := listMilestones(ctx, s.pool, rm.ID)
	if err != nil {
		return Coverage{}, fmt.Errorf("computing coverage: %w", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	f, donors, err := funding.MilestoneFunding(ctx, rm.ID, ids)
	if err != nil {
		return Coverage{}, fmt.Errorf("computing coverage: %w", err)
	}
	return cover(rm, ms, f, donors), nil
}

// cover is the arithmetic of coverage: gap = requirement − allocated, per
// milestone and in total.
func cover(rm Roadmap, ms []Milestone, f map[string]Funding, donors int) Coverage {
	cov := Coverage{RoadmapID: rm.ID, Currency: rm.ReportingCurrency, Milestones: make([]MilestoneCoverage, len(ms))}
	t := MilestoneCoverage{Code: "TOTAL", Title: "All milestones", Donors: donors}
	for i, m := range ms {
		x := f[m.ID]
		c := MilestoneCoverage{MilestoneID: m.ID, Code: m.Code, Title: m.Title, Requirement: m.FundingRequirement.Value,
			Allocated: x.Allocated, Committed: x.Committed, Disbursed: x.Disbursed, Spent: x.Spent, Donors: x.Donors}
		c.Gap = c.Requirement.Sub(c.Allocated)
		cov.Milestones[i] = c
		t.Requirement, t.Allocated = t.Requirement.Add(c.Requirement), t.Allocated.Add(c.Allocated)
		t.Committed, t.Disbursed, t.Spent = t.Committed.Add(c.Committed), t.Disbursed.Add(c.Disbursed), t.Spent.Add(c.Spent)
	}
	t.Gap = t.Requirement.Sub(t.Allocated)
	cov.Totals = t
	return cov
}
