package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
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

func newHarness(tb testing.TB) *harness { tb.Helper(); return newHarnessWith(tb, nil) }

// newHarnessWith is newHarness with the stores adjusted by adjust before the
// server starts (a signing key, say).
func newHarnessWith(tb testing.TB, adjust func(*Stores)) *harness {
	tb.Helper()
	db := testdb.New(tb)
	tokens := token.New(db.App)
	stores := testStores(db.App)
	stores.Tokens = tokens
	if adjust != nil {
		adjust(&stores)
	}
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
		Ledger: ledger.New(pool), FX: fx.New(pool), Audit: audit.New(pool),
		Procurement: procurement.New(pool), Detect: detect.New(pool, detect.DefaultConfig())}
}

type fixture struct {
	donorOrgID, ngoOrgID            string
	roadmapID, milestoneID, grantID string
}

// fixture sets up, as admin, a donor and an implementer, a roadmap (USD)
// with a milestone, and a grant between them pledged and committed 1000 USD.
func (h *harness) fixture(t *testing.T, admin context.Context) fixture {
	t.Helper()
	roadmaps := pb.NewRoadmapServiceClient(h.conn)
	grants := pb.NewGrantServiceClient(h.conn)
	n := 0
	rid := func() string { n++; return fmt.Sprint("r-", n) }
	org := func(kind string) string { return h.org(t, admin, kind) }
	donor, ngo := org("DONOR"), org("IMPLEMENTER")
	rm, err := roadmaps.CreateRoadmap(admin, &pb.CreateRoadmapRequest{RequestId: rid(), Roadmap: &pb.Roadmap{Country: "AFG", Title: "Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := roadmaps.CreateMilestone(admin, &pb.CreateMilestoneRequest{RoadmapId: rm.Roadmap.Id, RequestId: rid(), Milestone: &pb.Milestone{
		Code: "M-1", Title: "Clearance", ActivityType: "CLEARANCE", FundingRequirement: &pb.Money{Amount: "1000.00", Currency: "USD"}}})
	if err != nil {
		t.Fatal(err)
	}
	usd := func(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }
	g, err := grants.CreateGrant(admin, &pb.CreateGrantRequest{RequestId: rid(), Grant: &pb.Grant{RoadmapId: rm.Roadmap.Id, DonorOrgId: donor,
		RecipientOrgId: ngo, Reference: "G-1", Title: "Grant", Currency: "USD", Pledged: usd("1000.00"), StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grants.RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: g.Grant.Id, RequestId: rid(),
		Transaction: &pb.Transaction{Type: "COMMITMENT", Amount: usd("1000.00"), ValueDate: "2024-02-01"}}); err != nil {
		t.Fatal(err)
	}
	return fixture{donorOrgID: donor, ngoOrgID: ngo, roadmapID: rm.Roadmap.Id, milestoneID: ms.Milestone.Id, grantID: g.Grant.Id}
}

// org creates an organisation of kind (a unique name, a fresh request id)
// and returns its id.
func (h *harness) org(tb testing.TB, ctx context.Context, kind string) string {
	tb.Helper()
	o, err := pb.NewOrganizationServiceClient(h.conn).CreateOrganization(ctx, &pb.CreateOrganizationRequest{
		Organization: &pb.Organization{Name: kind + " " + uuid.NewString(), Kind: kind}, RequestId: uuid.NewString()})
	if err != nil {
		tb.Fatal(err)
	}
	return o.Organization.Id
}
