package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// importTx runs f in a transaction of the app pool, as an importer does:
// committed when f succeeds, rolled back otherwise.
func importTx(w *world, f func(tx pgx.Tx) error) error {
	return postgres.InTx(context.Background(), w.db.App, f)
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.Owner.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// written is every row an import may write, counted.
func (w *world) written() int {
	return w.count(`SELECT (SELECT count(*) FROM grants) + (SELECT count(*) FROM grant_balances) +
		(SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_events)`)
}

// grantInputs are n grants of the world's USD donor to its implementer.
func (w *world) grantInputs(n int, prefix, pledged string) []ledger.GrantInput {
	in := make([]ledger.GrantInput, n)
	for i := range in {
		in[i] = ledger.GrantInput{RoadmapID: id(w.roadmap.ID), DonorOrgID: id(w.donors["USD"]), RecipientOrgID: id(w.impl),
			Reference: fmt.Sprintf("%s-%d", prefix, i), Title: fmt.Sprintf("Imported grant %d", i), Currency: "USD",
			Pledged: amt(pledged, "USD"), StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}
	}
	return in
}

func (w *world) createGrantsIn(ctx context.Context, in []ledger.GrantInput) ([]ledger.Grant, error) {
	var out []ledger.Grant
	err := importTx(w, func(tx pgx.Tx) error {
		var err error
		out, err = w.l.CreateGrantsIn(ctx, tx, in, "import-1", nil)
		return err
	})
	return out, err
}

func (w *world) recordIn(ctx context.Context, in []ledger.EntryInput) ([]ledger.Transaction, error) {
	var out []ledger.Transaction
	err := importTx(w, func(tx pgx.Tx) error {
		var err error
		out, err = w.l.RecordIn(ctx, tx, in, "import-2", nil)
		return err
	})
	return out, err
}

func sameGrant(t *testing.T, got, want ledger.Grant) {
	t.Helper()
	if got.ID != want.ID || got.RoadmapID != want.RoadmapID || got.DonorOrgID != want.DonorOrgID ||
		got.RecipientOrgID != want.RecipientOrgID || got.Reference != want.Reference || got.Title != want.Title ||
		got.Currency != want.Currency || !got.StartDate.Equal(want.StartDate) || !got.EndDate.Equal(want.EndDate) ||
		!got.Pledged.Equal(want.Pledged) || !got.CreatedAt.Equal(want.CreatedAt) || got.ReportingCurrency != want.ReportingCurrency ||
		len(got.Allocations) != len(want.Allocations) || (got.Allocations == nil) != (want.Allocations == nil) {
		t.Fatalf("grant\n got %+v\nwant %+v", got, want)
	}
}

func TestCreateGrantsInReadsBackAndAudits(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	in := w.grantInputs(25, "IMP", "1000.00")
	in[3].Pledged = amt("0", "USD") // no pledge entry
	in[4].Reference, in[4].Title = "  padded  ", "  Padded title "
	in[5].DonorOrgID, in[5].Currency, in[5].Pledged = id(w.donors["EUR"]), "EUR", amt("900.00", "EUR")
	got := try(w.createGrantsIn(coord, in)).must(t)
	if len(got) != len(in) {
		t.Fatalf("%d grants for %d inputs", len(got), len(in))
	}
	if got[4].Reference != "padded" || got[4].Title != "Padded title" {
		t.Fatalf("texts not trimmed: %q %q", got[4].Reference, got[4].Title)
	}
	for i, g := range got {
		sameGrant(t, g, try(w.l.GetGrant(coord, id(g.ID))).must(t))
		// One grant event each, as CreateGrant writes it.
		if n := w.count(`SELECT count(*) FROM audit_events WHERE entity_type = 'grant' AND entity_id = $1
			AND request_id = 'import-1' AND actor_role = 'coordinator' AND subject_orgs = ARRAY[$2, $3]`,
			g.ID, g.DonorOrgID, g.RecipientOrgID); n != 1 {
			t.Fatalf("grant %d: %d audit events", i, n)
		}
		pledges := w.count(`SELECT count(*) FROM transactions WHERE grant_id = $1 AND type = 'PLEDGE'`, g.ID)
		if want := map[bool]int{true: 0, false: 1}[i == 3]; pledges != want {
			t.Fatalf("grant %d: %d pledge entries, want %d", i, pledges, want)
		}
	}
	eq(t, "EUR grant pledged", got[5].Pledged, "900.00")
	// The grant events carry what CreateGrant's carry: the same keys.
	single := w.grant("USD", "ONE-BY-ONE", "1000.00")
	var bulkKeys, singleKeys []string
	for _, x := range []struct {
		id   string
		keys *[]string
	}{{got[0].ID, &bulkKeys}, {single.ID, &singleKeys}} {
		rows, err := w.db.Owner.Query(context.Background(), `SELECT jsonb_object_keys(change::jsonb) FROM audit_events
			WHERE entity_type = 'grant' AND entity_id = $1 ORDER BY 1`, x.id)
		if err != nil {
			t.Fatal(err)
		}
		*x.keys = try(pgx.CollectRows(rows, pgx.RowTo[string])).must(t)
	}
	if !slices.Equal(bulkKeys, singleKeys) || len(bulkKeys) == 0 {
		t.Fatalf("grant event keys %v, CreateGrant's %v", bulkKeys, singleKeys)
	}
	// The pledges went through the batch path: one event per grant and chunk.
	if n := w.count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch' AND request_id = 'import-1'`); n != 24 {
		t.Fatalf("%d pledge batch events, want 24", n)
	}
	checkReplay(t, w)
	checkChainBatches(t, w)

	// FindGrants reuses them by donor and reference, within the roadmap.
	found := try(ledger.FindGrants(context.Background(), w.db.App, id(w.roadmap.ID), []ledger.DonorReference{
		{DonorOrgID: w.donors["USD"], Reference: "IMP-0"}, {DonorOrgID: w.donors["EUR"], Reference: "IMP-5"},
		{DonorOrgID: w.donors["USD"], Reference: "IMP-5"}, {DonorOrgID: w.donors["USD"], Reference: "NONE"},
	})).must(t)
	if len(found) != 2 {
		t.Fatalf("found %d grants, want 2: %v", len(found), found)
	}
	sameGrant(t, found[ledger.DonorReference{DonorOrgID: w.donors["EUR"], Reference: "IMP-5"}], try(w.l.GetGrant(coord, id(got[5].ID))).must(t))
	other := try(w.roadmaps.Create(coord, roadmapInput(), w.req())).must(t)
	if found := try(ledger.FindGrants(context.Background(), w.db.App, id(other.ID), []ledger.DonorReference{
		{DonorOrgID: w.donors["USD"], Reference: "IMP-0"}})).must(t); len(found) != 0 {
		t.Fatalf("found grants of another roadmap: %v", found)
	}
	if _, err := ledger.FindGrants(context.Background(), w.db.App, id(w.roadmap.ID), []ledger.DonorReference{{DonorOrgID: "x"}}); !slices.Equal(fields(err), []string{"refs[0].donorOrgId"}) {
		t.Fatalf("bad donor id: %v", err)
	}
}

// A bad grant anywhere refuses them all, named by its position, and the
// caller's rollback leaves nothing behind.
func TestCreateGrantsInIsAllOrNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before := w.written()
	tests := []struct {
		name   string
		mutate func(*ledger.GrantInput)
		fields []string
	}{
		{"no title", func(g *ledger.GrantInput) { g.Title = " " }, []string{"grants[7].title"}},
		{"reversed period", func(g *ledger.GrantInput) { g.EndDate = day("2023-01-01") }, []string{"grants[7].endDate"}},
		{"pledge currency", func(g *ledger.GrantInput) { g.Pledged = amt("1.00", "EUR") }, []string{"grants[7].pledged.currency"}},
		{"pledge decimals", func(g *ledger.GrantInput) { g.Pledged = amt("1.001", "USD") }, []string{"grants[7].pledged.amount"}},
		{"unknown currency", func(g *ledger.GrantInput) { g.Currency, g.Pledged = "XXY", amt("1", "XXY") }, []string{"grants[7].currency"}},
		{"self grant", func(g *ledger.GrantInput) { g.RecipientOrgID = g.DonorOrgID }, []string{"grants[7].recipientOrgId"}},
		{"no roadmap", func(g *ledger.GrantInput) { g.RoadmapID = id(w.impl) }, []string{"grants[7].roadmapId"}},
		{"unknown donor", func(g *ledger.GrantInput) { g.DonorOrgID = id(w.roadmap.ID) }, []string{"grants[7].donorOrgId"}},
		{"implementer as donor", func(g *ledger.GrantInput) { g.DonorOrgID, g.RecipientOrgID = id(w.impl), id(w.donors["EUR"]) },
			[]string{"grants[7].donorOrgId", "grants[7].recipientOrgId"}},
		{"two things wrong", func(g *ledger.GrantInput) { g.Reference, g.StartDate = "", time.Time{} },
			[]string{"grants[7].reference", "grants[7].startDate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := w.grantInputs(10, "ALL-"+tc.name, "10.00")
			tc.mutate(&in[7])
			_, err := w.createGrantsIn(coord, in)
			if got := fields(err); !slices.Equal(got, tc.fields) {
				t.Fatalf("violations %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
	// Grants accepted, then the importer fails later in its transaction:
	// its rollback takes the grants, their pledges and events with it.
	err := importTx(w, func(tx pgx.Tx) error {
		if _, err := w.l.CreateGrantsIn(coord, tx, w.grantInputs(10, "LATER", "10.00"), "import-x", nil); err != nil {
			return err
		}
		return errors.New("the importer failed later")
	})
	if err == nil {
		t.Fatal("no error")
	}
	if after := w.written(); after != before {
		t.Fatalf("refused imports wrote %d rows", after-before)
	}
}

func TestCreateGrantsInRefusesDuplicateReferences(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	try(w.createGrantsIn(coord, w.grantInputs(3, "DUP", "0"))).must(t)
	before := w.written()

	in := w.grantInputs(6, "NEW", "0")
	in[4].Reference = "NEW-1"
	_, err := w.createGrantsIn(coord, in)
	if !errors.Is(err, apperr.ErrAlreadyExists) || !strings.Contains(err.Error(), "grants[4]") || !strings.Contains(err.Error(), `"NEW-1"`) {
		t.Fatalf("duplicate within the import: %v", err)
	}
	in = w.grantInputs(6, "NEW", "0")
	in[5].Reference = " DUP-2 "
	_, err = w.createGrantsIn(coord, in)
	if !errors.Is(err, apperr.ErrAlreadyExists) || !strings.Contains(err.Error(), "grants[5]") || !strings.Contains(err.Error(), `"DUP-2"`) {
		t.Fatalf("duplicate of a stored grant: %v", err)
	}
	// The same reference of another donor is another grant.
	in = w.grantInputs(2, "DUP", "0")
	in[1].DonorOrgID, in[1].Currency, in[1].Pledged = id(w.donors["EUR"]), "EUR", amt("0", "EUR")
	in = in[1:]
	try(w.createGrantsIn(coord, in)).must(t)
	if after := w.written(); after != before+3 { // grant, balance, event
		t.Fatalf("wrote %d rows, want 3", after-before)
	}
}

func TestImportRoles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "ROLES", "100.00")
	entry := []ledger.EntryInput{{GrantID: id(g.ID), Type: "COMMITMENT", Amount: amt("10.00", "USD"), ValueDate: day("2024-02-01")}}
	for _, ctx := range []context.Context{as(auth.Donor, w.donors["USD"]), w.implementer(), as(auth.Auditor, "")} {
		if _, err := w.createGrantsIn(ctx, w.grantInputs(1, "R", "0")); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Fatalf("%v created grants: %v", auth.FromContext(ctx).Role, err)
		}
		if _, err := w.recordIn(ctx, entry); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Fatalf("%v recorded: %v", auth.FromContext(ctx).Role, err)
		}
	}
	operator := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("import"))
	for i, ctx := range []context.Context{coord, as(auth.Admin, ""), operator} {
		try(w.createGrantsIn(ctx, w.grantInputs(1, fmt.Sprint("OK", i), "5.00"))).must(t)
		// Any entry type on any grant: a donor's and an implementer's.
		got := try(w.recordIn(ctx, append(entry, ledger.EntryInput{GrantID: id(g.ID), Type: "RECEIPT", Amount: amt("1.00", "USD"),
			ValueDate: day("2024-02-01")}))).must(t)
		p := auth.FromContext(ctx)
		want := p.TokenID
		if p.Role == auth.Operator {
			want = "operator:import"
		}
		if got[1].RecordedBy != want || got[1].RecordedRole != string(p.Role) {
			t.Fatalf("recorded by %q (%s), want %q (%s)", got[1].RecordedBy, got[1].RecordedRole, want, p.Role)
		}
		if n := w.count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch' AND entity_id = $1
			AND actor_role = $2 AND actor_token_id = $3`, got[0].BatchID, string(p.Role), p.TokenID); n != 1 {
			t.Fatalf("%s: %d batch events naming the caller", p.Role, n)
		}
	}
	checkReplay(t, w)
}

func TestRecordInChecksAndChunks(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	grants := try(w.createGrantsIn(coord, w.grantInputs(5, "CH", "1000000.00"))).must(t)
	before := w.written()

	// Disbursed beyond committed, at position 2.
	_, err := w.recordIn(coord, []ledger.EntryInput{
		{GrantID: id(grants[0].ID), Type: "COMMITMENT", Amount: amt("100.00", "USD"), ValueDate: day("2024-02-01")},
		{GrantID: id(grants[0].ID), Type: "DISBURSEMENT", Amount: amt("60.00", "USD"), ValueDate: day("2024-02-02")},
		{GrantID: id(grants[0].ID), Type: "DISBURSEMENT", Amount: amt("40.01", "USD"), ValueDate: day("2024-02-03")},
	})
	if !errors.Is(err, apperr.ErrFailedPrecondition) || !strings.Contains(err.Error(), "transactions[2]:") {
		t.Fatalf("over-disbursing: %v", err)
	}
	// 2 500 entries: 3 chunks. A bad one in the third chunk is named by its
	// position in the whole list, and refuses the first two chunks too.
	var in []ledger.EntryInput
	for i := range 2500 {
		g := grants[i%len(grants)]
		typ := "COMMITMENT"
		if i >= len(grants) && i%3 == 0 {
			typ = "DISBURSEMENT"
		}
		in = append(in, ledger.EntryInput{GrantID: id(g.ID), Type: typ, Amount: amt("10.00", "EUR"), ValueDate: day("2024-03-01"),
			Reference: fmt.Sprint("E-", i)})
	}
	bad := slices.Clone(in)
	bad[2100].Amount = amt("1.001", "USD")
	if _, err := w.recordIn(coord, bad); !slices.Equal(fields(err), []string{"transactions[2100].amount.amount"}) {
		t.Fatalf("bad entry 2100: %v", err)
	}
	bad = slices.Clone(in)
	bad[1700].MilestoneID = id(w.impl)
	if _, err := w.recordIn(coord, bad); !slices.Equal(fields(err), []string{"transactions[1700].milestoneId"}) {
		t.Fatalf("bad milestone 1700: %v", err)
	}
	// Disbursing what the third chunk's commitments do not cover.
	bad = slices.Clone(in)
	bad[2499] = ledger.EntryInput{GrantID: id(grants[0].ID), Type: "DISBURSEMENT", Amount: amt("99999999.00", "USD"), ValueDate: day("2024-03-01")}
	if _, err := w.recordIn(coord, bad); !errors.Is(err, apperr.ErrFailedPrecondition) || !strings.Contains(err.Error(), "transactions[2499]:") {
		t.Fatalf("over-disbursing at 2499: %v", err)
	}
	if after := w.written(); after != before {
		t.Fatalf("refused imports wrote %d rows", after-before)
	}

	got := try(w.recordIn(coord, in)).must(t)
	if len(got) != len(in) {
		t.Fatalf("%d entries recorded of %d", len(got), len(in))
	}
	batches := map[string]bool{}
	for i, x := range got {
		if x.Reference != in[i].Reference || x.GrantID != in[i].GrantID.String() || x.BatchID == "" {
			t.Fatalf("entry %d: %+v", i, x)
		}
		batches[x.BatchID] = true
	}
	if len(batches) != 3 {
		t.Fatalf("%d batches, want 3", len(batches))
	}
	// One event per grant per chunk.
	if n := w.count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch' AND request_id = 'import-2'`); n != 3*len(grants) {
		t.Fatalf("%d batch events, want %d", n, 3*len(grants))
	}
	checkReplay(t, w)

	// An importer reverses entries by id.
	rev := try(w.recordIn(coord, []ledger.EntryInput{
		{GrantID: id(got[7].GrantID), Type: "REVERSAL", ReversesID: id(got[7].ID), ValueDate: day("2024-04-01")},
	})).must(t)
	if rev[0].Bucket != got[7].Type || !rev[0].AgreementAmount.Equal(got[7].AgreementAmount.Neg()) {
		t.Fatalf("reversal %+v of %+v", rev[0], got[7])
	}
	if _, err := w.recordIn(coord, []ledger.EntryInput{
		{GrantID: id(got[7].GrantID), Type: "REVERSAL", ReversesID: id(got[7].ID), ValueDate: day("2024-04-01")},
	}); !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("reversed twice: %v", err)
	}
	checkReplay(t, w)
	checkChainBatches(t, w)
}

// checkChainBatches verifies the audit chain and that every entry recorded
// in a batch has its batch's event.
func checkChainBatches(t *testing.T, w *world) {
	t.Helper()
	if r, err := audit.New(w.db.App).Verify(context.Background()); err != nil || !r.Verified {
		t.Fatalf("audit chain: %+v %v", r, err)
	}
	if n := w.count(`SELECT count(*) FROM transactions t WHERE t.batch_id IS NOT NULL AND NOT EXISTS (
		SELECT FROM audit_events e WHERE e.entity_type = 'transaction_batch' AND e.entity_id = t.batch_id::text)`); n != 0 {
		t.Fatalf("%d batch entries without their event", n)
	}
}

// An organisation named as donor by one grant and as recipient by another
// must fit both roles.
func TestCreateGrantsInChecksEveryRole(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pooled := try(org.New(w.db.App).Create(coord, org.Organization{Name: "Pooled fund", Kind: "POOLED_FUND"}, "pf")).must(t)
	in := w.grantInputs(3, "ROLE", "0")
	in[0].RecipientOrgID = id(pooled.ID)                               // a pooled fund receives
	in[1].DonorOrgID = id(pooled.ID)                                   // and gives
	in[2].DonorOrgID, in[2].RecipientOrgID = id(w.impl), id(pooled.ID) // the implementer, first met as recipient, does not give
	_, err := w.createGrantsIn(coord, in)
	if !slices.Equal(fields(err), []string{"grants[2].donorOrgId"}) {
		t.Fatalf("implementer as donor after recipient: %v", err)
	}
	try(w.createGrantsIn(coord, in[:2])).must(t)
}

// BenchmarkCreateGrantsIn imports 10 000 grants, each with its pledge, and
// 20 000 entries (a commitment and a disbursement per grant) in one
// transaction.
//
//	go test -run '^$' -bench CreateGrantsIn -benchtime 3x ./internal/ledger/
func BenchmarkCreateGrantsIn(b *testing.B) {
	w := newWorld(b)
	var grantTime, entryTime time.Duration
	var grants, entries int
	for b.Loop() {
		in := w.grantInputs(10000, fmt.Sprint("B", grants), "1000.00")
		err := importTx(w, func(tx pgx.Tx) error {
			t0 := time.Now()
			gs, err := w.l.CreateGrantsIn(coord, tx, in, "bench", nil)
			if err != nil {
				return err
			}
			grantTime += time.Since(t0)
			var es []ledger.EntryInput
			for _, g := range gs {
				es = append(es,
					ledger.EntryInput{GrantID: id(g.ID), Type: "COMMITMENT", Amount: amt("800.00", "USD"), ValueDate: day("2024-02-01")},
					ledger.EntryInput{GrantID: id(g.ID), Type: "DISBURSEMENT", Amount: amt("500.00", "EUR"), ValueDate: day("2024-03-01")})
			}
			t0 = time.Now()
			if _, err := w.l.RecordIn(coord, tx, es, "bench", nil); err != nil {
				return err
			}
			entryTime += time.Since(t0)
			entries += len(es)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		grants += len(in)
	}
	b.ReportMetric(float64(grants)/grantTime.Seconds(), "grants/s")
	b.ReportMetric(float64(entries)/entryTime.Seconds(), "entries/s")
}

func roadmapInput() roadmap.Input {
	return roadmap.Input{Country: "AFG", Title: "Another strategy", StartDate: day("2024-01-01"), EndDate: day("2026-12-31"), ReportingCurrency: "USD"}
}

// BenchmarkCreateGrantsIn100k imports 100 000 grants with their pledges in
// one call.
//
//	go test -run '^$' -bench CreateGrantsIn100k -benchtime 1x ./internal/ledger/
func BenchmarkCreateGrantsIn100k(b *testing.B) {
	w := newWorld(b)
	var elapsed time.Duration
	var grants int
	for b.Loop() {
		in := w.grantInputs(100000, fmt.Sprint("C", grants), "1000.00")
		err := importTx(w, func(tx pgx.Tx) error {
			t0 := time.Now()
			_, err := w.l.CreateGrantsIn(coord, tx, in, "bench", nil)
			elapsed += time.Since(t0)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		grants += len(in)
	}
	b.ReportMetric(float64(grants)/elapsed.Seconds(), "grants/s")
}
