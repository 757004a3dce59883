package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/procurement"
)

type procurementService struct {
	pb.UnimplementedProcurementServiceServer
	items *procurement.Store
}

func procurementItemPB(it procurement.Item) *pb.ProcurementItem {
	out := &pb.ProcurementItem{Id: it.ID, GrantId: it.GrantID, MilestoneId: it.MilestoneID, RoadmapId: it.RoadmapID,
		Description: it.Description, Category: it.Category, Critical: it.Critical,
		EstimatedCost: moneyPB(it.EstimatedCost.Value, it.EstimatedCost.Currency), Stage: it.Stage,
		Late: it.LateOn(time.Now().UTC().Truncate(24 * time.Hour)), RecordedBy: it.RecordedBy}
	if it.ExpectedDeliveryDate != nil {
		out.ExpectedDeliveryDate = date(*it.ExpectedDeliveryDate)
	}
	if len(it.Stages) > 0 {
		out.RequisitionedOn = date(it.Stages[0].EnteredOn)
	}
	for _, s := range it.Stages {
		out.Stages = append(out.Stages, &pb.ProcurementStage{Stage: s.Stage, EnteredOn: date(s.EnteredOn), Note: s.Note})
	}
	if !it.RecordedAt.IsZero() {
		out.RecordedAt = timestamppb.New(it.RecordedAt)
	}
	return out
}

func (s *procurementService) CreateProcurementItem(ctx context.Context, req *pb.CreateProcurementItemRequest) (*pb.CreateProcurementItemResponse, error) {
	it := req.GetProcurementItem()
	var p parser
	p.within("procurementItem.")
	p.outputOnly(it, "id", "roadmap_id", "stage", "stages", "late", "recorded_by", "recorded_at")
	in := procurement.Input{GrantID: p.id("grantId", it.GetGrantId()), MilestoneID: p.id("milestoneId", it.GetMilestoneId()),
		Description: it.GetDescription(), Category: it.GetCategory(), Critical: it.GetCritical(),
		EstimatedCost:        p.money("estimatedCost", it.GetEstimatedCost()),
		ExpectedDeliveryDate: p.date("expectedDeliveryDate", it.GetExpectedDeliveryDate()),
		RequisitionedOn:      p.date("requisitionedOn", it.GetRequisitionedOn())}
	if err := p.err(); err != nil {
		return nil, err
	}
	out, err := s.items.Create(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "procurementItem.")
	}
	return &pb.CreateProcurementItemResponse{ProcurementItem: procurementItemPB(out)}, nil
}

func (s *procurementService) GetProcurementItem(ctx context.Context, req *pb.GetProcurementItemRequest) (*pb.GetProcurementItemResponse, error) {
	var p parser
	id := p.id("itemId", req.GetItemId())
	if err := p.err(); err != nil {
		return nil, err
	}
	it, err := s.items.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.GetProcurementItemResponse{ProcurementItem: procurementItemPB(it)}, nil
}

func (s *procurementService) ListProcurementItems(ctx context.Context, req *pb.ListProcurementItemsRequest) (*pb.ListProcurementItemsResponse, error) {
	var p parser
	f := procurement.Filter{RoadmapID: p.id("roadmapId", req.GetRoadmapId()), GrantID: p.id("grantId", req.GetGrantId()),
		MilestoneID: p.id("milestoneId", req.GetMilestoneId()), Stage: req.GetStage(), Late: req.GetLate(),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if err := p.err(); err != nil {
		return nil, err
	}
	list, next, err := s.items.List(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListProcurementItemsResponse{NextPageToken: next, ProcurementItems: make([]*pb.ProcurementItem, len(list))}
	for i, it := range list {
		resp.ProcurementItems[i] = procurementItemPB(it)
	}
	return resp, nil
}

func (s *procurementService) AdvanceProcurementItem(ctx context.Context, req *pb.AdvanceProcurementItemRequest) (*pb.AdvanceProcurementItemResponse, error) {
	var p parser
	id := p.id("itemId", req.GetItemId())
	enteredOn := p.date("enteredOn", req.GetEnteredOn())
	if err := p.err(); err != nil {
		return nil, err
	}
	it, err := s.items.Advance(ctx, id, req.GetStage(), enteredOn, req.GetNote(), req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.AdvanceProcurementItemResponse{ProcurementItem: procurementItemPB(it)}, nil
}
