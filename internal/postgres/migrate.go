package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/tranche-ledger/tranche/migrations"
)

const versionTable = "schema_version"

// Migrate applies every pending migration. tern holds a PostgreSQL advisory
// lock while it migrates, so replicas starting together apply each migration
// once.
func Migrate(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// LatestVersion is the number of the newest embedded migration.
func LatestVersion() (int32, error) {
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		return 0, err
	}
	var n int32
	for _, e := range entries {
		var v int32
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > n {
			n = v
		}
	}
	return n, nil
}

// SchemaReady tells whether the database is reachable and fully migrated.
func SchemaReady(ctx context.Context, q Querier) error {
	want, err := LatestVersion()
	if err != nil {
		return err
	}
	var have int32
	if err := q.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&have); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if have < want {
		return fmt.Errorf("schema at version %d, want %d", have, want)
	}
	return nil
}
