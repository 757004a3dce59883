package ledger_test

import (
	"context"
	"fmt"
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

func TestMain(m *testing.M) { testdb.Main(m) }

func as(role auth.Role, orgID string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
}

var coord = as(auth.Coordinator, "")

type world struct {
	t        testing.TB
	db       *testdb.DB
	l        *ledger.Store
	roadmaps *roadmap.Store
	roadmap  roadmap.Roadmap
	m1, m2   roadmap.Milestone
	impl     string
	donors   map[string]string // currency → donor org id
	reqs     int
}

func (w *world) req() string { w.reqs++; return fmt.Sprintf("req-%d", w.reqs) }

// result is a call's value and error, so that a setup step reads as
// try(call()).must(t): the test stops with t.Fatal when the step failed.
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

// try3 drops the page token of a list call.
func try3[T any](v T, _ string, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// id parses an id; empty is uuid.Nil.
func id(s string) uuid.UUID {
	if s == "" {
		return uuid.Nil
	}
	return uuid.MustParse(s)
}

// day parses a date; empty is the zero time.
func day(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // a typo in a test's literal
	}
	return t
}

// amt is an amount; an empty currency is no amount.
func amt(amount, currency string) money.Amount {
	if currency == "" {
		return money.Amount{}
	}
	return money.Amount{Value: decimal.RequireFromString(amount), Currency: currency}
}

// rate parses an entry's own rate; empty is none.
func rate(s string) *decimal.Decimal {
	if s == "" {
		return nil
	}
	r := decimal.RequireFromString(s)
	return &r
}

// newWorld sets up a roadmap (USD), two milestones, an implementer and one
// donor per agreement currency, with the FX rates of the scenario.
func newWorld(t testing.TB) *world {
	db := testdb.New(t)
	w := &world{t: t, db: db, l: ledger.New(db.App), roadmaps: roadmap.New(db.App), donors: map[string]string{}}
	orgs := org.New(db.App)
	w.impl = try(orgs.Create(coord, org.Organization{Name: "Demining NGO", Kind: "IMPLEMENTER"}, "impl")).must(t).ID
	for _, c := range []string{"EUR", "GBP", "JPY", "KWD", "USD"} {
		w.donors[c] = try(orgs.Create(coord, org.Organization{Name: "Donor " + c, Kind: "DONOR"}, "donor-"+c)).must(t).ID
	}
	w.roadmap = try(w.roadmaps.Create(coord, roadmap.Input{Country: "AFG", Title: "National Mine Action Strategy",
		StartDate: day("2024-01-01"), EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, w.req())).must(t)
	w.m1 = try(w.roadmaps.CreateMilestone(coord, id(w.roadmap.ID), roadmap.MilestoneInput{Code: "M-1", Title: "Clear Helmand minefields",
		ActivityType: "CLEARANCE", Region: "AF-HEL", TargetQuantity: d("2500000"), TargetUnit: "m2", DueDate: day("2025-12-31"),
		FundingRequirement: amt("5000000.00", "USD"), ResponsibleOrgID: id(w.impl)}, w.req())).must(t)
	w.m2 = try(w.roadmaps.CreateMilestone(coord, id(w.roadmap.ID), roadmap.MilestoneInput{Code: "M-2", Title: "Risk education in Kandahar",
		ActivityType: "EORE", FundingRequirement: amt("1000000.00", "USD")}, w.req())).must(t)
	try(fx.New(db.App).Create(coord, []fx.RateInput{
		{Currency: "EUR", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: d("0.90"), Source: "test"},
		{Currency: "EUR", QuoteCurrency: "USD", Date: day("2024-06-01"), Rate: d("0.92"), Source: "test"},
		{Currency: "GBP", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: d("0.80"), Source: "test"},
		{Currency: "GBP", QuoteCurrency: "USD", Date: day("2024-02-02"), Rate: d("0.78"), Source: "test"},
		{Currency: "JPY", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: d("150"), Source: "test"},
		{Currency: "KWD", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: d("0.307"), Source: "test"},
	})).must(t)
	return w
}

func (w *world) grant(currency, ref, pledged string) ledger.Grant {
	w.t.Helper()
	return try(w.l.CreateGrant(as(auth.Donor, w.donors[currency]), ledger.GrantInput{RoadmapID: id(w.roadmap.ID),
		DonorOrgID: id(w.donors[currency]), RecipientOrgID: id(w.impl), Reference: ref, Title: "Grant " + ref, Currency: currency,
		Pledged: amt(pledged, currency), StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}, w.req())).must(w.t)
}

func (w *world) donor(g ledger.Grant) context.Context { return as(auth.Donor, g.DonorOrgID) }
func (w *world) implementer() context.Context         { return as(auth.Implementer, w.impl) }

func (w *world) record(ctx context.Context, g ledger.Grant, typ, amount, currency, date, ref string, opts ...func(*ledger.EntryInput)) ledger.Transaction {
	w.t.Helper()
	in := ledger.EntryInput{GrantID: id(g.ID), Type: typ, Amount: amt(amount, currency), ValueDate: day(date), Reference: ref}
	for _, o := range opts {
		o(&in)
	}
	return try(w.l.RecordTransaction(ctx, in, w.req())).must(w.t)
}

func milestone(m string) func(*ledger.EntryInput) {
	return func(e *ledger.EntryInput) { e.MilestoneID = id(m) }
}

func reverse(ctx context.Context, w *world, g ledger.Grant, entry string) ledger.Transaction {
	w.t.Helper()
	return try(w.l.RecordTransaction(ctx, ledger.EntryInput{GrantID: id(g.ID), Type: "REVERSAL", ReversesID: id(entry), ValueDate: day("2024-05-01")}, w.req())).must(w.t)
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
