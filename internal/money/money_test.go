package money

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, cur, want string
		ok            bool
	}{
		{"1500000.00", "EUR", "1500000", true},
		{"0.5", "USD", "0.5", true},
		{"-250000", "GBP", "-250000", true},
		{"12.345", "USD", "", false},
		{"999999999999999.99", "USD", "999999999999999.99", true}, // 15 integer digits
		{"1000000000000000", "USD", "", false},                    // 16
		{"-1000000000000000.00", "USD", "", false},
		{"12.345", "KWD", "12.345", true},
		{"12.3456", "KWD", "", false},
		{"100", "JPY", "100", true},
		{"100.0", "JPY", "", false},
		{"1e3", "USD", "", false},
		{"1E3", "USD", "", false},
		{"NaN", "USD", "", false},
		{"Infinity", "USD", "", false},
		{"", "USD", "", false},
		{" 1", "USD", "", false},
		{"+1", "USD", "", false},
		{"1,000.00", "USD", "", false},
		{"01", "USD", "", false},
		{".5", "USD", "", false},
		{"5.", "USD", "", false},
		{"0x10", "USD", "", false},
		{strings.Repeat("9", 40), "USD", "", false},
		{strings.Repeat("9", 15) + ".99", "USD", strings.Repeat("9", 15) + ".99", true},
		{"1.00", "XXX", "", false},
		{"1.00", "usd", "", false},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in, tc.cur)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q, %s): err %v, want ok=%v", tc.in, tc.cur, err, tc.ok)
			continue
		}
		if tc.ok && !got.Equal(decimal.RequireFromString(tc.want)) {
			t.Errorf("Parse(%q, %s) = %s, want %s", tc.in, tc.cur, got, tc.want)
		}
	}
}

func TestConvertRoundsOnceHalfToEven(t *testing.T) {
	t.Parallel()
	d := decimal.RequireFromString
	tests := []struct {
		amount, rate string
		inverse      bool
		target, want string
	}{
		// DESIGN.md: 0.88 EUR per USD means 3 500 000 EUR = 3 977 272.727… USD.
		{"3500000", "0.88", false, "USD", "3977272.73"},
		{"1", "3", false, "USD", "0.33"},
		{"0.125", "1", false, "USD", "0.12"},   // half to even: down
		{"0.135", "1", false, "USD", "0.14"},   // half to even: up
		{"1000", "0.88", true, "EUR", "880"},   // USD→EUR with EUR per USD
		{"100", "151.3", false, "USD", "0.66"}, // JPY→USD
		{"1000", "0.3071", false, "USD", "3256.27"},
		{"1000", "0.3071", true, "KWD", "307.1"},
		{"2.5", "1", false, "JPY", "2"}, // banker's rounding to 0 decimals
		{"3.5", "1", false, "JPY", "4"},
	}
	for _, tc := range tests {
		got := Convert(d(tc.amount), d(tc.rate), tc.inverse, tc.target)
		if !got.Equal(d(tc.want)) {
			t.Errorf("Convert(%s, %s, %v, %s) = %s, want %s", tc.amount, tc.rate, tc.inverse, tc.target, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1500000.00", "-1", "1e3", "NaN", "12.345", "0.000", "99999999999999999999", "1.", "-0", "٣"} {
		f.Add(s, "USD")
		f.Add(s, "KWD")
		f.Add(s, "JPY")
	}
	f.Fuzz(func(t *testing.T, s, cur string) {
		d, err := Parse(s, cur)
		if err != nil {
			return
		}
		// Whatever is accepted round-trips exactly and fits the currency.
		minor, _ := Currency(cur)
		if !d.Equal(d.Round(minor)) {
			t.Fatalf("%q in %s accepted with more than %d decimals", s, cur, minor)
		}
		back, err := decimal.NewFromString(Format(d, cur))
		if err != nil || !back.Equal(d) {
			t.Fatalf("%q in %s does not round-trip: %s", s, cur, Format(d, cur))
		}
		if len(strings.TrimPrefix(strings.SplitN(s, ".", 2)[0], "-")) > MaxIntegerDigits {
			t.Fatalf("%q accepted with too many digits", s)
		}
	})
}

// A converted amount obeys the digit limit of an entered one, either sign.
func TestCheckConverted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"999999999999999.99", true},
		{"-999999999999999.99", true},
		{"0", true},
		{"1000000000000000", false},
		{"-1000000000000000.00", false},
		{"10000000000000000000000000000000000000", false}, // 1.00 EUR at a rate of 1e-37
	} {
		err := CheckConverted(decimal.RequireFromString(tc.in), "USD")
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
