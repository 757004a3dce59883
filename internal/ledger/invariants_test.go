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

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/postgres"
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
			_, err := replicas[c%2].RecordTransaction(w.donor(g), ledger.EntryInput{GrantID: g.ID, Type: "DISBURSEMENT",
				Amount: "1000.00", Currency: "EUR", ValueDate: "2024-03-01", Reference: fmt.Sprint("T", c)}, fmt.Sprint("race-", c))
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
	r := must(w.l.Reconcile(coord, g.ID, time.Time{}))
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
				in := ledger.EntryInput{GrantID: g.ID, Currency: g.Currency, ValueDate: "2024-03-01"}
				switch k := rng.IntN(10); {
				case k < 3:
					in.Type, in.Amount = "COMMITMENT", fmt.Sprintf("%d.%02d", 100+rng.IntN(5000), rng.IntN(100))
				case k < 4 && len(mine) > 0:
					orig := mine[rng.IntN(len(mine))]
					in.GrantID, in.Type, in.ReversesID = orig.GrantID, "REVERSAL", orig.ID
					for _, x := range grants {
						if x.ID == orig.GrantID {
							g = x
						}
					}
				default:
					in.Type, in.Amount = "DISBURSEMENT", fmt.Sprintf("%d.%02d", 50+rng.IntN(3000), rng.IntN(100))
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
	base := ledger.EntryInput{GrantID: g.ID, Type: "DISBURSEMENT", Amount: "10.00", Currency: "USD", ValueDate: "2024-03-01"}
	tests := []struct {
		name  string
		edit  func(*ledger.EntryInput)
		field string // "" for a non-field refusal
		kind  error
	}{
		{"zero", func(e *ledger.EntryInput) { e.Amount = "0.00" }, "transaction.amount.amount", nil},
		{"negative disbursement", func(e *ledger.EntryInput) { e.Amount = "-10.00" }, "transaction.amount.amount", nil},
		{"exponent", func(e *ledger.EntryInput) { e.Amount = "1e3" }, "transaction.amount.amount", nil},
		{"too many decimals for USD", func(e *ledger.EntryInput) { e.Amount = "12.345" }, "transaction.amount.amount", nil},
		{"NaN", func(e *ledger.EntryInput) { e.Amount = "NaN" }, "transaction.amount.amount", nil},
		{"40 digits", func(e *ledger.EntryInput) { e.Amount = strings.Repeat("9", 40) }, "transaction.amount.amount", nil},
		{"unknown currency", func(e *ledger.EntryInput) { e.Currency = "ZZZ" }, "transaction.amount.currency", nil},
		{"currency without a rate", func(e *ledger.EntryInput) { e.Currency = "CHF" }, "", apperr.ErrFailedPrecondition},
		{"value date years off", func(e *ledger.EntryInput) { e.ValueDate = "2042-03-01" }, "transaction.valueDate", nil},
		{"malformed date", func(e *ledger.EntryInput) { e.ValueDate = "01/03/2024" }, "transaction.valueDate", nil},
		{"unknown type", func(e *ledger.EntryInput) { e.Type = "GIFT" }, "transaction.type", nil},
		{"reversal of a reversal", func(e *ledger.EntryInput) { e.Type, e.Amount, e.Currency, e.ReversesID = "REVERSAL", "", "", rev.ID }, "transaction.reversesTransactionId", nil},
		{"reversal of another grant's entry", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.Currency, e.ReversesID = "REVERSAL", "", "", otherTx.ID
		}, "transaction.reversesTransactionId", nil},
		{"reversal of an unknown entry", func(e *ledger.EntryInput) {
			e.Type, e.Amount, e.Currency, e.ReversesID = "REVERSAL", "", "", "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00"
		}, "transaction.reversesTransactionId", nil},
		{"unknown grant", func(e *ledger.EntryInput) { e.GrantID = "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00" }, "", apperr.ErrNotFound},
		{"malformed grant id", func(e *ledger.EntryInput) { e.GrantID = "1; DROP TABLE transactions" }, "transaction.grantId", nil},
		{"unknown milestone", func(e *ledger.EntryInput) { e.MilestoneID = "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00" }, "transaction.milestoneId", nil},
		{"1 MB note", func(e *ledger.EntryInput) { e.Note = huge }, "transaction.note", nil},
		{"1 MB reference", func(e *ledger.EntryInput) { e.Reference = huge }, "transaction.reference", nil},
		{"over-disbursement", func(e *ledger.EntryInput) { e.Amount = "1000.01" }, "", apperr.ErrFailedPrecondition},
		{"negative fx rate", func(e *ledger.EntryInput) { e.FxRate = "-1" }, "transaction.fxRate", nil},
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
			if !errors.As(err, &inv) || inv.Violations[0].Field != tc.field {
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
	tx := must(w.l.RecordTransaction(dn, in, "meta"))
	back := must3(w.l.ListTransactions(dn, g.ID, "DISBURSEMENT", 10, ""))
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
	stranger := must(orgImpl(w, "Other NGO"))
	euDonor, ukDonor := w.donor(eu), w.donor(uk)
	impl, otherImpl := w.implementer(), as(auth.Implementer, stranger)
	auditor := as(auth.Auditor, "")
	rec := func(ctx context.Context, typ string) error {
		_, err := w.l.RecordTransaction(ctx, ledger.EntryInput{GrantID: eu.ID, Type: typ, Amount: "1.00", Currency: "EUR",
			ValueDate: "2024-03-01", Reference: "R"}, w.req())
		return err
	}
	read := func(ctx context.Context) error { _, err := w.l.GetGrant(ctx, eu.ID); return err }
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
			_, err := w.l.CreateRoadmap(euDonor, ledger.RoadmapInput{Country: "AFG", Title: "x", StartDate: "2024-01-01", EndDate: "2024-12-31", ReportingCurrency: "USD"}, "r")
			return err
		}(), apperr.ErrPermissionDenied},
		{"donor creates another donor's grant", func() error {
			_, err := w.l.CreateGrant(ukDonor, ledger.GrantInput{RoadmapID: w.roadmap.ID, DonorOrgID: eu.DonorOrgID, RecipientOrgID: w.impl,
				Reference: "X", Title: "x", Currency: "EUR", Pledged: "1.00", PledgedCurrency: "EUR", StartDate: "2024-01-01", EndDate: "2024-12-31"}, "g")
			return err
		}(), apperr.ErrPermissionDenied},
		{"other donor sets allocations", func() error {
			_, err := w.l.SetAllocations(ukDonor, eu.ID, nil, "a")
			return err
		}(), apperr.ErrNotFound},
		{"other donor reconciles", func() error { _, err := w.l.Reconcile(ukDonor, eu.ID, time.Time{}); return err }(), apperr.ErrNotFound},
		{"other donor lists transactions", func() error { _, _, err := w.l.ListTransactions(ukDonor, eu.ID, "", 10, ""); return err }(), apperr.ErrNotFound},
		{"implementer reports progress on its milestone", func() error {
			_, err := w.l.ReportProgress(impl, w.m1.ID, "1000", "2024-05-01", "", "p1")
			return err
		}(), nil},
		{"other implementer reports progress", func() error {
			_, err := w.l.ReportProgress(otherImpl, w.m1.ID, "1000", "2024-05-01", "", "p2")
			return err
		}(), apperr.ErrPermissionDenied},
		{"donor changes milestone status", func() error {
			_, err := w.l.SetStatus(euDonor, w.m1.ID, "COMPLETED", "", "s1")
			return err
		}(), apperr.ErrPermissionDenied},
		{"coordinator changes milestone status", func() error {
			_, err := w.l.SetStatus(coord, w.m1.ID, "IN_PROGRESS", "", "s2")
			return err
		}(), nil},
	}
	for _, tc := range tests {
		if (tc.want == nil) != (tc.err == nil) || (tc.want != nil && !errors.Is(tc.err, tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// A donor's listing shows only its own grants.
	list := must3(w.l.ListGrants(ukDonor, ledger.GrantFilter{}))
	if len(list) != 1 || list[0].ID != uk.ID {
		t.Fatalf("UK donor lists %d grants", len(list))
	}
}
