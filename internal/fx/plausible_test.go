package fx_test

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/fx"
)

func TestCheckRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate string
		ok   bool
	}{
		{"0.9", true},
		{"0.00000001", true},   // MinRate
		{"0.000000009", false}, // below it
		{"0.0000000000000000000000000000000000001", false},
		{"100000000", true},    // MaxRate
		{"100000000.5", false}, // above it
		{"1000000000000000", false},
		{"3250000", true},          // IRR per KWD at the rial's market rate
		{"0.000000307692", true},   // its inverse
		{"89500", true},            // LBP per USD
		{"0.3075", true},           // KWD per USD
		{"1.23456789012345", true}, // 15 significant digits
		{"1.234567890123456", false},
		{"0.000012345678901234", true},   // leading zeros are not significant
		{"1.50000000000000000000", true}, // nor trailing ones
		{"0", false},
		{"-0.9", false},
	} {
		err := fx.CheckRate(decimal.RequireFromString(tc.rate))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.rate, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "rate") {
			t.Errorf("%s: the message %q names a field; callers do", tc.rate, err)
		}
	}
}

// A change by more than a factor of 1.5 either way is large, so the rule
// reads the same for a pair and its inverse.
func TestIsLargeChange(t *testing.T) {
	t.Parallel()
	d := decimal.RequireFromString
	for _, tc := range []struct {
		prev, rate string
		large      bool
		boundary   bool // exactly on the limit: its inverse, rounded, is not
	}{
		{"0.90", "0.91", false, false},
		{"0.90", "1.35", false, true}, // exactly 1.5 ×
		{"0.90", "1.3500001", true, false},
		{"0.90", "0.60", false, true}, // exactly ÷ 1.5
		{"0.90", "0.5999999", true, false},
		{"0.90", "90", true, false}, // a misplaced decimal point
		{"42000", "4200", true, false},
		{"42000", "43000", false, false},
	} {
		if got := fx.IsLargeChange(d(tc.prev), d(tc.rate)); got != tc.large {
			t.Errorf("%s → %s: large=%v, want %v", tc.prev, tc.rate, got, tc.large)
		}
		inv := func(s string) decimal.Decimal { return decimal.NewFromInt(1).DivRound(d(s), 30) }
		if got := fx.IsLargeChange(inv(tc.prev), inv(tc.rate)); got != tc.large && !tc.boundary {
			t.Errorf("inverse of %s → %s: large=%v, want %v", tc.prev, tc.rate, got, tc.large)
		}
	}
}
