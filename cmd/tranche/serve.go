package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
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
	svc, err := openService(ctx, cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	return svc.run(ctx, nil)
}

// service is what serve runs (and demo, which loads a programme first): the
// configuration, the open database and the domain stores over it.
type service struct {
	cfg    Config
	log    *slog.Logger
	db     *database
	stores server.Stores
}

// openService checks serve's settings, opens (and migrates) the database
// and builds the stores, as serve does before it listens.
func openService(ctx context.Context, cfg Config) (*service, error) {
	thresholds, err := cfg.thresholds() // verified when the configuration was read
	if err != nil {
		return nil, exitError{code: 2, msg: "configuration: --detect-config (env TRANCHE_DETECT_CONFIG): " + err.Error()}
	}
	key, err := cfg.signingKey() // verified too
	if err != nil {
		return nil, exitError{code: 2, msg: "configuration: --signing-key (env TRANCHE_SIGNING_KEY): " + err.Error()}
	}
	log := cfg.logger(os.Stderr)
	db, err := cfg.open(ctx, int32(cfg.MaxConns))
	if err != nil {
		return nil, err
	}
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
	return &service{cfg: cfg, log: log, db: db, stores: stores}, nil
}

func (s *service) Close() { s.db.Close() }

// run serves until ctx ends; ready, if set, hears the addresses listened on.
func (s *service) run(ctx context.Context, ready func(grpcAddr, httpAddr string)) error {
	srv, err := server.New(server.Config{GRPCAddr: s.cfg.GRPCAddr, HTTPAddr: s.cfg.HTTPAddr, ShutdownTimeout: s.cfg.ShutdownTimeout,
		DetectInterval: s.cfg.DetectInterval}, s.stores, s.log)
	if err != nil {
		return err
	}
	return srv.Run(ctx, ready)
}
