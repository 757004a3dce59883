package server

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// GetReconciliation pages its receipt matches over gRPC: the pages hold
// exactly the matches of one big page, each carries the whole summary and
// the same balances, and a bad page size or token is INVALID_ARGUMENT naming
// the field.
func TestReconciliationPagesOverGRPC(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	roadmaps := pb.NewRoadmapServiceClient(h.conn)
	grants := pb.NewGrantServiceClient(h.conn)
	org := func(kind string) string { return h.org(t, admin, kind) }
	donor, ngo := org("DONOR"), org("IMPLEMENTER")
	rm, err := roadmaps.CreateRoadmap(admin, &pb.CreateRoadmapRequest{Roadmap: &pb.Roadmap{Country: "AFG", Title: "Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}, RequestId: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	usd := func(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }
	g, err := grants.CreateGrant(admin, &pb.CreateGrantRequest{RequestId: uuid.NewString(), Grant: &pb.Grant{RoadmapId: rm.Roadmap.Id,
		DonorOrgId: donor, RecipientOrgId: ngo, Reference: "G", Title: "Grant", Currency: "USD", Pledged: usd("0.00"),
		StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	batch := &pb.BatchRecordTransactionsRequest{RequestId: uuid.NewString(), Transactions: []*pb.Transaction{
		{GrantId: g.Grant.Id, Type: "COMMITMENT", Amount: usd("1000.00"), ValueDate: "2024-02-01"}}}
	for i := range 9 { // matched, a variance, missing receipts, receipts without a disbursement
		ref := fmt.Sprint("P-", i)
		if i < 7 {
			batch.Transactions = append(batch.Transactions, &pb.Transaction{GrantId: g.Grant.Id, Type: "DISBURSEMENT", Amount: usd("10.00"), ValueDate: "2024-03-01", Reference: ref})
		}
		if i%3 != 0 {
			amount := "10.00"
			if i == 4 {
				amount = "9.00"
			}
			batch.Transactions = append(batch.Transactions, &pb.Transaction{GrantId: g.Grant.Id, Type: "RECEIPT", Amount: usd(amount), ValueDate: "2024-03-02", Reference: ref})
		}
	}
	if _, err := grants.BatchRecordTransactions(admin, batch); err != nil {
		t.Fatal(err)
	}
	one, err := grants.GetReconciliation(admin, &pb.GetReconciliationRequest{GrantId: g.Grant.Id, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.ReceiptMatches) != 9 || one.NextPageToken != "" {
		t.Fatalf("one page: %d matches, next %q", len(one.ReceiptMatches), one.NextPageToken)
	}
	counts := map[string]int32{}
	for _, s := range one.ReceiptMatchSummary {
		counts[s.Status] = s.Count
	}
	// P-0, P-3, P-6 have no receipt; P-4's is short; P-7, P-8 have no disbursement.
	if counts["MATCHED"] != 3 || counts["AMOUNT_VARIANCE"] != 1 || counts["MISSING_RECEIPT"] != 3 || counts["RECEIPT_WITHOUT_DISBURSEMENT"] != 2 {
		t.Fatalf("summary %v", one.ReceiptMatchSummary)
	}
	var paged []*pb.ReceiptMatch
	for token := ""; ; {
		r, err := grants.GetReconciliation(admin, &pb.GetReconciliationRequest{GrantId: g.Grant.Id, PageSize: 2, PageToken: token, AsOf: one.AsOf})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(r.Agreement, one.Agreement) || len(r.ReceiptMatchSummary) != 4 {
			t.Fatalf("page: balances %v summary %v", r.Agreement, r.ReceiptMatchSummary)
		}
		for i := range r.ReceiptMatchSummary {
			if !proto.Equal(r.ReceiptMatchSummary[i], one.ReceiptMatchSummary[i]) {
				t.Fatalf("page summary %v, first %v", r.ReceiptMatchSummary, one.ReceiptMatchSummary)
			}
		}
		paged = append(paged, r.ReceiptMatches...)
		if token = r.NextPageToken; token == "" {
			break
		}
	}
	if len(paged) != len(one.ReceiptMatches) {
		t.Fatalf("%d matches paged, %d in one page", len(paged), len(one.ReceiptMatches))
	}
	for i := range paged {
		if !proto.Equal(paged[i], one.ReceiptMatches[i]) {
			t.Fatalf("match %d: paged %v, one page %v", i, paged[i], one.ReceiptMatches[i])
		}
	}
	for _, tc := range []struct {
		field string
		req   *pb.GetReconciliationRequest
	}{
		{"pageSize", &pb.GetReconciliationRequest{GrantId: g.Grant.Id, PageSize: 1001}},
		{"pageToken", &pb.GetReconciliationRequest{GrantId: g.Grant.Id, PageToken: "not-a-token"}},
	} {
		_, err := grants.GetReconciliation(admin, tc.req)
		st := status.Convert(err)
		var fields []string
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.FieldViolations {
					fields = append(fields, v.Field)
				}
			}
		}
		if st.Code() != codes.InvalidArgument || len(fields) != 1 || fields[0] != tc.field {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT naming it", tc.field, st.Code(), fields)
		}
	}
}
