package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// rawCodec sends bytes as they are, so a test can send what a proto library
// refuses to marshal (strings that are not UTF-8), and decodes answers as
// protos.
type rawCodec struct{}

type rawMessage []byte

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawMessage))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// withBadUTF8 marshals m and replaces the marker "\u2603\u2603" (6 bytes)
// in it with 6 bytes that are not UTF-8, keeping every length prefix right.
func withBadUTF8(tb testing.TB, m proto.Message) rawMessage {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	marker := []byte("\u2603\u2603")
	if !bytes.Contains(b, marker) {
		tb.Fatal("no marker in the message")
	}
	return bytes.ReplaceAll(b, marker, []byte{'x', 0xff, 0xfe, 0xc3, 0x28, 'y'})
}

// Every text field of every request must be valid UTF-8 without NUL bytes:
// over gRPC and REST, at any depth, a bad one is INVALID_ARGUMENT naming its
// JSON path, and nothing is written. These used to be 500s (PostgreSQL
// refuses NUL) or, for bad UTF-8 over gRPC, INTERNAL from the codec.
func TestBadTextIsRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	bearer := "Bearer " + h.secret(t, auth.Admin, "")
	fx := h.fixture(t, admin)
	grantID, rm, ms := fx.grantID, fx.roadmapID, fx.milestoneID
	usd := func(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }
	entry := func(ref string) *pb.Transaction {
		return &pb.Transaction{GrantId: grantID, Type: "DISBURSEMENT", Amount: usd("1.00"), ValueDate: "2024-03-01", Reference: ref}
	}
	rate := func(source string) *pb.FxRate {
		return &pb.FxRate{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.9", Source: source}
	}
	const bad = "\u2603\u2603" // replaced by bytes that are not UTF-8
	for _, tc := range []struct {
		method string
		path   string // REST path of the same call
		req    proto.Message
		want   []string
	}{
		{"/tranche.v1.OrganizationService/CreateOrganization", "/v1/organizations",
			&pb.CreateOrganizationRequest{Organization: &pb.Organization{Name: "EU", Kind: "DONOR"}, RequestId: "o\x00"},
			[]string{"requestId"}},
		{"/tranche.v1.OrganizationService/CreateOrganization", "/v1/organizations",
			&pb.CreateOrganizationRequest{Organization: &pb.Organization{Name: "E\x00U", Kind: "DONOR"}, RequestId: "o-2"},
			[]string{"organization.name"}},
		{"/tranche.v1.OrganizationService/CreateOrganization", "/v1/organizations",
			&pb.CreateOrganizationRequest{Organization: &pb.Organization{Name: "E" + bad, Kind: "DONOR"}, RequestId: "o-3"},
			[]string{"organization.name"}},
		{"/tranche.v1.RoadmapService/CreateRoadmap", "/v1/roadmaps",
			&pb.CreateRoadmapRequest{RequestId: "\x00", Roadmap: &pb.Roadmap{Country: "AFG", Title: "S\x00",
				StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}},
			[]string{"roadmap.title", "requestId"}},
		{"/tranche.v1.RoadmapService/CreateMilestone", "/v1/roadmaps/" + rm + "/milestones",
			&pb.CreateMilestoneRequest{RoadmapId: rm, RequestId: "m-2", Milestone: &pb.Milestone{
				Code: "M-2", Title: bad, ActivityType: "CLEARANCE", FundingRequirement: &pb.Money{Amount: "1.00", Currency: "US\x00"}}},
			[]string{"milestone.title", "milestone.fundingRequirement.currency"}},
		{"/tranche.v1.GrantService/RecordTransaction", "/v1/grants/" + grantID + "/transactions",
			&pb.RecordTransactionRequest{GrantId: grantID, RequestId: "t\x00", Transaction: &pb.Transaction{
				Type: "DISBURSEMENT", Amount: usd("1.00"), ValueDate: "2024-03-01", Note: "paid\x00"}},
			[]string{"transaction.note", "requestId"}},
		{"/tranche.v1.GrantService/SetAllocations", "/v1/grants/" + grantID + ":setAllocations",
			&pb.SetAllocationsRequest{GrantId: grantID, RequestId: "a\x00", Allocations: []*pb.Allocation{
				{MilestoneId: ms, Amount: usd("1.00")}, {MilestoneId: bad, Amount: usd("1.00")}}},
			[]string{"allocations[1].milestoneId", "requestId"}},
		{"/tranche.v1.GrantService/BatchRecordTransactions", "/v1/transactions:batchRecord",
			&pb.BatchRecordTransactionsRequest{RequestId: "b" + bad, Transactions: []*pb.Transaction{
				entry("ok"), entry("ok-2"), entry("ok-3"), entry("re\x00f")}},
			[]string{"transactions[3].reference", "requestId"}},
		{"/tranche.v1.GrantService/BatchRecordTransactions", "/v1/transactions:batchRecord",
			&pb.BatchRecordTransactionsRequest{RequestId: "b\x00", Transactions: []*pb.Transaction{entry("ok")}},
			[]string{"requestId"}},
		{"/tranche.v1.FxRateService/CreateFxRates", "/v1/fx-rates",
			&pb.CreateFxRatesRequest{Rates: []*pb.FxRate{rate("ECB"), rate("EC\x00B"), rate(bad)}},
			[]string{"rates[1].source", "rates[2].source"}},
		{"/tranche.v1.OrganizationService/ListOrganizations", "/v1/organizations?pageToken=%00",
			&pb.ListOrganizationsRequest{PageToken: "\x00"},
			[]string{"pageToken"}},
	} {
		before := h.auditEvents(t, bearer)
		// gRPC, with bad UTF-8 sent as raw bytes.
		var err error
		if b, _ := proto.Marshal(tc.req); bytes.Contains(b, []byte(bad)) {
			var resp pb.CreateOrganizationResponse // any message: only the error matters
			err = h.conn.Invoke(admin, tc.method, withBadUTF8(t, tc.req), &resp, grpc.ForceCodecV2(rawCodec{}))
		} else {
			err = h.conn.Invoke(admin, tc.method, tc.req, new(pb.CreateOrganizationResponse))
		}
		if got := violationFields(err); status.Code(err) != codes.InvalidArgument || !slicesEqual(got, tc.want) {
			t.Errorf("gRPC %s: %v, fields %q, want %q", tc.method, err, got, tc.want)
		}
		// REST: NUL as \u0000 in JSON, bad UTF-8 as raw bytes in the body
		// (refused by the JSON decoder, which names the same field).
		if strings.HasPrefix(tc.path, "/v1/organizations?") {
			r := h.rest(t, "GET", tc.path, bearer, nil)
			if r.code != 400 || !slicesEqual(fieldsOf(r), tc.want) {
				t.Errorf("REST GET %s: %d %s, want %q", tc.path, r.code, r.raw, tc.want)
			}
			continue
		}
		body, err := protojson.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.ReplaceAll(body, []byte(bad), []byte{0xff, 0xfe})
		r := h.rest(t, "POST", tc.path, bearer, bytes.NewReader(body))
		got := fieldsOf(r)
		if r.code != 400 || r.grpcCode() != 3 || !sameSet(got, tc.want) {
			t.Errorf("REST POST %s: %d %s, want fields %q", tc.path, r.code, r.raw, tc.want)
		}
		if after := h.auditEvents(t, bearer); after != before {
			t.Errorf("%s: %d audit events written", tc.method, after-before)
		}
	}
}

func violationFields(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				out = append(out, v.Field)
			}
		}
	}
	return out
}

func fieldsOf(r restResponse) []string {
	var out []string
	for _, v := range r.violations() {
		f, _, _ := strings.Cut(v, ": ")
		out = append(out, f)
	}
	return out
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "|") == strings.Join(b, "|") }

// sameSet compares ignoring order: over REST a bad UTF-8 string is refused by
// the JSON decoder, a NUL by the text check, so the two come apart.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, c := range seen {
		if c != 0 {
			return false
		}
	}
	return true
}

// A 1 MB string is refused by the field's rules, never a 500, and the answer
// does not quote it back: messages that cite a bad value are clipped.
func TestMegabyteStringIsRefusedBriefly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	bearer := "Bearer " + h.secret(t, auth.Admin, "")
	fx := h.fixture(t, admin)
	big := strings.Repeat("x", 1<<20)
	usd := &pb.Money{Amount: "1.00", Currency: "USD"}
	const brief = 8 << 10
	before := h.auditEvents(t, bearer)
	for _, tc := range []struct {
		method, path string
		req          proto.Message
		want         string
	}{
		{"/tranche.v1.OrganizationService/CreateOrganization", "/v1/organizations",
			&pb.CreateOrganizationRequest{Organization: &pb.Organization{Name: big, Kind: "DONOR"}, RequestId: "o-1"},
			"organization.name"},
		{"/tranche.v1.GrantService/RecordTransaction", "/v1/grants/" + fx.grantID + "/transactions",
			&pb.RecordTransactionRequest{GrantId: fx.grantID, RequestId: "t-1", Transaction: &pb.Transaction{
				Type: big, Amount: usd, ValueDate: "2024-03-01"}},
			"transaction.type"},
		{"/tranche.v1.GrantService/BatchRecordTransactions", "/v1/transactions:batchRecord",
			&pb.BatchRecordTransactionsRequest{RequestId: "b-1", Transactions: []*pb.Transaction{{
				GrantId: big, Type: "DISBURSEMENT", Amount: usd, ValueDate: "2024-03-01"}}},
			"transactions[0].grantId"},
		{"/tranche.v1.RoadmapService/CreateMilestone", "/v1/roadmaps/" + fx.roadmapID + "/milestones",
			&pb.CreateMilestoneRequest{RoadmapId: fx.roadmapID, RequestId: "m-1", Milestone: &pb.Milestone{
				Code: "M-2", Title: "Survey", ActivityType: big, FundingRequirement: usd}},
			"milestone.activityType"},
	} {
		err := h.conn.Invoke(admin, tc.method, tc.req, new(pb.CreateOrganizationResponse))
		st := status.Convert(err)
		if size := proto.Size(st.Proto()); st.Code() != codes.InvalidArgument || !slicesEqual(violationFields(err), []string{tc.want}) || size > brief {
			t.Errorf("gRPC %s: %v, fields %q (%d bytes), want %s", tc.method, st.Code(), violationFields(err), size, tc.want)
		}
		body, err := protojson.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		r := h.rest(t, "POST", tc.path, bearer, bytes.NewReader(body))
		if r.code != 400 || !slicesEqual(fieldsOf(r), []string{tc.want}) || len(r.raw) > brief {
			t.Errorf("REST %s: %d, fields %q (%d bytes), want %s", tc.path, r.code, fieldsOf(r), len(r.raw), tc.want)
		}
	}
	if after := h.auditEvents(t, bearer); after != before {
		t.Errorf("%d audit events written", after-before)
	}
}

// A path parameter or query value that is not text (invalid UTF-8, or NUL)
// is INVALID_ARGUMENT naming the parameter, on every endpoint, checked before
// the gateway builds the gRPC request. Invalid UTF-8 used to be a 500: the
// gateway could not marshal the request.
func TestBadTextInTheURLIsRefusedNamingTheParameter(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	bearer := "Bearer " + h.secret(t, auth.Admin, "")
	fx := h.fixture(t, admin)
	before := h.auditEvents(t, bearer)
	for _, tc := range []struct {
		method, path, body string
		want               []string
	}{
		{"GET", "/v1/procurement-items/" + fx.grantID + "%FF", "", []string{"itemId"}},
		{"GET", "/v1/flags/%FF", "", []string{"flagId"}},
		{"GET", "/v1/flags/%00", "", []string{"flagId"}},
		{"GET", "/v1/grants/%C3%28", "", []string{"grantId"}},
		{"GET", "/v1/grants?roadmapId=%FF", "", []string{"roadmapId"}},
		{"GET", "/v1/grants?roadmap_id=%FF", "", []string{"roadmapId"}},
		{"GET", "/v1/audit-events?entityType=%FF", "", []string{"entityType"}},
		{"GET", "/v1/audit-events?entityType=%FF&entityId=%00", "", []string{"entityId", "entityType"}},
		{"GET", "/v1/organizations?pageToken=%00", "", []string{"pageToken"}},
		{"GET", "/v1/flags?pageSize=%FF", "", []string{"pageSize"}},
		{"POST", "/v1/flags/%FF:review", `{"action": "ACKNOWLEDGE", "requestId": "r-1"}`, []string{"flagId"}},
		{"POST", "/v1/procurement-items/%FF%FE:advance", `{"stage": "TENDERED", "requestId": "r-2"}`, []string{"itemId"}},
		{"POST", "/v1/grants/" + fx.grantID + "%FF/transactions", `{"transaction": {"type": "DISBURSEMENT"}, "requestId": "r-3"}`,
			[]string{"grantId"}},
	} {
		r := h.rest(t, tc.method, tc.path, bearer, strings.NewReader(tc.body))
		if r.code != 400 || r.grpcCode() != 3 || !slicesEqual(fieldsOf(r), tc.want) || strings.Contains(r.raw, "marshal") {
			t.Errorf("%s %s: %d %s, want 400 naming %q", tc.method, tc.path, r.code, r.raw, tc.want)
		}
	}
	if after := h.auditEvents(t, bearer); after != before {
		t.Errorf("%d audit events written", after-before)
	}
	// The same ids over gRPC, sent as raw bytes: the codec and the text check.
	for _, tc := range []struct {
		method string
		req    proto.Message
		want   string
	}{
		{"/tranche.v1.FlagService/GetFlag", &pb.GetFlagRequest{FlagId: "\u2603\u2603"}, "flagId"},
		{"/tranche.v1.FlagService/ReviewFlag", &pb.ReviewFlagRequest{FlagId: "\u2603\u2603", Action: "ACKNOWLEDGE", RequestId: "r-4"}, "flagId"},
		{"/tranche.v1.ProcurementService/GetProcurementItem", &pb.GetProcurementItemRequest{ItemId: "\u2603\u2603"}, "itemId"},
		{"/tranche.v1.GrantService/ListGrants", &pb.ListGrantsRequest{RoadmapId: "\u2603\u2603"}, "roadmapId"},
	} {
		var resp pb.CreateOrganizationResponse
		err := h.conn.Invoke(admin, tc.method, withBadUTF8(t, tc.req), &resp, grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument || !slicesEqual(violationFields(err), []string{tc.want}) {
			t.Errorf("gRPC %s: %v, fields %q, want %s", tc.method, err, violationFields(err), tc.want)
		}
	}
}

// An internal error of the gateway itself (one the service never saw, so no
// interceptor logged it) is logged in full and answered without detail.
func TestGatewayInternalErrorIsLogged(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/flags/x", nil)
	r.Header.Set("X-Request-Id", "rid-1")
	mux := runtime.NewServeMux()
	s.gatewayError(context.Background(), mux, &runtime.JSONPb{}, w, r,
		status.Error(codes.Internal, "grpc: error while marshaling: string field contains invalid UTF-8"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "marshaling") || !strings.Contains(w.Body.String(), "rid-1") {
		t.Errorf("answered %d %s", w.Code, w.Body.String())
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "marshaling") || !strings.Contains(l, "rid-1") {
		t.Errorf("not logged: %q", l)
	}
}
