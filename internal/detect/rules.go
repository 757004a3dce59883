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

// applyRules applies rules to s. Two findings with one fingerprint are a rule's
// defect, not data: they are refused rather than merged.
func applyRules(ctx context.Context, q postgres.Querier, s scope, rules []rule) ([]finding, error) {
	var out []finding
	seen := map[string]bool{}
	for _, r := range rules {
		fs, err := r.find(ctx, q, s)
		if err != nil {
			return nil, fmt.Errorf("detecting %s: %w", r.kind, err)
		}
		for _, f := range fs {
			fp := f.fingerprint()
			if seen[fp] {
				return nil, fmt.Errorf("detecting %s: two findings with key %q", r.kind, f.Key)
			}
			seen[fp] = true
		}
		out = append(out, fs...)
	}
	return out, nil
}
