// Package money parses and rounds decimal amounts under ISO 4217 rules.
// Amounts are shopspring/decimal values, never floats.
package money

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/isocodes"
)

// MaxIntegerDigits bounds amounts to below 10^15 units, far above any grant and
// well inside NUMERIC, so a 40-digit typo is refused rather than stored.
const MaxIntegerDigits = 15

// plain decimal notation only: no exponent, no sign but a leading minus, no
// NaN or Infinity, no thousands separators.
var plain = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// Amount is a validated amount in a currency.
type Amount struct {
	Value    decimal.Decimal
	Currency string
}

func (a Amount) String() string { return Format(a.Value, a.Currency) + " " + a.Currency }

// Currency checks an ISO 4217 code and returns its minor units.
func Currency(code string) (int32, error) {
	m, ok := isocodes.MinorUnits(code)
	if !ok {
		return 0, fmt.Errorf("unknown ISO 4217 currency %q", code)
	}
	return m, nil
}

// Parse reads an amount in currency: plain decimal notation, at most the
// currency's minor units (more decimals are refused, not rounded).
func Parse(s, currency string) (decimal.Decimal, error) {
	minor, err := Currency(currency)
	if err != nil {
		return decimal.Decimal{}, err
	}
	d, err := ParseDecimal(s)
	if err != nil {
		return d, err
	}
	if _, frac, ok := strings.Cut(s, "."); ok && int32(len(frac)) > minor {
		return decimal.Decimal{}, fmt.Errorf("%s allows %d decimal places, %q has %d", currency, minor, s, len(frac))
	}
	return d, nil
}

// ParseDecimal reads a plain decimal number (quantities, rates).
func ParseDecimal(s string) (decimal.Decimal, error) {
	if !plain.MatchString(s) {
		return decimal.Decimal{}, fmt.Errorf("%q is not a plain decimal number (digits, optional '-' and '.'; no exponent)", s)
	}
	intPart, _, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if len(intPart) > MaxIntegerDigits {
		return decimal.Decimal{}, fmt.Errorf("%q is too large (at most %d integer digits)", s, MaxIntegerDigits)
	}
	return decimal.NewFromString(s)
}

// Round rounds half-to-even to the currency's minor units.
func Round(d decimal.Decimal, currency string) decimal.Decimal {
	minor, _ := isocodes.MinorUnits(currency)
	return d.RoundBank(minor)
}

// Format writes d with exactly the currency's minor units.
func Format(d decimal.Decimal, currency string) string {
	minor, _ := isocodes.MinorUnits(currency)
	return d.StringFixedBank(minor)
}

// conversionPrecision is the number of decimals kept when dividing by a rate,
// before the single rounding to the target's minor units.
const conversionPrecision = 24

// Convert turns amount in a currency into target using rate = units of the
// amount's currency per one unit of target (inverse=false), or units of target
// per one unit of the amount's currency (inverse=true), at full precision,
// then rounds once half-to-even to target's minor units.
func Convert(amount, rate decimal.Decimal, inverse bool, target string) decimal.Decimal {
	var v decimal.Decimal
	if inverse {
		v = amount.Mul(rate)
	} else {
		v = amount.DivRound(rate, conversionPrecision)
	}
	return Round(v, target)
}

// CheckConverted holds an amount computed by conversion to the limit of
// entered amounts (MaxIntegerDigits), so a conversion cannot produce a figure
// no client could have entered. The error names no field.
func CheckConverted(d decimal.Decimal, currency string) error {
	if d.Abs().GreaterThanOrEqual(decimal.New(1, MaxIntegerDigits)) {
		return fmt.Errorf("converts to %s %s, beyond the %d integer digits an amount may have", Format(d, currency), currency, MaxIntegerDigits)
	}
	return nil
}

// InMinorUnits tells whether a is a known currency's amount with no more
// decimals than its minor units: what Parse accepts, for amounts that come
// typed rather than as text.
func InMinorUnits(a Amount) bool {
	minor, ok := isocodes.MinorUnits(a.Currency)
	return ok && a.Value.Equal(a.Value.Truncate(minor))
}
