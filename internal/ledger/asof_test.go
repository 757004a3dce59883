package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// pause returns a time strictly between what was recorded before and what
// is recorded after.
func pause() time.Time {
	time.Sleep(2 * time.Millisecond)
	at := time.Now().UTC().Truncate(time.Microsecond)
	time.Sleep(2 * time.Millisecond)
	return at
}

// inTx runs f in a read-only snapshot of the app pool, as the audit pack does.
func inTx(t *testing.T, w *world, f func(tx pgx.Tx) error) {
	t.Helper()
	err := pgx.BeginTxFunc(context.Background(), w.db.App, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
	if err != nil {
		t.Fatal(err)
	}
}

// ReconcileIn answers what Reconcile answers for the same as-of: balances in
// both currencies and the match summary, for a grant with every kind of
// match, FX receipts and reversals, before and after later entries.
func TestReconcileInAnswersReconcile(t *testing.T) {
	t.Parallel()
	w, g, _ := receiptGrant(t)
	t1 := pause()
	dn, im := w.donor(g), w.implementer()
	w.record(dn, g, "DISBURSEMENT", "12.00", "EUR", "2024-04-01", "L")
	w.record(im, g, "RECEIPT", "12.00", "EUR", "2024-04-02", "L")
	a := w.record(dn, g, "DISBURSEMENT", "100.00", "EUR", "2024-04-01", "A") // A now has two disbursements
	reverse(dn, w, g, a.ID)
	w.record(im, g, "EXPENDITURE", "10.00", "EUR", "2024-04-03", "INV-1")
	t2 := pause()
	for _, at := range []time.Time{t1, t2} {
		api := try(w.l.Reconcile(coord, id(g.ID), at)).must(t)
		inTx(t, w, func(tx pgx.Tx) error {
			got, err := ledger.ReconcileIn(context.Background(), tx, id(g.ID), at)
			if err != nil {
				return err
			}
			for _, c := range [][2]any{{got.Agreement, api.Agreement}, {got.Reporting, api.Reporting}, {got.Summary, api.Summary}} {
				if fmt.Sprintf("%+v", c[0]) != fmt.Sprintf("%+v", c[1]) {
					t.Errorf("as of %v: ReconcileIn %+v, Reconcile %+v", at, c[0], c[1])
				}
			}
			return nil
		})
	}
	if r1, r2 := try(w.l.Reconcile(coord, id(g.ID), t1)).must(t), try(w.l.Reconcile(coord, id(g.ID), t2)).must(t); r1.Agreement.Spent.Equal(r2.Agreement.Spent) {
		t.Fatalf("the entries after t1 should move the figures")
	}
	inTx(t, w, func(tx pgx.Tx) error {
		if _, err := ledger.ReconcileIn(context.Background(), tx, uuid.New(), t2); !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("unknown grant: %v, want not found", err)
		}
		if _, err := ledger.ReconcileIn(context.Background(), tx, id(g.ID), time.Time{}); err == nil {
			t.Errorf("no as-of: no error")
		}
		return nil
	})
}

// MilestoneFundingAt answers, for a past as-of, what MilestoneFunding (the
// coverage API's source) answered then, though allocations, tagged entries
// and reversals came after; now, what it answers now; and narrowed to a
// donor or a grant, only that donor's share.
func TestMilestoneFundingAt(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	eur, gbp := w.grant("EUR", "E-1", "1000000.00"), w.grant("GBP", "G-1", "500000.00")
	de, dg := w.donor(eur), w.donor(gbp)
	ms := []string{w.m1.ID, w.m2.ID}
	alloc := func(g ledger.Grant, pairs ...string) {
		var in []ledger.AllocationInput
		for i := 0; i < len(pairs); i += 2 {
			in = append(in, ledger.AllocationInput{MilestoneID: id(pairs[i]), Amount: amt(pairs[i+1], g.Currency)})
		}
		try(w.l.SetAllocations(w.donor(g), id(g.ID), in, w.req())).must(t)
	}
	w.record(de, eur, "COMMITMENT", "600000.00", "EUR", "2024-02-01", "", milestone(w.m1.ID))
	w.record(dg, gbp, "COMMITMENT", "300000.00", "GBP", "2024-02-01", "")
	alloc(eur, w.m1.ID, "400000.00", w.m2.ID, "100000.00")
	alloc(gbp, w.m2.ID, "200000.00")
	x := w.record(de, eur, "DISBURSEMENT", "70000.00", "EUR", "2024-03-01", "X", milestone(w.m1.ID))
	w.record(dg, gbp, "DISBURSEMENT", "50000.00", "GBP", "2024-03-01", "Y", milestone(w.m2.ID))
	w.record(w.implementer(), gbp, "EXPENDITURE", "1000.00", "GBP", "2024-03-05", "INV-2", milestone(w.m2.ID))
	ctx := context.Background()
	funding := func() (map[string]roadmap.Funding, int) {
		f, n, err := w.l.MilestoneFunding(ctx, w.roadmap.ID, ms)
		if err != nil {
			t.Fatal(err)
		}
		return f, n
	}
	then, thenDonors := funding()
	t1 := pause()
	alloc(eur) // emptied: only its audit event dates it
	alloc(gbp, w.m1.ID, "10000.00")
	reverse(de, w, eur, x.ID)
	w.record(de, eur, "DISBURSEMENT", "5000.00", "EUR", "2024-04-01", "Z", milestone(w.m2.ID))
	t2 := pause()
	now, nowDonors := funding()

	at := func(sc roadmap.FundingScope) (map[string]roadmap.Funding, int) {
		var f map[string]roadmap.Funding
		var n int
		inTx(t, w, func(tx pgx.Tx) (err error) {
			f, n, err = ledger.MilestoneFundingAt(ctx, tx, w.roadmap.ID, ms, sc)
			return err
		})
		return f, n
	}
	show := func(f map[string]roadmap.Funding, n int) string {
		return fmt.Sprintf("%+v %+v donors %d", f[w.m1.ID], f[w.m2.ID], n)
	}
	f1, n1 := at(roadmap.FundingScope{AsOf: t1})
	if show(f1, n1) != show(then, thenDonors) {
		t.Errorf("as of t1:\n got %s\nwant %s (the API then)", show(f1, n1), show(then, thenDonors))
	}
	f2, n2 := at(roadmap.FundingScope{AsOf: t2})
	if show(f2, n2) != show(now, nowDonors) {
		t.Errorf("as of t2:\n got %s\nwant %s (the API now)", show(f2, n2), show(now, nowDonors))
	}
	if show(f1, n1) == show(f2, n2) {
		t.Fatalf("the changes after t1 should move the figures")
	}
	// Narrowed: the two donors' shares add up to the whole; a grant is its
	// donor's share here; a donor with a grant of another donor is nothing.
	for _, asOf := range []time.Time{t1, t2} {
		whole, _ := at(roadmap.FundingScope{AsOf: asOf})
		e, ne := at(roadmap.FundingScope{AsOf: asOf, DonorOrgID: id(eur.DonorOrgID)})
		gb, ng := at(roadmap.FundingScope{AsOf: asOf, DonorOrgID: id(gbp.DonorOrgID)})
		gg, _ := at(roadmap.FundingScope{AsOf: asOf, GrantID: id(gbp.ID)})
		none, nn := at(roadmap.FundingScope{AsOf: asOf, DonorOrgID: id(eur.DonorOrgID), GrantID: id(gbp.ID)})
		if ne != 1 || ng != 1 || nn != 0 {
			t.Errorf("donors in scope %d, %d, %d; want 1, 1, 0", ne, ng, nn)
		}
		if show(gg, 1) != show(gb, 1) {
			t.Errorf("grant scope %s, donor scope %s", show(gg, 1), show(gb, 1))
		}
		for _, m := range ms {
			sum := roadmap.Funding{Allocated: e[m].Allocated.Add(gb[m].Allocated), Committed: e[m].Committed.Add(gb[m].Committed),
				Disbursed: e[m].Disbursed.Add(gb[m].Disbursed), Spent: e[m].Spent.Add(gb[m].Spent)}
			wh := whole[m]
			wh.Donors = 0
			if fmt.Sprintf("%+v", sum) != fmt.Sprintf("%+v", wh) {
				t.Errorf("as of %v, %s: donors' shares %+v, whole %+v", asOf, m, sum, wh)
			}
			if z := none[m]; !z.Allocated.IsZero() || !z.Committed.IsZero() || !z.Disbursed.IsZero() || !z.Spent.IsZero() || z.Donors != 0 {
				t.Errorf("empty scope funds %s: %+v", m, z)
			}
		}
	}
	// Coverage as of t1 through the roadmap package: the API's answer then.
	inTx(t, w, func(tx pgx.Tx) error {
		cov, err := roadmap.CoverageAt(ctx, tx, id(w.roadmap.ID), roadmap.FundingScope{AsOf: t2}, ledger.MilestoneFundingAt)
		if err != nil {
			return err
		}
		api := try(w.roadmaps.Coverage(coord, id(w.roadmap.ID), w.l)).must(t)
		if fmt.Sprintf("%+v", cov) != fmt.Sprintf("%+v", api) {
			t.Errorf("CoverageAt now\n got %+v\nwant %+v", cov, api)
		}
		return nil
	})
}
