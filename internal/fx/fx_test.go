package fx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Rates list by pair and date, page after page, each exactly once.
func TestListPages(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	coord := auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "t", Role: auth.Coordinator})
	in := []fx.RateInput{
		rateIn("GBP", "USD", "2024-01-01", "0.80"),
		rateIn("EUR", "USD", "2024-06-01", "0.92"),
		rateIn("EUR", "USD", "2024-01-01", "0.90"),
		rateIn("EUR", "GBP", "2024-03-01", "1.17"),
		rateIn("JPY", "USD", "2024-01-01", "150"),
	}
	if _, err := s.Create(coord, in); err != nil {
		t.Fatal(err)
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		rates, next, err := s.List(coord, "", "", 2, token)
		if err != nil {
			t.Fatal(err)
		}
		if pages > 5 || len(rates) > 2 {
			t.Fatalf("page %d holds %d rates", pages, len(rates))
		}
		for _, r := range rates {
			got = append(got, r.Currency+"/"+r.QuoteCurrency+"/"+r.Date.Format("2006-01-02")+"="+r.Rate.String())
		}
		if token = next; token == "" {
			break
		}
	}
	want := "[EUR/GBP/2024-03-01=1.17 EUR/USD/2024-01-01=0.9 EUR/USD/2024-06-01=0.92 GBP/USD/2024-01-01=0.8 JPY/USD/2024-01-01=150]"
	if s := fmt.Sprint(got); s != want {
		t.Fatalf("listed %s\nwant   %s", s, want)
	}
	if eur, _, err := s.List(coord, "EUR", "USD", 0, ""); err != nil || len(eur) != 2 {
		t.Fatalf("EUR/USD: %v, %v", eur, err)
	}
	if _, _, err := s.List(coord, "", "", 2, "not-a-token"); err == nil {
		t.Fatal("a malformed page token was accepted")
	}
}

// ymd parses a test's date literal (YYYY-MM-DD).
func ymd(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // a typo in a test's literal
	}
	return d
}

// rateIn is a rate to store, from a test's literals.
func rateIn(cur, quote, date, rate string) fx.RateInput {
	return fx.RateInput{Currency: cur, QuoteCurrency: quote, Date: ymd(date), Rate: decimal.RequireFromString(rate)}
}

func coordinator() context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "t", Role: auth.Coordinator})
}

func count(t *testing.T, db *testdb.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Owner.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// violations returns the fields an InvalidError names, or fails the test.
func violations(t *testing.T, err error) []string {
	t.Helper()
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

// A request gives one rate per pair and date: a second one, different or
// identical, is refused with nothing written.
func TestCreateRefusesTwoRatesForOnePairAndDate(t *testing.T) {
	t.Parallel()
	eur := func(date, rate string) fx.RateInput { return rateIn("EUR", "USD", date, rate) }
	for _, tc := range []struct {
		name   string
		in     []fx.RateInput
		fields []string // nil: accepted
	}{
		{"different values", []fx.RateInput{eur("2024-01-01", "0.90"), eur("2024-01-01", "0.91")}, []string{"[1].rate"}},
		{"identical values", []fx.RateInput{eur("2024-01-01", "0.90"), eur("2024-01-01", "0.90")}, []string{"[1].rate"}},
		{"third repeats first", []fx.RateInput{eur("2024-01-01", "0.90"), eur("2024-01-02", "0.90"), eur("2024-01-01", "0.9")}, []string{"[2].rate"}},
		{"two dates", []fx.RateInput{eur("2024-01-01", "0.90"), eur("2024-01-02", "0.91")}, nil},
		{"both directions", []fx.RateInput{eur("2024-01-01", "0.90"), rateIn("USD", "EUR", "2024-01-01", "1.11")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			n, err := fx.New(db.App).Create(coordinator(), tc.in)
			if tc.fields == nil {
				if err != nil || n != len(tc.in) {
					t.Fatalf("created %d, %v", n, err)
				}
				return
			}
			if got := violations(t, err); fmt.Sprint(got) != fmt.Sprint(tc.fields) {
				t.Fatalf("violations on %v, want %v (%v)", got, tc.fields, err)
			}
			if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != 0 {
				t.Fatalf("%d rates written", n)
			}
			if n := count(t, db, `SELECT count(*) FROM audit_events`); n != 0 {
				t.Fatalf("%d audit events written", n)
			}
		})
	}
}

// A rate already stored: the same value is skipped, another is refused
// naming the rate, and neither writes anything.
func TestCreateAgainstStoredRate(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	ctx := coordinator()
	if _, err := s.Create(ctx, []fx.RateInput{rateIn("EUR", "USD", "2024-01-01", "0.90")}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Create(ctx, []fx.RateInput{rateIn("EUR", "USD", "2024-01-01", "0.900")})
	if err != nil || n != 0 {
		t.Fatalf("resending a stored rate: created %d, %v", n, err)
	}
	_, err = s.Create(ctx, []fx.RateInput{
		rateIn("GBP", "USD", "2024-01-01", "0.80"),
		rateIn("EUR", "USD", "2024-01-01", "0.95"),
	})
	if !errors.Is(err, apperr.ErrAlreadyExists) || !strings.Contains(err.Error(), "rate 1 of this request (EUR/USD 2024-01-01)") || !strings.Contains(err.Error(), "0.9 ") {
		t.Fatalf("a conflicting rate: %v", err)
	}
	if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != 1 {
		t.Fatalf("%d rates stored, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_events`); n != 1 {
		t.Fatalf("%d audit events, want 1", n)
	}
}

// Many requests write conflicting rates for one pair and date at once:
// exactly one value is stored, every other caller gets ALREADY_EXISTS, and the
// audit trail records the stored rate once.
func TestCreateConcurrentConflictingRates(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	const writers = 12
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			// GBP/USD gives every request a rate of its own besides the conflict.
			_, errs[i] = s.Create(coordinator(), []fx.RateInput{
				rateIn("GBP", "USD", fmt.Sprintf("2024-02-%02d", i+1), "0.80"),
				rateIn("EUR", "USD", "2024-01-01", fmt.Sprintf("0.90%02d", i)),
			})
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("requests %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, apperr.ErrAlreadyExists) || !strings.Contains(err.Error(), "rate 1 of this request (EUR/USD 2024-01-01)"):
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no request succeeded")
	}
	var stored decimal.Decimal
	if err := db.Owner.QueryRow(context.Background(), `SELECT rate FROM fx_rates WHERE currency = 'EUR'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("0.90%02d", winner); !stored.Equal(decimal.RequireFromString(want)) {
		t.Fatalf("stored %s, the successful request gave %s", stored, want)
	}
	if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != 2 {
		t.Fatalf("%d rates stored, want the winner's 2", n)
	}
	// One event, holding exactly the rates stored.
	var change string
	if err := db.Owner.QueryRow(context.Background(), `SELECT string_agg(change, '') FROM audit_events WHERE entity_type = 'fx_rates'`).Scan(&change); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_events`); n != 1 ||
		!strings.Contains(change, `"rate":"`+stored.String()+`"`) || strings.Count(change, `"rate":`) != 2 {
		t.Fatalf("%d audit events, change %s", n, change)
	}
}

// Rates outside the plausibility limits are refused naming the rate.
func TestCreateRefusesImplausibleRates(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	_, err := s.Create(coordinator(), []fx.RateInput{
		rateIn("EUR", "USD", "2024-01-01", "0."+strings.Repeat("0", 36)+"1"), // 1e-37
		rateIn("IRR", "KWD", "2024-01-01", "3250000"),
		rateIn("GBP", "USD", "2024-01-01", "1000000000000000"),
		rateIn("JPY", "USD", "2024-01-01", "150.1234567890123456"),
	})
	if got := fmt.Sprint(violations(t, err)); got != "[[0].rate [2].rate [3].rate]" {
		t.Fatalf("violations on %s (%v)", got, err)
	}
	if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != 0 {
		t.Fatalf("%d rates written", n)
	}
}

// A rate more than a factor of 1.5 away from the pair's previous one (the
// latest before its date, direct or inverse, stored or earlier in the same
// request) needs confirmLargeChange; the confirmation is audited.
func TestCreateLargeChangeNeedsConfirmation(t *testing.T) {
	t.Parallel()
	rate := func(cur, quote, date, r string, confirm bool) fx.RateInput {
		in := rateIn(cur, quote, date, r)
		in.ConfirmLargeChange = confirm
		return in
	}
	stored := []fx.RateInput{
		rate("EUR", "USD", "2024-01-01", "0.90", false),
		rate("USD", "GBP", "2024-01-01", "1.25", false), // 0.8 GBP per USD
	}
	for _, tc := range []struct {
		name    string
		in      []fx.RateInput
		field   string // "": accepted
		message string // in the refusal: the previous rate and its date
	}{
		{"small change", []fx.RateInput{rate("EUR", "USD", "2024-02-01", "0.95", false)}, "", ""},
		{"exactly 1.5 times", []fx.RateInput{rate("EUR", "USD", "2024-02-01", "1.35", false)}, "", ""},
		{"up", []fx.RateInput{rate("EUR", "USD", "2024-02-01", "1.36", false)}, "[0].confirmLargeChange", "0.9 of 2024-01-01"},
		{"down", []fx.RateInput{rate("EUR", "USD", "2024-02-01", "0.09", false)}, "[0].confirmLargeChange", "0.9 of 2024-01-01"},
		{"confirmed", []fx.RateInput{rate("EUR", "USD", "2024-02-01", "0.09", true)}, "", ""},
		{"against the inverse pair", []fx.RateInput{rate("GBP", "USD", "2024-02-01", "1.25", false)}, "[0].confirmLargeChange", "0.8 of 2024-01-01"},
		{"earlier in the request", []fx.RateInput{rate("CHF", "USD", "2024-01-01", "0.88", false), rate("CHF", "USD", "2024-01-02", "8.8", false)},
			"[1].confirmLargeChange", "0.88 of 2024-01-01"},
		{"no previous rate (the next one does not count)", []fx.RateInput{rate("EUR", "USD", "2023-12-31", "9.0", false)}, "", ""},
		{"earlier in the request, given later", []fx.RateInput{rate("EUR", "USD", "2023-12-31", "0.90", false), rate("EUR", "USD", "2023-12-30", "9.0", false)},
			"[0].confirmLargeChange", "9 of 2023-12-30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			s := fx.New(db.App)
			if _, err := s.Create(coordinator(), stored); err != nil {
				t.Fatal(err)
			}
			n, err := s.Create(coordinator(), tc.in)
			if tc.field == "" {
				if err != nil || n != len(tc.in) {
					t.Fatalf("created %d, %v", n, err)
				}
				var change string
				if err := db.Owner.QueryRow(context.Background(), `SELECT change FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&change); err != nil {
					t.Fatal(err)
				}
				if confirmed := strings.Contains(change, `"largeChangeConfirmed":true`); confirmed != (tc.name == "confirmed") {
					t.Fatalf("audited %s", change)
				}
				return
			}
			if got := fmt.Sprint(violations(t, err)); got != "["+tc.field+"]" || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("violations on %s: %v; want %s with %q", got, err, tc.field, tc.message)
			}
			if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != len(stored) {
				t.Fatalf("%d rates stored, want %d", n, len(stored))
			}
		})
	}
}

// Create names each bad field by the rate's position in the list ([1].date),
// the list itself by the empty name, in request order, and writes nothing;
// a refusal that mentions another rate names it by its position too. A
// rate's date lies within the service's plausible range and its source is
// checked as text.
func TestCreateViolationsNameListPositions(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	ok := rateIn("GBP", "USD", "2024-01-01", "0.80")
	with := func(r fx.RateInput, edit func(*fx.RateInput)) fx.RateInput { edit(&r); return r }
	eur := rateIn("EUR", "USD", "2024-01-01", "0.90")
	for _, tc := range []struct {
		name    string
		in      []fx.RateInput
		want    string
		message string // in the refusal
	}{
		{"no rates", nil, `[""]`, "between 1 and 10000 rates, got 0"},
		{"no date", []fx.RateInput{ok, with(eur, func(r *fx.RateInput) { r.Date = time.Time{} })}, `["[1].date"]`, "required"},
		{"a date before 1990", []fx.RateInput{rateIn("EUR", "USD", "1989-12-31", "0.9")}, `["[0].date"]`, "outside 1990-01-01 to 2099-12-31"},
		{"a date after 2099", []fx.RateInput{rateIn("EUR", "USD", "2100-01-01", "0.9")}, `["[0].date"]`, "outside"},
		{"no rate", []fx.RateInput{with(eur, func(r *fx.RateInput) { r.Rate = decimal.Decimal{} })}, `["[0].rate"]`, "must be positive"},
		{"one currency", []fx.RateInput{rateIn("USD", "USD", "2024-01-01", "1")}, `["[0].quoteCurrency"]`, "must differ"},
		{"source too long", []fx.RateInput{with(eur, func(r *fx.RateInput) { r.Source = strings.Repeat("é", 201) })}, `["[0].source"]`, "at most 200"},
		{"NUL in the source", []fx.RateInput{with(eur, func(r *fx.RateInput) { r.Source = "EC\x00B" })}, `["[0].source"]`, "without NUL"},
		{"a repeated rate names the first", []fx.RateInput{eur, ok, rateIn("EUR", "USD", "2024-01-01", "0.91")}, `["[2].rate"]`,
			"rate 0 of this request already gives the EUR/USD rate for 2024-01-01 (0.9)"},
		{"in request order", []fx.RateInput{rateIn("XXX", "USD", "2024-01-01", "1"), ok, rateIn("EUR", "USD", "1900-01-01", "0")},
			`["[0].currency" "[2].date" "[2].rate"]`, ""},
	} {
		_, err := s.Create(coordinator(), tc.in)
		if got := fmt.Sprintf("%q", violations(t, err)); got != tc.want || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: violations on %s: %v; want %s with %q", tc.name, got, err, tc.want, tc.message)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != 0 {
		t.Fatalf("%d rates written", n)
	}
	// The source is stored trimmed; 200 characters of any script are fine.
	long := strings.Repeat("é", 200)
	if _, err := s.Create(coordinator(), []fx.RateInput{with(eur, func(r *fx.RateInput) { r.Source = "  ECB " }),
		with(ok, func(r *fx.RateInput) { r.Source = long })}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM fx_rates WHERE source IN ('ECB', $1)`, long); n != 2 {
		t.Fatalf("%d sources stored as given (trimmed), want 2", n)
	}
}
