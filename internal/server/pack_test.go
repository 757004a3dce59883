package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tranche-ledger/tranche/api"
	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/reports"
)

// downloadGRPC fetches a pack over gRPC: its first message and all its bytes.
func downloadGRPC(ctx context.Context, conn *grpc.ClientConn, req *pb.DownloadAuditPackRequest) (*pb.DownloadAuditPackResponse, []byte, error) {
	stream, err := pb.NewAuditPackServiceClient(conn).DownloadAuditPack(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var first *pb.DownloadAuditPackResponse
	var data []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return first, data, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if first == nil {
			first = msg
		} else if msg.ContentType != "" || msg.FileName != "" || msg.Size != 0 || msg.Sha256 != "" {
			return nil, nil, errors.New("a later message describes the file again")
		}
		if len(msg.Data) > packChunk {
			return nil, nil, errors.New("a piece larger than packChunk")
		}
		data = append(data, msg.Data...)
	}
}

// packWorld is the fixture's roadmap with a second grant from another donor
// to another implementer, and a second roadmap.
type packWorld struct {
	fixture
	otherDonor, otherNGO, otherGrant, otherRoadmap string
}

func (h *harness) packWorld(t *testing.T, admin context.Context) packWorld {
	t.Helper()
	w := packWorld{fixture: h.fixture(t, admin)}
	w.otherDonor, w.otherNGO = h.org(t, admin, "DONOR"), h.org(t, admin, "IMPLEMENTER")
	g, err := pb.NewGrantServiceClient(h.conn).CreateGrant(admin, &pb.CreateGrantRequest{RequestId: uuid.NewString(), Grant: &pb.Grant{
		RoadmapId: w.roadmapID, DonorOrgId: w.otherDonor, RecipientOrgId: w.otherNGO, Reference: "G-2", Title: "Other",
		Currency: "USD", Pledged: &pb.Money{Amount: "500.00", Currency: "USD"}, StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	w.otherGrant = g.Grant.Id
	rm, err := pb.NewRoadmapServiceClient(h.conn).CreateRoadmap(admin, &pb.CreateRoadmapRequest{RequestId: uuid.NewString(),
		Roadmap: &pb.Roadmap{Country: "UKR", Title: "Other", StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	w.otherRoadmap = rm.Roadmap.Id
	return w
}

// The pack over REST is the file itself with the documented headers, and the
// same bytes as over gRPC for the same scope and as-of; excelize opens it and
// its Cover names the scope.
func TestAuditPackDownloadOverRESTAndGRPC(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.packWorld(t, admin)
	asOf := time.Now().UTC().Format(time.RFC3339Nano)
	auditor := h.secret(t, auth.Auditor, "")
	q := url.Values{"roadmapId": {w.roadmapID}, "donorOrgId": {w.donorOrgID}, "from": {"2024-01-01"}, "to": {"2024-12-31"}, "asOf": {asOf}}

	rest := h.rest(t, "GET", "/v1/audit-packs:download?"+q.Encode(), "Bearer "+auditor, nil)
	if rest.code != 200 {
		t.Fatalf("REST: %d %s", rest.code, rest.raw)
	}
	first, data, err := downloadGRPC(h.as(t, auth.Auditor, ""), h.conn, &pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID,
		DonorOrgId: w.donorOrgID, From: "2024-01-01", To: "2024-12-31", AsOf: asOf})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, []byte(rest.raw)) {
		t.Fatalf("REST gave %d bytes, gRPC %d, not the same", len(rest.raw), len(data))
	}
	sum := sha256.Sum256(data)
	if first.ContentType != PackContentType || first.Size != int64(len(data)) || first.Sha256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("first message %+v for %d bytes", first, len(data))
	}
	name := first.FileName
	for _, part := range []string{"roadmap-" + w.roadmapID, "donor-" + w.donorOrgID, "from-2024-01-01", "to-2024-12-31", "_asof-", ".xlsx"} {
		if !strings.Contains(name, part) {
			t.Errorf("file name %q lacks %q", name, part)
		}
	}
	want := http.Header{
		"Content-Type":        {PackContentType},
		"Content-Disposition": {`attachment; filename="` + name + `"`},
		"Repr-Digest":         {"sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"},
		"Cache-Control":       {"no-store"},
	}
	for k, v := range want {
		if got := rest.header.Get(k); got != v[0] {
			t.Errorf("%s: %q, want %q", k, got, v[0])
		}
	}
	if rest.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}

	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, s := range reports.Layout {
		names = append(names, s.Name)
	}
	if got := f.GetSheetList(); strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("sheets %v, want %v", got, names)
	}
	rows, err := f.GetRows("Cover")
	if err != nil {
		t.Fatal(err)
	}
	cover := strings.Join(func() []string {
		var out []string
		for _, r := range rows {
			out = append(out, strings.Join(r, "="))
		}
		return out
	}(), "\n")
	for _, s := range []string{w.roadmapID, w.donorOrgID, "2024-01-01", "2024-12-31"} {
		if !strings.Contains(cover, s) {
			t.Errorf("Cover lacks %s:\n%s", s, cover)
		}
	}

	// Without asOf the pack is as of now, and says so in its name.
	before := time.Now().UTC()
	first, _, err = downloadGRPC(h.as(t, auth.Auditor, ""), h.conn, &pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID})
	if err != nil {
		t.Fatal(err)
	}
	_, stamp, _ := strings.Cut(first.FileName, "_asof-")
	at, err := time.Parse("20060102T150405.999999Z", strings.TrimSuffix(stamp, ".xlsx"))
	if err != nil || at.Before(before.Truncate(time.Microsecond)) || at.After(time.Now()) {
		t.Fatalf("file name %q: as-of %v (%v), want about now", first.FileName, at, err)
	}
}

// Who may download which scope, over gRPC and REST alike. Every refusal comes
// before any byte: REST answers a JSON status, gRPC no message.
func TestAuditPackAuthorisation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.packWorld(t, admin)
	type req = pb.DownloadAuditPackRequest
	whole := &req{RoadmapId: w.roadmapID}
	ownDonor := &req{RoadmapId: w.roadmapID, DonorOrgId: w.donorOrgID}
	ownGrant := &req{RoadmapId: w.roadmapID, GrantId: w.grantID}
	otherDonor := &req{RoadmapId: w.roadmapID, DonorOrgId: w.otherDonor}
	otherGrant := &req{RoadmapId: w.roadmapID, GrantId: w.otherGrant}
	ownGrantOtherDonor := &req{RoadmapId: w.roadmapID, GrantId: w.grantID, DonorOrgId: w.otherDonor}
	wrongRoadmap := &req{RoadmapId: w.otherRoadmap, GrantId: w.grantID}
	unknownRoadmap := &req{RoadmapId: uuid.NewString()}
	unknownGrant := &req{RoadmapId: w.roadmapID, GrantId: uuid.NewString()}

	ok, denied, notFound, invalid := codes.OK, codes.PermissionDenied, codes.NotFound, codes.InvalidArgument
	for _, tc := range []struct {
		name string
		role auth.Role
		org  string
		req  *req
		want codes.Code
	}{
		{"auditor whole roadmap", auth.Auditor, "", whole, ok},
		{"coordinator other donor", auth.Coordinator, "", otherDonor, ok},
		{"admin a grant", auth.Admin, "", otherGrant, ok},
		{"auditor unknown roadmap", auth.Auditor, "", unknownRoadmap, notFound},
		{"auditor unknown grant", auth.Auditor, "", unknownGrant, notFound},
		{"auditor grant of another roadmap", auth.Auditor, "", wrongRoadmap, invalid},
		{"auditor grant of another donor than donorOrgId", auth.Auditor, "", ownGrantOtherDonor, invalid},

		{"donor itself", auth.Donor, w.donorOrgID, ownDonor, ok},
		{"donor its grant", auth.Donor, w.donorOrgID, ownGrant, ok},
		{"donor whole roadmap", auth.Donor, w.donorOrgID, whole, denied},
		{"donor another donor", auth.Donor, w.donorOrgID, otherDonor, denied},
		{"donor another donor's grant", auth.Donor, w.donorOrgID, otherGrant, notFound},
		{"donor its grant named with another donor", auth.Donor, w.donorOrgID, ownGrantOtherDonor, denied},

		{"implementer its grant", auth.Implementer, w.ngoOrgID, ownGrant, ok},
		{"implementer another's grant", auth.Implementer, w.ngoOrgID, otherGrant, notFound},
		{"implementer whole roadmap", auth.Implementer, w.ngoOrgID, whole, denied},
		{"implementer as its donor", auth.Implementer, w.ngoOrgID, ownDonor, denied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, data, err := downloadGRPC(h.as(t, tc.role, tc.org), h.conn, tc.req)
			if status.Code(err) != tc.want {
				t.Fatalf("gRPC: %v, want %v", err, tc.want)
			}
			if tc.want == ok && len(data) == 0 {
				t.Fatal("gRPC: no bytes")
			}
			q := url.Values{"roadmapId": {tc.req.RoadmapId}}
			for k, v := range map[string]string{"donorOrgId": tc.req.DonorOrgId, "grantId": tc.req.GrantId} {
				if v != "" {
					q.Set(k, v)
				}
			}
			rest := h.rest(t, "GET", "/v1/audit-packs:download?"+q.Encode(), "Bearer "+h.secret(t, tc.role, tc.org), nil)
			if tc.want == ok {
				if rest.code != 200 || rest.header.Get("Content-Type") != PackContentType {
					t.Fatalf("REST: %d %s", rest.code, rest.header)
				}
				return
			}
			if rest.code != runtimeHTTP(tc.want) || rest.grpcCode() != int(tc.want) || !strings.HasPrefix(rest.header.Get("Content-Type"), "application/json") {
				t.Fatalf("REST: %d %s %s, want %v", rest.code, rest.header.Get("Content-Type"), rest.raw, tc.want)
			}
		})
	}

	// No token, or a revoked-looking one: refused before anything.
	if _, _, err := downloadGRPC(context.Background(), h.conn, whole); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC without a token: %v", err)
	}
	for _, authz := range []string{"", "Bearer nonsense"} {
		if r := h.rest(t, "GET", "/v1/audit-packs:download?roadmapId="+w.roadmapID, authz, nil); r.code != 401 {
			t.Fatalf("REST with %q: %d %s", authz, r.code, r.raw)
		}
	}
	// The download takes GET only, and says so.
	if r := h.rest(t, "POST", "/v1/audit-packs:download?roadmapId="+w.roadmapID, "Bearer "+h.secret(t, auth.Admin, ""), nil); r.code != 405 || r.header.Get("Allow") != "GET" {
		t.Fatalf("POST: %d Allow %q %s", r.code, r.header.Get("Allow"), r.raw)
	}
	// Nor with a form body, which grpc-gateway would otherwise take for the
	// GET of the same path (its "path length fallback"), body ignored.
	for _, path := range []string{"/v1/audit-packs:download?roadmapId=" + w.roadmapID, "/v1/grants/" + w.grantID} {
		req, _ := http.NewRequest("POST", "http://"+h.http+path, strings.NewReader("bogus=%00%FF"))
		req.Header.Set("Authorization", "Bearer "+h.secret(t, auth.Admin, ""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Errorf("form POST %s: %d, want 405", path, resp.StatusCode)
		}
	}
}

// Builds are bounded (each holds a connection while it asks the pool for
// more): past the slots, a few calls wait for as long as their clients do,
// and the rest are RESOURCE_EXHAUSTED at once.
func TestAuditPackBuildSlots(t *testing.T) {
	t.Parallel()
	s := &packService{slots: make(chan struct{}, 1)}
	ctx := context.Background()
	release, err := s.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, maxPackWaiting)
	for range maxPackWaiting {
		go func() {
			r, err := s.acquire(ctx)
			if err == nil {
				r()
			}
			got <- err
		}()
	}
	for s.waiting.Load() < maxPackWaiting {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.acquire(ctx); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("one more than the queue: %v, want RESOURCE_EXHAUSTED", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	s.waiting.Add(-1) // make room for one more waiter whose client is gone
	if _, err := s.acquire(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose client went away: %v", err)
	}
	s.waiting.Add(1)
	release()
	for range maxPackWaiting {
		if err := <-got; err != nil {
			t.Fatalf("a waiter: %v", err)
		}
	}
}

func runtimeHTTP(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return 400
	case codes.NotFound:
		return 404
	case codes.PermissionDenied:
		return 403
	}
	return 500
}

// Bad parameters are 400 naming the parameter, never a 500 and never a pack:
// malformed ids and dates, dates out of the service's bounds, a future or
// malformed as-of, from after to, NUL bytes, invalid UTF-8, huge values,
// unknown and repeated parameters.
func TestAuditPackBadParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	rm := h.fixture(t, admin).roadmapID
	secret := "Bearer " + h.secret(t, auth.Auditor, "")
	huge := strings.Repeat("a", 20000)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		query string
		field string
	}{
		{"", "roadmapId"},
		{"roadmapId=nope", "roadmapId"},
		{"roadmapId=00000000-0000-0000-0000-000000000000", "roadmapId"},
		{"roadmapId=" + rm + "&donorOrgId=x", "donorOrgId"},
		{"roadmapId=" + rm + "&grantId=" + rm + "x", "grantId"},
		{"roadmapId=" + rm + "&from=2024-02-30", "from"},
		{"roadmapId=" + rm + "&from=0000-01-01", "from"},
		{"roadmapId=" + rm + "&to=9999-12-31", "to"},
		{"roadmapId=" + rm + "&from=1989-12-31", "from"},
		{"roadmapId=" + rm + "&from=2024-06-01&to=2024-05-31", "to"},
		{"roadmapId=" + rm + "&asOf=yesterday", "asOf"},
		{"roadmapId=" + rm + "&asOf=" + url.QueryEscape(future), "asOf"},
		{"roadmapId=" + rm + "&asOf=1970-01-01T00:00:00Z", "asOf"},
		{"roadmapId=" + rm + "&asOf=2024-06-01T05:03:50%2B24:00", "asOf"},
		{"roadmapId=" + rm + "&asOf=2024-13-01T00:00:00Z", "asOf"},
		{"roadmapId=" + rm + "%00", "roadmapId"},
		{"roadmapId=" + rm + "&from=%00", "from"},
		{"roadmapId=" + rm + "&asOf=%ff%fe", "asOf"},
		{"roadmapId=" + huge, "roadmapId"},
		{"roadmapId=" + rm + "&asOf=" + huge, "asOf"},
		{"roadmapId=" + rm + "&format=csv", "format"},
		{"roadmapId=" + rm + "&roadmapId=" + rm, "roadmapId"},
	} {
		name := tc.query
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			r := h.rest(t, "GET", "/v1/audit-packs:download?"+tc.query, secret, nil)
			if r.code != 400 || r.grpcCode() != int(codes.InvalidArgument) {
				t.Fatalf("%d %.300s, want 400", r.code, r.raw)
			}
			named := false
			for _, v := range r.violations() {
				named = named || strings.HasPrefix(v, tc.field+":")
			}
			if !named {
				t.Fatalf("violations %q do not name %s", r.violations(), tc.field)
			}
		})
	}

	// The same over gRPC, where the text arrives unchecked by any gateway.
	for _, tc := range []struct {
		req   *pb.DownloadAuditPackRequest
		field string
	}{
		{&pb.DownloadAuditPackRequest{}, "roadmapId"},
		{&pb.DownloadAuditPackRequest{RoadmapId: rm + "\x00"}, "roadmapId"},
		{&pb.DownloadAuditPackRequest{RoadmapId: rm, AsOf: huge}, "asOf"},
		{&pb.DownloadAuditPackRequest{RoadmapId: rm, AsOf: future}, "asOf"},
		{&pb.DownloadAuditPackRequest{RoadmapId: rm, From: "2024-01-02", To: "2024-01-01"}, "to"},
	} {
		_, _, err := downloadGRPC(h.as(t, auth.Auditor, ""), h.conn, tc.req)
		if status.Code(err) != codes.InvalidArgument || !slices.ContainsFunc(fields(t, err), func(f string) bool { return f == tc.field }) {
			t.Errorf("gRPC %.200v: %.300v, want INVALID_ARGUMENT naming %s", tc.req, err, tc.field)
		}
	}
}

// The OpenAPI document lists the download.
func TestOpenAPIListsTheAuditPackDownload(t *testing.T) {
	t.Parallel()
	if !bytes.Contains(api.OpenAPI, []byte(`"/v1/audit-packs:download"`)) {
		t.Fatal("openapi.json does not list /v1/audit-packs:download")
	}
}

// packStream is the server side of a DownloadAuditPack stream, for calling
// the service directly: it keeps what is sent, and fails sending once
// failAfter messages went (0: never), as when the client goes away.
type packStream struct {
	grpc.ServerStream
	ctx       context.Context
	sent      []*pb.DownloadAuditPackResponse
	failAfter int
	onSend    func()
}

func (s *packStream) Context() context.Context { return s.ctx }

func (s *packStream) Send(m *pb.DownloadAuditPackResponse) error {
	if s.onSend != nil {
		s.onSend()
	}
	if s.failAfter > 0 && len(s.sent) >= s.failAfter {
		return status.Error(codes.Canceled, "client went away")
	}
	s.sent = append(s.sent, &pb.DownloadAuditPackResponse{ContentType: m.ContentType, FileName: m.FileName,
		Size: m.Size, Sha256: m.Sha256, Data: bytes.Clone(m.Data)})
	return nil
}

// The pack is built in a temporary file that has no name while it is built
// and sent, and none is left: after a complete download, after the client
// went away mid-way, and after a refusal.
func TestAuditPackTemporaryFileIsPrivateAndRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.fixture(t, admin)
	dir := t.TempDir()
	// Pieces of 4 KiB, so that even a small pack comes in several.
	svc := &packService{src: reports.Source{DB: h.db.App, Audit: audit.New(h.db.App)}, grants: ledger.New(h.db.App), tempDir: dir, chunk: 4096}
	asOf := time.Now().UTC().Format(time.RFC3339Nano)
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Auditor, TokenID: "t"})
	building := func(t *testing.T) func() {
		return func() {
			// Unlinked as soon as it is created: no name to find while
			// sending (the open file is 0600, os.CreateTemp's mode).
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("%d files in the temporary directory while sending, want none", len(entries))
			}
		}
	}
	empty := func(t *testing.T) {
		t.Helper()
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%d files left in the temporary directory", len(entries))
		}
	}
	t.Run("complete", func(t *testing.T) {
		st := &packStream{ctx: ctx, onSend: building(t)}
		if err := svc.DownloadAuditPack(&pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID, AsOf: asOf}, st); err != nil {
			t.Fatal(err)
		}
		empty(t)
		var data []byte
		for i, m := range st.sent {
			if len(m.Data) > 4096 || (i < len(st.sent)-1 && len(m.Data) != 4096) || (i > 0 && m.Size != 0) {
				t.Fatalf("message %d: %d bytes, size %d", i, len(m.Data), m.Size)
			}
			data = append(data, m.Data...)
		}
		sum := sha256.Sum256(data)
		if len(st.sent) < 2 || int64(len(data)) != st.sent[0].Size || st.sent[0].Sha256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("%d messages, %d bytes, first %+v", len(st.sent), len(data), st.sent[0].Size)
		}
		// The pieces make the file the usual pieces make.
		_, whole, err := downloadGRPC(h.as(t, auth.Auditor, ""), h.conn, &pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID, AsOf: asOf})
		if err != nil || !bytes.Equal(whole, data) {
			t.Fatalf("4 KiB pieces and 64 KiB pieces differ (%v)", err)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		st := &packStream{ctx: ctx, failAfter: 2}
		if err := svc.DownloadAuditPack(&pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID}, st); status.Code(err) != codes.Canceled {
			t.Fatalf("got %v, want the send error", err)
		}
		empty(t)
	})
	t.Run("refused", func(t *testing.T) {
		donor := auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Donor, OrgID: w.donorOrgID, TokenID: "d"})
		st := &packStream{ctx: donor}
		err := svc.DownloadAuditPack(&pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID}, st)
		if !errors.Is(err, apperr.ErrPermissionDenied) || len(st.sent) != 0 {
			t.Fatalf("got %v and %d messages", err, len(st.sent))
		}
		empty(t)
	})
}

// A build slot is for building: a client that reads slowly (here, not at
// all until told) does not hold it while its pack is sent.
func TestAuditPackSlotFreedBeforeSending(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	w := h.fixture(t, admin)
	svc := &packService{src: reports.Source{DB: h.db.App, Audit: audit.New(h.db.App)}, grants: ledger.New(h.db.App),
		tempDir: t.TempDir(), chunk: 4096, slots: make(chan struct{}, 1)}
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Auditor, TokenID: "t"})
	sending, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := &packStream{ctx: ctx, onSend: func() {
		once.Do(func() { close(sending) })
		<-unblock
	}}
	first := make(chan error, 1)
	go func() { first <- svc.DownloadAuditPack(&pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID}, slow) }()
	<-sending
	second, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st := &packStream{ctx: second}
	err := svc.DownloadAuditPack(&pb.DownloadAuditPackRequest{RoadmapId: w.roadmapID}, st)
	close(unblock)
	if err != nil || len(st.sent) == 0 {
		t.Fatalf("a second pack while the first is being sent: %v, %d messages", err, len(st.sent))
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}
