package procurement_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/imports/ocds"
	"github.com/tranche-ledger/tranche/internal/procurement"
)

func stage(name, on, note string) procurement.StageEntry {
	return procurement.StageEntry{Stage: name, EnteredOn: day(on), Note: note}
}

// importTx runs ImportIn in a transaction of its own and commits it when the
// import is accepted.
func (w *world) importTx(ctx context.Context, items []procurement.ImportItem) ([]procurement.Item, error) {
	tx, err := w.db.App.Begin(context.Background())
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	out, err := w.s.ImportIn(ctx, tx, items, w.rid())
	if err != nil {
		return nil, err
	}
	return out, tx.Commit(context.Background())
}

// fields lists every violation's field, in order.
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

// events are the audit changes about an item, in the order written, with its
// id replaced by ID, and the subjects of each.
func (w *world) events(t *testing.T, id string) []string {
	t.Helper()
	rows, err := w.db.Owner.Query(context.Background(), `SELECT change, array_to_string(subject_orgs, ',') FROM audit_events
		WHERE entity_type = 'procurement_item' AND entity_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var change, subjects string
		err := r.Scan(&change, &subjects)
		return strings.ReplaceAll(change, id, "ID") + " about " + subjects, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An imported item reads back through Get and List, and is audited, exactly
// as the same item made by Create and one Advance per stage, apart from its
// id and the time it was recorded.
func TestImportReadsBackAsCreateAndAdvance(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, tc := range []struct {
		name   string
		edit   func(*procurement.Input)
		stages []procurement.StageEntry
	}{
		{"requisitioned only", nil, nil},
		{"defaults: requisitioned today, no delivery date", func(in *procurement.Input) {
			in.RequisitionedOn, in.ExpectedDeliveryDate = time.Time{}, time.Time{}
		}, nil},
		{"skips stages to ACCEPTED, notes trimmed, days repeated", func(in *procurement.Input) {
			in.Description = "  40 sets of PPE \n"
			in.Category, in.Critical, in.EstimatedCost = "PPE", false, usd("1200.50")
		}, []procurement.StageEntry{stage("TENDERED", "2024-03-10", "  OCDS tender.tenderPeriod.startDate 2024-03-10  "),
			stage("AWARDED", "2024-04-02", ""), stage("CONTRACTED", "2024-04-02", "signed"),
			stage("DELIVERED", "2024-08-30", ""), stage("ACCEPTED", "2024-09-05", "")}},
		{"cancelled after the award, late before", func(in *procurement.Input) {
			in.ExpectedDeliveryDate = day("2024-04-01")
		}, []procurement.StageEntry{stage("TENDERED", "2024-03-01", ""), stage("EVALUATED", "2024-03-20", ""),
			stage("AWARDED", "2024-03-25", ""), stage("CANCELLED", "2024-06-01", "award protested")}},
		{"late and open", func(in *procurement.Input) { in.ExpectedDeliveryDate = day("2024-04-01") },
			[]procurement.StageEntry{stage("TENDERED", "2024-03-01", "")}},
		{"stage entered today by default", nil, []procurement.StageEntry{{Stage: "EVALUATED"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := w.input()
			if tc.edit != nil {
				tc.edit(&in)
			}
			made := try(w.s.Create(coord, in, w.rid())).must(t)
			for _, st := range tc.stages {
				made = try(w.s.Advance(coord, uuid.MustParse(made.ID), st.Stage, st.EnteredOn, st.Note, w.rid())).must(t)
			}
			out := try(w.importTx(coord, []procurement.ImportItem{{Input: in, Stages: tc.stages}})).must(t)
			if len(out) != 1 {
				t.Fatalf("%d items imported", len(out))
			}
			api := try(w.s.Get(coord, uuid.MustParse(made.ID))).must(t)
			imported := try(w.s.Get(coord, uuid.MustParse(out[0].ID))).must(t)
			// What ImportIn answers is what Get reads back, id and time included.
			if !reflect.DeepEqual(out[0], imported) {
				t.Errorf("answered %+v\nread back %+v", out[0], imported)
			}
			if !imported.RecordedAt.After(api.RecordedAt) || imported.ID <= api.ID {
				t.Errorf("recorded at %v (id %s), after %v (id %s)", imported.RecordedAt, imported.ID, api.RecordedAt, api.ID)
			}
			same := func(what string, a, b procurement.Item) {
				t.Helper()
				a.ID, a.RecordedAt, b.ID, b.RecordedAt = "", time.Time{}, "", time.Time{}
				if !reflect.DeepEqual(a, b) {
					t.Errorf("%s differ:\nCreate+Advance %+v\nImportIn       %+v", what, a, b)
				}
			}
			same("Get", api, imported)
			if api.LateOn(today()) != imported.LateOn(today()) {
				t.Errorf("late: %v, imported %v", api.LateOn(today()), imported.LateOn(today()))
			}
			// List, filtered by the current stage (the lateral join on the
			// stages), reads both alike; so does the late filter.
			for _, f := range []procurement.Filter{{Stage: api.Stage}, {Late: true}} {
				f.GrantID, f.PageSize = uuid.MustParse(w.grant), 1000
				byID := map[string]procurement.Item{}
				for _, it := range w.list(t, f) {
					byID[it.ID] = it
				}
				a, aok := byID[api.ID]
				b, bok := byID[imported.ID]
				if aok != bok || aok != (f.Stage != "" || api.LateOn(today())) {
					t.Errorf("List %+v: made listed %v, imported listed %v", f, aok, bok)
				}
				same(fmt.Sprintf("List %+v", f), a, b)
			}
			if a, b := w.events(t, api.ID), w.events(t, imported.ID); !slices.Equal(a, b) || len(a) != 1+len(tc.stages) {
				t.Errorf("audit:\nCreate+Advance %q\nImportIn       %q", a, b)
			}
		})
	}
}

// list is the first page of List as a coordinator; the test fails if there
// are more.
func (w *world) list(t *testing.T, f procurement.Filter) []procurement.Item {
	t.Helper()
	items, next, err := w.s.List(coord, f)
	if err != nil || next != "" {
		t.Fatalf("List %+v: %v (next page %q)", f, err, next)
	}
	return items
}

func (w *world) goodItems(n int) []procurement.ImportItem {
	items := make([]procurement.ImportItem, n)
	for i := range items {
		in := w.input()
		in.Description = fmt.Sprint("item ", i)
		items[i] = procurement.ImportItem{Input: in, Stages: []procurement.StageEntry{stage("TENDERED", "2024-03-10", "")}}
	}
	return items
}

// One bad stage refuses the whole call, naming it; nothing is written in the
// transaction, and after the caller's rollback nothing remains even of an
// accepted call.
func TestImportIsAllOrNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.create(t, coord, nil)
	before := w.counts(t)
	items := w.goodItems(5)
	items[3].Stages = []procurement.StageEntry{stage("TENDERED", "2024-04-01", ""), stage("EVALUATED", "2024-03-15", "")}
	ctx := context.Background()
	tx, err := w.db.App.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	inTx := func() int {
		var n int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM procurement_items) + (SELECT count(*) FROM procurement_stages)
			+ (SELECT count(*) FROM audit_events)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := inTx()
	_, err = w.s.ImportIn(coord, tx, items, "import-1")
	if got := fields(err); !slices.Equal(got, []string{"procurementItems[3].stages[1].enteredOn"}) {
		t.Fatalf("bad stage at item 3: %v (%v)", got, err)
	}
	if !strings.Contains(err.Error(), "2024-03-15 is before 2024-04-01") {
		t.Errorf("message: %v", err)
	}
	if n := inTx(); n != start {
		t.Errorf("refused import wrote %d rows in the transaction", n-start)
	}
	// A later refusal, once the grants are read: still nothing written.
	items = w.goodItems(5)
	items[4].Input.MilestoneID = uuid.MustParse(w.otherM)
	if _, err := w.s.ImportIn(coord, tx, items, "import-2"); !slices.Equal(fields(err), []string{"procurementItems[4].milestoneId"}) {
		t.Fatalf("milestone of another roadmap at item 4: %v", err)
	}
	if n := inTx(); n != start {
		t.Errorf("refused import wrote %d rows in the transaction", n-start)
	}
	// Accepted, then rolled back by the caller: nothing of it stays.
	out, err := w.s.ImportIn(coord, tx, w.goodItems(5), "import-3")
	if err != nil || len(out) != 5 {
		t.Fatalf("%d items, %v", len(out), err)
	}
	if n := inTx(); n != start+5+10+10 {
		t.Errorf("accepted import wrote %d rows in the transaction, want 25", n-start)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if after := w.counts(t); after != before {
		t.Errorf("after rollback: %+v → %+v", before, after)
	}
	if _, err := w.s.Get(coord, uuid.MustParse(out[0].ID)); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("rolled back item: %v", err)
	}
}

// Every rule of Create and Advance holds, every violation is reported at
// once, and each names the item and the stage.
func TestImportRefusesWhatCreateAndAdvanceRefuse(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before := w.counts(t)
	tomorrow := today().AddDate(0, 0, 1)
	one := func(edit func(*procurement.ImportItem)) []procurement.ImportItem {
		items := w.goodItems(2)
		edit(&items[1])
		return items
	}
	stages := func(s ...procurement.StageEntry) func(*procurement.ImportItem) {
		return func(it *procurement.ImportItem) { it.Stages = s }
	}
	input := func(edit func(*procurement.Input)) func(*procurement.ImportItem) {
		return func(it *procurement.ImportItem) { edit(&it.Input) }
	}
	const p = "procurementItems[1]."
	for _, tc := range []struct {
		name   string
		items  []procurement.ImportItem
		fields []string
	}{
		{"going back", one(stages(stage("EVALUATED", "2024-03-10", ""), stage("TENDERED", "2024-03-11", ""))), []string{p + "stages[1].stage"}},
		{"staying", one(stages(stage("TENDERED", "2024-03-10", ""), stage("TENDERED", "2024-03-11", ""))), []string{p + "stages[1].stage"}},
		{"REQUISITIONED again", one(stages(stage("REQUISITIONED", "2024-03-10", ""))), []string{p + "stages[0].stage"}},
		{"after ACCEPTED", one(stages(stage("ACCEPTED", "2024-03-10", ""), stage("CANCELLED", "2024-03-11", "why"))), []string{p + "stages[1].stage"}},
		{"after CANCELLED", one(stages(stage("CANCELLED", "2024-03-10", "why"), stage("TENDERED", "2024-03-11", ""))), []string{p + "stages[1].stage"}},
		{"CANCELLED twice", one(stages(stage("CANCELLED", "2024-03-10", "why"), stage("CANCELLED", "2024-03-11", "why"))), []string{p + "stages[1].stage"}},
		{"cancelled without a note", one(stages(stage("CANCELLED", "2024-03-10", "  "))), []string{p + "stages[0].note"}},
		{"unknown stage", one(stages(stage("SHIPPED", "2024-03-10", ""))), []string{p + "stages[0].stage"}},
		{"lower-case stage", one(stages(stage("tendered", "2024-03-10", ""))), []string{p + "stages[0].stage"}},
		{"stage tomorrow", one(stages(procurement.StageEntry{Stage: "TENDERED", EnteredOn: tomorrow})), []string{p + "stages[0].enteredOn"}},
		{"stage in year 1000", one(stages(procurement.StageEntry{Stage: "TENDERED", EnteredOn: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)})),
			[]string{p + "stages[0].enteredOn"}},
		{"stage before the requisition", one(stages(stage("TENDERED", "2024-02-29", ""))), []string{p + "stages[0].enteredOn"}},
		{"note too long", one(stages(stage("TENDERED", "2024-03-10", strings.Repeat("é", 2001)))), []string{p + "stages[0].note"}},
		{"NUL in a note", one(stages(stage("TENDERED", "2024-03-10", "a\x00b"))), []string{p + "stages[0].note"}},
		// Each stage is checked against the last one not refused, as
		// successive Advance calls would be: AWARDED is before TENDERED too.
		{"each stage against the last accepted", one(stages(stage("TENDERED", "2024-03-10", ""), stage("EVALUATED", "2024-03-01", ""),
			stage("AWARDED", "2024-03-05", ""), stage("CONTRACTED", "2024-03-12", ""))),
			[]string{p + "stages[1].enteredOn", p + "stages[2].enteredOn"}},
		{"a stage bad twice", one(stages(stage("TENDERED", "2024-03-10", ""), stage("SHIPPED", "2200-01-01", ""))),
			[]string{p + "stages[1].stage", p + "stages[1].enteredOn"}},
		{"no grant", one(input(func(in *procurement.Input) { in.GrantID = uuid.Nil })), []string{p + "grantId"}},
		{"no milestone", one(input(func(in *procurement.Input) { in.MilestoneID = uuid.Nil })), []string{p + "milestoneId"}},
		{"grant that does not exist", one(input(func(in *procurement.Input) { in.GrantID = uuid.Must(uuid.NewV7()) })), []string{p + "grantId"}},
		{"milestone that does not exist", one(input(func(in *procurement.Input) { in.MilestoneID = uuid.Must(uuid.NewV7()) })),
			[]string{p + "milestoneId"}},
		{"milestone of another roadmap", one(input(func(in *procurement.Input) { in.MilestoneID = uuid.MustParse(w.otherM) })),
			[]string{p + "milestoneId"}},
		{"empty description", one(input(func(in *procurement.Input) { in.Description = " \t" })), []string{p + "description"}},
		{"megabyte description", one(input(func(in *procurement.Input) { in.Description = strings.Repeat("x", 1<<20) })), []string{p + "description"}},
		{"unknown category", one(input(func(in *procurement.Input) { in.Category = "WEAPONS" })), []string{p + "category"}},
		{"negative cost", one(input(func(in *procurement.Input) { in.EstimatedCost = usd("-0.01") })), []string{p + "estimatedCost.amount"}},
		{"cost below the cent", one(input(func(in *procurement.Input) { in.EstimatedCost = usd("0.001") })), []string{p + "estimatedCost.amount"}},
		{"unknown currency", one(input(func(in *procurement.Input) { in.EstimatedCost.Currency = "XXY" })), []string{p + "estimatedCost.currency"}},
		{"requisitioned tomorrow", one(input(func(in *procurement.Input) { in.RequisitionedOn, in.ExpectedDeliveryDate = tomorrow, time.Time{} })),
			[]string{p + "requisitionedOn", p + "stages[0].enteredOn"}},
		{"delivery before the requisition", one(input(func(in *procurement.Input) { in.ExpectedDeliveryDate = day("2024-01-01") })),
			[]string{p + "expectedDeliveryDate"}},
		{"bad item and bad stage", one(func(it *procurement.ImportItem) {
			it.Input.Category, it.Stages = "", []procurement.StageEntry{stage("TENDERED", "2024-01-01", "")}
		}), []string{p + "category", p + "stages[0].enteredOn"}},
		{"several items", func() []procurement.ImportItem {
			items := w.goodItems(12)
			items[0].Input.Category = "x"
			items[10].Input.MilestoneID = uuid.Nil
			items[11].Stages = append(items[11].Stages, stage("TENDERED", "2024-03-11", ""))
			return items
		}(), []string{"procurementItems[0].category", "procurementItems[10].milestoneId", "procurementItems[11].stages[1].stage"}},
		{"grant and milestone checked for all", func() []procurement.ImportItem {
			items := w.goodItems(4)
			items[0].Input.MilestoneID = uuid.MustParse(w.otherM)
			items[2].Input.GrantID = uuid.Must(uuid.NewV7())
			items[3].Input.MilestoneID = uuid.MustParse(w.otherM)
			return items
		}(), []string{"procurementItems[0].milestoneId", "procurementItems[2].grantId", "procurementItems[3].milestoneId"}},
	} {
		_, err := w.importTx(coord, tc.items)
		if got := fields(err); !slices.Equal(got, tc.fields) {
			t.Errorf("%s: %v, want violations of %v", tc.name, err, tc.fields)
		}
	}
	tx, err := w.db.App.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := w.s.ImportIn(coord, tx, w.goodItems(1), ""); !slices.Equal(fields(err), []string{"requestId"}) {
		t.Errorf("no request id: %v", err)
	}
	if after := w.counts(t); after != before {
		t.Errorf("refused imports wrote: %+v → %+v", before, after)
	}
	// Nothing to import is accepted and writes nothing.
	if out, err := w.importTx(coord, nil); err != nil || len(out) != 0 {
		t.Errorf("no items: %v, %v", out, err)
	}
	if after := w.counts(t); after != before {
		t.Errorf("empty import wrote: %+v → %+v", before, after)
	}
}

// Only admins, coordinators and the CLI operator import; anyone else is
// refused before anything is read (the transaction here is nil: reading it
// would panic).
func TestImportRoles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, ctx := range []context.Context{w.donorCtx, w.implCtx, as(auth.Auditor, ""), context.Background(),
		auth.WithPrincipal(context.Background(), auth.Principal{Role: "superuser"})} {
		if _, err := w.s.ImportIn(ctx, nil, w.goodItems(1), "r"); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Errorf("%+v: %v", auth.FromContext(ctx), err)
		}
	}
	// Refused before the input is even looked at.
	if _, err := w.s.ImportIn(w.implCtx, nil, []procurement.ImportItem{{}}, ""); !errors.Is(err, apperr.ErrPermissionDenied) {
		t.Errorf("implementer with bad input: %v", err)
	}
	for _, p := range []auth.Principal{{TokenID: "tok-admin", Name: "Admin", Role: auth.Admin},
		auth.OperatorPrincipal("tranche import ocds"), {TokenID: "tok-coord", Name: "Coordinator", Role: auth.Coordinator}} {
		out := try(w.importTx(auth.WithPrincipal(context.Background(), p), w.goodItems(1))).must(t)
		var role, token string
		if err := w.db.Owner.QueryRow(context.Background(), `SELECT actor_role, actor_token_id FROM audit_events
			WHERE entity_id = $1 ORDER BY id LIMIT 1`, out[0].ID).Scan(&role, &token); err != nil {
			t.Fatal(err)
		}
		if role != string(p.Role) || token != p.TokenID || out[0].RecordedBy != p.TokenID {
			t.Errorf("%s: event by %s %q, recorded by %q", p.Role, role, token, out[0].RecordedBy)
		}
	}
}

// roundTrips counts what a pool sends: statements on their own, and batches.
type roundTrips struct{ queries, batches atomic.Int32 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.queries.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.batches.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// 2 000 items with their histories in one call: one query and one batch.
func TestImportTwoThousandItems(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	histories := [][]procurement.StageEntry{
		nil,
		{stage("TENDERED", "2024-03-10", "OCDS tender.tenderPeriod.startDate 2024-03-10")},
		{stage("EVALUATED", "2024-03-20", ""), stage("AWARDED", "2024-04-01", ""), stage("CONTRACTED", "2024-04-15", ""),
			stage("DELIVERED", "2024-08-01", "")},
		{stage("TENDERED", "2024-03-10", ""), stage("CANCELLED", "2024-05-01", "OCDS tender.status cancelled (inferred)")},
	}
	const n = 2000
	items := make([]procurement.ImportItem, n)
	wantStages := 0
	for i := range items {
		in := w.input()
		in.Description = fmt.Sprint("item ", i)
		in.MilestoneID = uuid.MustParse([]string{w.m1, w.m2}[i%2])
		items[i] = procurement.ImportItem{Input: in, Stages: histories[i%len(histories)]}
		wantStages += 1 + len(items[i].Stages)
	}
	var rt roundTrips
	cfg, err := pgxpool.ParseConfig(w.db.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = &rt
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error { pgxdecimal.Register(c.TypeMap()); return nil }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tx, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	q0, b0 := rt.queries.Load(), rt.batches.Load()
	start := time.Now()
	out, err := w.s.ImportIn(coord, tx, items, "import-2000")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if q, b := rt.queries.Load()-q0, rt.batches.Load()-b0; q != 1 || b != 1 {
		t.Errorf("%d statements and %d batches, want 1 and 1", q, b)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("2 000 items, %d stages, %d events: %v", wantStages, wantStages, took)
	c := w.counts(t)
	if len(out) != n || c.items != n || c.stages != wantStages || c.events != wantStages+w.setupEvents(t) {
		t.Errorf("%d answered, %+v, want %d items and %d stages and events", len(out), c, n, wantStages)
	}
	// In the order given, ids in creation order; each reads back as answered.
	for i, k := range []int{0, 1, 2, 3, n - 1} {
		got := try(w.s.Get(coord, uuid.MustParse(out[k].ID))).must(t)
		if !reflect.DeepEqual(got, out[k]) || got.Description != fmt.Sprint("item ", k) || len(got.Stages) != 1+len(histories[k%4]) {
			t.Errorf("item %d: %+v\nread back %+v", i, out[k], got)
		}
	}
	for i := 1; i < n; i++ {
		if out[i].ID <= out[i-1].ID {
			t.Fatalf("item %d's id %s is not after %s", i, out[i].ID, out[i-1].ID)
		}
	}
	if got := len(w.list(t, procurement.Filter{MilestoneID: uuid.MustParse(w.m2), Stage: "CANCELLED", PageSize: 1000})); got != n/4 {
		t.Errorf("%d cancelled in M-2, want %d", got, n/4)
	}
}

// setupEvents is the number of audit events newWorld wrote, none about
// procurement.
func (w *world) setupEvents(t *testing.T) int {
	t.Helper()
	var n int
	if err := w.db.Owner.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_events WHERE entity_type <> 'procurement_item'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// What the OCDS importer gives (ocds.Process.ItemInput) is what ImportIn
// takes: both sample files import whole, each item with the stages given.
func TestImportTakesOCDSTimelines(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, file := range []string{"cdmx-release-package.json", "armenia-releases.json"} {
		data, err := os.ReadFile(filepath.Join("..", "imports", "ocds", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		res, err := ocds.ParseBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		var items []procurement.ImportItem
		for _, p := range res.Processes {
			in, stages, _, ok := p.ItemInput(uuid.MustParse(w.grant), uuid.MustParse(w.m1), today())
			if ok {
				items = append(items, procurement.ImportItem{Input: in, Stages: stages})
			}
		}
		out, err := w.importTx(coord, items)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		t.Logf("%s: %d items", file, len(out))
		for i, it := range out {
			got := try(w.s.Get(coord, uuid.MustParse(it.ID))).must(t)
			given := append([]procurement.StageEntry{{Stage: "REQUISITIONED", EnteredOn: items[i].Input.RequisitionedOn}}, items[i].Stages...)
			if given[0].EnteredOn.IsZero() {
				given[0].EnteredOn = today()
			}
			for j := range given {
				given[j].Note = strings.TrimSpace(given[j].Note)
			}
			if !reflect.DeepEqual(got.Stages, given) || got.Stage != given[len(given)-1].Stage {
				t.Errorf("%s item %d: read back %+v, given %+v", file, i, got.Stages, given)
			}
		}
	}
}
