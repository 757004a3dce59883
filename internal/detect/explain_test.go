package detect

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestFlagListsUseIndexes lists flags by each filter, and as a donor and an
// implementer, over 60 000 flags (300 roadmaps, 6 000 grants of 100 donors
// to 100 partners), analysed, and checks each plan reads the index meant
// for the filter and scans neither the flags nor the grants whole.
func TestFlagListsUseIndexes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO organizations (id, name, kind)
		 SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'org ' || i,
		        CASE WHEN i <= 100 THEN 'DONOR' ELSE 'IMPLEMENTER' END
		 FROM generate_series(1, 200) i`,
		`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		 SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'AFG', 'roadmap ' || i, '2024-01-01', '2026-12-31', 'USD'
		 FROM generate_series(1, 300) i`,
		// The grants the flags name: a donor's or implementer's visibility
		// reads its own grants (by the grants' indexes) once.
		`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		 SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + (g - 1) % 300)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((1 + (g - 1) % 100)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((101 + (g - 1) % 97)::text, 12, '0'))::uuid,
		        'G-' || g, 'grant ' || g, 'USD', '2024-01-01', '2026-12-31'
		 FROM generate_series(1, 6000) g`,
		`ANALYZE grants`,
		`INSERT INTO detection_runs (id, roadmap_id, as_of, started_at, actor, actor_role, counts)
		 VALUES ('00000000-0000-7000-a000-000000000001', '00000000-0000-4000-9000-000000000001', '2025-01-01', now(), 't', 'admin', '{}')`,
		`INSERT INTO flags (id, roadmap_id, kind, fingerprint, severity, status, subjects, grant_ids, donor_org_ids,
		                    recipient_org_ids, evidence, explanation, detected_at, first_run, updated_at, resolved_by_run)
		 SELECT ('00000000-0000-7000-b000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + i % 300)::text, 12, '0'))::uuid,
		        (ARRAY['DUPLICATE_TRANSACTION', 'DUPLICATE_EXPENDITURE', 'OVERFUNDED_MILESTONE', 'OVERLAPPING_GRANTS',
		               'RECEIPT_MISMATCH', 'PROCUREMENT_STALLED', 'PROCUREMENT_LATE', 'MILESTONE_AT_RISK', 'IDLE_FUNDS'])[1 + i % 9],
		        encode(sha256(convert_to(i::text, 'UTF8')), 'hex'), 'HIGH', st, '[]',
		        ARRAY[('00000000-0000-7000-8000-' || lpad((1 + i % 6000)::text, 12, '0'))::uuid],
		        ARRAY[('00000000-0000-4000-8000-' || lpad((1 + i % 100)::text, 12, '0'))::uuid],
		        ARRAY[('00000000-0000-4000-8000-' || lpad((101 + i % 97)::text, 12, '0'))::uuid],
		        '{}', 'x', now(), '00000000-0000-7000-a000-000000000001', now(),
		        CASE WHEN st = 'RESOLVED' THEN '00000000-0000-7000-a000-000000000001'::uuid END
		 FROM generate_series(1, 60000) i, LATERAL (SELECT (ARRAY['OPEN', 'RESOLVED', 'RESOLVED', 'ACKNOWLEDGED'])[1 + i % 4] AS st) s`,
		`ANALYZE flags`,
	} {
		if _, err := db.Owner.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	id := uuid.MustParse
	const donor, partner = "00000000-0000-4000-8000-000000000007", "00000000-0000-4000-8000-000000000157"
	tr := &testdb.Tracer{}
	s := New(testdb.TracedPool(t, db, tr), DefaultConfig())
	list := func(ctx context.Context, f ListFilter) func() error {
		return func() error { _, _, err := s.List(ctx, f); return err }
	}
	roadmap := id("00000000-0000-4000-9000-000000000003")
	tests := []struct {
		name  string
		list  func() error
		index []string // any of
	}{
		{"by roadmap", list(coord, ListFilter{RoadmapID: roadmap}), []string{"flags_roadmap", "flags_roadmap_kind"}},
		{"by roadmap and status", list(coord, ListFilter{RoadmapID: roadmap, Status: Open}), []string{"flags_roadmap"}},
		{"by roadmap and kind", list(coord, ListFilter{RoadmapID: roadmap, Kind: IdleFunds}), []string{"flags_roadmap_kind", "flags_roadmap"}},
		{"by grant", list(coord, ListFilter{GrantID: id("00000000-0000-7000-8000-000000000011")}), []string{"flags_grants"}},
		{"by organisation", list(coord, ListFilter{OrganizationID: id(donor)}), []string{"flags_donors"}},
		{"a donor's", list(as(auth.Donor, donor), ListFilter{}), []string{"flags_donors"}},
		{"an implementer's", list(as(auth.Implementer, partner), ListFilter{}), []string{"flags_recipients"}},
		{"an implementer's of a roadmap", list(as(auth.Implementer, partner), ListFilter{RoadmapID: roadmap}), []string{"flags_recipients", "flags_roadmap", "flags_roadmap_kind"}},
	}
	for _, tc := range tests {
		sql, args := tr.Capture(t, tc.list, "FROM flags")
		scans := testdb.Explain(t, db.App, sql, args)
		t.Logf("%s: %v", tc.name, scans)
		if !slices.ContainsFunc(tc.index, func(ix string) bool { return slices.Contains(scans, "index:"+ix) }) {
			t.Errorf("%s: plan reads none of %v: %v", tc.name, tc.index, scans)
		}
		if slices.Contains(scans, "seq:flags") {
			t.Errorf("%s: plan scans flags whole: %v", tc.name, scans)
		}
		if slices.Contains(scans, "seq:grants") {
			t.Errorf("%s: plan scans grants whole: %v", tc.name, scans)
		}
	}
}
