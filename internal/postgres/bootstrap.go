package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Bootstrap makes sure database db and the service roles exist, connecting as
// a superuser through adminURL. It is safe to run concurrently and repeatedly.
func Bootstrap(ctx context.Context, adminURL, db string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connecting to the embedded cluster: %w", err)
	}
	defer conn.Close(ctx)
	if err := EnsureRoles(ctx, conn); err != nil {
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, db).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") {
			return fmt.Errorf("creating database %s: %w", db, err)
		}
	}
	return nil
}

// EnsureRoles creates the group role the schema grants to and the login role
// the service uses. Roles are cluster-wide; concurrent creation is tolerated.
func EnsureRoles(ctx context.Context, conn *pgx.Conn) error {
	for _, stmt := range []string{
		"CREATE ROLE " + AppRole + " NOLOGIN",
		"CREATE ROLE " + ServiceRole + " LOGIN IN ROLE " + AppRole,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505") {
				continue // already exists
			}
			return fmt.Errorf("creating roles: %w", err)
		}
	}
	return nil
}
