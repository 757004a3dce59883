// Package imports brings what donors and procurement systems already publish
// (OCHA FTS flows, IATI activities, OCDS contracting processes) into the
// ledger through the domain code, keeping where every record came from, and
// publishes a roadmap back as an IATI 2.03 activity file.
package imports

import (
	"context"
	"errors"
	"io"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store runs imports and exports over one database.
type Store struct {
	pool *pgxpool.Pool
}

// New returns the imports of the database behind pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Run imports req's files. The caller must be an admin, a coordinator or
// the operator. It answers the report; with Problems and no SkipInvalid it
// writes nothing and answers an INVALID_ARGUMENT error besides the report.
func (s *Store) Run(ctx context.Context, req Request) (*Report, error) {
	return nil, errors.New("imports: not wired yet")
}

// ExportIATI writes the roadmap's grants the caller may read, with their
// journals, as an IATI 2.03 activity file.
func (s *Store) ExportIATI(ctx context.Context, w io.Writer, roadmapID uuid.UUID) error {
	return errors.New("imports: export not wired yet")
}
