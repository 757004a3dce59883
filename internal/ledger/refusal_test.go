package ledger

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// A refusal is explained from the balance row the statement saw, in the
// batch check's words; a row that would now accept the entry means "retry".
func TestBalanceRefusal(t *testing.T) {
	t.Parallel()
	g := &Grant{Currency: "USD", Reference: "GR-1"}
	disb := Transaction{Type: Disbursement, Bucket: Disbursement, Amount: decimal.RequireFromString("20"), Currency: "USD",
		AgreementAmount: decimal.RequireFromString("20.00")}
	cut := Transaction{Type: Reversal, Bucket: Commitment, Amount: decimal.RequireFromString("60"), Currency: "USD",
		AgreementAmount: decimal.RequireFromString("-60.00")}
	for _, c := range []struct {
		detail string
		t      Transaction
		want   string // "" means no refusal any more
	}{
		{"0 100.00 90.00 0", disb, "disbursed 110.00 USD would exceed committed 100.00 USD"},
		{"0 100.00 50.00 0", disb, ""},
		{"100.00 100.00 50.00 0", cut, "disbursed 50.00 USD would exceed committed 40.00 USD"},
		{"100.00 100.00 0 45.00", cut, "allocations 45.00 USD would exceed committed 40.00 USD"},
	} {
		err := balanceRefusal(c.detail, c.t, g)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want none", c.detail, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, apperr.ErrFailedPrecondition)):
			t.Errorf("%s: %v, want FAILED_PRECONDITION saying %q", c.detail, err, c.want)
		}
	}
	if err := balanceRefusal("garbage", disb, g); err == nil || errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Errorf("a malformed detail: %v, want an internal error", err)
	}
}
