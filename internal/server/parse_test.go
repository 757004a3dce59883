package server

import (
	"fmt"
	"strings"
	"testing"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// Text the edge cannot read, and rules the domain refuses, are both named
// by their request path, in request order, and write nothing.
func TestBadRequestsNameRequestPaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	f := h.fixture(t, admin)
	grants := pb.NewGrantServiceClient(h.conn)
	n := 0
	rid := func() string { n++; return fmt.Sprint("p-", n) }
	usd := func(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }
	grantID := f.grantID
	entry := func(edit func(*pb.Transaction)) *pb.Transaction {
		tx := &pb.Transaction{GrantId: grantID, Type: "COMMITMENT", Amount: usd("10.00"), ValueDate: "2024-03-01"}
		edit(tx)
		return tx
	}
	record := func(tx *pb.Transaction) error {
		_, err := grants.RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: grantID, Transaction: tx, RequestId: rid()})
		return err
	}
	batch := func(tx *pb.Transaction) error {
		good := entry(func(*pb.Transaction) {})
		_, err := grants.BatchRecordTransactions(admin, &pb.BatchRecordTransactionsRequest{Transactions: []*pb.Transaction{good, tx}, RequestId: rid()})
		return err
	}
	tests := []struct {
		name  string
		edit  func(*pb.Transaction)
		field string // under transaction. and transactions[1].
	}{
		{"exponent", func(tx *pb.Transaction) { tx.Amount = usd("1e3") }, "amount.amount"},
		{"NaN", func(tx *pb.Transaction) { tx.Amount = usd("NaN") }, "amount.amount"},
		{"40 digits", func(tx *pb.Transaction) { tx.Amount = usd(strings.Repeat("9", 40)) }, "amount.amount"},
		{"more decimals than USD has", func(tx *pb.Transaction) { tx.Amount = usd("12.345") }, "amount.amount"},
		{"unknown currency", func(tx *pb.Transaction) { tx.Amount = &pb.Money{Amount: "1.00", Currency: "ZZZ"} }, "amount.currency"},
		{"zero", func(tx *pb.Transaction) { tx.Amount = usd("0.00") }, "amount.amount"},
		{"impossible date", func(tx *pb.Transaction) { tx.ValueDate = "2024-02-30" }, "valueDate"},
		{"date in 1900", func(tx *pb.Transaction) { tx.ValueDate = "1900-02-01" }, "valueDate"},
		{"fx rate 1e-37", func(tx *pb.Transaction) { tx.FxRate = "0." + strings.Repeat("0", 36) + "1" }, "fxRate"},
		{"fx rate not a number", func(tx *pb.Transaction) { tx.FxRate = "1,5" }, "fxRate"},
		{"milestone not an id", func(tx *pb.Transaction) { tx.MilestoneId = strings.Repeat("z", 36) }, "milestoneId"},
		// The nil UUID names nothing; read as absent it would untag the entry.
		{"milestone the nil id", func(tx *pb.Transaction) { tx.MilestoneId = "00000000-0000-0000-0000-000000000000" }, "milestoneId"},
	}
	for _, tc := range tests {
		if got := fields(t, record(entry(tc.edit))); fmt.Sprint(got) != fmt.Sprint([]string{"transaction." + tc.field}) {
			t.Errorf("record, %s: violations %v, want transaction.%s", tc.name, got, tc.field)
		}
		if got := fields(t, batch(entry(tc.edit))); fmt.Sprint(got) != fmt.Sprint([]string{"transactions[1]." + tc.field}) {
			t.Errorf("batch, %s: violations %v, want transactions[1].%s", tc.name, got, tc.field)
		}
	}
	// 0001-01-01 is Go's zero time: it is out of range, not missing.
	if err := record(entry(func(tx *pb.Transaction) { tx.ValueDate = "0001-01-01" })); !strings.Contains(fmt.Sprint(err), "transaction.valueDate: 0001-01-01 is outside") {
		t.Errorf("value date 0001-01-01: %v", err)
	}
	// A body naming another grant than the path is refused, not ignored.
	other := "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00"
	if got := fields(t, record(entry(func(tx *pb.Transaction) { tx.GrantId = other }))); fmt.Sprint(got) != "[transaction.grantId]" {
		t.Errorf("body grantId other than the path's: violations %v", got)
	}
	// Over REST the path's grant may also be repeated at the top of the body:
	// another one is refused as well, not overwritten by the path's.
	bearer := "Bearer " + h.secret(t, auth.Admin, "")
	r := h.rest(t, "POST", "/v1/grants/"+grantID+"/transactions", bearer, strings.NewReader(`{"grantId": "`+other+
		`", "transaction": {"type": "COMMITMENT", "amount": {"amount": "10.00", "currency": "USD"}, "valueDate": "2024-03-01"}, "requestId": "p-body"}`))
	if r.code != 400 || fmt.Sprint(fieldsOf(r)) != "[grantId]" || !strings.Contains(r.raw, "the path names "+grantID) {
		t.Errorf("REST body grantId other than the path's: %d %s", r.code, r.raw)
	}
	// Several bad fields of a grant come in the grant's field order.
	for range 5 {
		_, err := grants.CreateGrant(admin, &pb.CreateGrantRequest{RequestId: rid(), Grant: &pb.Grant{RoadmapId: f.roadmapID,
			DonorOrgId: f.donorOrgID, RecipientOrgId: f.donorOrgID, Reference: " ", Title: "T", Currency: "USD", Pledged: usd("-1.00"),
			StartDate: "2025-01-01", EndDate: "2024-01-01"}})
		want := []string{"grant.recipientOrgId", "grant.reference", "grant.pledged.amount", "grant.endDate"}
		if got := fields(t, err); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("grant with four bad fields: %v, want %v", got, want)
		}
	}
	list, err := grants.ListTransactions(admin, &pb.ListTransactionsRequest{GrantId: grantID})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Transactions) != 2 { // the fixture's pledge and commitment
		t.Fatalf("refused requests wrote entries: %d in the journal", len(list.Transactions))
	}
}

// A malformed id filter is the caller's error naming the field, not a
// database error.
func TestListGrantsRefusesMalformedIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	grants := pb.NewGrantServiceClient(h.conn)
	admin := h.as(t, auth.Admin, "")
	bad := strings.Repeat("-", 36) // what the request's pattern lets through
	for _, tc := range []struct {
		field string
		req   *pb.ListGrantsRequest
	}{
		{"roadmapId", &pb.ListGrantsRequest{RoadmapId: bad}},
		{"donorOrgId", &pb.ListGrantsRequest{DonorOrgId: bad}},
		{"recipientOrgId", &pb.ListGrantsRequest{RecipientOrgId: "0000000a-0000-0000-0000-00000000000g"}},
		// The nil id would otherwise drop the filter and list every grant.
		{"donorOrgId", &pb.ListGrantsRequest{DonorOrgId: "00000000-0000-0000-0000-000000000000"}},
	} {
		_, err := grants.ListGrants(admin, tc.req)
		if got := fields(t, err); len(got) != 1 || got[0] != tc.field {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT naming %s", tc.field, got, tc.field)
		}
	}
}
