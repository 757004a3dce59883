package server

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
)

func moneyPB(d decimal.Decimal, currency string) *pb.Money {
	return &pb.Money{Amount: money.Format(d, currency), Currency: currency}
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

type roadmapService struct {
	pb.UnimplementedRoadmapServiceServer
	l *ledger.Store
}

func roadmapPB(r ledger.Roadmap) *pb.Roadmap {
	return &pb.Roadmap{Id: r.ID, Country: r.Country, Title: r.Title, StartDate: date(r.StartDate), EndDate: date(r.EndDate),
		ReportingCurrency: r.ReportingCurrency, CreateTime: timestamppb.New(r.CreatedAt)}
}

func milestonePB(m ledger.Milestone) *pb.Milestone {
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
	out, err := s.l.CreateRoadmap(ctx, ledger.RoadmapInput{Country: r.GetCountry(), Title: r.GetTitle(), StartDate: r.GetStartDate(),
		EndDate: r.GetEndDate(), ReportingCurrency: r.GetReportingCurrency()}, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.CreateRoadmapResponse{Roadmap: roadmapPB(out)}, nil
}

func (s *roadmapService) GetRoadmap(ctx context.Context, req *pb.GetRoadmapRequest) (*pb.GetRoadmapResponse, error) {
	r, err := s.l.GetRoadmap(ctx, req.GetRoadmapId())
	if err != nil {
		return nil, err
	}
	return &pb.GetRoadmapResponse{Roadmap: roadmapPB(r)}, nil
}

func (s *roadmapService) ListRoadmaps(ctx context.Context, req *pb.ListRoadmapsRequest) (*pb.ListRoadmapsResponse, error) {
	list, next, err := s.l.ListRoadmaps(ctx, int(req.GetPageSize()), req.GetPageToken())
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
	out, err := s.l.CreateMilestone(ctx, req.GetRoadmapId(), ledger.MilestoneInput{
		Code: m.GetCode(), Title: m.GetTitle(), ActivityType: m.GetActivityType(), Region: m.GetRegion(),
		TargetQuantity: m.GetTargetQuantity(), TargetUnit: m.GetTargetUnit(), DueDate: m.GetDueDate(),
		FundingRequirement: m.GetFundingRequirement().GetAmount(), FundingCurrency: m.GetFundingRequirement().GetCurrency(),
		ResponsibleOrgID: m.GetResponsibleOrgId(), Status: m.GetStatus(),
	}, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.CreateMilestoneResponse{Milestone: milestonePB(out)}, nil
}

func (s *roadmapService) GetMilestone(ctx context.Context, req *pb.GetMilestoneRequest) (*pb.GetMilestoneResponse, error) {
	m, progress, history, err := s.l.GetMilestone(ctx, req.GetMilestoneId())
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
	list, err := s.l.ListMilestones(ctx, req.GetRoadmapId())
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
	m, err := s.l.ReportProgress(ctx, req.GetMilestoneId(), req.GetAchievedQuantity(), req.GetAsOf(), req.GetNote(), req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.ReportProgressResponse{Milestone: milestonePB(m)}, nil
}

func (s *roadmapService) SetMilestoneStatus(ctx context.Context, req *pb.SetMilestoneStatusRequest) (*pb.SetMilestoneStatusResponse, error) {
	m, err := s.l.SetStatus(ctx, req.GetMilestoneId(), req.GetStatus(), req.GetNote(), req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.SetMilestoneStatusResponse{Milestone: milestonePB(m)}, nil
}

func coveragePB(c ledger.MilestoneCoverage, cur string) *pb.MilestoneCoverage {
	return &pb.MilestoneCoverage{MilestoneId: c.MilestoneID, Code: c.Code, Title: c.Title,
		FundingRequirement: moneyPB(c.Requirement, cur), Allocated: moneyPB(c.Allocated, cur), Committed: moneyPB(c.Committed, cur),
		Disbursed: moneyPB(c.Disbursed, cur), Spent: moneyPB(c.Spent, cur), Gap: moneyPB(c.Gap, cur), Donors: int32(c.Donors)}
}

func (s *roadmapService) GetCoverage(ctx context.Context, req *pb.GetCoverageRequest) (*pb.GetCoverageResponse, error) {
	c, err := s.l.Coverage(ctx, req.GetRoadmapId())
	if err != nil {
		return nil, err
	}
	resp := &pb.GetCoverageResponse{RoadmapId: c.RoadmapID, ReportingCurrency: c.Currency, Totals: coveragePB(c.Totals, c.Currency)}
	for _, m := range c.Milestones {
		resp.Milestones = append(resp.Milestones, coveragePB(m, c.Currency))
	}
	return resp, nil
}

type grantService struct {
	pb.UnimplementedGrantServiceServer
	l *ledger.Store
}

func grantPB(g ledger.Grant) *pb.Grant {
	out := &pb.Grant{Id: g.ID, RoadmapId: g.RoadmapID, DonorOrgId: g.DonorOrgID, RecipientOrgId: g.RecipientOrgID,
		Reference: g.Reference, Title: g.Title, Currency: g.Currency, Pledged: moneyPB(g.Pledged, g.Currency),
		StartDate: date(g.StartDate), EndDate: date(g.EndDate), CreateTime: timestamppb.New(g.CreatedAt)}
	for _, a := range g.Allocations {
		out.Allocations = append(out.Allocations, &pb.Allocation{MilestoneId: a.MilestoneID, Amount: moneyPB(a.Amount, g.Currency)})
	}
	return out
}

func (s *grantService) CreateGrant(ctx context.Context, req *pb.CreateGrantRequest) (*pb.CreateGrantResponse, error) {
	g := req.GetGrant()
	out, err := s.l.CreateGrant(ctx, ledger.GrantInput{RoadmapID: g.GetRoadmapId(), DonorOrgID: g.GetDonorOrgId(),
		RecipientOrgID: g.GetRecipientOrgId(), Reference: g.GetReference(), Title: g.GetTitle(), Currency: g.GetCurrency(),
		Pledged: g.GetPledged().GetAmount(), PledgedCurrency: g.GetPledged().GetCurrency(),
		StartDate: g.GetStartDate(), EndDate: g.GetEndDate()}, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.CreateGrantResponse{Grant: grantPB(out)}, nil
}

func (s *grantService) GetGrant(ctx context.Context, req *pb.GetGrantRequest) (*pb.GetGrantResponse, error) {
	g, err := s.l.GetGrant(ctx, req.GetGrantId())
	if err != nil {
		return nil, err
	}
	return &pb.GetGrantResponse{Grant: grantPB(g)}, nil
}

func (s *grantService) ListGrants(ctx context.Context, req *pb.ListGrantsRequest) (*pb.ListGrantsResponse, error) {
	list, next, err := s.l.ListGrants(ctx, ledger.GrantFilter{RoadmapID: req.GetRoadmapId(), DonorOrgID: req.GetDonorOrgId(),
		RecipientOrgID: req.GetRecipientOrgId(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &pb.ListGrantsResponse{NextPageToken: next}
	for _, g := range list {
		resp.Grants = append(resp.Grants, grantPB(g))
	}
	return resp, nil
}

func (s *grantService) SetAllocations(ctx context.Context, req *pb.SetAllocationsRequest) (*pb.SetAllocationsResponse, error) {
	in := make([]ledger.AllocationInput, len(req.GetAllocations()))
	for i, a := range req.GetAllocations() {
		in[i] = ledger.AllocationInput{MilestoneID: a.GetMilestoneId(), Amount: a.GetAmount().GetAmount(), Currency: a.GetAmount().GetCurrency()}
	}
	g, err := s.l.SetAllocations(ctx, req.GetGrantId(), in, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.SetAllocationsResponse{Grant: grantPB(g)}, nil
}

func entryInput(t *pb.Transaction, grantID string) ledger.EntryInput {
	if grantID == "" {
		grantID = t.GetGrantId()
	}
	return ledger.EntryInput{GrantID: grantID, Type: t.GetType(), Amount: t.GetAmount().GetAmount(), Currency: t.GetAmount().GetCurrency(),
		ValueDate: t.GetValueDate(), Reference: t.GetReference(), MilestoneID: t.GetMilestoneId(),
		ReversesID: t.GetReversesTransactionId(), FxRate: t.GetFxRate(), Note: t.GetNote()}
}

func transactionPB(t ledger.Transaction) *pb.Transaction {
	out := &pb.Transaction{Id: t.ID, GrantId: t.GrantID, Type: t.Type, Amount: moneyPB(t.Amount, t.Currency),
		ValueDate: date(t.ValueDate), Reference: t.Reference, MilestoneId: t.MilestoneID, ReversesTransactionId: t.ReversesID,
		Note: t.Note, RecordedBy: t.RecordedBy, AgreementAmount: moneyPB(t.AgreementAmount, t.AgreementCcy),
		ReportingAmount: moneyPB(t.ReportingAmount, t.ReportingCcy), BatchId: t.BatchID}
	if !t.RecordedAt.IsZero() {
		out.RecordedAt = timestamppb.New(t.RecordedAt)
	}
	if t.FxRate != nil {
		out.FxRate = t.FxRate.String()
	}
	return out
}

func (s *grantService) RecordTransaction(ctx context.Context, req *pb.RecordTransactionRequest) (*pb.RecordTransactionResponse, error) {
	t, err := s.l.RecordTransaction(ctx, entryInput(req.GetTransaction(), req.GetGrantId()), req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.RecordTransactionResponse{Transaction: transactionPB(t)}, nil
}

func (s *grantService) ListTransactions(ctx context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	list, next, err := s.l.ListTransactions(ctx, req.GetGrantId(), req.GetType(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListTransactionsResponse{NextPageToken: next}
	for _, t := range list {
		resp.Transactions = append(resp.Transactions, transactionPB(t))
	}
	return resp, nil
}

func (s *grantService) BatchRecordTransactions(ctx context.Context, req *pb.BatchRecordTransactionsRequest) (*pb.BatchRecordTransactionsResponse, error) {
	in := make([]ledger.EntryInput, len(req.GetTransactions()))
	for i, t := range req.GetTransactions() {
		in[i] = entryInput(t, "")
	}
	out, err := s.l.BatchRecord(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	resp := &pb.BatchRecordTransactionsResponse{Transactions: make([]*pb.Transaction, len(out))}
	for i, t := range out {
		resp.Transactions[i] = transactionPB(t)
	}
	return resp, nil
}

func balancesPB(b ledger.Balances) *pb.Balances {
	c := b.Currency
	return &pb.Balances{Pledged: moneyPB(b.Pledged, c), Committed: moneyPB(b.Committed, c), Disbursed: moneyPB(b.Disbursed, c),
		Received: moneyPB(b.Received, c), Spent: moneyPB(b.Spent, c), UndisbursedCommitment: moneyPB(b.UndisbursedCommitment, c),
		UnspentBalance: moneyPB(b.UnspentBalance, c)}
}

func (s *grantService) GetReconciliation(ctx context.Context, req *pb.GetReconciliationRequest) (*pb.GetReconciliationResponse, error) {
	var asOf time.Time
	if req.AsOf != nil {
		asOf = req.GetAsOf().AsTime()
	}
	r, err := s.l.ReconcilePage(ctx, req.GetGrantId(), asOf, ledger.MatchPage{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	c := r.Agreement.Currency
	resp := &pb.GetReconciliationResponse{GrantId: r.GrantID, Agreement: balancesPB(r.Agreement), Reporting: balancesPB(r.Reporting),
		AsOf: timestamppb.New(r.AsOf), NextPageToken: r.NextPageToken}
	for _, m := range r.Summary {
		resp.ReceiptMatchSummary = append(resp.ReceiptMatchSummary, &pb.ReceiptMatchSummary{Status: m.Status, Count: int32(m.Count),
			Disbursed: moneyPB(m.Disbursed, c), Received: moneyPB(m.Received, c)})
	}
	for _, m := range r.Matches {
		resp.ReceiptMatches = append(resp.ReceiptMatches, &pb.ReceiptMatch{Status: m.Status, DisbursementId: m.DisbursementID,
			ReceiptIds: m.ReceiptIDs, Reference: m.Reference, Disbursed: moneyPB(m.Disbursed, c), Received: moneyPB(m.Received, c),
			Variance: moneyPB(m.Variance, c), FxDifference: moneyPB(m.FXDifference, c), RealDifference: moneyPB(m.RealDifference, c)})
	}
	return resp, nil
}

type fxService struct {
	pb.UnimplementedFxRateServiceServer
	fx *fx.Store
}

func (s *fxService) CreateFxRates(ctx context.Context, req *pb.CreateFxRatesRequest) (*pb.CreateFxRatesResponse, error) {
	in := make([]fx.RateInput, len(req.GetRates()))
	for i, r := range req.GetRates() {
		in[i] = fx.RateInput{Currency: r.GetCurrency(), QuoteCurrency: r.GetQuoteCurrency(), Date: r.GetDate(), Rate: r.GetRate(), Source: r.GetSource()}
	}
	n, err := s.fx.Create(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.CreateFxRatesResponse{Created: int32(n)}, nil
}

func (s *fxService) ListFxRates(ctx context.Context, req *pb.ListFxRatesRequest) (*pb.ListFxRatesResponse, error) {
	list, next, err := s.fx.List(ctx, req.GetCurrency(), req.GetQuoteCurrency(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListFxRatesResponse{NextPageToken: next}
	for _, r := range list {
		resp.Rates = append(resp.Rates, &pb.FxRate{Currency: r.Currency, QuoteCurrency: r.QuoteCurrency, Date: date(r.Date),
			Rate: r.Rate.String(), Source: r.Source})
	}
	return resp, nil
}
