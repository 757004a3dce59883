package main

import (
	"context"
	"io"
	"os"

	"github.com/tranche-ledger/tranche/internal/server"
	"github.com/tranche-ledger/tranche/internal/token"
)

func cmdServe(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("serve", "serve [flags]",
		"Serves the gRPC API and its REST gateway until SIGINT or SIGTERM, on the embedded\nPostgreSQL cluster in --data-dir unless a database URL is given. Applies pending\nmigrations first.", stdout)
	cf := registerConfig(fs, true)
	cfg, err := parseCommand(fs, cf, args, e)
	if err != nil {
		return err
	}
	log := cfg.logger(os.Stderr)
	db, err := cfg.open(ctx, int32(cfg.MaxConns))
	if err != nil {
		return err
	}
	defer db.Close()
	tokens := token.New(db.pool)
	tokens.CacheTTL = cfg.TokenCacheTTL
	srv, err := server.New(server.Config{GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout}, db.pool, tokens, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx, nil)
}
