package detect

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestMoneyRulePlans seeds 800 grants and about 40 000 journal entries
// (with reversals, allocations, milestones in shared regions), analysed, so
// the planner chooses on real statistics with sequential scans allowed: once
// in 4 roadmaps (a roadmap holds a quarter of the journal) and once in 40 (a
// fortieth). For each money rule it captures the statement the rule sends
// and checks its plan reads the journal once (the rule over allocations not
// at all) — one scan of transactions, sequential or by index over the
// roadmap's grants, and the reversals from their partial index — and never
// scans the journal sequentially on the inner side of a nested loop or in a
// subplan, which would read it once per grant or per entry.
func TestMoneyRulePlans(t *testing.T) {
	t.Parallel()
	for _, roadmaps := range []int{4, 40} {
		t.Run(fmt.Sprintf("%d roadmaps", roadmaps), func(t *testing.T) {
			t.Parallel()
			checkMoneyPlans(t, roadmaps, 40000)
		})
	}
}

func checkMoneyPlans(t *testing.T, roadmaps, entries int) {
	db := testdb.New(t)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO organizations (id, name, kind)
		 SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'org ' || i,
		        CASE WHEN i <= 50 THEN 'DONOR' ELSE 'IMPLEMENTER' END
		 FROM generate_series(1, 100) i`,
		`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		 SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, 'AFG', 'roadmap ' || i, '2024-01-01', '2026-12-31', 'USD'
		 FROM generate_series(1, $1::int) i`,
		// milestone j belongs to roadmap 1 + j % R
		`INSERT INTO milestones (id, roadmap_id, code, title, activity_type, region, funding_requirement)
		 SELECT ('00000000-0000-4000-a000-' || lpad(j::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + j % $1::int)::text, 12, '0'))::uuid,
		        'M-' || j, 'milestone ' || j, (ARRAY['CLEARANCE', 'SURVEY', 'EORE'])[1 + j % 3], 'AF-' || (j % 5), 1000000
		 FROM generate_series(1, 11 * $1::int) j`,
		// grant g belongs to roadmap 1 + g % R
		`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		 SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-9000-' || lpad((1 + g % $1::int)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((1 + g % 50)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((51 + g % 20)::text, 12, '0'))::uuid,
		        'G-' || g, 'grant ' || g, 'USD', '2024-01-01', '2025-12-31'
		 FROM generate_series(1, 800) g`,
		`INSERT INTO grant_balances (grant_id, allocation_version) SELECT id, 1 FROM grants`,
		// each grant allocates to two milestones of its roadmap (j = R k + g % R)
		`INSERT INTO allocations (grant_id, version, milestone_id, amount, reporting_amount)
		 SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, 1,
		        ('00000000-0000-4000-a000-' || lpad(($1::int * k + g % $1::int)::text, 12, '0'))::uuid, 50000, 50000
		 FROM generate_series(1, 800) g, LATERAL (SELECT DISTINCT k FROM (VALUES (1 + g % 9), (1 + (g + 3) % 9)) v(k)) ks`,
		`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		                           agreement_rate, reporting_rate, value_date, reference, milestone_id, recorded_by, recorded_role)
		 SELECT ('00000000-0000-7000-9000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,
		        t, t, a, 'USD', a, a, 1, 1, date '2024-01-01' + (i % 700), 'R-' || (i % 5000),
		        CASE WHEN i % 7 = 0 THEN ('00000000-0000-4000-a000-' || lpad(($1::int * (1 + i % 9) + g % $1::int)::text, 12, '0'))::uuid END,
		        'tok', 'admin'
		 FROM generate_series(1, $2::int) i,
		      LATERAL (SELECT 1 + i % 800 AS g,
		                      (ARRAY['COMMITMENT', 'DISBURSEMENT', 'RECEIPT', 'EXPENDITURE', 'EXPENDITURE', 'EXPENDITURE'])[1 + i % 6] AS t,
		                      (1000 + (i::bigint * 7919) % 100000)::numeric AS a) x`,
		`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		                           agreement_rate, reporting_rate, value_date, reference, milestone_id, reverses_id, recorded_by, recorded_role)
		 SELECT ('00000000-0000-7000-a000-' || lpad(row_number() OVER ()::text, 12, '0'))::uuid, grant_id, 'REVERSAL', type, amount, currency,
		        -agreement_amount, -reporting_amount, 1, 1, value_date + 3, reference, milestone_id, id, 'tok', 'admin'
		 FROM transactions WHERE type <> 'REVERSAL' AND ('x' || substr(md5(id::text), 1, 4))::bit(16)::int % 50 = 0`,
		`ANALYZE organizations, roadmaps, milestones, grants, grant_balances, allocations, transactions`,
	} {
		var args []any
		switch {
		case strings.Contains(sql, "$2"):
			args = []any{roadmaps, entries}
		case strings.Contains(sql, "$1"):
			args = []any{roadmaps}
		}
		if _, err := db.Owner.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	tr := &testdb.Tracer{}
	pool := testdb.TracedPool(t, db, tr)
	s, err := loadScope(ctx, pool, uuid.MustParse("00000000-0000-4000-9000-000000000002"), mday("2025-06-30"), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range moneyRules {
		t.Run(r.kind, func(t *testing.T) {
			var n int
			sql, args := tr.Capture(t, func() error {
				fs, err := r.find(ctx, pool, s)
				n = len(fs)
				return err
			}, "WITH ")
			plan := testdb.ExplainPlan(t, pool, sql, args)
			var journal, reversals, bad []string
			plan.Walk(func(n testdb.Plan, repeated bool) {
				// Whether an entry is reversed is read from the reversals'
				// own partial index, per entry or as one hash.
				if n.RelationName != "transactions" && n.IndexName != "transactions_reverses_id_key" {
					return
				}
				if n.IndexName == "transactions_reverses_id_key" {
					reversals = append(reversals, n.NodeType)
					return
				}
				journal = append(journal, n.NodeType+" "+n.IndexName)
				if repeated && n.NodeType == "Seq Scan" {
					bad = append(bad, n.NodeType)
				}
			})
			// OVERFUNDED_MILESTONE reads allocations only.
			if len(bad) > 0 || len(journal) > 1 || (len(journal) == 0) != (r.kind == OverfundedMilestone) || len(reversals) != len(journal) {
				t.Errorf("%s reads the journal %d times (%v), %d times sequentially per outer row; want once, never repeated:\n%s",
					r.kind, len(journal), journal, len(bad), testdb.PlanText(t, pool, sql, args))
			}
			if testing.Verbose() {
				t.Logf("%s: %d findings; journal read by %v, reversals by %v\n%s", r.kind, n, journal, reversals, testdb.PlanText(t, pool, sql, args))
			}
		})
	}
	// The receipts of the disbursements RECEIPT_MISMATCH finds differing
	// are read by (grant, reference), never by a scan of the journal.
	t.Run("receipts of differing disbursements", func(t *testing.T) {
		var grants, refs, ids []string
		rows, err := pool.Query(ctx, `SELECT grant_id::text, reference, id::text FROM transactions WHERE type = 'DISBURSEMENT' ORDER BY id LIMIT 20`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var g, r, id string
			if err := rows.Scan(&g, &r, &id); err != nil {
				t.Fatal(err)
			}
			grants, refs, ids = append(grants, g), append(refs, r), append(ids, id)
		}
		args := []any{grants, refs, ids, s.AsOf}
		var seq []string
		testdb.ExplainPlan(t, pool, receiptsOfSQL, args).Walk(func(n testdb.Plan, _ bool) {
			if n.RelationName == "transactions" && n.NodeType == "Seq Scan" {
				seq = append(seq, n.NodeType)
			}
		})
		if len(seq) > 0 {
			t.Errorf("reading the receipts scans the journal:\n%s", testdb.PlanText(t, pool, receiptsOfSQL, args))
		}
	})
}
