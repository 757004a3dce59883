package reports_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/reports"
)

// BenchmarkPack writes the pack of a roadmap whose journal holds
// PACK_BENCH_ROWS extra entries (default 100 000; the target is
// 1 000 000), inserted directly, and reports seconds per pack, the ratio to
// COPY of the same rows to CSV (issue 10's target: ≤ 5) and the process's
// peak RSS (VmHWM; target ≤ 150 MB). Run alone:
//
//	PACK_BENCH_ROWS=1000000 go test -run - -bench Pack -benchtime 1x ./reports/
func BenchmarkPack(b *testing.B) {
	n := 100000
	if s := os.Getenv("PACK_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	w := newWorld(b)
	ctx := context.Background()
	// Disbursement-shaped rows spread over a year of value dates, recorded
	// before as-of; triggers off (as a bulk load by the owner).
	err := pgx.BeginFunc(ctx, w.db.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount,
				reporting_amount, agreement_rate, reporting_rate, value_date, reference, note, recorded_by, recorded_role,
				recorded_at)
			SELECT gen_random_uuid(), $1, 'EXPENDITURE', 'EXPENDITURE', 100.25 + i % 1000, 'EUR', 100.25 + i % 1000,
				round((100.25 + i % 1000) / 0.92, 2), 1, 0.92, date '2024-01-01' + i % 365, 'INV-' || i, '', 'bench', 'implementer',
				$2::timestamptz - interval '1 second'
			FROM generate_series(1, $3) i`, w.eur.ID, w.asOf, n)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.db.Owner.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	scope := reports.Scope{RoadmapID: w.roadmapID, AsOf: w.asOf}
	src := reports.Source{DB: w.db.App, Audit: w.audit}
	var packSecs, copySecs float64
	for b.Loop() {
		start := time.Now()
		if err := reports.Write(ctx, io.Discard, src, scope); err != nil {
			b.Fatal(err)
		}
		packSecs += time.Since(start).Seconds()
		start = time.Now()
		conn, err := w.db.App.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		_, err = conn.Conn().PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT t.* FROM transactions t JOIN grants g ON g.id = t.grant_id
			WHERE g.roadmap_id = '`+w.roadmapID.String()+`' ORDER BY t.value_date, t.recorded_at, t.id) TO STDOUT (FORMAT csv)`)
		conn.Release()
		if err != nil {
			b.Fatal(err)
		}
		copySecs += time.Since(start).Seconds()
	}
	b.ReportMetric(packSecs/float64(b.N), "pack-s/op")
	b.ReportMetric(packSecs/copySecs, "pack/copy")
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MB")
}

// peakRSS is the process's VmHWM in bytes (Linux), 0 elsewhere.
func peakRSS(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	return 0
}
