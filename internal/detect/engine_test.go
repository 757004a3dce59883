package detect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func as(role auth.Role, orgID string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
}

var coord = as(auth.Coordinator, "")

// scripted is a rule whose findings the test sets: the engine's semantics
// (upsert, resolve, review, concurrency) do not depend on what a rule looks
// for.
type scripted struct {
	mu sync.Mutex
	fs []finding
}

func (r *scripted) set(fs ...finding) { r.mu.Lock(); r.fs = fs; r.mu.Unlock() }

func (r *scripted) rule() rule {
	return rule{kind: "scripted", find: func(context.Context, postgres.Querier, scope) ([]finding, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Clone(r.fs), nil
	}}
}

// world is a database with a roadmap, two donors and two implementers, and
// grants g1 (donor1 → ngo1) and g2 (donor2 → ngo2) with one journal entry
// each, and a store whose only rule is scripted.
type world struct {
	db                         *testdb.DB
	s                          *Store
	r                          *scripted
	roadmap, roadmap2          uuid.UUID
	donor1, donor2, ngo1, ngo2 string
	g1, g2, tx1, tx2           string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := testdb.New(t)
	w := &world{db: db, r: &scripted{}, roadmap: uuid.New(), roadmap2: uuid.New()}
	w.s = New(db.App, DefaultConfig())
	w.s.rules = []rule{w.r.rule()}
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Owner.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, rm := range []uuid.UUID{w.roadmap, w.roadmap2} {
		exec(`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
			VALUES ($1, 'AFG', 'Strategy', '2024-01-01', '2026-12-31', 'USD')`, rm)
	}
	org := func(kind string) string {
		id := uuid.NewString()
		exec(`INSERT INTO organizations (id, name, kind) VALUES ($1, $2, $3)`, id, kind+" "+id, kind)
		return id
	}
	w.donor1, w.donor2, w.ngo1, w.ngo2 = org("DONOR"), org("DONOR"), org("IMPLEMENTER"), org("IMPLEMENTER")
	grant := func(donor, ngo string) (string, string) {
		g, tx := uuid.NewString(), uuid.NewString()
		exec(`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
			VALUES ($1, $2, $3, $4, $5, 'Grant', 'USD', '2024-01-01', '2025-12-31')`, g, w.roadmap, donor, ngo, g)
		exec(`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
			agreement_rate, reporting_rate, value_date, recorded_by, recorded_role)
			VALUES ($1, $2, 'PLEDGE', 'PLEDGE', 100, 'USD', 100, 100, 1, 1, '2024-02-01', 'test', 'admin')`, tx, g)
		return g, tx
	}
	w.g1, w.tx1 = grant(w.donor1, w.ngo1)
	w.g2, w.tx2 = grant(w.donor2, w.ngo2)
	return w
}

// f is a finding of kind DUPLICATE_TRANSACTION with key, about subjects.
func f(key string, evidence int, subjects ...Subject) finding {
	return finding{Kind: DuplicateTransaction, Severity: High, Key: key, Subjects: subjects,
		Evidence: map[string]any{"n": evidence}, Explanation: "Entries " + key + " look like one payment entered twice."}
}

func grantSubject(id string) Subject { return Subject{Type: SubjectGrant, ID: id} }

func (w *world) run(t *testing.T, roadmap uuid.UUID) RunResult {
	t.Helper()
	r, err := w.s.Run(coord, roadmap, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func counts(r RunResult, kind string) KindCounts {
	for _, c := range r.Counts {
		if c.Kind == kind {
			return c
		}
	}
	return KindCounts{}
}

func (w *world) flags(t *testing.T, ctx context.Context, f ListFilter) map[string]Flag {
	t.Helper()
	out := map[string]Flag{}
	for {
		list, next, err := w.s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range list {
			out[x.Fingerprint] = x
		}
		if next == "" {
			return out
		}
		f.PageToken = next
	}
}

func fp(key string) string { return finding{Kind: DuplicateTransaction, Key: key}.fingerprint() }

// The life of flags across runs: found, found again, reviewed, gone
// (resolved by the run that saw it go), back (open again, review kept).
func TestRunsOpenKeepResolveAndReopenFlags(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	a := func(n int) finding { return f("a", n, grantSubject(w.g1)) }
	b := func(n int) finding { return f("b", n, Subject{Type: SubjectTransaction, ID: w.tx2}) }
	c := func(n int) finding { return f("c", n, grantSubject(w.g1), grantSubject(w.g2)) }

	w.r.set(a(1), b(1))
	r1 := w.run(t, w.roadmap)
	if got := counts(r1, DuplicateTransaction); got != (KindCounts{Kind: DuplicateTransaction, New: 2}) {
		t.Fatalf("first run: %+v", got)
	}
	if len(r1.Counts) != len(Kinds) {
		t.Fatalf("counts of %d kinds, want every kind (%d)", len(r1.Counts), len(Kinds))
	}
	first := w.flags(t, coord, ListFilter{})
	if len(first) != 2 || first[fp("a")].Status != Open || first[fp("b")].FirstRun != r1.RunID {
		t.Fatalf("after the first run: %+v", first)
	}
	// b names a journal entry of g2: the flag is about g2, its donor and recipient.
	if fb := first[fp("b")]; !slices.Equal(fb.GrantIDs, []string{w.g2}) || !slices.Equal(fb.DonorOrgIDs, []string{w.donor2}) ||
		!slices.Equal(fb.RecipientOrgIDs, []string{w.ngo2}) {
		t.Fatalf("b involves %v %v %v, want g2 and its parties", fb.GrantIDs, fb.DonorOrgIDs, fb.RecipientOrgIDs)
	}

	// A rerun finds the same flags.
	r2 := w.run(t, w.roadmap)
	if got := counts(r2, DuplicateTransaction); got != (KindCounts{Kind: DuplicateTransaction, StillOpen: 2}) {
		t.Fatalf("rerun: %+v", got)
	}
	again := w.flags(t, coord, ListFilter{})
	for k, x := range first {
		if again[k].ID != x.ID || again[k].Status != Open || !again[k].UpdatedAt.Equal(x.UpdatedAt) {
			t.Fatalf("rerun changed flag %s: %+v → %+v", k, x, again[k])
		}
	}

	// Reviews.
	if _, err := w.s.Review(coord, uuid.MustParse(first[fp("a")].ID), Acknowledge, "", "ack-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.Review(coord, uuid.MustParse(first[fp("b")].ID), Dismiss, "a split payment agreed with the donor", "dismiss-b"); err != nil {
		t.Fatal(err)
	}

	// a's figures change, b goes, c appears.
	w.r.set(a(2), c(1))
	r3 := w.run(t, w.roadmap)
	if got := counts(r3, DuplicateTransaction); got != (KindCounts{Kind: DuplicateTransaction, New: 1, StillOpen: 1, Resolved: 1}) {
		t.Fatalf("third run: %+v", got)
	}
	third := w.flags(t, coord, ListFilter{})
	if fa := third[fp("a")]; fa.Status != Acknowledged || fa.ReviewedBy == "" || string(fa.Evidence) != `{"n": 2}` || fa.ID != first[fp("a")].ID {
		t.Fatalf("a after its figures changed: %+v (evidence %s)", fa, fa.Evidence)
	}
	if fb := third[fp("b")]; fb.Status != Resolved || fb.ResolvedByRun != r3.RunID || fb.ResolvedAt == nil {
		t.Fatalf("b once gone: %+v", fb)
	}
	if fc := third[fp("c")]; fc.Status != Open || len(fc.GrantIDs) != 2 {
		t.Fatalf("c: %+v", fc)
	}

	// b comes back: dismissed again, as its last review left it (a replay
	// of a past day, which resolves today's flags, must not undo reviews).
	w.r.set(a(2), b(1), c(1))
	r4 := w.run(t, w.roadmap)
	if got := counts(r4, DuplicateTransaction); got != (KindCounts{Kind: DuplicateTransaction, Reopened: 1, StillOpen: 2}) {
		t.Fatalf("fourth run: %+v", got)
	}
	fb, err := w.s.Get(coord, uuid.MustParse(first[fp("b")].ID))
	if err != nil {
		t.Fatal(err)
	}
	if fb.Status != Dismissed || fb.ResolvedByRun != "" || fb.ReviewAction != Dismiss || fb.ReviewNote != "a split payment agreed with the donor" {
		t.Fatalf("b back: %+v", fb)
	}
	hist, err := w.s.History(coord, uuid.MustParse(fb.ID))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range hist {
		events = append(events, e.Event)
	}
	if want := []string{"OPENED", "DISMISS", "RESOLVED", "REOPENED"}; !slices.Equal(events, want) {
		t.Fatalf("b's history %v, want %v", events, want)
	}
	fa, _ := w.s.History(coord, uuid.MustParse(first[fp("a")].ID))
	if len(fa) != 3 || fa[2].Event != "UPDATED" || string(fa[2].Evidence) != `{"n": 2}` {
		t.Fatalf("a's history: %+v", fa)
	}

	// Every run is audited with what it opened and resolved.
	var n int
	var change string
	if err := w.db.Owner.QueryRow(ctx, `SELECT count(*) OVER (), change FROM audit_events
		WHERE entity_type = 'detection_run' AND entity_id = $1`, r3.RunID).Scan(&n, &change); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.Contains(change, `"resolved":["`+first[fp("b")].ID+`"]`) || !strings.Contains(change, `"opened":["`+third[fp("c")].ID+`"]`) {
		t.Fatalf("audit of the third run: %d events, %s", n, change)
	}
	if err := w.db.Owner.QueryRow(ctx, `SELECT count(*) FROM detection_runs WHERE roadmap_id = $1`, w.roadmap).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d runs recorded (%v), want 4", n, err)
	}
}

// Two runs of one roadmap at once raise each finding once; a run of
// another roadmap leaves the first roadmap's flags alone.
func TestConcurrentRunsRaiseEachFlagOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var fs []finding
	for i := range 200 {
		fs = append(fs, f(fmt.Sprint("k", i), i, grantSubject(w.g1)))
	}
	w.r.set(fs...)
	var wg sync.WaitGroup
	results := make([]RunResult, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() { results[i], errs[i] = w.s.Run(coord, w.roadmap, time.Time{}) })
	}
	wg.Wait()
	news := 0
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		c := counts(results[i], DuplicateTransaction)
		news += c.New
		if c.New+c.StillOpen != 200 || c.Resolved != 0 {
			t.Fatalf("run %d: %+v", i, c)
		}
	}
	if news != 200 {
		t.Fatalf("%d flags opened in all, want 200", news)
	}
	var n int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM flags`).Scan(&n); err != nil || n != 200 {
		t.Fatalf("%d flags (%v), want 200", n, err)
	}

	// The same finding in another roadmap is another flag; that roadmap's
	// run, finding nothing, resolves nothing of the first.
	w.r.set(fs[0])
	w.run(t, w.roadmap2)
	w.r.set()
	r := w.run(t, w.roadmap2)
	if c := counts(r, DuplicateTransaction); c.Resolved != 1 {
		t.Fatalf("second roadmap's run: %+v", c)
	}
	if got := w.flags(t, coord, ListFilter{RoadmapID: w.roadmap, Status: Open}); len(got) != 200 {
		t.Fatalf("%d open flags left in the first roadmap, want 200", len(got))
	}
}

func TestReviewTransitions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// One flag per starting status.
	w.r.set(f("open", 0, grantSubject(w.g1)), f("ack", 0, grantSubject(w.g1)), f("dis", 0, grantSubject(w.g1)), f("res", 0, grantSubject(w.g1)))
	w.run(t, w.roadmap)
	w.r.set(f("open", 0, grantSubject(w.g1)), f("ack", 0, grantSubject(w.g1)), f("dis", 0, grantSubject(w.g1)))
	w.run(t, w.roadmap)
	n := 0
	review := func(key, action, note string) (Flag, error) {
		n++
		id := uuid.MustParse(w.flags(t, coord, ListFilter{})[fp(key)].ID)
		return w.s.Review(coord, id, action, note, fmt.Sprint("req-", n))
	}
	tests := []struct {
		from, action, want string // want "" = FAILED_PRECONDITION
	}{
		{Open, Acknowledge, Acknowledged}, {Open, Dismiss, Dismissed}, {Open, Reopen, ""},
		{Acknowledged, Acknowledge, ""}, {Acknowledged, Dismiss, Dismissed}, {Acknowledged, Reopen, Open},
		{Dismissed, Acknowledge, Acknowledged}, {Dismissed, Dismiss, ""}, {Dismissed, Reopen, Open},
		{Resolved, Acknowledge, ""}, {Resolved, Dismiss, ""}, {Resolved, Reopen, ""},
	}
	keys := map[string]string{Open: "open", Acknowledged: "ack", Dismissed: "dis", Resolved: "res"}
	for _, tc := range tests {
		// Bring the flag to tc.from first.
		key := keys[tc.from]
		cur := w.flags(t, coord, ListFilter{})[fp(key)].Status
		if cur != tc.from {
			var err error
			switch {
			case cur != Open:
				_, err = review(key, Reopen, "")
			}
			if err == nil && tc.from == Acknowledged {
				_, err = review(key, Acknowledge, "")
			}
			if err == nil && tc.from == Dismissed {
				_, err = review(key, Dismiss, "not a duplicate")
			}
			if err != nil {
				t.Fatalf("bringing %s to %s: %v", key, tc.from, err)
			}
		}
		got, err := review(key, tc.action, "because")
		switch {
		case tc.want == "" && !errors.Is(err, apperr.ErrFailedPrecondition):
			t.Errorf("%s from %s: got %v (%v), want FAILED_PRECONDITION", tc.action, tc.from, got.Status, err)
		case tc.want == "" && tc.from == Resolved && !strings.Contains(err.Error(), "no longer holds"):
			t.Errorf("%s of a resolved flag: message %q does not say why", tc.action, err)
		case tc.want != "" && (err != nil || got.Status != tc.want || got.ReviewAction != tc.action || got.ReviewNote != "because"):
			t.Errorf("%s from %s: got %+v, %v; want %s", tc.action, tc.from, got, err, tc.want)
		}
	}
}

func TestReviewRefusesBadInputAndReplays(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.r.set(f("a", 0, grantSubject(w.g1)))
	w.run(t, w.roadmap)
	id := uuid.MustParse(w.flags(t, coord, ListFilter{})[fp("a")].ID)
	events := func() (n int) {
		if err := w.db.Owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM flag_events) + (SELECT count(*) FROM audit_events)
			+ (SELECT count(*) FROM idempotency_keys)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := events()
	for _, tc := range []struct {
		name, action, note, requestID, field string
	}{
		{"unknown action", "APPROVE", "", "r", "action"},
		{"empty action", "", "", "r", "action"},
		{"dismissal without a note", Dismiss, "  ", "r", "note"},
		{"note too long", Acknowledge, strings.Repeat("x", 2001), "r", "note"},
		{"NUL in the note", Acknowledge, "a\x00b", "r", "note"},
		{"no request id", Acknowledge, "", "", "requestId"},
	} {
		_, err := w.s.Review(coord, id, tc.action, tc.note, tc.requestID)
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) || inv.Violations[0].Field != tc.field {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := w.s.Review(coord, uuid.New(), Acknowledge, "", "r-missing"); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("unknown flag: %v", err)
	}
	for _, role := range []auth.Role{auth.Auditor, auth.Donor, auth.Implementer} {
		if _, err := w.s.Review(as(role, w.donor1), id, Acknowledge, "", "r-role"); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Errorf("%s reviewing: %v", role, err)
		}
	}
	if after := events(); after != before {
		t.Fatalf("refused reviews wrote %d rows", after-before)
	}

	first, err := w.s.Review(coord, id, Acknowledge, "on it", "same")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.Review(coord, id, Dismiss, "not a duplicate", "then"); err != nil {
		t.Fatal(err)
	}
	written := events()
	again, err := w.s.Review(coord, id, Acknowledge, "on it", "same")
	if err != nil || again.Status != Acknowledged || !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("replay: %+v, %v; want the first answer", again, err)
	}
	if _, err := w.s.Review(coord, id, Reopen, "", "same"); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Fatalf("same request id, other payload: %v", err)
	}
	if events() != written {
		t.Fatal("a replay wrote something")
	}
	// The review's audit event names the parties to the flag's grants, each
	// with its role.
	var subjects []string
	if err := w.db.Owner.QueryRow(ctx, `SELECT subject_orgs FROM audit_events WHERE entity_type = 'flag' AND entity_id = $1
		ORDER BY id LIMIT 1`, id.String()).Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if want := []string{"donor:" + w.donor1, "recipient:" + w.ngo1}; !slices.Equal(subjects, want) {
		t.Fatalf("review event subjects %v, want %v", subjects, want)
	}
}

func TestRunRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.r.set(f("a", 0, grantSubject(w.g1)))
	for _, tc := range []struct {
		name string
		ctx  context.Context
		rm   uuid.UUID
		asOf time.Time
		want error
	}{
		{"donor", as(auth.Donor, w.donor1), w.roadmap, time.Time{}, apperr.ErrPermissionDenied},
		{"implementer", as(auth.Implementer, w.ngo1), w.roadmap, time.Time{}, apperr.ErrPermissionDenied},
		{"auditor", as(auth.Auditor, ""), w.roadmap, time.Time{}, apperr.ErrPermissionDenied},
		{"unknown roadmap", coord, uuid.New(), time.Time{}, apperr.ErrNotFound},
	} {
		if _, err := w.s.Run(tc.ctx, tc.rm, tc.asOf); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, asOf := range []time.Time{today().AddDate(0, 0, 1), time.Date(1989, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, err := w.s.Run(coord, w.roadmap, asOf)
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "asOf" {
			t.Errorf("as of %s: %v, want INVALID_ARGUMENT naming asOf once", asOf.Format(time.DateOnly), err)
		}
	}
	// A rule's defect (a subject that is no id) fails the run and writes nothing.
	w.r.set(f("a", 0, Subject{Type: SubjectGrant, ID: "G-1"}))
	if _, err := w.s.Run(coord, w.roadmap, time.Time{}); err == nil || !strings.Contains(err.Error(), "not a uuid") {
		t.Fatalf("a finding naming no id: %v", err)
	}
	var n int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM flags) + (SELECT count(*) FROM detection_runs)
		+ (SELECT count(*) FROM audit_events)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused runs wrote %d rows (%v)", n, err)
	}
	// A past day may be replayed.
	w.r.set(f("a", 0, grantSubject(w.g1)))
	r, err := w.s.Run(coord, w.roadmap, time.Date(2024, 6, 30, 15, 0, 0, 0, time.UTC))
	if err != nil || !r.AsOf.Equal(time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("replaying 2024-06-30: %+v, %v", r, err)
	}
}

// RunAll runs every roadmap, and skips one run moments ago.
func TestRunAllSkipsFreshRuns(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.r.set(f("a", 0, grantSubject(w.g1)))
	op := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("background detection"))
	w.run(t, w.roadmap)
	rs, err := w.s.RunAll(op, time.Hour)
	if err != nil || len(rs) != 2 {
		t.Fatalf("RunAll: %+v, %v", rs, err)
	}
	for _, r := range rs {
		if r.Skipped != (r.RoadmapID == w.roadmap.String()) {
			t.Errorf("roadmap %s skipped=%v", r.RoadmapID, r.Skipped)
		}
	}
	if _, err := w.s.RunAll(as(auth.Donor, w.donor1), time.Hour); !errors.Is(err, apperr.ErrPermissionDenied) {
		t.Fatalf("donor: %v", err)
	}
	var actor string
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT actor FROM detection_runs WHERE roadmap_id = $1`, w.roadmap2).Scan(&actor); err != nil || actor != "operator:background detection" {
		t.Fatalf("background run recorded as %q (%v)", actor, err)
	}
}

// Who sees which flag: coordinators, admins and auditors all; a donor those
// about grants it gives, an implementer those about grants it receives;
// others' flags are NOT_FOUND.
func TestFlagVisibilityAndFilters(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.r.set(f("g1", 0, grantSubject(w.g1)), f("tx2", 0, Subject{Type: SubjectTransaction, ID: w.tx2}),
		f("both", 0, grantSubject(w.g1), grantSubject(w.g2)), f("org", 0, Subject{Type: SubjectOrganization, ID: w.donor2}))
	w.run(t, w.roadmap)
	all := w.flags(t, coord, ListFilter{})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		see  []string
	}{
		{"coordinator", coord, []string{"g1", "tx2", "both", "org"}},
		{"admin", as(auth.Admin, ""), []string{"g1", "tx2", "both", "org"}},
		{"auditor", as(auth.Auditor, ""), []string{"g1", "tx2", "both", "org"}},
		{"donor1", as(auth.Donor, w.donor1), []string{"g1", "both"}},
		// "org" names donor2's organisation but involves no grant of it:
		// only the unbound roles see it.
		{"donor2", as(auth.Donor, w.donor2), []string{"tx2", "both"}},
		{"ngo1", as(auth.Implementer, w.ngo1), []string{"g1", "both"}},
		{"ngo2", as(auth.Implementer, w.ngo2), []string{"tx2", "both"}},
	} {
		got := w.flags(t, tc.ctx, ListFilter{PageSize: 1})
		var keys []string
		for _, k := range []string{"g1", "tx2", "both", "org"} {
			_, listed := got[fp(k)]
			_, err := w.s.Get(tc.ctx, uuid.MustParse(all[fp(k)].ID))
			if listed != (err == nil) {
				t.Errorf("%s: %s listed=%v but Get: %v", tc.name, k, listed, err)
			}
			if err != nil && !errors.Is(err, apperr.ErrNotFound) {
				t.Errorf("%s: Get %s: %v, want NOT_FOUND", tc.name, k, err)
			}
			if listed {
				keys = append(keys, k)
			}
		}
		if !slices.Equal(keys, tc.see) {
			t.Errorf("%s sees %v, want %v", tc.name, keys, tc.see)
		}
	}
	filtered := func(f ListFilter) []string {
		got := w.flags(t, coord, f)
		var keys []string
		for _, k := range []string{"g1", "tx2", "both", "org"} {
			if _, ok := got[fp(k)]; ok {
				keys = append(keys, k)
			}
		}
		return keys
	}
	for _, tc := range []struct {
		name string
		f    ListFilter
		want []string
	}{
		{"grant", ListFilter{GrantID: uuid.MustParse(w.g2)}, []string{"tx2", "both"}},
		{"organisation", ListFilter{OrganizationID: uuid.MustParse(w.ngo1)}, []string{"g1", "both"}},
		{"roadmap", ListFilter{RoadmapID: w.roadmap2}, nil},
		{"kind", ListFilter{Kind: IdleFunds}, nil},
		{"severity", ListFilter{Severity: High, Status: Open, Kind: DuplicateTransaction, RoadmapID: w.roadmap}, []string{"g1", "tx2", "both", "org"}},
	} {
		if got := filtered(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("filter %s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		f     ListFilter
		field string
	}{
		{ListFilter{Kind: "DUPLICATES"}, "kind"},
		{ListFilter{Severity: "CRITICAL"}, "severity"},
		{ListFilter{Status: "CLOSED"}, "status"},
		{ListFilter{PageToken: "!!"}, "pageToken"},
	} {
		_, _, err := w.s.List(coord, tc.f)
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) || inv.Violations[0].Field != tc.field {
			t.Errorf("%+v: %v, want INVALID_ARGUMENT naming %s", tc.f, err, tc.field)
		}
	}
}

// RunAll goes on after a roadmap whose run fails, and says which failed.
func TestRunAllGoesOnAfterAFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.r.set(f("a", 0, grantSubject(w.g1)))
	failing := w.roadmap2
	w.s.rules = append(w.s.rules, rule{kind: IdleFunds, find: func(_ context.Context, _ postgres.Querier, s scope) ([]finding, error) {
		if s.RoadmapID == failing {
			return nil, errors.New("no rate for EUR/USD on 2025-01-01")
		}
		return nil, nil
	}})
	op := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("background detection"))
	rs, err := w.s.RunAll(op, 0)
	if err == nil || !strings.Contains(err.Error(), failing.String()) || !strings.Contains(err.Error(), "no rate") {
		t.Fatalf("RunAll error %v, want one naming roadmap %s", err, failing)
	}
	if len(rs) != 1 || rs[0].RoadmapID != w.roadmap.String() || counts(rs[0], DuplicateTransaction).New != 1 {
		t.Fatalf("RunAll results %+v, want the other roadmap's run", rs)
	}
}

// A review racing a run that resolves the flag: either the review lands
// first and the run then resolves the reviewed flag, or the run does and
// the review is refused; never both half-applied.
func TestReviewRacingARun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for i := range 10 {
		w.r.set(f("a", 0, grantSubject(w.g1)))
		w.run(t, w.roadmap)
		id := uuid.MustParse(w.flags(t, coord, ListFilter{})[fp("a")].ID)
		w.r.set()
		var wg sync.WaitGroup
		var reviewErr, runErr error
		wg.Go(func() {
			_, reviewErr = w.s.Review(coord, id, Acknowledge, "", fmt.Sprint("race-", i))
		})
		wg.Go(func() { _, runErr = w.s.Run(coord, w.roadmap, time.Time{}) })
		wg.Wait()
		if runErr != nil {
			t.Fatal(runErr)
		}
		got, err := w.s.Get(coord, id)
		if err != nil {
			t.Fatal(err)
		}
		hist, _ := w.s.History(coord, id)
		last := hist[len(hist)-1].Event
		switch {
		case got.Status != Resolved || last != "RESOLVED":
			t.Fatalf("round %d: flag %s, last event %s; want RESOLVED by the run", i, got.Status, last)
		case reviewErr == nil && hist[len(hist)-2].Event != Acknowledge:
			t.Fatalf("round %d: the review succeeded but is not in the history: %+v", i, hist)
		case reviewErr != nil && !errors.Is(reviewErr, apperr.ErrFailedPrecondition):
			t.Fatalf("round %d: review: %v", i, reviewErr)
		}
	}
}

// Runs queued behind a run of the same roadmap wait without holding a
// connection: on a pool of two, with the roadmap's lock held elsewhere,
// four waiting runs leave the pool free for everything else, and all four
// run once the lock is let go.
func TestWaitingRunsHoldNoConnection(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.r.set(f("a", 0, grantSubject(w.g1)))
	cfg, err := pgxpool.ParseConfig(w.db.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := New(pool, DefaultConfig())
	s.rules = w.s.rules
	// Another session holds the roadmap's run lock.
	holder, err := w.db.Owner.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_lock($1, hashtext($2))`, runLockClass, w.roadmap.String()); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := s.Run(coord, w.roadmap, time.Time{}); errs <- err }()
	}
	time.Sleep(300 * time.Millisecond) // the runs are waiting by now
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var one int
		err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one)
		cancel()
		if err != nil {
			t.Fatalf("with four runs waiting, the pool of two has no connection left: %v", err)
		}
	}
	if _, err := holder.Exec(context.Background(), `SELECT pg_advisory_unlock($1, hashtext($2))`, runLockClass, w.roadmap.String()); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("a waiting run: %v", err)
		}
	}
	var runs int
	if err := w.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM detection_runs WHERE roadmap_id = $1`, w.roadmap).Scan(&runs); err != nil || runs != 4 {
		t.Fatalf("%d runs recorded (%v), want 4", runs, err)
	}
}
