package ledger_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// benchWorld makes a USD grant with 10 000 entries. flows of every 1 000 are
// disbursements and receipts (in pairs, each receipt citing its
// disbursement); the rest are expenditures.
func benchWorld(b *testing.B, flows int) (*world, ledger.Grant) {
	w := newWorld(b)
	g := w.grant("USD", "BENCH", "100000000.00")
	admin := as(auth.Admin, "")
	w.record(w.donor(g), g, "COMMITMENT", "100000000.00", "USD", "2024-02-01", "")
	for k := range 10 {
		var in []ledger.EntryInput
		for i := range 1000 {
			typ, ref := "DISBURSEMENT", fmt.Sprint("R", k, "-", i)
			switch {
			case i >= flows:
				typ, ref = "EXPENDITURE", fmt.Sprint("INV", k, "-", i)
			case i%2 == 1:
				typ, ref = "RECEIPT", fmt.Sprint("R", k, "-", i-1)
			}
			in = append(in, ledger.EntryInput{GrantID: id(g.ID), Type: typ, Amount: amt("1.00", "USD"), ValueDate: day("2024-03-01"), Reference: ref})
		}
		if _, err := w.l.BatchRecord(admin, in, fmt.Sprint("b", k)); err != nil {
			b.Fatal(err)
		}
	}
	return w, g
}

// BenchmarkReconcile10k reconciles a USD grant holding 10 000 entries,
// sequentially, and reports p50 and p99: "tranches" is a grant paid in 50
// tranches with 50 receipts and 9 900 expenditures (a demining grant's usual
// shape), "flows" the worst case of 5 000 disbursements each with its receipt.
// The API target (p99 ≤ 20 ms) is measured end to end over gRPC by
// BenchmarkLedger/reconcile in internal/server.
//
//	go test -run '^$' -bench Reconcile10k -benchtime 200x ./internal/ledger/
func BenchmarkReconcile10k(b *testing.B) {
	for _, c := range []struct {
		name  string
		flows int
	}{{"tranches", 10}, {"flows", 1000}} {
		b.Run(c.name, func(b *testing.B) {
			w, g := benchWorld(b, c.flows)
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := w.l.Reconcile(coord, id(g.ID), time.Time{}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}

// BenchmarkBatchRecord records 1 000 disbursements per call on one grant and
// reports entries per second (the API target, ≥ 20 000/s over gRPC, is
// measured by BenchmarkLedger/batch in internal/server).
//
//	go test -run '^$' -bench BatchRecord -benchtime 20x ./internal/ledger/
func BenchmarkBatchRecord(b *testing.B) {
	w := newWorld(b)
	g := w.grant("USD", "BATCH", "100000000.00")
	w.record(w.donor(g), g, "COMMITMENT", "100000000.00", "USD", "2024-02-01", "")
	admin := as(auth.Admin, "")
	n := 0
	start := time.Now()
	for b.Loop() {
		in := make([]ledger.EntryInput, 1000)
		for i := range in {
			in[i] = ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("1.00", "USD"), ValueDate: day("2024-03-01"), Reference: fmt.Sprint("B", n, "-", i)}
		}
		if _, err := w.l.BatchRecord(admin, in, fmt.Sprint("batch-", n)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n*1000)/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkRecordConcurrent records single disbursements from 8 goroutines,
// each on its own grant, straight into the ledger (no gRPC), and reports
// entries per second.
//
//	go test -run '^$' -bench RecordConcurrent -benchtime 1x ./internal/ledger/
func BenchmarkRecordConcurrent(b *testing.B) {
	w := newWorld(b)
	var gs []ledger.Grant
	for i := range 8 {
		g := w.grant("USD", fmt.Sprint("C", i), "0")
		w.record(w.donor(g), g, "COMMITMENT", "100000000.00", "USD", "2024-02-01", "")
		gs = append(gs, g)
	}
	round := 0
	for b.Loop() {
		round++
		rate := testdb.Rate(b, len(gs), 500, func(c, i int) error {
			g := gs[c]
			_, err := w.l.RecordTransaction(w.donor(g), ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("1.00", "USD"), ValueDate: day("2024-03-01"), Reference: fmt.Sprint(c, "-", i)}, fmt.Sprint(round, "-", c, "-", i))
			return err
		})
		b.ReportMetric(rate, "entries/s")
	}
}
