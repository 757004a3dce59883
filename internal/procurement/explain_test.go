package procurement_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestFilteredListsUseIndexes runs each filtered list of items against 5 000
// grants (100 roadmaps of 10 milestones, 50 donors, 50 implementers) with
// 20 000 items and 50 000 stages, analysed, so the planner chooses on real
// statistics with sequential scans allowed; it captures the statement the
// list sends and checks that its plan reads the index meant for the filter
// and scans neither items nor stages whole.
func TestFilteredListsUseIndexes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO organizations (id, name, kind)
		 SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'org ' || i,
		        CASE WHEN i <= 50 THEN 'DONOR' ELSE 'IMPLEMENTER' END
		 FROM generate_series(1, 100) i`,
		`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		 SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'AFG', 'roadmap ' || i, '2024-01-01', '2026-12-31', 'USD'
		 FROM generate_series(1, 100) i`,
		`INSERT INTO milestones (id, roadmap_id, code, title, activity_type, funding_requirement)
		 SELECT ('00000000-0000-4000-a000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + i % 100)::text, 12, '0'))::uuid, 'M-' || i, 'milestone ' || i, 'CLEARANCE', 1
		 FROM generate_series(1, 1000) i`,
		`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		 SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + i % 100)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((1 + i % 50)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((51 + i % 50)::text, 12, '0'))::uuid,
		        'G-' || i, 'grant ' || i, 'USD', '2024-01-01', '2025-12-31'
		 FROM generate_series(1, 5000) i`,
		// Item i is on grant 1 + i % 5000 and on a milestone of that grant's
		// roadmap; one in a hundred is expected before 2025, the rest later.
		`INSERT INTO procurement_items (id, grant_id, milestone_id, description, category, estimated_cost, currency,
		                               expected_delivery_date, recorded_by)
		 SELECT ('00000000-0000-7000-9000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-7000-8000-' || lpad((1 + i % 5000)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-a000-' || lpad((1 + (1 + i % 5000) % 100 + 100 * (i % 10))::text, 12, '0'))::uuid,
		        'item ' || i, 'PPE', 100, 'USD',
		        CASE WHEN i % 100 = 0 THEN date '2024-06-01' ELSE date '2099-06-01' END, 'tok'
		 FROM generate_series(1, 20000) i`,
		`INSERT INTO procurement_stages (item_id, seq, stage, entered_on, recorded_by)
		 SELECT i.id, s.seq, s.stage, date '2024-01-01' + s.seq, 'tok'
		 FROM procurement_items i,
		      LATERAL (SELECT * FROM (VALUES (1, 'REQUISITIONED'), (2, 'TENDERED'), (3, 'AWARDED')) v(seq, stage)
		               WHERE v.seq <= 1 + abs(hashtext(i.id::text)) % 3) s`,
		`ANALYZE organizations, roadmaps, milestones, grants, procurement_items, procurement_stages`,
	} {
		if _, err := db.Owner.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	const donor, recipient, roadmap = "00000000-0000-4000-8000-000000000007", "00000000-0000-4000-8000-000000000057",
		"00000000-0000-4000-9000-000000000003"
	const grant, milestone = "00000000-0000-7000-8000-000000000011", "00000000-0000-4000-a000-000000000012"
	tr := &testdb.Tracer{}
	s := procurement.New(testdb.TracedPool(t, db, tr))
	list := func(ctx context.Context, f procurement.Filter) func() error {
		return func() error { _, _, err := s.List(ctx, f); return err }
	}
	id := uuid.MustParse
	for _, tc := range []struct {
		name, index string
		list        func() error
	}{
		{"by grant", "procurement_items_grant", list(coord, procurement.Filter{GrantID: id(grant)})},
		{"by grant and stage", "procurement_items_grant", list(coord, procurement.Filter{GrantID: id(grant), Stage: "TENDERED"})},
		{"by milestone", "procurement_items_milestone", list(coord, procurement.Filter{MilestoneID: id(milestone)})},
		{"by roadmap", "grants_roadmap", list(coord, procurement.Filter{RoadmapID: id(roadmap)})},
		{"a donor's", "grants_donor_org_id_reference_key", list(as(auth.Donor, donor), procurement.Filter{})},
		{"an implementer's", "grants_recipient", list(as(auth.Implementer, recipient), procurement.Filter{})},
		{"late in a roadmap", "grants_roadmap", list(coord, procurement.Filter{RoadmapID: id(roadmap), Late: true})},
		// Lateness and the current stage come from each item's stage history,
		// which no index of items holds: alone, these filters walk the items
		// in list order (by primary key), which is what they must read.
		{"late", "procurement_items_pkey", list(coord, procurement.Filter{Late: true})},
		{"stage", "procurement_items_pkey", list(coord, procurement.Filter{Stage: "AWARDED"})},
	} {
		sql, args := tr.Capture(t, tc.list, "FROM procurement_items i")
		scans := testdb.Explain(t, db.App, sql, args)
		t.Logf("%s: %v", tc.name, scans)
		if !slices.Contains(scans, "index:"+tc.index) {
			t.Errorf("%s: plan does not read %s: %v", tc.name, tc.index, scans)
		}
		for _, table := range []string{"procurement_items", "procurement_stages"} {
			if slices.Contains(scans, "seq:"+table) {
				t.Errorf("%s: plan scans %s whole: %v", tc.name, table, scans)
			}
		}
	}
}
