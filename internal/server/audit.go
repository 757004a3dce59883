package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
)

type auditService struct {
	pb.UnimplementedAuditServiceServer
	audit *audit.Store
}

func (s *auditService) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	f := audit.Filter{
		EntityType: req.GetEntityType(), EntityID: req.GetEntityId(), ActorTokenID: req.GetActorTokenId(),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	}
	if req.FromTime != nil {
		f.From = req.GetFromTime().AsTime()
	}
	if req.ToTime != nil {
		f.To = req.GetToTime().AsTime()
	}
	events, next, err := s.audit.List(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range events {
		resp.Events = append(resp.Events, &pb.AuditEvent{
			Id: e.ID, Seq: e.Seq, OccurredAt: timestamppb.New(e.OccurredAt),
			ActorTokenId: e.ActorTokenID, ActorRole: e.ActorRole, ActorOrgId: e.ActorOrgID,
			Method: e.Method, EntityType: e.EntityType, EntityId: e.EntityID, RequestId: e.RequestID,
			Change: e.Change, ActorName: e.ActorName, SubjectOrgIds: e.SubjectOrgs, PrevHash: audit.HexHash(e.PrevHash), Hash: audit.HexHash(e.Hash),
		})
	}
	return resp, nil
}

func (s *auditService) VerifyAuditChain(ctx context.Context, _ *pb.VerifyAuditChainRequest) (*pb.VerifyAuditChainResponse, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator, auth.Auditor); err != nil {
		return nil, err
	}
	r, err := s.audit.Verify(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.VerifyAuditChainResponse{
		Verified: r.Verified, EventsChecked: r.EventsChecked, HeadSeq: r.HeadSeq, HeadHash: audit.HexHash(r.HeadHash),
		Unsealed: r.Unsealed, FirstBadSeq: r.FirstBadSeq, Problem: r.Problem, Detail: r.Detail,
	}, nil
}

// GetAuditHead is open to those who may verify the chain: a head is the
// chain's summary, and what it proves is checked against the whole chain.
func (s *auditService) GetAuditHead(ctx context.Context, _ *pb.GetAuditHeadRequest) (*pb.GetAuditHeadResponse, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator, auth.Auditor); err != nil {
		return nil, err
	}
	h, err := s.audit.Head(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetAuditHeadResponse{Seq: h.Seq, Hash: audit.HexHash(h.Hash), Signed: h.Signed(), Format: audit.HeadFormat}
	if h.Signed() {
		resp.Signature, resp.KeyId = audit.EncodeSignature(h.Signature), h.KeyID
		resp.PublicKey = audit.PublicKeyPEM(s.audit.PublicKey())
	}
	return resp, nil
}
