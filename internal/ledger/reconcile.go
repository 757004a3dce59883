package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
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
	g, err := s.GetGrant(ctx, grantID)
	if err != nil {
		return Reconciliation{}, err
	}
	if asOf.IsZero() {
		asOf = time.Now()
	}
	rec := Reconciliation{GrantID: grantID, AsOf: asOf,
		Agreement: Balances{Currency: g.Currency}, Reporting: Balances{Currency: g.ReportingCurrency}}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT bucket, sum(agreement_amount), sum(reporting_amount) FROM transactions
			WHERE grant_id = $1 AND recorded_at <= $2 GROUP BY bucket`, grantID, asOf)
		if err != nil {
			return err
		}
		for rows.Next() {
			var bucket string
			var a, r decimal.Decimal
			if err := rows.Scan(&bucket, &a, &r); err != nil {
				rows.Close()
				return err
			}
			rec.Agreement.set(bucket, a)
			rec.Reporting.set(bucket, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rec.Agreement.derive()
		rec.Reporting.derive()
		live, err := s.readTransactions(ctx, tx, 0, `t.grant_id = $1 AND t.type IN ('DISBURSEMENT', 'RECEIPT') AND t.recorded_at <= $2
			AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id AND r.recorded_at <= $2)`, grantID, asOf)
		if err != nil {
			return err
		}
		rec.Matches, err = matchReceipts(ctx, tx, g, live)
		return err
	})
	if err != nil {
		return Reconciliation{}, fmt.Errorf("reconciling grant: %w", err)
	}
	return rec, nil
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

// matchReceipts pairs each live disbursement with the live receipts that cite
// its payment reference. The FX difference is what the receipts would have
// been worth at the disbursement's value date minus what they are worth at
// their own; the rest of the variance is a real difference.
func matchReceipts(ctx context.Context, q fx.Querier, g Grant, live []Transaction) ([]ReceiptMatch, error) {
	receipts := map[string][]Transaction{}
	var disbursements []Transaction
	currencies := []string{g.Currency, g.ReportingCurrency}
	var maxDate time.Time
	for _, t := range live {
		if t.Type == Receipt {
			receipts[t.Reference] = append(receipts[t.Reference], t)
			currencies = append(currencies, t.Currency)
		} else {
			disbursements = append(disbursements, t)
		}
		if t.ValueDate.After(maxDate) {
			maxDate = t.ValueDate
		}
	}
	rates, err := fx.Load(ctx, q, currencies, maxDate)
	if err != nil {
		return nil, err
	}
	var out []ReceiptMatch
	used := map[string]bool{}
	for _, d := range disbursements {
		m := ReceiptMatch{DisbursementID: d.ID, Reference: d.Reference, Disbursed: d.AgreementAmount, ReceiptIDs: []string{}}
		rs := receipts[d.Reference]
		if d.Reference == "" || used[d.Reference] || len(rs) == 0 {
			m.Status = MissingReceipt
			m.Variance = d.AgreementAmount.Neg()
			m.RealDifference = m.Variance
			out = append(out, m)
			continue
		}
		used[d.Reference] = true
		atDisbursementRate := decimal.Zero
		for _, r := range rs {
			m.ReceiptIDs = append(m.ReceiptIDs, r.ID)
			m.Received = m.Received.Add(r.AgreementAmount)
			v := r.AgreementAmount
			if r.Currency != g.Currency {
				if rate, err := rates.Rate(r.Currency, g.Currency, g.ReportingCurrency, d.ValueDate); err == nil {
					v = money.Convert(r.Amount, rate, false, g.Currency)
				}
			}
			atDisbursementRate = atDisbursementRate.Add(v)
		}
		m.Variance = m.Received.Sub(m.Disbursed)
		m.FXDifference = m.Received.Sub(atDisbursementRate)
		m.RealDifference = atDisbursementRate.Sub(m.Disbursed)
		m.Status = Matched
		if !m.RealDifference.IsZero() {
			m.Status = AmountVariance
		}
		out = append(out, m)
	}
	for ref, rs := range receipts {
		if used[ref] {
			continue
		}
		m := ReceiptMatch{Status: ReceiptWithoutDisbursment, Reference: ref, ReceiptIDs: []string{}}
		for _, r := range rs {
			m.ReceiptIDs = append(m.ReceiptIDs, r.ID)
			m.Received = m.Received.Add(r.AgreementAmount)
		}
		m.Variance, m.RealDifference = m.Received, m.Received
		out = append(out, m)
	}
	return out, nil
}

// MilestoneCoverage is who funds one milestone, in reporting currency.
type MilestoneCoverage struct {
	MilestoneID, Code, Title                                 string
	Requirement, Allocated, Committed, Disbursed, Spent, Gap decimal.Decimal
	Donors                                                   int
}

// Coverage is a roadmap's funding per milestone and in total.
type Coverage struct {
	RoadmapID, Currency string
	Milestones          []MilestoneCoverage
	Totals              MilestoneCoverage
}

// Coverage answers, per milestone: requirement, current allocations,
// committed, disbursed and spent (entries tagged to the milestone), the gap
// (requirement − allocated) and the number of donors. Every role may read
// it: it shows other donors only in aggregate.
func (s *Store) Coverage(ctx context.Context, roadmapID string) (Coverage, error) {
	if auth.FromContext(ctx).Role == "" {
		return Coverage{}, apperr.ErrPermissionDenied
	}
	if uuid.Validate(roadmapID) != nil {
		return Coverage{}, apperr.Invalid("roadmapId", "not an id: %q", roadmapID)
	}
	rm, err := getRoadmap(ctx, s.pool, roadmapID)
	if err != nil {
		return Coverage{}, err
	}
	rows, err := s.pool.Query(ctx, `
		WITH alloc AS (
		  SELECT a.milestone_id, sum(a.reporting_amount) AS allocated
		  FROM allocations a JOIN grant_balances b ON b.grant_id = a.grant_id AND b.allocation_version = a.version
		  GROUP BY a.milestone_id
		), moved AS (
		  SELECT t.milestone_id,
		         sum(t.reporting_amount) FILTER (WHERE t.bucket = 'COMMITMENT') AS committed,
		         sum(t.reporting_amount) FILTER (WHERE t.bucket = 'DISBURSEMENT') AS disbursed,
		         sum(t.reporting_amount) FILTER (WHERE t.bucket = 'EXPENDITURE') AS spent
		  FROM transactions t WHERE t.milestone_id IS NOT NULL GROUP BY t.milestone_id
		), donors AS (
		  SELECT milestone_id, count(DISTINCT donor_org_id) AS n FROM (
		    SELECT a.milestone_id, g.donor_org_id FROM allocations a
		      JOIN grant_balances b ON b.grant_id = a.grant_id AND b.allocation_version = a.version
		      JOIN grants g ON g.id = a.grant_id
		    UNION
		    SELECT t.milestone_id, g.donor_org_id FROM transactions t JOIN grants g ON g.id = t.grant_id
		    WHERE t.milestone_id IS NOT NULL AND t.bucket IN ('COMMITMENT', 'DISBURSEMENT', 'EXPENDITURE')
		  ) x GROUP BY milestone_id
		)
		SELECT m.id, m.code, m.title, m.funding_requirement, coalesce(a.allocated, 0), coalesce(mv.committed, 0),
		       coalesce(mv.disbursed, 0), coalesce(mv.spent, 0), coalesce(d.n, 0)
		FROM milestones m LEFT JOIN alloc a ON a.milestone_id = m.id LEFT JOIN moved mv ON mv.milestone_id = m.id
		LEFT JOIN donors d ON d.milestone_id = m.id
		WHERE m.roadmap_id = $1 ORDER BY m.code`, roadmapID)
	if err != nil {
		return Coverage{}, fmt.Errorf("computing coverage: %w", err)
	}
	cov := Coverage{RoadmapID: roadmapID, Currency: rm.ReportingCurrency}
	cov.Milestones, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (MilestoneCoverage, error) {
		var c MilestoneCoverage
		err := r.Scan(&c.MilestoneID, &c.Code, &c.Title, &c.Requirement, &c.Allocated, &c.Committed, &c.Disbursed, &c.Spent, &c.Donors)
		c.Gap = c.Requirement.Sub(c.Allocated)
		return c, err
	})
	if err != nil {
		return Coverage{}, fmt.Errorf("computing coverage: %w", err)
	}
	var donors int
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT donor_org_id) FROM grants WHERE roadmap_id = $1`, roadmapID).Scan(&donors); err != nil {
		return Coverage{}, err
	}
	t := MilestoneCoverage{Code: "TOTAL", Title: "All milestones", Donors: donors}
	for _, c := range cov.Milestones {
		t.Requirement, t.Allocated = t.Requirement.Add(c.Requirement), t.Allocated.Add(c.Allocated)
		t.Committed, t.Disbursed, t.Spent = t.Committed.Add(c.Committed), t.Disbursed.Add(c.Disbursed), t.Spent.Add(c.Spent)
	}
	t.Gap = t.Requirement.Sub(t.Allocated)
	cov.Totals = t
	return cov, nil
}
