package reports

import (
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// The money sheets — Summary, Reconciliation, Milestones — are not re-derived
// here: they are what the domain packages answer, computed by the same code
// the API runs, inside the pack's snapshot (roadmap.CoverageAt with
// ledger.MilestoneFundingAt, ledger.ReconcileIn, roadmap.MilestonesAt).

// fundingScope is the pack's scope as the domain's coverage takes it.
func (p *pack) fundingScope() roadmap.FundingScope {
	return roadmap.FundingScope{AsOf: p.scope.AsOf, DonorOrgID: p.scope.DonorOrgID, GrantID: p.scope.GrantID}
}

func (p *pack) coverage() (roadmap.Coverage, error) {
	f, err := p.figures()
	if err != nil {
		return roadmap.Coverage{}, err
	}
	return f.cov, nil
}

// moneyFigures are what Summary, Reconciliation and Milestones share,
// computed once per pack (coverage and every grant's reconciliation read the
// journal of the whole scope).
type moneyFigures struct {
	cov    roadmap.Coverage
	grants []scopeGrant
	recs   []ledger.Reconciliation // recs[i] is grants[i]'s
}

func (p *pack) figures() (*moneyFigures, error) {
	if p.money != nil {
		return p.money, nil
	}
	cov, err := roadmap.CoverageAt(p.ctx, p.tx, p.scope.RoadmapID, p.fundingScope(), ledger.MilestoneFundingAt)
	if err != nil {
		return nil, err
	}
	gs, err := p.scopeGrants()
	if err != nil {
		return nil, err
	}
	f := &moneyFigures{cov: cov, grants: gs, recs: make([]ledger.Reconciliation, len(gs))}
	for i, g := range gs {
		if f.recs[i], err = ledger.ReconcileIn(p.ctx, p.tx, g.id, p.scope.AsOf); err != nil {
			return nil, err
		}
	}
	p.money = f
	return f, nil
}

// scopeGrant is a grant of the scope: id, reference and donor.
type scopeGrant struct {
	id         uuid.UUID
	ref, donor string
}

// scopeGrants are the scope's grants created by as-of, in the Grants sheet's
// order (reference, id).
func (p *pack) scopeGrants() ([]scopeGrant, error) {
	s := p.scope
	rows, err := p.tx.Query(p.ctx, `SELECT g.id, g.reference, g.donor_org_id::text FROM grants g
		WHERE g.roadmap_id = $1 AND g.created_at <= $2
			AND ($3::uuid IS NULL OR g.donor_org_id = $3::uuid)
			AND ($4::uuid IS NULL OR g.id = $4::uuid)
		ORDER BY g.reference, g.id`, s.RoadmapID.String(), s.AsOf, optID(s.DonorOrgID), optID(s.GrantID))
	if err != nil {
		return nil, err
	}
	var gs []scopeGrant
	for rows.Next() {
		var g scopeGrant
		if err := rows.Scan(&g.id, &g.ref, &g.donor); err != nil {
			rows.Close()
			return nil, err
		}
		gs = append(gs, g)
	}
	rows.Close()
	return gs, rows.Err()
}

// Summary rows: one per milestone, then TotalTitle (coverage's totals), then
// GrantsTitle (the scope's grants' whole journal in reporting currency: the
// Reconciliation sheet's reporting figures summed, which also count entries
// not tagged with a milestone). These two have an empty code: a milestone's
// code is never empty, so no milestone (not even one coded "TOTAL") can be
// taken for them.
const (
	TotalTitle  = "TOTAL: all milestones"
	GrantsTitle = "GRANTS: all entries of the scope's grants"
)

// summaryRows: the roadmap's coverage for the scope as of as-of, in
// reporting currency, and a clustered-column chart of the milestone rows.
func (p *pack) summaryRows(w *sheetWriter) error {
	cov, err := p.coverage()
	if err != nil {
		return err
	}
	cur := cov.Currency
	line := func(c roadmap.MilestoneCoverage) error {
		return w.row(text(c.Code), text(c.Title), amount(c.Requirement, cur), amount(c.Allocated, cur),
			amount(c.Committed, cur), amount(c.Disbursed, cur), amount(c.Spent, cur), amount(c.Gap, cur),
			integer(int64(c.Donors)))
	}
	for _, c := range cov.Milestones {
		if err := line(c); err != nil {
			return err
		}
	}
	cov.Totals.Code, cov.Totals.Title = "", TotalTitle
	if err := line(cov.Totals); err != nil {
		return err
	}
	f, err := p.figures()
	if err != nil {
		return err
	}
	var committed, disbursed, spent decimal.Decimal
	for i, g := range f.grants {
		rec := f.recs[i]
		if rec.Reporting.Currency != cur {
			return fmt.Errorf("grant %s reports in %s, the roadmap in %s", g.id, rec.Reporting.Currency, cur)
		}
		committed = committed.Add(rec.Reporting.Committed)
		disbursed = disbursed.Add(rec.Reporting.Disbursed)
		spent = spent.Add(rec.Reporting.Spent)
	}
	none := value{null: true}
	if err := w.row(text(""), text(GrantsTitle), none, none,
		amount(committed, cur), amount(disbursed, cur), amount(spent, cur), none, integer(int64(cov.Totals.Donors))); err != nil {
		return err
	}
	return p.summaryChart(len(cov.Milestones))
}

// summaryChart adds a native clustered-column chart over the Summary's
// milestone rows (requirement, committed, disbursed, spent by code), so the
// picture travels inside the file and follows the cells. It must run before
// the sheet's StreamWriter is flushed: AddChart sets the drawing on the
// worksheet the stream writer flushes (after Flush excelize forgets it). No
// milestones: no chart (a chart over no cells is not valid).
func (p *pack) summaryChart(milestones int) error {
	if milestones == 0 {
		return nil
	}
	last := milestones + 1
	series := func(col string) excelize.ChartSeries {
		return excelize.ChartSeries{
			Name:       fmt.Sprintf("%s!$%s$1", SheetSummary, col),
			Categories: fmt.Sprintf("%s!$A$2:$A$%d", SheetSummary, last),
			Values:     fmt.Sprintf("%s!$%s$2:$%s$%d", SheetSummary, col, col, last),
		}
	}
	// excelize adds the image extensions of [Content_Types].xml, for the
	// drawing, in Go map order: sort those it appends, or two packs of the
	// same scope and as-of would differ in that part.
	ct := p.f.ContentTypes
	before := len(ct.Defaults)
	defer func() {
		added := ct.Defaults[before:]
		sort.Slice(added, func(i, j int) bool { return added[i].Extension < added[j].Extension })
	}()
	// Columns: A code, B milestone, C requirement, E allocated, G committed,
	// I disbursed, K spent (each amount is followed by its currency).
	return p.f.AddChart(SheetSummary, "R2", &excelize.Chart{
		Type:      excelize.Col,
		Series:    []excelize.ChartSeries{series("C"), series("G"), series("I"), series("K")},
		Title:     excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Funding per milestone (" + p.roadmap.reporting + ")"}}},
		Legend:    excelize.ChartLegend{Position: "bottom"},
		Dimension: excelize.ChartDimension{Width: 720, Height: 360},
	})
}

// reconciliationRows: per grant of the scope, what the reconciliation API
// answers as of as-of (ledger.ReconcileIn: the same code as GET
// /v1/grants/{id}/reconciliation?asOf=): the balances in agreement and in
// reporting currency and the count of receipt matches of each status.
func (p *pack) reconciliationRows(w *sheetWriter) error {
	f, err := p.figures()
	if err != nil {
		return err
	}
	for i, g := range f.grants {
		rec := f.recs[i]
		vals := []value{text(rec.GrantID), text(g.ref), text(g.donor)}
		for _, b := range []ledger.Balances{rec.Agreement, rec.Reporting} {
			vals = append(vals, amount(b.Pledged, b.Currency), amount(b.Committed, b.Currency), amount(b.Disbursed, b.Currency),
				amount(b.Received, b.Currency), amount(b.Spent, b.Currency),
				amount(b.UndisbursedCommitment, b.Currency), amount(b.UnspentBalance, b.Currency))
		}
		counts := map[string]int64{}
		for _, s := range rec.Summary {
			counts[s.Status] = s.Count
		}
		for _, st := range ledger.MatchStatuses {
			vals = append(vals, integer(counts[st]))
		}
		if err := w.row(vals...); err != nil {
			return err
		}
	}
	return nil
}

// milestoneRows: the roadmap's milestones as they stood at as-of
// (roadmap.MilestonesAt: status and latest progress as recorded by then),
// with the allocations in force then of the scope's grants (coverage's
// Allocated, as in Summary).
func (p *pack) milestoneRows(w *sheetWriter) error {
	ms, err := roadmap.MilestonesAt(p.ctx, p.tx, p.scope.RoadmapID, p.scope.AsOf)
	if err != nil {
		return err
	}
	cov, err := p.coverage()
	if err != nil {
		return err
	}
	allocated := make(map[string]decimal.Decimal, len(cov.Milestones))
	for _, c := range cov.Milestones {
		allocated[c.MilestoneID] = c.Allocated
	}
	for _, m := range ms {
		var due, progressAt time.Time
		if m.DueDate != nil {
			due = *m.DueDate
		}
		achieved := decimal.NullDecimal{}
		if m.AchievedQuantity != nil {
			achieved = decimal.NullDecimal{Decimal: *m.AchievedQuantity, Valid: true}
		}
		if m.ProgressAsOf != nil {
			progressAt = *m.ProgressAsOf
		}
		cur := m.FundingRequirement.Currency
		if err := w.row(text(m.ID), text(m.Code), text(m.Title), text(m.ActivityType), text(m.Region),
			dec(m.TargetQuantity), text(m.TargetUnit), day(due), text(m.Status),
			amount(m.FundingRequirement.Value, cur), amount(allocated[m.ID], cur),
			decOpt(achieved), day(progressAt)); err != nil {
			return err
		}
	}
	return nil
}
