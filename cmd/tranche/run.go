package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

const usage = `tranche: donor-funding ledger and coordination service for mine action

usage: tranche <command> [flags]

commands:
  serve     run the gRPC and REST API (embedded PostgreSQL unless DATABASE_URL is set)
  migrate   apply database migrations and exit
  token     create, list or revoke API tokens (tranche token create --role ROLE [--org ID] [--name NAME])
  verify    recompute the audit hash chain; exit status 2 when it does not verify

Run 'tranche <command> -h' for a command's flags.
`

type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// run is the whole program; main only supplies the process's arguments,
// environment and output.
func run(ctx context.Context, args, env []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitError{code: 2, msg: "no command given"}
	}
	e := envMap(env)
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], e, stdout)
	case "migrate":
		return cmdMigrate(ctx, args[1:], e, stdout)
	case "token":
		return cmdToken(ctx, args[1:], e, stdout)
	case "verify":
		return cmdVerify(ctx, args[1:], e, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return exitError{code: 2, msg: fmt.Sprintf("unknown command %q (see tranche help)", args[0])}
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func envOr(e map[string]string, key, def string) string {
	if v, ok := e[key]; ok && v != "" {
		return v
	}
	return def
}

// dbFlags select the database: an external server through DATABASE_URL, or
// the embedded cluster in --data-dir.
type dbFlags struct {
	dataDir    string
	url        string
	migrateURL string
	logLevel   string
}

func (d *dbFlags) register(fs *flag.FlagSet, e map[string]string) {
	fs.StringVar(&d.dataDir, "data-dir", envOr(e, "TRANCHE_DATA_DIR", "./tranche-data"), "embedded PostgreSQL data directory (env TRANCHE_DATA_DIR), used when DATABASE_URL is empty")
	fs.StringVar(&d.url, "database-url", envOr(e, "DATABASE_URL", ""), "PostgreSQL URL the service connects with (env DATABASE_URL)")
	fs.StringVar(&d.migrateURL, "migrate-database-url", envOr(e, "MIGRATE_DATABASE_URL", ""), "PostgreSQL URL of the schema owner, for migrations (env MIGRATE_DATABASE_URL; default: the database URL)")
	fs.StringVar(&d.logLevel, "log-level", envOr(e, "TRANCHE_LOG_LEVEL", "info"), "debug, info, warn or error (env TRANCHE_LOG_LEVEL)")
}

func (d *dbFlags) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(d.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// database is an open, migrated database and, in embedded mode, its cluster.
type database struct {
	pool    *pgxpool.Pool
	cluster *postgres.Cluster
}

func (db *database) Close() {
	if db.pool != nil {
		db.pool.Close()
	}
	if err := db.cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "tranche: stopping embedded PostgreSQL:", err)
	}
}

// open starts or joins the embedded cluster when no URL is given, applies
// pending migrations and connects as the service.
func (d *dbFlags) open(ctx context.Context, maxConns int32) (*database, error) {
	db := &database{}
	appURL, ownerURL := d.url, d.migrateURL
	if appURL == "" {
		c, err := postgres.StartCluster(ctx, d.dataDir)
		if err != nil {
			return nil, err
		}
		db.cluster = c
		appURL, ownerURL = c.AppURL(), c.OwnerURL()
	}
	if ownerURL == "" {
		ownerURL = appURL
	}
	mctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := postgres.Migrate(mctx, ownerURL); err != nil {
		db.Close()
		return nil, err
	}
	pool, err := postgres.Connect(ctx, appURL, maxConns)
	if err != nil {
		db.Close()
		return nil, err
	}
	db.pool = pool
	return db, nil
}
