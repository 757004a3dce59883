package reports

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// A pack's snapshot waits for every write transaction open when a recent
// as-of was taken (its rows are dated by its start and could commit after
// the snapshot).
func TestSettleWaitsForEarlierWriters(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	src := Source{DB: db.App}
	writer := func() func(commit bool) {
		tx, err := db.App.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })                       // also when the test fails first
		if _, err := tx.Exec(ctx, `SELECT txid_current()`); err != nil { // it has written: it has a transaction id
			t.Fatal(err)
		}
		return func(commit bool) {
			if commit {
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			_ = tx.Rollback(ctx)
		}
	}

	early := writer()
	time.Sleep(2 * time.Millisecond)
	asOf, err := src.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type settled struct {
		at  time.Time
		err error
	}
	done := make(chan settled, 1)
	go func() {
		tx, err := settle(ctx, src, asOf, time.Minute)
		if err == nil {
			_ = tx.Rollback(ctx)
		}
		done <- settled{time.Now(), err}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case s := <-done:
		t.Fatalf("settled (err %v) while a writer that began before as-of is open", s.err)
	default:
	}
	committed := time.Now()
	early(true)
	if s := <-done; s.err != nil || s.at.Before(committed) {
		t.Fatalf("settled at %s (err %v), the writer committed at %s", s.at, s.err, committed)
	}

	// For an as-of older than the wait, nothing is waited for (a writer
	// open since then would have to be open longer than the wait); a writer
	// open since before a recent as-of makes the pack fail, retryable.
	late := writer()
	defer late(false)
	time.Sleep(250 * time.Millisecond)
	tx, err := settle(ctx, src, asOf, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("an open writer held back a pack as of more than the wait ago: %v", err)
	}
	_ = tx.Rollback(ctx)
	later, err := src.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := settle(ctx, src, later, 200*time.Millisecond); !errors.Is(err, apperr.ErrAborted) {
		t.Fatalf("a writer open since before as-of: %v, want ErrAborted", err)
	}
	late(false)

	// A writer in another database of the cluster is none of the pack's.
	other := testdb.New(t)
	tx2, err := other.App.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx2.Rollback(ctx) })
	if _, err := tx2.Exec(ctx, `SELECT txid_current()`); err != nil {
		t.Fatal(err)
	}
	now, err := src.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err = settle(ctx, src, now, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("a writer of another database held the pack back: %v", err)
	}
	_ = tx.Rollback(ctx)
}
