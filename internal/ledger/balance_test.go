package ledger

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

func TestBalanceCheck(t *testing.T) {
	t.Parallel()
	d := decimal.RequireFromString
	tests := []struct {
		name                                     string
		pledged, committed, disbursed, allocated string
		refusal                                  string // "" when the balances hold
	}{
		{"empty", "0", "0", "0", "0", ""},
		{"fully disbursed and allocated", "10", "10", "10", "10", ""},
		{"disbursed beyond committed by a cent", "10", "10", "10.01", "0", "disbursed 10.01 USD would exceed committed 10.00 USD"},
		{"allocated beyond committed", "10", "10", "0", "10.01", "allocations 10.01 USD would exceed committed 10.00 USD"},
		// disbursed ≤ committed comes first; committed ≥ 0 is only reached on its own here.
		{"committed below zero", "10", "-0.01", "-1", "-1", "committed would fall below zero (-0.01 USD)"},
		{"pledged below zero", "-5", "0", "0", "0", "pledged would fall below zero (-5.00 USD)"},
		{"first broken rule is reported", "-5", "-1", "3", "0", "disbursed 3.00 USD would exceed committed -1.00 USD"},
	}
	for _, tc := range tests {
		b := balance{pledged: d(tc.pledged), committed: d(tc.committed), disbursed: d(tc.disbursed), allocated: d(tc.allocated)}
		err := b.check("USD")
		switch {
		case tc.refusal == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal) || !errors.Is(err, apperr.ErrFailedPrecondition)):
			t.Errorf("%s: got %v, want FAILED_PRECONDITION saying %q", tc.name, err, tc.refusal)
		}
	}
}

// The single-entry statement's condition is the invariants over the moved
// columns: nothing else, nothing left out.
func TestInvariantsSQL(t *testing.T) {
	t.Parallel()
	got := invariantsSQL(movedColumn)
	for _, want := range []string{
		"disbursed + CASE $8::text WHEN 'DISBURSEMENT' THEN $11::numeric ELSE 0 END <= committed + CASE $8::text WHEN 'COMMITMENT' THEN $11::numeric ELSE 0 END",
		"allocated <= committed + CASE $8::text WHEN 'COMMITMENT' THEN $11::numeric ELSE 0 END",
		"0 <= committed + CASE $8::text WHEN 'COMMITMENT' THEN $11::numeric ELSE 0 END",
		"0 <= pledged + CASE $8::text WHEN 'PLEDGE' THEN $11::numeric ELSE 0 END",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("condition lacks %s:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "<="); n != len(invariants) {
		t.Errorf("%d comparisons for %d invariants", n, len(invariants))
	}
	if !strings.Contains(recordSQL, got) {
		t.Error("recordSQL does not embed the invariants")
	}
}
