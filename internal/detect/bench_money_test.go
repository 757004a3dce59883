package detect

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// BenchmarkMoneyRules times each money rule over one roadmap of n journal
// entries (10 per grant; per payment a commitment, a disbursement and its
// receipt citing one reference, three expenditures with invoice numbers of
// their own; one payment in ten entered twice, under 2 % of the entries),
// analysed, reporting ms per rule and the findings. 1 000 000 entries run
// only with TRANCHE_BENCH_1M=1: seeding them takes a while on a shared
// machine.
func BenchmarkMoneyRules(b *testing.B) {
	sizes := []int{10000, 100000}
	if os.Getenv("TRANCHE_BENCH_1M") != "" {
		sizes = append(sizes, 1000000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db := testdb.New(b)
			seedMoneyBench(b, db, n)
			ctx := context.Background()
			s, err := loadScope(ctx, db.App, uuid.MustParse("00000000-0000-4000-9000-000000000001"), mday("2025-06-30"), DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			per := map[string]time.Duration{}
			found := map[string]int{}
			runs := 0
			for b.Loop() {
				runs++
				for _, r := range moneyRules {
					t0 := time.Now()
					fs, err := r.find(ctx, db.App, s)
					if err != nil {
						b.Fatal(err)
					}
					per[r.kind] += time.Since(t0)
					found[r.kind] = len(fs)
				}
			}
			for _, r := range moneyRules {
				b.ReportMetric(float64(per[r.kind].Milliseconds())/float64(runs), "ms/"+r.kind)
				b.ReportMetric(float64(found[r.kind]), "found/"+r.kind)
			}
		})
	}
}

func seedMoneyBench(b *testing.B, db *testdb.DB, n int) {
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO organizations (id, name, kind)
		 SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'org ' || i,
		        CASE WHEN i <= 50 THEN 'DONOR' ELSE 'IMPLEMENTER' END
		 FROM generate_series(1, 100) i`,
		`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		 VALUES ('00000000-0000-4000-9000-000000000001', 'AFG', 'Strategy', '2024-01-01', '2026-12-31', 'USD')`,
		`INSERT INTO milestones (id, roadmap_id, code, title, activity_type, region, funding_requirement)
		 SELECT ('00000000-0000-4000-a000-' || lpad(j::text, 12, '0'))::uuid, '00000000-0000-4000-9000-000000000001',
		        'M-' || j, 'milestone ' || j, (ARRAY['CLEARANCE', 'SURVEY', 'EORE'])[1 + j % 3], 'AF-' || (j % 5), 1000000
		 FROM generate_series(1, 200) j`,
		`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		 SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, '00000000-0000-4000-9000-000000000001',
		        ('00000000-0000-4000-8000-' || lpad((1 + g % 50)::text, 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad((51 + g % 20)::text, 12, '0'))::uuid,
		        'G-' || g, 'grant ' || g, 'USD', '2024-01-01', '2025-12-31'
		 FROM generate_series(1, $1::int / 10) g`,
		`INSERT INTO grant_balances (grant_id, allocation_version) SELECT id, 1 FROM grants`,
		`INSERT INTO allocations (grant_id, version, milestone_id, amount, reporting_amount)
		 SELECT id, 1, ('00000000-0000-4000-a000-' || lpad((1 + abs(hashtext(id::text)) % 200)::text, 12, '0'))::uuid, 50000, 50000
		 FROM grants`,
		`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		                           agreement_rate, reporting_rate, value_date, reference, milestone_id, recorded_by, recorded_role)
		 SELECT ('00000000-0000-7000-9000-' || lpad(i::text, 12, '0'))::uuid,
		        ('00000000-0000-7000-8000-' || lpad((1 + p % ($1::int / 10))::text, 12, '0'))::uuid,
		        t, t, a, 'USD', a, a, 1, 1, date '2024-01-01' + (p % 700) + (i % 6) / 3,
		        CASE WHEN t = 'EXPENDITURE' THEN 'INV-' || i WHEN t = 'COMMITMENT' THEN '' ELSE 'TR-' || p END,
		        CASE WHEN i % 7 = 0 THEN ('00000000-0000-4000-a000-' || lpad((1 + i % 200)::text, 12, '0'))::uuid END,
		        'tok', 'admin'
		 FROM generate_series(1, $1::int) i,
		      LATERAL (SELECT i / 6 AS p, (ARRAY['COMMITMENT', 'DISBURSEMENT', 'RECEIPT', 'EXPENDITURE', 'EXPENDITURE', 'EXPENDITURE'])[1 + i % 6] AS t,
		                      (1000 + ((i / 6)::bigint * 7919) % 100000)::numeric AS a) x`,
		// one payment in ten entered again, without its reference, two days later
		`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		                           agreement_rate, reporting_rate, value_date, reference, recorded_by, recorded_role)
		 SELECT ('00000000-0000-7000-a000-' || lpad(row_number() OVER ()::text, 12, '0'))::uuid, grant_id, type, type, amount, currency,
		        agreement_amount, reporting_amount, 1, 1, value_date + 2, '', 'tok', 'admin'
		 FROM transactions WHERE type = 'DISBURSEMENT' AND reference LIKE 'TR-%0'`,
		`ANALYZE`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{n}
		}
		if _, err := db.Owner.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
}
