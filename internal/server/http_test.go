package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tranche-ledger/tranche/internal/auth"
)

type restResponse struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// rest calls the harness's REST listener. authorization is the whole header
// value; empty sends none.
func (h *harness) rest(tb testing.TB, method, path, authorization string, body io.Reader) restResponse {
	tb.Helper()
	req, err := http.NewRequest(method, "http://"+h.http+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := restResponse{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// grpcCode is the gRPC status code of a gateway error body.
func (r restResponse) grpcCode() int {
	c, _ := r.body["code"].(float64)
	return int(c)
}

// countingBody is a request body of size bytes that records how much of it
// was read: `{"requestId":"aaaa…`.
type countingBody struct {
	size int64
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	const head = `{"requestId":"`
	off := b.read.Load()
	if off >= b.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > b.size-off {
		n = b.size - off
	}
	for i := range n {
		if j := off + i; j < int64(len(head)) {
			p[i] = head[j]
		} else {
			p[i] = 'a'
		}
	}
	b.read.Add(n)
	return int(n), nil
}

// The HTTP edge refuses a request without a valid bearer token, or with a body
// over the limit, before the body is read: a 50 MB upload costs nothing. The
// handler runs in process so the test sees exactly how much was read.
func TestEdgeRefusesBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	srv, err := New(Config{}, testStores(h.db.App), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := srv.gateway(context.Background(), h.dial(t))
	if err != nil {
		t.Fatal(err)
	}
	handler := srv.httpHandler(gw)
	admin := h.secret(t, auth.Admin, "")
	const big = 50 << 20
	for _, tc := range []struct {
		name          string
		authorization string
		chunked       bool
		wantHTTP      int
		wantCode      int
		maxRead       int64
	}{
		{"no token", "", false, 401, 16, 0},
		{"no token, chunked", "", true, 401, 16, 0},
		{"not a bearer token", "Basic YWRtaW46YWRtaW4=", false, 401, 16, 0},
		{"empty bearer token", "Bearer ", true, 401, 16, 0},
		{"unknown token", "Bearer trn_not-a-token", true, 401, 16, 0},
		{"declared too large", "Bearer " + admin, false, 413, 8, 0},
		// Cut off at the limit (plus what one read buffers), not read to the end.
		{"chunked too large", "bearer " + admin, true, 413, 8, maxBodyBytes + 64<<10},
	} {
		body := &countingBody{size: big}
		req := httptest.NewRequest(http.MethodPost, "/v1/organizations", body)
		req.ContentLength = big
		if tc.chunked {
			req.ContentLength = -1
		}
		if tc.authorization != "" {
			req.Header.Set("Authorization", tc.authorization)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		var got struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Errorf("%s: body %q: %v", tc.name, rec.Body, err)
		}
		if rec.Code != tc.wantHTTP || got.Code != tc.wantCode {
			t.Errorf("%s: HTTP %d code %d (%s), want HTTP %d code %d", tc.name, rec.Code, got.Code, got.Message, tc.wantHTTP, tc.wantCode)
		}
		if n := body.read.Load(); n > tc.maxRead {
			t.Errorf("%s: read %d bytes of the body, want at most %d", tc.name, n, tc.maxRead)
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", tc.name)
		}
	}
}

// Over the network: the same refusals in the gateway's JSON error shape, and
// a request within the limit, in any case of the bearer scheme, is served.
func TestEdgeOverREST(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.secret(t, auth.Admin, "")
	org := `{"organization": {"name": "EU", "kind": "DONOR"}, "requestId": "o-1"}`

	r := h.rest(t, "POST", "/v1/organizations", "", strings.NewReader(org))
	if r.code != 401 || r.grpcCode() != 16 || r.body["message"] != errMissingToken {
		t.Errorf("no token: %d %s", r.code, r.raw)
	}
	r = h.rest(t, "POST", "/v1/organizations", "Token "+admin, strings.NewReader(org))
	if r.code != 401 || r.grpcCode() != 16 || r.body["message"] != errNotBearer {
		t.Errorf("not a bearer token: %d %s", r.code, r.raw)
	}
	r = h.rest(t, "POST", "/v1/organizations", "Bearer "+admin, io.LimitReader(&countingBody{size: 50 << 20}, 50<<20))
	if r.code != 413 || r.grpcCode() != 8 {
		t.Errorf("50 MB chunked body: %d %s", r.code, r.raw)
	}
	r = h.rest(t, "POST", "/v1/organizations", "bearer "+admin, strings.NewReader(org))
	if r.code != 200 {
		t.Errorf("lower-case bearer: %d %s", r.code, r.raw)
	}
	// The edge guards only the API: health, schema and metrics stay public.
	for _, path := range []string{"/healthz", "/openapi.json", "/metrics"} {
		if r := h.rest(t, "GET", path, "", nil); r.code == 401 {
			t.Errorf("GET %s without a token: %d", path, r.code)
		}
	}
}

// violations are the BadRequest field violations of a gateway error body, as
// "field: description".
func (r restResponse) violations() []string {
	var out []string
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		fvs, _ := m["fieldViolations"].([]any)
		for _, fv := range fvs {
			v, _ := fv.(map[string]any)
			out = append(out, fmt.Sprint(v["field"], ": ", v["description"]))
		}
	}
	return out
}

// Malformed JSON, a value of the wrong type, an unknown field and a query
// parameter that does not parse are INVALID_ARGUMENT with a BadRequest naming
// the JSON path, and write nothing.
func TestRESTInputErrorsNameTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := "Bearer " + h.secret(t, auth.Admin, "")
	grant := "/v1/grants/0190a0a0-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		name, method, path, body string
		want                     []string // "field: description prefix"
	}{
		{"malformed nested", "POST", "/v1/organizations",
			`{"organization": {"name": "EU",}, "requestId": "r-1"}`,
			[]string{"organization: malformed JSON"}},
		{"not JSON", "POST", "/v1/organizations", `organization=EU`,
			[]string{": malformed JSON"}},
		{"cut short", "POST", "/v1/organizations", `{"organization": {"name": "EU"`,
			[]string{"organization: malformed JSON: unexpected end of input"}},
		{"trailing data", "POST", "/v1/organizations",
			`{"organization": {"name": "EU", "kind": "DONOR"}, "requestId": "r-1"} {}`,
			[]string{": unexpected data after the JSON object"}},
		{"not an object", "POST", "/v1/organizations", `["EU"]`,
			[]string{": must be a JSON object"}},
		{"string as number", "POST", "/v1/organizations",
			`{"organization": {"name": 12, "kind": "DONOR"}, "requestId": "r-1"}`,
			[]string{"organization.name: must be a string"}},
		{"amount as number", "POST", "/v1/grants",
			`{"grant": {"title": "T", "pledged": {"amount": 1500.5, "currency": "EUR"}}, "requestId": "r-1"}`,
			[]string{"grant.pledged.amount: must be a string"}},
		{"message as string", "POST", "/v1/grants", `{"grant": "EU-1", "requestId": "r-1"}`,
			[]string{"grant: must be a JSON object"}},
		{"unknown top-level field", "POST", "/v1/organizations",
			`{"organization": {"name": "EU", "kind": "DONOR"}, "requestId": "r-1", "requestID": "r-2"}`,
			[]string{"requestID: unknown field"}},
		{"unknown nested fields, in request order", "POST", "/v1/grants",
			`{"grant": {"title": "T", "pledge": {"amount": "1.00", "currency": "EUR"}, "pledged": {"amount": "1.00", "curency": "EUR"}}, "requestId": "r-1"}`,
			[]string{"grant.pledge: unknown field", "grant.pledged.curency: unknown field"}},
		{"repeated", "POST", "/v1/transactions:batchRecord",
			`{"transactions": [{"type": "PLEDGE"}, {"type": "PLEDGE", "amount": {"amount": "1.00", "currency": "EUR", "cents": 5}}, {"type": 7}], "requestId": "r-1"}`,
			[]string{"transactions[1].amount.cents: unknown field", "transactions[2].type: must be a string"}},
		{"array expected", "POST", "/v1/transactions:batchRecord",
			`{"transactions": {"type": "PLEDGE"}, "requestId": "r-1"}`,
			[]string{"transactions: must be a JSON array"}},
		{"given twice", "POST", "/v1/organizations",
			`{"organization": {"name": "EU", "kind": "DONOR"}, "requestId": "r-1", "request_id": "r-2"}`,
			[]string{"requestId: given more than once"}},
		{"invalid UTF-8", "POST", "/v1/organizations",
			"{\"organization\": {\"name\": \"E\xffU\", \"kind\": \"DONOR\"}, \"requestId\": \"r-1\"}",
			[]string{"organization.name: must be valid UTF-8 text"}},
		{"path and body", "POST", grant + "/transactions",
			`{"transaction": {"type": "COMMITMENT", "valueDate": 20240101}, "requestId": "r-1"}`,
			[]string{"transaction.valueDate: must be a string"}},
		{"query integer", "GET", "/v1/organizations?pageSize=ten", "",
			[]string{"pageSize: must be a 32-bit integer"}},
		{"query unknown and duplicate", "GET", "/v1/organizations?page_size=1&pageSize=2&kinds=DONOR", "",
			[]string{"kinds: unknown query parameter", "pageSize: given more than once"}},
		{"query repeated value", "GET", "/v1/organizations?kind=DONOR&kind=AUDITOR", "",
			[]string{"kind: given more than once"}},
		{"query timestamp", "GET", grant + "/reconciliation?asOf=yesterday", "",
			[]string{`asOf: must be an RFC 3339 time`}},
	} {
		r := h.rest(t, tc.method, tc.path, admin, strings.NewReader(tc.body))
		got := r.violations()
		ok := r.code == 400 && r.grpcCode() == 3 && len(got) == len(tc.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.HasPrefix(got[i], tc.want[i])
		}
		if !ok {
			t.Errorf("%s: HTTP %d %s\nwant violations %q", tc.name, r.code, r.raw, tc.want)
		}
	}
	// Nothing was written, and a correct request (proto field names are
	// accepted too) still is.
	if n := h.auditEvents(t, admin); n != 1 { // minting the token
		t.Errorf("refused requests wrote %d audit events", n-1)
	}
	r := h.rest(t, "POST", "/v1/organizations", admin, strings.NewReader(
		`{"organization": {"name": "EU", "kind": "DONOR", "iati_ref": "XI-IATI-EC_INTPA"}, "request_id": "r-1"}`))
	if r.code != 200 {
		t.Errorf("valid request: %d %s", r.code, r.raw)
	}
	// A query parameter bound from the path is ignored, as before.
	if r := h.rest(t, "GET", grant+"/transactions?grantId=x", admin, nil); r.code == 400 {
		t.Errorf("path parameter repeated in the query: %d %s", r.code, r.raw)
	}
}

// auditEvents counts the audit events the caller sees.
func (h *harness) auditEvents(tb testing.TB, authorization string) int {
	tb.Helper()
	r := h.rest(tb, "GET", "/v1/audit-events?pageSize=500", authorization, nil)
	events, ok := r.body["events"].([]any)
	if r.code != 200 || !ok {
		tb.Fatalf("listing audit events: %d %s", r.code, r.raw)
	}
	return len(events)
}

// A method a known path does not take is 405 with an Allow header listing the
// ones it does; an unknown path stays 404.
func TestMethodNotAllowedListsAllowedMethods(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := "Bearer " + h.secret(t, auth.Admin, "")
	grant := "/v1/grants/0190a0a0-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"DELETE", "/v1/grants", 405, "GET, POST"},
		{"PUT", "/v1/organizations", 405, "GET, POST"},
		{"PUT", grant, 405, "GET"},
		{"DELETE", "/v1/transactions:batchRecord", 405, "POST"},
		{"PATCH", grant + "/transactions", 405, "GET, POST"},
		{"POST", "/v1/audit-events:verify", 405, "GET"},
		{"POST", "/v1/audit-events:head", 405, "GET"},
		{"GET", "/v1/nothing-here", 404, ""},
		{"DELETE", "/v1/nothing-here", 404, ""},
		{"GET", "/v1/grants/x/nothing", 404, ""},
	} {
		r := h.rest(t, tc.method, tc.path, admin, nil)
		if r.code != tc.code || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q (%s)", tc.method, tc.path, r.code, r.header.Get("Allow"), tc.code, tc.allow, r.raw)
		}
		if want := map[int]int{405: 12, 404: 5}[tc.code]; r.grpcCode() != want {
			t.Errorf("%s %s: body code %d, want %d", tc.method, tc.path, r.grpcCode(), want)
		}
	}
}
