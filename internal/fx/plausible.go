package fx

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// Plausibility limits on a rate, whether a table rate or an entry's own
// fxRate (units of currency per one unit of quote currency). They refuse what
// no real pair of currencies comes near, so a typo such as 1e-37 cannot turn
// 1.00 EUR into 10^37 USD; the large-change rule catches a typo within them.
//
// The widest real pair today is about 3 × 10^6 units (Iranian rial per
// Kuwaiti dinar at the rial's market rate, about 10^6 IRR per USD; LBP, VND,
// IDR and UZS are 10^4 to 10^5 per USD), and its inverse about 3 × 10^-7,
// so the limits leave a factor of 30 for inflation either way.
var (
	MinRate = decimal.New(1, -8) // 0.00000001
	MaxRate = decimal.New(1, 8)  // 100 000 000
)

// MaxRateDigits bounds a rate's significant digits: central banks publish
// four to six, and a float carried through a spreadsheet about sixteen.
const MaxRateDigits = 15

// LargeChange is how far a rate may move from the pair's previous rate
// without an explicit confirmation: by more than this factor either way
// (above 1.5 times or below two thirds of it, so the rule reads the same for
// the inverse pair).
var LargeChange = decimal.RequireFromString("1.5")

// CheckRate holds a rate to the plausibility limits. The error names no
// field: the caller knows which one the rate came from.
func CheckRate(r decimal.Decimal) error {
	switch {
	case !r.IsPositive():
		return fmt.Errorf("must be positive")
	case r.LessThan(MinRate) || r.GreaterThan(MaxRate):
		return fmt.Errorf("%s is outside the plausible range %s to %s", r, MinRate, MaxRate)
	case significantDigits(r) > MaxRateDigits:
		return fmt.Errorf("%s has more than %d significant digits", r, MaxRateDigits)
	}
	return nil
}

// IsLargeChange reports whether r is more than LargeChange away from prev,
// either way; both must be positive.
func IsLargeChange(prev, r decimal.Decimal) bool {
	return r.GreaterThan(prev.Mul(LargeChange)) || prev.GreaterThan(r.Mul(LargeChange))
}

func significantDigits(d decimal.Decimal) int {
	c := strings.TrimRight(strings.TrimLeft(d.Coefficient().String(), "-"), "0")
	return len(c)
}
