// Package token mints, lists, revokes and authenticates API tokens.
//
// A token is printed once when created; only its SHA-256 is stored, so a
// database dump does not reveal usable tokens. Tokens carry 32 random bytes,
// so an unsalted hash is enough: there is nothing to guess.
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

const tokenPrefix = "trn_"

// bindableKinds says which kinds of organisation a role bound to one may act
// for: the same kinds that give and receive grants (internal/org). A donor
// token funds grants, so it binds to a funder; an implementer token records
// receipts and expenditures on grants received and reports progress, so it
// binds to a recipient (a pooled fund is both). Coordinators and auditors are
// not bound to organisations.
var bindableKinds = map[auth.Role][]string{
	auth.Donor:       org.FundingKinds,
	auth.Implementer: org.ReceivingKinds,
}

// Token describes a stored token; the secret itself is never stored.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      auth.Role  `json:"role"`
	OrgID     string     `json:"orgId,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Store keeps tokens. Authenticate caches positive answers for CacheTTL, so a
// revocation takes effect on a running server within that time.
type Store struct {
	pool     *pgxpool.Pool
	CacheTTL time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p       auth.Principal
	expires time.Time
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, CacheTTL: 5 * time.Second, cache: map[[32]byte]cached{}}
}

// Create mints a token and returns it with its secret, which is shown once.
func (s *Store) Create(ctx context.Context, role auth.Role, orgID, name string) (Token, string, error) {
	var v apperr.Validator
	if _, err := auth.ParseRole(string(role)); err != nil {
		v.Merge("", err)
	}
	if role.BoundToOrg() && orgID == "" {
		v.Add("org", "a %s token must be bound to an organisation (--org)", role)
	}
	if !role.BoundToOrg() && orgID != "" {
		v.Add("org", "a %s token is not bound to an organisation", role)
	}
	if orgID != "" {
		if _, err := uuid.Parse(orgID); err != nil {
			v.Add("org", "not an organisation id: %q", orgID)
		}
	}
	if len(name) > 200 {
		v.Add("name", "at most 200 characters")
	}
	if err := v.Err(); err != nil {
		return Token{}, "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, "", err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	t := Token{ID: uuid.Must(uuid.NewV7()).String(), Name: name, Role: role, OrgID: orgID}
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if orgID != "" {
			var kind string
			err := tx.QueryRow(ctx, `SELECT kind FROM organizations WHERE id = $1`, orgID).Scan(&kind)
			if errors.Is(err, pgx.ErrNoRows) {
				return apperr.Invalid("org", "organisation %s does not exist", orgID)
			}
			if err != nil {
				return err
			}
			if kinds := bindableKinds[role]; !slices.Contains(kinds, kind) {
				return apperr.Invalid("org", "a %s token binds to a %s organisation; %s is %s", role, strings.Join(kinds, " or "), orgID, kind)
			}
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO api_tokens (id, name, role, org_id, secret_hash)
			VALUES ($1, $2, $3, NULLIF($4, '')::uuid, $5) RETURNING created_at`,
			t.ID, t.Name, string(t.Role), t.OrgID, sum[:]).Scan(&t.CreatedAt)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{
			EntityType: "token", EntityID: t.ID, Change: t, SubjectOrgs: []string{orgID},
		})
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("creating token: %w", err)
	}
	return t, secret, nil
}

// Revoke revokes a token and records it in the audit trail. Revoking a
// revoked token changes nothing and writes no event: it returns the token with
// its original revocation time and revoked false.
func (s *Store) Revoke(ctx context.Context, id string) (t Token, revoked bool, err error) {
	if _, err := uuid.Parse(id); err != nil {
		return Token{}, false, apperr.Invalid("id", "not a token id: %q", id)
	}
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// A concurrent revocation holds the row until it commits; this
		// UPDATE then finds revoked_at set and matches nothing.
		err := scanToken(tx.QueryRow(ctx, `
			UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
			RETURNING id, name, role, coalesce(org_id::text, ''), created_at, revoked_at`, id), &t)
		if errors.Is(err, pgx.ErrNoRows) {
			revoked = false
			err = scanToken(tx.QueryRow(ctx, `
				SELECT id, name, role, coalesce(org_id::text, ''), created_at, revoked_at
				FROM api_tokens WHERE id = $1`, id), &t)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("token %s: %w", id, apperr.ErrNotFound)
			}
			return err
		}
		if err != nil {
			return err
		}
		revoked = true
		return audit.Record(ctx, tx, audit.Entry{
			EntityType: "token", EntityID: t.ID, Change: map[string]any{"revoked": true, "revokedAt": t.RevokedAt},
			SubjectOrgs: []string{t.OrgID},
		})
	})
	if err != nil {
		return Token{}, false, fmt.Errorf("revoking token: %w", err)
	}
	return t, revoked, nil
}

// List returns every token, newest first.
func (s *Store) List(ctx context.Context) ([]Token, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, name, role, coalesce(org_id::text, ''), created_at, revoked_at
		FROM api_tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		if err := scanToken(rows, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func scanToken(row pgx.Row, t *Token) error {
	var role string
	err := row.Scan(&t.ID, &t.Name, &role, &t.OrgID, &t.CreatedAt, &t.RevokedAt)
	t.Role = auth.Role(role)
	return err
}

// Authenticate resolves a bearer token to its principal. Unknown and revoked
// tokens are ErrUnauthenticated.
func (s *Store) Authenticate(ctx context.Context, secret string) (auth.Principal, error) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 100 {
		return auth.Principal{}, fmt.Errorf("malformed token: %w", apperr.ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(secret))
	now := time.Now()
	s.mu.Lock()
	c, ok := s.cache[sum]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	var t Token
	row := s.pool.QueryRow(ctx, `
		SELECT id, name, role, coalesce(org_id::text, ''), created_at, revoked_at
		FROM api_tokens WHERE secret_hash = $1`, sum[:])
	if err := scanToken(row, &t); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return auth.Principal{}, fmt.Errorf("unknown token: %w", apperr.ErrUnauthenticated)
		}
		return auth.Principal{}, fmt.Errorf("authenticating: %w", err)
	}
	if t.RevokedAt != nil {
		return auth.Principal{}, fmt.Errorf("token revoked: %w", apperr.ErrUnauthenticated)
	}
	p := auth.Principal{TokenID: t.ID, Name: t.Name, Role: t.Role, OrgID: t.OrgID}
	if s.CacheTTL > 0 {
		s.mu.Lock()
		if len(s.cache) > 10000 {
			clear(s.cache)
		}
		s.cache[sum] = cached{p: p, expires: now.Add(s.CacheTTL)}
		s.mu.Unlock()
	}
	return p, nil
}
