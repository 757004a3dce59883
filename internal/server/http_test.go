package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/token"
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
	srv, err := New(Config{}, h.db.App, token.New(h.db.App), slog.New(slog.NewTextHandler(io.Discard, nil)))
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
