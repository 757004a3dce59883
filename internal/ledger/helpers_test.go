package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func as(role auth.Role, orgID string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
}

var coord = as(auth.Coordinator, "")

type world struct {
	t       testing.TB
	db      *testdb.DB
	l       *ledger.Store
	roadmap ledger.Roadmap
	m1, m2  ledger.Milestone
	impl    string
	donors  map[string]string // currency → donor org id
	reqs    int
}

func (w *world) req() string { w.reqs++; return fmt.Sprintf("req-%d", w.reqs) }

// must fails the test (by panicking, which the test runner reports with the
// stack) when a setup step fails.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newWorld sets up a roadmap (USD), two milestones, an implementer and one
// donor per agreement currency, with the FX rates of the scenario.
func newWorld(t testing.TB) *world {
	db := testdb.New(t)
	w := &world{t: t, db: db, l: ledger.New(db.App), donors: map[string]string{}}
	orgs := org.New(db.App)
	w.impl = must(orgs.Create(coord, org.Organization{Name: "Demining NGO", Kind: "IMPLEMENTER"}, "impl")).ID
	for _, c := range []string{"EUR", "GBP", "JPY", "KWD", "USD"} {
		w.donors[c] = must(orgs.Create(coord, org.Organization{Name: "Donor " + c, Kind: "DONOR"}, "donor-"+c)).ID
	}
	w.roadmap = must(w.l.CreateRoadmap(coord, ledger.RoadmapInput{Country: "AFG", Title: "National Mine Action Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}, w.req()))
	w.m1 = must(w.l.CreateMilestone(coord, w.roadmap.ID, ledger.MilestoneInput{Code: "M-1", Title: "Clear Helmand minefields",
		ActivityType: "CLEARANCE", Region: "AF-HEL", TargetQuantity: "2500000", TargetUnit: "m2", DueDate: "2025-12-31",
		FundingRequirement: "5000000.00", FundingCurrency: "USD", ResponsibleOrgID: w.impl}, w.req()))
	w.m2 = must(w.l.CreateMilestone(coord, w.roadmap.ID, ledger.MilestoneInput{Code: "M-2", Title: "Risk education in Kandahar",
		ActivityType: "EORE", FundingRequirement: "1000000.00", FundingCurrency: "USD"}, w.req()))
	must(fx.New(db.App).Create(coord, []fx.RateInput{
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.90", Source: "test"},
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-06-01", Rate: "0.92", Source: "test"},
		{Currency: "GBP", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.80", Source: "test"},
		{Currency: "GBP", QuoteCurrency: "USD", Date: "2024-02-02", Rate: "0.78", Source: "test"},
		{Currency: "JPY", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "150", Source: "test"},
		{Currency: "KWD", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.307", Source: "test"},
	}))
	return w
}

func (w *world) grant(currency, ref, pledged string) ledger.Grant {
	w.t.Helper()
	return must(w.l.CreateGrant(as(auth.Donor, w.donors[currency]), ledger.GrantInput{RoadmapID: w.roadmap.ID,
		DonorOrgID: w.donors[currency], RecipientOrgID: w.impl, Reference: ref, Title: "Grant " + ref, Currency: currency,
		Pledged: pledged, PledgedCurrency: currency, StartDate: "2024-01-01", EndDate: "2025-12-31"}, w.req()))
}

func (w *world) donor(g ledger.Grant) context.Context { return as(auth.Donor, g.DonorOrgID) }
func (w *world) implementer() context.Context         { return as(auth.Implementer, w.impl) }

func (w *world) record(ctx context.Context, g ledger.Grant, typ, amount, currency, date, ref string, opts ...func(*ledger.EntryInput)) ledger.Transaction {
	w.t.Helper()
	in := ledger.EntryInput{GrantID: g.ID, Type: typ, Amount: amount, Currency: currency, ValueDate: date, Reference: ref}
	for _, o := range opts {
		o(&in)
	}
	return must(w.l.RecordTransaction(ctx, in, w.req()))
}

func milestone(id string) func(*ledger.EntryInput) {
	return func(e *ledger.EntryInput) { e.MilestoneID = id }
}

func reverse(ctx context.Context, w *world, g ledger.Grant, id string) ledger.Transaction {
	w.t.Helper()
	return must(w.l.RecordTransaction(ctx, ledger.EntryInput{GrantID: g.ID, Type: "REVERSAL", ReversesID: id, ValueDate: "2024-05-01"}, w.req()))
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func eq(t *testing.T, what string, got decimal.Decimal, want string) {
	t.Helper()
	if !got.Equal(d(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func orgImpl(w *world, name string) (string, error) {
	o, err := org.New(w.db.App).Create(coord, org.Organization{Name: name, Kind: "IMPLEMENTER"}, "org-"+name)
	return o.ID, err
}

func must3[T any](v T, _ string, err error) T { return must(v, err) }
