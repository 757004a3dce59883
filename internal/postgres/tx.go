package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

const maxAttempts = 5

// InTx runs fn in one transaction and commits it, retrying the whole function
// a bounded number of times on serialization failures and deadlocks. fn must
// therefore have no effects outside the transaction.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(ctx, pool, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// IsUniqueViolation tells whether err is a unique constraint violation, and on
// which constraint.
func IsUniqueViolation(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName, true
	}
	return "", false
}

// Send sends one batch of a pipelined transaction; last adds the COMMIT.
type Send func(b *pgx.Batch, last bool) error

// InPipeline runs a transaction whose statements the caller sends in a few
// batches: BEGIN rides with the first batch and COMMIT with the last, so a
// read-then-write transaction costs two round trips instead of one per
// statement plus two. fn may read with conn before its first batch (outside
// the transaction). On any error the transaction is rolled back; like InTx,
// serialization failures and deadlocks rerun fn a bounded number of times.
func InPipeline(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgx.Conn, send Send) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
			conn := c.Conn()
			begun := false
			send := func(b *pgx.Batch, last bool) error {
				full := &pgx.Batch{}
				if !begun {
					full.Queue("BEGIN")
					begun = true
				}
				full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
				if last {
					full.Queue("COMMIT")
				}
				return conn.SendBatch(ctx, full).Close()
			}
			ferr := fn(conn, send)
			if conn.PgConn().TxStatus() != 'I' {
				// Left open by an error (or by fn returning early): undo it.
				if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil && ferr == nil {
					ferr = rerr
				}
			}
			return ferr
		})
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
}
