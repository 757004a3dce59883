package audit

import (
	"context"
	"crypto/ed25519"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads the audit trail and seals it. Writes go through Record, Queue
// and Values, inside the transaction of the change they record.
type Store struct {
	pool   *pgxpool.Pool
	sealer *Sealer
	key    ed25519.PrivateKey // signs heads; nil: heads are unsigned
}

// New returns the audit store over pool, with a sealer of the documented
// defaults.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, sealer: NewSealer(pool)}
}

// Sealer is the store's sealer, which a server runs in the background
// (Sealer.Run) and Verify uses to seal what is pending first.
func (s *Store) Sealer() *Sealer { return s.sealer }

// Verify seals pending events, then recomputes the chain from the first
// event and reports the first bad sequence number.
func (s *Store) Verify(ctx context.Context) (Result, error) {
	if _, err := s.sealer.SealPending(ctx); err != nil {
		return Result{}, err
	}
	return verify(ctx, s.pool, 0)
}
