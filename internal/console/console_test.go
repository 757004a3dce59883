package console

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// These tests run the console over a real gRPC server whose services are
// stand-ins: what they check is the console's own work (sessions, CSRF,
// headers, escaping, error pages, the token as metadata). The tests in
// internal/server (TestConsole*) run it over the real services.

const goodToken = "trn_good"

type fakes struct {
	pb.UnimplementedRoadmapServiceServer
	pb.UnimplementedGrantServiceServer
	pb.UnimplementedOrganizationServiceServer
	pb.UnimplementedAuditPackServiceServer
	mu     sync.Mutex
	tokens []string // the authorization metadata of every call
}

func (f *fakes) seen(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.tokens = append(f.tokens, md.Get("authorization")...)
	f.mu.Unlock()
	if a := md.Get("authorization"); len(a) != 1 || a[0] != "Bearer "+goodToken {
		return status.Error(codes.Unauthenticated, "bad token")
	}
	return nil
}

const hostile = `<script>alert(1)</script>`

func (f *fakes) ListRoadmaps(ctx context.Context, _ *pb.ListRoadmapsRequest) (*pb.ListRoadmapsResponse, error) {
	if err := f.seen(ctx); err != nil {
		return nil, err
	}
	return &pb.ListRoadmapsResponse{Roadmaps: []*pb.Roadmap{{Id: "r1", Title: hostile, Country: "AFG", ReportingCurrency: "USD"}}}, nil
}

func (f *fakes) GetRoadmap(ctx context.Context, req *pb.GetRoadmapRequest) (*pb.GetRoadmapResponse, error) {
	if err := f.seen(ctx); err != nil {
		return nil, err
	}
	if req.RoadmapId != "r1" {
		return nil, status.Error(codes.NotFound, "roadmap "+req.RoadmapId+" not found")
	}
	return &pb.GetRoadmapResponse{Roadmap: &pb.Roadmap{Id: "r1", Title: "Strategy", Country: "AFG", ReportingCurrency: "USD"}}, nil
}

func usd(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }

func (f *fakes) GetCoverage(ctx context.Context, req *pb.GetCoverageRequest) (*pb.GetCoverageResponse, error) {
	if err := f.seen(ctx); err != nil {
		return nil, err
	}
	m := &pb.MilestoneCoverage{MilestoneId: "m1", Code: "M-1", Title: hostile, FundingRequirement: usd("1000.00"),
		Allocated: usd("250.50"), Committed: usd("200.00"), Disbursed: usd("100.00"), Spent: usd("0.00"), Gap: usd("749.50"), Donors: 1}
	return &pb.GetCoverageResponse{RoadmapId: "r1", ReportingCurrency: "USD", Milestones: []*pb.MilestoneCoverage{m}, Totals: m}, nil
}

func (f *fakes) ListGrants(ctx context.Context, _ *pb.ListGrantsRequest) (*pb.ListGrantsResponse, error) {
	if err := f.seen(ctx); err != nil {
		return nil, err
	}
	return &pb.ListGrantsResponse{Grants: []*pb.Grant{{Id: "g1", DonorOrgId: "o1", RecipientOrgId: "o2", Reference: "G-1", Title: "T",
		Currency: "USD", Pledged: usd("1.00"), Allocations: []*pb.Allocation{{MilestoneId: "m1", Amount: usd("1.00")}}}}}, nil
}

func (f *fakes) GetGrant(ctx context.Context, _ *pb.GetGrantRequest) (*pb.GetGrantResponse, error) {
	if err := f.seen(ctx); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.PermissionDenied, "grant belongs to donor X")
}

func (f *fakes) ListOrganizations(ctx context.Context, _ *pb.ListOrganizationsRequest) (*pb.ListOrganizationsResponse, error) {
	if err := f.seen(ctx); err != nil {
		return nil, err
	}
	return &pb.ListOrganizationsResponse{Organizations: []*pb.Organization{{Id: "o1", Name: hostile}, {Id: "o2", Name: "NGO & Co"}}}, nil
}

func (f *fakes) DownloadAuditPack(req *pb.DownloadAuditPackRequest, s grpc.ServerStreamingServer[pb.DownloadAuditPackResponse]) error {
	if err := f.seen(s.Context()); err != nil {
		return err
	}
	if req.RoadmapId == "" {
		return status.Error(codes.InvalidArgument, "roadmapId: is required")
	}
	if err := s.Send(&pb.DownloadAuditPackResponse{ContentType: "application/x-test", FileName: "pack \"1\".xlsx", Size: 6, Data: []byte("PK")}); err != nil {
		return err
	}
	return s.Send(&pb.DownloadAuditPackResponse{Data: []byte("\x03\x04ab")})
}

type rig struct {
	srv   *httptest.Server
	fakes *fakes
}

func newRig(t *testing.T) *rig {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	f := &fakes{}
	gs := grpc.NewServer()
	pb.RegisterRoadmapServiceServer(gs, f)
	pb.RegisterGrantServiceServer(gs, f)
	pb.RegisterOrganizationServiceServer(gs, f)
	pb.RegisterAuditPackServiceServer(gs, f)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///buf", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	authn := func(_ context.Context, tok string) (auth.Principal, error) {
		if tok == goodToken {
			return auth.Principal{Name: hostile, Role: auth.Coordinator}, nil
		}
		return auth.Principal{}, errors.Join(errors.New("unknown token"), apperr.ErrUnauthenticated)
	}
	srv := httptest.NewServer(New(conn, Options{Authenticate: authn,
		Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}))
	t.Cleanup(srv.Close)
	return &rig{srv: srv, fakes: f}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (r *rig) do(t *testing.T, method, path string, form url.Values, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, r.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestSignInSessionAndCSRF(t *testing.T) {
	r := newRig(t)
	resp, _ := r.do(t, "GET", "/", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("/ signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := r.do(t, "GET", "/signin", nil)
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == CSRFCookie {
			csrf = c
		}
	}
	m := csrfRE.FindStringSubmatch(body)
	if csrf == nil || m == nil || m[1] != csrf.Value {
		t.Fatalf("the form's csrf field is not its cookie: %v %v", csrf, m)
	}
	// Refused without, or with another, CSRF token.
	for _, form := range []url.Values{{"token": {goodToken}}, {"token": {goodToken}, "csrf": {csrf.Value + "x"}}} {
		if resp, _ := r.do(t, "POST", "/signin", form, csrf); resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-in with csrf %q: %d", form.Get("csrf"), resp.StatusCode)
		}
	}
	if resp, _ := r.do(t, "POST", "/signin", url.Values{"token": {goodToken}, "csrf": {csrf.Value}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without the cookie: %d", resp.StatusCode)
	}
	resp, body = r.do(t, "POST", "/signin", url.Values{"token": {"trn_bad"}, "csrf": {csrf.Value}}, csrf)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `role="alert"`) {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
	resp, _ = r.do(t, "POST", "/signin", url.Values{"token": {" Bearer " + goodToken + "\n"}, "csrf": {csrf.Value}}, csrf)
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			sess = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" {
		t.Fatalf("sign-in: %d %+v", resp.StatusCode, sess)
	}
	resp, body = r.do(t, "GET", "/", nil, sess, csrf)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-role="coordinator">&lt;script&gt;`) {
		t.Fatalf("home: %d\n%s", resp.StatusCode, body)
	}
	for _, tok := range r.fakes.tokens {
		if tok != "Bearer "+goodToken {
			t.Errorf("a call carried %q", tok)
		}
	}
	if len(r.fakes.tokens) == 0 {
		t.Error("no call reached the services")
	}
}

func TestHeadersEscapingAndErrors(t *testing.T) {
	r := newRig(t)
	sess := &http.Cookie{Name: SessionCookie, Value: goodToken}
	for path, want := range map[string]int{"/": 200, "/roadmaps/r1": 200, "/roadmaps/r2": 404, "/grants/7b0c6a4e-3f1f-4a57-9d55-5f3e0a2c9b11": 404,
		"/grants/not-an-id": 404, "/signin": 200, "/nothing": 404, "/static/console.css": 200} {
		resp, body := r.do(t, "GET", path, nil, sess)
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d\n%s", path, resp.StatusCode, want, body)
		}
		if resp.Header.Get("Content-Security-Policy") != CSP || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
		if strings.Contains(body, "<script") {
			t.Errorf("%s: unescaped script:\n%s", path, body)
		}
		if path == "/grants/7b0c6a4e-3f1f-4a57-9d55-5f3e0a2c9b11" && strings.Contains(body, "donor X") {
			t.Errorf("the 404 tells why: %s", body)
		}
	}
	if _, body := r.do(t, "GET", "/nothing/here", nil, sess); !strings.Contains(body, `id="whoami"`) {
		t.Errorf("a signed-in 404 has no header:\n%s", body)
	}
	_, body := r.do(t, "GET", "/roadmaps/r1", nil, sess)
	for _, want := range []string{`<td class="num" data-field="allocated" data-amount="250.50">250.50 <span class="cur">USD</span></td>`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`, `<tr data-milestone-id="m1">`, `NGO &amp; Co`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	// A stale session is sent to sign in again.
	resp, _ := r.do(t, "GET", "/", nil, &http.Cookie{Name: SessionCookie, Value: "trn_old"})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Errorf("stale session: %d", resp.StatusCode)
	}
}

func TestPackDownloadStreams(t *testing.T) {
	r := newRig(t)
	sess := &http.Cookie{Name: SessionCookie, Value: goodToken}
	resp, body := r.do(t, "GET", "/audit/pack?roadmapId=r1", nil, sess)
	if resp.StatusCode != 200 || body != "PK\x03\x04ab" || resp.Header.Get("Content-Type") != "application/x-test" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="pack _1_.xlsx"` || resp.Header.Get("Content-Length") != "6" {
		t.Errorf("pack: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = r.do(t, "GET", "/audit/pack", nil, sess)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "roadmapId: is required") {
		t.Errorf("pack without a roadmap: %d\n%s", resp.StatusCode, body)
	}
}

func TestDwellAndChart(t *testing.T) {
	it := &pb.ProcurementItem{Stages: []*pb.ProcurementStage{{Stage: "REQUISITIONED", EnteredOn: "2025-12-01"}, {Stage: "TENDERED", EnteredOn: "2025-12-11"}}}
	st, cur := dwell(it, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if cur != 21 || st[0].Days != 10 || st[1].Days != 21 || !st[1].Current {
		t.Errorf("dwell: %+v %d", st, cur)
	}
	done := &pb.ProcurementItem{Stages: []*pb.ProcurementStage{{Stage: "REQUISITIONED", EnteredOn: "2025-12-01"}, {Stage: "ACCEPTED", EnteredOn: "2025-12-05"}}}
	if st, cur := dwell(done, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); cur != 0 || st[1].Days != -1 {
		t.Errorf("a closed item has no dwell: %+v %d", st, cur)
	}
	c := coverageChart(&pb.GetCoverageResponse{ReportingCurrency: "USD", Milestones: []*pb.MilestoneCoverage{
		{Code: "A", FundingRequirement: usd("100"), Allocated: usd("50"), Committed: usd("0"), Disbursed: usd("-5"), Spent: usd("0.001")}}})
	b := c.Groups[0].Bars
	if b[0].W != chartBarsW || b[1].W != chartBarsW/2 || b[2].W != 0 || b[3].W != 0 || b[4].W != 1 {
		t.Errorf("bars: %+v", b)
	}
}

// Behind a proxy that ended TLS, the cookies are Secure.
func TestCookiesSecureBehindTLSProxy(t *testing.T) {
	r := newRig(t)
	req, _ := http.NewRequest("GET", r.srv.URL+"/signin", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != CSRFCookie || !cs[0].Secure {
		t.Errorf("cookies behind a TLS proxy: %+v", cs)
	}
}

// Hostile requests get 4xx pages, never a 500, and reach no service: text
// that is not UTF-8 (which the gRPC client would refuse with an internal
// error), another method on a page's path, an oversized form, a short
// planted CSRF pair.
func TestHostileRequests(t *testing.T) {
	r := newRig(t)
	resp, body := r.do(t, "GET", "/signin", nil)
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == CSRFCookie {
			csrf = c
		}
	}
	resp, _ = r.do(t, "POST", "/signin", url.Values{"token": {goodToken}, "csrf": {csrfRE.FindStringSubmatch(body)[1]}}, csrf)
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			sess = c
		}
	}
	if sess == nil {
		t.Fatal("no session")
	}
	r.fakes.mu.Lock()
	calls := len(r.fakes.tokens)
	r.fakes.mu.Unlock()
	for _, path := range []string{"/roadmaps/%FF", "/?page=%FF", "/roadmaps/r1/flags?kind=%FF", "/audit/pack?roadmapId=%FF", "/roadmaps/r1?x=%00"} {
		if resp, body := r.do(t, "GET", path, nil, sess, csrf); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "UTF-8") {
			t.Errorf("GET %s: %d, want 400 naming UTF-8", path, resp.StatusCode)
		}
	}
	r.fakes.mu.Lock()
	if len(r.fakes.tokens) != calls {
		t.Errorf("bad text reached the services: %d calls", len(r.fakes.tokens)-calls)
	}
	r.fakes.mu.Unlock()
	for _, c := range []struct{ method, path, allow string }{{"PUT", "/roadmaps/r1", "GET, HEAD"}, {"DELETE", "/grants/g1", "GET, HEAD"},
		{"GET", "/signout", "POST"}, {"POST", "/static/console.css", "GET, HEAD"}} {
		if resp, _ := r.do(t, c.method, c.path, nil, sess); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
	long := url.Values{"csrf": {csrf.Value}, "note": {strings.Repeat("n", 70<<10)}, "action": {"DISMISS"}}
	if resp, _ := r.do(t, "POST", "/flags/f1/review", long, sess, csrf); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB review: %d, want 413", resp.StatusCode)
	}
	planted := &http.Cookie{Name: CSRFCookie, Value: "x"}
	if resp, _ := r.do(t, "POST", "/signout", url.Values{"csrf": {"x"}}, sess, planted); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out with a planted one-character csrf pair: %d, want 403", resp.StatusCode)
	}
	if resp, _ := r.do(t, "GET", "/static/nope", nil, sess); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/static/nope: %d Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}
