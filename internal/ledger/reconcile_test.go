package ledger_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/paging"
)

// receiptGrant is a EUR grant whose disbursements and receipts cover every
// way of matching; want lists its matches, computed by hand, as
// "reference status disbursed received receipts".
func receiptGrant(t *testing.T) (*world, ledger.Grant, []string) {
	w := newWorld(t)
	g := w.grant("EUR", "REC-1", "1000000.00")
	dn, im := w.donor(g), w.implementer()
	w.record(dn, g, "COMMITMENT", "1000000.00", "EUR", "2024-02-01", "")
	d := func(amount, ref string) ledger.Transaction {
		return w.record(dn, g, "DISBURSEMENT", amount, "EUR", "2024-03-01", ref)
	}
	r := func(amount, ref string) ledger.Transaction {
		return w.record(im, g, "RECEIPT", amount, "EUR", "2024-03-02", ref)
	}
	d("7.00", "")
	d("8.00", "")
	r("3.00", "") // the empty reference matches nothing
	d("100.00", "A")
	r("100.00", "A")
	d("100.00", "B")
	r("90.00", "B")
	d("50.00", "C")
	d("10.00", "D") // the first of D takes its receipts, the second misses its own
	d("20.00", "D")
	r("10.00", "D")
	r("5.00", "E")
	d("100.00", "F")
	r("40.00", "F")
	r("60.00", "F")
	reverse(dn, w, g, d("30.00", "G").ID) // G's receipt is left without a disbursement
	r("30.00", "G")
	reverse(dn, w, g, d("30.00", "I").ID) // nothing of I is live
	reverse(im, w, g, r("30.00", "I").ID)
	r("25.00", "J") // recorded before its disbursement
	d("25.00", "J")
	// Receipts in USD: 0.90 EUR per USD until June, 0.92 from June. H's
	// receipt is worth 920.00 EUR at its own date, 900.00 at the
	// disbursement's: all of its variance is FX. H2's is worth 891.00 EUR at
	// both: a real difference of -9.00.
	d("900.00", "H")
	w.record(im, g, "RECEIPT", "1000.00", "USD", "2024-07-01", "H")
	d("900.00", "H2")
	w.record(im, g, "RECEIPT", "990.00", "USD", "2024-03-02", "H2")
	want := []string{
		" MISSING_RECEIPT 7.00 0.00 0", " MISSING_RECEIPT 8.00 0.00 0", " RECEIPT_WITHOUT_DISBURSEMENT 0.00 3.00 1",
		"A MATCHED 100.00 100.00 1", "B AMOUNT_VARIANCE 100.00 90.00 1", "C MISSING_RECEIPT 50.00 0.00 0",
		"D MATCHED 10.00 10.00 1", "D MISSING_RECEIPT 20.00 0.00 0", "E RECEIPT_WITHOUT_DISBURSEMENT 0.00 5.00 1",
		"F MATCHED 100.00 100.00 2", "G RECEIPT_WITHOUT_DISBURSEMENT 0.00 30.00 1", "J MATCHED 25.00 25.00 1",
		"H MATCHED 900.00 920.00 1", "H2 AMOUNT_VARIANCE 900.00 891.00 1",
	}
	for i := range 20 { // enough for several pages
		ref := fmt.Sprintf("K-%02d", i)
		d("1.00", ref)
		r("1.00", ref)
		want = append(want, ref+" MATCHED 1.00 1.00 1")
	}
	return w, g, want
}

func summary(r ledger.Reconciliation) string {
	return fmt.Sprintf("%+v", r.Summary) // decimals print their value
}

func describe(m ledger.ReceiptMatch) string {
	return fmt.Sprintf("%s %s %s %s %d", m.Reference, m.Status, m.Disbursed.StringFixed(2), m.Received.StringFixed(2), len(m.ReceiptIDs))
}

func TestReceiptMatchesPage(t *testing.T) {
	t.Parallel()
	w, g, want := receiptGrant(t)
	all := try(w.l.ReconcilePage(coord, id(g.ID), time.Time{}, ledger.MatchPage{Size: ledger.MaxMatchPageSize})).must(t)
	if all.NextPageToken != "" {
		t.Fatalf("one page of %d holds every match, yet a next page: %q", ledger.MaxMatchPageSize, all.NextPageToken)
	}
	var got []string
	for _, m := range all.Matches {
		got = append(got, describe(m))
	}
	if g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)); !slices.Equal(g, w) {
		t.Errorf("matches\n%q\nwant\n%q", g, w)
	}
	// A reference's matches are together, its receipts without a disbursement first.
	seen := map[string]bool{}
	for i, m := range all.Matches {
		if i > 0 && all.Matches[i-1].Reference != m.Reference && seen[m.Reference] {
			t.Errorf("matches of reference %q are apart", m.Reference)
		}
		if i > 0 && all.Matches[i-1].Reference == m.Reference && m.Status == ledger.ReceiptWithoutDisbursment {
			t.Errorf("receipts of %q without a disbursement come after its disbursements", m.Reference)
		}
		seen[m.Reference] = true
	}
	for _, m := range all.Matches {
		if m.Reference == "H" {
			eq(t, "H fx difference", m.FXDifference, "20.00")
			eq(t, "H real difference", m.RealDifference, "0")
		}
		if m.Reference == "H2" {
			eq(t, "H2 fx difference", m.FXDifference, "0")
			eq(t, "H2 real difference", m.RealDifference, "-9.00")
		}
		if !m.Variance.Equal(m.FXDifference.Add(m.RealDifference)) {
			t.Errorf("%s: variance %s is not fx %s + real %s", m.Reference, m.Variance, m.FXDifference, m.RealDifference)
		}
	}

	// The summary is the per-status count and totals of the matches, by hand
	// and recomputed from the list, and the same on every page.
	byHand := map[string]string{
		ledger.Matched:                   "25 1155.00 1175.00", // A, D, F, H, J, 20 × K
		ledger.AmountVariance:            "2 1000.00 981.00",   // B, H2
		ledger.MissingReceipt:            "4 85.00 0.00",       // 7, 8, C, the second D
		ledger.ReceiptWithoutDisbursment: "3 0.00 38.00",       // 3, E, G
	}
	fromList := map[string]*ledger.MatchSummary{}
	for _, m := range all.Matches {
		s := fromList[m.Status]
		if s == nil {
			s = &ledger.MatchSummary{Status: m.Status}
			fromList[m.Status] = s
		}
		s.Count++
		s.Disbursed, s.Received = s.Disbursed.Add(m.Disbursed), s.Received.Add(m.Received)
	}
	if len(all.Summary) != len(ledger.MatchStatuses) {
		t.Fatalf("summary %+v, want one entry per status", all.Summary)
	}
	for i, s := range all.Summary {
		l := fromList[s.Status]
		if s.Status != ledger.MatchStatuses[i] || l == nil || s.Count != l.Count || !s.Disbursed.Equal(l.Disbursed) || !s.Received.Equal(l.Received) {
			t.Errorf("summary %d: %+v, the list gives %+v", i, s, l)
		}
		if got := fmt.Sprintf("%d %s %s", s.Count, s.Disbursed.StringFixed(2), s.Received.StringFixed(2)); got != byHand[s.Status] {
			t.Errorf("summary %s: %s, want %s", s.Status, got, byHand[s.Status])
		}
	}

	// Every disbursement and receipt is in one match: the statuses add up to
	// the grant's balances.
	var disbursed, received decimal.Decimal
	for _, s := range all.Summary {
		disbursed, received = disbursed.Add(s.Disbursed), received.Add(s.Received)
	}
	eq(t, "summary disbursed", disbursed, all.Agreement.Disbursed.String())
	eq(t, "summary received", received, all.Agreement.Received.String())

	// Every page size pages through exactly the whole list, in its order,
	// each page carrying the same summary and balances.
	for _, size := range []int{1, 2, 3, 7, 33} {
		t.Run(fmt.Sprint("pages of ", size), func(t *testing.T) {
			t.Parallel()
			var paged []ledger.ReceiptMatch
			token := ""
			for pages := 0; ; pages++ {
				if pages > len(all.Matches) {
					t.Fatal("paging does not end")
				}
				p := try(w.l.ReconcilePage(coord, id(g.ID), time.Time{}, ledger.MatchPage{Size: size, Token: token})).must(t)
				if len(p.Matches) > size || (p.NextPageToken != "" && len(p.Matches) != size) {
					t.Fatalf("page of %d matches for size %d, next %q", len(p.Matches), size, p.NextPageToken)
				}
				if summary(p) != summary(all) || !sameBalances(p.Agreement, all.Agreement) || !sameBalances(p.Reporting, all.Reporting) {
					t.Fatalf("page %d: summary %+v balances %+v, first page %+v %+v", pages, p.Summary, p.Agreement, all.Summary, all.Agreement)
				}
				paged = append(paged, p.Matches...)
				if token = p.NextPageToken; token == "" {
					break
				}
			}
			if len(paged) != len(all.Matches) {
				t.Fatalf("%d matches over the pages, %d in one", len(paged), len(all.Matches))
			}
			for i := range paged {
				if describe(paged[i]) != describe(all.Matches[i]) || paged[i].DisbursementID != all.Matches[i].DisbursementID ||
					!slices.Equal(paged[i].ReceiptIDs, all.Matches[i].ReceiptIDs) {
					t.Fatalf("match %d: %+v paged, %+v in one page", i, paged[i], all.Matches[i])
				}
			}
		})
	}
}

// The default page is DefaultMatchPageSize; a page token is checked.
func TestReceiptMatchPageSizeAndToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "MANY", "0")
	w.record(w.donor(g), g, "COMMITMENT", "100000.00", "USD", "2024-02-01", "")
	for i := range ledger.DefaultMatchPageSize + 1 {
		w.record(w.donor(g), g, "DISBURSEMENT", "1.00", "USD", "2024-03-01", fmt.Sprint("P-", i))
	}
	r := try(w.l.Reconcile(coord, id(g.ID), time.Time{})).must(t)
	if len(r.Matches) != ledger.DefaultMatchPageSize || r.NextPageToken == "" {
		t.Fatalf("first page: %d matches, next %q; want %d and a next page", len(r.Matches), r.NextPageToken, ledger.DefaultMatchPageSize)
	}
	if r.Summary[2].Status != ledger.MissingReceipt || r.Summary[2].Count != int64(ledger.DefaultMatchPageSize+1) ||
		!r.Summary[2].Disbursed.Equal(decimal.NewFromInt(int64(ledger.DefaultMatchPageSize+1))) {
		t.Fatalf("summary %+v", r.Summary)
	}
	for _, token := range []string{"%%", paging.Token("short"), paging.Token(strings.Repeat("x", 40))} {
		_, err := w.l.ReconcilePage(coord, id(g.ID), time.Time{}, ledger.MatchPage{Token: token})
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) || inv.Violations[0].Field != "pageToken" {
			t.Errorf("token %q: %v, want INVALID_ARGUMENT naming pageToken", token, err)
		}
	}
}

// As of an earlier time, both the page and the summary see the journal as it
// was: J's receipt, recorded before its disbursement, stood alone.
func TestReceiptMatchesAsOf(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "ASOF", "0")
	w.record(w.donor(g), g, "COMMITMENT", "1000.00", "USD", "2024-02-01", "")
	w.record(w.implementer(), g, "RECEIPT", "25.00", "USD", "2024-03-02", "J")
	time.Sleep(10 * time.Millisecond)
	before := time.Now()
	time.Sleep(10 * time.Millisecond)
	w.record(w.donor(g), g, "DISBURSEMENT", "25.00", "USD", "2024-03-01", "J")
	then := try(w.l.Reconcile(coord, id(g.ID), before)).must(t)
	now := try(w.l.Reconcile(coord, id(g.ID), time.Time{})).must(t)
	if len(then.Matches) != 1 || then.Matches[0].Status != ledger.ReceiptWithoutDisbursment || then.Summary[3].Count != 1 || then.Summary[0].Count != 0 {
		t.Errorf("as of before the disbursement: %+v, summary %+v", then.Matches, then.Summary)
	}
	if len(now.Matches) != 1 || now.Matches[0].Status != ledger.Matched || now.Summary[0].Count != 1 || now.Summary[3].Count != 0 {
		t.Errorf("now: %+v, summary %+v", now.Matches, now.Summary)
	}
}
