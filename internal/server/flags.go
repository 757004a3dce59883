package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/detect"
)

type flagService struct {
	pb.UnimplementedFlagServiceServer
	flags *detect.Store
}

func flagPB(f detect.Flag) (*pb.Flag, error) {
	out := &pb.Flag{Id: f.ID, RoadmapId: f.RoadmapID, Kind: f.Kind, Severity: f.Severity, Status: f.Status,
		Fingerprint: f.Fingerprint, Explanation: f.Explanation, DetectedAt: timestamppb.New(f.DetectedAt),
		ReviewedBy: f.ReviewedBy, ReviewNote: f.ReviewNote, ReviewAction: f.ReviewAction, ResolvedByRun: f.ResolvedByRun,
		FirstRun: f.FirstRun, UpdateTime: timestamppb.New(f.UpdatedAt)}
	for _, s := range f.Subjects {
		out.Subjects = append(out.Subjects, &pb.FlagSubject{Type: s.Type, Id: s.ID})
	}
	if f.ReviewedAt != nil {
		out.ReviewedAt = timestamppb.New(*f.ReviewedAt)
	}
	if f.ResolvedAt != nil {
		out.ResolvedAt = timestamppb.New(*f.ResolvedAt)
	}
	ev, err := structOf(f.Evidence)
	if err != nil {
		return nil, fmt.Errorf("flag %s evidence: %w", f.ID, err)
	}
	out.Evidence = ev
	return out, nil
}

// structOf is evidence as a Struct. Evidence holds strings (amounts, ids,
// dates) and small whole numbers (days, counts), which a Struct's doubles
// carry exactly.
func structOf(raw []byte) (*structpb.Struct, error) {
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	return structpb.NewStruct(ev)
}

func (s *flagService) DetectFlags(ctx context.Context, req *pb.DetectFlagsRequest) (*pb.DetectFlagsResponse, error) {
	var p parser
	id := p.id("roadmapId", req.GetRoadmapId())
	asOf := p.date("asOf", req.GetAsOf())
	if err := p.err(); err != nil {
		return nil, err
	}
	r, err := s.flags.Run(ctx, id, asOf)
	if err != nil {
		return nil, domainErr(err, "")
	}
	resp := &pb.DetectFlagsResponse{RunId: r.RunID, RoadmapId: r.RoadmapID, AsOf: date(r.AsOf)}
	for _, c := range r.Counts {
		resp.Counts = append(resp.Counts, &pb.KindCounts{Kind: c.Kind, New: int32(c.New), Reopened: int32(c.Reopened),
			StillOpen: int32(c.StillOpen), Resolved: int32(c.Resolved)})
	}
	return resp, nil
}

func (s *flagService) ListFlags(ctx context.Context, req *pb.ListFlagsRequest) (*pb.ListFlagsResponse, error) {
	var p parser
	f := detect.ListFilter{RoadmapID: p.id("roadmapId", req.GetRoadmapId()), GrantID: p.id("grantId", req.GetGrantId()),
		OrganizationID: p.id("organizationId", req.GetOrganizationId()), Kind: req.GetKind(), Severity: req.GetSeverity(),
		Status: req.GetStatus(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if err := p.err(); err != nil {
		return nil, err
	}
	list, next, err := s.flags.List(ctx, f)
	if err != nil {
		return nil, domainErr(err, "")
	}
	resp := &pb.ListFlagsResponse{NextPageToken: next}
	for _, x := range list {
		fp, err := flagPB(x)
		if err != nil {
			return nil, err
		}
		resp.Flags = append(resp.Flags, fp)
	}
	return resp, nil
}

func (s *flagService) GetFlag(ctx context.Context, req *pb.GetFlagRequest) (*pb.GetFlagResponse, error) {
	var p parser
	id := p.id("flagId", req.GetFlagId())
	if err := p.err(); err != nil {
		return nil, err
	}
	f, err := s.flags.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out, err := flagPB(f)
	if err != nil {
		return nil, err
	}
	history, err := s.flags.History(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetFlagResponse{Flag: out}
	for _, e := range history {
		ev := &pb.FlagEvent{Event: e.Event, RunId: e.RunID, Status: e.Status, Severity: e.Severity, Explanation: e.Explanation,
			Actor: e.Actor, Note: e.Note, OccurredAt: timestamppb.New(e.OccurredAt)}
		if len(e.Evidence) > 0 {
			if ev.Evidence, err = structOf(e.Evidence); err != nil {
				return nil, fmt.Errorf("flag %s history: %w", id, err)
			}
		}
		resp.History = append(resp.History, ev)
	}
	return resp, nil
}

func (s *flagService) ReviewFlag(ctx context.Context, req *pb.ReviewFlagRequest) (*pb.ReviewFlagResponse, error) {
	var p parser
	id := p.id("flagId", req.GetFlagId())
	if err := p.err(); err != nil {
		return nil, err
	}
	f, err := s.flags.Review(ctx, id, req.GetAction(), req.GetNote(), req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "")
	}
	out, err := flagPB(f)
	if err != nil {
		return nil, err
	}
	return &pb.ReviewFlagResponse{Flag: out}, nil
}

// detectInBackground runs detection over every roadmap at start and then
// every interval, as the operator, until ctx ends. A roadmap run as of today
// within the last half interval (by another replica, or a coordinator) is
// skipped, so replicas started together do not repeat each other's work;
// two replicas running one roadmap at once are serialised by the run's
// advisory lock and raise each flag once. Failures are logged and retried
// the next round.
func detectInBackground(ctx context.Context, store *detect.Store, interval time.Duration, log *slog.Logger) {
	ctx = auth.WithPrincipal(ctx, auth.OperatorPrincipal("background detection"))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		results, err := store.RunAll(ctx, interval/2)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("background detection", "err", err)
		}
		skipped := 0
		for _, r := range results {
			if r.Skipped {
				skipped++
				continue
			}
			var n detect.KindCounts
			for _, c := range r.Counts {
				n.New, n.Reopened, n.StillOpen, n.Resolved = n.New+c.New, n.Reopened+c.Reopened, n.StillOpen+c.StillOpen, n.Resolved+c.Resolved
			}
			log.Info("detection run", "roadmap", r.RoadmapID, "run", r.RunID, "asOf", date(r.AsOf),
				"new", n.New, "reopened", n.Reopened, "stillOpen", n.StillOpen, "resolved", n.Resolved)
		}
		log.Info("background detection done", "roadmaps", len(results)-skipped, "skipped", skipped,
			"seconds", time.Since(start).Seconds())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
