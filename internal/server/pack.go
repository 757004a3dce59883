package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/reports"
)

// PackContentType is the media type of an audit pack.
const PackContentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// packChunk is the size of one streamed piece of a pack: well under gRPC's
// default 4 MiB message limit, large enough that framing costs nothing.
const packChunk = 64 << 10

const (
	packPath   = "/v1/audit-packs:download"
	packMethod = "/tranche.v1.AuditPackService/DownloadAuditPack"
)

type packService struct {
	pb.UnimplementedAuditPackServiceServer
	src    reports.Source
	grants *ledger.Store
	// tempDir is where packs are built; empty: the system's (os.TempDir).
	tempDir string
	// chunk is the size of a piece; 0: packChunk (tests set less).
	chunk int
	// slots bounds the packs built at once (nil: no bound). A build holds
	// its snapshot's connection while it asks the pool for more (sealing,
	// the chain head, the verification running alongside): unbounded, as
	// many builds as pool connections would each hold one and wait for
	// another, and the whole service would stop.
	slots chan struct{}
	// waiting counts the calls waiting for a slot, bounded by maxPackWaiting.
	waiting atomic.Int32
}

// Concurrent pack builds and the calls that may queue for one. Two builds
// use the two cores; a third waits (for as long as its client does) among
// at most maxPackWaiting others; more are RESOURCE_EXHAUSTED at once.
const (
	packBuilds     = 2
	maxPackWaiting = 8
)

// acquire takes a build slot, waiting while the client does.
func (s *packService) acquire(ctx context.Context) (release func(), err error) {
	if s.slots == nil {
		return func() {}, nil
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
	}
	if s.waiting.Add(1) > maxPackWaiting {
		s.waiting.Add(-1)
		return nil, status.Errorf(codes.ResourceExhausted, "%d audit packs are being built and %d more are waiting; retry later", packBuilds, maxPackWaiting)
	}
	defer s.waiting.Add(-1)
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// DownloadAuditPack checks the request and the caller's right to the scope,
// builds the whole pack into a temporary file and only then streams it.
//
// Decision: a temporary file, not a pipe. reports.Write reads every row
// before it writes its first byte, so a pipe would gain no time to first
// byte, and with the file a failure anywhere in the build (a database error,
// a cancelled snapshot) is still an ordinary error status, never a truncated
// file that looks complete; the size and SHA-256 are known up front, so the
// REST answer has a Content-Length and a Repr-Digest. Memory stays flat: the
// file is written through a small buffer and read back in packChunk pieces.
// The file is created 0600 in the system's temporary directory and unlinked
// at once, so it is gone when the call ends, however it ends, even if the
// process is killed.
func (s *packService) DownloadAuditPack(req *pb.DownloadAuditPackRequest, stream grpc.ServerStreamingServer[pb.DownloadAuditPackResponse]) (err error) {
	ctx := stream.Context()
	// "Now" is the database's clock, which dates the rows (reports.Source.Now).
	now, err := s.src.Now(ctx)
	if err != nil {
		return err
	}
	scope, err := PackScope(req, now)
	if err != nil {
		return err
	}
	if err := AuthorisePack(ctx, s.grants, &scope); err != nil {
		return err
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	var once sync.Once
	done := func() { once.Do(release) } // the slot is for building, not for a slow client's download
	defer done()
	if req.GetAsOf() == "" {
		// "Now" once a slot is free, not when the call came: a pack of now
		// waits for the writers open at its as-of (reports settle) only
		// while that as-of is recent.
		if scope.AsOf, err = s.src.Now(ctx); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(s.tempDir, "tranche-pack-*.xlsx")
	if err != nil {
		return fmt.Errorf("audit pack: temporary file: %w", err)
	}
	defer f.Close()
	// Unlinked at once: the open file is all the build needs, and a server
	// killed mid-build leaves no copy of anyone's records behind.
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("audit pack: temporary file: %w", err)
	}
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 256<<10)
	if err := reports.Write(ctx, bw, s.src, scope); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit pack: writing the temporary file: %w", err)
	}
	done()
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	first := &pb.DownloadAuditPackResponse{ContentType: PackContentType, FileName: PackFileName(scope),
		Size: size, Sha256: hex.EncodeToString(sum.Sum(nil))}
	buf := make([]byte, packChunk)
	if s.chunk > 0 {
		buf = buf[:s.chunk]
	}
	for sent := false; ; sent = true {
		n, rerr := io.ReadFull(f, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return fmt.Errorf("audit pack: reading the temporary file: %w", rerr)
		}
		if n == 0 && sent {
			return nil
		}
		msg := &pb.DownloadAuditPackResponse{Data: buf[:n]}
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

// PackScope reads a request into a pack scope, naming every bad field (the
// CLI's tranche pack reads its flags with it too). The as-of time defaults to now and is fixed here, truncated as reports.Write
// truncates it, so that the file name and the pack's Cover agree.
func PackScope(req *pb.DownloadAuditPackRequest, now time.Time) (reports.Scope, error) {
	var p parser
	sc := reports.Scope{
		RoadmapID: p.id("roadmapId", req.GetRoadmapId()), DonorOrgID: p.id("donorOrgId", req.GetDonorOrgId()),
		GrantID: p.id("grantId", req.GetGrantId()),
		From:    p.date("from", req.GetFrom()), To: p.date("to", req.GetTo()),
	}
	if req.GetRoadmapId() == "" {
		p.add("roadmapId", "is required")
	}
	p.v.Date("from", sc.From, false)
	p.v.Date("to", sc.To, false)
	if !sc.From.IsZero() && !sc.To.IsZero() && sc.To.Before(sc.From) {
		p.add("to", "%s is before from %s", req.GetTo(), req.GetFrom())
	}
	sc.AsOf = p.asOf("asOf", req.GetAsOf(), now)
	if err := p.err(); err != nil {
		return reports.Scope{}, err
	}
	if sc.AsOf.IsZero() {
		sc.AsOf = now
	}
	sc.AsOf = sc.AsOf.UTC().Truncate(time.Microsecond)
	return sc, nil
}

// asOf reads an RFC 3339 point in time no later than now and no earlier than
// the first date the service accepts; empty is the zero time. Decision: a
// future as-of is refused, not clamped: a pack "as of" a time that has not
// come yet would change when the rows of that time arrive, and two downloads
// of it would differ.
func (p *parser) asOf(field, s string, now time.Time) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	switch {
	case err != nil:
		p.add(field, "not an RFC 3339 time (2024-07-01T12:00:00Z): %q", s)
	case offsetOutOfRange(t):
		p.add(field, "%q has a UTC offset beyond ±23:59", s)
	case t.Before(apperr.Earliest):
		p.add(field, "%s is before %s", s, apperr.Earliest.Format(time.DateOnly))
	case t.After(now):
		p.add(field, "%s is in the future", s)
	default:
		return t
	}
	return time.Time{}
}

// offsetOutOfRange: Go's parser takes offsets up to ±99:59; RFC 3339's
// time-numoffset is hours 00–23.
func offsetOutOfRange(t time.Time) bool {
	_, off := t.Zone()
	return off <= -24*3600 || off >= 24*3600
}

// AuthorisePack checks that the caller (the principal of ctx) may read the
// whole scope, before anything is built: auditors, coordinators and admins any scope; a donor
// only a scope narrowed to itself (its organisation as donorOrgId, or a
// grant it gives); an implementer only a grant it receives. A grant the
// caller may not read is NOT_FOUND, as everywhere else, so a donor learns
// nothing of another donor's grants.
//
// A donor's scope is always narrowed to its organisation, even when it names
// only a grant: the pack then says on its Cover whose it is. An
// implementer's pack is that of the grant it names; a grant has one
// recipient, so it holds nothing of other implementers' grants.
//
// A grant of another roadmap, or of another donor than donorOrgId, is
// INVALID_ARGUMENT: such a scope is empty, and an empty pack would read as
// "nothing happened" when the request was a typo.
func AuthorisePack(ctx context.Context, grants *ledger.Store, sc *reports.Scope) error {
	p := auth.FromContext(ctx)
	var g *ledger.Grant
	if sc.GrantID != uuid.Nil {
		got, err := grants.GetGrant(ctx, sc.GrantID)
		if err != nil {
			return fmt.Errorf("grantId: %w", err)
		}
		g = &got
	}
	switch {
	case p.Can(auth.Coordinator, auth.Auditor):
	case p.Role == auth.Donor:
		if sc.DonorOrgID != uuid.Nil && sc.DonorOrgID.String() != p.OrgID {
			return fmt.Errorf("a donor downloads only packs narrowed to its own organisation (donorOrgId %s): %w", p.OrgID, apperr.ErrPermissionDenied)
		}
		if sc.DonorOrgID == uuid.Nil && g == nil {
			return fmt.Errorf("a donor downloads only packs narrowed to itself: give donorOrgId %s or a grantId of its own grant: %w", p.OrgID, apperr.ErrPermissionDenied)
		}
		own, err := uuid.Parse(p.OrgID)
		if err != nil {
			return fmt.Errorf("donor token without an organisation: %w", apperr.ErrPermissionDenied)
		}
		sc.DonorOrgID = own
	case p.Role == auth.Implementer:
		if g == nil {
			return fmt.Errorf("an implementer downloads only the pack of a grant it receives (grantId): %w", apperr.ErrPermissionDenied)
		}
	default:
		return fmt.Errorf("audit packs: %w", apperr.ErrPermissionDenied)
	}
	if g != nil {
		var v apperr.Validator
		v.Check(g.RoadmapID == sc.RoadmapID.String(), "grantId", "grant %s is a grant of another roadmap than %s", g.ID, sc.RoadmapID)
		v.Check(sc.DonorOrgID == uuid.Nil || g.DonorOrgID == sc.DonorOrgID.String(), "grantId", "grant %s is not a grant of donor %s", g.ID, sc.DonorOrgID)
		return v.Err()
	}
	return nil
}

// PackFileName names a pack's file by its scope and as-of time, in
// characters every file system and HTTP header takes:
// tranche-audit-pack_roadmap-<id>[_donor-<id>][_grant-<id>][_from-<date>][_to-<date>]_asof-<YYYYMMDDTHHMMSS[.ffffff]Z>.xlsx.
func PackFileName(sc reports.Scope) string {
	var b strings.Builder
	b.WriteString("tranche-audit-pack_roadmap-" + sc.RoadmapID.String())
	if sc.DonorOrgID != uuid.Nil {
		b.WriteString("_donor-" + sc.DonorOrgID.String())
	}
	if sc.GrantID != uuid.Nil {
		b.WriteString("_grant-" + sc.GrantID.String())
	}
	if !sc.From.IsZero() {
		b.WriteString("_from-" + sc.From.Format(time.DateOnly))
	}
	if !sc.To.IsZero() {
		b.WriteString("_to-" + sc.To.Format(time.DateOnly))
	}
	b.WriteString("_asof-" + sc.AsOf.UTC().Format("20060102T150405.999999Z") + ".xlsx")
	return b.String()
}

var packQueryFilter = utilities.NewDoubleArray(nil)

// packDownload answers GET /v1/audit-packs:download with the file itself. It
// is registered on the gateway mux over the generated route (which would
// frame the stream as JSON), so the edge (token, size) and the query checks
// (restParams) run first; it calls DownloadAuditPack through the gateway's
// client connection, so the gRPC interceptors (authentication, validation,
// logging, metrics) apply as to every REST call; streamFile sends the file.
func (s *Server) packDownload(mux *runtime.ServeMux, conn *grpc.ClientConn) runtime.HandlerFunc {
	client := pb.NewAuditPackServiceClient(conn)
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		_, out := runtime.MarshalerForRequest(mux, r)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		ctx, err := runtime.AnnotateContext(ctx, mux, r, packMethod, runtime.WithHTTPPathPattern(packPath))
		if err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		var req pb.DownloadAuditPackRequest
		if err := (strictQuery{}).Parse(&req, r.URL.Query(), packQueryFilter); err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		stream, err := client.DownloadAuditPack(ctx, &req)
		if err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		streamFile(s, ctx, mux, out, w, r, stream, "audit pack download")
	}
}

// filePiece is a piece of a file a server-streaming method sends: the first
// carries the file's name, type, size and SHA-256, every one its data.
type filePiece interface {
	GetContentType() string
	GetFileName() string
	GetSize() int64
	GetSha256() string
	GetData() []byte
}

// streamFile answers a REST download with the file a server stream sends
// (an audit pack, an IATI export). Errors until the first piece arrives are
// the usual JSON statuses (the services build the whole file before
// sending any, so every refusal comes first); a failure after that aborts
// the response, so the client sees a short body against the
// Content-Length, never a complete-looking file.
func streamFile[M any, P interface {
	*M
	filePiece
}](s *Server, ctx context.Context, mux *runtime.ServeMux, out runtime.Marshaler, w http.ResponseWriter, r *http.Request,
	stream grpc.ServerStreamingClient[M], what string) {
	var md runtime.ServerMetadata
	msg, err := stream.Recv()
	md.HeaderMD, _ = stream.Header() // the request id the interceptor chose
	if err != nil {
		md.TrailerMD = stream.Trailer()
		if errors.Is(err, io.EOF) { // not expected: the services always send a first piece
			err = status.Errorf(codes.Internal, "%s: empty answer", what)
		}
		runtime.HTTPError(runtime.NewServerMetadataContext(ctx, md), mux, out, w, r, err)
		return
	}
	first := P(msg)
	h := w.Header()
	if rid := md.HeaderMD.Get("x-request-id"); len(rid) > 0 {
		h.Set("X-Request-Id", rid[0])
	}
	h.Set("Content-Type", first.GetContentType())
	h.Set("Content-Disposition", `attachment; filename="`+headerSafe(first.GetFileName())+`"`)
	h.Set("Content-Length", strconv.FormatInt(first.GetSize(), 10))
	if sum, err := hex.DecodeString(first.GetSha256()); err == nil && len(sum) == sha256.Size {
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	h.Set("Cache-Control", "no-store") // financial records
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	written := int64(0)
	for piece := first; ; {
		n, err := w.Write(piece.GetData())
		written += int64(n)
		if err != nil {
			return // the client went away; cancel ends the call
		}
		next, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.log.ErrorContext(ctx, what+" cut short", "request_id", r.Header.Get("X-Request-Id"),
				"written", written, "size", first.GetSize(), "err", err.Error())
			panic(http.ErrAbortHandler)
		}
		piece = P(next)
	}
	if written != first.GetSize() {
		s.log.ErrorContext(ctx, what+" of the wrong size", "request_id", r.Header.Get("X-Request-Id"),
			"written", written, "size", first.GetSize())
		panic(http.ErrAbortHandler)
	}
}

// headerSafe keeps a file name to the characters a quoted header parameter
// takes as they are.
func headerSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
}
