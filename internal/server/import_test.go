package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/imports"
)

// importsWired tells whether imports.Store.Run and ExportIATI do their work
// yet (they are stubs until the import pipeline is wired): the tests of
// real results run once they do.
func importsWired(t *testing.T, h *harness) (run, export bool) {
	t.Helper()
	op := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("test"))
	s := imports.New(h.db.App)
	_, err := s.Run(op, imports.Request{Kind: "none"})
	run = err == nil || !strings.Contains(err.Error(), "not wired")
	err = s.ExportIATI(op, io.Discard, uuid.New())
	export = err == nil || !strings.Contains(err.Error(), "not wired")
	return run, export
}

// exportGRPC calls ExportIati and gathers the file.
func exportGRPC(ctx context.Context, c pb.ImportServiceClient, roadmapID string) (*pb.ExportIatiResponse, []byte, error) {
	stream, err := c.ExportIati(ctx, &pb.ExportIatiRequest{RoadmapId: roadmapID})
	if err != nil {
		return nil, nil, err
	}
	var first *pb.ExportIatiResponse
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return first, buf.Bytes(), nil
		}
		if err != nil {
			return nil, nil, err
		}
		if first == nil {
			first = m
		}
		buf.Write(m.GetData())
	}
}

// Only admins and coordinators import, and the role is checked before the
// request: a donor, an implementer or an auditor is PERMISSION_DENIED even
// for a request that is invalid, while an admin's or a coordinator's invalid
// request is INVALID_ARGUMENT. Any role may export: a bad roadmap id is
// INVALID_ARGUMENT for every one, a good one never PERMISSION_DENIED.
func TestImportRoles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	fx := h.fixture(t, admin)
	c := pb.NewImportServiceClient(h.conn)
	runWired, exportWired := importsWired(t, h)
	roles := []struct {
		role    auth.Role
		org     string
		imports bool
	}{
		{auth.Admin, "", true}, {auth.Coordinator, "", true}, {auth.Donor, fx.donorOrgID, false},
		{auth.Implementer, fx.ngoOrgID, false}, {auth.Auditor, "", false},
	}
	for _, r := range roles {
		ctx := h.as(t, r.role, r.org)
		secret := "Bearer " + h.secret(t, r.role, r.org)
		want, wantHTTP := codes.PermissionDenied, 403
		if r.imports {
			want, wantHTTP = codes.InvalidArgument, 400
		}
		// No files: invalid, but only once the role may import at all.
		_, err := c.CreateImport(ctx, &pb.CreateImportRequest{Kind: "fts"})
		if status.Code(err) != want {
			t.Errorf("gRPC CreateImport as %s: %v, want %v", r.role, err, want)
		}
		resp := h.rest(t, "POST", importPath, secret, strings.NewReader(`{"kind": "xls"}`))
		if resp.code != wantHTTP {
			t.Errorf("REST CreateImport as %s: %d %s, want %d", r.role, resp.code, resp.raw, wantHTTP)
		}
		// A valid dry run.
		_, err = c.CreateImport(ctx, &pb.CreateImportRequest{Kind: "fts", RoadmapId: fx.roadmapID, DryRun: true,
			Files: []*pb.ImportFile{{Name: "flows.json", Content: []byte(`{"data": {"flows": []}}`)}}})
		switch {
		case !r.imports && status.Code(err) != codes.PermissionDenied:
			t.Errorf("gRPC dry run as %s: %v, want PERMISSION_DENIED", r.role, err)
		case r.imports && status.Code(err) == codes.PermissionDenied:
			t.Errorf("gRPC dry run as %s: %v", r.role, err)
		case r.imports && runWired && status.Code(err) == codes.Internal:
			t.Errorf("gRPC dry run as %s: %v", r.role, err)
		}

		// Export: no role is refused as such.
		_, _, err = exportGRPC(ctx, c, "nope")
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("gRPC ExportIati of a bad id as %s: %v, want INVALID_ARGUMENT", r.role, err)
		}
		first, data, err := exportGRPC(ctx, c, fx.roadmapID)
		if status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
			t.Errorf("gRPC ExportIati as %s: %v", r.role, err)
		}
		rest := h.rest(t, "GET", "/v1/roadmaps/"+fx.roadmapID+"/iati", secret, nil)
		if rest.code == 401 || rest.code == 403 {
			t.Errorf("REST export as %s: %d %s", r.role, rest.code, rest.raw)
		}
		if exportWired {
			if err != nil || first.GetContentType() != "application/xml" || !bytes.HasPrefix(data, []byte("<?xml")) ||
				int64(len(data)) != first.GetSize() || first.GetFileName() != "roadmap-"+fx.roadmapID+"-iati.xml" {
				t.Errorf("gRPC ExportIati as %s: %v %v (%d bytes)", r.role, err, first, len(data))
			}
			if rest.code != 200 || rest.header.Get("Content-Type") != "application/xml" ||
				rest.header.Get("Content-Disposition") != `attachment; filename="roadmap-`+fx.roadmapID+`-iati.xml"` ||
				exportStamp.ReplaceAllString(rest.raw, "") != exportStamp.ReplaceAllString(string(data), "") {
				t.Errorf("REST export as %s: %d %v", r.role, rest.code, rest.header)
			}
		}
	}
	// Without a token: refused.
	if _, err := c.CreateImport(context.Background(), &pb.CreateImportRequest{Kind: "fts"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CreateImport without a token: %v", err)
	}
	if _, _, err := exportGRPC(context.Background(), c, fx.roadmapID); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ExportIati without a token: %v", err)
	}
	if r := h.rest(t, "GET", "/v1/roadmaps/"+fx.roadmapID+"/iati", "", nil); r.code != 401 {
		t.Errorf("REST export without a token: %d %s", r.code, r.raw)
	}
}

// A caller who may not import is refused at the edge before any of its
// (large) body is read; one who may has the import limit, not the usual one.
func TestImportEdgeRefusesBeforeReadingTheBody(t *testing.T) {
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
	donorOrg := h.org(t, h.as(t, auth.Admin, ""), "DONOR")
	for _, tc := range []struct {
		name     string
		secret   string
		size     int64
		chunked  bool
		wantHTTP int
		maxRead  int64
	}{
		{"donor", h.secret(t, auth.Donor, donorOrg), 50 << 20, false, 403, 0},
		{"auditor, chunked", h.secret(t, auth.Auditor, ""), 50 << 20, true, 403, 0},
		{"admin, declared over the import limit", h.secret(t, auth.Admin, ""), importBodyBytes + 1, false, 413, 0},
		{"coordinator, chunked over the import limit", h.secret(t, auth.Coordinator, ""), importBodyBytes + 1<<20, true, 413, importBodyBytes + 64<<10},
	} {
		body := &countingBody{size: tc.size}
		req := httptest.NewRequest(http.MethodPost, importPath, body)
		req.ContentLength = tc.size
		if tc.chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Bearer "+tc.secret)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != tc.wantHTTP {
			t.Errorf("%s: HTTP %d %.300s, want %d", tc.name, rec.Code, rec.Body, tc.wantHTTP)
		}
		if tc.wantHTTP == 413 && !strings.Contains(rec.Body.String(), fmt.Sprint(importBodyBytes)) {
			t.Errorf("%s: the refusal does not say the limit: %.300s", tc.name, rec.Body)
		}
		if n := body.read.Load(); n > tc.maxRead {
			t.Errorf("%s: read %d bytes of the body, want at most %d", tc.name, n, tc.maxRead)
		}
	}
}

// Imports take up to 64 MiB of files, over REST and gRPC; more is refused
// saying the limit, and every other method keeps its own limits.
func TestImportSizeLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	secret := "Bearer " + h.secret(t, auth.Admin, "")
	c := pb.NewImportServiceClient(h.conn)

	// Over REST, 6 MiB of files (over the usual 4 MiB body) reach the
	// service, which names the bad kind.
	big := base64.StdEncoding.EncodeToString(make([]byte, 6<<20))
	r := h.rest(t, "POST", importPath, secret, strings.NewReader(
		`{"kind": "xls", "files": [{"name": "a.json", "content": "`+big+`"}]}`))
	if r.code != 400 || !slices.Contains(fieldsOf(r), "kind") {
		t.Errorf("6 MiB import with a bad kind: %d %.300s, want 400 naming kind", r.code, r.raw)
	}
	// Another method keeps the usual body limit.
	r = h.rest(t, "POST", "/v1/organizations", secret, strings.NewReader(
		`{"organization": {"name": "`+strings.Repeat("a", 5<<20)+`", "kind": "DONOR"}, "requestId": "x"}`))
	if r.code != 413 {
		t.Errorf("5 MiB organisation: %d %.300s, want 413", r.code, r.raw)
	}

	// Over gRPC: one byte over 64 MiB of files is INVALID_ARGUMENT naming files and the limit.
	_, err := c.CreateImport(admin, &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{
		{Name: "a.json", Content: make([]byte, 32<<20)}, {Name: "b.json", Content: make([]byte, 32<<20+1)}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprint(MaxImportBytes)) {
		t.Errorf("64 MiB + 1 of files: %v, want INVALID_ARGUMENT naming %d", err, MaxImportBytes)
	}
	// The token and the role are checked before a message is read: a
	// message over what gRPC receives at all is refused for its caller, not
	// for its size.
	huge := &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{{Name: "a.json", Content: make([]byte, importMessageBytes)}}}
	if _, err := c.CreateImport(context.Background(), huge); status.Code(err) != codes.Unauthenticated {
		t.Errorf("65 MiB message without a token: %v, want UNAUTHENTICATED before it is read", err)
	}
	if _, err := c.CreateImport(h.as(t, auth.Auditor, ""), huge); status.Code(err) != codes.PermissionDenied {
		t.Errorf("65 MiB message from an auditor: %v, want PERMISSION_DENIED before it is read", err)
	}
	// Far over: refused by gRPC itself, before decoding.
	_, err = c.CreateImport(admin, &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{
		{Name: "a.json", Content: make([]byte, importMessageBytes)}}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("65 MiB message: %v, want RESOURCE_EXHAUSTED", err)
	}
	// Any other method: over 16 MiB is RESOURCE_EXHAUSTED, before validation.
	_, err = pb.NewOrganizationServiceClient(h.conn).CreateOrganization(admin, &pb.CreateOrganizationRequest{RequestId: "x",
		Organization: &pb.Organization{Name: strings.Repeat("a", maxMessageBytes), Kind: "DONOR"}})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), fmt.Sprint(maxMessageBytes)) {
		t.Errorf("16 MiB organisation: %v, want RESOURCE_EXHAUSTED naming %d", err, maxMessageBytes)
	}
}

// Bad requests name the field, over REST and gRPC.
func TestImportBadRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	secret := "Bearer " + h.secret(t, auth.Coordinator, "")
	c := pb.NewImportServiceClient(h.conn)
	id := uuid.NewString()
	file := []*pb.ImportFile{{Name: "f.json", Content: []byte("{}")}}
	content := base64.StdEncoding.EncodeToString([]byte("{}"))
	for _, tc := range []struct {
		name  string
		req   *pb.CreateImportRequest
		field string
	}{
		{"bad kind", &pb.CreateImportRequest{Kind: "xls", Files: file}, "kind"},
		{"no kind", &pb.CreateImportRequest{Files: file}, "kind"},
		{"bad roadmap id", &pb.CreateImportRequest{Kind: "fts", RoadmapId: "nope", Files: file}, "roadmapId"},
		{"nil roadmap id", &pb.CreateImportRequest{Kind: "iati", RoadmapId: uuid.Nil.String(), Files: file}, "roadmapId"},
		{"bad grant id", &pb.CreateImportRequest{Kind: "ocds", GrantId: id + "x", Files: file}, "grantId"},
		{"bad milestone id", &pb.CreateImportRequest{Kind: "ocds", GrantId: id, MilestoneId: "m-1", Files: file}, "milestoneId"},
		{"ocds without a grant", &pb.CreateImportRequest{Kind: "ocds", Files: file}, "grantId"},
		{"ocds into a roadmap", &pb.CreateImportRequest{Kind: "ocds", GrantId: id, RoadmapId: id, Files: file}, "roadmapId"},
		{"fts into a grant", &pb.CreateImportRequest{Kind: "fts", GrantId: id, Files: file}, "grantId"},
		{"iati with a milestone", &pb.CreateImportRequest{Kind: "iati", MilestoneId: id, Files: file}, "milestoneId"},
		{"existing roadmap and a new country", &pb.CreateImportRequest{Kind: "fts", RoadmapId: id, NewRoadmapCountry: "AFG", Files: file}, "newRoadmapCountry"},
		{"bad country", &pb.CreateImportRequest{Kind: "fts", NewRoadmapCountry: "Afghanistan", Files: file}, "newRoadmapCountry"},
		{"no files", &pb.CreateImportRequest{Kind: "fts"}, "files"},
		{"empty file", &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{{Name: "f.json"}}}, "files[0].content"},
		{"no file name", &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{{Content: []byte("{}")}}}, "files[0].name"},
		{"NUL in a file name", &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{{Name: "f\x00.json", Content: []byte("{}")}}}, "files[0].name"},
		{"same name twice", &pb.CreateImportRequest{Kind: "fts", Files: []*pb.ImportFile{{Name: "f", Content: []byte("1")}, {Name: "f", Content: []byte("2")}}}, "files[1].name"},
	} {
		_, err := c.CreateImport(admin, tc.req)
		if status.Code(err) != codes.InvalidArgument || !slices.Contains(fields(t, err), tc.field) {
			t.Errorf("gRPC %s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
	for _, tc := range []struct {
		name, body, field string
	}{
		{"unknown field", `{"kind": "fts", "files": [{"name": "f", "content": "` + content + `"}], "bogus": 1}`, "bogus"},
		{"unknown file field", `{"kind": "fts", "files": [{"name": "f", "content": "` + content + `", "path": "/etc/passwd"}]}`, "files[0].path"},
		{"bad kind", `{"kind": "xls", "files": [{"name": "f", "content": "` + content + `"}]}`, "kind"},
		{"bad uuid", `{"kind": "fts", "roadmapId": "nope", "files": [{"name": "f", "content": "` + content + `"}]}`, "roadmapId"},
		{"NUL in a file name", `{"kind": "fts", "files": [{"name": "f\u0000", "content": "` + content + `"}]}`, "files[0].name"},
		{"content not base64", `{"kind": "fts", "files": [{"name": "f", "content": "not base64!"}]}`, "files[0].content"},
	} {
		r := h.rest(t, "POST", importPath, secret, strings.NewReader(tc.body))
		if r.code != 400 || !slices.Contains(fieldsOf(r), tc.field) {
			t.Errorf("REST %s: %d %.400s, want 400 naming %s", tc.name, r.code, r.raw, tc.field)
		}
	}
	// The export's path and query.
	for _, tc := range []struct{ path, field string }{
		{"/v1/roadmaps/nope/iati", "roadmapId"},
		{"/v1/roadmaps/" + uuid.Nil.String() + "/iati", "roadmapId"},
		{"/v1/roadmaps/" + id + "%00/iati", "roadmapId"},
		{"/v1/roadmaps/" + id + "/iati?format=csv", "format"},
		{"/v1/roadmaps/" + id + "/iati?roadmapId=" + id, "roadmapId"},
	} {
		r := h.rest(t, "GET", tc.path, secret, nil)
		if r.code != 400 || !slices.Contains(fieldsOf(r), tc.field) {
			t.Errorf("REST GET %s: %d %.400s, want 400 naming %s", tc.path, r.code, r.raw, tc.field)
		}
	}
}

// Problems that refuse an import are INVALID_ARGUMENT violations named
// record.field, bounded in number.
func TestProblemsError(t *testing.T) {
	t.Parallel()
	var ps []imports.Problem
	for i := range maxProblemViolations + 5 {
		ps = append(ps, imports.Problem{Record: fmt.Sprintf("flow %d", i), Field: "amountUSD", Message: "not a number"})
	}
	ps[1].Field = ""
	st := status.Convert(toStatus(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), ProblemsError(ps)))
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("%v, want INVALID_ARGUMENT", st.Code())
	}
	var inv *apperr.InvalidError
	if !errors.As(ProblemsError(ps), &inv) {
		t.Fatal("not an InvalidError")
	}
	vs := inv.Violations
	if len(vs) != maxProblemViolations+1 {
		t.Fatalf("%d violations, want %d", len(vs), maxProblemViolations+1)
	}
	if vs[0].Field != "flow 0.amountUSD" || vs[0].Description != "not a number" || vs[1].Field != "flow 1" {
		t.Errorf("first violations: %+v", vs[:2])
	}
	if last := vs[len(vs)-1]; !strings.Contains(last.Description, "5 more problems") {
		t.Errorf("last violation: %+v", last)
	}
}

// Every field of the import report reaches the API's message.
func TestReportPBMapsEveryField(t *testing.T) {
	t.Parallel()
	d := decimal.RequireFromString("1234.56")
	rep := &imports.Report{RunID: "run", Kind: "fts", DryRun: true, RoadmapID: "rm", RoadmapCreated: true, GrantID: "g",
		Files:   []imports.FileReport{{Name: "f", SHA256: "ab", Records: 3, AlreadyImported: true}},
		Records: 1, Unchanged: 2, Corrected: 3, OrganizationsCreated: 4, OrganizationsMatched: 5, GrantsCreated: 6,
		GrantsMatched: 7, EntriesCreated: 8, EntriesReversed: 9, ProcurementItemsCreated: 10,
		Totals:             []imports.Total{{Name: "t", Currency: "USD", Source: d, Computed: d, Matches: true}},
		NotCounted:         []imports.Note{{Record: "r", Reason: "pledge", Amount: d, Currency: "USD"}},
		Skipped:            []imports.Problem{{Record: "r", Field: "f", Message: "m"}},
		Problems:           []imports.Problem{{Record: "r", Field: "f", Message: "m"}},
		Rounded:            []imports.Rounded{{Record: "r", Field: "f", Source: "1.005", Stored: "1.00"}},
		Variances:          []imports.Variance{{Record: "r", ReportedUSD: d, ComputedUSD: d, Difference: d}},
		RepeatedReferences: []imports.RefGroup{{Code: "c", Kind: "k", Records: []string{"a", "b"}, Explanation: "e", Flagged: true}},
		Inconsistencies:    []imports.Problem{{Record: "r", Field: "f", Message: "m"}},
		Notes:              []string{"n"},
	}
	var unset []string
	var walk func(m protoreflect.Message, path string)
	walk = func(m protoreflect.Message, path string) {
		fs := m.Descriptor().Fields()
		for i := range fs.Len() {
			fd := fs.Get(i)
			if !m.Has(fd) {
				unset = append(unset, path+string(fd.Name()))
				continue
			}
			if fd.IsList() && fd.Message() != nil {
				walk(m.Get(fd).List().Get(0).Message(), path+string(fd.Name())+".")
			}
		}
	}
	out := ReportPB(rep)
	walk(out.ProtoReflect(), "")
	if len(unset) > 0 {
		t.Errorf("fields left unset: %v", unset)
	}
	if out.Totals[0].Source != "1234.56" || out.Variances[0].Difference != "1234.56" || out.NotCounted[0].Amount != "1234.56" {
		t.Errorf("decimals: %v", out)
	}
}

// Grants and journal entries that came from an import carry their
// provenance; those entered through the API carry none.
func TestProvenanceOnGrantsAndTransactions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	fx := h.fixture(t, admin)
	grants := pb.NewGrantServiceClient(h.conn)
	ctx := context.Background()
	txs, err := grants.ListTransactions(admin, &pb.ListTransactionsRequest{GrantId: fx.grantID})
	if err != nil || len(txs.Transactions) == 0 {
		t.Fatalf("%v %v", txs, err)
	}
	txID := txs.Transactions[0].Id
	// A run and provenance rows as an import writes them.
	run := uuid.New()
	sum := bytes.Repeat([]byte{0xab}, 32)
	if _, err := h.db.App.Exec(ctx, `INSERT INTO import_runs (id, source_kind, scope_id, actor, actor_role, report)
		VALUES ($1, 'fts', $2, 'test', 'admin', '{}')`, run, fx.roadmapID); err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct{ entity, id, record string }{{imports.EntityGrant, fx.grantID, "flow 1"}, {imports.EntityTransaction, txID, "flow 1/commitment"}} {
		if _, err := h.db.App.Exec(ctx, `INSERT INTO provenance (entity_type, entity_id, run_id, source_kind, scope_id, file_sha256,
				record_id, record_version, position, content_sha256, inferred, source_values)
			VALUES ($1, $2, $3, 'fts', $4, $5, $6, '2', 'data.flows[0]', $5, '{recipient}', '{"amountUSD": "1000.004"}')`,
			row.entity, row.id, run, fx.roadmapID, sum, row.record); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, p *pb.Provenance, record string) {
		t.Helper()
		if p == nil {
			t.Errorf("%s: no provenance", what)
			return
		}
		if p.SourceKind != "fts" || p.RecordId != record || p.RecordVersion != "2" || p.Position != "data.flows[0]" ||
			p.FileSha256 != strings.Repeat("ab", 32) || p.RunId != run.String() || !slices.Equal(p.Inferred, []string{"recipient"}) ||
			p.SourceValues["amountUSD"] != "1000.004" || p.ImportedAt == nil || time.Since(p.ImportedAt.AsTime()) > time.Hour {
			t.Errorf("%s: %v", what, p)
		}
	}
	g, err := grants.GetGrant(admin, &pb.GetGrantRequest{GrantId: fx.grantID})
	if err != nil {
		t.Fatal(err)
	}
	check("GetGrant", g.Grant.Provenance, "flow 1")
	list, err := grants.ListGrants(admin, &pb.ListGrantsRequest{RoadmapId: fx.roadmapID})
	if err != nil || len(list.Grants) != 1 {
		t.Fatalf("%v %v", list, err)
	}
	check("ListGrants", list.Grants[0].Provenance, "flow 1")
	txs, err = grants.ListTransactions(admin, &pb.ListTransactionsRequest{GrantId: fx.grantID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txs.Transactions {
		if tx.Id == txID {
			check("ListTransactions", tx.Provenance, "flow 1/commitment")
		} else if tx.Provenance != nil {
			t.Errorf("entry %s recorded through the API has provenance %v", tx.Id, tx.Provenance)
		}
	}
	// A grant created through the API has none.
	other := h.fixture(t, h.as(t, auth.Admin, ""))
	g, err = grants.GetGrant(admin, &pb.GetGrantRequest{GrantId: other.grantID})
	if err != nil || g.Grant.Provenance != nil {
		t.Errorf("API grant: %v %v", g, err)
	}
	// Over REST too.
	r := h.rest(t, "GET", "/v1/grants/"+fx.grantID, "Bearer "+h.secret(t, auth.Admin, ""), nil)
	grant, _ := r.body["grant"].(map[string]any)
	if p, _ := grant["provenance"].(map[string]any); r.code != 200 || p["recordId"] != "flow 1" {
		t.Errorf("REST GetGrant: %d %.500s", r.code, r.raw)
	}
}

// The OpenAPI document lists the import and the export.
func TestOpenAPIListsImports(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.rest(t, "GET", "/openapi.json", "", nil)
	for _, p := range []string{`"/v1/imports"`, `"/v1/roadmaps/{roadmapId}/iati"`, `"ftsOrgId"`, `"provenance"`} {
		if !strings.Contains(r.raw, p) {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
}

// exportStamp matches the times an IATI export is stamped with (generated
// now, to the second): two exports a second apart differ there only.
var exportStamp = regexp.MustCompile(`(generated|last-updated)-datetime="[^"]*"`)
