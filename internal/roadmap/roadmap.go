// Package roadmap holds the national mine action strategy: roadmaps, their
// milestones (what must be achieved, where, by when, for how much), progress
// reports, status changes and funding coverage per milestone.
//
// Roadmaps and milestones are set up by coordinators and read by every role.
// Coverage combines a roadmap's requirements with the funding figures the
// ledger keeps (FundingSource), so this package owns no money but what a
// milestone requires.
package roadmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/isocodes"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Store is the roadmaps and milestones of one database.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Roadmap is a national mine action strategy.
type Roadmap struct {
	ID                string    `json:"id"`
	Country           string    `json:"country"`
	Title             string    `json:"title"`
	StartDate         time.Time `json:"startDate"`
	EndDate           time.Time `json:"endDate"`
	ReportingCurrency string    `json:"reportingCurrency"`
	CreatedAt         time.Time `json:"-"`
}

// Input is a roadmap to create, parsed. Violations name its fields
// (country, title, startDate, endDate, reportingCurrency).
type Input struct {
	Country, Title     string
	StartDate, EndDate time.Time
	ReportingCurrency  string
}

// Create registers a roadmap. Coordinator and admin only.
func (s *Store) Create(ctx context.Context, in Input, requestID string) (Roadmap, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return Roadmap{}, err
	}
	var v apperr.Validator
	r := newRoadmap(&v, in)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Roadmap{}, err
	}
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id, replay, err := idempotency.Claim(ctx, tx, p.Scope(), "CreateRoadmap", requestID, in, r.ID)
		if err != nil {
			return err
		}
		if replay {
			r, err = Get(ctx, tx, id)
			return err
		}
		return insert(ctx, tx, &r, requestID)
	})
	if err != nil {
		return Roadmap{}, fmt.Errorf("creating roadmap: %w", err)
	}
	return r, nil
}

const roadmapColumns = `id, country, title, start_date, end_date, reporting_currency, created_at`

func scanRoadmap(row pgx.Row, r *Roadmap) error {
	return row.Scan(&r.ID, &r.Country, &r.Title, &r.StartDate, &r.EndDate, &r.ReportingCurrency, &r.CreatedAt)
}

// Get reads a roadmap through q (a pool or the caller's transaction), for
// domains that file their records under roadmaps.
func Get(ctx context.Context, q postgres.Querier, id string) (Roadmap, error) {
	var r Roadmap
	err := scanRoadmap(q.QueryRow(ctx, `SELECT `+roadmapColumns+` FROM roadmaps WHERE id = $1`, id), &r)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("roadmap %s: %w", id, apperr.ErrNotFound)
	}
	return r, err
}

// Get returns a roadmap; every role may read roadmaps.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Roadmap, error) {
	return Get(ctx, s.pool, id.String())
}

// List pages through roadmaps in creation order.
func (s *Store) List(ctx context.Context, pageSize int, pageToken string) ([]Roadmap, string, error) {
	after, size, err := paging.Start(pageToken, pageSize, 50)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+roadmapColumns+` FROM roadmaps WHERE id > $1 ORDER BY id LIMIT $2`, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing roadmaps: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Roadmap, error) {
		var x Roadmap
		return x, scanRoadmap(r, &x)
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing roadmaps: %w", err)
	}
	out, next := paging.Next(out, size, func(r Roadmap) string { return r.ID })
	return out, next, nil
}

// newRoadmap checks a roadmap to create, into v, and gives it its id.
func newRoadmap(v *apperr.Validator, in Input) Roadmap {
	r := Roadmap{Country: in.Country, ReportingCurrency: in.ReportingCurrency, StartDate: in.StartDate, EndDate: in.EndDate}
	v.Check(isocodes.Country(in.Country), "country", "unknown ISO 3166-1 alpha-3 country code %q", in.Country)
	r.Title = v.Text("title", in.Title, true, 300)
	v.Date("startDate", in.StartDate, true)
	v.Date("endDate", in.EndDate, true)
	v.Check(in.EndDate.IsZero() || !in.EndDate.Before(in.StartDate), "endDate", "before startDate")
	_, err := money.Currency(in.ReportingCurrency)
	v.Check(err == nil, "reportingCurrency", "unknown ISO 4217 currency %q", in.ReportingCurrency)
	r.ID = uuid.Must(uuid.NewV7()).String()
	return r
}

// insert writes a checked roadmap and its audit event inside tx.
func insert(ctx context.Context, tx pgx.Tx, r *Roadmap, requestID string) error {
	if err := tx.QueryRow(ctx, `INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		r.ID, r.Country, r.Title, r.StartDate, r.EndDate, r.ReportingCurrency).Scan(&r.CreatedAt); err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Entry{EntityType: "roadmap", EntityID: r.ID, Change: *r, RequestID: requestID})
}

// CreateIn creates a roadmap inside the caller's transaction, for an import
// that files its records under a roadmap it creates. The caller must be a
// coordinator (or admin, or the operator).
func CreateIn(ctx context.Context, tx pgx.Tx, in Input) (Roadmap, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return Roadmap{}, err
	}
	var v apperr.Validator
	r := newRoadmap(&v, in)
	if err := v.Err(); err != nil {
		return Roadmap{}, err
	}
	if err := insert(ctx, tx, &r, ""); err != nil {
		return Roadmap{}, fmt.Errorf("creating roadmap: %w", err)
	}
	return r, nil
}
