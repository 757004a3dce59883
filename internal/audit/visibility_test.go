package audit_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// TestListVisibility records events shaped as the domains record them (entity
// type, subject organisations) and checks who sees which: a donor the events
// of the grants it gives, an implementer those of the grants it receives,
// each its own organisation's tokens, everyone the public records, the
// unbound roles everything. internal/server's TestAuditVisibilityEndToEnd
// checks the ledger records its events this way.
func TestListVisibility(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	donorA, donorB, implI, implJ := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	batch := uuid.NewString()
	// label → event; subjects of a grant's events are its donor, then its recipient.
	events := []struct {
		label, entityType, entityID string
		subjects                    []string
	}{
		{"org A", "organization", donorA, []string{donorA}},
		{"org J", "organization", implJ, []string{implJ}},
		{"roadmap", "roadmap", uuid.NewString(), nil},
		{"milestone", "milestone", uuid.NewString(), []string{implI}},
		{"fx", "fx_rates", "3 rates", nil},
		{"token A", "token", uuid.NewString(), []string{donorA}},
		{"token I", "token", uuid.NewString(), []string{implI}},
		{"token unbound", "token", uuid.NewString(), nil},
		{"grant A→I", "grant", uuid.NewString(), []string{donorA, implI}},
		{"allocations A→I", "grant", uuid.NewString(), []string{donorA, implI}},
		{"entry A→I", "transaction", uuid.NewString(), []string{donorA, implI}},
		{"batch A→I", "transaction_batch", batch, []string{donorA, implI}},
		{"batch B→I", "transaction_batch", batch, []string{donorB, implI}},
		{"grant B→J", "grant", uuid.NewString(), []string{donorB, implJ}},
		{"entry B→J", "transaction", uuid.NewString(), []string{donorB, implJ}},
		// A named as the recipient of B's grant: a donor reads the grants it
		// gives, not those naming it as recipient.
		{"grant B→A", "grant", uuid.NewString(), []string{donorB, donorA}},
		{"entry B→A", "transaction", uuid.NewString(), []string{donorB, donorA}},
		{"item A→I", "procurement_item", uuid.NewString(), []string{donorA, implI}},
		// Reviews of flags name the parties to the flag's grants with their
		// role: one about A's and B's grants to I and J, one about B→J, and
		// one about B→A, which A sees as recipient only.
		{"flag", "flag", uuid.NewString(), []string{"donor:" + donorA, "donor:" + donorB, "recipient:" + implI, "recipient:" + implJ}},
		{"flag B→J", "flag", uuid.NewString(), []string{"donor:" + donorB, "recipient:" + implJ}},
		{"flag B→A", "flag", uuid.NewString(), []string{"donor:" + donorB, "recipient:" + donorA}},
		// A type without a visibility rule: unbound roles only.
		{"unknown A→I", "something_new", uuid.NewString(), []string{donorA, implI}},
	}
	ctx := coordinator()
	err := postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
		for _, e := range events {
			if err := audit.Record(ctx, tx, audit.Entry{EntityType: e.entityType, EntityID: e.entityID, SubjectOrgs: e.subjects,
				Change: map[string]string{"label": e.label}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Half the events sealed, so both sealed and pending events are listed.
	s := audit.New(db.App)
	s.Sealer().BatchSize = len(events) / 2
	if _, err := s.Sealer().SealPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, e := range events {
		all = append(all, e.label)
	}
	public := []string{"org A", "org J", "roadmap", "milestone", "fx"}
	tests := []struct {
		name string
		p    auth.Principal
		want []string
	}{
		{"auditor", auth.Principal{Role: auth.Auditor}, all},
		{"coordinator", auth.Principal{Role: auth.Coordinator}, all},
		{"admin", auth.Principal{Role: auth.Admin}, all},
		{"donor A", auth.Principal{Role: auth.Donor, OrgID: donorA},
			append(slices.Clone(public), "token A", "grant A→I", "allocations A→I", "entry A→I", "batch A→I", "item A→I", "flag")},
		{"donor B", auth.Principal{Role: auth.Donor, OrgID: donorB},
			append(slices.Clone(public), "batch B→I", "grant B→J", "entry B→J", "grant B→A", "entry B→A", "flag", "flag B→J", "flag B→A")},
		{"implementer I", auth.Principal{Role: auth.Implementer, OrgID: implI},
			append(slices.Clone(public), "token I", "grant A→I", "allocations A→I", "entry A→I", "batch A→I", "batch B→I", "item A→I", "flag")},
		{"implementer J", auth.Principal{Role: auth.Implementer, OrgID: implJ},
			append(slices.Clone(public), "grant B→J", "entry B→J", "flag", "flag B→J")},
		// An implementer token of A's organisation reads the grants A receives.
		{"implementer A", auth.Principal{Role: auth.Implementer, OrgID: donorA},
			append(slices.Clone(public), "token A", "grant B→A", "entry B→A", "flag B→A")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			token := ""
			for {
				// Pages of 2, so visibility and paging work together.
				page, next, err := s.List(auth.WithPrincipal(context.Background(), tc.p), audit.Filter{PageSize: 2, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					got = append(got, e.Change[len(`{"label":"`):len(e.Change)-2])
				}
				if token = next; token == "" {
					break
				}
			}
			want := slices.Sorted(slices.Values(tc.want))
			if slices.Sort(got); !slices.Equal(got, want) {
				t.Errorf("sees %q\nwant %q", got, want)
			}
		})
	}
}
