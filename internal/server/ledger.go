package server

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/imports"
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

type grantService struct {
	pb.UnimplementedGrantServiceServer
	l    *ledger.Store
	pool *pgxpool.Pool // provenance of imported records
}

// provenance fills in the provenance of the imported records among the
// answered ones (entity imports.EntityGrant or EntityTransaction); records
// entered through the API have none and stay without.
func (s *grantService) provenance(ctx context.Context, entity string, ids []string, set func(i int, p *pb.Provenance)) error {
	if s.pool == nil || len(ids) == 0 {
		return nil
	}
	got, err := imports.ProvenanceOf(ctx, s.pool, entity, ids)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if p, ok := got[id]; ok {
			set(i, ProvenancePB(p))
		}
	}
	return nil
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
	var p parser
	in := ledger.GrantInput{RoadmapID: p.id("grant.roadmapId", g.GetRoadmapId()), DonorOrgID: p.id("grant.donorOrgId", g.GetDonorOrgId()),
		RecipientOrgID: p.id("grant.recipientOrgId", g.GetRecipientOrgId()), Reference: g.GetReference(), Title: g.GetTitle(),
		Currency: g.GetCurrency(), Pledged: p.money("grant.pledged", g.GetPledged()),
		StartDate: p.date("grant.startDate", g.GetStartDate()), EndDate: p.date("grant.endDate", g.GetEndDate())}
	if err := p.err(); err != nil {
		return nil, err
	}
	out, err := s.l.CreateGrant(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "grant.")
	}
	return &pb.CreateGrantResponse{Grant: grantPB(out)}, nil
}

func (s *grantService) GetGrant(ctx context.Context, req *pb.GetGrantRequest) (*pb.GetGrantResponse, error) {
	var p parser
	id := p.id("grantId", req.GetGrantId())
	if err := p.err(); err != nil {
		return nil, err
	}
	g, err := s.l.GetGrant(ctx, id)
	if err != nil {
		return nil, err
	}
	out := grantPB(g)
	if err := s.provenance(ctx, imports.EntityGrant, []string{g.ID}, func(_ int, p *pb.Provenance) { out.Provenance = p }); err != nil {
		return nil, err
	}
	return &pb.GetGrantResponse{Grant: out}, nil
}

func (s *grantService) ListGrants(ctx context.Context, req *pb.ListGrantsRequest) (*pb.ListGrantsResponse, error) {
	var p parser
	f := ledger.GrantFilter{RoadmapID: p.id("roadmapId", req.GetRoadmapId()), DonorOrgID: p.id("donorOrgId", req.GetDonorOrgId()),
		RecipientOrgID: p.id("recipientOrgId", req.GetRecipientOrgId()), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if err := p.err(); err != nil {
		return nil, err
	}
	list, next, err := s.l.ListGrants(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListGrantsResponse{NextPageToken: next}
	ids := make([]string, len(list))
	for i, g := range list {
		resp.Grants = append(resp.Grants, grantPB(g))
		ids[i] = g.ID
	}
	if err := s.provenance(ctx, imports.EntityGrant, ids, func(i int, p *pb.Provenance) { resp.Grants[i].Provenance = p }); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *grantService) SetAllocations(ctx context.Context, req *pb.SetAllocationsRequest) (*pb.SetAllocationsResponse, error) {
	var p parser
	id := p.id("grantId", req.GetGrantId())
	in := make([]ledger.AllocationInput, len(req.GetAllocations()))
	for i, a := range req.GetAllocations() {
		f := fmt.Sprintf("allocations[%d].", i)
		in[i] = ledger.AllocationInput{MilestoneID: p.id(f+"milestoneId", a.GetMilestoneId()), Amount: p.money(f+"amount", a.GetAmount())}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	g, err := s.l.SetAllocations(ctx, id, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "allocations.")
	}
	return &pb.SetAllocationsResponse{Grant: grantPB(g)}, nil
}

// entryInput parses a transaction where p is (within "transaction.", or at
// an item of "transactions"); grantID, from the path, wins over the body's.
func entryInput(p *parser, t *pb.Transaction, grantID string) ledger.EntryInput {
	gid := p.id("grantId", t.GetGrantId())
	if grantID != "" {
		p.samePath("grantId", "grant", t.GetGrantId(), grantID)
		prefix := p.prefix
		p.within("")
		gid = p.id("grantId", grantID)
		p.within(prefix)
	}
	return ledger.EntryInput{GrantID: gid, Type: t.GetType(), Amount: p.money("amount", t.GetAmount()),
		ValueDate: p.date("valueDate", t.GetValueDate()), Reference: t.GetReference(),
		MilestoneID: p.id("milestoneId", t.GetMilestoneId()),
		ReversesID:  p.id("reversesTransactionId", t.GetReversesTransactionId()),
		FxRate:      p.rate("fxRate", t.GetFxRate()), Note: t.GetNote()}
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
	var p parser
	p.within("transaction.")
	in := entryInput(&p, req.GetTransaction(), req.GetGrantId())
	if err := p.err(); err != nil {
		return nil, err
	}
	t, err := s.l.RecordTransaction(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "transaction.")
	}
	return &pb.RecordTransactionResponse{Transaction: transactionPB(t)}, nil
}

func (s *grantService) ListTransactions(ctx context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	var p parser
	id := p.id("grantId", req.GetGrantId())
	if err := p.err(); err != nil {
		return nil, err
	}
	list, next, err := s.l.ListTransactions(ctx, id, req.GetType(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListTransactionsResponse{NextPageToken: next}
	ids := make([]string, len(list))
	for i, t := range list {
		resp.Transactions = append(resp.Transactions, transactionPB(t))
		ids[i] = t.ID
	}
	if err := s.provenance(ctx, imports.EntityTransaction, ids, func(i int, p *pb.Provenance) { resp.Transactions[i].Provenance = p }); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *grantService) BatchRecordTransactions(ctx context.Context, req *pb.BatchRecordTransactionsRequest) (*pb.BatchRecordTransactionsResponse, error) {
	var p parser
	in := make([]ledger.EntryInput, len(req.GetTransactions()))
	for i, t := range req.GetTransactions() {
		p.at("transactions", i)
		in[i] = entryInput(&p, t, "")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	out, err := s.l.BatchRecord(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "transactions.")
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
	var p parser
	id := p.id("grantId", req.GetGrantId())
	if err := p.err(); err != nil {
		return nil, err
	}
	r, err := s.l.ReconcilePage(ctx, id, asOf, ledger.MatchPage{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
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

// CreateFxRates parses each rate under rates[i]. An empty rate never gets
// here (the proto requires one); it would parse as zero, which fx refuses as
// not positive, on the same field.
func (s *fxService) CreateFxRates(ctx context.Context, req *pb.CreateFxRatesRequest) (*pb.CreateFxRatesResponse, error) {
	var p parser
	in := make([]fx.RateInput, len(req.GetRates()))
	for i, r := range req.GetRates() {
		f := fmt.Sprintf("rates[%d].", i)
		in[i] = fx.RateInput{Currency: r.GetCurrency(), QuoteCurrency: r.GetQuoteCurrency(), Date: p.date(f+"date", r.GetDate()),
			Rate: p.decimal(f+"rate", r.GetRate()), Source: r.GetSource(), ConfirmLargeChange: r.GetConfirmLargeChange()}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	n, err := s.fx.Create(ctx, in)
	if err != nil {
		return nil, domainErr(err, "rates.")
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
		resp.Rates = append(resp.Rates, fxRatePB(r))
	}
	return resp, nil
}

func fxRatePB(r fx.Rate) *pb.FxRate {
	return &pb.FxRate{Currency: r.Currency, QuoteCurrency: r.QuoteCurrency, Date: date(r.Date), Rate: r.Rate.String(), Source: r.Source,
		Revision: int32(r.Revision), Reason: r.Reason, Superseded: r.Superseded}
}

func fxAffectedPB(list []fx.Affected) []*pb.FxAffectedTransaction {
	out := make([]*pb.FxAffectedTransaction, len(list))
	for i, a := range list {
		out[i] = &pb.FxAffectedTransaction{TransactionId: a.TransactionID, GrantId: a.GrantID, Type: a.Type,
			Amount: moneyPB(a.Amount, a.Currency), AgreementAmount: moneyPB(a.AgreementAmount, a.AgreementCurrency),
			ReportingAmount: moneyPB(a.ReportingAmount, a.ReportingCurrency), ValueDate: date(a.ValueDate), RateRevision: int32(a.RateRevision)}
	}
	return out
}

func (s *fxService) SupersedeFxRate(ctx context.Context, req *pb.SupersedeFxRateRequest) (*pb.SupersedeFxRateResponse, error) {
	r := req.GetRate()
	var p parser
	in := fx.SupersedeInput{Currency: r.GetCurrency(), QuoteCurrency: r.GetQuoteCurrency(), Date: p.date("rate.date", r.GetDate()),
		Rate: p.decimal("rate.rate", r.GetRate()), Source: r.GetSource(), ConfirmLargeChange: r.GetConfirmLargeChange(), Reason: req.GetReason()}
	if err := p.err(); err != nil {
		return nil, err
	}
	c, err := s.fx.Supersede(ctx, in, req.GetRequestId())
	if err != nil {
		return nil, domainErr(err, "") // SupersedeInput names fields by request path already
	}
	return &pb.SupersedeFxRateResponse{Rate: fxRatePB(c.Rate), Superseded: fxRatePB(c.Superseded),
		AffectedTransactions: fxAffectedPB(c.Affected), NextPageToken: c.NextPageToken}, nil
}

func (s *fxService) ListFxAffectedTransactions(ctx context.Context, req *pb.ListFxAffectedTransactionsRequest) (*pb.ListFxAffectedTransactionsResponse, error) {
	var p parser
	d := p.date("date", req.GetDate())
	if err := p.err(); err != nil {
		return nil, err
	}
	list, next, err := s.fx.ListAffected(ctx, req.GetCurrency(), req.GetQuoteCurrency(), d, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, domainErr(err, "")
	}
	return &pb.ListFxAffectedTransactionsResponse{AffectedTransactions: fxAffectedPB(list), NextPageToken: next}, nil
}
