package fx_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/money"
)

// day is a date of 2024 by its number in the year ("45" is 14 February, "0"
// the last day of 2023).
func day(n string) time.Time {
	d, _ := strconv.Atoi(n)
	return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC)
}

// rateOf is a rate dated by day of 2024.
func rateOf(cur, quote, dayOfYear, rate string) fx.Rate {
	return fx.Rate{Currency: cur, QuoteCurrency: quote, Date: day(dayOfYear), Rate: decimal.RequireFromString(rate)}
}

// The table's lookup, without a database: the latest rate on or before the
// date, direct, inverse (whichever is dated later) or crossed through the
// reporting currency; none names the pair and the date.
func TestTableRate(t *testing.T) {
	t.Parallel()
	table := fx.NewTable(
		// given out of order: the table sorts by date
		rateOf("EUR", "USD", "10", "0.92"),
		rateOf("EUR", "USD", "1", "0.90"),
		rateOf("EUR", "USD", "20", "0.95"),
		rateOf("USD", "EUR", "15", "1.25"), // inverse, dated between the direct ones
		rateOf("GBP", "USD", "1", "0.80"),
		rateOf("JPY", "USD", "1", "150"),
		rateOf("KWD", "USD", "1", "0.3075"),
		rateOf("CHF", "EUR", "5", "0.96"),
	)
	for _, tc := range []struct {
		name, from, to, via, day string
		want                     string // "" for no rate
	}{
		{"same currency", "EUR", "EUR", "", "1", "1"},
		{"on the rate's date", "EUR", "USD", "", "1", "0.9"},
		{"between two rates: the earlier", "EUR", "USD", "", "9", "0.9"},
		{"on the second date", "EUR", "USD", "", "10", "0.92"},
		{"an inverse dated later wins", "EUR", "USD", "", "16", "0.8"},
		{"a direct dated later wins back", "EUR", "USD", "", "25", "0.95"},
		{"inverse only", "USD", "GBP", "", "3", "1.25"},
		{"inverse to 24 places", "USD", "JPY", "", "3", "0.006666666666666666666667"},
		{"USD per EUR when the inverse is later", "USD", "EUR", "", "16", "1.25"},
		{"crossed through the reporting currency", "GBP", "JPY", "USD", "2", "0.005333333333333333333333"},
		{"crossed, KWD per GBP", "KWD", "GBP", "USD", "2", "0.384375"},
		{"crossed where the direct pair exists: direct", "CHF", "EUR", "USD", "6", "0.96"},
		{"no via given", "GBP", "JPY", "", "2", ""},
		{"before the first rate", "EUR", "USD", "", "0", ""},
		{"unknown pair", "EUR", "AFN", "USD", "5", ""},
		{"crossed, one leg missing", "CHF", "GBP", "USD", "6", ""},
	} {
		got, err := table.Rate(tc.from, tc.to, tc.via, day(tc.day))
		if tc.want == "" {
			date := day(tc.day).Format(time.DateOnly)
			if !errors.Is(err, apperr.ErrFailedPrecondition) || !strings.Contains(err.Error(), tc.from+"/"+tc.to) || !strings.Contains(err.Error(), date) {
				t.Errorf("%s: got %s, %v; want FAILED_PRECONDITION naming %s/%s and %s", tc.name, got, err, tc.from, tc.to, date)
			}
			continue
		}
		if err != nil || !got.Equal(decimal.RequireFromString(tc.want)) {
			t.Errorf("%s: %s/%s on day %s = %s, %v; want %s", tc.name, tc.from, tc.to, tc.day, got, err, tc.want)
		}
	}
}

// Converting through the table: units of the amount's currency per target
// unit, full precision, one half-to-even rounding to the target's minor units.
func TestTableConversionRounding(t *testing.T) {
	t.Parallel()
	table := fx.NewTable(
		rateOf("EUR", "USD", "1", "0.88"),
		rateOf("EUR", "USD", "2", "0.8"),
		rateOf("JPY", "USD", "1", "150"),
		rateOf("KWD", "USD", "1", "0.3075"),
		rateOf("USD", "EUR", "3", "1.6"), // 0.625 EUR per USD
	)
	for _, tc := range []struct {
		amount, cur, target, via, day, want string
	}{
		{"3500000", "EUR", "USD", "", "1", "3977272.73"}, // DESIGN section 3's example
		{"0.10", "EUR", "USD", "", "2", "0.12"},          // 0.125: half to even, down
		{"0.14", "EUR", "USD", "", "2", "0.18"},          // 0.175: half to even, up
		{"-0.10", "EUR", "USD", "", "2", "-0.12"},        // a negative commitment rounds the same way
		{"1.00", "USD", "EUR", "", "3", "0.62"},          // 1 / 1.6 = 0.625: half to even, down
		{"0.05", "EUR", "USD", "", "3", "0.08"},          // through the inverse pair: 0.05 / 0.625
		{"375", "JPY", "USD", "", "1", "2.5"},            // 2.50
		{"1.00", "USD", "JPY", "", "1", "150"},           // JPY: no minor units
		{"0.05", "EUR", "JPY", "USD", "2", "9"},          // 0.05 / (0.8 / 150) = 9.375 → 9
		{"1.00", "KWD", "EUR", "USD", "2", "2.6"},        // 1 / (0.3075 / 0.8) = 2.601626… → 2.60
		{"100.00", "EUR", "KWD", "USD", "2", "38.438"},   // 100 / (0.8 / 0.3075) = 38.4375 → 38.438 (half to even, up)
	} {
		rate, err := table.Rate(tc.cur, tc.target, tc.via, day(tc.day))
		if err != nil {
			t.Fatalf("%s %s → %s: %v", tc.amount, tc.cur, tc.target, err)
		}
		got := money.Convert(decimal.RequireFromString(tc.amount), rate, false, tc.target)
		if !got.Equal(decimal.RequireFromString(tc.want)) {
			t.Errorf("%s %s → %s on day %s at %s = %s, want %s", tc.amount, tc.cur, tc.target, tc.day, rate, got, tc.want)
		}
	}
}
