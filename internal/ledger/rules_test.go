package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
)

// fields lists the fields an InvalidError names, in its order.
func fields(err error) []string {
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) {
		return nil
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

// The same cases through the single-entry path and the batch path give the
// same answers: accept, refuse on each invariant, replay, reverse twice.
func TestOneTableThroughBothWritePaths(t *testing.T) {
	t.Parallel()
	type step struct {
		name string
		in   func(g ledger.Grant, prev []ledger.Transaction) ledger.EntryInput
		rid  string // request id; a repeat replays
		want error  // nil: accepted
	}
	entry := func(typ, amount string) func(ledger.Grant, []ledger.Transaction) ledger.EntryInput {
		return func(g ledger.Grant, _ []ledger.Transaction) ledger.EntryInput {
			return ledger.EntryInput{GrantID: id(g.ID), Type: typ, Amount: amt(amount, "USD"), ValueDate: day("2024-03-01"), Reference: "R-" + typ}
		}
	}
	reverseStep := func(i int) func(ledger.Grant, []ledger.Transaction) ledger.EntryInput {
		return func(g ledger.Grant, prev []ledger.Transaction) ledger.EntryInput {
			return ledger.EntryInput{GrantID: id(g.ID), Type: "REVERSAL", ReversesID: id(prev[i].ID), ValueDate: day("2024-03-02")}
		}
	}
	steps := []step{
		{"commit", entry("COMMITMENT", "100.00"), "s-1", nil},
		{"disburse within", entry("DISBURSEMENT", "60.00"), "s-2", nil},
		{"disburse beyond committed", entry("DISBURSEMENT", "40.01"), "s-3", apperr.ErrFailedPrecondition},
		{"commit below zero", entry("COMMITMENT", "-100.01"), "s-4", apperr.ErrFailedPrecondition},
		{"commit below disbursed", entry("COMMITMENT", "-40.01"), "s-5", apperr.ErrFailedPrecondition},
		{"pledge below zero", entry("PLEDGE", "-0.01"), "s-6", apperr.ErrFailedPrecondition},
		{"replay of the disbursement", entry("DISBURSEMENT", "60.00"), "s-2", nil},
		{"same id, other payload", entry("DISBURSEMENT", "1.00"), "s-2", apperr.ErrAlreadyExists},
		{"reverse the disbursement", reverseStep(1), "s-7", nil},
		{"replay of the reversal", reverseStep(1), "s-7", nil},
		{"reverse it again", reverseStep(1), "s-8", apperr.ErrFailedPrecondition},
	}
	paths := map[string]func(w *world, ctx context.Context, in ledger.EntryInput, rid string) (ledger.Transaction, error){
		"single": func(w *world, ctx context.Context, in ledger.EntryInput, rid string) (ledger.Transaction, error) {
			return w.l.RecordTransaction(ctx, in, rid)
		},
		"batch": func(w *world, ctx context.Context, in ledger.EntryInput, rid string) (ledger.Transaction, error) {
			out, err := w.l.BatchRecord(ctx, []ledger.EntryInput{in}, rid)
			if err != nil {
				return ledger.Transaction{}, err
			}
			return out[0], nil
		},
	}
	for name, record := range paths {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			g := w.grant("USD", "BOTH", "0")
			dn := w.donor(g)
			var done []ledger.Transaction
			first := map[string]ledger.Transaction{}
			for _, s := range steps {
				got, err := record(w, dn, s.in(g, done), s.rid)
				switch {
				case s.want == nil && err != nil:
					t.Fatalf("%s: %v", s.name, err)
				case s.want != nil && !errors.Is(err, s.want):
					t.Fatalf("%s: got %v, want %v", s.name, err, s.want)
				case s.want == nil:
					if prev, ok := first[s.rid]; ok {
						if got.ID != prev.ID {
							t.Fatalf("%s: replay answered entry %s, want %s", s.name, got.ID, prev.ID)
						}
						continue
					}
					first[s.rid] = got
					done = append(done, got)
				}
			}
			r := try(w.l.Reconcile(coord, id(g.ID), day(""))).must(t)
			eq(t, "committed", r.Agreement.Committed, "100.00")
			eq(t, "disbursed", r.Agreement.Disbursed, "0.00")
			if len(done) != 3 {
				t.Errorf("%d entries recorded, want 3", len(done))
			}
			checkReplay(t, w)
		})
	}
}

// A reversal takes the milestone of the entry it cancels: naming another
// would move money from one milestone's coverage to another's.
func TestReversalKeepsItsOriginalsMilestone(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "MS", "0")
	dn := w.donor(g)
	w.record(dn, g, "COMMITMENT", "100.00", "USD", "2024-02-01", "", milestone(w.m1.ID))
	c := w.record(dn, g, "COMMITMENT", "50.00", "USD", "2024-02-01", "", milestone(w.m1.ID))
	for _, path := range []string{"single", "batch"} {
		in := ledger.EntryInput{GrantID: id(g.ID), Type: "REVERSAL", ReversesID: id(c.ID), MilestoneID: id(w.m2.ID), ValueDate: day("2024-03-01")}
		var err error
		if path == "single" {
			_, err = w.l.RecordTransaction(dn, in, "rev-"+path)
		} else {
			_, err = w.l.BatchRecord(dn, []ledger.EntryInput{in}, "rev-"+path)
		}
		want := map[string]string{"single": "milestoneId", "batch": "[0].milestoneId"}[path]
		if got := fields(err); len(got) != 1 || got[0] != want {
			t.Fatalf("%s: reversal naming another milestone: %v, want a violation on %s", path, err, want)
		}
	}
	// Without a milestone, or with its own, it takes the original's.
	rev := w.record(dn, g, "REVERSAL", "", "", "2024-03-01", "", func(e *ledger.EntryInput) { e.ReversesID = id(c.ID) })
	if rev.MilestoneID != w.m1.ID {
		t.Fatalf("reversal on milestone %q, want %s", rev.MilestoneID, w.m1.ID)
	}
	cov := try(w.roadmaps.Coverage(coord, id(w.roadmap.ID), w.l)).must(t)
	for _, m := range cov.Milestones {
		want := map[string]string{w.m1.ID: "100.00", w.m2.ID: "0"}[m.MilestoneID]
		eq(t, "committed on "+m.Code, m.Committed, want)
	}
}

// Entries of another donor's grant read as absent: the refusal says the same
// whether the entry exists elsewhere or not at all.
func TestReversalRefusalTellsNothingOfOtherGrants(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	mine := w.grant("USD", "MINE", "0")
	theirs := w.grant("EUR", "THEIRS", "0")
	theirEntry := w.record(w.donor(theirs), theirs, "COMMITMENT", "5.00", "EUR", "2024-02-01", "")
	answer := func(entry string) string {
		_, err := w.l.RecordTransaction(w.donor(mine), ledger.EntryInput{GrantID: id(mine.ID), Type: "REVERSAL",
			ReversesID: id(entry), ValueDate: day("2024-03-01")}, "r-"+entry)
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) {
			t.Fatalf("reversing %s: %v", entry, err)
		}
		return strings.ReplaceAll(inv.Violations[0].Description, entry, "<id>")
	}
	if a, b := answer(theirEntry.ID), answer("01a2195f-dc3c-70c2-82d7-4f0ad8a83b00"); a != b {
		t.Fatalf("an existing entry of another grant answers %q, an unknown one %q", a, b)
	}
}

// A batch replayed by a caller who may not record it gets nothing back. Only
// callers of one organisation share request ids: a pooled fund gives grants
// (a donor token) and receives them (an implementer token).
func TestBatchReplayChecksTheCallerFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pool := try(org.New(w.db.App).Create(coord, org.Organization{Name: "Pooled fund", Kind: "POOLED_FUND"}, "o-pool")).must(t).ID
	g := try(w.l.CreateGrant(as(auth.Donor, pool), ledger.GrantInput{RoadmapID: id(w.roadmap.ID), DonorOrgID: id(pool),
		RecipientOrgID: id(w.impl), Reference: "PF-1", Title: "From the fund", Currency: "USD", Pledged: amt("10.00", "USD"),
		StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}, "g-pf")).must(t)
	in := []ledger.EntryInput{{GrantID: id(g.ID), Type: "COMMITMENT", Amount: amt("10.00", "USD"), ValueDate: day("2024-02-01")}}
	try(w.l.BatchRecord(as(auth.Donor, pool), in, "b-1")).must(t)
	// The fund's implementer token shares the fund's request ids, but may
	// not read a grant the fund gives: the replay must not answer it.
	out, err := w.l.BatchRecord(as(auth.Implementer, pool), in, "b-1")
	if !errors.Is(err, apperr.ErrNotFound) || len(out) > 0 {
		t.Fatalf("the fund's implementer replaying the fund's donor batch: %d entries, %v", len(out), err)
	}
	for name, ctx := range map[string]context.Context{
		"auditor":      as(auth.Auditor, ""),
		"no principal": context.Background(),
	} {
		if out, err := w.l.BatchRecord(ctx, in, "b-1"); !errors.Is(err, apperr.ErrPermissionDenied) || len(out) > 0 {
			t.Errorf("%s: %d entries, %v, want PERMISSION_DENIED", name, len(out), err)
		}
	}
}

// Naming another donor's grant neither waits on its row lock nor tells, by
// waiting, that it exists: the caller's rights are settled first.
func TestOtherDonorsGrantIsNotLocked(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	theirs := w.grant("EUR", "THEIRS", "0")
	w.record(w.donor(theirs), theirs, "COMMITMENT", "100.00", "EUR", "2024-02-01", "")
	ctx := context.Background()
	holder := try(w.db.Owner.Begin(ctx)).must(t)
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `SELECT FROM grant_balances WHERE grant_id = $1 FOR UPDATE`, theirs.ID); err != nil {
		t.Fatal(err)
	}
	me := as(auth.Donor, w.donors["USD"])
	for name, call := range map[string]func(context.Context) error{
		"batch": func(c context.Context) error {
			_, err := w.l.BatchRecord(c, []ledger.EntryInput{{GrantID: id(theirs.ID), Type: "DISBURSEMENT", Amount: amt("1.00", "EUR"),
				ValueDate: day("2024-03-01")}}, "lock-b")
			return err
		},
		"allocations": func(c context.Context) error {
			_, err := w.l.SetAllocations(c, id(theirs.ID), nil, "lock-a")
			return err
		},
	} {
		c, cancel := context.WithTimeout(me, 2*time.Second)
		err := call(c)
		cancel()
		if !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("%s on another donor's locked grant: %v, want NOT_FOUND at once", name, err)
		}
	}
}

// Request ids belong to the caller: another donor's use of an id neither
// blocks this donor nor tells it the id exists.
func TestRequestIDsAreTheCallersOwn(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a := w.grant("USD", "A", "0")
	b := w.grant("EUR", "B", "0")
	ta := w.l
	first := try(ta.RecordTransaction(w.donor(a), ledger.EntryInput{GrantID: id(a.ID), Type: "COMMITMENT", Amount: amt("1.00", "USD"), ValueDate: day("2024-02-01")}, "t-1")).must(t)
	second := try(ta.RecordTransaction(w.donor(b), ledger.EntryInput{GrantID: id(b.ID), Type: "COMMITMENT", Amount: amt("2.00", "EUR"), ValueDate: day("2024-02-01")}, "t-1")).must(t)
	if first.ID == second.ID || second.GrantID != b.ID {
		t.Fatalf("donor B's t-1 answered %+v", second)
	}
	// Batches and grant creation are scoped the same way.
	try(ta.BatchRecord(w.donor(a), []ledger.EntryInput{{GrantID: id(a.ID), Type: "PLEDGE", Amount: amt("1.00", "USD"), ValueDate: day("2024-02-01")}}, "b-1")).must(t)
	try(ta.BatchRecord(w.donor(b), []ledger.EntryInput{{GrantID: id(b.ID), Type: "PLEDGE", Amount: amt("1.00", "EUR"), ValueDate: day("2024-02-01")}}, "b-1")).must(t)
}

// A retried setAllocations answers the allocations it set, not today's.
func TestSetAllocationsReplayAnswersTheOriginal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "ALLOC", "0")
	dn := w.donor(g)
	w.record(dn, g, "COMMITMENT", "1000.00", "USD", "2024-02-01", "")
	firstIn := []ledger.AllocationInput{{MilestoneID: id(w.m1.ID), Amount: amt("300.00", "USD")}}
	first := try(w.l.SetAllocations(dn, id(g.ID), firstIn, "a-1")).must(t)
	try(w.l.SetAllocations(dn, id(g.ID), []ledger.AllocationInput{{MilestoneID: id(w.m2.ID), Amount: amt("700.00", "USD")}}, "a-2")).must(t)
	w.record(dn, g, "PLEDGE", "5.00", "USD", "2024-02-01", "")
	again := try(w.l.SetAllocations(dn, id(g.ID), firstIn, "a-1")).must(t)
	if fmt.Sprint(again.Allocations) != fmt.Sprint(first.Allocations) || !again.Pledged.Equal(first.Pledged) {
		t.Fatalf("retry answered %v, the first answer was %v", again.Allocations, first.Allocations)
	}
	now := try(w.l.GetGrant(dn, id(g.ID))).must(t)
	if len(now.Allocations) != 1 || now.Allocations[0].MilestoneID != w.m2.ID {
		t.Fatalf("the retry changed the allocations: %v", now.Allocations)
	}
}

// Grants run from an organisation that funds to one that receives, within
// plausible dates; violations come in the order of the grant's fields.
func TestCreateGrantRules(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	orgs := org.New(w.db.App)
	auditorOrg := try(orgs.Create(coord, org.Organization{Name: "Audit firm", Kind: "AUDITOR"}, "o-aud")).must(t).ID
	pooled := try(orgs.Create(coord, org.Organization{Name: "Pooled fund", Kind: "POOLED_FUND"}, "o-pool")).must(t).ID
	admin := as(auth.Admin, "")
	base := func() ledger.GrantInput {
		return ledger.GrantInput{RoadmapID: id(w.roadmap.ID), DonorOrgID: id(w.donors["USD"]), RecipientOrgID: id(w.impl),
			Reference: "K", Title: "Kinds", Currency: "USD", Pledged: amt("1.00", "USD"), StartDate: day("2024-01-01"), EndDate: day("2025-01-01")}
	}
	tests := []struct {
		name   string
		edit   func(*ledger.GrantInput)
		fields []string
	}{
		{"donor as recipient", func(g *ledger.GrantInput) { g.RecipientOrgID = id(w.donors["EUR"]) }, []string{"recipientOrgId"}},
		{"implementer as donor", func(g *ledger.GrantInput) { g.DonorOrgID = id(w.impl); g.RecipientOrgID = id(pooled) }, []string{"donorOrgId"}},
		{"auditor as recipient", func(g *ledger.GrantInput) { g.RecipientOrgID = id(auditorOrg) }, []string{"recipientOrgId"}},
		{"1900 to 2999", func(g *ledger.GrantInput) { g.StartDate, g.EndDate = day("1900-01-01"), day("2999-12-31") }, []string{"startDate", "endDate"}},
		{"forty years", func(g *ledger.GrantInput) { g.StartDate, g.EndDate = day("2000-01-01"), day("2040-01-02") }, []string{"endDate"}},
		{"many at once, in field order", func(g *ledger.GrantInput) {
			*g = ledger.GrantInput{Currency: "ZZZ", Pledged: amt("1.00", "USD"), EndDate: day("2024-01-01"), StartDate: day("2025-01-01")}
		}, []string{"roadmapId", "donorOrgId", "recipientOrgId", "reference", "title", "currency", "pledged.currency", "endDate"}},
	}
	for i, tc := range tests {
		in := base()
		tc.edit(&in)
		for range 5 { // a map range once gave a different order each time
			_, err := w.l.CreateGrant(admin, in, fmt.Sprint("k-", i))
			if got := fields(err); fmt.Sprint(got) != fmt.Sprint(tc.fields) {
				t.Fatalf("%s: %v, want violations on %v", tc.name, err, tc.fields)
			}
		}
	}
	// A pooled fund both receives and gives.
	in := base()
	in.RecipientOrgID = id(pooled)
	try(w.l.CreateGrant(admin, in, "k-ok")).must(t)
	in.DonorOrgID, in.RecipientOrgID, in.Reference = id(pooled), id(w.impl), "K-2"
	try(w.l.CreateGrant(admin, in, "k-ok-2")).must(t)
}

// The table's CHECK constraints state the invariants the ledger checks.
func TestTableChecksStateTheInvariants(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var defs string
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT string_agg(pg_get_constraintdef(oid), ' ')
		FROM pg_constraint WHERE conrelid = 'grant_balances'::regclass AND contype = 'c'`).Scan(&defs); err != nil {
		t.Fatal(err)
	}
	for _, rule := range ledger.InvariantRules() {
		if !strings.Contains(defs, rule) {
			t.Errorf("no CHECK states %s (constraints: %s)", rule, defs)
		}
	}
}

// A retried CreateGrant answers the grant as first created, not as its
// journal has moved since.
func TestCreateGrantReplayAnswersTheOriginal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	dn := as(auth.Donor, w.donors["USD"])
	in := ledger.GrantInput{RoadmapID: id(w.roadmap.ID), DonorOrgID: id(w.donors["USD"]), RecipientOrgID: id(w.impl),
		Reference: "R-1", Title: "Replayed", Currency: "USD", Pledged: amt("100.00", "USD"), StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}
	first := try(w.l.CreateGrant(dn, in, "cg-1")).must(t)
	w.record(dn, first, "PLEDGE", "50.00", "USD", "2024-02-01", "")
	w.record(dn, first, "COMMITMENT", "100.00", "USD", "2024-02-01", "")
	try(w.l.SetAllocations(dn, id(first.ID), []ledger.AllocationInput{{MilestoneID: id(w.m1.ID), Amount: amt("10.00", "USD")}}, "al-1")).must(t)
	again := try(w.l.CreateGrant(dn, in, "cg-1")).must(t)
	if again.ID != first.ID || !again.Pledged.Equal(first.Pledged) || len(again.Allocations) != 0 || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("retry answered %+v, first answer %+v", again, first)
	}
	if now := try(w.l.GetGrant(dn, id(first.ID))).must(t); !now.Pledged.Equal(d("150.00")) {
		t.Fatalf("the grant now pledges %s, want 150.00", now.Pledged)
	}
}
