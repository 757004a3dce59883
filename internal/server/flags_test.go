package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// plantFlag writes an OPEN flag about grantID (and its run) directly, as the
// schema owner: the rules are tested in internal/detect, and what this
// package tests is how flags are served.
func (h *harness) plantFlag(t *testing.T, roadmapID, grantID, donor, recipient string) string {
	t.Helper()
	ctx := context.Background()
	run, id := uuid.NewString(), uuid.Must(uuid.NewV7()).String() // flags list in id order
	if _, err := h.db.Owner.Exec(ctx, `INSERT INTO detection_runs (id, roadmap_id, as_of, started_at, actor, actor_role, counts)
		VALUES ($1, $2, current_date, now(), 'test', 'admin', '{}')`, run, roadmapID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Owner.Exec(ctx, `INSERT INTO flags (id, roadmap_id, kind, fingerprint, severity, status, subjects, grant_ids,
		donor_org_ids, recipient_org_ids, evidence, explanation, detected_at, first_run, updated_at)
		VALUES ($1, $2, 'DUPLICATE_TRANSACTION', encode(sha256(convert_to($7::text, 'UTF8')), 'hex'), 'HIGH', 'OPEN',
		        jsonb_build_array(jsonb_build_object('type', 'grant', 'id', $3::text)), ARRAY[$3::uuid], ARRAY[$4::uuid],
		        ARRAY[$5::uuid], '{"amount": {"amount": "10.00", "currency": "USD"}, "windowDays": 7}',
		        'Two disbursements of 10.00 USD a day apart.', now(), $6, now())`,
		id, roadmapID, grantID, donor, recipient, run, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// flagWorld is a fixture with two grants of different donors and partners,
// and one flag about each.
type flagWorld struct {
	fixture
	otherDonor, otherNgo, otherGrant string
	flag, otherFlag                  string
}

func (h *harness) flagWorld(t *testing.T, admin context.Context) flagWorld {
	t.Helper()
	w := flagWorld{fixture: h.fixture(t, admin)}
	w.otherDonor, w.otherNgo = h.org(t, admin, "DONOR"), h.org(t, admin, "IMPLEMENTER")
	g, err := pb.NewGrantServiceClient(h.conn).CreateGrant(admin, &pb.CreateGrantRequest{RequestId: uuid.NewString(), Grant: &pb.Grant{
		RoadmapId: w.roadmapID, DonorOrgId: w.otherDonor, RecipientOrgId: w.otherNgo, Reference: "G-2", Title: "Other",
		Currency: "USD", Pledged: &pb.Money{Amount: "500.00", Currency: "USD"}, StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	w.otherGrant = g.Grant.Id
	w.flag = h.plantFlag(t, w.roadmapID, w.grantID, w.donorOrgID, w.ngoOrgID)
	w.otherFlag = h.plantFlag(t, w.roadmapID, w.otherGrant, w.otherDonor, w.otherNgo)
	return w
}

// Every role against every flag endpoint, over gRPC and REST: a donor or an
// implementer sees the flags about its own grants only; another's flag is
// NOT_FOUND; only coordinators and admins run detection and review.
func TestFlagEndpointsByRole(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.flagWorld(t, admin)
	flags := pb.NewFlagServiceClient(h.conn)
	roles := []struct {
		name, org string
		role      auth.Role
		sees      []string // flags listed and readable
		manages   bool
	}{
		{"admin", "", auth.Admin, []string{w.flag, w.otherFlag}, true},
		{"coordinator", "", auth.Coordinator, []string{w.flag, w.otherFlag}, true},
		{"auditor", "", auth.Auditor, []string{w.flag, w.otherFlag}, false},
		{"donor", w.donorOrgID, auth.Donor, []string{w.flag}, false},
		{"other donor", w.otherDonor, auth.Donor, []string{w.otherFlag}, false},
		{"implementer", w.ngoOrgID, auth.Implementer, []string{w.flag}, false},
		{"other implementer", w.otherNgo, auth.Implementer, []string{w.otherFlag}, false},
	}
	// Reads first: a run below may add flags of the real rules.
	for _, r := range roles {
		secret := h.secret(t, r.role, r.org)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
		bearer := "Bearer " + secret
		resp, err := flags.ListFlags(ctx, &pb.ListFlagsRequest{RoadmapId: w.roadmapID})
		if err != nil {
			t.Fatalf("%s: ListFlags: %v", r.name, err)
		}
		var listed []string
		for _, f := range resp.Flags {
			listed = append(listed, f.Id)
		}
		rest := h.rest(t, "GET", "/v1/flags?roadmapId="+w.roadmapID, bearer, nil)
		var restListed []string
		for _, f := range asList(rest.body["flags"]) {
			restListed = append(restListed, fmt.Sprint(f["id"]))
		}
		if !slices.Equal(listed, r.sees) || !slices.Equal(restListed, r.sees) {
			t.Errorf("%s lists %v over gRPC and %v over REST (%d), want %v", r.name, listed, restListed, rest.code, r.sees)
		}
		for _, id := range []string{w.flag, w.otherFlag} {
			want, wantHTTP := codes.NotFound, http.StatusNotFound
			if slices.Contains(r.sees, id) {
				want, wantHTTP = codes.OK, http.StatusOK
			}
			_, err := flags.GetFlag(ctx, &pb.GetFlagRequest{FlagId: id})
			if rest := h.rest(t, "GET", "/v1/flags/"+id, bearer, nil); status.Code(err) != want || rest.code != wantHTTP {
				t.Errorf("%s: GetFlag %s: %v over gRPC, %d over REST; want %v", r.name, id, err, rest.code, want)
			}
		}
	}
	for _, r := range roles {
		secret := h.secret(t, r.role, r.org)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
		want := codes.PermissionDenied
		if r.manages {
			want = codes.OK
		}
		if _, err := flags.DetectFlags(ctx, &pb.DetectFlagsRequest{RoadmapId: w.roadmapID}); status.Code(err) != want {
			t.Errorf("%s: DetectFlags: %v, want %v", r.name, err, want)
		}
		rest := h.rest(t, "POST", "/v1/flags:detect", "Bearer "+secret, strings.NewReader(`{"roadmapId":"`+w.roadmapID+`","asOf":"2025-01-31"}`))
		if (rest.code == http.StatusOK) != r.manages || (!r.manages && rest.code != http.StatusForbidden) {
			t.Errorf("%s: POST /v1/flags:detect: %d %s", r.name, rest.code, rest.raw)
		}
	}
	// The planted flags are not found by the (empty) rules of this branch:
	// the coordinator's run resolved them. Reviews of a resolved flag are
	// refused; a fresh flag takes them.
	fresh := h.plantFlag(t, w.roadmapID, w.grantID, w.donorOrgID, w.ngoOrgID)
	for _, r := range roles {
		ctx := h.as(t, r.role, r.org)
		want := codes.PermissionDenied
		if r.manages {
			want = codes.OK
		}
		action := "ACKNOWLEDGE"
		if r.role == auth.Coordinator {
			action = "REOPEN" // the admin acknowledged it just before
		}
		_, err := flags.ReviewFlag(ctx, &pb.ReviewFlagRequest{FlagId: fresh, Action: action, RequestId: uuid.NewString()})
		if status.Code(err) != want {
			t.Errorf("%s: ReviewFlag: %v, want %v", r.name, err, want)
		}
	}
	got, err := flags.GetFlag(admin, &pb.GetFlagRequest{FlagId: w.flag})
	if err != nil {
		t.Fatal(err)
	}
	if got.Flag.Status != "RESOLVED" || got.Flag.ResolvedByRun == "" {
		t.Fatalf("a flag no run finds any more: %v", got.Flag)
	}
}

func asList(v any) []map[string]any {
	var out []map[string]any
	list, _ := v.([]any)
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// The flag JSON: the field names of DESIGN section 7, evidence as an object.
func TestFlagJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.flagWorld(t, admin)
	bearer := "Bearer " + h.secret(t, auth.Coordinator, "")
	r := h.rest(t, "POST", "/v1/flags/"+w.flag+":review", bearer,
		strings.NewReader(`{"action":"DISMISS","note":"split payment agreed with the donor","requestId":"d-1"}`))
	if r.code != 200 {
		t.Fatalf("review: %d %s", r.code, r.raw)
	}
	f, _ := r.body["flag"].(map[string]any)
	for _, k := range []string{"id", "roadmapId", "kind", "severity", "status", "fingerprint", "subjects", "evidence",
		"explanation", "detectedAt", "reviewedBy", "reviewNote", "reviewedAt"} {
		if _, ok := f[k]; !ok {
			t.Errorf("flag JSON has no %s: %s", k, r.raw)
		}
	}
	ev, _ := f["evidence"].(map[string]any)
	amount, _ := ev["amount"].(map[string]any)
	if amount["amount"] != "10.00" || ev["windowDays"] != float64(7) || f["status"] != "DISMISSED" {
		t.Fatalf("flag JSON: %s", r.raw)
	}
	subjects := asList(f["subjects"])
	if len(subjects) != 1 || subjects[0]["type"] != "grant" || subjects[0]["id"] != w.grantID {
		t.Fatalf("subjects: %v", f["subjects"])
	}
	got := h.rest(t, "GET", "/v1/flags/"+w.flag, bearer, nil)
	history := asList(got.body["history"])
	if got.code != 200 || len(history) != 1 || history[0]["event"] != "DISMISS" || history[0]["status"] != "DISMISSED" ||
		history[0]["note"] != "split payment agreed with the donor" || history[0]["occurredAt"] == nil {
		t.Fatalf("flag with its history: %d %s", got.code, got.raw)
	}
	list := h.rest(t, "GET", "/v1/flags?status=DISMISSED&grantId="+w.grantID+"&pageSize=1", bearer, nil)
	if got := asList(list.body["flags"]); list.code != 200 || len(got) != 1 || got[0]["id"] != w.flag {
		t.Fatalf("filtered list: %d %s", list.code, list.raw)
	}
	runResp := h.rest(t, "POST", "/v1/flags:detect", bearer, strings.NewReader(`{"roadmapId":"`+w.roadmapID+`"}`))
	counts := asList(runResp.body["counts"])
	if runResp.code != 200 || len(counts) != 9 || runResp.body["runId"] == "" || runResp.body["asOf"] != time.Now().UTC().Format(time.DateOnly) {
		t.Fatalf("detect: %d %s", runResp.code, runResp.raw)
	}
	for _, c := range counts {
		if c["kind"] == "DUPLICATE_TRANSACTION" && c["resolved"] != float64(2) {
			t.Fatalf("the run resolved %v duplicate flags, want the two planted: %s", c["resolved"], runResp.raw)
		}
	}
	got = h.rest(t, "GET", "/v1/flags/"+w.flag, bearer, nil)
	history = asList(got.body["history"])
	if len(history) != 2 || history[1]["event"] != "RESOLVED" || history[1]["runId"] != runResp.body["runId"] {
		t.Fatalf("history after the run: %s", got.raw)
	}
	if f, _ := got.body["flag"].(map[string]any); f["resolvedByRun"] != runResp.body["runId"] || f["reviewNote"] != "split payment agreed with the donor" {
		t.Fatalf("resolved flag: %s", got.raw)
	}
}

// Bad input on every flag endpoint is INVALID_ARGUMENT (or
// FAILED_PRECONDITION, ALREADY_EXISTS) naming the field, over gRPC and REST,
// and writes nothing.
func TestFlagEndpointsRefuseBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.flagWorld(t, admin)
	coordSecret := h.secret(t, auth.Coordinator, "")
	coord := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+coordSecret)
	bearer := "Bearer " + coordSecret
	flags := pb.NewFlagServiceClient(h.conn)
	if _, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "ACKNOWLEDGE", RequestId: "used"}); err != nil {
		t.Fatal(err)
	}
	written := func() (n int) {
		if err := h.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM flag_events) + (SELECT count(*) FROM audit_events)
			+ (SELECT count(*) FROM idempotency_keys) + (SELECT count(*) FROM detection_runs)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := written()
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	huge := strings.Repeat("n", 1<<20)
	grpcCases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"detect: bad roadmap id", func() error {
			_, err := flags.DetectFlags(coord, &pb.DetectFlagsRequest{RoadmapId: "R-1"})
			return err
		}, codes.InvalidArgument, "roadmapId"},
		{"detect: not a date", func() error {
			_, err := flags.DetectFlags(coord, &pb.DetectFlagsRequest{RoadmapId: w.roadmapID, AsOf: "2024-13-01"})
			return err
		}, codes.InvalidArgument, "asOf"},
		{"detect: absurd date", func() error {
			_, err := flags.DetectFlags(coord, &pb.DetectFlagsRequest{RoadmapId: w.roadmapID, AsOf: "0001-01-01"})
			return err
		}, codes.InvalidArgument, "asOf"},
		{"detect: before 1990", func() error {
			_, err := flags.DetectFlags(coord, &pb.DetectFlagsRequest{RoadmapId: w.roadmapID, AsOf: "1989-12-31"})
			return err
		}, codes.InvalidArgument, "asOf"},
		{"detect: tomorrow", func() error {
			_, err := flags.DetectFlags(coord, &pb.DetectFlagsRequest{RoadmapId: w.roadmapID, AsOf: tomorrow})
			return err
		}, codes.InvalidArgument, "asOf"},
		{"detect: unknown roadmap", func() error {
			_, err := flags.DetectFlags(coord, &pb.DetectFlagsRequest{RoadmapId: uuid.NewString()})
			return err
		}, codes.NotFound, ""},
		{"list: unknown kind", func() error {
			_, err := flags.ListFlags(coord, &pb.ListFlagsRequest{Kind: "DUPLICATE"})
			return err
		}, codes.InvalidArgument, "kind"},
		{"list: unknown status", func() error {
			_, err := flags.ListFlags(coord, &pb.ListFlagsRequest{Status: "CLOSED"})
			return err
		}, codes.InvalidArgument, "status"},
		{"list: unknown severity", func() error {
			_, err := flags.ListFlags(coord, &pb.ListFlagsRequest{Severity: "URGENT"})
			return err
		}, codes.InvalidArgument, "severity"},
		{"list: bad grant id", func() error {
			_, err := flags.ListFlags(coord, &pb.ListFlagsRequest{GrantId: "G-1"})
			return err
		}, codes.InvalidArgument, "grantId"},
		{"list: bad organisation id", func() error {
			_, err := flags.ListFlags(coord, &pb.ListFlagsRequest{OrganizationId: "00000000-0000-0000-0000-000000000000"})
			return err
		}, codes.InvalidArgument, "organizationId"},
		{"list: bad page token", func() error {
			_, err := flags.ListFlags(coord, &pb.ListFlagsRequest{PageToken: "%%%"})
			return err
		}, codes.InvalidArgument, "pageToken"},
		{"get: bad id", func() error {
			_, err := flags.GetFlag(coord, &pb.GetFlagRequest{FlagId: "F-1"})
			return err
		}, codes.InvalidArgument, "flagId"},
		{"review: unknown action", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "APPROVE", RequestId: "r1"})
			return err
		}, codes.InvalidArgument, "action"},
		{"review: dismissal without a note", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "DISMISS", RequestId: "r2"})
			return err
		}, codes.InvalidArgument, "note"},
		{"review: NUL in the note", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "DISMISS", Note: "a\x00b", RequestId: "r3"})
			return err
		}, codes.InvalidArgument, "note"},
		{"review: 1 MB note", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "DISMISS", Note: huge, RequestId: "r4"})
			return err
		}, codes.InvalidArgument, "note"},
		{"review: bad flag id", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: "F-1", Action: "DISMISS", Note: "x", RequestId: "r5"})
			return err
		}, codes.InvalidArgument, "flagId"},
		{"review: no request id", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "DISMISS", Note: "x"})
			return err
		}, codes.InvalidArgument, "requestId"},
		{"review: acknowledged twice", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "ACKNOWLEDGE", RequestId: "r6"})
			return err
		}, codes.FailedPrecondition, ""},
		{"review: unknown flag", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: uuid.NewString(), Action: "ACKNOWLEDGE", RequestId: "r7"})
			return err
		}, codes.NotFound, ""},
		{"review: replay with another payload", func() error {
			_, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "DISMISS", Note: "x", RequestId: "used"})
			return err
		}, codes.AlreadyExists, ""},
	}
	for _, tc := range grpcCases {
		err := tc.call()
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
			continue
		}
		if tc.field != "" {
			if got := fields(t, err); !slices.Contains(got, tc.field) {
				t.Errorf("%s: names %v, want %s", tc.name, got, tc.field)
			}
		}
	}
	// The same payload again is the first answer.
	again, err := flags.ReviewFlag(coord, &pb.ReviewFlagRequest{FlagId: w.flag, Action: "ACKNOWLEDGE", RequestId: "used"})
	if err != nil || again.Flag.Status != "ACKNOWLEDGED" {
		t.Fatalf("replay: %v, %v", again, err)
	}

	restCases := []struct {
		name, method, path, body string
		http                     int
		field                    string
	}{
		{"detect: unknown field", "POST", "/v1/flags:detect", `{"roadmapId":"` + w.roadmapID + `","asof":"2024-01-01"}`, 400, "asof"},
		{"detect: wrong type", "POST", "/v1/flags:detect", `{"roadmapId":"` + w.roadmapID + `","asOf":20240101}`, 400, "asOf"},
		{"detect: bad date", "POST", "/v1/flags:detect", `{"roadmapId":"` + w.roadmapID + `","asOf":"2024-02-30"}`, 400, "asOf"},
		{"detect: year 2200", "POST", "/v1/flags:detect", `{"roadmapId":"` + w.roadmapID + `","asOf":"2200-01-01"}`, 400, "asOf"},
		{"list: unknown kind", "GET", "/v1/flags?kind=duplicate", "", 400, "kind"},
		{"list: bad organisation", "GET", "/v1/flags?organizationId=x", "", 400, "organizationId"},
		{"list: unknown parameter", "GET", "/v1/flags?grant=x", "", 400, "grant"},
		{"get: bad id", "GET", "/v1/flags/not-an-id", "", 400, "flagId"},
		{"review: unknown action", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"CLOSE","requestId":"x1"}`, 400, "action"},
		{"review: dismiss without note", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"DISMISS","requestId":"x2"}`, 400, "note"},
		{"review: NUL note", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"DISMISS","note":"a\u0000b","requestId":"x3"}`, 400, "note"},
		{"review: 1 MB note", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"DISMISS","note":"` + huge + `","requestId":"x4"}`, 400, "note"},
		{"review: unknown field", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"DISMISS","note":"x","reason":"y","requestId":"x5"}`, 400, "reason"},
		{"review: bad flag id", "POST", "/v1/flags/xyz:review", `{"action":"DISMISS","note":"x","requestId":"x6"}`, 400, "flagId"},
		{"review: body names another flag", "POST", "/v1/flags/" + w.flag + ":review",
			`{"flagId":"` + w.otherFlag + `","action":"DISMISS","note":"x","requestId":"x8"}`, 400, "flagId"},
		{"review: body names another flag, in upper case", "POST", "/v1/flags/" + w.flag + ":review",
			`{"flag_id":"` + strings.ToUpper(w.otherFlag) + `","action":"DISMISS","note":"x","requestId":"x9"}`, 400, "flagId"},
		{"review: replay with another payload", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"REOPEN","requestId":"used"}`, 409, ""},
		{"review: acknowledged twice", "POST", "/v1/flags/" + w.flag + ":review", `{"action":"ACKNOWLEDGE","requestId":"x7"}`, 400, ""},
	}
	for _, tc := range restCases {
		var r restResponse
		if tc.body != "" {
			r = h.rest(t, tc.method, tc.path, bearer, strings.NewReader(tc.body))
		} else {
			r = h.rest(t, tc.method, tc.path, bearer, nil)
		}
		if r.code != tc.http {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, r.code, clip(r.raw, 300), tc.http)
			continue
		}
		if tc.field != "" && !slices.Contains(fieldsOf(r), tc.field) {
			t.Errorf("%s: names %v, want %s", tc.name, fieldsOf(r), tc.field)
		}
	}
	if got := written(); got != before {
		t.Fatalf("refused requests and the replay wrote %d rows", got-before)
	}
	var st string
	if err := h.db.Owner.QueryRow(context.Background(), `SELECT status FROM flags WHERE id = $1`, w.flag).Scan(&st); err != nil || st != "ACKNOWLEDGED" {
		t.Fatalf("flag now %s (%v)", st, err)
	}
}

// syncBuffer is a log destination goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A server with a detection interval runs every roadmap in the background
// as the operator, logs what each run did, and stops doing so when it stops.
func TestBackgroundDetection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.flagWorld(t, admin)
	var logs syncBuffer
	srv, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DetectInterval: 200 * time.Millisecond},
		testStores(h.db.App), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	runs := func() (n int) {
		if err := h.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM detection_runs
			WHERE roadmap_id = $1 AND actor_role = 'operator' AND actor = 'operator:background detection'`, w.roadmapID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for runs() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// A round skips a roadmap run within half an interval, so two rounds
	// 200 ms apart run it twice.
	if n := runs(); n < 2 {
		t.Fatalf("%d background runs in 10 s, want at least 2", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := runs()
	time.Sleep(500 * time.Millisecond)
	if runs() != after {
		t.Fatal("background detection went on after the server stopped")
	}
	// The planted flags were not found again: the first background run resolved them.
	got, err := pb.NewFlagServiceClient(h.conn).GetFlag(admin, &pb.GetFlagRequest{FlagId: w.flag})
	if err != nil || got.Flag.Status != "RESOLVED" {
		t.Fatalf("planted flag after background runs: %v, %v", got, err)
	}
	if l := logs.String(); !strings.Contains(l, "detection run") || !strings.Contains(l, "roadmap="+w.roadmapID) || !strings.Contains(l, "resolved=2") {
		t.Fatalf("logs say nothing of the runs:\n%s", l)
	}
}

// plantFlagOf writes an OPEN flag as a run would about grants (its
// subjects), with the donor and recipient arrays given: the run puts the
// organisations a flag names in both.
func (h *harness) plantFlagOf(t *testing.T, roadmapID string, grants, donors, recipients []string) string {
	t.Helper()
	ctx := context.Background()
	run, id := uuid.NewString(), uuid.Must(uuid.NewV7()).String()
	if _, err := h.db.Owner.Exec(ctx, `INSERT INTO detection_runs (id, roadmap_id, as_of, started_at, actor, actor_role, counts)
		VALUES ($1, $2, current_date, now(), 'test', 'admin', '{}')`, run, roadmapID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Owner.Exec(ctx, `INSERT INTO flags (id, roadmap_id, kind, fingerprint, severity, status, subjects, grant_ids,
		donor_org_ids, recipient_org_ids, evidence, explanation, detected_at, first_run, updated_at)
		VALUES ($1::uuid, $2, 'MILESTONE_AT_RISK', encode(sha256(convert_to($1::uuid::text, 'UTF8')), 'hex'), 'HIGH', 'OPEN',
		        (SELECT coalesce(jsonb_agg(jsonb_build_object('type', 'grant', 'id', g)), '[]') FROM unnest($3::text[]) g),
		        $3::uuid[], $4::uuid[], $5::uuid[], '{}', 'At risk.', now(), $6, now())`,
		id, roadmapID, grants, donors, recipients, run); err != nil {
		t.Fatal(err)
	}
	return id
}

// The token's role decides which flags an organisation sees. A pooled fund
// both gives and receives grants, and the rules name it on the flags of
// both: with its donor token it sees the flags of the grants it gives, with
// its implementer token those of the grants it receives, never the other
// role's. A flag that names it without its being a party to the flag's
// grants (a milestone's responsible organisation) it does not see, nor does
// anyone bound a flag about no grant. The grantId and organizationId
// filters only narrow what the caller sees.
func TestFlagVisibilityFollowsTheTokensRole(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	fx := h.fixture(t, admin)
	fund, ngo2 := h.org(t, admin, "POOLED_FUND"), h.org(t, admin, "IMPLEMENTER")
	grant := func(donor, recipient, ref string) string {
		g, err := pb.NewGrantServiceClient(h.conn).CreateGrant(admin, &pb.CreateGrantRequest{RequestId: uuid.NewString(), Grant: &pb.Grant{
			RoadmapId: fx.roadmapID, DonorOrgId: donor, RecipientOrgId: recipient, Reference: ref, Title: ref,
			Currency: "USD", Pledged: &pb.Money{Amount: "100.00", Currency: "USD"}, StartDate: "2024-01-01", EndDate: "2025-12-31"}})
		if err != nil {
			t.Fatal(err)
		}
		return g.Grant.Id
	}
	into := grant(fx.donorOrgID, fund, "G-IN") // the fund receives
	outOf := grant(fund, ngo2, "G-OUT")        // the fund gives
	orgs := func(ids ...string) []string { return append([]string{}, ids...) }
	// As a run writes them: the donors and the recipients of the flag's
	// grants; an organisation named as a subject (the fund, responsible for
	// the milestone of fResp) is in neither.
	fIn := h.plantFlagOf(t, fx.roadmapID, []string{into}, orgs(fx.donorOrgID), orgs(fund))
	fOut := h.plantFlagOf(t, fx.roadmapID, []string{outOf}, orgs(fund), orgs(ngo2))
	fNamed := h.plantFlagOf(t, fx.roadmapID, []string{}, orgs(), orgs())
	fResp := h.plantFlagOf(t, fx.roadmapID, []string{fx.grantID}, orgs(fx.donorOrgID), orgs(fx.ngoOrgID))
	all := []string{fIn, fOut, fNamed, fResp}
	flags := pb.NewFlagServiceClient(h.conn)
	for _, r := range []struct {
		name string
		role auth.Role
		org  string
		sees []string
	}{
		{"the fund as donor", auth.Donor, fund, []string{fOut}},
		{"the fund as implementer", auth.Implementer, fund, []string{fIn}},
		{"the fund's donor", auth.Donor, fx.donorOrgID, []string{fIn, fResp}},
		{"the fund's partner", auth.Implementer, ngo2, []string{fOut}},
		{"the fixture's partner", auth.Implementer, fx.ngoOrgID, []string{fResp}},
		{"coordinator", auth.Coordinator, "", all},
	} {
		secret := h.secret(t, r.role, r.org)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
		list := func(query string, req *pb.ListFlagsRequest) []string {
			resp, err := flags.ListFlags(ctx, req)
			if err != nil {
				t.Fatalf("%s: ListFlags %v: %v", r.name, req, err)
			}
			var grpcIDs, restIDs []string
			for _, f := range resp.Flags {
				grpcIDs = append(grpcIDs, f.Id)
			}
			rest := h.rest(t, "GET", "/v1/flags?"+query, "Bearer "+secret, nil)
			for _, f := range asList(rest.body["flags"]) {
				restIDs = append(restIDs, fmt.Sprint(f["id"]))
			}
			if !slices.Equal(grpcIDs, restIDs) {
				t.Errorf("%s: %s lists %v over gRPC, %v over REST (%d)", r.name, query, grpcIDs, restIDs, rest.code)
			}
			return grpcIDs
		}
		if got := list("roadmapId="+fx.roadmapID, &pb.ListFlagsRequest{RoadmapId: fx.roadmapID}); !slices.Equal(got, r.sees) {
			t.Errorf("%s lists %v, want %v", r.name, got, r.sees)
		}
		for _, id := range all {
			want, wantHTTP := codes.NotFound, http.StatusNotFound
			if slices.Contains(r.sees, id) {
				want, wantHTTP = codes.OK, http.StatusOK
			}
			_, err := flags.GetFlag(ctx, &pb.GetFlagRequest{FlagId: id})
			if rest := h.rest(t, "GET", "/v1/flags/"+id, "Bearer "+secret, nil); status.Code(err) != want || rest.code != wantHTTP {
				t.Errorf("%s: GetFlag %s: %v over gRPC, %d over REST; want %v", r.name, id, err, rest.code, want)
			}
		}
		// Filters narrow what the caller sees, and reveal nothing more.
		for _, g := range []struct{ id, flag string }{{into, fIn}, {outOf, fOut}, {fx.grantID, fResp}} {
			var want []string
			if slices.Contains(r.sees, g.flag) {
				want = []string{g.flag}
			}
			if got := list("grantId="+g.id, &pb.ListFlagsRequest{GrantId: g.id}); !slices.Equal(got, want) {
				t.Errorf("%s: grantId %s lists %v, want %v", r.name, g.id, got, want)
			}
		}
		// The flags the fund is a party to, of those the caller sees.
		var ofFund []string
		for _, id := range r.sees {
			if id == fIn || id == fOut {
				ofFund = append(ofFund, id)
			}
		}
		if got := list("organizationId="+fund, &pb.ListFlagsRequest{OrganizationId: fund}); !slices.Equal(got, ofFund) {
			t.Errorf("%s: organizationId (the fund) lists %v, want %v", r.name, got, ofFund)
		}
	}
}
