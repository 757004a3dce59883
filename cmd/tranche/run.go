package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

const usage = `tranche: donor-funding ledger and coordination service for mine action

usage: tranche <command> [flags]

commands:
  serve     run the gRPC and REST API (embedded PostgreSQL unless DATABASE_URL is set)
  demo      serve with a sample mine action programme loaded (tranche demo [--seed N] [serve's flags])
  migrate   apply database migrations and exit
  token     create, list or revoke API tokens (tranche token create --role ROLE [--org ID] [--name NAME])
  verify    recompute the audit hash chain; exit status 2 when it does not verify
            (--since-head FILE: and check it extends a signed head saved earlier)
  keys      generate the ed25519 key pair that signs audit-chain heads
  pack      write an Excel audit pack (tranche pack --roadmap ID -o FILE);
            'tranche pack verify FILE' checks one
  import    import FTS, IATI or OCDS files (tranche import fts|iati|ocds FILE... [--roadmap ID] [--grant ID])
  export    write a roadmap as an IATI 2.03 activity file (tranche export iati --roadmap ID -o FILE)
  help      this text; 'tranche help <command>' for a command's flags

Run 'tranche <command> -h' for a command's flags.
`

type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// run is the whole program; main only supplies the process's arguments,
// environment and output. Asking for help (-h, --help, help) prints usage to
// stdout and succeeds.
func run(ctx context.Context, args, env []string, stdout io.Writer) error {
	err := dispatch(ctx, args, envMap(env), stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the flag set has printed its usage
	}
	return err
}

func dispatch(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitError{code: 2, msg: "no command given"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], e, stdout)
	case "demo":
		return cmdDemo(ctx, args[1:], e, stdout)
	case "migrate":
		return cmdMigrate(ctx, args[1:], e, stdout)
	case "token":
		return cmdToken(ctx, args[1:], e, stdout)
	case "verify":
		return cmdVerify(ctx, args[1:], e, stdout)
	case "keys":
		return cmdKeys(ctx, args[1:], e, stdout)
	case "pack":
		return cmdPack(ctx, args[1:], e, stdout)
	case "import":
		return cmdImport(ctx, args[1:], e, stdout)
	case "export":
		return cmdExport(ctx, args[1:], e, stdout)
	case "help", "-h", "--help":
		if len(args) > 1 && args[0] == "help" && !isHelp(args[1]) {
			// tranche help token create = tranche token create -h
			return dispatch(ctx, append(slices.Clone(args[1:]), "-h"), e, stdout)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	return exitError{code: 2, msg: fmt.Sprintf("unknown command %q (see tranche help)", args[0])}
}

func isFlagHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// newFlagSet is a command's flag set; -h or --help prints its usage to stdout
// and makes Parse return flag.ErrHelp, which run turns into success.
func newFlagSet(name, synopsis, about string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: tranche %s\n\n%s\n\nflags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
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

// parseCommand parses a command's flags and resolves its configuration.
// Malformed flags and settings are usage errors (exit status 2).
func parseCommand(fs *flag.FlagSet, cf *configFlags, args []string, e map[string]string) (Config, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, exitError{code: 2, msg: err.Error()}
	}
	c, err := cf.resolve(e)
	if err != nil {
		return Config{}, exitError{code: 2, msg: "configuration: " + err.Error()}
	}
	return c, nil
}

func (c Config) logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: c.LogLevel}))
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
func (c Config) open(ctx context.Context, maxConns int32) (*database, error) {
	db := &database{}
	appURL, ownerURL := c.DatabaseURL, c.MigrateDatabaseURL
	if appURL == "" {
		cl, err := postgres.StartCluster(ctx, c.DataDir)
		if err != nil {
			return nil, err
		}
		db.cluster = cl
		appURL, ownerURL = cl.AppURL(), cl.OwnerURL()
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
