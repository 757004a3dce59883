package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"os"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
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
	thresholds, err := cfg.thresholds() // verified when the configuration was read
	if err != nil {
		return exitError{code: 2, msg: "configuration: --detect-config (env TRANCHE_DETECT_CONFIG): " + err.Error()}
	}
	key, err := cfg.signingKey() // verified too
	if err != nil {
		return exitError{code: 2, msg: "configuration: --signing-key (env TRANCHE_SIGNING_KEY): " + err.Error()}
	}
	log := cfg.logger(os.Stderr)
	db, err := cfg.open(ctx, int32(cfg.MaxConns))
	if err != nil {
		return err
	}
	defer db.Close()
	tokens := token.New(db.pool)
	tokens.CacheTTL = cfg.TokenCacheTTL
	auditStore := audit.New(db.pool)
	auditStore.SetSigningKey(key)
	if key == nil {
		log.Info("no --signing-key: audit-chain heads are unsigned")
	} else {
		log.Info("signing audit-chain heads", "keyId", audit.KeyID(key.Public().(ed25519.PublicKey)))
	}
	stores := server.Stores{Pool: db.pool, Tokens: tokens, Organizations: org.New(db.pool), Roadmaps: roadmap.New(db.pool),
		Ledger: ledger.New(db.pool), FX: fx.New(db.pool), Audit: auditStore,
		Procurement: procurement.New(db.pool), Detect: detect.New(db.pool, thresholds)}
	srv, err := server.New(server.Config{GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout,
		DetectInterval: cfg.DetectInterval}, stores, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx, nil)
}
