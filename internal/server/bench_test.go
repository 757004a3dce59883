package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// BenchmarkLedger measures, in one run on one PostgreSQL:
//
//   - journal writes over gRPC (RecordTransaction, audit trail on) from 8
//     concurrent clients, against raw single-row INSERTs into the same
//     database from 8 clients: the ratio is the figure (target ≥ 0.5). The
//     same writes straight into the ledger (no gRPC) are printed beside it,
//     to tell the database's share from the RPC layer's;
//
//   - batch import through BatchRecordTransactions, 1 000 entries a call
//     (target ≥ 20 000 entries/s);
//
//   - p99 latency of GetReconciliation on a grant with 10 000 entries.
//
//     go test -run '^$' -bench Ledger -benchtime 1x ./internal/server/
func BenchmarkLedger(b *testing.B) {
	h := newHarness(b)
	db, conn, ctx := h.db, h.conn, context.Background()
	admin := h.as(b, auth.Admin, "")
	orgs := pb.NewOrganizationServiceClient(conn)
	roadmaps := pb.NewRoadmapServiceClient(conn)
	grants := pb.NewGrantServiceClient(conn)
	newOrg := func(kind string) string {
		r, err := orgs.CreateOrganization(admin, &pb.CreateOrganizationRequest{Organization: &pb.Organization{Name: kind + uuid.NewString(), Kind: kind}, RequestId: uuid.NewString()})
		if err != nil {
			b.Fatal(err)
		}
		return r.Organization.Id
	}
	donor, impl := newOrg("DONOR"), newOrg("IMPLEMENTER")
	rm, err := roadmaps.CreateRoadmap(admin, &pb.CreateRoadmapRequest{Roadmap: &pb.Roadmap{Country: "AFG", Title: "bench",
		StartDate: "2024-01-01", EndDate: "2030-12-31", ReportingCurrency: "USD"}, RequestId: uuid.NewString()})
	if err != nil {
		b.Fatal(err)
	}
	newGrant := func() string {
		g, err := grants.CreateGrant(admin, &pb.CreateGrantRequest{Grant: &pb.Grant{RoadmapId: rm.Roadmap.Id, DonorOrgId: donor,
			RecipientOrgId: impl, Reference: uuid.NewString(), Title: "bench", Currency: "USD",
			Pledged: &pb.Money{Amount: "100000000.00", Currency: "USD"}, StartDate: "2024-01-01", EndDate: "2030-12-31"},
			RequestId: uuid.NewString()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := grants.RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: g.Grant.Id, RequestId: uuid.NewString(),
			Transaction: &pb.Transaction{Type: "COMMITMENT", Amount: &pb.Money{Amount: "100000000.00", Currency: "USD"}, ValueDate: "2024-02-01"}}); err != nil {
			b.Fatal(err)
		}
		return g.Grant.Id
	}
	const clients = 8
	const perClient = 400
	// Eight clients, each with its own grant and its own connection, as the
	// raw INSERTs use eight pooled database connections.
	clientGrants := make([]string, clients)
	clientConns := make([]pb.GrantServiceClient, clients)
	for i := range clientGrants {
		clientGrants[i] = newGrant()
		clientConns[i] = pb.NewGrantServiceClient(h.dial(b))
	}
	parallel := func(fn func(c, i int) error) float64 { return testdb.Rate(b, clients, perClient, fn) }
	raw := db.RawInsert(b)
	record := func(c, i int) error {
		_, err := clientConns[c].RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: clientGrants[c], RequestId: uuid.NewString(),
			Transaction: &pb.Transaction{Type: "DISBURSEMENT", Amount: &pb.Money{Amount: "1.00", Currency: "USD"},
				ValueDate: "2024-03-01", Reference: fmt.Sprint("P", c, "-", i)}})
		return err
	}
	direct := ledger.New(db.App)
	op := auth.WithPrincipal(ctx, auth.Principal{TokenID: "bench", Role: auth.Admin})
	recordDirect := func(c, i int) error {
		_, err := direct.RecordTransaction(op, ledger.EntryInput{GrantID: uuid.MustParse(clientGrants[c]), Type: "DISBURSEMENT",
			Amount: money.Amount{Value: decimal.RequireFromString("1.00"), Currency: "USD"}, ValueDate: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
			Reference: fmt.Sprint("D", c, "-", i)}, uuid.NewString())
		return err
	}
	b.Run("writes", func(b *testing.B) {
		for b.Loop() {
			parallel(raw) // warm-up
			parallel(record)
			parallel(recordDirect)
			rawRate := parallel(raw)
			grpcRate := parallel(record)
			directRate := parallel(recordDirect)
			rawRate = (rawRate + parallel(raw)) / 2 // bracket the ledger runs
			b.ReportMetric(grpcRate, "grpc_tx/s")
			b.ReportMetric(directRate, "direct_tx/s")
			b.ReportMetric(rawRate, "raw_insert/s")
			b.ReportMetric(grpcRate/rawRate, "ratio")
			b.Logf("8 clients: RecordTransaction over gRPC %.0f/s, raw single-row INSERT %.0f/s: ratio %.2f (target >= 0.5); "+
				"straight into the ledger, no gRPC: %.0f/s (%.2f)", grpcRate, rawRate, grpcRate/rawRate, directRate, directRate/rawRate)
		}
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			// Batch import: 60 calls of 1 000 entries, sequential; the first 10 warm up.
			bg := newGrant()
			const warmup, calls = 10, 50
			var start time.Time
			for k := range warmup + calls {
				if k == warmup {
					start = time.Now()
				}
				req := &pb.BatchRecordTransactionsRequest{RequestId: uuid.NewString()}
				for i := range 1000 {
					req.Transactions = append(req.Transactions, &pb.Transaction{GrantId: bg, Type: "DISBURSEMENT",
						Amount: &pb.Money{Amount: "1.00", Currency: "USD"}, ValueDate: "2024-03-01", Reference: fmt.Sprint("B", k, "-", i)})
				}
				if _, err := grants.BatchRecordTransactions(admin, req); err != nil {
					b.Fatal(err)
				}
			}
			batchRate := float64(calls*1000) / time.Since(start).Seconds()
			b.ReportMetric(batchRate, "batch_tx/s")
			b.Logf("batch import: %.0f entries/s (1 000 per call; target >= 20 000)", batchRate)
		}
	})
	// Reconciliation of grants with 10 000 entries, sequential calls at a
	// steady 200 per second: "tranches" is paid in 50 tranches with 50
	// receipts and 9 900 expenditures (the usual shape), "flows" the worst case
	// of 5 000 disbursements each with its receipt (5 000 matches returned).
	for _, shape := range []struct {
		name  string
		flows int // of every 1 000 entries
	}{{"tranches", 10}, {"flows", 1000}} {
		b.Run("reconcile/"+shape.name, func(b *testing.B) {
			for b.Loop() {
				rg := newGrant()
				for k := range 10 {
					req := &pb.BatchRecordTransactionsRequest{RequestId: uuid.NewString()}
					for i := range 1000 {
						typ, ref := "DISBURSEMENT", fmt.Sprint("R", k, "-", i)
						switch {
						case i >= shape.flows:
							typ, ref = "EXPENDITURE", fmt.Sprint("INV", k, "-", i)
						case i%2 == 1:
							typ, ref = "RECEIPT", fmt.Sprint("R", k, "-", i-1)
						}
						req.Transactions = append(req.Transactions, &pb.Transaction{GrantId: rg, Type: typ,
							Amount: &pb.Money{Amount: "1.00", Currency: "USD"}, ValueDate: "2024-03-01", Reference: ref})
					}
					if _, err := grants.BatchRecordTransactions(admin, req); err != nil {
						b.Fatal(err)
					}
				}
				var lat []time.Duration
				tick := time.NewTicker(5 * time.Millisecond) // 200 requests per second
				for range 400 {
					<-tick.C
					t0 := time.Now()
					if _, err := grants.GetReconciliation(admin, &pb.GetReconciliationRequest{GrantId: rg}); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				tick.Stop()
				slices.Sort(lat)
				p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
				b.Logf("reconciliation (%s) of a grant with 10 001 entries at 200 req/s: p50 %v, p99 %v (target p99 <= 20ms)", shape.name, p50, p99)
			}
		})
	}
}
