package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// 32 clients over two connection pools (as two replicas would be) race to
// disburse 1 000.00 each against a commitment that allows exactly 10:
// exactly 10 succeed, the rest are FAILED_PRECONDITION, and the balances,
// the journal and the audit chain agree.
func TestConcurrentDisbursementsNeverExceedCommitment(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("EUR", "RACE", "10000.00")
	w.record(w.donor(g), g, "COMMITMENT", "10000.00", "EUR", "2024-02-01", "")
	second, err := postgres.Connect(context.Background(), w.db.AppURL, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	replicas := []*ledger.Store{w.l, ledger.New(second)}
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Go(func() {
			_, err := replicas[c%2].RecordTransaction(w.donor(g), ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT",
				Amount: amt("1000.00", "EUR"), ValueDate: day("2024-03-01"), Reference: fmt.Sprint("T", c)}, fmt.Sprint("race-", c))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, apperr.ErrFailedPrecondition):
				refused.Add(1)
			default:
				t.Errorf("client %d: %v", c, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 22 {
		t.Fatalf("%d succeeded, %d refused; want 10 and 22", ok.Load(), refused.Load())
	}
	r := try(w.l.Reconcile(coord, id(g.ID), time.Time{})).must(t)
	eq(t, "disbursed", r.Agreement.Disbursed, "10000.00")
	checkReplay(t, w)
	checkChain(t, w)
}

// A seeded random workload of commitments, disbursements, reversals and
// retries from concurrent clients. Afterwards the balances replay from the
// journal, no grant is over-disbursed, every request id produced exactly one
// entry, and the audit chain verifies. Set LEDGER_SEED to replay a failure.
func TestRandomWorkloadKeepsInvariants(t *testing.T) {
	t.Parallel()
	seed := uint64(rand.Int64())
	if s := os.Getenv("LEDGER_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("LEDGER_SEED=%d", seed)
	w := newWorld(t)
	grants := []ledger.Grant{w.grant("EUR", "R1", "0"), w.grant("GBP", "R2", "0"), w.grant("EUR", "R3", "0")}
	var mu sync.Mutex
	accepted := map[string]string{} // request id → transaction id
	var wg sync.WaitGroup
	for c := range 8 {
		rng := rand.New(rand.NewPCG(seed, uint64(c)))
		wg.Go(func() {
			var mine []ledger.Transaction
			for i := range 60 {
				g := grants[rng.IntN(len(grants))]
				rid := fmt.Sprintf("c%d-%d", c, i)
				in := ledger.EntryInput{GrantID: id(g.ID), ValueDate: day("2024-03-01")}
				switch k := rng.IntN(10); {
				case k < 3:
					in.Type, in.Amount = "COMMITMENT", amt(fmt.Sprintf("%d.%02d", 100+rng.IntN(5000), rng.IntN(100)), "USD")
				case k < 4 && len(mine) > 0:
					orig := mine[rng.IntN(len(mine))]
					in.GrantID, in.Type, in.ReversesID = id(orig.GrantID), "REVERSAL", id(orig.ID)
					for _, x := range grants {
						if x.ID == orig.GrantID {
							g = x
						}
					}
				default:
					in.Type, in.Amount = "DISBURSEMENT", amt(fmt.Sprintf("%d.%02d", 50+rng.IntN(3000), rng.IntN(100)), "USD")
				}
				tries := 1 + rng.IntN(3) // retries with the same request id
				var first string
				for range tries {
					tx, err := w.l.RecordTransaction(w.donor(g), in, rid)
					if err != nil {
						// A refusal is fine the first time; a retry of an accepted
						// request must answer with the original entry.
						if first != "" || !errors.Is(err, apperr.ErrFailedPrecondition) {
							t.Errorf("%s: %v", rid, err)
						}
						break
					}
					if first != "" && tx.ID != first {
						t.Errorf("%s: retry recorded a second entry", rid)
					}
					first = tx.ID
					if tx.Type != "REVERSAL" {
						mine = append(mine, tx)
					}
				}
				if first != "" {
					mu.Lock()
					accepted[rid] = first
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	var entries int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM transactions WHERE grant_id = ANY ($1::uuid[])`,
		[]string{grants[0].ID, grants[1].ID, grants[2].ID}).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	if entries != len(accepted) {
		t.Fatalf("%d journal entries for %d accepted requests", entries, len(accepted))
	}
	checkReplay(t, w)
	checkChain(t, w)
}

// checkReplay recomputes every grant's balances from its journal and compares
// them with the cached balances, and checks disbursed ≤ committed.
func checkReplay(t *testing.T, w *world) {
	t.Helper()
	rows, err := w.db.Owner.Query(context.Background(), `
		SELECT b.grant_id,
		       ARRAY[b.pledged, b.committed, b.disbursed, b.received, b.spent, b.pledged_reporting,
		             b.committed_reporting, b.disbursed_reporting, b.received_reporting, b.spent_reporting],
		       ARRAY[`+sums("agreement_amount")+`, `+sums("reporting_amount")+`]
		FROM grant_balances b LEFT JOIN transactions t ON t.grant_id = b.grant_id GROUP BY b.grant_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var cached, journal []decimal.Decimal
		if err := rows.Scan(&id, &cached, &journal); err != nil {
			t.Fatal(err)
		}
		for i := range cached {
			if !cached[i].Equal(journal[i]) {
				t.Errorf("grant %s: cached total %d is %s, the journal says %s", id, i, cached[i], journal[i])
			}
		}
		if cached[2].GreaterThan(cached[1]) {
			t.Errorf("grant %s over-disbursed: %s > %s", id, cached[2], cached[1])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// sums lists the per-bucket sums of a journal column, in balance order.
func sums(col string) string {
	var parts []string
	for _, b := range []string{"PLEDGE", "COMMITMENT", "DISBURSEMENT", "RECEIPT", "EXPENDITURE"} {
		parts = append(parts, fmt.Sprintf("coalesce(sum(t.%s) FILTER (WHERE t.bucket = '%s'), 0)", col, b))
	}
	return strings.Join(parts, ", ")
}

func checkChain(t *testing.T, w *world) {
	t.Helper()
	r, err := audit.New(w.db.App).Verify(context.Background())
	if err != nil || !r.Verified {
		t.Fatalf("audit chain: %+v %v", r, err)
	}
	var events, mutations int
	err = w.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM audit_events WHERE entity_type = 'transaction'),
		(SELECT count(*) FROM transactions)`).Scan(&events, &mutations)
	if err != nil || events != mutations {
		t.Fatalf("%d transaction events for %d entries (%v)", events, mutations, err)
	}
}

// Bad input is refused with the field named, and writes nothing.
func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "BAD", "1000.00")
	other := w.grant("EUR", "OTHER", "1000.00")
	dn := w.donor(g)
	w.record(dn, g, "COMMITMENT", "1000.00", "USD", "2024-02-01", "")
	rev := reverse(dn, w, g, w.record(dn, g, "DISBURSEMENT", "10.00", "USD", "2024-02-01", "X").ID)
	otherTx := w.record(w.donor(other), other, "COMMITMENT", "5.00", "EUR", "2024-02-01", "")
	huge := strings.Repeat("x", 1<<20)
	base := ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("10.00", "USD"), ValueDate: day("2024-03-01")}
	tests := []struct {
		name  string
		edit  func(*ledger.EntryInput)
		field string // "" for a non-field refusal
		kind  error
	}{
		{"zero", func(e *ledger.EntryInput) { e.Amount = amt("0.00", "USD") }, "amount.amount", nil},
		{"negative disbursement", func(e *ledger.EntryInput) { e.Amount = amt("-10.00", "USD") }, "amount.amount", nil},
		{"more decimals than USD has", func(e *ledger.EntryInput) { e.Amount = amt("12.345", "USD") }, "amount.amount", nil},
		{"no amount", func(e *ledger.EntryInput) { e.Amount = money.Amount{} }, "amount.currency", nil},
		{"currency without a rate", func(e *ledger.EntryInput) { e.Amount = amt("10.00", "CHF") }, "", apperr.ErrFailedPrecondition},
		{"value date years off", func(e *ledger.EntryInput) { e.ValueDate = day("2042-03-01") }, "valueDate", nil},
		{"value date in 1900", func(e *ledger.EntryInput) { e.ValueDate = day("1900-03-01") }, "valueDate", nil},
		{"no value date", func(e *ledger.EntryInput) { e.ValueDate = time.Time{} }, "valueDate", nil},
		{"unknown type", func(e *ledger.EntryInput) { e.Type = "GIFT" }, "type", nil},
		{"reversal of a reversal", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.ReversesID = "REVERSAL", money.Amount{}, id(rev.ID)
		}, "reversesTransactionId", nil},
		{"reversal of another grant's entry", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.ReversesID = "REVERSAL", money.Amount{}, id(otherTx.ID)
		}, "reversesTransactionId", nil},
		{"reversal of an unknown entry", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.ReversesID = "REVERSAL", money.Amount{}, id("01a2195f-dc3c-70c2-82d7-4f0ad8a83b00")
		}, "reversesTransactionId", nil},
		{"reversal for another amount", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.ReversesID = "REVERSAL", amt("1.00", "USD"), id(rev.ReversesID)
		}, "amount", nil},
		{"reversal with a rate of its own", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.ReversesID, e.FxRate = "REVERSAL", money.Amount{}, id(rev.ReversesID), rate("7")
		}, "fxRate", nil},
		{"unknown grant", func(e *ledger.EntryInput) { e.GrantID = id("01a2195f-dc3c-70c2-82d7-4f0ad8a83b00") }, "", apperr.ErrNotFound},
		{"no grant", func(e *ledger.EntryInput) { e.GrantID = uuid.Nil }, "grantId", nil},
		{"unknown milestone", func(e *ledger.EntryInput) { e.MilestoneID = id("01a2195f-dc3c-70c2-82d7-4f0ad8a83b00") }, "milestoneId", nil},
		{"1 MB note", func(e *ledger.EntryInput) { e.Note = huge }, "note", nil},
		{"1 MB reference", func(e *ledger.EntryInput) { e.Reference = huge }, "reference", nil},
		{"NUL in note", func(e *ledger.EntryInput) { e.Note = "a\x00b" }, "note", nil},
		{"over-disbursement", func(e *ledger.EntryInput) { e.Amount = amt("1000.01", "USD") }, "", apperr.ErrFailedPrecondition},
		{"negative fx rate", func(e *ledger.EntryInput) { e.FxRate = rate("-1") }, "fxRate", nil},
		{"fx rate 1e-31", func(e *ledger.EntryInput) { e.FxRate = rate("0.0000000000000000000000000000001") }, "fxRate", nil},
		{"fx rate 1e15", func(e *ledger.EntryInput) { e.FxRate = rate("1000000000000000") }, "fxRate", nil},
	}
	count := func() (n int) {
		if err := w.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM idempotency_keys)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for i, tc := range tests {
		in := base
		tc.edit(&in)
		_, err := w.l.RecordTransaction(dn, in, fmt.Sprint("bad-", i))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if tc.field != "" {
			var inv *apperr.InvalidError
			if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != tc.field {
				t.Errorf("%s: got %v, want a violation on %s", tc.name, err, tc.field)
			}
		} else if !errors.Is(err, tc.kind) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.kind)
		}
	}
	if after := count(); after != before {
		t.Fatalf("refused requests wrote %d rows", after-before)
	}
	// SQL metacharacters in text are stored as data.
	in := base
	in.Note, in.Reference = "'; DELETE FROM transactions; --", `Robert"); DROP TABLE grants;--`
	tx := try(w.l.RecordTransaction(dn, in, "meta")).must(t)
	back := try3(w.l.ListTransactions(dn, id(g.ID), "DISBURSEMENT", 10, "")).must(t)
	found := false
	for _, x := range back {
		found = found || (x.ID == tx.ID && x.Note == in.Note && x.Reference == in.Reference)
	}
	if !found {
		t.Fatal("metacharacters did not round-trip")
	}
}

func TestRolesOnLedger(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	eu := w.grant("EUR", "EU-1", "1000.00")
	uk := w.grant("GBP", "UK-1", "1000.00")
	w.record(w.donor(eu), eu, "COMMITMENT", "1000.00", "EUR", "2024-02-01", "")
	stranger := try(orgImpl(w, "Other NGO")).must(t)
	euDonor, ukDonor := w.donor(eu), w.donor(uk)
	impl, otherImpl := w.implementer(), as(auth.Implementer, stranger)
	auditor := as(auth.Auditor, "")
	rec := func(ctx context.Context, typ string) error {
		_, err := w.l.RecordTransaction(ctx, ledger.EntryInput{GrantID: id(eu.ID), Type: typ, Amount: amt("1.00", "EUR"),
			ValueDate: day("2024-03-01"), Reference: "R"}, w.req())
		return err
	}
	read := func(ctx context.Context) error { _, err := w.l.GetGrant(ctx, id(eu.ID)); return err }
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"own donor reads", read(euDonor), nil},
		{"other donor reads", read(ukDonor), apperr.ErrNotFound},
		{"recipient reads", read(impl), nil},
		{"other implementer reads", read(otherImpl), apperr.ErrNotFound},
		{"auditor reads", read(auditor), nil},
		{"coordinator reads", read(coord), nil},
		{"own donor disburses", rec(euDonor, "DISBURSEMENT"), nil},
		{"other donor disburses", rec(ukDonor, "DISBURSEMENT"), apperr.ErrNotFound},
		{"donor records a receipt", rec(euDonor, "RECEIPT"), apperr.ErrPermissionDenied},
		{"recipient records a receipt", rec(impl, "RECEIPT"), nil},
		{"recipient disburses", rec(impl, "DISBURSEMENT"), apperr.ErrPermissionDenied},
		{"other implementer records", rec(otherImpl, "RECEIPT"), apperr.ErrNotFound},
		{"auditor records", rec(auditor, "PLEDGE"), apperr.ErrPermissionDenied},
		{"coordinator records", rec(coord, "PLEDGE"), apperr.ErrPermissionDenied},
		{"donor creates a roadmap", func() error {
			_, err := w.roadmaps.Create(euDonor, roadmap.Input{Country: "AFG", Title: "x", StartDate: day("2024-01-01"), EndDate: day("2024-12-31"), ReportingCurrency: "USD"}, "r")
			return err
		}(), apperr.ErrPermissionDenied},
		{"donor creates another donor's grant", func() error {
			_, err := w.l.CreateGrant(ukDonor, ledger.GrantInput{RoadmapID: id(w.roadmap.ID), DonorOrgID: id(eu.DonorOrgID), RecipientOrgID: id(w.impl),
				Reference: "X", Title: "x", Currency: "EUR", Pledged: amt("1.00", "EUR"), StartDate: day("2024-01-01"), EndDate: day("2024-12-31")}, "g")
			return err
		}(), apperr.ErrPermissionDenied},
		{"other donor sets allocations", func() error {
			_, err := w.l.SetAllocations(ukDonor, id(eu.ID), nil, "a")
			return err
		}(), apperr.ErrNotFound},
		{"other donor reconciles", func() error { _, err := w.l.Reconcile(ukDonor, id(eu.ID), time.Time{}); return err }(), apperr.ErrNotFound},
		{"other donor lists transactions", func() error { _, _, err := w.l.ListTransactions(ukDonor, id(eu.ID), "", 10, ""); return err }(), apperr.ErrNotFound},
		{"implementer reports progress on its milestone", func() error {
			_, err := w.roadmaps.ReportProgress(impl, id(w.m1.ID), d("1000"), day("2024-05-01"), "", "p1")
			return err
		}(), nil},
		{"other implementer reports progress", func() error {
			_, err := w.roadmaps.ReportProgress(otherImpl, id(w.m1.ID), d("1000"), day("2024-05-01"), "", "p2")
			return err
		}(), apperr.ErrPermissionDenied},
		{"donor changes milestone status", func() error {
			_, err := w.roadmaps.SetStatus(euDonor, id(w.m1.ID), "COMPLETED", "", "s1")
			return err
		}(), apperr.ErrPermissionDenied},
		{"coordinator changes milestone status", func() error {
			_, err := w.roadmaps.SetStatus(coord, id(w.m1.ID), "IN_PROGRESS", "", "s2")
			return err
		}(), nil},
	}
	for _, tc := range tests {
		if (tc.want == nil) != (tc.err == nil) || (tc.want != nil && !errors.Is(tc.err, tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// A donor's listing shows only its own grants.
	list := try3(w.l.ListGrants(ukDonor, ledger.GrantFilter{})).must(t)
	if len(list) != 1 || list[0].ID != uk.ID {
		t.Fatalf("UK donor lists %d grants", len(list))
	}
}
