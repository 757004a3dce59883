package ledger_test

import (
	"testing"

	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/ledger"
)

// A programme with EUR, GBP, JPY and KWD agreements reporting in USD. Every
// expected figure is computed by hand below; rates are units of currency per
// USD, conversion divides by the rate, rounds once half-to-even to cents,
// and totals add the rounded amounts.
func TestScenarioFiguresByHand(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	imp := w.implementer()

	// EUR grant. Rates 0.90 (from 2024-01-01) and 0.92 (from 2024-06-01).
	eu := w.grant("EUR", "EU-2024-001", "1000000.00") // pledge 1 000 000 / 0.90 = 1 111 111.111… → 1 111 111.11
	dn := w.donor(eu)
	w.record(dn, eu, "COMMITMENT", "900000.00", "EUR", "2024-02-01", "")          // / 0.90 = 1 000 000.00
	w.record(dn, eu, "DISBURSEMENT", "500000.00", "EUR", "2024-03-01", "EU-T1")   // / 0.90 = 555 555.555… → 555 555.56
	w.record(dn, eu, "DISBURSEMENT", "300000.00", "EUR", "2024-07-01", "EU-T2")   // / 0.92 = 326 086.956… → 326 086.96
	w.record(imp, eu, "RECEIPT", "500000.00", "EUR", "2024-03-05", "EU-T1")       // 555 555.56
	w.record(imp, eu, "EXPENDITURE", "150000.00", "EUR", "2024-04-01", "INV-001") // / 0.90 = 166 666.666… → 166 666.67
	wrong := w.record(imp, eu, "EXPENDITURE", "10000.00", "EUR", "2024-04-02", "INV-002")
	eq(t, "INV-002 in USD", wrong.ReportingAmount, "11111.11") // / 0.90 = 11 111.111… → 11 111.11
	reverse(imp, w, eu, wrong.ID)                              // −10 000.00 EUR, −11 111.11 USD
	beforePartial := time.Now()
	time.Sleep(10 * time.Millisecond)
	w.record(imp, eu, "RECEIPT", "200000.00", "EUR", "2024-07-03", "EU-T2") // partial; / 0.92 = 217 391.304… → 217 391.30

	r := try(w.l.Reconcile(coord, id(eu.ID), time.Time{})).must(t)
	a, u := r.Agreement, r.Reporting
	eq(t, "EU pledged", a.Pledged, "1000000.00")
	eq(t, "EU committed", a.Committed, "900000.00")
	eq(t, "EU disbursed", a.Disbursed, "800000.00") // 500 000 + 300 000
	eq(t, "EU received", a.Received, "700000.00")   // 500 000 + 200 000
	eq(t, "EU spent", a.Spent, "150000.00")         // 150 000 + 10 000 − 10 000
	eq(t, "EU undisbursed", a.UndisbursedCommitment, "100000.00")
	eq(t, "EU unspent", a.UnspentBalance, "550000.00")
	eq(t, "EU pledged USD", u.Pledged, "1111111.11")
	eq(t, "EU committed USD", u.Committed, "1000000.00")
	eq(t, "EU disbursed USD", u.Disbursed, "881642.52")               // 555 555.56 + 326 086.96
	eq(t, "EU received USD", u.Received, "772946.86")                 // 555 555.56 + 217 391.30
	eq(t, "EU spent USD", u.Spent, "166666.67")                       // 166 666.67 + 11 111.11 − 11 111.11
	eq(t, "EU undisbursed USD", u.UndisbursedCommitment, "118357.48") // 1 000 000.00 − 881 642.52
	eq(t, "EU unspent USD", u.UnspentBalance, "606280.19")            // 772 946.86 − 166 666.67
	if len(r.Matches) != 2 {
		t.Fatalf("EU matches: %+v", r.Matches)
	}
	m1, m2 := r.Matches[0], r.Matches[1]
	if m1.Reference != "EU-T1" || m1.Status != ledger.Matched || !m1.Variance.IsZero() {
		t.Errorf("EU-T1: %+v", m1)
	}
	if m2.Reference != "EU-T2" || m2.Status != ledger.AmountVariance {
		t.Errorf("EU-T2: %+v", m2)
	}
	eq(t, "EU-T2 variance", m2.Variance, "-100000.00") // 200 000 − 300 000, all of it real
	eq(t, "EU-T2 fx", m2.FXDifference, "0")
	eq(t, "EU-T2 real", m2.RealDifference, "-100000.00")

	// The running totals and the journal summed up to now agree.
	summed := try(w.l.Reconcile(coord, id(eu.ID), time.Now())).must(t)
	if !sameBalances(summed.Agreement, r.Agreement) || !sameBalances(summed.Reporting, r.Reporting) {
		t.Errorf("journal sums %+v %+v differ from running totals %+v %+v", summed.Agreement, summed.Reporting, r.Agreement, r.Reporting)
	}
	past := try(w.l.Reconcile(coord, id(eu.ID), beforePartial)).must(t)
	eq(t, "EU received as of before the partial receipt", past.Agreement.Received, "500000.00")
	eq(t, "EU spent as of then", past.Agreement.Spent, "150000.00")

	// Allocations convert at the latest EUR rate up to today, 0.92.
	try(w.l.SetAllocations(dn, id(eu.ID), []ledger.AllocationInput{
		{MilestoneID: id(w.m1.ID), Amount: amt("600000.00", "EUR")}, // / 0.92 = 652 173.913… → 652 173.91
		{MilestoneID: id(w.m2.ID), Amount: amt("200000.00", "EUR")}, // / 0.92 = 217 391.304… → 217 391.30
	}, w.req())).must(t)

	// GBP grant: 0.80 until 2024-02-01, 0.78 from 2024-02-02. The partner's
	// bank credits USD, so the receipt is in USD.
	uk := w.grant("GBP", "UK-2024-7", "500000.00") // / 0.80 = 625 000.00
	du := w.donor(uk)
	w.record(du, uk, "COMMITMENT", "500000.00", "GBP", "2024-01-15", "", milestone(w.m1.ID))       // 625 000.00
	w.record(du, uk, "DISBURSEMENT", "250000.00", "GBP", "2024-02-01", "UK-1", milestone(w.m1.ID)) // 312 500.00
	rc := w.record(imp, uk, "RECEIPT", "312000.00", "USD", "2024-02-03", "UK-1")
	// 312 000 USD at 0.78 GBP per USD = 243 360.00 GBP; at the disbursement's
	// 0.80 it would have been 249 600.00 GBP.
	eq(t, "UK receipt in GBP", rc.AgreementAmount, "243360.00")
	eq(t, "UK receipt in USD", rc.ReportingAmount, "312000.00")
	r = try(w.l.Reconcile(coord, id(uk.ID), time.Time{})).must(t)
	eq(t, "UK received", r.Agreement.Received, "243360.00")
	eq(t, "UK unspent", r.Agreement.UnspentBalance, "243360.00")
	eq(t, "UK undisbursed", r.Agreement.UndisbursedCommitment, "250000.00")
	eq(t, "UK pledged USD", r.Reporting.Pledged, "625000.00")
	eq(t, "UK disbursed USD", r.Reporting.Disbursed, "312500.00")
	eq(t, "UK received USD", r.Reporting.Received, "312000.00")
	eq(t, "UK undisbursed USD", r.Reporting.UndisbursedCommitment, "312500.00")
	um := r.Matches[0]
	eq(t, "UK-1 variance", um.Variance, "-6640.00")             // 243 360 − 250 000
	eq(t, "UK-1 fx difference", um.FXDifference, "-6240.00")    // 243 360 − 249 600
	eq(t, "UK-1 real difference", um.RealDifference, "-400.00") // 249 600 − 250 000
	if um.Status != ledger.AmountVariance {
		t.Errorf("UK-1 status %s", um.Status)
	}

	// JPY grant, no minor units, 150 JPY per USD.
	jp := w.grant("JPY", "JP-ODA-1", "100000000") // / 150 = 666 666.666… → 666 666.67
	dj := w.donor(jp)
	w.record(dj, jp, "COMMITMENT", "100000000", "JPY", "2024-01-10", "")                          // 666 666.67
	w.record(dj, jp, "DISBURSEMENT", "33333333", "JPY", "2024-02-01", "JP-1", milestone(w.m2.ID)) // 222 222.22
	oops := w.record(dj, jp, "DISBURSEMENT", "1000000", "JPY", "2024-02-02", "JP-2")              // 6 666.67
	eq(t, "JP-2 in USD", oops.ReportingAmount, "6666.67")
	reverse(dj, w, jp, oops.ID)
	r = try(w.l.Reconcile(coord, id(jp.ID), time.Time{})).must(t)
	eq(t, "JP disbursed", r.Agreement.Disbursed, "33333333")
	eq(t, "JP undisbursed", r.Agreement.UndisbursedCommitment, "66666667")
	eq(t, "JP committed USD", r.Reporting.Committed, "666666.67")
	eq(t, "JP disbursed USD", r.Reporting.Disbursed, "222222.22")               // 222 222.22 + 6 666.67 − 6 666.67
	eq(t, "JP undisbursed USD", r.Reporting.UndisbursedCommitment, "444444.45") // 666 666.67 − 222 222.22
	if len(r.Matches) != 1 || r.Matches[0].Status != ledger.MissingReceipt || r.Matches[0].Reference != "JP-1" {
		t.Errorf("JP matches (the reversed JP-2 must not appear): %+v", r.Matches)
	}

	// KWD grant, three minor units, 0.307 KWD per USD.
	kw := w.grant("KWD", "KFAED-12", "100000.000") // / 0.307 = 325 732.899… → 325 732.90
	dk := w.donor(kw)
	w.record(dk, kw, "COMMITMENT", "61400.000", "KWD", "2024-01-20", "", milestone(w.m2.ID))        // 200 000.00
	w.record(dk, kw, "DISBURSEMENT", "30700.125", "KWD", "2024-02-01", "KW-1", milestone(w.m2.ID))  // 100 000.407… → 100 000.41
	w.record(imp, kw, "RECEIPT", "30700.125", "KWD", "2024-02-04", "KW-1")                          // 100 000.41
	w.record(imp, kw, "EXPENDITURE", "1234.567", "KWD", "2024-03-01", "INV-K1", milestone(w.m2.ID)) // 4 021.390… → 4 021.39
	r = try(w.l.Reconcile(coord, id(kw.ID), time.Time{})).must(t)
	eq(t, "KW pledged", r.Agreement.Pledged, "100000.000")
	eq(t, "KW undisbursed", r.Agreement.UndisbursedCommitment, "30699.875") // 61 400.000 − 30 700.125
	eq(t, "KW unspent", r.Agreement.UnspentBalance, "29465.558")            // 30 700.125 − 1 234.567
	eq(t, "KW pledged USD", r.Reporting.Pledged, "325732.90")
	eq(t, "KW committed USD", r.Reporting.Committed, "200000.00")
	eq(t, "KW disbursed USD", r.Reporting.Disbursed, "100000.41")
	eq(t, "KW spent USD", r.Reporting.Spent, "4021.39")
	eq(t, "KW undisbursed USD", r.Reporting.UndisbursedCommitment, "99999.59") // 200 000.00 − 100 000.41
	eq(t, "KW unspent USD", r.Reporting.UnspentBalance, "95979.02")            // 100 000.41 − 4 021.39
	if r.Matches[0].Status != ledger.Matched {
		t.Errorf("KW-1: %+v", r.Matches[0])
	}

	// Coverage, USD.
	c := try(w.roadmaps.Coverage(as("donor", w.donors["EUR"]), id(w.roadmap.ID), w.l)).must(t)
	if len(c.Milestones) != 2 || c.Currency != "USD" {
		t.Fatalf("coverage: %+v", c)
	}
	cm1, cm2 := c.Milestones[0], c.Milestones[1]
	eq(t, "M-1 requirement", cm1.Requirement, "5000000.00")
	eq(t, "M-1 allocated", cm1.Allocated, "652173.91") // EUR allocation
	eq(t, "M-1 committed", cm1.Committed, "625000.00") // UK commitment tagged M-1
	eq(t, "M-1 disbursed", cm1.Disbursed, "312500.00") // UK disbursement tagged M-1
	eq(t, "M-1 spent", cm1.Spent, "0")
	eq(t, "M-1 gap", cm1.Gap, "4347826.09") // 5 000 000.00 − 652 173.91
	eq(t, "M-2 allocated", cm2.Allocated, "217391.30")
	eq(t, "M-2 committed", cm2.Committed, "200000.00") // KW
	eq(t, "M-2 disbursed", cm2.Disbursed, "322222.63") // JP 222 222.22 + KW 100 000.41
	eq(t, "M-2 spent", cm2.Spent, "4021.39")           // KW
	eq(t, "M-2 gap", cm2.Gap, "782608.70")             // 1 000 000.00 − 217 391.30
	if cm1.Donors != 2 || cm2.Donors != 3 || c.Totals.Donors != 4 {
		t.Errorf("donors: M-1 %d (EU, UK), M-2 %d (EU, JP, KW), total %d", cm1.Donors, cm2.Donors, c.Totals.Donors)
	}
	eq(t, "total requirement", c.Totals.Requirement, "6000000.00")
	eq(t, "total allocated", c.Totals.Allocated, "869565.21") // 652 173.91 + 217 391.30
	eq(t, "total committed", c.Totals.Committed, "825000.00")
	eq(t, "total disbursed", c.Totals.Disbursed, "634722.63")
	eq(t, "total gap", c.Totals.Gap, "5130434.79")
}

func sameBalances(a, b ledger.Balances) bool {
	x := []decimal.Decimal{a.Pledged, a.Committed, a.Disbursed, a.Received, a.Spent, a.UndisbursedCommitment, a.UnspentBalance}
	y := []decimal.Decimal{b.Pledged, b.Committed, b.Disbursed, b.Received, b.Spent, b.UndisbursedCommitment, b.UnspentBalance}
	for i := range x {
		if !x[i].Equal(y[i]) {
			return false
		}
	}
	return a.Currency == b.Currency
}
