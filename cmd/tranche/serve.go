package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/tranche-ledger/tranche/internal/server"
	"github.com/tranche-ledger/tranche/internal/token"
)

func cmdServe(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stdout)
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
