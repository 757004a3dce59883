package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/shopspring/decimal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/imports"
)

// Size limits. An import carries whole source files: a country's FTS flows
// or a donor's IATI activities run to tens of megabytes, so CreateImport
// takes up to MaxImportBytes of files, and only it: every other request
// keeps the usual limits (maxBodyBytes over REST, maxMessageBytes over gRPC).
const (
	// MaxImportBytes bounds the files of one import, together.
	MaxImportBytes = 64 << 20
	// importMessageBytes bounds a CreateImport message over gRPC: the files
	// and a margin for their names and the other fields.
	importMessageBytes = MaxImportBytes + 1<<20
	// importBodyBytes bounds a CreateImport body over REST: the files in
	// base64 (4 characters for 3 bytes) and the same margin.
	importBodyBytes = MaxImportBytes/3*4 + 4 + 1<<20
	// maxMessageBytes bounds every other gRPC request message.
	maxMessageBytes = 16 << 20
)

const (
	importPath      = "/v1/imports"
	importMethod    = "/tranche.v1.ImportService/CreateImport"
	iatiExportPath  = "/v1/roadmaps/{roadmap_id}/iati"
	iatiExportRPC   = "/tranche.v1.ImportService/ExportIati"
	iatiContentType = "application/xml"
)

// mayImport says whether the principal may run an import: admins and
// coordinators over the API, the operator from the CLI. The interceptor
// (gRPC) and the edge (REST) check it before the request's files are read
// or checked.
func mayImport(p auth.Principal) error {
	if !p.Can(auth.Coordinator) {
		return fmt.Errorf("imports are run by admins and coordinators: %w", apperr.ErrPermissionDenied)
	}
	return nil
}

// checkMethod refuses, before the request is checked, a call the caller's
// role may not make at all, and a request message over its method's size
// limit. gRPC itself receives messages up to importMessageBytes, for
// CreateImport; every other method is held to maxMessageBytes here.
func checkMethod(ctx context.Context, method string, req any) error {
	if method == importMethod {
		return mayImport(auth.FromContext(ctx))
	}
	if m, ok := req.(proto.Message); ok {
		if n := proto.Size(m); n > maxMessageBytes {
			return status.Errorf(codes.ResourceExhausted, "request message of %d bytes is larger than the %d bytes this method takes", n, maxMessageBytes)
		}
	}
	return nil
}

type importService struct {
	pb.UnimplementedImportServiceServer
	imports *imports.Store
	// tempDir is where export files are built; empty: the system's.
	tempDir string
	// chunk is the size of a streamed piece; 0: packChunk.
	chunk int
}

// ImportRequest reads a CreateImport request into an imports.Request, naming
// every bad field (the CLI's tranche import reads its flags with it too).
// Which scope fields a kind takes: fts and iati a roadmapId, or none and
// optionally newRoadmapCountry and newRoadmapTitle for the roadmap they
// create; ocds a grantId (required) and a milestoneId.
func ImportRequest(req *pb.CreateImportRequest) (imports.Request, error) {
	var p parser
	out := imports.Request{Kind: req.GetKind(), RoadmapID: p.id("roadmapId", req.GetRoadmapId()),
		GrantID: p.id("grantId", req.GetGrantId()), MilestoneID: p.id("milestoneId", req.GetMilestoneId()),
		NewRoadmap: imports.RoadmapHint{Country: req.GetNewRoadmapCountry(), Title: req.GetNewRoadmapTitle()},
		DryRun:     req.GetDryRun(), SkipInvalid: req.GetSkipInvalid()}
	switch req.GetKind() {
	case imports.FTS, imports.IATI:
		if req.GetGrantId() != "" {
			p.add("grantId", "a %s import goes into a roadmap (roadmapId), not a grant", req.GetKind())
		}
		if req.GetMilestoneId() != "" {
			p.add("milestoneId", "a %s import goes into a roadmap (roadmapId), not a milestone", req.GetKind())
		}
		if req.GetRoadmapId() != "" && req.GetNewRoadmapCountry() != "" {
			p.add("newRoadmapCountry", "only for a roadmap the import creates; roadmapId names an existing one")
		}
		if req.GetRoadmapId() != "" && req.GetNewRoadmapTitle() != "" {
			p.add("newRoadmapTitle", "only for a roadmap the import creates; roadmapId names an existing one")
		}
	case imports.OCDS:
		if req.GetGrantId() == "" {
			p.add("grantId", "is required: an ocds import's procurement items belong to a grant")
		}
		if req.GetRoadmapId() != "" {
			p.add("roadmapId", "an ocds import goes into a grant (grantId), not a roadmap")
		}
		if req.GetNewRoadmapCountry() != "" || req.GetNewRoadmapTitle() != "" {
			p.add("newRoadmapTitle", "an ocds import creates no roadmap")
		}
	default:
		p.add("kind", "must be one of fts, iati, ocds: %q", req.GetKind())
	}
	if len(req.GetFiles()) == 0 {
		p.add("files", "at least one file is required")
	}
	if c := req.GetNewRoadmapCountry(); c != "" && !countryRE.MatchString(c) {
		p.add("newRoadmapCountry", "not an ISO 3166-1 alpha-3 code (AFG): %q", c)
	}
	if t := req.GetNewRoadmapTitle(); utf8.RuneCountInString(t) > 300 {
		p.add("newRoadmapTitle", "longer than 300 characters")
	}
	seen := map[string]int{}
	for i, f := range req.GetFiles() {
		switch {
		case f.GetName() == "":
			p.add(fmt.Sprintf("files[%d].name", i), "is required")
		case seen[f.GetName()] > 0:
			p.add(fmt.Sprintf("files[%d].name", i), "%q is also the name of files[%d]", f.GetName(), seen[f.GetName()]-1)
		default:
			seen[f.GetName()] = i + 1
		}
		if len(f.GetContent()) == 0 {
			p.add(fmt.Sprintf("files[%d].content", i), "is empty")
		}
		out.Files = append(out.Files, imports.File{Name: f.GetName(), Data: f.GetContent()})
	}
	if err := p.err(); err != nil {
		return imports.Request{}, err
	}
	return out, nil
}

// checkImportSize refuses files over MaxImportBytes together (the API's
// limit; the CLI reads files of any size).
func checkImportSize(req *pb.CreateImportRequest) error {
	total := 0
	for _, f := range req.GetFiles() {
		total += len(f.GetContent())
	}
	if total > MaxImportBytes {
		// A bad request, not a shortage to retry later (RESOURCE_EXHAUSTED
		// would be 429 over REST).
		return apperr.Invalid("files", "the files are %d bytes together, more than the %d bytes (64 MiB) an import takes", total, MaxImportBytes)
	}
	return nil
}

// maxProblemViolations bounds the field violations of a refused import: a
// file of 100 000 bad records would otherwise answer a trailer of megabytes.
// The rest are counted in a last violation; the report (CLI, dry run with
// skipInvalid) lists them all.
const maxProblemViolations = 200

// ProblemsError is the INVALID_ARGUMENT error of an import its problems
// refuse: one violation per problem, its field named record.field.
func ProblemsError(problems []imports.Problem) error {
	n := min(len(problems), maxProblemViolations)
	vs := make([]apperr.Violation, 0, n+1)
	for _, pr := range problems[:n] {
		field := pr.Record
		if pr.Field != "" {
			field += "." + pr.Field
		}
		vs = append(vs, apperr.Violation{Field: field, Description: pr.Message})
	}
	if len(problems) > n {
		vs = append(vs, apperr.Violation{Field: "files",
			Description: fmt.Sprintf("%d more problems; a dry run with skipInvalid lists them all", len(problems)-n)})
	}
	return &apperr.InvalidError{Violations: vs}
}

// CreateImport runs an import. The caller's role was checked before the
// request was (checkMethod).
func (s *importService) CreateImport(ctx context.Context, req *pb.CreateImportRequest) (*pb.CreateImportResponse, error) {
	if err := checkImportSize(req); err != nil {
		return nil, err
	}
	in, err := ImportRequest(req)
	if err != nil {
		return nil, err
	}
	rep, err := s.imports.Run(ctx, in)
	if err != nil {
		var inv *apperr.InvalidError
		if rep != nil && len(rep.Problems) > 0 && (errors.As(err, &inv) || status.Code(err) == codes.InvalidArgument) {
			return nil, ProblemsError(rep.Problems)
		}
		return nil, fmt.Errorf("import: %w", err)
	}
	return &pb.CreateImportResponse{Report: ReportPB(rep)}, nil
}

func decString(d decimal.Decimal) string { return d.String() }

func problemsPB(list []imports.Problem) []*pb.ImportProblem {
	out := make([]*pb.ImportProblem, len(list))
	for i, p := range list {
		out[i] = &pb.ImportProblem{Record: p.Record, Field: p.Field, Message: p.Message}
	}
	return out
}

// ReportPB is an import report as the API answers it, field by field;
// decimals as their strings.
func ReportPB(r *imports.Report) *pb.ImportReport {
	if r == nil {
		return nil
	}
	out := &pb.ImportReport{RunId: r.RunID, Kind: r.Kind, DryRun: r.DryRun, RoadmapId: r.RoadmapID,
		RoadmapCreated: r.RoadmapCreated, GrantId: r.GrantID,
		Records: int32(r.Records), Unchanged: int32(r.Unchanged), Corrected: int32(r.Corrected),
		OrganizationsCreated: int32(r.OrganizationsCreated), OrganizationsMatched: int32(r.OrganizationsMatched),
		GrantsCreated: int32(r.GrantsCreated), GrantsMatched: int32(r.GrantsMatched),
		EntriesCreated: int32(r.EntriesCreated), EntriesReversed: int32(r.EntriesReversed),
		ProcurementItemsCreated: int32(r.ProcurementItemsCreated),
		Skipped:                 problemsPB(r.Skipped), Problems: problemsPB(r.Problems),
		Inconsistencies: problemsPB(r.Inconsistencies), Notes: append([]string(nil), r.Notes...)}
	for _, f := range r.Files {
		out.Files = append(out.Files, &pb.ImportFileReport{Name: f.Name, Sha256: f.SHA256, Records: int32(f.Records),
			AlreadyImported: f.AlreadyImported})
	}
	for _, t := range r.Totals {
		out.Totals = append(out.Totals, &pb.ImportTotal{Name: t.Name, Currency: t.Currency, Source: decString(t.Source),
			Computed: decString(t.Computed), Matches: t.Matches})
	}
	for _, n := range r.NotCounted {
		out.NotCounted = append(out.NotCounted, &pb.ImportNote{Record: n.Record, Reason: n.Reason, Amount: decString(n.Amount),
			Currency: n.Currency})
	}
	for _, x := range r.Rounded {
		out.Rounded = append(out.Rounded, &pb.ImportRounded{Record: x.Record, Field: x.Field, Source: x.Source, Stored: x.Stored})
	}
	for _, v := range r.Variances {
		out.Variances = append(out.Variances, &pb.ImportVariance{Record: v.Record, ReportedUsd: decString(v.ReportedUSD),
			ComputedUsd: decString(v.ComputedUSD), Difference: decString(v.Difference)})
	}
	for _, g := range r.RepeatedReferences {
		out.RepeatedReferences = append(out.RepeatedReferences, &pb.ImportRefGroup{Code: g.Code, Kind: g.Kind,
			Records: append([]string(nil), g.Records...), Explanation: g.Explanation, Flagged: g.Flagged})
	}
	return out
}

// ProvenancePB is a record's provenance as the API answers it.
func ProvenancePB(p imports.Provenance) *pb.Provenance {
	out := &pb.Provenance{SourceKind: p.SourceKind, FileSha256: p.FileSHA256, RecordId: p.RecordID,
		RecordVersion: p.RecordVersion, Position: p.Position, Inferred: append([]string(nil), p.Inferred...),
		SourceValues: p.SourceValues, RunId: p.RunID}
	if !p.ImportedAt.IsZero() {
		out.ImportedAt = timestamppb.New(p.ImportedAt)
	}
	return out
}

// IATIFileName names a roadmap's IATI export.
func IATIFileName(roadmapID uuid.UUID) string { return "roadmap-" + roadmapID.String() + "-iati.xml" }

// ExportRoadmapID reads the roadmap of an export (the CLI's tranche export
// reads its flag with it too).
func ExportRoadmapID(req *pb.ExportIatiRequest) (uuid.UUID, error) {
	var p parser
	id := p.id("roadmapId", req.GetRoadmapId())
	if req.GetRoadmapId() == "" {
		p.add("roadmapId", "is required")
	}
	return id, p.err()
}

// ExportIati writes the export into a temporary file, then streams it, as
// DownloadAuditPack does and for the same reasons: a failure anywhere in
// the export is an ordinary error status, never a truncated file that looks
// complete, and the size and SHA-256 are known before the first byte.
func (s *importService) ExportIati(req *pb.ExportIatiRequest, stream grpc.ServerStreamingServer[pb.ExportIatiResponse]) error {
	ctx := stream.Context()
	id, err := ExportRoadmapID(req)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.tempDir, "tranche-iati-*.xml")
	if err != nil {
		return fmt.Errorf("IATI export: temporary file: %w", err)
	}
	defer f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("IATI export: temporary file: %w", err)
	}
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 256<<10)
	if err := s.imports.ExportIATI(ctx, bw, id); err != nil {
		return fmt.Errorf("IATI export of roadmap %s: %w", id, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("IATI export: writing the temporary file: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, packChunk)
	if s.chunk > 0 {
		buf = buf[:s.chunk]
	}
	first := &pb.ExportIatiResponse{ContentType: iatiContentType, FileName: IATIFileName(id), Size: size,
		Sha256: hex.EncodeToString(sum.Sum(nil))}
	for sent := false; ; sent = true {
		n, rerr := io.ReadFull(f, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return fmt.Errorf("IATI export: reading the temporary file: %w", rerr)
		}
		if n == 0 && sent {
			return nil
		}
		msg := &pb.ExportIatiResponse{Data: buf[:n]}
		if !sent {
			first.Data, msg = buf[:n], first
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		if n < len(buf) {
			return nil
		}
	}
}

var countryRE = regexp.MustCompile(`^[A-Z]{3}$`)

// iatiQueryFilter filters nothing: a roadmapId in the query is read, and refused.
var iatiQueryFilter = utilities.NewDoubleArray(nil)

// iatiExport answers GET /v1/roadmaps/{roadmapId}/iati with the file
// itself, calling ExportIati through the gateway's client connection so the
// interceptors apply, exactly as packDownload does for audit packs.
func (s *Server) iatiExport(mux *runtime.ServeMux, conn *grpc.ClientConn) runtime.HandlerFunc {
	client := pb.NewImportServiceClient(conn)
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		_, out := runtime.MarshalerForRequest(mux, r)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		ctx, err := runtime.AnnotateContext(ctx, mux, r, iatiExportRPC, runtime.WithHTTPPathPattern(iatiExportPath))
		if err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		var req pb.ExportIatiRequest
		if err := (strictQuery{}).Parse(&req, r.URL.Query(), iatiQueryFilter); err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		if req.RoadmapId != "" {
			// The path names the roadmap; a second one in the query would be
			// silently one or the other.
			runtime.HTTPError(ctx, mux, out, w, r, apperr.Invalid("roadmapId", "given in the path; leave it out of the query"))
			return
		}
		req.RoadmapId = pathParams["roadmap_id"]
		stream, err := client.ExportIati(ctx, &req)
		if err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		streamFile(s, ctx, mux, out, w, r, stream, "IATI export")
	}
}
