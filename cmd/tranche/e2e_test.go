package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
)

// The end-to-end tests build the real binary and drive it over REST and gRPC,
// on the embedded PostgreSQL, as a user of a fresh machine would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tranche-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tranche")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building tranche: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dataDir is a data directory the postgres user can reach when tests run as root.
func dataDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "data")
}

type proc struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	done     chan error
	logs     *bytes.Buffer
}

// startServer runs `tranche serve` on free ports and waits until it serves.
func startServer(t *testing.T, dir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &proc{cmd: cmd, done: make(chan error, 1), logs: &bytes.Buffer{}}
	addrs := make(chan [2]string, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			s.logs.WriteString(line + "\n")
			mu.Unlock()
			var rec struct{ Msg, GRPC, HTTP string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				addrs <- [2]string{rec.GRPC, rec.HTTP}
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case a := <-addrs:
		s.grpcAddr, s.httpAddr = a[0], a[1]
	case err := <-s.done:
		t.Fatalf("tranche serve exited: %v\n%s", err, s.logs)
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tranche serve did not start\n%s", s.logs)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			s.stop(t, syscall.SIGTERM)
		}
	})
	return s
}

func (s *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = s.cmd.Process.Signal(sig)
	select {
	case err := <-s.done:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("tranche serve exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		t.Fatal("tranche serve did not stop")
	}
}

// cli runs a tranche command and returns its stdout.
func cli(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "TRANCHE_DATA_DIR="+dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tranche %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

func mintToken(t *testing.T, dir string, args ...string) (id, secret string) {
	t.Helper()
	var tok struct{ ID, Token string }
	out := cli(t, dir, append([]string{"token", "create", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, "trn_") {
		t.Fatalf("token create printed %q (%v)", out, err)
	}
	return tok.ID, tok.Token
}

type response struct {
	code int
	body map[string]any
	raw  string
}

func call(t *testing.T, s *proc, method, path, token, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.httpAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{code: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func fieldViolations(r response) []string {
	var out []string
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		fvs, _ := m["fieldViolations"].([]any)
		for _, fv := range fvs {
			out = append(out, fv.(map[string]any)["field"].(string))
		}
	}
	return out
}

func TestServeOrganisationsOverRESTAndGRPC(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := startServer(t, dir)
	_, admin := mintToken(t, dir, "--role", "admin", "--name", "e2e admin")
	_, auditor := mintToken(t, dir, "--role", "auditor")

	if r := call(t, s, "GET", "/healthz", "", ""); r.code != 200 || r.body["status"] != "SERVING" {
		t.Fatalf("healthz: %d %s", r.code, r.raw)
	}
	if r := call(t, s, "GET", "/openapi.json", "", ""); r.code != 200 || !strings.Contains(r.raw, "/v1/organizations") {
		t.Fatalf("openapi: %d", r.code)
	}

	body := `{"organization":{"name":"Foreign, Commonwealth & Development Office","kind":"DONOR","iatiRef":"GB-GOV-1","country":"GBR"},"requestId":"e2e-1"}`
	created := call(t, s, "POST", "/v1/organizations", admin, body)
	if created.code != 200 {
		t.Fatalf("create: %d %s", created.code, created.raw)
	}
	o := created.body["organization"].(map[string]any)
	id := o["id"].(string)
	if o["iatiRef"] != "GB-GOV-1" || o["kind"] != "DONOR" {
		t.Fatalf("created %v", o)
	}
	if again := call(t, s, "POST", "/v1/organizations", admin, body); again.code != 200 ||
		again.body["organization"].(map[string]any)["id"] != id {
		t.Fatalf("retry: %d %s", again.code, again.raw)
	}
	conflict := strings.Replace(body, "Foreign", "Other", 1)
	if r := call(t, s, "POST", "/v1/organizations", admin, conflict); r.code != 409 {
		t.Fatalf("same requestId, other payload: %d %s", r.code, r.raw)
	}
	if r := call(t, s, "GET", "/v1/organizations/"+id, auditor, ""); r.code != 200 || r.body["organization"].(map[string]any)["name"] != "Foreign, Commonwealth & Development Office" {
		t.Fatalf("get: %d %s", r.code, r.raw)
	}
	if r := call(t, s, "GET", "/v1/organizations?kind=DONOR&pageSize=10", auditor, ""); r.code != 200 || len(r.body["organizations"].([]any)) != 1 {
		t.Fatalf("list: %d %s", r.code, r.raw)
	}

	// 401, 403, 400, 404.
	if r := call(t, s, "GET", "/v1/organizations", "", ""); r.code != 401 {
		t.Fatalf("no token: %d", r.code)
	}
	if r := call(t, s, "GET", "/v1/organizations", "trn_unknown", ""); r.code != 401 {
		t.Fatalf("unknown token: %d", r.code)
	}
	if r := call(t, s, "POST", "/v1/organizations", auditor, strings.Replace(body, "e2e-1", "e2e-2", 1)); r.code != 403 {
		t.Fatalf("auditor creating: %d %s", r.code, r.raw)
	}
	bad := call(t, s, "POST", "/v1/organizations", admin, `{"organization":{"name":"","kind":"DONR","iatiRef":"GB GOV","country":"ZZZ"},"requestId":"e2e-3"}`)
	if bad.code != 400 {
		t.Fatalf("bad input: %d %s", bad.code, bad.raw)
	}
	got := strings.Join(fieldViolations(bad), ",")
	for _, f := range []string{"organization.name", "organization.kind", "organization.iatiRef"} {
		if !strings.Contains(got, f) {
			t.Errorf("bad input: violations %s, missing %s", got, f)
		}
	}
	badCountry := call(t, s, "POST", "/v1/organizations", admin, `{"organization":{"name":"x","kind":"DONOR","country":"ZZZ"},"requestId":"e2e-4"}`)
	if badCountry.code != 400 || strings.Join(fieldViolations(badCountry), ",") != "organization.country" {
		t.Fatalf("unknown country: %d %s", badCountry.code, badCountry.raw)
	}
	if r := call(t, s, "GET", "/v1/organizations/01a2195f-dc3c-70c2-82d7-4f0ad8a83b00", admin, ""); r.code != 404 {
		t.Fatalf("unknown id: %d", r.code)
	}
	if r := call(t, s, "GET", "/v1/organizations?kind=DONOR", admin, ""); len(r.body["organizations"].([]any)) != 1 {
		t.Fatalf("refused requests wrote organisations: %s", r.raw)
	}

	// The same over gRPC.
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewOrganizationServiceClient(conn)
	ctx := context.Background()
	withToken := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", hr, err)
	}
	g, err := client.GetOrganization(withToken(auditor), &pb.GetOrganizationRequest{Id: id})
	if err != nil || g.Organization.IatiRef != "GB-GOV-1" {
		t.Fatalf("gRPC get: %v %v", g, err)
	}
	if _, err := client.ListOrganizations(ctx, &pb.ListOrganizationsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC without token: %v", err)
	}
	_, err = client.CreateOrganization(withToken(auditor), &pb.CreateOrganizationRequest{
		Organization: &pb.Organization{Name: "x", Kind: "DONOR"}, RequestId: "g-1"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("gRPC auditor create: %v", err)
	}
	_, err = client.CreateOrganization(withToken(admin), &pb.CreateOrganizationRequest{
		Organization: &pb.Organization{Name: "x", Kind: "NGO"}, RequestId: "g-2"})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || len(st.Details()) != 1 {
		t.Fatalf("gRPC bad kind: %v", err)
	}
	if br, ok := st.Details()[0].(*errdetails.BadRequest); !ok || br.FieldViolations[0].Field != "organization.kind" {
		t.Fatalf("gRPC bad kind details: %v", st.Details())
	}
	mag, err := client.CreateOrganization(withToken(admin), &pb.CreateOrganizationRequest{
		Organization: &pb.Organization{Name: "Mines Advisory Group", Kind: "IMPLEMENTER", IatiRef: "GB-CHC-1083657", Country: "GBR"}, RequestId: "g-3"})
	if err != nil {
		t.Fatal(err)
	}

	// Implementer tokens are bound to an organisation; they read but do not create.
	_, impl := mintToken(t, dir, "--role", "implementer", "--org", mag.Organization.Id)
	if r := call(t, s, "GET", "/v1/organizations/"+id, impl, ""); r.code != 200 {
		t.Fatalf("implementer read: %d", r.code)
	}
	if r := call(t, s, "POST", "/v1/organizations", impl, strings.Replace(body, "e2e-1", "e2e-5", 1)); r.code != 403 {
		t.Fatalf("implementer create: %d", r.code)
	}

	// Every mutation is in a verified audit chain: two organisations.
	v := call(t, s, "GET", "/v1/audit-events:verify", auditor, "")
	if v.code != 200 || v.body["verified"] != true {
		t.Fatalf("verify: %d %s", v.code, v.raw)
	}
	ev := call(t, s, "GET", "/v1/audit-events?entityType=organization", auditor, "")
	if n := len(ev.body["events"].([]any)); n != 2 {
		t.Fatalf("%d organisation events, want 2: %s", n, ev.raw)
	}
	if r := call(t, s, "GET", "/v1/audit-events:verify", impl, ""); r.code != 403 {
		t.Fatalf("implementer verify: %d", r.code)
	}

	if r := call(t, s, "GET", "/metrics", "", ""); r.code != 200 || !strings.Contains(r.raw, "tranche_grpc_requests_total") {
		t.Fatalf("metrics: %d", r.code)
	}

	// Revocation takes effect (the token cache holds a valid token for at most 5 s).
	aid, adm2 := mintToken(t, dir, "--role", "admin")
	if r := call(t, s, "GET", "/v1/organizations", adm2, ""); r.code != 200 {
		t.Fatalf("fresh token: %d", r.code)
	}
	cli(t, dir, "token", "revoke", aid)
	deadline := time.Now().Add(10 * time.Second)
	for call(t, s, "GET", "/v1/organizations", adm2, "").code != 401 {
		if time.Now().After(deadline) {
			t.Fatal("revoked token still accepted after 10 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := cli(t, dir, "token", "list"); !strings.Contains(out, aid) {
		t.Fatalf("token list: %s", out)
	}
	// Revoking again succeeds, says so, and changes nothing.
	if out := cli(t, dir, "token", "revoke", aid); !strings.Contains(out, "already revoked") {
		t.Fatalf("second revoke: %s", out)
	}
	// A donor token binds only to a funder.
	cmd := exec.Command(binary, "token", "create", "--role", "donor", "--org", mag.Organization.Id)
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "TRANCHE_DATA_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "is IMPLEMENTER") {
		t.Fatalf("donor token for an implementer: %v %s", err, out)
	}
}

func TestEmbeddedDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := startServer(t, dir)
	_, admin := mintToken(t, dir, "--role", "admin")
	r := call(t, s, "POST", "/v1/organizations", admin, `{"organization":{"name":"UNMAS","kind":"COORDINATOR"},"requestId":"keep"}`)
	if r.code != 200 {
		t.Fatalf("create: %d %s", r.code, r.raw)
	}
	id := r.body["organization"].(map[string]any)["id"].(string)
	s.stop(t, syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("embedded PostgreSQL still running after SIGTERM: %v", err)
	}
	s2 := startServer(t, dir)
	if r := call(t, s2, "GET", "/v1/organizations/"+id, admin, ""); r.code != 200 {
		t.Fatalf("after restart: %d %s", r.code, r.raw)
	}
	if out := cli(t, dir, "verify"); !strings.Contains(out, "verified:       true") {
		t.Fatalf("verify: %s", out)
	}
}

// Kill the server with SIGKILL in the middle of a write burst: after a
// restart every acknowledged write is there and the chain verifies.
func TestCrashDuringWritesLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s := startServer(t, dir)
	_, admin := mintToken(t, dir, "--role", "admin")
	var mu sync.Mutex
	acked := map[string]string{} // requestId → organisation id
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rid := fmt.Sprintf("crash-%d-%d", w, i)
				body := fmt.Sprintf(`{"organization":{"name":"Org %s","kind":"IMPLEMENTER"},"requestId":"%s"}`, rid, rid)
				req, _ := http.NewRequest("POST", "http://"+s.httpAddr+"/v1/organizations", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+admin)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var out struct{ Organization struct{ ID string } }
				json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[rid] = out.Organization.ID
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	s.stop(t, syscall.SIGKILL)
	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}

	s2 := startServer(t, dir)
	_, auditor := mintToken(t, dir, "--role", "auditor")
	v := call(t, s2, "GET", "/v1/audit-events:verify", auditor, "")
	if v.body["verified"] != true || v.body["unsealed"] != "0" {
		t.Fatalf("verify after crash: %s", v.raw)
	}
	for rid, id := range acked {
		if r := call(t, s2, "GET", "/v1/organizations/"+id, auditor, ""); r.code != 200 {
			t.Fatalf("acknowledged write %s (%s) lost: %d", rid, id, r.code)
		}
	}
	// Events = organisations + tokens: nothing without its change.
	orgs, token := 0, ""
	for {
		page := call(t, s2, "GET", "/v1/organizations?pageSize=500&pageToken="+url.QueryEscape(token), auditor, "")
		if page.code != 200 {
			t.Fatalf("listing organisations: %d %s", page.code, page.raw)
		}
		orgs += len(page.body["organizations"].([]any))
		if token, _ = page.body["nextPageToken"].(string); token == "" {
			break
		}
	}
	if checked, want := v.body["eventsChecked"].(string), fmt.Sprint(orgs+2); checked != want {
		t.Fatalf("%s events for %d organisations and 2 tokens", checked, orgs)
	}
}

// Two tranche servers on one database; 32 clients split between them race to
// disburse 1 000.00 each against a commitment that allows exactly 12.
func TestTwoServersRaceDisbursements(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	a := startServer(t, dir)
	b := startServer(t, dir) // joins the running embedded cluster
	_, admin := mintToken(t, dir, "--role", "admin")
	mk := func(s *proc, path, body string) map[string]any {
		t.Helper()
		r := call(t, s, "POST", path, admin, body)
		if r.code != 200 {
			t.Fatalf("POST %s: %d %s", path, r.code, r.raw)
		}
		return r.body
	}
	id := func(m map[string]any, key string) string { return m[key].(map[string]any)["id"].(string) }
	donor := id(mk(a, "/v1/organizations", `{"organization":{"name":"Donor","kind":"DONOR"},"requestId":"o1"}`), "organization")
	ngo := id(mk(a, "/v1/organizations", `{"organization":{"name":"NGO","kind":"IMPLEMENTER"},"requestId":"o2"}`), "organization")
	rm := id(mk(a, "/v1/roadmaps", `{"roadmap":{"country":"AFG","title":"Strategy","startDate":"2024-01-01","endDate":"2026-12-31","reportingCurrency":"USD"},"requestId":"r1"}`), "roadmap")
	_, dtok := mintToken(t, dir, "--role", "donor", "--org", donor)
	g := call(t, b, "POST", "/v1/grants", dtok, fmt.Sprintf(`{"grant":{"roadmapId":"%s","donorOrgId":"%s","recipientOrgId":"%s","reference":"RACE-1","title":"Race","currency":"USD","pledged":{"amount":"12000.00","currency":"USD"},"startDate":"2024-01-01","endDate":"2025-12-31"},"requestId":"g1"}`, rm, donor, ngo))
	if g.code != 200 {
		t.Fatalf("grant: %d %s", g.code, g.raw)
	}
	grant := id(g.body, "grant")
	if r := call(t, a, "POST", "/v1/grants/"+grant+"/transactions", dtok, `{"transaction":{"type":"COMMITMENT","amount":{"amount":"12000.00","currency":"USD"},"valueDate":"2024-02-01"},"requestId":"c1"}`); r.code != 200 {
		t.Fatalf("commitment: %d %s", r.code, r.raw)
	}
	type answer struct {
		code int
		grpc any // the gRPC status code in the error body
	}
	codes := make(chan answer, 32)
	var wg sync.WaitGroup
	for c := range 32 {
		s := a
		if c%2 == 1 {
			s = b
		}
		wg.Go(func() {
			r := call(t, s, "POST", "/v1/grants/"+grant+"/transactions", dtok,
				fmt.Sprintf(`{"transaction":{"type":"DISBURSEMENT","amount":{"amount":"1000.00","currency":"USD"},"valueDate":"2024-03-01","reference":"T%d"},"requestId":"d%d"}`, c, c))
			codes <- answer{r.code, r.body["code"]}
		})
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c.code]++
		if c.code == 400 && c.grpc != float64(9) {
			t.Errorf("a refused disbursement carries gRPC code %v, want 9 (FAILED_PRECONDITION)", c.grpc)
		}
	}
	if n[200] != 12 || n[400] != 20 {
		t.Fatalf("status codes %v; want 12 × 200 and 20 × 400 (FAILED_PRECONDITION)", n)
	}
	rec := call(t, b, "GET", "/v1/grants/"+grant+"/reconciliation", dtok, "")
	agr := rec.body["agreement"].(map[string]any)
	if agr["disbursed"].(map[string]any)["amount"] != "12000.00" || agr["undisbursedCommitment"].(map[string]any)["amount"] != "0.00" {
		t.Fatalf("reconciliation: %s", rec.raw)
	}
	// Another donor sees nothing of this grant.
	other := id(mk(a, "/v1/organizations", `{"organization":{"name":"Other donor","kind":"DONOR"},"requestId":"o3"}`), "organization")
	_, otok := mintToken(t, dir, "--role", "donor", "--org", other)
	if r := call(t, a, "GET", "/v1/grants/"+grant, otok, ""); r.code != 404 || strings.Contains(r.raw, "RACE-1") {
		t.Fatalf("other donor: %d %s", r.code, r.raw)
	}
	if r := call(t, a, "GET", "/v1/grants/"+grant+"/reconciliation", otok, ""); r.code != 404 {
		t.Fatalf("other donor reconciliation: %d", r.code)
	}
	if v := call(t, a, "GET", "/v1/audit-events:verify", admin, ""); v.body["verified"] != true {
		t.Fatalf("verify: %s", v.raw)
	}
}

// Two servers on one embedded data directory: when the one that started the
// cluster stops, the other keeps serving on it, quietly, and the cluster stops
// with the last server.
func TestSecondServerOutlivesTheFirst(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	first := startServer(t, dir)
	second := startServer(t, dir) // joins the running embedded cluster
	_, admin := mintToken(t, dir, "--role", "admin")
	first.stop(t, syscall.SIGTERM)
	time.Sleep(time.Second) // several sealing and readiness intervals
	r := call(t, second, "POST", "/v1/organizations", admin, `{"organization":{"name":"HALO Trust","kind":"IMPLEMENTER"},"requestId":"after-first"}`)
	if r.code != 200 {
		t.Fatalf("the second server after the first stopped: %d %s", r.code, r.raw)
	}
	id := r.body["organization"].(map[string]any)["id"].(string)
	if r := call(t, second, "GET", "/v1/organizations/"+id, admin, ""); r.code != 200 {
		t.Fatalf("read back: %d %s", r.code, r.raw)
	}
	if r := call(t, second, "GET", "/healthz", "", ""); r.code != 200 {
		t.Fatalf("healthz: %d %s", r.code, r.raw)
	}
	if v := call(t, second, "GET", "/v1/audit-events:verify", admin, ""); v.body["verified"] != true {
		t.Fatalf("verify: %s", v.raw)
	}
	second.stop(t, syscall.SIGTERM)
	if strings.Contains(second.logs.String(), `"level":"WARN"`) || strings.Contains(second.logs.String(), `"level":"ERROR"`) {
		t.Fatalf("the second server complained:\n%s", second.logs)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("embedded PostgreSQL still running after the last server stopped: %v", err)
	}
}
