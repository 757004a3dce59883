package ledger_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestFilteredListsUseIndexes runs each filtered list of grants and of a
// grant's journal against 5 000 grants (50 donors, 50 implementers, 100
// roadmaps) and 20 000 entries on 200 of them, analysed, so the planner
// chooses on real statistics with sequential scans allowed; it captures the
// statement the list sends and checks that its plan reads the index meant
// for the filter and does not scan the listed table whole. (With a filter
// that matches a large share of the table, reading the primary key in the
// list's id order is the better plan, and the planner rightly takes it.)
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
		`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		 SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + i % 100)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((1 + i % 50)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((51 + i % 50)::text, 12, '0'))::uuid,
		        'G-' || i, 'grant ' || i, 'USD', '2024-01-01', '2025-12-31'
		 FROM generate_series(1, 5000) i`,
		`INSERT INTO grant_balances (grant_id) SELECT id FROM grants`,
		`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		                           agreement_rate, reporting_rate, value_date, reference, recorded_by, recorded_role)
		 SELECT ('00000000-0000-7000-9000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-7000-8000-' || lpad((1 + i % 200)::text, 12, '0'))::uuid,
		        t, t, 1, 'USD', 1, 1, 1, 1, '2024-03-01', 'R-' || i, 'tok', 'donor'
		 FROM generate_series(1, 20000) i,
		      LATERAL (SELECT (ARRAY['COMMITMENT', 'DISBURSEMENT', 'RECEIPT', 'EXPENDITURE'])[1 + i % 4] AS t) x`,
		`ANALYZE organizations, roadmaps, grants, grant_balances, transactions, allocations`,
	} {
		if _, err := db.Owner.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	const donor, recipient, roadmap = "00000000-0000-4000-8000-000000000007", "00000000-0000-4000-8000-000000000057",
		"00000000-0000-4000-9000-000000000003"
	const grant = "00000000-0000-7000-8000-000000000011"
	tr := &testdb.Tracer{}
	l := ledger.New(testdb.TracedPool(t, db, tr))
	grants := func(ctx context.Context, f ledger.GrantFilter) func() error {
		return func() error { _, _, err := l.ListGrants(ctx, f); return err }
	}
	// The donor filter reads the unique (donor_org_id, reference) index.
	const byDonor = "grants_donor_org_id_reference_key"
	tests := []struct {
		name, marker, table, index string
		list                       func() error
	}{
		{"grants by donor", "FROM grants g", "grants", byDonor, grants(coord, ledger.GrantFilter{DonorOrgID: id(donor)})},
		{"grants by recipient", "FROM grants g", "grants", "grants_recipient", grants(coord, ledger.GrantFilter{RecipientOrgID: id(recipient)})},
		{"grants by roadmap", "FROM grants g", "grants", "grants_roadmap", grants(coord, ledger.GrantFilter{RoadmapID: id(roadmap)})},
		{"a donor's grants", "FROM grants g", "grants", byDonor, grants(as(auth.Donor, donor), ledger.GrantFilter{})},
		{"an implementer's grants", "FROM grants g", "grants", "grants_recipient", grants(as(auth.Implementer, recipient), ledger.GrantFilter{})},
		{"transactions by grant", "FROM transactions t", "transactions", "transactions_grant", func() error {
			_, _, err := l.ListTransactions(coord, id(grant), "", 0, "")
			return err
		}},
		{"transactions by grant and type", "FROM transactions t", "transactions", "transactions_grant", func() error {
			_, _, err := l.ListTransactions(coord, id(grant), "RECEIPT", 0, "")
			return err
		}},
	}
	for _, tc := range tests {
		sql, args := tr.Capture(t, tc.list, tc.marker)
		scans := testdb.Explain(t, db.App, sql, args)
		t.Logf("%s: %v", tc.name, scans)
		if !slices.Contains(scans, "index:"+tc.index) {
			t.Errorf("%s: plan does not read %s: %v", tc.name, tc.index, scans)
		}
		if slices.Contains(scans, "seq:"+tc.table) {
			t.Errorf("%s: plan scans %s whole: %v", tc.name, tc.table, scans)
		}
	}
}
