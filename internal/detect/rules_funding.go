package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// allocationsCTE defines alloc: the allocations of roadmap $1's grants as of
// day $2. The set in force on a day is, per grant, the latest version
// created on or before it (created_at before the end of the day, UTC). On
// today (UTC) or later that is the grant's current version
// (grant_balances.allocation_version), which is also what roadmap coverage
// sums (internal/ledger, funding.go), so the two agree to the minor unit; it
// also sees a set that was emptied, which leaves no rows. For a past day an
// emptied set cannot be told from no change (its version has no rows to date
// it), so a replay of a past day sees the last non-empty set before it.
const allocationsCTE = `cur AS (
	  SELECT g.id AS grant_id,
	         CASE WHEN $2::date >= (now() AT TIME ZONE 'UTC')::date THEN b.allocation_version
	              ELSE (SELECT max(a.version) FROM allocations a
	                    WHERE a.grant_id = g.id AND a.created_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC') END AS version
	  FROM grants g JOIN grant_balances b ON b.grant_id = g.id
	  WHERE g.roadmap_id = $1
	), alloc AS (
	  SELECT a.grant_id, a.milestone_id, a.amount, a.reporting_amount
	  FROM cur JOIN allocations a ON a.grant_id = cur.grant_id AND a.version = cur.version
	)`

// overfundedSQL: the allocations in force of every grant to each milestone,
// in reporting currency (allocations.reporting_amount, as coverage sums
// them), where their total exceeds the requirement × (1 + $3); one row per
// allocation of such a milestone.
var overfundedSQL = `WITH ` + allocationsCTE + `,
	x AS (
	  SELECT a.*, sum(a.reporting_amount) OVER (PARTITION BY a.milestone_id) AS total FROM alloc a
	)
	SELECT m.id::text, m.code, m.funding_requirement, x.total, g.id::text, g.reference, g.donor_org_id::text, g.recipient_org_id::text,
	       g.currency, x.amount, x.reporting_amount
	FROM x JOIN milestones m ON m.id = x.milestone_id JOIN grants g ON g.id = x.grant_id
	WHERE x.total > m.funding_requirement * (1 + $3::numeric)
	ORDER BY m.id, g.donor_org_id, g.id`

func overfundedArgs(s scope) []any {
	return []any{s.RoadmapID, s.AsOf, s.Config.OverfundedTolerance}
}

// findOverfundedMilestones: OVERFUNDED_MILESTONE, one finding per milestone
// (key: its id; the figures move, the finding stays). Severity: HIGH when two
// or more donors allocate to it (duplicate funding, what coordination is
// for), MEDIUM when one donor over-allocates on its own.
func findOverfundedMilestones(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := q.Query(ctx, overfundedSQL, overfundedArgs(s)...)
	if err != nil {
		return nil, err
	}
	type row struct {
		milestone, code                    string
		requirement, total                 decimal.Decimal
		grant, ref, donor, recipient, gcur string
		amount, reporting                  decimal.Decimal
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.milestone, &x.code, &x.requirement, &x.total, &x.grant, &x.ref, &x.donor, &x.recipient, &x.gcur, &x.amount, &x.reporting)
	})
	if err != nil {
		return nil, err
	}
	tol := s.Config.OverfundedTolerance
	rc := s.ReportingCurrency
	var out []finding
	for len(rs) > 0 {
		n := 1
		for n < len(rs) && rs[n].milestone == rs[0].milestone {
			n++
		}
		group := rs[:n]
		rs = rs[n:]
		m := group[0]
		var subj subjects
		subj.add(SubjectMilestone, m.milestone)
		type share struct {
			amount decimal.Decimal
			grants []map[string]any
		}
		donors := map[string]*share{}
		var donorOrder []string
		for _, x := range group {
			subj.grant(x.grant, x.donor, x.recipient)
			sh := donors[x.donor]
			if sh == nil {
				sh = &share{}
				donors[x.donor] = sh
				donorOrder = append(donorOrder, x.donor)
			}
			sh.amount = sh.amount.Add(x.reporting)
			sh.grants = append(sh.grants, map[string]any{"grantId": x.grant, "grantReference": x.ref,
				"allocated": moneyJSON(x.amount, x.gcur), "allocatedReporting": moneyJSON(x.reporting, rc)})
		}
		var shares []map[string]any
		for _, d := range donorOrder {
			sh := donors[d]
			v := map[string]any{"donorOrgId": d, "allocatedReporting": moneyJSON(sh.amount, rc), "grants": sh.grants}
			if m.total.IsPositive() {
				v["share"] = sh.amount.Div(m.total).Round(4).String()
			}
			shares = append(shares, v)
		}
		limit := m.requirement.Mul(decimal.NewFromInt(1).Add(tol))
		excess := m.total.Sub(m.requirement)
		sev := Medium
		if len(donorOrder) > 1 {
			sev = High
		}
		out = append(out, finding{
			Kind: OverfundedMilestone, Severity: sev, Key: m.milestone, Subjects: subj.sorted(),
			Evidence: map[string]any{
				"milestoneId": m.milestone, "milestoneCode": m.code,
				"fundingRequirement": moneyJSON(m.requirement, rc), "allocated": moneyJSON(m.total, rc),
				"excess": moneyJSON(excess, rc), "limit": moneyJSON(limit, rc), "donors": shares,
				"threshold": map[string]any{"overfundedTolerance": tol.String()},
			},
			Explanation: fmt.Sprintf("Milestone %s has %s %s allocated by %s against a requirement of %s %s (%s %s over); agree with the donors which allocations to move to underfunded milestones.",
				m.code, money2(m.total, rc), rc, plural(len(donorOrder), "donor"), money2(m.requirement, rc), rc, money2(excess, rc), rc),
		})
	}
	return out, nil
}

// overlappingSQL: which grants fund which milestone as of $2 — through the
// allocations in force, or through live commitments, disbursements and
// expenditures tagged with the milestone — restricted to grants whose period
// holds $2 (so every pair of them overlaps: on $2 at least). Grouped two
// ways, each group listing its grants, never pairs:
//   - by (recipient, milestone), with two or more donors;
//   - by (recipient, region, activity type), region set, with two or more
//     donors and two or more milestones: then two different donors fund two
//     different milestones of one area and activity (an overlap the
//     milestone grouping does not already show).
//
// Each row is one (group, grant, milestone) with the grant's allocation to
// the milestone and its tagged disbursements, in agreement and in reporting
// currency. Groups
// are told by window aggregates (two donors: the least and greatest donor
// differ), not by joining group rows back to their members, so no row
// estimate can turn the grouping into a loop over pairs.
var overlappingSQL = `WITH ` + allocationsCTE + `, ` + liveCTE("COMMITMENT", "DISBURSEMENT", "EXPENDITURE") + `,
	funds AS (
	  SELECT grant_id, milestone_id, sum(alloc) AS alloc, sum(alloc_rep) AS alloc_rep, sum(disb) AS disb, sum(disb_rep) AS disb_rep
	  FROM (
	    SELECT grant_id, milestone_id, amount AS alloc, reporting_amount AS alloc_rep, 0 AS disb, 0 AS disb_rep FROM alloc
	    UNION ALL
	    SELECT grant_id, milestone_id, 0, 0, CASE WHEN type = 'DISBURSEMENT' THEN agreement_amount ELSE 0 END,
	           CASE WHEN type = 'DISBURSEMENT' THEN reporting_amount ELSE 0 END
	    FROM live WHERE milestone_id IS NOT NULL
	  ) f GROUP BY grant_id, milestone_id
	), gm AS (
	  SELECT g.id AS grant_id, g.donor_org_id, g.recipient_org_id, f.milestone_id, m.region, m.activity_type,
	         f.alloc, f.alloc_rep, f.disb, f.disb_rep
	  FROM funds f JOIN grants g ON g.id = f.grant_id JOIN milestones m ON m.id = f.milestone_id
	  WHERE g.start_date <= $2::date AND g.end_date >= $2::date
	), w AS (
	  SELECT gm.*,
	         min(donor_org_id::text) OVER m <> max(donor_org_id::text) OVER m AS milestone_donors,
	         min(donor_org_id::text) OVER a <> max(donor_org_id::text) OVER a
	           AND min(milestone_id::text) OVER a <> max(milestone_id::text) OVER a AS area_overlap
	  FROM gm
	  WINDOW m AS (PARTITION BY recipient_org_id, milestone_id), a AS (PARTITION BY recipient_org_id, region, activity_type)
	)
	SELECT 'milestone', milestone_id::text, grant_id::text, milestone_id::text, alloc, alloc_rep, disb, disb_rep
	FROM w WHERE milestone_donors
	UNION ALL
	SELECT 'area', recipient_org_id::text || '/' || region || '/' || activity_type, grant_id::text, milestone_id::text,
	       alloc, alloc_rep, disb, disb_rep
	FROM w WHERE area_overlap AND region <> ''
	ORDER BY 1, 2, 3, 4`

func overlappingArgs(s scope) []any { return []any{s.RoadmapID, s.AsOf} }

// findOverlappingGrants: OVERLAPPING_GRANTS, one finding per group. Key: the
// basis and the group ("milestone:" and the milestone id, or "area:" and
// recipient/region/activity type, all fixed once recorded), then the sorted
// ids of the grants in it: a grant joining or leaving the group is a new
// overlap to review, so the old flag resolves and its review (a dismissal
// with its note) does not carry over to the new one. That is deliberate: a
// review covers the grants it saw, and a donor joining is news. Severity: MEDIUM for one milestone (co-funding must be
// coordinated so no cost is paid twice), LOW for one area and activity.
func findOverlappingGrants(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := q.Query(ctx, overlappingSQL, overlappingArgs(s)...)
	if err != nil {
		return nil, err
	}
	type row struct {
		basis, group, grant, milestone string
		alloc, allocRep, disb, disbRep decimal.Decimal
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.basis, &x.group, &x.grant, &x.milestone, &x.alloc, &x.allocRep, &x.disb, &x.disbRep)
	})
	if err != nil {
		return nil, err
	}
	var grantIDs []string
	for _, x := range rs {
		grantIDs = append(grantIDs, x.grant)
	}
	grants, err := loadGrants(ctx, q, grantIDs)
	if err != nil {
		return nil, err
	}
	rc := s.ReportingCurrency
	var out []finding
	for len(rs) > 0 {
		n := 1
		for n < len(rs) && rs[n].basis == rs[0].basis && rs[n].group == rs[0].group {
			n++
		}
		group := rs[:n]
		rs = rs[n:]
		var subj subjects
		var ids []string
		var evGrants []map[string]any
		donors := map[string]bool{}
		var milestones []string
		for _, x := range group {
			g := grants[x.grant]
			subj.grant(g.id, g.donor, g.recipient)
			subj.add(SubjectMilestone, x.milestone)
			if !slices.Contains(milestones, x.milestone) {
				milestones = append(milestones, x.milestone)
			}
			ids = append(ids, g.id)
			donors[g.donor] = true
			evGrants = append(evGrants, map[string]any{"grantId": g.id, "grantReference": g.ref, "donorOrgId": g.donor,
				"recipientOrgId": g.recipient, "startDate": dayJSON(g.start), "endDate": dayJSON(g.end), "milestoneId": x.milestone,
				"allocated": moneyJSON(x.alloc, g.currency), "allocatedReporting": moneyJSON(x.allocRep, rc),
				"disbursedToMilestone": moneyJSON(x.disb, g.currency), "disbursedToMilestoneReporting": moneyJSON(x.disbRep, rc)})
		}
		slices.Sort(milestones)
		first := grants[group[0].grant]
		ev := map[string]any{"basis": group[0].basis, "recipientOrgId": first.recipient, "grants": evGrants,
			"milestoneIds": milestones, "asOf": dayJSON(s.AsOf),
			"threshold": "grants of 2 or more donors to one recipient, all active on the as-of day"}
		f := finding{Kind: OverlappingGrants, Subjects: subj.sorted(), Evidence: ev}
		if group[0].basis == "milestone" {
			f.Severity = Medium
			f.Key = sortedKey("milestone:"+group[0].group, ids)
			f.Explanation = fmt.Sprintf("%d donors fund the same recipient for the same milestone in overlapping grant periods; confirm with them that each pays for distinct work so that no cost is funded twice.", len(donors))
		} else {
			parts := strings.SplitN(group[0].group, "/", 3)
			f.Severity = Low
			f.Key = sortedKey("area:"+group[0].group, ids)
			ev["region"], ev["activityType"] = parts[1], parts[2]
			f.Explanation = fmt.Sprintf("%d donors fund the same recipient for %s in region %s in overlapping grant periods; check that their milestones and budgets do not cover the same work.", len(donors), parts[2], parts[1])
		}
		out = append(out, f)
	}
	return out, nil
}

// grantInfo is what findings show of a grant.
type grantInfo struct {
	id, ref, donor, recipient, currency string
	start, end                          time.Time
}

func loadGrants(ctx context.Context, q postgres.Querier, ids []string) (map[string]grantInfo, error) {
	out := map[string]grantInfo{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id::text, reference, donor_org_id::text, recipient_org_id::text, currency, start_date, end_date
		FROM grants WHERE id = ANY ($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading grants: %w", err)
	}
	gs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (grantInfo, error) {
		var g grantInfo
		return g, r.Scan(&g.id, &g.ref, &g.donor, &g.recipient, &g.currency, &g.start, &g.end)
	})
	if err != nil {
		return nil, fmt.Errorf("reading grants: %w", err)
	}
	for _, g := range gs {
		out[g.id] = g
	}
	return out, nil
}

// idleFundsSQL: per grant, what it received on or before $3 (IdleMonths
// before the as-of day) and what it spent in all as of $2, both live and in
// agreement currency (and in reporting currency for the evidence). Spending
// is taken to use the oldest money first, so the old money still unspent is
// received-by-$3 − spent; the grant is idle when that is at least $4 of
// what it received by $3.
var idleFundsSQL = `WITH ` + liveCTE("RECEIPT", "EXPENDITURE") + `,
	s AS (
	  SELECT grant_id,
	         coalesce(sum(agreement_amount) FILTER (WHERE type = 'RECEIPT' AND value_date <= $3::date), 0) AS old,
	         coalesce(sum(reporting_amount) FILTER (WHERE type = 'RECEIPT' AND value_date <= $3::date), 0) AS old_rep,
	         coalesce(sum(agreement_amount) FILTER (WHERE type = 'EXPENDITURE'), 0) AS spent,
	         coalesce(sum(reporting_amount) FILTER (WHERE type = 'EXPENDITURE'), 0) AS spent_rep,
	         coalesce(sum(agreement_amount) FILTER (WHERE type = 'RECEIPT'), 0) AS received,
	         min(value_date) FILTER (WHERE type = 'RECEIPT') AS first_receipt
	  FROM live GROUP BY grant_id
	)
	SELECT g.id::text, g.reference, g.donor_org_id::text, g.recipient_org_id::text, g.currency,
	       s.old, s.old_rep, s.spent, s.spent_rep, s.received, s.first_receipt
	FROM s JOIN grants g ON g.id = s.grant_id
	WHERE s.old > 0 AND s.old - s.spent >= $4::numeric * s.old
	ORDER BY g.id`

func idleFundsArgs(s scope) []any {
	return []any{s.RoadmapID, s.AsOf, idleCutoff(s), s.Config.IdleShare}
}

// idleCutoff is the day IdleMonths before the as-of day, clamped to the end
// of a shorter month as PostgreSQL's date - make_interval(months => n) does:
// 2025-08-31 less six months is 2025-02-28. time.AddDate would normalise
// it to 2025-03-03, counting receipts of 1–3 March as six months old.
func idleCutoff(s scope) time.Time {
	y, m, d := s.AsOf.Date()
	first := time.Date(y, m-time.Month(s.Config.IdleMonths), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d, last), 0, 0, 0, 0, time.UTC)
}

// findIdleFunds: IDLE_FUNDS, one finding per grant (key: its id). Severity:
// HIGH when nothing at all has been spent of money received that long ago,
// MEDIUM otherwise.
func findIdleFunds(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := q.Query(ctx, idleFundsSQL, idleFundsArgs(s)...)
	if err != nil {
		return nil, err
	}
	c := s.Config
	rc := s.ReportingCurrency
	cutoff := idleCutoff(s)
	var out []finding
	for rows.Next() {
		var id, ref, donor, recipient, gcur string
		var old, oldRep, spent, spentRep, received decimal.Decimal
		var first time.Time
		if err := rows.Scan(&id, &ref, &donor, &recipient, &gcur, &old, &oldRep, &spent, &spentRep, &received, &first); err != nil {
			rows.Close()
			return nil, err
		}
		unspent := old.Sub(spent)
		share := unspent.Div(old).Round(4)
		var subj subjects
		subj.grant(id, donor, recipient)
		sev := Medium
		if !spent.IsPositive() {
			sev = High
		}
		out = append(out, finding{
			Kind: IdleFunds, Severity: sev, Key: id, Subjects: subj.sorted(),
			Evidence: map[string]any{
				"grantId": id, "grantReference": ref,
				"receivedBy": dayJSON(cutoff), "firstReceipt": dayJSON(first),
				"receivedByCutoff": moneyJSON(old, gcur), "receivedByCutoffReporting": moneyJSON(oldRep, rc),
				"receivedTotal": moneyJSON(received, gcur),
				"spent":         moneyJSON(spent, gcur), "spentReporting": moneyJSON(spentRep, rc),
				"unspent": moneyJSON(unspent, gcur), "unspentShare": share.String(),
				"threshold": map[string]any{"idleMonths": c.IdleMonths, "idleShare": c.IdleShare.String()},
			},
			Explanation: fmt.Sprintf("Grant %s received %s %s by %s and %s%% of it is still unspent; ask the recipient what holds spending back (procurement, access, capacity) or whether funds should be reprogrammed.",
				ref, money2(old, gcur), gcur, dayJSON(cutoff), share.Mul(decimal.NewFromInt(100)).Round(1).String()),
		})
	}
	return out, rows.Err()
}
