package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
)

// Writes committed in one group share a transaction, but a refused or
// replayed write changes nothing while the others stand, and the group's
// writes see each other in order.
func TestGroupedWritesStandApart(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	g1 := w.grant("USD", "G1", "0")
	g2 := w.grant("USD", "G2", "0")
	w.record(w.donor(g1), g1, "COMMITMENT", "100.00", "USD", "2024-02-01", "")
	w.record(w.donor(g2), g2, "COMMITMENT", "50.00", "USD", "2024-02-01", "")
	earlier := ledger.EntryInput{GrantID: id(g2.ID), Type: "DISBURSEMENT", Amount: amt("10.00", "USD"), ValueDate: day("2024-03-01"), Reference: "T-0"}
	admin := as(auth.Admin, "")
	// Request ids are the caller's own: the earlier write is the admin's too.
	first := try(w.l.RecordTransaction(admin, earlier, "earlier")).must(t)

	outcomes := try(w.l.RecordAsOneGroup(admin, []ledger.EntryInput{
		{GrantID: id(g1.ID), Type: "DISBURSEMENT", Amount: amt("60.00", "USD"), ValueDate: day("2024-03-01"), Reference: "T-1"},
		{GrantID: id(g1.ID), Type: "DISBURSEMENT", Amount: amt("60.00", "USD"), ValueDate: day("2024-03-02"), Reference: "T-2"}, // 120 > 100
		earlier, // the same request id again
		{GrantID: id(g2.ID), Type: "DISBURSEMENT", Amount: amt("40.00", "USD"), ValueDate: day("2024-03-03"), Reference: "T-3"}, // 10 + 40 = 50
	}, []string{"g-1", "g-2", "earlier", "g-3"})).must(t)
	want := []ledger.GroupRow{{Outcome: "RECORDED"}, {Outcome: "REFUSED"}, {Outcome: "REPLAY", PriorEntityID: first.ID}, {Outcome: "RECORDED"}}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("answers %v, want %v", outcomes, want)
	}
	var refs string
	var disb1, disb2 string
	var claims, events int
	if err := w.db.Owner.QueryRow(ctx, `SELECT string_agg(reference, ',' ORDER BY reference) FROM transactions WHERE type = 'DISBURSEMENT'`).Scan(&refs); err != nil {
		t.Fatal(err)
	}
	if refs != "T-0,T-1,T-3" {
		t.Errorf("disbursements in the journal: %s, want T-0,T-1,T-3", refs)
	}
	if err := w.db.Owner.QueryRow(ctx, `SELECT (SELECT disbursed::text FROM grant_balances WHERE grant_id = $1),
			(SELECT disbursed::text FROM grant_balances WHERE grant_id = $2),
			(SELECT count(*) FROM idempotency_keys WHERE request_id IN ('g-1', 'g-2', 'g-3', 'earlier')),
			(SELECT count(*) FROM audit_events WHERE entity_type = 'transaction' AND change LIKE '%"reference":"T-%')`,
		g1.ID, g2.ID).Scan(&disb1, &disb2, &claims, &events); err != nil {
		t.Fatal(err)
	}
	eq(t, "G1 disbursed", d(disb1), "60.00")
	eq(t, "G2 disbursed", d(disb2), "50.00")
	if claims != 3 || events != 3 {
		t.Errorf("%d request-id claims and %d audit events for T-0..T-3, want 3 and 3 (the refused write leaves neither)", claims, events)
	}

	// A write the database rejects outright fails its whole group, and
	// nothing of the group is written (RecordTransaction then retries each
	// write alone). Here another transaction holds the claim of request id
	// g-5 and commits it while the group waits on it.
	blocker := try(w.db.Owner.Begin(ctx)).must(t)
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `INSERT INTO idempotency_keys (scope, method, request_id, payload_sha256, entity_id)
		VALUES ('token:tok-admin', 'RecordTransaction', 'g-5', '\x00', 'elsewhere')`); err != nil {
		t.Fatal(err)
	}
	// The group runs in grant id order: the write that would succeed goes
	// first, so a group split into two transactions would leave it behind.
	lo, hi := g1, g2
	if hi.ID < lo.ID {
		lo, hi = hi, lo
	}
	var groupErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, groupErr = w.l.RecordAsOneGroup(admin, []ledger.EntryInput{
			{GrantID: id(hi.ID), Type: "EXPENDITURE", Amount: amt("1.00", "USD"), ValueDate: day("2024-03-05"), Reference: "INV-5"},
			{GrantID: id(lo.ID), Type: "EXPENDITURE", Amount: amt("1.00", "USD"), ValueDate: day("2024-03-05"), Reference: "INV-4"},
		}, []string{"g-5", "g-4"})
	})
	waitForLockWait(t, w)
	if err := blocker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if groupErr == nil {
		t.Fatal("the group committed although one of its claims was taken meanwhile")
	}
	var n int
	var spent string
	if err := w.db.Owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM transactions WHERE reference IN ('INV-4', 'INV-5')),
		(SELECT spent::text FROM grant_balances WHERE grant_id = $1)`, lo.ID).Scan(&n, &spent); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d entries of the failed group were written", n)
	}
	eq(t, "spent after the failed group", d(spent), "0")
}

// waitForLockWait returns once some session of the test database waits for a
// lock.
func waitForLockWait(t *testing.T, w *world) {
	t.Helper()
	for range 500 {
		var waiting bool
		if err := w.db.Owner.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no session ever waited for the lock")
}

// Rates are cached in each server; a rate added since, by another server,
// must still be used by the next entry it applies to, on the single and the
// batch path alike.
func TestNewRatesReachCachedServers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("EUR", "FX", "0")
	w.record(w.donor(g), g, "COMMITMENT", "1000.00", "EUR", "2024-02-01", "") // fills the cache
	other := fx.New(w.db.App)                                                 // another server's rate writer
	try(other.Create(coord, []fx.RateInput{{Currency: "EUR", QuoteCurrency: "USD", Date: day("2024-03-01"), Rate: d("0.80")}})).must(t)
	tx := w.record(w.donor(g), g, "DISBURSEMENT", "100.00", "EUR", "2024-03-15", "D-1")
	eq(t, "disbursement in USD", tx.ReportingAmount, "125.00") // 100 / 0.80, not 100 / 0.90
	eq(t, "rate used", tx.ReportingRate, "0.80")

	try(other.Create(coord, []fx.RateInput{{Currency: "EUR", QuoteCurrency: "USD", Date: day("2024-04-01"), Rate: d("0.50"), ConfirmLargeChange: true}})).must(t)
	got := try(w.l.BatchRecord(w.donor(g), []ledger.EntryInput{{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("100.00", "EUR"), ValueDate: day("2024-04-02"), Reference: "D-2"}}, "fx-batch")).must(t)
	eq(t, "batch disbursement in USD", got[0].ReportingAmount, "200.00") // 100 / 0.50

	// An entry dated before the new rates still converts at the rate of its date.
	old := w.record(w.donor(g), g, "DISBURSEMENT", "90.00", "EUR", "2024-02-15", "D-3")
	eq(t, "earlier-dated disbursement in USD", old.ReportingAmount, "100.00") // 90 / 0.90
}

// An entry is reversed at most once, also when many try at the same time
// (in one group or in several): exactly one reversal is recorded, the others
// are refused and write nothing.
func TestEntryIsReversedOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "REV", "0")
	w.record(w.donor(g), g, "COMMITMENT", "100.00", "USD", "2024-02-01", "")
	paid := w.record(w.donor(g), g, "DISBURSEMENT", "40.00", "USD", "2024-03-01", "P-1")
	rev := ledger.EntryInput{GrantID: id(g.ID), Type: "REVERSAL", ReversesID: id(paid.ID), ValueDate: day("2024-05-01")}
	first := try(w.l.RecordTransaction(w.donor(g), rev, "rev-1")).must(t)
	// A retry of the reversal itself answers with it; it is not "already reversed".
	if again := try(w.l.RecordTransaction(w.donor(g), rev, "rev-1")).must(t); again.ID != first.ID {
		t.Fatalf("retried reversal returned %s, want %s", again.ID, first.ID)
	}
	_, err := w.l.RecordTransaction(w.donor(g), ledger.EntryInput{GrantID: id(g.ID), Type: "REVERSAL", ReversesID: id(paid.ID), ValueDate: day("2024-05-01")}, "again")
	if !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("second reversal: %v, want FAILED_PRECONDITION", err)
	}

	other := w.record(w.donor(g), g, "DISBURSEMENT", "30.00", "USD", "2024-03-02", "P-2")
	const tries = 12
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			_, errs[i] = w.l.RecordTransaction(w.donor(g), ledger.EntryInput{GrantID: id(g.ID), Type: "REVERSAL", ReversesID: id(other.ID),
				ValueDate: day("2024-05-01")}, fmt.Sprint("race-", i))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, apperr.ErrFailedPrecondition):
			t.Errorf("concurrent reversal: %v, want success or FAILED_PRECONDITION", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent reversals succeeded, want 1", ok)
	}
	var reversals int
	var disbursed string
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM transactions WHERE type = 'REVERSAL'),
		(SELECT disbursed::text FROM grant_balances WHERE grant_id = $1)`, g.ID).Scan(&reversals, &disbursed); err != nil {
		t.Fatal(err)
	}
	if reversals != 2 {
		t.Errorf("%d reversals in the journal, want 2", reversals)
	}
	eq(t, "disbursed after both reversals", d(disbursed), "0.00") // 40 + 30 − 40 − 30
}

// Writers on a small pool, single and batched, keep going while rates are
// added under them (each addition makes every cached table stale): a refresh
// of the FX cache must never wait for a connection while blocking writers
// that hold one.
func TestSmallPoolKeepsMovingWhileRatesChange(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("EUR", "POOL", "0")
	w.record(w.donor(g), g, "COMMITMENT", "1000000.00", "EUR", "2024-02-01", "")
	cfg := w.db.App.Config().Copy()
	cfg.MaxConns, cfg.MinConns = 2, 0
	pool := try(pgxpool.NewWithConfig(context.Background(), cfg)).must(t)
	defer pool.Close()
	l := ledger.New(pool)
	ctx, cancel := context.WithTimeout(w.donor(g), time.Minute)
	defer cancel()
	rates := fx.New(w.db.App)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		for i := range 20 {
			date := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i)
			if _, err := rates.Create(coord, []fx.RateInput{{Currency: "EUR", QuoteCurrency: "USD", Date: date, Rate: d("0.9" + fmt.Sprint(i%10))}}); err != nil {
				errs <- err
				return
			}
		}
	})
	for c := range 4 {
		wg.Go(func() {
			for i := range 15 {
				in := ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("1.00", "EUR"), ValueDate: day("2024-03-01"),
					Reference: fmt.Sprint("S", c, "-", i)}
				if _, err := l.RecordTransaction(ctx, in, fmt.Sprint("s-", c, "-", i)); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 15 {
				in := ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("1.00", "EUR"), ValueDate: day("2024-03-01"),
					Reference: fmt.Sprint("B", c, "-", i)}
				if _, err := l.BatchRecord(ctx, []ledger.EntryInput{in}, fmt.Sprint("b-", c, "-", i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM transactions WHERE grant_id = $1 AND type = 'DISBURSEMENT'`, g.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 120 {
		t.Errorf("%d disbursements recorded, want 120", n)
	}
}
