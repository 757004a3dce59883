package server

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
	"github.com/tranche-ledger/tranche/internal/token"
)

// harness is a real server on its own database, reached over gRPC.
type harness struct {
	db     *testdb.DB
	conn   *grpc.ClientConn
	addr   string // the gRPC listener, for clients with a connection of their own
	http   string // the REST listener
	tokens *token.Store
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	db := testdb.New(tb)
	tokens := token.New(db.App)
	stores := testStores(db.App)
	stores.Tokens = tokens
	srv, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, stores, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	addr := make(chan [2]string, 1)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = srv.Run(ctx, func(g, hh string) { addr <- [2]string{g, hh} }); close(done) }()
	h := &harness{db: db, tokens: tokens}
	select {
	case a := <-addr:
		h.addr, h.http = a[0], a[1]
	case <-done:
		stop()
		tb.Fatalf("server did not start: %v", runErr)
	}
	tb.Cleanup(func() { stop(); <-done })
	h.conn = h.dial(tb)
	return h
}

// dial opens a client connection of its own to the server.
func (h *harness) dial(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// as mints a token and returns a context that sends it.
func (h *harness) as(tb testing.TB, role auth.Role, org string) context.Context {
	tb.Helper()
	op := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("test"))
	_, secret, err := h.tokens.Create(op, role, org, string(role))
	if err != nil {
		tb.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
}

// testStores builds every store over pool, as cmd/tranche does.
func testStores(pool *pgxpool.Pool) Stores {
	return Stores{Pool: pool, Tokens: token.New(pool), Organizations: org.New(pool), Roadmaps: roadmap.New(pool),
		Ledger: ledger.New(pool), FX: fx.New(pool)}
}
