package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// Every role against every ledger endpoint, over gRPC: allowed calls succeed,
// the rest are PERMISSION_DENIED, or NOT_FOUND where the caller may not even
// know the grant exists (another donor's or another partner's grant).
func TestEveryRoleAgainstEveryLedgerEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	roadmaps := pb.NewRoadmapServiceClient(h.conn)
	grants := pb.NewGrantServiceClient(h.conn)
	fxs := pb.NewFxRateServiceClient(h.conn)
	n := 0
	rid := func() string { n++; return fmt.Sprint("r-", n) }
	org := func(kind string) string { return h.org(t, admin, kind) }
	donor, otherDonor, ngo, otherNgo := org("DONOR"), org("DONOR"), org("IMPLEMENTER"), org("IMPLEMENTER")
	rm, err := roadmaps.CreateRoadmap(admin, &pb.CreateRoadmapRequest{Roadmap: &pb.Roadmap{Country: "AFG", Title: "Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}, RequestId: rid()})
	if err != nil {
		t.Fatal(err)
	}
	roadmapID := rm.Roadmap.Id
	ms, err := roadmaps.CreateMilestone(admin, &pb.CreateMilestoneRequest{RoadmapId: roadmapID, RequestId: rid(), Milestone: &pb.Milestone{
		Code: "M-1", Title: "Clearance", ActivityType: "CLEARANCE", ResponsibleOrgId: ngo,
		FundingRequirement: &pb.Money{Amount: "1000000.00", Currency: "USD"}}})
	if err != nil {
		t.Fatal(err)
	}
	milestoneID := ms.Milestone.Id
	usd := func(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }
	g, err := grants.CreateGrant(admin, &pb.CreateGrantRequest{RequestId: rid(), Grant: &pb.Grant{RoadmapId: roadmapID, DonorOrgId: donor,
		RecipientOrgId: ngo, Reference: "G-1", Title: "Grant", Currency: "USD", Pledged: usd("1000.00"), StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	grantID := g.Grant.Id
	if _, err := grants.RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: grantID, RequestId: rid(),
		Transaction: &pb.Transaction{Type: "COMMITMENT", Amount: usd("1000.00"), ValueDate: "2024-02-01"}}); err != nil {
		t.Fatal(err)
	}

	roles := []struct {
		name string
		ctx  context.Context
	}{
		{"admin", admin},
		{"coordinator", h.as(t, auth.Coordinator, "")},
		{"donor", h.as(t, auth.Donor, donor)},
		{"other donor", h.as(t, auth.Donor, otherDonor)},
		{"implementer", h.as(t, auth.Implementer, ngo)},
		{"other implementer", h.as(t, auth.Implementer, otherNgo)},
		{"auditor", h.as(t, auth.Auditor, "")},
	}
	const (
		OK = codes.OK
		PD = codes.PermissionDenied
		NF = codes.NotFound
	)
	disburse := func() *pb.Transaction {
		return &pb.Transaction{GrantId: grantID, Type: "DISBURSEMENT", Amount: usd("1.00"), ValueDate: "2024-03-01", Reference: rid()}
	}
	endpoints := []struct {
		name string
		call func(ctx context.Context) error
		want [7]codes.Code // in the order of roles above
	}{
		{"CreateRoadmap", func(ctx context.Context) error {
			_, err := roadmaps.CreateRoadmap(ctx, &pb.CreateRoadmapRequest{RequestId: rid(), Roadmap: &pb.Roadmap{Country: "AFG", Title: "x",
				StartDate: "2024-01-01", EndDate: "2024-12-31", ReportingCurrency: "USD"}})
			return err
		}, [7]codes.Code{OK, OK, PD, PD, PD, PD, PD}},
		{"GetRoadmap", func(ctx context.Context) error {
			_, err := roadmaps.GetRoadmap(ctx, &pb.GetRoadmapRequest{RoadmapId: roadmapID})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
		{"ListRoadmaps", func(ctx context.Context) error {
			_, err := roadmaps.ListRoadmaps(ctx, &pb.ListRoadmapsRequest{})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
		{"CreateMilestone", func(ctx context.Context) error {
			_, err := roadmaps.CreateMilestone(ctx, &pb.CreateMilestoneRequest{RoadmapId: roadmapID, RequestId: rid(), Milestone: &pb.Milestone{
				Code: rid(), Title: "x", ActivityType: "EORE", FundingRequirement: usd("1.00")}})
			return err
		}, [7]codes.Code{OK, OK, PD, PD, PD, PD, PD}},
		{"GetMilestone", func(ctx context.Context) error {
			_, err := roadmaps.GetMilestone(ctx, &pb.GetMilestoneRequest{MilestoneId: milestoneID})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
		{"ListMilestones", func(ctx context.Context) error {
			_, err := roadmaps.ListMilestones(ctx, &pb.ListMilestonesRequest{RoadmapId: roadmapID})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
		{"ReportProgress", func(ctx context.Context) error {
			_, err := roadmaps.ReportProgress(ctx, &pb.ReportProgressRequest{MilestoneId: milestoneID, AchievedQuantity: "10", AsOf: "2024-05-01", RequestId: rid()})
			return err
		}, [7]codes.Code{OK, OK, PD, PD, OK, PD, PD}},
		{"SetMilestoneStatus", func(ctx context.Context) error {
			_, err := roadmaps.SetMilestoneStatus(ctx, &pb.SetMilestoneStatusRequest{MilestoneId: milestoneID, Status: "IN_PROGRESS", RequestId: rid()})
			return err
		}, [7]codes.Code{OK, OK, PD, PD, PD, PD, PD}},
		{"GetCoverage", func(ctx context.Context) error {
			_, err := roadmaps.GetCoverage(ctx, &pb.GetCoverageRequest{RoadmapId: roadmapID})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
		{"CreateGrant (donor's organisation)", func(ctx context.Context) error {
			_, err := grants.CreateGrant(ctx, &pb.CreateGrantRequest{RequestId: rid(), Grant: &pb.Grant{RoadmapId: roadmapID, DonorOrgId: donor,
				RecipientOrgId: ngo, Reference: rid(), Title: "x", Currency: "USD", Pledged: usd("1.00"), StartDate: "2024-01-01", EndDate: "2024-12-31"}})
			return err
		}, [7]codes.Code{OK, PD, OK, PD, PD, PD, PD}},
		{"GetGrant", func(ctx context.Context) error {
			_, err := grants.GetGrant(ctx, &pb.GetGrantRequest{GrantId: grantID})
			return err
		}, [7]codes.Code{OK, OK, OK, NF, OK, NF, OK}},
		{"ListGrants", func(ctx context.Context) error {
			_, err := grants.ListGrants(ctx, &pb.ListGrantsRequest{})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
		{"SetAllocations", func(ctx context.Context) error {
			_, err := grants.SetAllocations(ctx, &pb.SetAllocationsRequest{GrantId: grantID, RequestId: rid()})
			return err
		}, [7]codes.Code{OK, PD, OK, NF, PD, PD, PD}},
		{"RecordTransaction (disbursement)", func(ctx context.Context) error {
			_, err := grants.RecordTransaction(ctx, &pb.RecordTransactionRequest{GrantId: grantID, RequestId: rid(), Transaction: disburse()})
			return err
		}, [7]codes.Code{OK, PD, OK, NF, PD, NF, PD}},
		{"RecordTransaction (receipt)", func(ctx context.Context) error {
			_, err := grants.RecordTransaction(ctx, &pb.RecordTransactionRequest{GrantId: grantID, RequestId: rid(),
				Transaction: &pb.Transaction{Type: "RECEIPT", Amount: usd("1.00"), ValueDate: "2024-03-02", Reference: "R"}})
			return err
		}, [7]codes.Code{OK, PD, PD, NF, OK, NF, PD}},
		{"ListTransactions", func(ctx context.Context) error {
			_, err := grants.ListTransactions(ctx, &pb.ListTransactionsRequest{GrantId: grantID})
			return err
		}, [7]codes.Code{OK, OK, OK, NF, OK, NF, OK}},
		{"BatchRecordTransactions", func(ctx context.Context) error {
			_, err := grants.BatchRecordTransactions(ctx, &pb.BatchRecordTransactionsRequest{RequestId: rid(), Transactions: []*pb.Transaction{disburse()}})
			return err
		}, [7]codes.Code{OK, PD, OK, NF, PD, NF, PD}},
		{"GetReconciliation", func(ctx context.Context) error {
			_, err := grants.GetReconciliation(ctx, &pb.GetReconciliationRequest{GrantId: grantID})
			return err
		}, [7]codes.Code{OK, OK, OK, NF, OK, NF, OK}},
		{"CreateFxRates", func(ctx context.Context) error {
			_, err := fxs.CreateFxRates(ctx, &pb.CreateFxRatesRequest{Rates: []*pb.FxRate{{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.9"}}})
			return err
		}, [7]codes.Code{OK, OK, PD, PD, PD, PD, PD}},
		{"ListFxRates", func(ctx context.Context) error {
			_, err := fxs.ListFxRates(ctx, &pb.ListFxRatesRequest{})
			return err
		}, [7]codes.Code{OK, OK, OK, OK, OK, OK, OK}},
	}
	for _, e := range endpoints {
		for i, r := range roles {
			err := e.call(r.ctx)
			if got := status.Code(err); got != e.want[i] {
				t.Errorf("%s as %s: %v (%v), want %v", e.name, r.name, got, err, e.want[i])
			}
		}
	}
	// Refusals leak nothing: the other donor's NOT_FOUND carries no grant data.
	_, err = grants.GetGrant(roles[3].ctx, &pb.GetGrantRequest{GrantId: grantID})
	if s := status.Convert(err).Message(); strings.Contains(s, "G-1") || strings.Contains(s, donor) {
		t.Fatalf("NOT_FOUND message leaks grant data: %q", s)
	}
}
