package testdb

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Rate runs fn clients × perClient times, clients at a time (call i of
// client c), and returns successful calls per second. A failed call is
// reported with tb.Error and ends that client's calls.
func Rate(tb testing.TB, clients, perClient int, fn func(c, i int) error) float64 {
	var done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				if err := fn(c, i); err != nil {
					tb.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// RawInsert returns the write benchmarks' baseline: one single-row INSERT,
// in its own transaction, into a table of its own (created here), as the
// application role, the pgbench-style measure of what the database commits
// per second.
func (db *DB) RawInsert(tb testing.TB) func(c, i int) error {
	ctx := context.Background()
	if _, err := db.Owner.Exec(ctx, `CREATE TABLE bench_raw (id uuid PRIMARY KEY, v numeric NOT NULL)`); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Owner.Exec(ctx, `GRANT INSERT ON bench_raw TO `+postgres.AppRole); err != nil {
		tb.Fatal(err)
	}
	return func(int, int) error {
		_, err := db.App.Exec(ctx, `INSERT INTO bench_raw (id, v) VALUES ($1, $2)`, uuid.New(), "1.00")
		return err
	}
}
