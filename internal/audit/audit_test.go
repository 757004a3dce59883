package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func coordinator() context.Context {
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-1", Name: "coord", Role: auth.Coordinator})
	return audit.WithCall(ctx, audit.Call{Method: "/test/Create", RequestID: "x"})
}

// mutate creates n organisations, each one audited mutation.
// mutate makes n audited changes; it may run on a goroutine of its own, so
// it reports with Error and stops.
func mutate(t testing.TB, db *testdb.DB, n int, prefix string) {
	t.Helper()
	s := org.New(db.App)
	for i := range n {
		name := fmt.Sprintf("%s %d | with a pipe", prefix, i)
		if _, err := s.Create(coordinator(), org.Organization{Name: name, Kind: "DONOR"}, prefix+fmt.Sprint(i)); err != nil {
			t.Error(err)
			return
		}
	}
}

func verify(t *testing.T, db *testdb.DB) audit.Result {
	t.Helper()
	r, err := audit.New(db.App).Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tamper runs SQL as the superuser with triggers disabled, as an attacker
// with database access would.
func tamper(t *testing.T, db *testdb.DB, stmts ...string) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), db.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(context.Background(), s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestChainVerifies(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	mutate(t, db, 25, "org")
	r := verify(t, db)
	if !r.Verified || r.EventsChecked != 25 || r.HeadSeq != 25 || r.Unsealed != 0 || len(r.HeadHash) != 32 {
		t.Fatalf("clean chain: %+v", r)
	}
	// A second verification changes nothing and reports the same head.
	r2 := verify(t, db)
	if string(r2.HeadHash) != string(r.HeadHash) {
		t.Fatal("head changed between verifications")
	}
}

func TestTamperingIsDetected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stmts   []string
		badSeq  int64
		problem string
	}{
		{"payload changed", []string{
			`UPDATE audit_events SET change = replace(change, 'org 2 ', 'org 9 ') WHERE seq = 3`}, 3, audit.HashMismatch},
		{"payload changed to an equivalent delimiter split", []string{
			`UPDATE audit_events SET actor_name = 'coord|', method = substr(method, 2) WHERE seq = 6`}, 6, audit.HashMismatch},
		{"payload reformatted only", []string{
			`UPDATE audit_events SET change = change || ' ' WHERE seq = 2`}, 2, audit.HashMismatch},
		{"actor changed", []string{
			`UPDATE audit_events SET actor_role = 'admin' WHERE seq = 8`}, 8, audit.HashMismatch},
		{"event deleted", []string{
			`DELETE FROM audit_events WHERE seq = 4`}, 4, audit.Gap},
		{"two events swapped", []string{
			`UPDATE audit_events SET seq = -5 WHERE seq = 5`,
			`UPDATE audit_events SET seq = 5 WHERE seq = 6`,
			`UPDATE audit_events SET seq = 6 WHERE seq = -5`}, 5, audit.Reordered},
		{"hash altered", []string{
			`UPDATE audit_events SET hash = sha256('forged') WHERE seq = 7`}, 7, audit.HashMismatch},
		{"chain rewritten from an event on", []string{
			`UPDATE audit_events SET prev_hash = sha256('x') WHERE seq = 9`}, 9, audit.BrokenLink},
		{"first event changed", []string{
			`UPDATE audit_events SET entity_id = 'other' WHERE seq = 1`}, 1, audit.HashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			mutate(t, db, 10, "org")
			if r := verify(t, db); !r.Verified {
				t.Fatalf("before tampering: %+v", r)
			}
			tamper(t, db, tc.stmts...)
			r := verify(t, db)
			if r.Verified || r.FirstBadSeq != tc.badSeq || r.Problem != tc.problem {
				t.Fatalf("got verified=%v first bad %d %s (%s), want %d %s", r.Verified, r.FirstBadSeq, r.Problem, r.Detail, tc.badSeq, tc.problem)
			}
			if r.EventsChecked != tc.badSeq-1 {
				t.Fatalf("checked %d events before the bad one, want %d", r.EventsChecked, tc.badSeq-1)
			}
		})
	}
}

func TestApplicationRoleCannotRewriteHistory(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	mutate(t, db, 3, "org")
	verify(t, db)
	ctx := context.Background()
	for _, stmt := range []string{
		`UPDATE audit_events SET change = '{}' WHERE seq = 1`,
		`UPDATE audit_events SET seq = NULL, hash = NULL, prev_hash = NULL WHERE seq = 3`,
		`DELETE FROM audit_events WHERE seq = 2`,
		`TRUNCATE audit_events`,
		`UPDATE idempotency_keys SET entity_id = 'x'`,
		`DELETE FROM idempotency_keys`,
		`UPDATE organizations SET name = 'x'`,
		`DELETE FROM organizations`,
		`SELECT audit_seal(ARRAY[1]::bigint[], ARRAY[1]::bigint[], ARRAY['\x00'::bytea], ARRAY['\x00'::bytea])`,
		`SET session_replication_role = replica`,
	} {
		if _, err := db.App.Exec(ctx, stmt); err == nil {
			t.Errorf("application role was allowed: %s", stmt)
		}
	}
	// Even the owner, without bypassing triggers, cannot change sealed events.
	for _, stmt := range []string{
		`UPDATE audit_events SET change = '{}' WHERE seq = 1`,
		`DELETE FROM audit_events WHERE seq = 2`,
		`TRUNCATE audit_events`,
	} {
		if _, err := db.Owner.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("owner: %s: %v", stmt, err)
		}
	}
	if r := verify(t, db); !r.Verified || r.EventsChecked != 3 {
		t.Fatalf("after refused attempts: %+v", r)
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("8 000 mutations")
	}
	db := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	sealer := audit.NewSealer(db.App)
	sealer.Interval = 5 * time.Millisecond
	sealer.BatchSize = 300 // many small batches interleave with the writers
	sealed := make(chan struct{})
	go func() { sealer.Run(ctx); close(sealed) }()
	// A second sealer, as a second replica would run.
	other := audit.NewSealer(db.App)
	other.Interval = 7 * time.Millisecond
	otherDone := make(chan struct{})
	go func() { other.Run(ctx); close(otherDone) }()

	const writers, each = 16, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { mutate(t, db, each, fmt.Sprintf("w%d-", w)) })
	}
	wg.Wait()
	cancel()
	<-sealed
	<-otherDone
	r := verify(t, db)
	if !r.Verified || r.EventsChecked != writers*each || r.HeadSeq != writers*each || r.Unsealed != 0 {
		t.Fatalf("after %d mutations: %+v", writers*each, r)
	}
	var n, distinct, maxSeq int64
	if err := db.Owner.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT seq), max(seq) FROM audit_events`).Scan(&n, &distinct, &maxSeq); err != nil {
		t.Fatal(err)
	}
	if n != writers*each || distinct != n || maxSeq != n {
		t.Fatalf("events %d, distinct seqs %d, max seq %d; want %d each", n, distinct, maxSeq, writers*each)
	}
}

// TestListFiltersAndPages covers the filters and paging; who sees what is
// TestListVisibility's.
func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	a, err := s.Create(coordinator(), org.Organization{Name: "Donor A", Kind: "DONOR"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(coordinator(), org.Organization{Name: "Donor B", Kind: "DONOR"}, "b"); err != nil {
		t.Fatal(err)
	}
	store := audit.New(db.App)
	list := func(p auth.Principal, f audit.Filter) ([]audit.Event, error) {
		ev, _, err := store.List(auth.WithPrincipal(context.Background(), p), f)
		return ev, err
	}
	all, err := list(auth.Principal{Role: auth.Auditor}, audit.Filter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("auditor sees %d events (%v), want 2", len(all), err)
	}
	mine, err := list(auth.Principal{Role: auth.Donor, OrgID: a.ID}, audit.Filter{})
	if err != nil || len(mine) != 2 {
		t.Fatalf("donor A sees %+v (%v), want both organisations (every role reads organisations)", mine, err)
	}
	byEntity, err := list(auth.Principal{Role: auth.Coordinator}, audit.Filter{EntityType: "organization", EntityID: a.ID})
	if err != nil || len(byEntity) != 1 {
		t.Fatalf("filter by entity: %d (%v)", len(byEntity), err)
	}
	// A UUID in upper case names the same entity.
	if upper, err := list(auth.Principal{Role: auth.Coordinator}, audit.Filter{EntityType: "organization", EntityID: strings.ToUpper(a.ID)}); err != nil || len(upper) != 1 {
		t.Fatalf("filter by entity, id in upper case: %d (%v)", len(upper), err)
	}
	var inv *apperr.InvalidError
	if _, err := list(auth.Principal{Role: auth.Coordinator}, audit.Filter{EntityID: a.ID}); !errors.As(err, &inv) || inv.Violations[0].Field != "entityType" {
		t.Fatalf("entityId without entityType: %v, want INVALID_ARGUMENT naming entityType", err)
	}
	future, err := list(auth.Principal{Role: auth.Coordinator}, audit.Filter{From: time.Now().Add(time.Hour)})
	if err != nil || len(future) != 0 {
		t.Fatalf("time filter: %d (%v)", len(future), err)
	}
	if _, err := list(auth.Principal{}, audit.Filter{}); err == nil {
		t.Fatal("no principal may list")
	}
	page1, next, err := store.List(auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Auditor}), audit.Filter{PageSize: 1})
	if err != nil || len(page1) != 1 || next == "" {
		t.Fatalf("page 1: %d %q %v", len(page1), next, err)
	}
	page2, next2, err := store.List(auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Auditor}), audit.Filter{PageSize: 1, PageToken: next})
	if err != nil || len(page2) != 1 || next2 != "" || page2[0].ID == page1[0].ID {
		t.Fatalf("page 2: %+v %q %v", page2, next2, err)
	}
	for _, token := range []string{"%%", paging.Token("x"), paging.Token(uuid.NewString())} {
		var inv *apperr.InvalidError
		if _, _, err := store.List(auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Auditor}), audit.Filter{PageToken: token}); !errors.As(err, &inv) || inv.Violations[0].Field != "pageToken" {
			t.Errorf("page token %q: %v, want INVALID_ARGUMENT naming pageToken", token, err)
		}
	}
}

// An event never exists without its change: a transaction that fails after
// recording leaves neither.
func TestFailedMutationLeavesNoEvent(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := coordinator()
	err := postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
		if err := audit.Record(ctx, tx, audit.Entry{EntityType: "x", EntityID: "1", Change: map[string]string{"a": "b"}}); err != nil {
			return err
		}
		return fmt.Errorf("the change failed")
	})
	if err == nil {
		t.Fatal("expected failure")
	}
	var n int
	if err := db.Owner.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d events after a failed mutation (%v)", n, err)
	}
}
