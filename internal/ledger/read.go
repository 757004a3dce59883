package ledger

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// writeError names the one constraint a concurrent writer can break.
func writeError(err error) error {
	if c, ok := postgres.IsUniqueViolation(err); ok && c == "transactions_reverses_id_key" {
		return fmt.Errorf("entry is already reversed: %w", apperr.ErrFailedPrecondition)
	}
	return err
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const txColumns = `t.id, t.grant_id, t.type, t.bucket, t.amount, t.currency, t.agreement_amount, g.currency,
	t.reporting_amount, r.reporting_currency, t.agreement_rate, t.reporting_rate, t.fx_rate, t.value_date, t.reference,
	coalesce(t.milestone_id::text, ''), coalesce(t.reverses_id::text, ''), t.note, t.recorded_by, t.recorded_role, t.recorded_at,
	coalesce(t.batch_id::text, '')`

const txFrom = ` FROM transactions t JOIN grants g ON g.id = t.grant_id JOIN roadmaps r ON r.id = g.roadmap_id`

func scanTx(row pgx.Row, t *Transaction) error {
	return row.Scan(&t.ID, &t.GrantID, &t.Type, &t.Bucket, &t.Amount, &t.Currency, &t.AgreementAmount, &t.AgreementCcy,
		&t.ReportingAmount, &t.ReportingCcy, &t.AgreementRate, &t.ReportingRate, &t.FxRate, &t.ValueDate, &t.Reference,
		&t.MilestoneID, &t.ReversesID, &t.Note, &t.RecordedBy, &t.RecordedRole, &t.RecordedAt, &t.BatchID)
}

// readTransactions reads entries matching where, in id (recording) order, at
// most limit of them when limit > 0.
func (s *Store) readTransactions(ctx context.Context, q postgres.Querier, limit int, where string, args ...any) ([]Transaction, error) {
	sql := `SELECT ` + txColumns + txFrom + ` WHERE ` + where + ` ORDER BY t.id`
	if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transaction, error) {
		var t Transaction
		return t, scanTx(r, &t)
	})
}

// ListTransactions pages through a grant's journal in recording order.
func (s *Store) ListTransactions(ctx context.Context, grantID uuid.UUID, typ string, pageSize int, pageToken string) ([]Transaction, string, error) {
	if _, err := s.readableGrant(ctx, grantID.String()); err != nil {
		return nil, "", err
	}
	if typ != "" && !slices.Contains(types, typ) {
		return nil, "", apperr.Invalid("type", "unknown type %q", typ)
	}
	after, size, err := paging.Start(pageToken, pageSize, 50)
	if err != nil {
		return nil, "", err
	}
	out, err := s.readTransactions(ctx, s.pool, size+1, `t.grant_id = $1 AND ($2 = '' OR t.type = $2) AND t.id > $3`,
		grantID, typ, after)
	if err != nil {
		return nil, "", fmt.Errorf("listing transactions: %w", err)
	}
	out, next := paging.Next(out, size, func(t Transaction) string { return t.ID })
	return out, next, nil
}
