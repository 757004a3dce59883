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
// the service uses, when they do not exist yet. It looks before creating, so
// a start does not leave "role already exists" errors in the server log;
// roles are cluster-wide, and creation racing another process is tolerated.
func EnsureRoles(ctx context.Context, conn *pgx.Conn) error {
	for _, r := range []struct{ name, create string }{
		{AppRole, "CREATE ROLE " + AppRole + " NOLOGIN"},
		{ServiceRole, "CREATE ROLE " + ServiceRole + " LOGIN IN ROLE " + AppRole},
	} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, r.name).Scan(&exists); err != nil {
			return fmt.Errorf("looking up role %s: %w", r.name, err)
		}
		if exists {
			continue
		}
		if _, err := conn.Exec(ctx, r.create); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505") {
				continue // created meanwhile by another process
			}
			return fmt.Errorf("creating role %s: %w", r.name, err)
		}
	}
	return nil
}
