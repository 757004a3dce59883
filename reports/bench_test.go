package reports_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/reports"
)

// BenchmarkPack writes the pack of a roadmap whose journal holds
// PACK_BENCH_ROWS extra entries (default 100 000; the target is
// 1 000 000), inserted directly, with their audit events as the batch-record
// path writes them (ledger.RecordBatch: one event per batch and grant, its
// change holding the batch's entries; PACK_BENCH_BATCH entries per batch,
// default ledger.MaxBatch = 1000; 1 gives one event per entry like single
// records), sealed before the pack, so the Audit Trail sheet and the
// whole-chain verification are in the figure. It reports seconds per pack,
// the ratio to COPY of the same journal rows to CSV (issue 10's target:
// ≤ 5; the audit events are not in the COPY), the process's peak RSS during
// the packs (VmHWM, reset after the set-up; target ≤ 150 MB) and the load
// average (the machine is shared). PACK_BENCH_EXPLAIN=1 also logs the plan of
// the Transactions query. Run alone:
//
//	PACK_BENCH_ROWS=1000000 go test -run '^$' -bench BenchmarkPack -benchtime 1x -timeout 30m ./reports/
func BenchmarkPack(b *testing.B) {
	n := envInt(b, "PACK_BENCH_ROWS", 100000)
	per := envInt(b, "PACK_BENCH_BATCH", ledger.MaxBatch)
	w := newWorld(b)
	ctx := context.Background()
	// Disbursement-shaped rows spread over a year of value dates, recorded
	// before as-of in batches of per entries; triggers off (as a bulk load by
	// the owner). Then one audit event per batch, as RecordBatch writes it
	// (the change is PostgreSQL's JSON of the rows under the head the ledger's
	// canonical form has, {"batchId":…,"grantId":…,"transactions":[…]}, and
	// its size; the chain hashes whatever bytes are stored).
	setup := time.Now()
	err := pgx.BeginFunc(ctx, w.db.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount,
				reporting_amount, agreement_rate, reporting_rate, value_date, reference, note, recorded_by, recorded_role,
				recorded_at, batch_id)
			SELECT gen_random_uuid(), $1, 'EXPENDITURE', 'EXPENDITURE', 100.25 + i % 1000, 'EUR', 100.25 + i % 1000,
				round((100.25 + i % 1000) / 0.92, 2), 1, 0.92, date '2024-01-01' + i % 365, 'INV-' || i, '', 'bench', 'implementer',
				$2::timestamptz - interval '1 second',
				('00000000-0000-4000-8000-' || lpad(to_hex(i / $4), 12, '0'))::uuid
			FROM generate_series(1, $3) i`, w.eur.ID, w.asOf, n, per); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO audit_events (occurred_at, actor_token_id, actor_name, actor_role, actor_org_id,
				method, entity_type, entity_id, request_id, subject_orgs, change)
			SELECT $1::timestamptz - interval '1 second', 'tok-bench', 'bench', 'implementer', $3, '/tranche.v1.LedgerService/RecordTransactions',
				'transaction_batch', t.batch_id::text, 'bench-' || t.batch_id, ARRAY[$4, $3],
				'{"batchId":"' || t.batch_id || '","grantId":"' || $2::text || '","transactions":' ||
					json_agg(to_json(t) ORDER BY t.id)::text || '}'
			FROM transactions t WHERE t.batch_id IS NOT NULL AND t.grant_id = $2::uuid
			GROUP BY t.batch_id ORDER BY t.batch_id`, w.asOf, w.eur.ID, w.impl, w.donorA)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.audit.Head(ctx); err != nil { // seal
		b.Fatal(err)
	}
	if _, err := w.db.Owner.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	var events, batchEvents, eventBytes int64
	if err := w.db.Owner.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE entity_type = 'transaction_batch'),
		coalesce(sum(octet_length(change)), 0) FROM audit_events`).Scan(&events, &batchEvents, &eventBytes); err != nil {
		b.Fatal(err)
	}
	b.Logf("set-up %.1f s: %d extra journal rows, %d audit events (%d MB of change JSON), load %s",
		time.Since(setup).Seconds(), n, events, eventBytes>>20, loadavg())
	query := `SELECT t.* FROM transactions t JOIN grants g ON g.id = t.grant_id
			WHERE g.roadmap_id = '` + w.roadmapID.String() + `' ORDER BY t.value_date, t.recorded_at, t.id`
	if os.Getenv("PACK_BENCH_EXPLAIN") != "" {
		for _, wm := range []string{"", "64MB", "256MB"} {
			var plan []string
			err := pgx.BeginFunc(ctx, w.db.App, func(tx pgx.Tx) error {
				if wm != "" {
					if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '"+wm+"'"); err != nil {
						return err
					}
				}
				rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+query)
				if err != nil {
					return err
				}
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			// Stderr, not b.Logf: a benchmark's log is cut to a few lines.
			fmt.Fprintf(os.Stderr, "Transactions order plan, work_mem %q:\n%s\n", wm, strings.Join(plan, "\n"))
		}
	}
	scope := reports.Scope{RoadmapID: w.roadmapID, AsOf: w.asOf}
	// Where the time goes: each sheet's time (from the previous sheet's end)
	// and, for Transactions, the time to its first ProgressEvery rows (the
	// sort PostgreSQL does before the first row).
	var phases []string
	sheetRows := map[string]int64{}
	last := time.Now()
	src := reports.Source{DB: w.db.App, Audit: w.audit, Progress: func(sheet string, rows int64, done bool) {
		if done {
			sheetRows[sheet] = rows
		}
		if done || rows == reports.ProgressEvery {
			label := sheet
			if !done {
				label += fmt.Sprintf(" first %d rows", rows)
			}
			phases = append(phases, fmt.Sprintf("%s %.2f s", label, time.Since(last).Seconds()))
			last = time.Now()
		}
	}}
	resetPeakRSS()
	var packSecs, copySecs float64
	for b.Loop() {
		start := time.Now()
		phases, last = phases[:0], start
		if err := reports.Write(ctx, io.Discard, src, scope); err != nil {
			b.Fatal(err)
		}
		packSecs += time.Since(start).Seconds()
		// The figure is only worth something if the pack holds the rows.
		if sheetRows[reports.SheetTransactions] < int64(n) || sheetRows[reports.SheetAuditTrail] < batchEvents {
			b.Fatalf("the pack holds %d Transactions rows and %d Audit Trail rows, want at least %d and %d",
				sheetRows[reports.SheetTransactions], sheetRows[reports.SheetAuditTrail], n, batchEvents)
		}
		phases = append(phases, fmt.Sprintf("zip %.2f s", time.Since(last).Seconds()))
		b.Logf("phases: %s", strings.Join(phases, ", "))
		start = time.Now()
		conn, err := w.db.App.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		_, err = conn.Conn().PgConn().CopyTo(ctx, io.Discard, `COPY (`+query+`) TO STDOUT (FORMAT csv)`)
		conn.Release()
		if err != nil {
			b.Fatal(err)
		}
		copySecs += time.Since(start).Seconds()
	}
	rss := float64(peakRSS(b)) / (1 << 20)
	b.Logf("%d journal rows (+%d fixture), %d audit events: pack %.2f s, COPY of the journal rows %.2f s, ratio %.2f, peak RSS %.0f MB, load %s",
		n, len(w.entries), events, packSecs/float64(b.N), copySecs/float64(b.N), packSecs/copySecs, rss, loadavg())
	b.ReportMetric(float64(n), "rows")
	b.ReportMetric(packSecs/float64(b.N), "pack-s/op")
	b.ReportMetric(copySecs/float64(b.N), "copy-s/op")
	b.ReportMetric(packSecs/copySecs, "pack/copy")
	b.ReportMetric(rss, "peak-RSS-MB")
}

func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// resetPeakRSS starts VmHWM afresh (Linux: clear_refs 5), so the peak is
// the packs', not the set-up's (sealing reads whole batches of events).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// loadavg is the 1, 5 and 15 minute load average (Linux), "?" elsewhere.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
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
