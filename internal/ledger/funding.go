package ledger

import (
	"context"
	"fmt"

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
