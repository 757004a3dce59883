package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

type roadmapService struct {
	pb.UnimplementedRoadmapServiceServer
	roadmaps *roadmap.Store
	funding  roadmap.FundingSource
}

func roadmapPB(r roadmap.Roadmap) *pb.Roadmap {
	return &pb.Roadmap{Id: r.ID, Country: r.Country, Title: r.Title, StartDate: date(r.StartDate), EndDate: date(r.EndDate),
		ReportingCurrency: r.ReportingCurrency, CreateTime: timestamppb.New(r.CreatedAt)}
}

func milestonePB(m roadmap.Milestone) *pb.Milestone {
	out := &pb.Milestone{Id: m.ID, RoadmapId: m.RoadmapID, Code: m.Code, Title: m.Title, ActivityType: m.ActivityType,
		Region: m.Region, TargetQuantity: m.TargetQuantity.String(), TargetUnit: m.TargetUnit,
		FundingRequirement: moneyPB(m.FundingRequirement.Value, m.FundingRequirement.Currency),
		ResponsibleOrgId:   m.ResponsibleOrgID, Status: m.Status}
	if m.DueDate != nil {
		out.DueDate = date(*m.DueDate)
	}
	if m.AchievedQuantity != nil {
		out.AchievedQuantity = m.AchievedQuantity.String()
		out.ProgressAsOf = date(*m.ProgressAsOf)
	}
	return out
}

func (s *roadmapService) CreateRoadmap(ctx context.Context, req *pb.CreateRoadmapRequest) (*pb.CreateRoadmapResponse, error) {
	r := req.GetRoadmap()
	var p parser
	in := roadmap.Input{Country: r.GetCountry(), Title: r.GetTitle(), StartDate: p.date("roadmap.startDate", r.GetStartDate()),
		EndDate: p.date("roadmap.endDate", r.GetEndDate()), ReportingCurrency: r.GetReportingCurrency()}
	if err := p.err(); err != nil {
		return nil, err
	}
	out, err := s.roadmaps.Create(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "roadmap.")
	}
	return &pb.CreateRoadmapResponse{Roadmap: roadmapPB(out)}, nil
}

func (s *roadmapService) GetRoadmap(ctx context.Context, req *pb.GetRoadmapRequest) (*pb.GetRoadmapResponse, error) {
	var p parser
	id := p.id("roadmapId", req.GetRoadmapId())
	if err := p.err(); err != nil {
		return nil, err
	}
	r, err := s.roadmaps.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pb.GetRoadmapResponse{Roadmap: roadmapPB(r)}, nil
}

func (s *roadmapService) ListRoadmaps(ctx context.Context, req *pb.ListRoadmapsRequest) (*pb.ListRoadmapsResponse, error) {
	list, next, err := s.roadmaps.List(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListRoadmapsResponse{NextPageToken: next}
	for _, r := range list {
		resp.Roadmaps = append(resp.Roadmaps, roadmapPB(r))
	}
	return resp, nil
}

func (s *roadmapService) CreateMilestone(ctx context.Context, req *pb.CreateMilestoneRequest) (*pb.CreateMilestoneResponse, error) {
	m := req.GetMilestone()
	var p parser
	roadmapID := p.id("roadmapId", req.GetRoadmapId())
	in := roadmap.MilestoneInput{
		Code: m.GetCode(), Title: m.GetTitle(), ActivityType: m.GetActivityType(), Region: m.GetRegion(),
		TargetQuantity: p.decimal("milestone.targetQuantity", m.GetTargetQuantity()), TargetUnit: m.GetTargetUnit(),
		DueDate:            p.date("milestone.dueDate", m.GetDueDate()),
		FundingRequirement: p.money("milestone.fundingRequirement", m.GetFundingRequirement()),
		ResponsibleOrgID:   p.id("milestone.responsibleOrgId", m.GetResponsibleOrgId()), Status: m.GetStatus(),
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	out, err := s.roadmaps.CreateMilestone(ctx, roadmapID, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "milestone.")
	}
	return &pb.CreateMilestoneResponse{Milestone: milestonePB(out)}, nil
}

func (s *roadmapService) GetMilestone(ctx context.Context, req *pb.GetMilestoneRequest) (*pb.GetMilestoneResponse, error) {
	var p parser
	id := p.id("milestoneId", req.GetMilestoneId())
	if err := p.err(); err != nil {
		return nil, err
	}
	m, progress, history, err := s.roadmaps.GetMilestone(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetMilestoneResponse{Milestone: milestonePB(m)}
	for _, p := range progress {
		resp.Progress = append(resp.Progress, &pb.ProgressReport{AchievedQuantity: p.AchievedQuantity.String(), AsOf: date(p.AsOf),
			Note: p.Note, RecordedBy: p.RecordedBy, RecordedAt: timestamppb.New(p.RecordedAt)})
	}
	for _, c := range history {
		resp.StatusHistory = append(resp.StatusHistory, &pb.StatusChange{Status: c.Status, Note: c.Note, RecordedBy: c.RecordedBy,
			RecordedAt: timestamppb.New(c.RecordedAt)})
	}
	return resp, nil
}

func (s *roadmapService) ListMilestones(ctx context.Context, req *pb.ListMilestonesRequest) (*pb.ListMilestonesResponse, error) {
	var p parser
	id := p.id("roadmapId", req.GetRoadmapId())
	if err := p.err(); err != nil {
		return nil, err
	}
	list, err := s.roadmaps.ListMilestones(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListMilestonesResponse{}
	for _, m := range list {
		resp.Milestones = append(resp.Milestones, milestonePB(m))
	}
	return resp, nil
}

func (s *roadmapService) ReportProgress(ctx context.Context, req *pb.ReportProgressRequest) (*pb.ReportProgressResponse, error) {
	var p parser
	id := p.id("milestoneId", req.GetMilestoneId())
	achieved := p.decimal("achievedQuantity", req.GetAchievedQuantity())
	asOf := p.date("asOf", req.GetAsOf())
	if err := p.err(); err != nil {
		return nil, err
	}
	m, err := s.roadmaps.ReportProgress(ctx, id, achieved, asOf, req.GetNote(), req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "")
	}
	return &pb.ReportProgressResponse{Milestone: milestonePB(m)}, nil
}

func (s *roadmapService) SetMilestoneStatus(ctx context.Context, req *pb.SetMilestoneStatusRequest) (*pb.SetMilestoneStatusResponse, error) {
	var p parser
	id := p.id("milestoneId", req.GetMilestoneId())
	if err := p.err(); err != nil {
		return nil, err
	}
	m, err := s.roadmaps.SetStatus(ctx, id, req.GetStatus(), req.GetNote(), req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "")
	}
	return &pb.SetMilestoneStatusResponse{Milestone: milestonePB(m)}, nil
}

func coveragePB(c roadmap.MilestoneCoverage, cur string) *pb.MilestoneCoverage {
	return &pb.MilestoneCoverage{MilestoneId: c.MilestoneID, Code: c.Code, Title: c.Title,
		FundingRequirement: moneyPB(c.Requirement, cur), Allocated: moneyPB(c.Allocated, cur), Committed: moneyPB(c.Committed, cur),
		Disbursed: moneyPB(c.Disbursed, cur), Spent: moneyPB(c.Spent, cur), Gap: moneyPB(c.Gap, cur), Donors: int32(c.Donors)}
}

func (s *roadmapService) GetCoverage(ctx context.Context, req *pb.GetCoverageRequest) (*pb.GetCoverageResponse, error) {
	var p parser
	id := p.id("roadmapId", req.GetRoadmapId())
	if err := p.err(); err != nil {
		return nil, err
	}
	c, err := s.roadmaps.Coverage(ctx, id, s.funding)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetCoverageResponse{RoadmapId: c.RoadmapID, ReportingCurrency: c.Currency, Totals: coveragePB(c.Totals, c.Currency)}
	for _, m := range c.Milestones {
		resp.Milestones = append(resp.Milestones, coveragePB(m, c.Currency))
	}
	return resp, nil
}
