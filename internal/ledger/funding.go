package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// MilestoneFunding is the money behind each of a roadmap's milestones, in
// reporting currency: current allocations, and committed, disbursed and
// spent from the entries tagged with the milestone; the donors of either;
// and how many donors have grants under the roadmap at all. It serves
// roadmap coverage, which every role reads: it shows donors in aggregate.
func (s *Store) MilestoneFunding(ctx context.Context, roadmapID string, milestoneIDs []string) (map[string]roadmap.Funding, int, error) {
	out := make(map[string]roadmap.Funding, len(milestoneIDs))
	rows, err := s.pool.Query(ctx, `
		WITH alloc AS (
		  SELECT a.milestone_id, sum(a.reporting_amount) AS allocated
		  FROM allocations a JOIN grant_balances b ON b.grant_id = a.grant_id AND b.allocation_version = a.version
		  WHERE a.milestone_id = ANY ($1::uuid[])
		  GROUP BY a.milestone_id
		), moved AS (
		  SELECT t.milestone_id,
		         sum(t.reporting_amount) FILTER (WHERE t.bucket = 'COMMITMENT') AS committed,
		         sum(t.reporting_amount) FILTER (WHERE t.bucket = 'DISBURSEMENT') AS disbursed,
		         sum(t.reporting_amount) FILTER (WHERE t.bucket = 'EXPENDITURE') AS spent
		  FROM transactions t WHERE t.milestone_id = ANY ($1::uuid[]) GROUP BY t.milestone_id
		), donors AS (
		  SELECT milestone_id, count(DISTINCT donor_org_id) AS n FROM (
		    SELECT a.milestone_id, g.donor_org_id FROM allocations a
		      JOIN grant_balances b ON b.grant_id = a.grant_id AND b.allocation_version = a.version
		      JOIN grants g ON g.id = a.grant_id
		    WHERE a.milestone_id = ANY ($1::uuid[])
		    UNION
		    SELECT t.milestone_id, g.donor_org_id FROM transactions t JOIN grants g ON g.id = t.grant_id
		    WHERE t.milestone_id = ANY ($1::uuid[]) AND t.bucket IN ('COMMITMENT', 'DISBURSEMENT', 'EXPENDITURE')
		  ) x GROUP BY milestone_id
		)
		SELECT m.id::text, coalesce(a.allocated, 0), coalesce(mv.committed, 0), coalesce(mv.disbursed, 0),
		       coalesce(mv.spent, 0), coalesce(d.n, 0)
		FROM unnest($1::uuid[]) AS m(id) LEFT JOIN alloc a ON a.milestone_id = m.id
		LEFT JOIN moved mv ON mv.milestone_id = m.id LEFT JOIN donors d ON d.milestone_id = m.id`, milestoneIDs)
	if err != nil {
		return nil, 0, fmt.Errorf("reading milestone funding: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var f roadmap.Funding
		if err := rows.Scan(&id, &f.Allocated, &f.Committed, &f.Disbursed, &f.Spent, &f.Donors); err != nil {
			return nil, 0, fmt.Errorf("reading milestone funding: %w", err)
		}
		out[id] = f
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading milestone funding: %w", err)
	}
	var donors int
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT donor_org_id) FROM grants WHERE roadmap_id = $1`, roadmapID).Scan(&donors); err != nil {
		return nil, 0, fmt.Errorf("counting donors: %w", err)
	}
	return out, donors, nil
}

// MilestoneFundingAt is MilestoneFunding within a scope as of a time, read
// through q (the caller's transaction): only the grants of the scope created
// by sc.AsOf, their entries recorded by then, and for each grant the
// allocation set in force then (roadmap.FundingAt). With no narrowing and an
// as-of after the last change it answers what MilestoneFunding answers.
//
// The set in force at a time is the grant's latest version set by then. A
// version is dated by its rows (allocations.created_at) or, for a set that
// was emptied and has no rows, by the grant's audit event that set it (its
// change holds "allocations" and "version", in the same transaction, so the
// same time). Without such an event (rows loaded outside the API) an emptied
// set is not seen and the last non-empty one before it stays in force.
func MilestoneFundingAt(ctx context.Context, q postgres.Querier, roadmapID string, milestoneIDs []string, sc roadmap.FundingScope) (map[string]roadmap.Funding, int, error) {
	out := make(map[string]roadmap.Funding, len(milestoneIDs))
	rows, err := q.Query(ctx, `
		WITH g AS (
		  SELECT g.id, g.donor_org_id FROM grants g
		  WHERE g.roadmap_id = $2 AND g.created_at <= $3
		    AND ($4::uuid IS NULL OR g.donor_org_id = $4::uuid) AND ($5::uuid IS NULL OR g.id = $5::uuid)
		), ver AS (
		  SELECT g.id AS grant_id, g.donor_org_id, greatest(
		    (SELECT max(a.version) FROM allocations a WHERE a.grant_id = g.id AND a.created_at <= $3),
		    (SELECT max((e.change::jsonb ->> 'version')::int) FROM audit_events e
		     WHERE e.entity_type = 'grant' AND e.entity_id = g.id::text AND e.occurred_at <= $3
		       AND e.change::jsonb ? 'allocations' AND e.change::jsonb ? 'version')) AS version
		  FROM g
		), cur AS (
		  SELECT a.milestone_id, a.reporting_amount, ver.donor_org_id
		  FROM ver JOIN allocations a ON a.grant_id = ver.grant_id AND a.version = ver.version
		  WHERE a.milestone_id = ANY ($1::uuid[])
		), alloc AS (
		  SELECT milestone_id, sum(reporting_amount) AS allocated FROM cur GROUP BY milestone_id
		), tagged AS (
		  SELECT t.milestone_id, t.bucket, t.reporting_amount, g.donor_org_id
		  FROM transactions t JOIN g ON g.id = t.grant_id
		  WHERE t.milestone_id = ANY ($1::uuid[]) AND t.recorded_at <= $3
		), moved AS (
		  SELECT milestone_id,
		         sum(reporting_amount) FILTER (WHERE bucket = 'COMMITMENT') AS committed,
		         sum(reporting_amount) FILTER (WHERE bucket = 'DISBURSEMENT') AS disbursed,
		         sum(reporting_amount) FILTER (WHERE bucket = 'EXPENDITURE') AS spent
		  FROM tagged GROUP BY milestone_id
		), donors AS (
		  SELECT milestone_id, count(DISTINCT donor_org_id) AS n FROM (
		    SELECT milestone_id, donor_org_id FROM cur
		    UNION
		    SELECT milestone_id, donor_org_id FROM tagged WHERE bucket IN ('COMMITMENT', 'DISBURSEMENT', 'EXPENDITURE')
		  ) x GROUP BY milestone_id
		)
		SELECT m.id::text, coalesce(a.allocated, 0), coalesce(mv.committed, 0), coalesce(mv.disbursed, 0),
		       coalesce(mv.spent, 0), coalesce(d.n, 0), (SELECT count(DISTINCT donor_org_id) FROM g)
		FROM unnest($1::uuid[]) AS m(id) LEFT JOIN alloc a ON a.milestone_id = m.id
		LEFT JOIN moved mv ON mv.milestone_id = m.id LEFT JOIN donors d ON d.milestone_id = m.id`,
		milestoneIDs, roadmapID, sc.AsOf, optID(sc.DonorOrgID), optID(sc.GrantID))
	if err != nil {
		return nil, 0, fmt.Errorf("reading milestone funding: %w", err)
	}
	defer rows.Close()
	donors := 0
	for rows.Next() {
		var id string
		var f roadmap.Funding
		if err := rows.Scan(&id, &f.Allocated, &f.Committed, &f.Disbursed, &f.Spent, &f.Donors, &donors); err != nil {
			return nil, 0, fmt.Errorf("reading milestone funding: %w", err)
		}
		out[id] = f
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading milestone funding: %w", err)
	}
	if len(milestoneIDs) == 0 {
		if err := q.QueryRow(ctx, `SELECT count(DISTINCT donor_org_id) FROM grants g
			WHERE g.roadmap_id = $1 AND g.created_at <= $2
			  AND ($3::uuid IS NULL OR g.donor_org_id = $3::uuid) AND ($4::uuid IS NULL OR g.id = $4::uuid)`,
			roadmapID, sc.AsOf, optID(sc.DonorOrgID), optID(sc.GrantID)).Scan(&donors); err != nil {
			return nil, 0, fmt.Errorf("counting donors: %w", err)
		}
	}
	return out, donors, nil
}

// optID is a narrowing query parameter: NULL for uuid.Nil.
func optID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id.String()
}
