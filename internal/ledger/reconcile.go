package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/money"
)

// Balances are a grant's figures in one currency. Every figure is a sum of
// per-entry rounded amounts, so it agrees to the minor unit wherever shown.
type Balances struct {
	Currency                                       string
	Pledged, Committed, Disbursed, Received, Spent decimal.Decimal
	UndisbursedCommitment, UnspentBalance          decimal.Decimal
}

// Receipt match statuses.
const (
	Matched                   = "MATCHED"
	AmountVariance            = "AMOUNT_VARIANCE"
	MissingReceipt            = "MISSING_RECEIPT"
	ReceiptWithoutDisbursment = "RECEIPT_WITHOUT_DISBURSEMENT"
)

// ReceiptMatch pairs a disbursement with the receipts citing its reference.
// Amounts are in agreement currency; Variance = FXDifference + RealDifference.
type ReceiptMatch struct {
	Status                        string
	DisbursementID                string
	ReceiptIDs                    []string
	Reference                     string
	Disbursed, Received, Variance decimal.Decimal
	FXDifference, RealDifference  decimal.Decimal
}

// Reconciliation is a grant's figures as of a time.
type Reconciliation struct {
	GrantID              string
	AsOf                 time.Time
	Agreement, Reporting Balances
	Matches              []ReceiptMatch
}

// Reconcile computes a grant's figures from its journal, as recorded up to
// asOf (zero: now).
func (s *Store) Reconcile(ctx context.Context, grantID string, asOf time.Time) (Reconciliation, error) {
	g, err := s.readableGrant(ctx, grantID)
	if err != nil {
		return Reconciliation{}, err
	}
	current := asOf.IsZero()
	if current {
		asOf = time.Now()
	}
	rec := Reconciliation{GrantID: grantID, AsOf: asOf,
		Agreement: Balances{Currency: g.Currency}, Reporting: Balances{Currency: g.ReportingCurrency}}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if current {
			// The running totals kept with every entry; asOf sums the journal instead.
			a, r := &rec.Agreement, &rec.Reporting
			if err := tx.QueryRow(ctx, `SELECT pledged, committed, disbursed, received, spent,
				pledged_reporting, committed_reporting, disbursed_reporting, received_reporting, spent_reporting
				FROM grant_balances WHERE grant_id = $1`, grantID).Scan(&a.Pledged, &a.Committed, &a.Disbursed, &a.Received, &a.Spent,
				&r.Pledged, &r.Committed, &r.Disbursed, &r.Received, &r.Spent); err != nil {
				return err
			}
		} else if err := sumJournal(ctx, tx, grantID, asOf, &rec); err != nil {
			return err
		}
		rec.Agreement.derive()
		rec.Reporting.derive()
		rec.Matches, err = matchReceipts(ctx, tx, *g, asOf)
		return err
	})
	if err != nil {
		return Reconciliation{}, fmt.Errorf("reconciling grant: %w", err)
	}
	return rec, nil
}

// sumJournal totals a grant's entries recorded up to asOf, per bucket.
func sumJournal(ctx context.Context, tx pgx.Tx, grantID string, asOf time.Time, rec *Reconciliation) error {
	rows, err := tx.Query(ctx, `SELECT bucket, sum(agreement_amount), sum(reporting_amount) FROM transactions
		WHERE grant_id = $1 AND recorded_at <= $2 GROUP BY bucket`, grantID, asOf)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var bucket string
		var a, r decimal.Decimal
		if err := rows.Scan(&bucket, &a, &r); err != nil {
			return err
		}
		rec.Agreement.set(bucket, a)
		rec.Reporting.set(bucket, r)
	}
	return rows.Err()
}

func (b *Balances) set(bucket string, d decimal.Decimal) {
	switch bucket {
	case Pledge:
		b.Pledged = d
	case Commitment:
		b.Committed = d
	case Disbursement:
		b.Disbursed = d
	case Receipt:
		b.Received = d
	case Expenditure:
		b.Spent = d
	}
}

func (b *Balances) derive() {
	b.UndisbursedCommitment = b.Committed.Sub(b.Disbursed)
	b.UnspentBalance = b.Received.Sub(b.Spent)
}

// liveFlows are the disbursements and receipts of grant $1 recorded by $2
// and not reversed by then. The reversals are found with NOT IN over the same
// grant's rows (a hashed subplan), so the plan does not depend on statistics.
const liveFlows = `WITH f AS (
	  SELECT id, type, reverses_id, reference, currency, amount, agreement_amount, value_date
	  FROM transactions
	  WHERE grant_id = $1 AND bucket IN ('DISBURSEMENT', 'RECEIPT') AND recorded_at <= $2
	)
	SELECT id, type, reference, currency, amount, agreement_amount, value_date FROM f
	WHERE type <> 'REVERSAL' AND id NOT IN (SELECT reverses_id FROM f WHERE type = 'REVERSAL')`

// matchReceipts pairs each live disbursement with the live receipts that cite
// its payment reference (the first disbursement of a reference takes them; a
// later one with the same reference shows as missing its receipt). PostgreSQL
// groups the flows by reference in one pass and returns amounts as integer
// minor units, so a grant with tens of thousands of entries stays cheap.
//
// The FX difference is what the receipts would have been worth at the
// disbursement's value date minus what they are worth at their own; the rest
// of the variance is a real difference. Only receipts in a currency other
// than the agreement's can carry one.
func matchReceipts(ctx context.Context, q pgx.Tx, g Grant, asOf time.Time) ([]ReceiptMatch, error) {
	minor, err := money.Currency(g.Currency)
	if err != nil {
		return nil, err
	}
	// One pass over the flows: each disbursement, then each reference's receipts
	// summed. Amounts come back as integer minor units, ids as one string per
	// reference, which keeps decoding cheap.
	rows, err := q.Query(ctx, `
		WITH live AS MATERIALIZED (`+liveFlows+`)
		SELECT true, id::text, reference, (agreement_amount * $4)::bigint, value_date, false
		FROM live WHERE type = 'DISBURSEMENT'
		UNION ALL
		SELECT false, string_agg(id::text, ',' ORDER BY id), reference, (sum(agreement_amount) * $4)::bigint, NULL, bool_or(currency <> $3)
		FROM live WHERE type = 'RECEIPT' GROUP BY reference`,
		g.ID, asOf, g.Currency, decimal.New(1, minor))
	if err != nil {
		return nil, err
	}
	type receipts struct {
		ids      []string
		received decimal.Decimal
		foreign  bool
	}
	var disbursements []ReceiptMatch
	var dates []time.Time
	byRef := map[string]*receipts{}
	for rows.Next() {
		var isDisbursement, foreign bool
		var ids, ref string
		var amount int64
		var date *time.Time
		if err := rows.Scan(&isDisbursement, &ids, &ref, &amount, &date, &foreign); err != nil {
			rows.Close()
			return nil, err
		}
		if isDisbursement {
			disbursements = append(disbursements, ReceiptMatch{DisbursementID: ids, Reference: ref, Disbursed: decimal.New(amount, -minor)})
			dates = append(dates, *date)
			continue
		}
		byRef[ref] = &receipts{ids: strings.Split(ids, ","), received: decimal.New(amount, -minor), foreign: foreign}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Disbursements in recording order (ids are time-ordered); the first of a
	// reference takes its receipts.
	order := make([]int, len(disbursements))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(disbursements[a].DisbursementID, disbursements[b].DisbursementID)
	})
	out := make([]ReceiptMatch, 0, len(disbursements)+len(byRef))
	outDates := make([]time.Time, 0, len(disbursements))
	foreign := map[string]int{} // reference → index in out, when its receipts need FX
	for _, i := range order {
		m := disbursements[i]
		m.ReceiptIDs = []string{}
		if r := byRef[m.Reference]; r != nil && m.Reference != "" {
			m.ReceiptIDs, m.Received = r.ids, r.received
			if r.foreign {
				foreign[m.Reference] = len(out)
			}
			delete(byRef, m.Reference)
		}
		m.Variance = m.Received.Sub(m.Disbursed)
		m.RealDifference = m.Variance
		switch {
		case len(m.ReceiptIDs) == 0:
			m.Status = MissingReceipt
		case m.Variance.IsZero():
			m.Status = Matched
		default:
			m.Status = AmountVariance
		}
		out = append(out, m)
		outDates = append(outDates, dates[i])
	}
	if len(foreign) > 0 {
		if err := splitFX(ctx, q, g, asOf, out, outDates, foreign); err != nil {
			return nil, err
		}
	}
	// Then receipts that cite no disbursement, by reference.
	refs := slices.Sorted(maps.Keys(byRef))
	for _, ref := range refs {
		r := byRef[ref]
		out = append(out, ReceiptMatch{Status: ReceiptWithoutDisbursment, Reference: ref, ReceiptIDs: r.ids,
			Received: r.received, Variance: r.received, RealDifference: r.received})
	}
	return out, nil
}

// splitFX values the foreign-currency receipts of the given matches at their
// disbursement's date to separate the FX difference from the real one.
func splitFX(ctx context.Context, q pgx.Tx, g Grant, asOf time.Time, out []ReceiptMatch, dates []time.Time, foreign map[string]int) error {
	refs := make([]string, 0, len(foreign))
	for ref := range foreign {
		refs = append(refs, ref)
	}
	rows, err := q.Query(ctx, `SELECT reference, currency, amount, agreement_amount FROM (`+liveFlows+`) live
		WHERE type = 'RECEIPT' AND reference = ANY ($3)`, g.ID, asOf, refs)
	if err != nil {
		return err
	}
	type receipt struct {
		ref, currency     string
		amount, agreement decimal.Decimal
	}
	receipts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (receipt, error) {
		var x receipt
		return x, r.Scan(&x.ref, &x.currency, &x.amount, &x.agreement)
	})
	if err != nil {
		return err
	}
	currencies := []string{g.Currency, g.ReportingCurrency}
	var maxDate time.Time
	for _, i := range foreign {
		if dates[i].After(maxDate) {
			maxDate = dates[i]
		}
	}
	for _, r := range receipts {
		currencies = append(currencies, r.currency)
	}
	rates, err := fx.Load(ctx, q, currencies, maxDate)
	if err != nil {
		return err
	}
	atDisbursement := map[string]decimal.Decimal{}
	for _, r := range receipts {
		v := r.agreement
		if r.currency != g.Currency {
			if rate, err := rates.Rate(r.currency, g.Currency, g.ReportingCurrency, dates[foreign[r.ref]]); err == nil {
				v = money.Convert(r.amount, rate, false, g.Currency)
			}
		}
		atDisbursement[r.ref] = atDisbursement[r.ref].Add(v)
	}
	for ref, i := range foreign {
		m := &out[i]
		m.FXDifference = m.Received.Sub(atDisbursement[ref])
		m.RealDifference = atDisbursement[ref].Sub(m.Disbursed)
		m.Status = Matched
		if !m.RealDifference.IsZero() {
			m.Status = AmountVariance
		}
	}
	return nil
}
