// Package org holds the organisations taking part in a programme: donors,
// implementing partners, national authorities, coordinators, pooled funds and
// auditors.
package org

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/isocodes"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Kinds of organisation.
var Kinds = []string{"DONOR", "IMPLEMENTER", "NATIONAL_AUTHORITY", "COORDINATOR", "POOLED_FUND", "AUDITOR"}

// FundingKinds are the kinds of organisation that give grants (a pooled fund
// passes donors' money on); ReceivingKinds those that receive them (a pooled
// fund receives from donors). Grants and the organisations tokens bind to
// follow them.
var (
	FundingKinds   = []string{"DONOR", "POOLED_FUND"}
	ReceivingKinds = []string{"IMPLEMENTER", "NATIONAL_AUTHORITY", "POOLED_FUND"}
)

// CanFund tells whether an organisation of kind gives grants.
func CanFund(kind string) bool { return slices.Contains(FundingKinds, kind) }

// CanReceive tells whether an organisation of kind receives grants.
func CanReceive(kind string) bool { return slices.Contains(ReceivingKinds, kind) }

// Organization is a party to the programme.
type Organization struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	IATIRef string `json:"iatiRef"`
	Country string `json:"country"`
	// FTSOrgID is the organisation's id in OCHA's Financial Tracking Service
	// (digits), or empty.
	FTSOrgID  string    `json:"ftsOrgId"`
	CreatedAt time.Time `json:"-"`
}

// iatiRef is an IATI organisation identifier: a registration agency code
// (country or XM/XI prefix plus agency) and the identifier it issued, e.g.
// GB-GOV-1, XM-DAC-41301, GB-CHC-1083657.
var iatiRef = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,12}-[A-Za-z0-9][A-Za-z0-9._/:-]{0,80}$`)

// ftsOrgID is an FTS organisation id: 1 to 12 digits.
var ftsOrgID = regexp.MustCompile(`^[0-9]{1,12}$`)

// Validate reports every bad field of o, named by its JSON path under prefix.
func (o Organization) Validate() error {
	var v apperr.Validator
	name := strings.TrimSpace(o.Name)
	v.Check(name != "", "name", "must not be empty")
	v.Check(utf8.RuneCountInString(o.Name) <= 300, "name", "at most 300 characters")
	v.Check(utf8.ValidString(o.Name), "name", "must be valid UTF-8")
	v.Check(slices.Contains(Kinds, o.Kind), "kind", "unknown kind %q (want one of %s)", o.Kind, strings.Join(Kinds, ", "))
	v.Check(o.IATIRef == "" || iatiRef.MatchString(o.IATIRef), "iatiRef", "not an IATI organisation identifier (e.g. GB-GOV-1, XM-DAC-41301): %q", o.IATIRef)
	v.Check(o.Country == "" || isocodes.Country(o.Country), "country", "unknown ISO 3166-1 alpha-3 country code %q", o.Country)
	v.Check(o.FTSOrgID == "" || ftsOrgID.MatchString(o.FTSOrgID), "ftsOrgId", "not an FTS organisation id (1 to 12 digits): %q", o.FTSOrgID)
	return v.Err()
}

// Store keeps organisations.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Create registers o; requestID makes retries safe. Admin and coordinator only.
func (s *Store) Create(ctx context.Context, o Organization, requestID string) (Organization, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return Organization{}, err
	}
	var v apperr.Validator
	if err := v.Merge("organization", o.Validate()); err != nil {
		return Organization{}, err
	}
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Organization{}, err
	}
	o.Name = strings.TrimSpace(o.Name)
	o.ID = uuid.Must(uuid.NewV7()).String()
	var out Organization
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id, replay, err := idempotency.Claim(ctx, tx, auth.FromContext(ctx).Scope(), "CreateOrganization", requestID, o.payload(), o.ID)
		if err != nil {
			return err
		}
		if replay {
			out, err = get(ctx, tx, id)
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO organizations (id, name, kind, iati_ref, country, fts_org_id) VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING created_at`, o.ID, o.Name, o.Kind, o.IATIRef, o.Country, o.FTSOrgID).QueryRow(func(r pgx.Row) error {
			return r.Scan(&o.CreatedAt)
		})
		if err := audit.Queue(ctx, b, audit.Entry{EntityType: "organization", EntityID: o.ID, Change: o, SubjectOrgs: []string{o.ID}, RequestID: requestID}); err != nil {
			return err
		}
		err = tx.SendBatch(ctx, b).Close()
		if c, ok := postgres.IsUniqueViolation(err); ok && c == "organizations_iati_ref" {
			return fmt.Errorf("an organisation with IATI identifier %s is already registered: %w", o.IATIRef, apperr.ErrAlreadyExists)
		}
		if c, ok := postgres.IsUniqueViolation(err); ok && c == "organizations_fts_org_id" {
			return fmt.Errorf("an organisation with FTS organisation id %s is already registered: %w", o.FTSOrgID, apperr.ErrAlreadyExists)
		}
		out = o
		return err
	})
	if err != nil {
		return Organization{}, fmt.Errorf("creating organisation: %w", err)
	}
	return out, nil
}

// payload is what identifies a create request, without the generated id.
func (o Organization) payload() any {
	if o.FTSOrgID == "" { // requests made before FTS ids existed replay alike
		return [4]string{o.Name, o.Kind, o.IATIRef, o.Country}
	}
	return [5]string{o.Name, o.Kind, o.IATIRef, o.Country, o.FTSOrgID}
}

// Get returns one organisation; every role may read organisations.
func (s *Store) Get(ctx context.Context, id string) (Organization, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Organization{}, apperr.Invalid("id", "not an organisation id: %q", id)
	}
	return get(ctx, s.pool, id)
}

// columns are an organisation's, in the order fields scans them.
const columns = `id, name, kind, iati_ref, country, fts_org_id, created_at`

func (o *Organization) fields() []any {
	return []any{&o.ID, &o.Name, &o.Kind, &o.IATIRef, &o.Country, &o.FTSOrgID, &o.CreatedAt}
}

func get(ctx context.Context, q postgres.Querier, id string) (Organization, error) {
	var o Organization
	err := q.QueryRow(ctx, `SELECT `+columns+` FROM organizations WHERE id = $1`, id).
		Scan(o.fields()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("organisation %s: %w", id, apperr.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("reading organisation: %w", err)
	}
	return o, nil
}

// List pages through organisations in creation order, optionally of one kind.
func (s *Store) List(ctx context.Context, kind string, pageSize int, pageToken string) ([]Organization, string, error) {
	if kind != "" && !slices.Contains(Kinds, kind) {
		return nil, "", apperr.Invalid("kind", "unknown kind %q", kind)
	}
	after, pageSize, err := paging.Start(pageToken, pageSize, 50)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+columns+` FROM organizations
		WHERE id > $1 AND ($2 = '' OR kind = $2) ORDER BY id LIMIT $3`, after, kind, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing organisations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Organization, error) {
		var o Organization
		err := r.Scan(o.fields()...)
		return o, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing organisations: %w", err)
	}
	out, next := paging.Next(out, pageSize, func(o Organization) string { return o.ID })
	return out, next, nil
}
