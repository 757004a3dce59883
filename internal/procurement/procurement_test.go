package procurement_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func as(role auth.Role, orgID string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
}

var coord = as(auth.Coordinator, "")

func day(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func today() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

func usd(a string) money.Amount {
	return money.Amount{Value: decimal.RequireFromString(a), Currency: "USD"}
}

// result is a call's value and error, so that a setup step reads as
// try(call()).must(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// world is two donors funding one implementer each under one roadmap, a
// second roadmap, and a milestone in each.
type world struct {
	db                          *testdb.DB
	s                           *procurement.Store
	donor, otherDonor           string
	impl, otherImpl             string
	roadmap, m1, m2, otherM     string // m1, m2 in roadmap; otherM in another roadmap
	grant, otherGrant           string // donor → impl; otherDonor → otherImpl
	donorCtx, implCtx, otherImp context.Context
	n                           int
}

func (w *world) rid() string { w.n++; return fmt.Sprint("req-", w.n) }

func newWorld(t *testing.T) *world {
	t.Helper()
	db := testdb.New(t)
	w := &world{db: db, s: procurement.New(db.App)}
	orgs := org.New(db.App)
	mk := func(name, kind string) string {
		return try(orgs.Create(coord, org.Organization{Name: name, Kind: kind}, "org-"+name)).must(t).ID
	}
	w.donor, w.otherDonor = mk("Donor A", "DONOR"), mk("Donor B", "DONOR")
	w.impl, w.otherImpl = mk("NGO A", "IMPLEMENTER"), mk("NGO B", "IMPLEMENTER")
	rs := roadmap.New(db.App)
	rm := try(rs.Create(coord, roadmap.Input{Country: "AFG", Title: "Strategy", StartDate: day("2024-01-01"),
		EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, w.rid())).must(t)
	rm2 := try(rs.Create(coord, roadmap.Input{Country: "KHM", Title: "Other strategy", StartDate: day("2024-01-01"),
		EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, w.rid())).must(t)
	ms := func(rmID, code string) string {
		return try(rs.CreateMilestone(coord, uuid.MustParse(rmID), roadmap.MilestoneInput{Code: code, Title: "Clearance " + code,
			ActivityType: "CLEARANCE", FundingRequirement: usd("1000.00")}, w.rid())).must(t).ID
	}
	w.roadmap, w.m1, w.m2, w.otherM = rm.ID, ms(rm.ID, "M-1"), ms(rm.ID, "M-2"), ms(rm2.ID, "K-1")
	l := ledger.New(db.App)
	grant := func(donor, impl, ref string) string {
		return try(l.CreateGrant(as(auth.Donor, donor), ledger.GrantInput{RoadmapID: uuid.MustParse(rm.ID),
			DonorOrgID: uuid.MustParse(donor), RecipientOrgID: uuid.MustParse(impl), Reference: ref, Title: "Grant " + ref,
			Currency: "USD", Pledged: usd("0"), StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}, w.rid())).must(t).ID
	}
	w.grant, w.otherGrant = grant(w.donor, w.impl, "G-A"), grant(w.otherDonor, w.otherImpl, "G-B")
	w.donorCtx, w.implCtx, w.otherImp = as(auth.Donor, w.donor), as(auth.Implementer, w.impl), as(auth.Implementer, w.otherImpl)
	return w
}

func (w *world) input() procurement.Input {
	return procurement.Input{GrantID: uuid.MustParse(w.grant), MilestoneID: uuid.MustParse(w.m1), Description: "12 metal detectors",
		Category: "DETECTORS", Critical: true, EstimatedCost: usd("48000.00"), ExpectedDeliveryDate: day("2024-09-01"),
		RequisitionedOn: day("2024-03-01")}
}

func (w *world) create(t *testing.T, ctx context.Context, edit func(*procurement.Input)) procurement.Item {
	t.Helper()
	in := w.input()
	if edit != nil {
		edit(&in)
	}
	return try(w.s.Create(ctx, in, w.rid())).must(t)
}

// counts are the rows a refused request must not have added.
type counts struct{ items, stages, events, answers int }

func (w *world) counts(t *testing.T) counts {
	t.Helper()
	var c counts
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM procurement_items),
		(SELECT count(*) FROM procurement_stages), (SELECT count(*) FROM audit_events),
		(SELECT count(*) FROM idempotency_keys)`).Scan(&c.items, &c.stages, &c.events, &c.answers); err != nil {
		t.Fatal(err)
	}
	return c
}

func field(err error) string {
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) || len(inv.Violations) == 0 {
		return ""
	}
	return inv.Violations[0].Field
}

func TestCreateStartsRequisitionedAndIsAudited(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	it := w.create(t, w.implCtx, nil)
	if it.Stage != procurement.Requisitioned || len(it.Stages) != 1 || !it.Stages[0].EnteredOn.Equal(day("2024-03-01")) ||
		it.RoadmapID != w.roadmap || it.ExpectedDeliveryDate == nil || !it.EstimatedCost.Value.Equal(decimal.RequireFromString("48000")) {
		t.Fatalf("created %+v", it)
	}
	got := try(w.s.Get(w.donorCtx, uuid.MustParse(it.ID))).must(t)
	if got.Stage != procurement.Requisitioned || len(got.Stages) != 1 || got.Description != "12 metal detectors" ||
		got.Category != "DETECTORS" || !got.Critical || got.EstimatedCost.Currency != "USD" || !got.ExpectedDeliveryDate.Equal(day("2024-09-01")) {
		t.Fatalf("read back %+v", got)
	}
	// Without requisitionedOn the item is requisitioned today.
	now := w.create(t, coord, func(in *procurement.Input) { in.RequisitionedOn = time.Time{}; in.ExpectedDeliveryDate = time.Time{} })
	if !now.Stages[0].EnteredOn.Equal(today()) || now.ExpectedDeliveryDate != nil {
		t.Fatalf("default day: %+v", now.Stages)
	}
	// One event per item, about the grant's donor then its recipient.
	var subjects []string
	var n int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT count(*) OVER (), subject_orgs FROM audit_events
		WHERE entity_type = 'procurement_item' AND entity_id = $1`, it.ID).Scan(&n, &subjects); err != nil {
		t.Fatal(err)
	}
	if n != 1 || strings.Join(subjects, ",") != w.donor+","+w.impl {
		t.Fatalf("%d events, subjects %v", n, subjects)
	}
}

// Every bad input names its field and writes nothing.
func TestCreateRefusesBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.create(t, w.implCtx, nil)
	tomorrow := today().AddDate(0, 0, 1)
	for _, tc := range []struct {
		name  string
		edit  func(*procurement.Input)
		field string
	}{
		{"no grant", func(in *procurement.Input) { in.GrantID = uuid.Nil }, "grantId"},
		{"no milestone", func(in *procurement.Input) { in.MilestoneID = uuid.Nil }, "milestoneId"},
		{"milestone of another roadmap", func(in *procurement.Input) { in.MilestoneID = uuid.MustParse(w.otherM) }, "milestoneId"},
		{"milestone that does not exist", func(in *procurement.Input) { in.MilestoneID = uuid.Must(uuid.NewV7()) }, "milestoneId"},
		{"no description", func(in *procurement.Input) { in.Description = "  " }, "description"},
		{"description too long", func(in *procurement.Input) { in.Description = strings.Repeat("x", 2001) }, "description"},
		{"megabyte description", func(in *procurement.Input) { in.Description = strings.Repeat("x", 1<<20) }, "description"},
		{"NUL in description", func(in *procurement.Input) { in.Description = "PPE\x00" }, "description"},
		{"unknown category", func(in *procurement.Input) { in.Category = "WEAPONS" }, "category"},
		{"lower-case category", func(in *procurement.Input) { in.Category = "ppe" }, "category"},
		{"negative cost", func(in *procurement.Input) { in.EstimatedCost = usd("-1.00") }, "estimatedCost.amount"},
		{"cost below the cent", func(in *procurement.Input) { in.EstimatedCost = usd("1.001") }, "estimatedCost.amount"},
		{"absurd cost", func(in *procurement.Input) { in.EstimatedCost = usd("1000000000000000") }, "estimatedCost.amount"},
		{"yen with decimals", func(in *procurement.Input) {
			in.EstimatedCost = money.Amount{Value: decimal.RequireFromString("1.5"), Currency: "JPY"}
		}, "estimatedCost.amount"},
		{"unknown currency", func(in *procurement.Input) { in.EstimatedCost.Currency = "EUX" }, "estimatedCost.currency"},
		{"no currency", func(in *procurement.Input) { in.EstimatedCost.Currency = "" }, "estimatedCost.currency"},
		{"requisitioned tomorrow", func(in *procurement.Input) { in.RequisitionedOn, in.ExpectedDeliveryDate = tomorrow, time.Time{} }, "requisitionedOn"},
		{"requisitioned in 1900", func(in *procurement.Input) { in.RequisitionedOn = day("1900-01-01") }, "requisitionedOn"},
		{"delivery before requisition", func(in *procurement.Input) { in.ExpectedDeliveryDate = day("2024-02-28") }, "expectedDeliveryDate"},
		{"delivery in 2200", func(in *procurement.Input) { in.ExpectedDeliveryDate = day("2200-01-01") }, "expectedDeliveryDate"},
	} {
		before := w.counts(t)
		in := w.input()
		tc.edit(&in)
		_, err := w.s.Create(w.implCtx, in, w.rid())
		if field(err) != tc.field {
			t.Errorf("%s: %v, want a violation of %s", tc.name, err, tc.field)
		}
		if after := w.counts(t); after != before {
			t.Errorf("%s wrote: %+v → %+v", tc.name, before, after)
		}
	}
	if _, err := w.s.Create(w.implCtx, w.input(), ""); field(err) != "requestId" {
		t.Errorf("no request id: %v", err)
	}
	// Other currencies with their own minor units are fine.
	w.create(t, w.implCtx, func(in *procurement.Input) {
		in.EstimatedCost = money.Amount{Value: decimal.RequireFromString("1.234"), Currency: "KWD"}
	})
}

// A day past 2099 is reported once, as outside the accepted dates, not also
// as in the future.
func TestDateOutOfRangeIsReportedOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	it := w.create(t, w.implCtx, nil)
	violations := func(err error) []apperr.Violation {
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) {
			t.Fatalf("not invalid: %v", err)
		}
		return inv.Violations
	}
	_, err := w.s.Create(w.implCtx, procurement.Input{GrantID: uuid.MustParse(w.grant), MilestoneID: uuid.MustParse(w.m1),
		Description: "PPE", Category: "PPE", EstimatedCost: usd("10.00"), RequisitionedOn: day("9999-12-31")}, w.rid())
	if vs := violations(err); len(vs) != 1 || vs[0].Field != "requisitionedOn" || !strings.Contains(vs[0].Description, "outside") {
		t.Errorf("requisitioned 9999-12-31: %v", vs)
	}
	_, err = w.s.Advance(w.implCtx, uuid.MustParse(it.ID), "TENDERED", day("9999-12-31"), "", w.rid())
	if vs := violations(err); len(vs) != 1 || vs[0].Field != "enteredOn" || !strings.Contains(vs[0].Description, "outside") {
		t.Errorf("entered 9999-12-31: %v", vs)
	}
}

// The stage moves only forward, skipping allowed; CANCELLED ends any open
// item; days never go back nor into the future.
func TestAdvanceMovesOnlyForward(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	it := w.create(t, w.implCtx, nil)
	id := uuid.MustParse(it.ID)
	tomorrow := today().AddDate(0, 0, 1).Format(time.DateOnly)
	steps := []struct {
		stage, on string
		field     string // "" = accepted
	}{
		{"TENDERED", "2024-03-10", ""},
		{"TENDERED", "2024-03-11", "stage"},      // staying
		{"REQUISITIONED", "2024-03-11", "stage"}, // going back
		{"SHIPPED", "2024-03-11", "stage"},       // unknown
		{"AWARDED", "2024-03-09", "enteredOn"},   // before the current stage's day
		{"AWARDED", tomorrow, "enteredOn"},       // future
		{"AWARDED", "1989-12-31", "enteredOn"},   // out of range
		{"AWARDED", "2024-03-10", ""},            // skipping EVALUATED, same day
		{"EVALUATED", "2024-04-01", "stage"},     // back to a skipped stage
		{"DELIVERED", "2024-08-01", ""},
		{"ACCEPTED", "2024-08-02", ""},
		{"CANCELLED", "2024-08-03", "stage"}, // nothing after ACCEPTED
	}
	var last procurement.Item
	for i, st := range steps {
		before := w.counts(t)
		note := ""
		if st.stage == procurement.Cancelled {
			note = "ordered twice"
		}
		got, err := w.s.Advance(w.implCtx, id, st.stage, day(st.on), note, w.rid())
		switch {
		case st.field == "" && err != nil:
			t.Fatalf("step %d (%s on %s): %v", i, st.stage, st.on, err)
		case st.field != "" && field(err) != st.field:
			t.Fatalf("step %d (%s on %s): %v, want a violation of %s", i, st.stage, st.on, err, st.field)
		case st.field != "":
			if after := w.counts(t); after != before {
				t.Fatalf("step %d refused but wrote: %+v → %+v", i, before, after)
			}
		default:
			last = got
		}
	}
	want := []string{"REQUISITIONED 2024-03-01", "TENDERED 2024-03-10", "AWARDED 2024-03-10", "DELIVERED 2024-08-01", "ACCEPTED 2024-08-02"}
	var have []string
	for _, s := range last.Stages {
		have = append(have, s.Stage+" "+s.EnteredOn.Format(time.DateOnly))
	}
	if last.Stage != procurement.Accepted || strings.Join(have, "|") != strings.Join(want, "|") {
		t.Fatalf("history %q, stage %s", have, last.Stage)
	}

	// CANCELLED from an open stage, by default today, with its note; then
	// nothing moves it.
	other := w.create(t, coord, nil)
	oid := uuid.MustParse(other.ID)
	try(w.s.Advance(coord, oid, "CONTRACTED", day("2024-05-01"), "", w.rid())).must(t)
	// Cancelling needs a note saying why: blank is refused, nothing written.
	for _, note := range []string{"", " \t\n"} {
		before := w.counts(t)
		if _, err := w.s.Advance(coord, oid, "CANCELLED", time.Time{}, note, w.rid()); field(err) != "note" {
			t.Errorf("cancelled with note %q: %v, want a violation of note", note, err)
		}
		if after := w.counts(t); after != before {
			t.Errorf("cancelling without a note wrote: %+v → %+v", before, after)
		}
	}
	c := try(w.s.Advance(coord, oid, "CANCELLED", time.Time{}, "supplier went bankrupt", w.rid())).must(t)
	if c.Stage != procurement.Cancelled || !c.Stages[2].EnteredOn.Equal(today()) || c.Stages[2].Note != "supplier went bankrupt" {
		t.Fatalf("cancelled: %+v", c.Stages)
	}
	for _, s := range []string{"CANCELLED", "ACCEPTED"} {
		if _, err := w.s.Advance(coord, oid, s, time.Time{}, "again", w.rid()); field(err) != "stage" {
			t.Errorf("%s after CANCELLED: %v", s, err)
		}
	}
	// DELIVERED is still open: a rejected delivery can be cancelled.
	third := w.create(t, coord, nil)
	try(w.s.Advance(coord, uuid.MustParse(third.ID), "DELIVERED", day("2024-06-01"), "", w.rid())).must(t)
	try(w.s.Advance(coord, uuid.MustParse(third.ID), "CANCELLED", day("2024-06-02"), "failed acceptance tests", w.rid())).must(t)
	if _, err := w.s.Advance(coord, uuid.Must(uuid.NewV7()), "TENDERED", time.Time{}, "", w.rid()); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("advancing an item that does not exist: %v", err)
	}
}

// Who may do what: implementers on the grants they receive, coordinators
// and admins everywhere; donors and auditors read (donors their own grants'
// items); an item the caller may not read is NOT_FOUND.
func TestRoles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	it := w.create(t, w.implCtx, nil)
	id := uuid.MustParse(it.ID)
	const (
		OK = "ok"
		PD = "permission denied"
		NF = "not found"
	)
	code := func(err error) string {
		switch {
		case err == nil:
			return OK
		case errors.Is(err, apperr.ErrPermissionDenied):
			return PD
		case errors.Is(err, apperr.ErrNotFound):
			return NF
		}
		return err.Error()
	}
	roles := []struct {
		name       string
		ctx        context.Context
		create     string
		advance    string
		get        string
		listsItems int
	}{
		{"admin", as(auth.Admin, ""), OK, OK, OK, 1},
		{"coordinator", coord, OK, OK, OK, 1},
		{"donor", w.donorCtx, PD, PD, OK, 1},
		{"other donor", as(auth.Donor, w.otherDonor), PD, PD, NF, 0},
		{"implementer", w.implCtx, OK, OK, OK, 1},
		{"other implementer", w.otherImp, NF, NF, NF, 0},
		{"auditor", as(auth.Auditor, ""), PD, PD, OK, 1},
		{"no role", context.Background(), PD, PD, PD, -1},
	}
	stages := []string{"TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED", "ACCEPTED"}
	for _, r := range roles {
		created, err := w.s.Create(r.ctx, w.input(), w.rid())
		if code(err) != r.create {
			t.Errorf("%s creating: %v, want %s", r.name, err, r.create)
		}
		if _, err := w.s.Advance(r.ctx, id, stages[0], day("2024-04-01"), "", w.rid()); code(err) != r.advance {
			t.Errorf("%s advancing: %v, want %s", r.name, err, r.advance)
		} else if err == nil {
			stages = stages[1:]
		}
		if _, err := w.s.Get(r.ctx, id); code(err) != r.get {
			t.Errorf("%s reading: %v, want %s", r.name, err, r.get)
		}
		list, _, err := w.s.List(r.ctx, procurement.Filter{GrantID: uuid.MustParse(w.grant), PageSize: 1})
		switch {
		case r.listsItems < 0 && code(err) != PD:
			t.Errorf("%s listing: %v", r.name, err)
		case r.listsItems >= 0 && (err != nil || len(list) != r.listsItems):
			t.Errorf("%s listing: %d items, %v; want %d", r.name, len(list), err, r.listsItems)
		}
		_ = created
	}
	// The other implementer manages the items of its own grant.
	w.create(t, w.otherImp, func(in *procurement.Input) { in.GrantID = uuid.MustParse(w.otherGrant) })
}

// A retry answers what the first request answered and writes nothing; the
// same id with another payload is refused; the caller is authorised before
// any replay.
func TestIdempotentWrites(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	first := try(w.s.Create(w.implCtx, w.input(), "create-1")).must(t)
	adv := try(w.s.Advance(w.implCtx, uuid.MustParse(first.ID), "TENDERED", day("2024-04-01"), "tender published", "adv-1")).must(t)
	try(w.s.Advance(w.implCtx, uuid.MustParse(first.ID), "AWARDED", day("2024-05-01"), "", "adv-2")).must(t)
	before := w.counts(t)
	again := try(w.s.Create(w.implCtx, w.input(), "create-1")).must(t)
	if again.ID != first.ID || again.Stage != procurement.Requisitioned || len(again.Stages) != 1 {
		t.Errorf("create retry answered %+v, first %+v", again, first)
	}
	advAgain := try(w.s.Advance(w.implCtx, uuid.MustParse(first.ID), "TENDERED", day("2024-04-01"), "tender published", "adv-1")).must(t)
	if advAgain.Stage != procurement.Tendered || len(advAgain.Stages) != 2 || advAgain.Stages[1].Note != adv.Stages[1].Note {
		t.Errorf("advance retry answered %+v", advAgain.Stages)
	}
	if after := w.counts(t); after != before {
		t.Errorf("retries wrote: %+v → %+v", before, after)
	}
	other := w.input()
	other.Description = "13 metal detectors"
	if _, err := w.s.Create(w.implCtx, other, "create-1"); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Errorf("create-1 with another payload: %v", err)
	}
	if _, err := w.s.Advance(w.implCtx, uuid.MustParse(first.ID), "EVALUATED", day("2024-04-01"), "tender published", "adv-1"); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Errorf("adv-1 with another payload: %v", err)
	}
	// The same organisation, naming a grant it does not receive with a used
	// id, learns nothing: NOT_FOUND, not ALREADY_EXISTS.
	foreign := w.input()
	foreign.GrantID = uuid.MustParse(w.otherGrant)
	if _, err := w.s.Create(w.implCtx, foreign, "create-1"); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("create-1 on another grant: %v", err)
	}
	// Another organisation's id of the same text is its own.
	mine := w.input()
	mine.GrantID = uuid.MustParse(w.otherGrant)
	if it := try(w.s.Create(w.otherImp, mine, "create-1")).must(t); it.ID == first.ID {
		t.Error("another organisation's create-1 replayed the first")
	}
	if after := w.counts(t); after.items != before.items+1 {
		t.Errorf("refusals wrote items: %+v → %+v", before, after)
	}
}

// Advances racing from one stage: exactly one is written, the others are
// ABORTED or refused as no longer forward, never an internal error.
func TestConcurrentAdvancesFromOneStage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	it := w.create(t, w.implCtx, nil)
	id := uuid.MustParse(it.ID)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = w.s.Advance(w.implCtx, id, "TENDERED", day("2024-04-01"), "", fmt.Sprint("race-", i))
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, apperr.ErrAborted), field(err) == "stage":
		default:
			t.Errorf("advance %d: %v", i, err)
		}
	}
	got := try(w.s.Get(coord, id)).must(t)
	var events int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE entity_id = $1`, it.ID).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if won != 1 || len(got.Stages) != 2 || events != 2 {
		t.Fatalf("%d advances won, history %+v, %d events", won, got.Stages, events)
	}
}

// The loser of a race that reaches the primary key is ABORTED: held here
// deterministically by a second stage row inserted, not yet committed,
// while the advance runs.
func TestAdvanceLosingTheRaceIsAborted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	it := w.create(t, w.implCtx, nil)
	ctx := context.Background()
	tx := try(w.db.App.Begin(ctx)).must(t)
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO procurement_stages (item_id, seq, stage, entered_on, recorded_by)
		VALUES ($1, 2, 'EVALUATED', '2024-04-01', 'rival')`, it.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.s.Advance(w.implCtx, uuid.MustParse(it.ID), "TENDERED", day("2024-04-01"), "", "loser")
		done <- err
	}()
	// Wait for the advance to block on the rival's key.
	for waiting := 0; waiting == 0; {
		select {
		case err := <-done:
			t.Fatalf("advance finished without waiting: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if err := w.db.Owner.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, apperr.ErrAborted) {
		t.Fatalf("losing advance: %v", err)
	}
	got := try(w.s.Get(coord, uuid.MustParse(it.ID))).must(t)
	if got.Stage != "EVALUATED" || len(got.Stages) != 2 {
		t.Fatalf("history %+v", got.Stages)
	}
	// The lost request id was not kept: retried, it is judged afresh.
	if _, err := w.s.Advance(w.implCtx, uuid.MustParse(it.ID), "TENDERED", day("2024-04-01"), "", "loser"); field(err) != "stage" {
		t.Fatalf("retry of the loser: %v", err)
	}
}

// Filters, visibility and stable pages.
func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	past := day("2024-06-01")
	a := w.create(t, w.implCtx, func(in *procurement.Input) { in.ExpectedDeliveryDate = past })                     // late
	b := w.create(t, w.implCtx, func(in *procurement.Input) { in.MilestoneID = uuid.MustParse(w.m2) })              // late (2024-09-01)
	c := w.create(t, w.implCtx, func(in *procurement.Input) { in.ExpectedDeliveryDate = today().AddDate(1, 0, 0) }) // not late
	d := w.create(t, w.implCtx, func(in *procurement.Input) { in.ExpectedDeliveryDate = time.Time{} })              // no date
	e := w.create(t, w.otherImp, func(in *procurement.Input) { in.GrantID = uuid.MustParse(w.otherGrant) })         // other grant, late
	try(w.s.Advance(w.implCtx, uuid.MustParse(b.ID), "DELIVERED", day("2024-08-01"), "", w.rid())).must(t)          // no longer late
	try(w.s.Advance(w.implCtx, uuid.MustParse(c.ID), "TENDERED", day("2024-04-01"), "", w.rid())).must(t)
	ids := func(items []procurement.Item) string {
		var out []string
		for _, it := range items {
			out = append(out, map[string]string{a.ID: "a", b.ID: "b", c.ID: "c", d.ID: "d", e.ID: "e"}[it.ID])
		}
		return strings.Join(out, "")
	}
	rm, g, m2 := uuid.MustParse(w.roadmap), uuid.MustParse(w.grant), uuid.MustParse(w.m2)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		f    procurement.Filter
		want string
	}{
		{"all", coord, procurement.Filter{}, "abcde"},
		{"roadmap", coord, procurement.Filter{RoadmapID: rm}, "abcde"},
		{"another roadmap", coord, procurement.Filter{RoadmapID: uuid.Must(uuid.NewV7())}, ""},
		{"grant", coord, procurement.Filter{GrantID: g}, "abcd"},
		{"milestone", coord, procurement.Filter{MilestoneID: m2}, "b"},
		{"stage", coord, procurement.Filter{Stage: "REQUISITIONED"}, "ade"},
		{"stage and grant", coord, procurement.Filter{Stage: "REQUISITIONED", GrantID: g}, "ad"},
		{"delivered", coord, procurement.Filter{Stage: "DELIVERED"}, "b"},
		{"late", coord, procurement.Filter{Late: true}, "ae"},
		{"late, donor", w.donorCtx, procurement.Filter{Late: true}, "a"},
		{"donor", w.donorCtx, procurement.Filter{}, "abcd"},
		{"other donor", as(auth.Donor, w.otherDonor), procurement.Filter{}, "e"},
		{"other donor naming the grant", as(auth.Donor, w.otherDonor), procurement.Filter{GrantID: g}, ""},
		{"implementer", w.implCtx, procurement.Filter{RoadmapID: rm}, "abcd"},
		{"other implementer", w.otherImp, procurement.Filter{}, "e"},
		{"auditor", as(auth.Auditor, ""), procurement.Filter{}, "abcde"},
	} {
		got, next, err := w.s.List(tc.ctx, tc.f)
		if err != nil || ids(got) != tc.want || next != "" {
			t.Errorf("%s: %q (next %q), %v; want %q", tc.name, ids(got), next, err, tc.want)
		}
	}
	// Pages of two walk every item once, in creation order, with histories.
	var all []procurement.Item
	token := ""
	for page := 0; ; page++ {
		got, next, err := w.s.List(coord, procurement.Filter{PageSize: 2, PageToken: token})
		if err != nil || page > 3 {
			t.Fatalf("page %d: %v", page, err)
		}
		all = append(all, got...)
		if token = next; token == "" {
			break
		}
	}
	if ids(all) != "abcde" || len(all[1].Stages) != 2 || all[1].Stage != "DELIVERED" {
		t.Fatalf("pages: %q, b %+v", ids(all), all[1])
	}
	if _, _, err := w.s.List(coord, procurement.Filter{Stage: "SHIPPED"}); field(err) != "stage" {
		t.Errorf("unknown stage filter: %v", err)
	}
	if _, _, err := w.s.List(coord, procurement.Filter{PageToken: "%%%"}); field(err) != "pageToken" {
		t.Errorf("bad page token: %v", err)
	}
	if !a.LateOn(today()) || c.LateOn(today()) || d.LateOn(today()) {
		t.Error("LateOn disagrees with the list")
	}
}
