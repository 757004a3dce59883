package audit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestFilteredListsUseIndexes runs each filtered audit listing against a
// table of 50 000 events (analysed, so the planner chooses on real
// statistics, with sequential scans allowed), captures the statement List
// sends, and checks that its plan reads the index meant for the filter and
// never scans the table.
func TestFilteredListsUseIndexes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	// 50 000 sealed events over a year, ten minutes apart: 85 % journal
	// entries, 5 % grants, 3 % batch parts, 2 % tokens, the rest public
	// records; 200 actors, 50 donors, 40 implementers.
	if _, err := db.Owner.Exec(ctx, `
		INSERT INTO audit_events (occurred_at, actor_token_id, actor_name, actor_role, actor_org_id, method,
		                          entity_type, entity_id, request_id, subject_orgs, change, seq, prev_hash, hash)
		SELECT timestamptz '2024-01-01 00:00Z' + i * interval '10 minutes', 'tok-' || i % 200, 'n', 'donor', '', 'm', k,
		       'e-' || i, 'r-' || i,
		       CASE WHEN k IN ('grant', 'transaction', 'transaction_batch') THEN ARRAY['donor-' || i % 50, 'impl-' || i % 40]
		            WHEN k = 'token' THEN ARRAY['donor-' || i % 50] ELSE ARRAY[]::text[] END,
		       '{}', i, '\x00', '\x00'
		FROM generate_series(1, 50000) i,
		     LATERAL (SELECT CASE WHEN i % 100 < 85 THEN 'transaction' WHEN i % 100 < 90 THEN 'grant'
		                          WHEN i % 100 < 93 THEN 'transaction_batch' WHEN i % 100 < 95 THEN 'token'
		                          WHEN i % 100 < 97 THEN 'milestone' ELSE 'organization' END AS k) x`); err != nil {
		t.Fatal(err)
	}
	// 500 reviews of flags, each naming two donors and two implementers (by role).
	if _, err := db.Owner.Exec(ctx, `
		INSERT INTO audit_events (occurred_at, actor_token_id, actor_name, actor_role, actor_org_id, method,
		                          entity_type, entity_id, request_id, subject_orgs, change, seq, prev_hash, hash)
		SELECT timestamptz '2025-01-01 00:00Z' + i * interval '1 hour', 'tok-1', 'n', 'coordinator', '', 'm', 'flag',
		       'f-' || i, 'rf-' || i, ARRAY['donor:donor-' || i % 50, 'recipient:impl-' || i % 40, 'donor:donor-' || (i + 7) % 50, 'recipient:impl-' || (i + 3) % 40],
		       '{}', 50000 + i, '\x00', '\x00'
		FROM generate_series(1, 500) i`); err != nil {
		t.Fatal(err)
	}
	mutate(t, db, 3, "pending") // a few events still pending sealing
	if _, err := db.Owner.Exec(ctx, `ANALYZE audit_events`); err != nil {
		t.Fatal(err)
	}
	tr := &testdb.Tracer{}
	s := audit.New(testdb.TracedPool(t, db, tr))
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		p       auth.Principal
		f       audit.Filter
		indexes []string // each must be read
	}{
		{"by entity", auth.Principal{Role: auth.Auditor}, audit.Filter{EntityType: "transaction", EntityID: "e-101"}, []string{"audit_events_entity"}},
		{"by actor", auth.Principal{Role: auth.Auditor}, audit.Filter{ActorTokenID: "tok-7"}, []string{"audit_events_actor"}},
		{"by time range", auth.Principal{Role: auth.Coordinator}, audit.Filter{From: day, To: day.Add(24 * time.Hour)}, []string{"audit_events_time"}},
		{"by organisation, as a donor", auth.Principal{Role: auth.Donor, OrgID: "donor-7"}, audit.Filter{}, []string{"audit_events_donor", "audit_events_flag_orgs"}},
		{"by organisation, as an implementer", auth.Principal{Role: auth.Implementer, OrgID: "impl-3"}, audit.Filter{},
			[]string{"audit_events_recipient", "audit_events_donor", "audit_events_flag_orgs"}},
		{"by actor, as a donor", auth.Principal{Role: auth.Donor, OrgID: "donor-7"}, audit.Filter{ActorTokenID: "tok-7"}, nil},
		{"by time range, as an implementer", auth.Principal{Role: auth.Implementer, OrgID: "impl-3"}, audit.Filter{From: day, To: day.Add(24 * time.Hour)}, nil},
		{"by actor and time range", auth.Principal{Role: auth.Auditor}, audit.Filter{ActorTokenID: "tok-7", From: day}, nil},
	}
	for _, tc := range tests {
		sql, args := tr.Capture(t, func() error {
			_, _, err := s.List(auth.WithPrincipal(ctx, tc.p), tc.f)
			return err
		}, "FROM audit_events")
		scans := testdb.Explain(t, db.App, sql, args)
		t.Logf("%s: %v", tc.name, scans)
		for _, ix := range tc.indexes {
			if !slices.Contains(scans, "index:"+ix) {
				t.Errorf("%s: plan does not read %s: %v", tc.name, ix, scans)
			}
		}
		if slices.Contains(scans, "seq:audit_events") {
			t.Errorf("%s: plan scans audit_events: %v", tc.name, scans)
		}
	}
}
