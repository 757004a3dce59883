package detect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// allRules is every rule a run applies.
func allRules() []rule {
	out := append([]rule(nil), moneyRules...)
	return append(out, procurementRules...)
}

// loadScope reads what a run of roadmapID as of asOf needs to know.
func loadScope(ctx context.Context, q postgres.Querier, roadmapID uuid.UUID, asOf time.Time, cfg Config) (scope, error) {
	s := scope{RoadmapID: roadmapID, AsOf: time.Date(asOf.Year(), asOf.Month(), asOf.Day(), 0, 0, 0, 0, time.UTC), Config: cfg}
	err := q.QueryRow(ctx, `SELECT reporting_currency FROM roadmaps WHERE id = $1`, roadmapID).Scan(&s.ReportingCurrency)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("roadmap %s: %w", roadmapID, apperr.ErrNotFound)
	}
	return s, err
}
