package ledger

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/money"
)

// balance is a grant's totals in agreement currency, read under its row
// lock, plus what this write adds in reporting currency.
type balance struct {
	pledged, committed, disbursed, received, spent, allocated decimal.Decimal
	reporting                                                 [5]decimal.Decimal // deltas, in the order of buckets
}

var buckets = [5]string{Pledge, Commitment, Disbursement, Receipt, Expenditure}

// columnBucket names the bucket each balance column totals.
var columnBucket = map[string]string{
	"pledged": Pledge, "committed": Commitment, "disbursed": Disbursement, "received": Receipt, "spent": Expenditure,
}

func (b *balance) add(bucket string, agreement, reporting decimal.Decimal) {
	switch bucket {
	case Pledge:
		b.pledged = b.pledged.Add(agreement)
	case Commitment:
		b.committed = b.committed.Add(agreement)
	case Disbursement:
		b.disbursed = b.disbursed.Add(agreement)
	case Receipt:
		b.received = b.received.Add(agreement)
	case Expenditure:
		b.spent = b.spent.Add(agreement)
	}
	i := slices.Index(buckets[:], bucket)
	b.reporting[i] = b.reporting[i].Add(reporting)
}

// invariant is one rule over a grant's balances in agreement currency:
// lesser ≤ greater, each a balance column or "0". It is written once, here:
// batches evaluate it in Go over the running totals they hold under the
// grants' row locks (check), and the single-entry statement embeds its SQL
// form in the conditional UPDATE that is its lock and its check
// (invariantsSQL). The table's CHECK constraints state the same rules as the
// database's last line; a test holds them to this list.
type invariant struct {
	lesser, greater string
	// explain says why an entry is refused, given the two sides formatted.
	explain string
}

var invariants = []invariant{
	{"disbursed", "committed", "disbursed %s would exceed committed %s"},
	{"allocated", "committed", "allocations %s would exceed committed %s"},
	{"0", "committed", "committed would fall below zero (%[2]s)"},
	{"0", "pledged", "pledged would fall below zero (%[2]s)"},
}

// column is a balance column's value, or zero for "0".
func (b *balance) column(name string) decimal.Decimal {
	switch name {
	case "pledged":
		return b.pledged
	case "committed":
		return b.committed
	case "disbursed":
		return b.disbursed
	case "received":
		return b.received
	case "spent":
		return b.spent
	case "allocated":
		return b.allocated
	}
	return decimal.Zero
}

// take adds entry t of grant g to the balances and says why, if the result
// breaks an invariant.
func (b *balance) take(t Transaction, g *Grant) error {
	b.add(t.Bucket, t.AgreementAmount, t.ReportingAmount)
	if err := b.check(g.Currency); err != nil {
		return fmt.Errorf("%s of %s %s on grant %s: %w", t.Type, money.Format(t.Amount, t.Currency), t.Currency, g.Reference, err)
	}
	return nil
}

// check holds the invariants of a grant's balances.
func (b *balance) check(cur string) error {
	f := func(d decimal.Decimal) string { return money.Format(d, cur) + " " + cur }
	for _, inv := range invariants {
		l, g := b.column(inv.lesser), b.column(inv.greater)
		if l.GreaterThan(g) {
			return fmt.Errorf(inv.explain+": %w", f(l), f(g), apperr.ErrFailedPrecondition)
		}
	}
	return nil
}

// invariantsSQL is the invariants as an SQL condition on a balance row that
// an entry is about to move: moved(column) is the column's value after the
// entry (an SQL expression).
func invariantsSQL(moved func(column string) string) string {
	var parts []string
	for _, inv := range invariants {
		parts = append(parts, moved(inv.lesser)+" <= "+moved(inv.greater))
	}
	return strings.Join(parts, "\n\t\tAND ")
}

// balanceRefusal explains why recordSQL refused an entry, from the
// balance row it was refused on (detail: pledged committed disbursed
// allocated), with the same words as a batch's check. nil means the row no
// longer refuses it.
func balanceRefusal(detail string, t Transaction, g *Grant) error {
	f := strings.Fields(detail)
	if len(f) != 4 {
		return fmt.Errorf("unexpected refusal detail %q", detail)
	}
	var b balance
	for i, v := range []*decimal.Decimal{&b.pledged, &b.committed, &b.disbursed, &b.allocated} {
		d, err := decimal.NewFromString(f[i])
		if err != nil {
			return fmt.Errorf("unexpected refusal detail %q", detail)
		}
		*v = d
	}
	return b.take(t, g)
}
