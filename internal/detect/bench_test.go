package detect

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// runDetection is what BenchmarkDetect times: one full detection run over a
// roadmap as of a day (Store.Run: every rule, then the flags written),
// answering how many findings of each kind it holds open.
func runDetection(ctx context.Context, db *testdb.DB, roadmap uuid.UUID, asOf time.Time) (map[string]int, error) {
	ctx = auth.WithPrincipal(ctx, auth.OperatorPrincipal("benchmark"))
	res, err := New(db.App, DefaultConfig()).Run(ctx, roadmap, asOf)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, c := range res.Counts {
		counts[c.Kind] = c.New + c.Reopened + c.StillOpen
	}
	return counts, nil
}

// BenchmarkDetect times full detection runs over generated programmes of
// 10 000, 100 000 (not with -short) and 1 000 000 journal entries (only with
// TRANCHE_BENCH_FULL=1: loading takes a minute or two and a few GB of disk).
// For each size it times the first run (every finding a new flag), then
// reruns (the same findings again: the steady state of background runs),
// and each rule alone; it reports findings per kind and prints the growth of
// each time between sizes against n log n (DESIGN section 10: at most 10 s
// at 1 000 000 entries, growth no worse than n log n).
//
//	go test -run '^$' -bench BenchmarkDetect -benchtime 3x ./internal/detect/
//	TRANCHE_BENCH_FULL=1 go test -run '^$' -bench BenchmarkDetect -benchtime 3x -timeout 30m ./internal/detect/
func BenchmarkDetect(b *testing.B) {
	sizes := []int{10_000}
	if !testing.Short() {
		sizes = append(sizes, 100_000)
	}
	if os.Getenv("TRANCHE_BENCH_FULL") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	type measured struct {
		n            int // entries
		first, rerun float64
		perRule      map[string]float64
	}
	var runs []measured
	for _, n := range sizes {
		// Loaded once per size, with the parent benchmark, so the sub-benchmark's
		// repeated calls (b.N ramping up) time detection only.
		db := testdb.New(b)
		start := time.Now()
		res := generate(b, db, n, uint64(n), true)
		load := time.Since(start).Seconds()
		entries := res.Rows["transactions"]
		fmt.Printf("BenchmarkDetect: %d entries: loaded %d grants, %d entries, %d allocations, %d procurement items, %d stages in %.1f s; planted %v\n",
			n, res.Rows["grants"], entries, res.Rows["allocations"], res.Rows["procurement_items"], res.Rows["procurement_stages"], load, res.Planted)
		ctx := context.Background()
		m := measured{n: entries, perRule: map[string]float64{}}
		t0 := time.Now()
		counts, err := runDetection(ctx, db, res.Roadmap, genAsOf)
		if err != nil {
			b.Fatal(err)
		}
		m.first = time.Since(t0).Seconds()
		sc, err := loadScope(ctx, db.App, res.Roadmap, genAsOf, DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.App.Exec(ctx, `SET jit = off`); err != nil { // as Store.Run does
			b.Fatal(err)
		}
		for _, r := range allRules() {
			t0 := time.Now()
			if _, err := r.find(ctx, db.App, sc); err != nil {
				b.Fatal(err)
			}
			m.perRule[r.kind] = time.Since(t0).Seconds()
		}
		checkRulePlans(b, db, sc, entries)
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			for b.Loop() {
				if counts, err = runDetection(ctx, db, res.Roadmap, genAsOf); err != nil {
					b.Fatal(err)
				}
			}
			m.rerun = b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(m.rerun, "s/rerun")
			b.ReportMetric(m.first, "s/first-run")
			total := 0
			for _, k := range Kinds {
				b.ReportMetric(float64(counts[k]), k)
				total += counts[k]
			}
			b.ReportMetric(float64(total), "flags")
			b.ReportMetric(load, "load-s")
		})
		for _, k := range Kinds {
			fmt.Printf("BenchmarkDetect: %d entries: %-22s %7.3f s alone, %6d flags\n", entries, k, m.perRule[k], counts[k])
		}
		runs = append(runs, m)
		// The next size gets the machine's cache to itself.
		db.App.Close()
		db.Owner.Close()
	}
	slices.SortFunc(runs, func(a, b measured) int { return a.n - b.n })
	nlogn := func(n int) float64 { return float64(n) * math.Log(float64(n)) }
	for i := 1; i < len(runs); i++ {
		a, c := runs[i-1], runs[i]
		bound := nlogn(c.n) / nlogn(a.n)
		for _, x := range []struct {
			what     string
			from, to float64
		}{{"first run", a.first, c.first}, {"rerun", a.rerun, c.rerun}} {
			if x.from == 0 {
				continue
			}
			fmt.Printf("BenchmarkDetect: growth %d → %d entries, %s: time ×%.2f (%.3f s → %.3f s), n log n ×%.2f, ratio %.2f (≤ 1: no worse than n log n)\n",
				a.n, c.n, x.what, x.to/x.from, x.from, x.to, bound, x.to/x.from/bound)
		}
	}
}

// checkRulePlans explains every statement each rule sends over the loaded
// programme and fails if any plan scans the journal sequentially once per
// row of something else (the inner side of a nested loop, or a subplan):
// the "no sequential scan of the journal per grant", checked at
// each size the benchmark loads, 1 000 000 entries included.
func checkRulePlans(b *testing.B, db *testdb.DB, sc scope, entries int) {
	ctx := context.Background()
	tr := &testdb.Tracer{}
	pool := testdb.TracedPool(b, db, tr)
	if _, err := pool.Exec(ctx, `SET jit = off`); err != nil {
		b.Fatal(err)
	}
	checked, bad := 0, 0
	for _, r := range allRules() {
		stmts := tr.CaptureAll(b, func() error { _, err := r.find(ctx, pool, sc); return err })
		for _, st := range stmts {
			if !strings.Contains(st.SQL, "transactions") {
				continue
			}
			checked++
			testdb.ExplainPlan(b, pool, st.SQL, st.Args).Walk(func(n testdb.Plan, repeated bool) {
				if repeated && n.NodeType == "Seq Scan" && n.RelationName == "transactions" {
					bad++
					b.Errorf("%s at %d entries scans the journal once per row:\n%s", r.kind, entries, testdb.PlanText(b, pool, st.SQL, st.Args))
				}
			})
		}
	}
	fmt.Printf("BenchmarkDetect: %d entries: %d statements reading the journal explained, %d scanning it once per row\n", entries, checked, bad)
}
