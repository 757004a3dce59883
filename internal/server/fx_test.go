package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// fxWorld is a EUR grant under a USD roadmap, committed, with its donor.
type fxWorld struct {
	h              *harness
	admin, donor   context.Context
	grantID        string
	grants         pb.GrantServiceClient
	fx             pb.FxRateServiceClient
	n              int
	roadmapID, ngo string
}

func (w *fxWorld) rid() string { w.n++; return fmt.Sprint("fx-", w.n) }

func newFxWorld(t *testing.T) *fxWorld {
	t.Helper()
	h := newHarness(t)
	w := &fxWorld{h: h, admin: h.as(t, auth.Admin, ""), grants: pb.NewGrantServiceClient(h.conn), fx: pb.NewFxRateServiceClient(h.conn)}
	orgs := pb.NewOrganizationServiceClient(h.conn)
	org := func(kind string) string {
		o, err := orgs.CreateOrganization(w.admin, &pb.CreateOrganizationRequest{Organization: &pb.Organization{Name: kind, Kind: kind}, RequestId: w.rid()})
		if err != nil {
			t.Fatal(err)
		}
		return o.Organization.Id
	}
	donor := org("DONOR")
	w.ngo = org("IMPLEMENTER")
	w.donor = h.as(t, auth.Donor, donor)
	rm, err := pb.NewRoadmapServiceClient(h.conn).CreateRoadmap(w.admin, &pb.CreateRoadmapRequest{Roadmap: &pb.Roadmap{Country: "AFG", Title: "Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}, RequestId: w.rid()})
	if err != nil {
		t.Fatal(err)
	}
	w.roadmapID = rm.Roadmap.Id
	if _, err := w.fx.CreateFxRates(w.admin, &pb.CreateFxRatesRequest{Rates: []*pb.FxRate{
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.90"}}}); err != nil {
		t.Fatal(err)
	}
	g, err := w.grants.CreateGrant(w.donor, &pb.CreateGrantRequest{RequestId: w.rid(), Grant: &pb.Grant{RoadmapId: w.roadmapID, DonorOrgId: donor,
		RecipientOrgId: w.ngo, Reference: "EU-1", Title: "Grant", Currency: "EUR", Pledged: &pb.Money{Amount: "1000.00", Currency: "EUR"},
		StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	w.grantID = g.Grant.Id
	w.record(t, "COMMITMENT", "1000.00", "EUR", "2024-02-01", "")
	return w
}

func (w *fxWorld) record(t *testing.T, typ, amount, currency, date, fxRate string) *pb.Transaction {
	t.Helper()
	tx, err := w.grants.RecordTransaction(w.donor, &pb.RecordTransactionRequest{GrantId: w.grantID, RequestId: w.rid(),
		Transaction: &pb.Transaction{Type: typ, Amount: &pb.Money{Amount: amount, Currency: currency}, ValueDate: date, FxRate: fxRate, Reference: w.rid()}})
	if err != nil {
		t.Fatal(err)
	}
	return tx.Transaction
}

// fields returns the fields an INVALID_ARGUMENT names in its BadRequest.
func fields(t *testing.T, err error) []string {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

// An entry's own fxRate obeys the plausibility limits of table rates, and
// no entry converts to more digits than an entered amount may have, on the
// single and the batch path; nothing is written.
func TestEntryRatesAndConvertedAmountsAreBounded(t *testing.T) {
	t.Parallel()
	w := newFxWorld(t)
	for _, tc := range []struct {
		name, amount, fxRate, field string
	}{
		{"fxRate 1e-31", "1.00", "0." + strings.Repeat("0", 30) + "1", "fxRate"},
		{"fxRate 1e15", "1.00", "1000000000000000", "fxRate"},
		{"fxRate with 16 significant digits", "1.00", "0.9000000000000001", "fxRate"},
		{"converts beyond 15 integer digits", "10000000000.00", "0.00001", "amount.amount"}, // 10^15 USD
	} {
		entry := &pb.Transaction{Type: "DISBURSEMENT", Amount: &pb.Money{Amount: tc.amount, Currency: "EUR"}, ValueDate: "2024-03-01",
			FxRate: tc.fxRate, GrantId: w.grantID}
		_, err := w.grants.RecordTransaction(w.donor, &pb.RecordTransactionRequest{GrantId: w.grantID, RequestId: w.rid(), Transaction: entry})
		if got := fields(t, err); fmt.Sprint(got) != "[transaction."+tc.field+"]" {
			t.Errorf("%s: violations on %v (%v)", tc.name, got, err)
		}
		_, err = w.grants.BatchRecordTransactions(w.donor, &pb.BatchRecordTransactionsRequest{RequestId: w.rid(), Transactions: []*pb.Transaction{entry}})
		if got := fields(t, err); fmt.Sprint(got) != "[transactions[0]."+tc.field+"]" {
			t.Errorf("%s, batch: violations on %v (%v)", tc.name, got, err)
		}
	}
	// The limits themselves are accepted.
	w.record(t, "DISBURSEMENT", "1.00", "EUR", "2024-03-01", "0.00001")
	var n int
	if err := w.h.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM transactions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 { // the pledge, the commitment, the last disbursement
		t.Fatalf("%d entries stored, want 3", n)
	}
}
