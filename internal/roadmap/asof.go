package roadmap

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// FundingScope narrows coverage to the grants of a donor or one grant (a
// zero id does not narrow) and to what was recorded at or before AsOf
// (required): what the audit pack reports for its scope.
type FundingScope struct {
	AsOf                time.Time
	DonorOrgID, GrantID uuid.UUID
}

// FundingAt gives the funding of a roadmap's milestones within a scope, read
// through q (the caller's transaction), and how many donors of the scope have
// grants under the roadmap (the ledger's MilestoneFundingAt).
type FundingAt func(ctx context.Context, q postgres.Querier, roadmapID string, milestoneIDs []string, sc FundingScope) (map[string]Funding, int, error)

// CoverageAt is Coverage for a scope as of a time, read through q so that a
// caller holding a snapshot (the audit pack) gets figures of that snapshot.
// The milestones are those created at or before sc.AsOf. It does not
// authorise: the caller has checked that its principal may read the scope.
// With no narrowing and an as-of after the last change it answers what
// Coverage answers.
func CoverageAt(ctx context.Context, q postgres.Querier, roadmapID uuid.UUID, sc FundingScope, funding FundingAt) (Coverage, error) {
	if sc.AsOf.IsZero() {
		return Coverage{}, fmt.Errorf("coverage as of: no as-of time")
	}
	rm, err := Get(ctx, q, roadmapID.String())
	if err != nil {
		return Coverage{}, err
	}
	ms, err := MilestonesAt(ctx, q, roadmapID, sc.AsOf)
	if err != nil {
		return Coverage{}, fmt.Errorf("computing coverage: %w", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	f, donors, err := funding(ctx, q, rm.ID, ids, sc)
	if err != nil {
		return Coverage{}, fmt.Errorf("computing coverage: %w", err)
	}
	return cover(rm, ms, f, donors), nil
}

// MilestonesAt returns a roadmap's milestones as they stood at asOf, by
// code: those created by then, each with its status and latest progress
// report as recorded by then. Only the status and progress of a milestone
// change after creation (its other fields are immutable), so this is exact
// but for one gap, decided here: milestone_status_history holds the changes,
// not the status a milestone was created with, so before its first change a
// milestone has the status of its creation's audit event (the first event of
// the milestone: its "status"); a milestone without such an event (loaded
// outside the API) has PLANNED there, the default of creation.
func MilestonesAt(ctx context.Context, q postgres.Querier, roadmapID uuid.UUID, asOf time.Time) ([]Milestone, error) {
	rows, err := q.Query(ctx, `SELECT m.id, m.roadmap_id, m.code, m.title, m.activity_type, m.region, m.target_quantity,
			m.target_unit, m.due_date, m.funding_requirement, r.reporting_currency, coalesce(m.responsible_org_id::text, ''),
			coalesce(
			  (SELECT h.status FROM milestone_status_history h WHERE h.milestone_id = m.id AND h.recorded_at <= $2
			   ORDER BY h.recorded_at DESC, h.id DESC LIMIT 1),
			  CASE WHEN EXISTS (SELECT FROM milestone_status_history h WHERE h.milestone_id = m.id)
			       THEN coalesce((SELECT e.change::jsonb ->> 'status' FROM audit_events e
			                      WHERE e.entity_type = 'milestone' AND e.entity_id = m.id::text ORDER BY e.id LIMIT 1), 'PLANNED')
			       ELSE m.status END),
			p.achieved_quantity, p.as_of
		FROM milestones m JOIN roadmaps r ON r.id = m.roadmap_id
		LEFT JOIN LATERAL (SELECT achieved_quantity, as_of FROM milestone_progress
		                   WHERE milestone_id = m.id AND recorded_at <= $2
		                   ORDER BY as_of DESC, recorded_at DESC LIMIT 1) p ON true
		WHERE m.roadmap_id = $1 AND m.created_at <= $2
		ORDER BY m.code`, roadmapID.String(), asOf)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Milestone, error) {
		var m Milestone
		return m, scanMilestone(r, &m)
	})
}
