package detect

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// runDetection is what BenchmarkDetect times: one full detection run over a
// roadmap as of a day, answering how many findings of each kind it made.
// Where the engine's Store.Run exists, this is the one line to switch to it.
func runDetection(ctx context.Context, db *testdb.DB, roadmap uuid.UUID, asOf time.Time) (map[string]int, error) {
	s, err := loadScope(ctx, db.App, roadmap, asOf, DefaultConfig())
	if err != nil {
		return nil, err
	}
	fs, err := detectAll(ctx, db.App, s)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, f := range fs {
		counts[f.Kind]++
	}
	return counts, nil
}

// BenchmarkDetect times a full detection run over generated programmes of
// 10 000, 100 000 (not with -short) and 1 000 000 journal entries (only with
// TRANCHE_BENCH_FULL=1: loading takes a minute or two and a few GB of disk),
// reporting seconds per run and findings per kind, and prints the growth of
// the time per run between sizes against n log n (DESIGN section 10: at most
// 10 s at 1 000 000 entries, growth no worse than n log n).
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
		n       int // entries
		perRun  float64
		loadSec float64
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
		var perRun float64
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			ctx := context.Background()
			var counts map[string]int
			for b.Loop() {
				var err error
				if counts, err = runDetection(ctx, db, res.Roadmap, genAsOf); err != nil {
					b.Fatal(err)
				}
			}
			perRun = b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perRun, "s/run")
			total := 0
			for _, k := range Kinds {
				b.ReportMetric(float64(counts[k]), k)
				total += counts[k]
			}
			b.ReportMetric(float64(total), "findings")
			b.ReportMetric(load, "load-s")
		})
		runs = append(runs, measured{entries, perRun, load})
		// The next size gets the machine's cache to itself.
		db.App.Close()
		db.Owner.Close()
	}
	slices.SortFunc(runs, func(a, b measured) int { return a.n - b.n })
	nlogn := func(n int) float64 { return float64(n) * math.Log(float64(n)) }
	for i := 1; i < len(runs); i++ {
		a, c := runs[i-1], runs[i]
		if a.perRun == 0 {
			continue
		}
		timeRatio := c.perRun / a.perRun
		bound := nlogn(c.n) / nlogn(a.n)
		fmt.Printf("BenchmarkDetect: growth %d → %d entries: time ×%.2f (%.3f s → %.3f s), n log n ×%.2f, ratio %.2f (≤ 1: no worse than n log n)\n",
			a.n, c.n, timeRatio, a.perRun, c.perRun, bound, timeRatio/bound)
	}
}
