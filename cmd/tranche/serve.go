package main

import (
	"context"
	"flag"
	"io"
	"os"
	"time"

	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/server"
	"github.com/tranche-ledger/tranche/internal/token"
)

func cmdServe(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var d dbFlags
	d.register(fs, e)
	grpcAddr := fs.String("grpc-addr", envOr(e, "TRANCHE_GRPC_ADDR", "127.0.0.1:9090"), "gRPC listen address (env TRANCHE_GRPC_ADDR)")
	httpAddr := fs.String("http-addr", envOr(e, "TRANCHE_HTTP_ADDR", "127.0.0.1:8080"), "REST/HTTP listen address (env TRANCHE_HTTP_ADDR)")
	cacheTTL := fs.Duration("token-cache-ttl", durationEnv(e, "TRANCHE_TOKEN_CACHE_TTL", 5*time.Second), "how long a valid token is trusted without a database lookup; a revocation takes effect within it (env TRANCHE_TOKEN_CACHE_TTL)")
	maxConns := fs.Int("max-conns", 32, "maximum database connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := d.logger(os.Stderr)
	db, err := d.open(ctx, int32(*maxConns))
	if err != nil {
		return err
	}
	defer db.Close()
	tokens := token.New(db.pool)
	tokens.CacheTTL = *cacheTTL
	stores := server.Stores{Pool: db.pool, Tokens: tokens, Organizations: org.New(db.pool), Roadmaps: roadmap.New(db.pool),
		Ledger: ledger.New(db.pool), FX: fx.New(db.pool)}
	srv, err := server.New(server.Config{GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr}, stores, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx, nil)
}

func durationEnv(e map[string]string, key string, def time.Duration) time.Duration {
	if v, ok := e[key]; ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
