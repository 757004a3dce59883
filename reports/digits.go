package reports

import (
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// A spreadsheet cell holds a number as a double, which carries any decimal
// of up to 15 significant digits exactly (the shortest decimal that reads
// back as that double is the decimal itself). Longer values — an amount of
// 10^13 or more in a two-decimal currency, an inverse or cross rate the
// ledger computes to 24 decimals — cannot travel in a numeric cell, so the
// pack writes them as text cells holding the exact decimal, and the
// canonical form stays exact. The writer and the verifier decide with the
// same function, on the value's text.
const maxCellDigits = 15

// sigDigits is the number of significant digits of a plain decimal string:
// from the first non-zero digit to the last non-zero digit, so trailing
// zeros and the sign do not count ("1.50" has 2, "100" has 1, "0.0012" 2).
func sigDigits(s string) int {
	first, last := -1, -1
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		if c != '0' {
			if first < 0 {
				first = n
			}
			last = n
		}
		n++
	}
	if first < 0 {
		return 0
	}
	return last - first + 1
}

// plainDecimal reports whether s is a plain decimal: an optional '-',
// digits, optionally '.' and digits; no exponent, no spaces.
func plainDecimal(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	digits, point := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !point && digits > 0 && i < len(s)-1:
			point = true
		default:
			return false
		}
	}
	return digits > 0
}

// shortestDecimal is the shortest decimal that reads back as the double
// nearest to s ("" when s is not a number).
func shortestDecimal(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return ""
	}
	return decimal.NewFromFloat(f).String()
}

// decimalCell decides how a Decimal-kind value is written: its canonical
// string, and whether the cell is a number (else a text cell holding the
// canonical string). A value of at most 15 significant digits is a number.
// A longer value whose double reads back as a decimal of at most 15 digits
// with the same whole units (it lies within a double's precision of that
// shorter decimal in its fraction, e.g. 0.920000000000000000000001) is
// written as that shorter decimal: a
// verifier could not tell its text from a number saved again by a
// spreadsheet application, so the pack does not pretend to more precision
// than the cell shows. Anything else is text, exact.
func decimalCell(s string) (canonical string, number bool) {
	if sigDigits(s) <= maxCellDigits {
		return s, true
	}
	if sh := shortestDecimal(s); sh != "" && sigDigits(sh) <= maxCellDigits && intPart(sh) == intPart(s) {
		return sh, true
	}
	return s, false
}

// intPart is a plain decimal's sign and integer digits: the shorter
// decimal of decimalCell may drop fraction digits a double cannot hold,
// never whole units (10000000000000001 is not 1e16).
func intPart(s string) string {
	i, _, _ := strings.Cut(s, ".")
	if i == "-0" {
		return "0"
	}
	return i
}
