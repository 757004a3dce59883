package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestMoneyRulesAgreeWithTheLedger records a programme through the ledger's
// own API (real FX conversion, allocations converted as the service does)
// and checks the rules against what the API shows: RECEIPT_MISMATCH (with no
// window and no tolerance) flags exactly the disbursements and receipts
// reconciliation shows as missing, differing and without a disbursement;
// OVERFUNDED_MILESTONE's allocated total is roadmap coverage's to the cent;
// a payment entered once in euros and once in dollars converted is one
// DUPLICATE_TRANSACTION.
func TestMoneyRulesAgreeWithTheLedger(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	reqs := 0
	req := func() string { reqs++; return fmt.Sprintf("req-%d", reqs) }
	as := func(role auth.Role, orgID string) context.Context {
		return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
	}
	coord := as(auth.Coordinator, "")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	usd := func(s string) money.Amount { return money.Amount{Value: dec(s), Currency: "USD"} }
	eur := func(s string) money.Amount { return money.Amount{Value: dec(s), Currency: "EUR"} }

	orgs := org.New(db.App)
	newOrg := func(name, kind string) string {
		o, err := orgs.Create(coord, org.Organization{Name: name, Kind: kind}, req())
		must(err)
		return o.ID
	}
	impl, donorA, donorB := newOrg("Demining NGO", "IMPLEMENTER"), newOrg("Donor A", "DONOR"), newOrg("Donor B", "DONOR")
	roadmaps := roadmap.New(db.App)
	rm, err := roadmaps.Create(coord, roadmap.Input{Country: "AFG", Title: "National Mine Action Strategy",
		StartDate: mday("2024-01-01"), EndDate: mday("2026-12-31"), ReportingCurrency: "USD"}, req())
	must(err)
	m1, err := roadmaps.CreateMilestone(coord, uuid.MustParse(rm.ID), roadmap.MilestoneInput{Code: "M-1", Title: "Clear Helmand minefields",
		ActivityType: "CLEARANCE", Region: "AF-HEL", FundingRequirement: usd("1000000.00")}, req())
	must(err)
	_, err = fx.New(db.App).Create(coord, []fx.RateInput{{Currency: "EUR", QuoteCurrency: "USD", Date: mday("2024-01-01"), Rate: dec("0.90"), Source: "test"}})
	must(err)

	l := ledger.New(db.App)
	grant := func(donor, currency, ref string, pledged money.Amount) ledger.Grant {
		g, err := l.CreateGrant(as(auth.Donor, donor), ledger.GrantInput{RoadmapID: uuid.MustParse(rm.ID), DonorOrgID: uuid.MustParse(donor),
			RecipientOrgID: uuid.MustParse(impl), Reference: ref, Title: "Grant " + ref, Currency: currency, Pledged: pledged,
			StartDate: mday("2024-01-01"), EndDate: mday("2025-12-31")}, req())
		must(err)
		return g
	}
	record := func(g ledger.Grant, typ string, a money.Amount, day, ref string) string {
		t.Helper()
		ctx := as(auth.Donor, g.DonorOrgID)
		if typ == "RECEIPT" || typ == "EXPENDITURE" {
			ctx = as(auth.Implementer, g.RecipientOrgID)
		}
		e, err := l.RecordTransaction(ctx, ledger.EntryInput{GrantID: uuid.MustParse(g.ID), Type: typ, Amount: a, ValueDate: mday(day), Reference: ref}, req())
		must(err)
		return e.ID
	}
	gA := grant(donorA, "USD", "A-1", usd("2000000.00"))
	gB := grant(donorB, "EUR", "B-1", eur("1000000.00"))
	record(gA, "COMMITMENT", usd("2000000.00"), "2024-01-10", "")
	record(gB, "COMMITMENT", eur("1000000.00"), "2024-01-10", "")
	_, err = l.SetAllocations(as(auth.Donor, donorA), uuid.MustParse(gA.ID), []ledger.AllocationInput{{MilestoneID: uuid.MustParse(m1.ID), Amount: usd("600000.00")}}, req())
	must(err)
	_, err = l.SetAllocations(as(auth.Donor, donorB), uuid.MustParse(gB.ID), []ledger.AllocationInput{{MilestoneID: uuid.MustParse(m1.ID), Amount: eur("400000.00")}}, req())
	must(err)

	// gA's flows: every status reconciliation knows.
	d1 := record(gA, "DISBURSEMENT", usd("100000.00"), "2024-02-01", "TR-1")
	record(gA, "RECEIPT", usd("100000.00"), "2024-02-05", "TR-1")
	d2 := record(gA, "DISBURSEMENT", usd("50000.00"), "2024-03-01", "TR-2")
	record(gA, "RECEIPT", usd("49000.00"), "2024-03-05", "TR-2")
	d3 := record(gA, "DISBURSEMENT", usd("30000.00"), "2024-04-01", "TR-3")
	r4 := record(gA, "RECEIPT", usd("10000.00"), "2024-04-15", "TR-4")
	d5 := record(gA, "DISBURSEMENT", usd("20000.00"), "2024-05-01", "")
	d6 := record(gA, "DISBURSEMENT", usd("5000.00"), "2024-06-01", "TR-1")
	_ = d1
	// gB: one payment entered in euros, then again in dollars (converted at
	// 0.90 EUR per USD: 100 000 USD is 90 000 EUR).
	b1 := record(gB, "DISBURSEMENT", eur("90000.00"), "2024-03-01", "")
	b2 := record(gB, "DISBURSEMENT", usd("100000.00"), "2024-03-04", "")

	ctx := context.Background()
	now := time.Now().UTC()
	cfg := DefaultConfig()
	cfg.ReceiptWindowDays, cfg.ReceiptTolerance = 0, decimal.Zero
	s, err := loadScope(ctx, db.App, uuid.MustParse(rm.ID), now, cfg)
	must(err)

	// RECEIPT_MISMATCH against reconciliation of gA.
	rec, err := l.Reconcile(coord, uuid.MustParse(gA.ID), time.Time{})
	must(err)
	var want []string
	for _, m := range rec.Matches {
		switch m.Status {
		case ledger.MissingReceipt:
			want = append(want, "missing:"+m.DisbursementID)
		case ledger.AmountVariance:
			want = append(want, "variance:"+m.DisbursementID)
		case ledger.ReceiptWithoutDisbursment:
			for _, r := range m.ReceiptIDs {
				want = append(want, "orphan:"+r)
			}
		}
	}
	slices.Sort(want)
	expected := []string{"missing:" + d3, "missing:" + d5, "missing:" + d6, "variance:" + d2, "orphan:" + r4}
	slices.Sort(expected)
	if !slices.Equal(want, expected) {
		t.Fatalf("reconciliation shows %v, the test expects %v", want, expected)
	}
	fs, err := findReceiptMismatches(ctx, db.App, s)
	must(err)
	var got []string
	for _, f := range fs {
		if slices.Contains(f.Subjects, Subject{Type: SubjectGrant, ID: gA.ID}) {
			got = append(got, f.Key)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("RECEIPT_MISMATCH on grant A\n got %v\nwant %v (reconciliation)", got, want)
	}

	// OVERFUNDED_MILESTONE against coverage.
	cov, err := roadmaps.Coverage(coord, uuid.MustParse(rm.ID), l)
	must(err)
	fs, err = findOverfundedMilestones(ctx, db.App, s)
	must(err)
	if len(fs) != 1 || fs[0].Key != m1.ID {
		t.Fatalf("OVERFUNDED_MILESTONE found %+v, want milestone %s", fs, m1.ID)
	}
	allocated := fs[0].Evidence["allocated"].(map[string]string)["amount"]
	if cov.Milestones[0].MilestoneID != m1.ID || !dec(allocated).Equal(cov.Milestones[0].Allocated) {
		t.Errorf("OVERFUNDED_MILESTONE allocated %s, coverage %s", allocated, cov.Milestones[0].Allocated)
	}
	if allocated != "1044444.44" {
		t.Errorf("allocated %s, want 600 000.00 + 400 000 EUR at 0.90 = 1 044 444.44", allocated)
	}

	// DUPLICATE_TRANSACTION through a real conversion.
	fs, err = findDuplicateTransactions(ctx, db.App, s)
	must(err)
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.Key)
	}
	if want := sortedKey("", []string{b1, b2}); !slices.Contains(keys, want) {
		t.Errorf("DUPLICATE_TRANSACTION keys %s, want %s among them", strings.Join(keys, " "), want)
	}
}
