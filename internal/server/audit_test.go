package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// TestAuditVisibilityEndToEnd drives grants, allocations, single entries and
// a batch across three grants through the API, then lists the audit trail as
// every role: an event about a grant (its creation, allocations, entries, its
// part of a batch) is listed to a caller exactly when GetGrant lets the caller
// read that grant, and the auditor sees every event.
func TestAuditVisibilityEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.as(t, auth.Admin, "")
	roadmaps := pb.NewRoadmapServiceClient(h.conn)
	grants := pb.NewGrantServiceClient(h.conn)
	events := pb.NewAuditServiceClient(h.conn)
	n := 0
	rid := func() string { n++; return fmt.Sprint("r-", n) }
	check := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	org := func(kind string) string { return h.org(t, admin, kind) }
	donorA, donorB, implI, implJ := org("DONOR"), org("DONOR"), org("IMPLEMENTER"), org("IMPLEMENTER")
	rm, err := roadmaps.CreateRoadmap(admin, &pb.CreateRoadmapRequest{Roadmap: &pb.Roadmap{Country: "AFG", Title: "Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}, RequestId: rid()})
	check(rm, err)
	ms, err := roadmaps.CreateMilestone(admin, &pb.CreateMilestoneRequest{RoadmapId: rm.Roadmap.Id, RequestId: rid(), Milestone: &pb.Milestone{
		Code: "M-1", Title: "Clearance", ActivityType: "CLEARANCE", ResponsibleOrgId: implI,
		FundingRequirement: &pb.Money{Amount: "1000000.00", Currency: "USD"}}})
	check(ms, err)
	usd := func(a string) *pb.Money { return &pb.Money{Amount: a, Currency: "USD"} }
	grant := func(donor, recipient string) string {
		g, err := grants.CreateGrant(admin, &pb.CreateGrantRequest{RequestId: rid(), Grant: &pb.Grant{RoadmapId: rm.Roadmap.Id, DonorOrgId: donor,
			RecipientOrgId: recipient, Reference: rid(), Title: "Grant", Currency: "USD", Pledged: usd("1000.00"), StartDate: "2024-01-01", EndDate: "2025-12-31"}})
		check(g, err)
		id := g.Grant.Id
		check(grants.RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: id, RequestId: rid(),
			Transaction: &pb.Transaction{Type: "COMMITMENT", Amount: usd("1000.00"), ValueDate: "2024-02-01"}}))
		check(grants.SetAllocations(admin, &pb.SetAllocationsRequest{GrantId: id, RequestId: rid(),
			Allocations: []*pb.Allocation{{MilestoneId: ms.Milestone.Id, Amount: usd("100.00")}}}))
		check(grants.RecordTransaction(admin, &pb.RecordTransactionRequest{GrantId: id, RequestId: rid(),
			Transaction: &pb.Transaction{Type: "DISBURSEMENT", Amount: usd("10.00"), ValueDate: "2024-03-01", Reference: "P-" + id}}))
		return id
	}
	g1, g2, g3 := grant(donorA, implI), grant(donorB, implI), grant(donorB, implJ)
	check(grants.RecordTransaction(h.as(t, auth.Implementer, implI), &pb.RecordTransactionRequest{GrantId: g1, RequestId: rid(),
		Transaction: &pb.Transaction{Type: "RECEIPT", Amount: usd("10.00"), ValueDate: "2024-03-02", Reference: "P-" + g1}}))
	batch := &pb.BatchRecordTransactionsRequest{RequestId: rid()}
	for _, g := range []string{g1, g2, g3} {
		batch.Transactions = append(batch.Transactions, &pb.Transaction{GrantId: g, Type: "DISBURSEMENT", Amount: usd("1.00"),
			ValueDate: "2024-03-05", Reference: "B-" + g})
	}
	check(grants.BatchRecordTransactions(admin, batch))

	list := func(ctx context.Context) []*pb.AuditEvent {
		t.Helper()
		var out []*pb.AuditEvent
		for token := ""; ; {
			r, err := events.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 7, PageToken: token})
			check(r, err)
			out = append(out, r.Events...)
			if token = r.NextPageToken; token == "" {
				return out
			}
		}
	}
	// grantOf names the grant an event is about, "" for other events.
	grantOf := func(e *pb.AuditEvent) string {
		switch e.EntityType {
		case "grant":
			return e.EntityId
		case "transaction", "transaction_batch":
			var c struct{ GrantID string }
			if err := json.Unmarshal([]byte(e.Change), &c); err != nil || c.GrantID == "" {
				t.Fatalf("event %d: no grant in %s", e.Id, e.Change)
			}
			return c.GrantID
		}
		return ""
	}
	all := list(h.as(t, auth.Auditor, ""))
	batchEvents := map[string]bool{}
	for _, e := range all {
		if e.EntityType == "transaction_batch" {
			batchEvents[grantOf(e)] = true
		}
	}
	if len(batchEvents) != 3 {
		t.Fatalf("auditor sees batch events of %d grants, want 3", len(batchEvents))
	}
	for _, c := range []struct {
		name      string
		role      auth.Role
		org       string
		readable  []string // grants the caller reads
		batchSeen []string // grants whose batch event it sees
	}{
		{"donor A", auth.Donor, donorA, []string{g1}, []string{g1}},
		{"donor B", auth.Donor, donorB, []string{g2, g3}, []string{g2, g3}},
		{"implementer I", auth.Implementer, implI, []string{g1, g2}, []string{g1, g2}},
		{"implementer J", auth.Implementer, implJ, []string{g3}, []string{g3}},
		{"coordinator", auth.Coordinator, "", []string{g1, g2, g3}, []string{g1, g2, g3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := h.as(t, c.role, c.org)
			for _, g := range []string{g1, g2, g3} {
				_, err := grants.GetGrant(ctx, &pb.GetGrantRequest{GrantId: g})
				readable := err == nil
				if want := slices.Contains(c.readable, g); readable != want || (err != nil && status.Code(err) != codes.NotFound) {
					t.Fatalf("GetGrant(%s): %v, want readable %v", g, err, want)
				}
			}
			seen := map[int64]bool{}
			batches := map[string]bool{}
			for _, e := range list(ctx) {
				seen[e.Id] = true
				if g := grantOf(e); g != "" && !slices.Contains(c.readable, g) {
					t.Errorf("sees %s event %d of grant %s, which it cannot read", e.EntityType, e.Id, g)
				}
				if e.EntityType == "transaction_batch" {
					batches[grantOf(e)] = true
				}
			}
			// Every event about a grant it reads, and every public record's, is listed.
			for _, e := range all {
				g := grantOf(e)
				public := e.EntityType == "organization" || e.EntityType == "roadmap" || e.EntityType == "milestone"
				if (public || (g != "" && slices.Contains(c.readable, g))) && !seen[e.Id] {
					t.Errorf("does not see %s event %d (grant %q)", e.EntityType, e.Id, g)
				}
			}
			if len(batches) != len(c.batchSeen) {
				t.Errorf("sees batch events of %d grants, want %v", len(batches), c.batchSeen)
			}
		})
	}
}
