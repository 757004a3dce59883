package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// procurementRules find procurement that holds milestones back.
var procurementRules = []rule{
	{kind: ProcurementStalled, find: findStalled},
	{kind: ProcurementLate, find: findLate},
	{kind: MilestoneAtRisk, find: findAtRisk},
}

// stageOnDay is the lateral subquery that gives item i its stage on day $2:
// the stage row with the greatest (entered_on, seq) entered on or before the
// day, read from procurement_stages_item_day (one index probe per item). An
// item with no such row did not exist yet on the day, so the CROSS JOIN
// drops it. It serves a few items (the critical ones of milestones due);
// stagesOnDay serves all of them.
const stageOnDay = `CROSS JOIN LATERAL (
	  SELECT ps.stage, ps.entered_on FROM procurement_stages ps
	  WHERE ps.item_id = i.id AND ps.entered_on <= $2::date
	  ORDER BY ps.entered_on DESC, ps.seq DESC LIMIT 1) s`

// stagesOnDay is every item's stage on day $2 in one ordered pass over
// procurement_stages_item_day (DISTINCT ON keeps each item's first row in
// (entered_on, seq) descending order), joined to the items after: at
// 1 000 000 entries (37 500 items) it takes a third of the time of one probe
// per item, and grows linearly where the probes, each deeper in a larger
// index, did not. The pass covers the stage history of all roadmaps, a few
// rows per item.
const stagesOnDay = `WITH s AS (
	  SELECT DISTINCT ON (ps.item_id) ps.item_id, ps.stage, ps.entered_on FROM procurement_stages ps
	  WHERE ps.entered_on <= $2::date
	  ORDER BY ps.item_id, ps.entered_on DESC, ps.seq DESC)`

// itemRow is one procurement item of the scope with its stage on the day and
// the grant and milestone it belongs to.
type itemRow struct {
	ID, Description, Category  string
	Critical                   bool
	Cost                       decimal.Decimal
	Currency                   string
	Expected                   *time.Time
	GrantID, GrantRef          string
	DonorID, RecipientID       string
	MilestoneID, MilestoneCode string
	Stage                      string
	StageSince                 time.Time
	ThresholdDays              int // the dwell limit this row crossed (stalls only)
}

// itemColumns are what scanItems reads, in order; the statement's alias for
// the items is i, for their grants g, their milestones m, their stage s.
const itemColumns = `i.id::text, i.description, i.category, i.critical, i.estimated_cost, i.currency,
	i.expected_delivery_date, g.id::text, g.reference, g.donor_org_id::text, g.recipient_org_id::text,
	m.id::text, m.code, s.stage, s.entered_on`

// scanItems runs an item statement; withLimit reads one more column, the
// dwell limit crossed.
func scanItems(ctx context.Context, q postgres.Querier, sql string, withLimit bool, args ...any) ([]itemRow, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []itemRow
	for rows.Next() {
		var r itemRow
		dest := []any{&r.ID, &r.Description, &r.Category, &r.Critical, &r.Cost, &r.Currency, &r.Expected,
			&r.GrantID, &r.GrantRef, &r.DonorID, &r.RecipientID, &r.MilestoneID, &r.MilestoneCode, &r.Stage, &r.StageSince}
		if withLimit {
			dest = append(dest, &r.ThresholdDays)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	// In a stable order, sorted here rather than in SQL, where an ORDER BY
	// can make the planner sort every candidate item before the filter.
	slices.SortFunc(out, func(a, b itemRow) int { return strings.Compare(a.ID, b.ID) })
	return out, rows.Err()
}

// subjects of an item's finding: the item, its grant, its milestone, and the
// grant's donor and recipient, so each of them sees the flag.
func (r itemRow) subjects() []Subject {
	return []Subject{{SubjectItem, r.ID}, {SubjectGrant, r.GrantID}, {SubjectMilestone, r.MilestoneID},
		{SubjectOrganization, r.DonorID}, {SubjectOrganization, r.RecipientID}}
}

// evidence common to the findings about one item. The estimate stays in its
// own currency: it is an estimate, and no FX path is needed to act on it.
func (r itemRow) evidence(asOf time.Time) map[string]any {
	ev := map[string]any{
		"asOf":           dayJSON(asOf),
		"itemId":         r.ID,
		"description":    r.Description,
		"category":       r.Category,
		"critical":       r.Critical,
		"estimatedCost":  moneyJSON(r.Cost, r.Currency),
		"grantId":        r.GrantID,
		"grantReference": r.GrantRef,
		"milestoneId":    r.MilestoneID,
		"milestoneCode":  r.MilestoneCode,
		"stage":          r.Stage,
		"stageEnteredOn": dayJSON(r.StageSince),
		"daysInStage":    daysBetween(r.StageSince, asOf),
	}
	if r.Expected != nil {
		ev["expectedDeliveryDate"] = dayJSON(*r.Expected)
	}
	return ev
}

// severity of an item's finding: a critical item holds its milestone back.
func (r itemRow) severity() string {
	if r.Critical {
		return High
	}
	return Medium
}

// daysBetween is the days from a to b, both days.
func daysBetween(a, b time.Time) int { return int(b.Sub(a).Hours() / 24) }

// findStalled: an item whose stage on the day is open (not ACCEPTED or
// CANCELLED) and was entered more than StageDwellDays[stage] days before it.
// The key is item and stage: advancing resolves the flag, and a stall in a
// later stage is a new one.
func findStalled(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	stages := make([]string, 0, len(OpenStages))
	limits := make([]int32, 0, len(OpenStages))
	for _, st := range OpenStages {
		if n, ok := s.Config.StageDwellDays[st]; ok {
			stages, limits = append(stages, st), append(limits, int32(n))
		}
	}
	rows, err := scanItems(ctx, q, stagesOnDay+`
		SELECT `+itemColumns+`, lim.days
		FROM s JOIN procurement_items i ON i.id = s.item_id
		JOIN grants g ON g.id = i.grant_id
		JOIN milestones m ON m.id = i.milestone_id
		JOIN unnest($3::text[], $4::int[]) AS lim(stage, days) ON lim.stage = s.stage
		WHERE g.roadmap_id = $1 AND $2::date - s.entered_on > lim.days`, true, s.RoadmapID, s.AsOf, stages, limits)
	if err != nil {
		return nil, fmt.Errorf("reading stalled procurement: %w", err)
	}
	out := make([]finding, 0, len(rows))
	for _, r := range rows {
		dwell := daysBetween(r.StageSince, s.AsOf)
		ev := r.evidence(s.AsOf)
		ev["threshold"] = map[string]any{"stageDwellDays": map[string]int{r.Stage: r.ThresholdDays}}
		ev["daysOver"] = dwell - r.ThresholdDays
		out = append(out, finding{
			Kind: ProcurementStalled, Severity: r.severity(), Key: r.ID + "/" + r.Stage, Subjects: r.subjects(), Evidence: ev,
			Explanation: fmt.Sprintf("%s (%s) has been in %s for %d days since %s, %d over the %d-day limit: find out what holds it and escalate to the procuring organisation.",
				quoteItem(r), r.MilestoneCode, r.Stage, dwell, dayJSON(r.StageSince), dwell-r.ThresholdDays, r.ThresholdDays),
		})
	}
	return out, nil
}

// findLate: an item whose expected delivery date is before the day and whose
// stage on the day is not DELIVERED, ACCEPTED or CANCELLED. The key is the
// item: a new expected date does not make it a new finding.
func findLate(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := scanItems(ctx, q, stagesOnDay+`
		SELECT `+itemColumns+`
		FROM s JOIN procurement_items i ON i.id = s.item_id
		JOIN grants g ON g.id = i.grant_id
		JOIN milestones m ON m.id = i.milestone_id
		WHERE g.roadmap_id = $1 AND i.expected_delivery_date < $2::date
		  AND s.stage NOT IN ('DELIVERED', 'ACCEPTED', 'CANCELLED')`, false, s.RoadmapID, s.AsOf)
	if err != nil {
		return nil, fmt.Errorf("reading late procurement: %w", err)
	}
	out := make([]finding, 0, len(rows))
	for _, r := range rows {
		late := daysBetween(*r.Expected, s.AsOf)
		ev := r.evidence(s.AsOf)
		ev["daysLate"] = late
		ev["threshold"] = map[string]any{"expectedDeliveryDate": dayJSON(*r.Expected)}
		out = append(out, finding{
			Kind: ProcurementLate, Severity: r.severity(), Key: r.ID, Subjects: r.subjects(), Evidence: ev,
			Explanation: fmt.Sprintf("%s (%s) was expected by %s and is %d days late, still in %s since %s: get a new delivery date from the supplier or plan around it.",
				quoteItem(r), r.MilestoneCode, dayJSON(*r.Expected), late, r.Stage, dayJSON(r.StageSince)),
		})
	}
	return out, nil
}

// quoteItem names an item in an explanation: its description, with the
// critical ones said to be so.
func quoteItem(r itemRow) string {
	d := r.Description
	if len([]rune(d)) > 80 {
		d = string([]rune(d)[:77]) + "..."
	}
	if r.Critical {
		return fmt.Sprintf("Critical item %q", d)
	}
	return fmt.Sprintf("Item %q", d)
}

// findAtRisk: a milestone due within AtRiskDays of the day (or overdue),
// whose status on the day is not COMPLETED or CANCELLED, with critical
// procurement not delivered on the day or a funding gap above AtRiskGapShare
// of its requirement.
//
// The status on the day is the latest status change recorded on or before
// it; a milestone with no change by then is in the status it was created
// with, which is its current status if it never changed and PLANNED (the
// creation default) otherwise. The gap is requirement − allocations, both in
// reporting currency, as roadmap coverage computes it, with the allocations
// as of the day: for each grant its latest set created on or before the day
// (as of today exactly the current sets, so an emptied set counts as empty;
// a set emptied in the past leaves no row and a replay of a day it was in
// force still sees the set before it). A milestone created after the day
// did not exist on it: a replay of that day leaves it out.
func findAtRisk(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	rows, err := q.Query(ctx, `
		WITH due AS (
		  SELECT m.id, m.code, m.title, m.due_date, m.funding_requirement, m.responsible_org_id
		  FROM milestones m
		  WHERE m.roadmap_id = $1 AND m.due_date <= $2::date + $3::int
		    AND m.created_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'
		    AND coalesce(
		      (SELECT h.status FROM milestone_status_history h
		       WHERE h.milestone_id = m.id AND h.recorded_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'
		       ORDER BY h.recorded_at DESC, h.id DESC LIMIT 1),
		      CASE WHEN EXISTS (SELECT FROM milestone_status_history h WHERE h.milestone_id = m.id)
		           THEN 'PLANNED' ELSE m.status END) NOT IN ('COMPLETED', 'CANCELLED')
		), alloc AS (
		  -- An allocation of the grant's current version counts if it was set
		  -- by the day; an older one (a tenth of grants re-allocate) only when
		  -- no later version was set by the day, which a probe of the
		  -- allocations key answers for those few rows alone.
		  SELECT a.milestone_id, sum(a.reporting_amount) AS allocated
		  FROM due JOIN allocations a ON a.milestone_id = due.id
		  JOIN grant_balances b ON b.grant_id = a.grant_id
		  WHERE a.created_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'
		    AND (a.version = b.allocation_version
		         OR ($5::bool IS FALSE AND NOT EXISTS (SELECT FROM allocations later
		           WHERE later.grant_id = a.grant_id AND later.version > a.version
		             AND later.created_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC')))
		  GROUP BY a.milestone_id
		), crit AS (
		  SELECT i.milestone_id,
		         array_agg(i.id::text ORDER BY i.id) AS ids,
		         array_agg(i.description ORDER BY i.id) AS descriptions,
		         array_agg(s.stage ORDER BY i.id) AS stages,
		         array_agg(to_char(s.entered_on, 'YYYY-MM-DD') ORDER BY i.id) AS since,
		         array_agg(coalesce(to_char(i.expected_delivery_date, 'YYYY-MM-DD'), '') ORDER BY i.id) AS expected,
		         array_agg(g.id::text ORDER BY i.id) AS grants,
		         array_agg(g.donor_org_id::text ORDER BY i.id) AS donors,
		         array_agg(g.recipient_org_id::text ORDER BY i.id) AS recipients
		  FROM due JOIN procurement_items i ON i.milestone_id = due.id AND i.critical
		  JOIN grants g ON g.id = i.grant_id
		  `+stageOnDay+`
		  WHERE s.stage NOT IN ('DELIVERED', 'ACCEPTED', 'CANCELLED')
		  GROUP BY i.milestone_id
		)
		SELECT due.id::text, due.code, due.title, due.due_date, due.funding_requirement,
		       coalesce(due.responsible_org_id::text, ''), coalesce(alloc.allocated, 0),
		       coalesce(crit.ids, '{}'), coalesce(crit.descriptions, '{}'), coalesce(crit.stages, '{}'),
		       coalesce(crit.since, '{}'), coalesce(crit.expected, '{}'), coalesce(crit.grants, '{}'),
		       coalesce(crit.donors, '{}'), coalesce(crit.recipients, '{}')
		FROM due LEFT JOIN alloc ON alloc.milestone_id = due.id LEFT JOIN crit ON crit.milestone_id = due.id
		WHERE crit.ids IS NOT NULL
		   OR (due.funding_requirement > 0
		       AND due.funding_requirement - coalesce(alloc.allocated, 0) > $4::numeric * due.funding_requirement)`, s.RoadmapID, s.AsOf, s.Config.AtRiskDays, s.Config.AtRiskGapShare, !s.AsOf.Before(today))
	if err != nil {
		return nil, fmt.Errorf("reading milestones at risk: %w", err)
	}
	defer rows.Close()
	var out []finding
	for rows.Next() {
		var m atRisk
		if err := rows.Scan(&m.ID, &m.Code, &m.Title, &m.Due, &m.Requirement, &m.Responsible, &m.Allocated,
			&m.Items, &m.Descriptions, &m.Stages, &m.Since, &m.Expected, &m.Grants, &m.Donors, &m.Recipients); err != nil {
			return nil, fmt.Errorf("reading milestones at risk: %w", err)
		}
		out = append(out, m.finding(s))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading milestones at risk: %w", err)
	}
	slices.SortFunc(out, func(a, b finding) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// atRisk is one milestone the at-risk statement found, with its undelivered
// critical items as parallel arrays.
type atRisk struct {
	ID, Code, Title, Responsible                                             string
	Due                                                                      time.Time
	Requirement, Allocated                                                   decimal.Decimal
	Items, Descriptions, Stages, Since, Expected, Grants, Donors, Recipients []string
}

func (m atRisk) finding(s scope) finding {
	cur := s.ReportingCurrency
	left := daysBetween(s.AsOf, m.Due)
	gap := m.Requirement.Sub(m.Allocated)
	gapped := m.Requirement.IsPositive() && gap.GreaterThan(s.Config.AtRiskGapShare.Mul(m.Requirement))
	subjects := []Subject{{SubjectMilestone, m.ID}}
	seen := map[Subject]bool{subjects[0]: true}
	add := func(sub Subject) {
		if sub.ID != "" && !seen[sub] {
			seen[sub] = true
			subjects = append(subjects, sub)
		}
	}
	add(Subject{SubjectOrganization, m.Responsible})
	items := make([]map[string]any, len(m.Items))
	stages := make([]string, len(m.Items))
	for i := range m.Items {
		items[i] = map[string]any{"itemId": m.Items[i], "description": m.Descriptions[i], "stage": m.Stages[i],
			"stageEnteredOn": m.Since[i], "grantId": m.Grants[i]}
		if m.Expected[i] != "" {
			items[i]["expectedDeliveryDate"] = m.Expected[i]
		}
		stages[i] = m.Stages[i]
		add(Subject{SubjectItem, m.Items[i]})
		add(Subject{SubjectGrant, m.Grants[i]})
		add(Subject{SubjectOrganization, m.Donors[i]})
		add(Subject{SubjectOrganization, m.Recipients[i]})
	}
	ev := map[string]any{
		"asOf":                dayJSON(s.AsOf),
		"milestoneId":         m.ID,
		"milestoneCode":       m.Code,
		"dueDate":             dayJSON(m.Due),
		"daysLeft":            left,
		"criticalItems":       items,
		"undeliveredCritical": len(m.Items),
		"fundingRequirement":  moneyJSON(m.Requirement, cur),
		"allocated":           moneyJSON(m.Allocated, cur),
		"gap":                 moneyJSON(gap, cur),
		"fundingGap":          gapped,
		"threshold":           map[string]any{"atRiskDays": s.Config.AtRiskDays, "atRiskGapShare": s.Config.AtRiskGapShare.String()},
	}
	if m.Requirement.IsPositive() {
		ev["gapShare"] = gap.DivRound(m.Requirement, 4).String()
	}
	// Overdue, or held back both by procurement and by money: act now.
	sev := Medium
	if left < 0 || (gapped && len(m.Items) > 0) {
		sev = High
	}
	when := fmt.Sprintf("is due in %d days (%s)", left, dayJSON(m.Due))
	switch {
	case left < 0:
		when = fmt.Sprintf("was due %d days ago (%s) and is not completed", -left, dayJSON(m.Due))
	case left == 0:
		when = fmt.Sprintf("is due today (%s)", dayJSON(m.Due))
	}
	var why []string
	if len(m.Items) > 0 {
		slices.Sort(stages)
		why = append(why, fmt.Sprintf("%s not delivered (%s)", plural(len(m.Items), "critical procurement item"), strings.Join(stageCounts(stages), ", ")))
	}
	if gapped {
		why = append(why, fmt.Sprintf("%s %s (%s%%) of its %s %s requirement not allocated",
			money.Format(gap, cur), cur, gap.Mul(decimal.NewFromInt(100)).DivRound(m.Requirement, 0), money.Format(m.Requirement, cur), cur))
	}
	return finding{
		Kind: MilestoneAtRisk, Severity: sev, Key: m.ID, Subjects: subjects, Evidence: ev,
		Explanation: fmt.Sprintf("Milestone %s %q %s with %s: %s before the due date slips.",
			m.Code, m.Title, when, strings.Join(why, " and "), atRiskAction(len(m.Items) > 0, gapped)),
	}
}

// stageCounts says how many items are in each stage, from sorted stages:
// "2 in TENDERED".
func stageCounts(sorted []string) []string {
	var out []string
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j] == sorted[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%d in %s", j-i, sorted[i]))
		i = j
	}
	return out
}

// atRiskAction is what a coordinator should do about a milestone at risk,
// by what puts it at risk.
func atRiskAction(items, gap bool) string {
	switch {
	case items && gap:
		return "chase the procurement and find the missing funding"
	case items:
		return "chase the procurement"
	}
	return "find the missing funding"
}

// plural writes n and a noun, with an s when n is not one.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
