package reports_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/uuid"
	"github.com/gowebpki/jcs"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
	"github.com/tranche-ledger/tranche/reports"
)

const stampFormat = "2006-01-02T15:04:05.000000Z"

func stampOf(t time.Time) string { return t.UTC().Format(stampFormat) }

// trailWorld extends world with procurement, flags and their audit events
// on both donors' grants, a batch across both grants whose part for the EUR
// grant is too long for a cell, a grant of donor A in another roadmap, and
// changes after its own as-of time (early).
type trailWorld struct {
	*world
	proc         *procurement.Store
	det          *detect.Store
	milestone    string
	itemA, itemB procurement.Item
	lateItem     procurement.Item
	flagA, flagB detect.Flag
	runID        string
	otherGrant   ledger.Grant
	early        time.Time // after the first round, before the late changes
	lateEvents   []int64   // ids of events after early
	longEventID  int64     // a roadmap event whose change holds characters outside the BMP
	txGrants     map[string]string
}

func newTrailWorld(t *testing.T) *trailWorld {
	t.Helper()
	w := &trailWorld{world: newWorld(t)}
	w.proc = procurement.New(w.db.App)
	w.det = detect.New(w.db.App, detect.DefaultConfig())
	ctx := context.Background()
	im := as(auth.Implementer, w.impl)
	rs := roadmap.New(w.db.App)
	w.milestone = try(rs.CreateMilestone(coord, w.roadmapID, roadmap.MilestoneInput{Code: "M-1", Title: "Clearance M-1",
		ActivityType: "CLEARANCE", FundingRequirement: amt("1000.00", "USD")}, w.req())).must(t).ID
	item := func(g ledger.Grant, cost, desc string) procurement.Item {
		return try(w.proc.Create(im, procurement.Input{GrantID: uuid.MustParse(g.ID), MilestoneID: uuid.MustParse(w.milestone),
			Description: desc, Category: "DETECTORS", Critical: g.ID == w.eur.ID, EstimatedCost: amt(cost, g.Currency),
			ExpectedDeliveryDate: day("2024-09-01"), RequisitionedOn: day("2024-03-01")}, w.req())).must(t)
	}
	w.itemA = item(w.eur, "48000.50", "12 metal detectors")
	w.itemB = item(w.jpy, "900000", "Armoured vehicle")
	try(w.proc.Advance(im, uuid.MustParse(w.itemA.ID), "TENDERED", day("2024-04-01"), "tender T-1", w.req())).must(t)
	w.itemA = try(w.proc.Advance(im, uuid.MustParse(w.itemA.ID), "EVALUATED", day("2024-05-10"), "", w.req())).must(t)

	// A batch across both donors' grants: one audit event per grant; the EUR
	// grant's part (120 entries) is longer than a cell holds.
	var in []ledger.EntryInput
	for i := range 120 {
		in = append(in, ledger.EntryInput{GrantID: uuid.MustParse(w.eur.ID), Type: "EXPENDITURE", Amount: amt("1.00", "EUR"),
			ValueDate: day("2024-05-01"), Reference: fmt.Sprintf("INV-B%d", i)})
	}
	in = append(in, ledger.EntryInput{GrantID: uuid.MustParse(w.jpy.ID), Type: "RECEIPT", Amount: amt("1234567", "JPY"),
		ValueDate: day("2024-04-05"), Reference: "J-1"})
	try(w.l.BatchRecord(im, in, w.req())).must(t)

	// Donor A's grant in another roadmap: its events are not this roadmap's.
	rm2 := try(rs.Create(coord, roadmap.Input{Country: "KHM", Title: "Other strategy", StartDate: day("2024-01-01"),
		EndDate: day("2026-12-31"), ReportingCurrency: "EUR"}, w.req())).must(t)
	w.otherGrant = try(w.l.CreateGrant(as(auth.Donor, w.donorA), ledger.GrantInput{RoadmapID: uuid.MustParse(rm2.ID),
		DonorOrgID: uuid.MustParse(w.donorA), RecipientOrgID: uuid.MustParse(w.impl), Reference: "A-9", Title: "Elsewhere",
		Currency: "EUR", Pledged: amt("10.00", "EUR"), StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}, w.req())).must(t)

	// An event about the roadmap whose change is longer than a cell, in
	// characters that take two UTF-16 units (as Excel counts).
	long := `{"note":"` + strings.Repeat("😀", 20000) + `"}`
	if err := w.db.App.QueryRow(ctx, `INSERT INTO audit_events (actor_token_id, actor_name, actor_role, actor_org_id, method,
		entity_type, entity_id, request_id, change) VALUES ('tok-x', 'x', 'coordinator', '', 'Test', 'roadmap', $1, 'long', $2)
		RETURNING id`, w.roadmapID.String(), long).Scan(&w.longEventID); err != nil {
		t.Fatal(err)
	}

	run := try(w.det.Run(coord, w.roadmapID, time.Time{})).must(t)
	w.runID = run.RunID
	for _, f := range listFlags(t, coord, w.det, detect.ListFilter{RoadmapID: w.roadmapID}) {
		switch {
		case f.Kind == "PROCUREMENT_LATE" && slices.Equal(f.GrantIDs, []string{w.eur.ID}):
			w.flagA = f
		case f.Kind == "PROCUREMENT_LATE" && slices.Equal(f.GrantIDs, []string{w.jpy.ID}):
			w.flagB = f
		}
	}
	if w.flagA.ID == "" || w.flagB.ID == "" {
		t.Fatalf("detection raised no PROCUREMENT_LATE flag per grant: %+v", listFlags(t, coord, w.det, detect.ListFilter{RoadmapID: w.roadmapID}))
	}
	try(w.det.Review(coord, uuid.MustParse(w.flagA.ID), "ACKNOWLEDGE", "", w.req())).must(t)
	try(w.det.Review(coord, uuid.MustParse(w.flagB.ID), "ACKNOWLEDGE", "", w.req())).must(t)
	try(w.audit.Head(ctx)).must(t) // seal

	time.Sleep(2 * time.Millisecond)
	w.early = time.Now().UTC().Truncate(time.Microsecond)
	time.Sleep(2 * time.Millisecond)
	var mark int64
	if err := w.db.Owner.QueryRow(ctx, `SELECT max(id) FROM audit_events`).Scan(&mark); err != nil {
		t.Fatal(err)
	}
	try(w.proc.Advance(im, uuid.MustParse(w.itemA.ID), "AWARDED", time.Time{}, "awarded late", w.req())).must(t)
	w.lateItem = item(w.eur, "10.00", "Spare batteries")
	try(w.det.Review(coord, uuid.MustParse(w.flagA.ID), "DISMISS", "supplier confirmed a new date", w.req())).must(t)
	try(w.audit.Head(ctx)).must(t)
	rows, err := w.db.Owner.Query(ctx, `SELECT id FROM audit_events WHERE id > $1`, mark)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		w.lateEvents = append(w.lateEvents, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return w
}

func listFlags(t *testing.T, ctx context.Context, d *detect.Store, f detect.ListFilter) []detect.Flag {
	t.Helper()
	var out []detect.Flag
	for {
		page, next, err := d.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		f.PageToken = next
	}
}

func listItems(t *testing.T, ctx context.Context, s *procurement.Store, f procurement.Filter) []procurement.Item {
	t.Helper()
	var out []procurement.Item
	for {
		page, next, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		f.PageToken = next
	}
}

func listEvents(t *testing.T, ctx context.Context, s *audit.Store) []audit.Event {
	t.Helper()
	var out []audit.Event
	f := audit.Filter{PageSize: 100}
	for {
		page, next, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		f.PageToken = next
	}
}

func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jcs.Transform(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(c)
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func utcDate(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// wantProcurement is the Procurement sheet the procurement API's items give
// at asOf (the API answers now; the stage recorded-by and -at columns are
// not in its answer and are left out).
func wantProcurement(items []procurement.Item, gref map[string]string, asOf time.Time) [][]string {
	var out [][]string
	for _, it := range items {
		crit, exp := "no", ""
		if it.Critical {
			crit = "yes"
		}
		if it.ExpectedDeliveryDate != nil {
			exp = it.ExpectedDeliveryDate.Format(time.DateOnly)
		}
		for k, st := range it.Stages {
			left, until := "", utcDate(asOf)
			if k+1 < len(it.Stages) {
				until = it.Stages[k+1].EnteredOn
				left = until.Format(time.DateOnly)
			}
			out = append(out, []string{it.ID, it.GrantID, gref[it.GrantID], it.MilestoneID, it.Description, it.Category, crit,
				money.Format(it.EstimatedCost.Value, it.EstimatedCost.Currency), it.EstimatedCost.Currency, exp, it.Stage,
				fmt.Sprint(k + 1), st.Stage, st.EnteredOn.Format(time.DateOnly), left,
				fmt.Sprint(int(utcDate(until).Sub(utcDate(st.EnteredOn)).Hours() / 24)), st.Note})
		}
	}
	return out
}

// wantFlags is the Flags sheet the flags API (and each flag's history)
// gives now.
func (w *trailWorld) wantFlags(t *testing.T, flags []detect.Flag) [][]string {
	var out [][]string
	for _, f := range flags {
		hist := try(w.det.History(coord, uuid.MustParse(f.ID))).must(t)
		last := hist[len(hist)-1]
		ev := string(try(jcs.Transform(f.Evidence)).must(t))
		reviewedAt := ""
		if f.ReviewedAt != nil {
			reviewedAt = stampOf(*f.ReviewedAt)
		}
		out = append(out, []string{f.ID, f.Kind, f.Severity, f.Status, last.Event, stampOf(last.OccurredAt), canon(t, f.GrantIDs),
			canon(t, f.Subjects), f.Explanation, ev, fmt.Sprint(len(ev)), sum(ev), stampOf(f.DetectedAt), f.ReviewAction,
			f.ReviewedBy, reviewedAt, f.ReviewNote})
	}
	return out
}

// fitted is what a cell holds of s: s, or when it has more UTF-16 units than
// a cell holds, the longest prefix of whole characters that fits with the
// truncation mark after it.
func fitted(s string) string {
	units := func(s string) int { return len(utf16.Encode([]rune(s))) }
	if units(s) <= reports.MaxCellChars {
		return s
	}
	r := []rune(s)
	for units(string(r))+units(reports.TruncatedMark) > reports.MaxCellChars {
		r = r[:len(r)-max(1, (units(string(r))+units(reports.TruncatedMark)-reports.MaxCellChars)/2)]
	}
	return string(r) + reports.TruncatedMark
}

func eventRow(t *testing.T, e audit.Event) []string {
	return []string{fmt.Sprint(e.Seq), fmt.Sprint(e.ID), stampOf(e.OccurredAt), e.ActorTokenID, e.ActorName, e.ActorRole,
		e.ActorOrgID, e.Method, e.EntityType, e.EntityID, e.RequestID, canon(t, e.SubjectOrgs), fitted(e.Change),
		fmt.Sprint(len(e.Change)), sum(e.Change), hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash)}
}

// about tells whether an event is about the roadmap's records narrowed to
// grants (nil: roadmap-wide) — the rule of doc.go written out from what the
// test created.
func (w *trailWorld) about(t *testing.T, e audit.Event, grants []string, donor string) bool {
	in := func(id string, ids ...string) bool { return slices.Contains(ids, id) }
	wide := grants == nil
	if wide {
		grants = []string{w.eur.ID, w.jpy.ID}
	}
	grantEvent := donor == "" || (len(e.SubjectOrgs) > 0 && e.SubjectOrgs[0] == donor)
	switch e.EntityType {
	case "roadmap":
		return wide && e.EntityID == w.roadmapID.String()
	case "milestone":
		return wide && e.EntityID == w.milestone
	case "detection_run":
		return wide && e.EntityID == w.runID
	case "grant":
		return grantEvent && in(e.EntityID, grants...)
	case "transaction":
		return grantEvent && in(w.txGrant(t)[e.EntityID], grants...)
	case "transaction_batch":
		var c struct{ GrantID string }
		if err := json.Unmarshal([]byte(e.Change), &c); err != nil {
			t.Fatal(err)
		}
		return grantEvent && in(c.GrantID, grants...)
	case "procurement_item":
		for _, it := range listItems(t, coord, w.proc, procurement.Filter{RoadmapID: w.roadmapID}) {
			if it.ID == e.EntityID {
				return grantEvent && in(it.GrantID, grants...)
			}
		}
		return false
	case "flag":
		f := try(w.det.Get(coord, uuid.MustParse(e.EntityID))).must(t)
		if f.RoadmapID != w.roadmapID.String() {
			return false
		}
		if donor != "" && !slices.Contains(e.SubjectOrgs, "donor:"+donor) {
			return false
		}
		return wide || slices.ContainsFunc(f.GrantIDs, func(g string) bool { return in(g, grants...) })
	}
	return false
}

// txGrant maps every journal entry of the roadmap to its grant.
func (w *trailWorld) txGrant(t *testing.T) map[string]string {
	if w.txGrants == nil {
		w.txGrants = map[string]string{}
		for _, g := range []ledger.Grant{w.eur, w.jpy} {
			token := ""
			for {
				page, next, err := w.l.ListTransactions(coord, uuid.MustParse(g.ID), "", 100, token)
				if err != nil {
					t.Fatal(err)
				}
				for _, tx := range page {
					w.txGrants[tx.ID] = g.ID
				}
				if next == "" {
					break
				}
				token = next
			}
		}
	}
	return w.txGrants
}

func (w *trailWorld) wantTrail(t *testing.T, ctx context.Context, grants []string, donor string, asOf time.Time) [][]string {
	var want []audit.Event
	for _, e := range listEvents(t, ctx, w.audit) {
		if e.Seq != 0 && !e.OccurredAt.After(asOf) && w.about(t, e, grants, donor) {
			want = append(want, e)
		}
	}
	slices.SortFunc(want, func(a, b audit.Event) int { return int(a.Seq - b.Seq) })
	var out [][]string
	for _, e := range want {
		out = append(out, eventRow(t, e))
	}
	return out
}

func cut(rows [][]string, n int) [][]string {
	var out [][]string
	for _, r := range rows {
		out = append(out, r[:n])
	}
	return out
}

func diffRows(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	short := func(s string) string {
		if len(s) > 80 {
			return s[:80] + "…"
		}
		return s
	}
	if len(got) != len(want) {
		var g, w []string
		for _, r := range got {
			g = append(g, short(strings.Join(r, " ")))
		}
		for _, r := range want {
			w = append(w, short(strings.Join(r, " ")))
		}
		t.Errorf("%s: %d rows, want %d\n got %q\nwant %q", what, len(got), len(want), g, w)
		return
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s row %d: %d cells, want %d", what, i, len(got[i]), len(want[i]))
			continue
		}
		for j := range got[i] {
			if got[i][j] != want[i][j] {
				t.Errorf("%s row %d cell %d: got %q (%d bytes), want %q (%d bytes)", what, i, j,
					short(got[i][j]), len(got[i][j]), short(want[i][j]), len(want[i][j]))
			}
		}
	}
}

// checkManifest recomputes the manifest lines of the three sheets from the
// cells.
func checkManifest(t *testing.T, f *excelize.File) {
	t.Helper()
	sheets, _ := manifest(t, f)
	for _, name := range []string{reports.SheetProcurement, reports.SheetFlags, reports.SheetAuditTrail} {
		rows := sheetRows(t, f, name)
		if m := sheets[name]; m.rows != fmt.Sprint(len(rows)) || m.sum != reports.CanonicalSHA256(rows) {
			t.Errorf("manifest %s: %s rows %s, recomputed %d rows %s", name, m.rows, m.sum, len(rows), reports.CanonicalSHA256(rows))
		}
	}
}

// Procurement, Flags and Audit Trail equal what the procurement, flags and
// audit APIs answer for the same scope (each read as the role the scope is
// for), hold nothing of another donor in a donor's pack, and recompute to
// their manifest lines.
func TestPackTrailSheetsEqualAPIs(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	gref := map[string]string{w.eur.ID: w.eur.Reference, w.jpy.ID: w.jpy.Reference}
	donorA, donorB := as(auth.Donor, w.donorA), as(auth.Donor, w.donorB)
	w.txGrant(t) // filled once, before the subtests read it in parallel
	for _, c := range []struct {
		name   string
		scope  reports.Scope
		ctx    context.Context // the role the scope is for
		items  procurement.Filter
		flags  detect.ListFilter
		grants []string
		donor  string
	}{
		{"roadmap", reports.Scope{}, coord, procurement.Filter{RoadmapID: w.roadmapID}, detect.ListFilter{RoadmapID: w.roadmapID}, nil, ""},
		{"donor A", reports.Scope{DonorOrgID: uuid.MustParse(w.donorA)}, donorA, procurement.Filter{RoadmapID: w.roadmapID},
			detect.ListFilter{RoadmapID: w.roadmapID}, []string{w.eur.ID}, w.donorA},
		{"donor B", reports.Scope{DonorOrgID: uuid.MustParse(w.donorB)}, donorB, procurement.Filter{RoadmapID: w.roadmapID},
			detect.ListFilter{RoadmapID: w.roadmapID}, []string{w.jpy.ID}, w.donorB},
		{"grant", reports.Scope{GrantID: uuid.MustParse(w.jpy.ID)}, coord, procurement.Filter{GrantID: uuid.MustParse(w.jpy.ID)},
			detect.ListFilter{RoadmapID: w.roadmapID, GrantID: uuid.MustParse(w.jpy.ID)}, []string{w.jpy.ID}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.scope.AsOf = now
			f := open(t, w.pack(t, c.scope))
			checkManifest(t, f)

			items := listItems(t, c.ctx, w.proc, c.items)
			proc := sheetRows(t, f, reports.SheetProcurement)
			diffRows(t, "procurement", cut(proc, 17), wantProcurement(items, gref, now))
			for _, r := range proc {
				if r[17] == "" || r[18] == "" {
					t.Errorf("stage row without recorder or time: %q", r)
				}
			}

			flags := sheetRows(t, f, reports.SheetFlags)
			if len(proc) == 0 || len(flags) == 0 {
				t.Fatalf("%d procurement rows, %d flags: the test is too weak", len(proc), len(flags))
			}
			diffRows(t, "flags", flags, w.wantFlags(t, listFlags(t, c.ctx, w.det, c.flags)))

			trail := sheetRows(t, f, reports.SheetAuditTrail)
			want := w.wantTrail(t, c.ctx, c.grants, c.donor, now)
			if len(want) == 0 {
				t.Fatal("no audit events expected: the test is too weak")
			}
			diffRows(t, "audit trail", trail, want)

			if c.donor == "" {
				return
			}
			// Nothing of another donor: no grant, flag, item or event naming it.
			other := map[string]ledger.Grant{w.donorA: w.jpy, w.donorB: w.eur}[c.donor]
			for _, r := range proc {
				if r[1] == other.ID {
					t.Errorf("procurement row of the other donor's grant: %q", r)
				}
			}
			for _, r := range flags {
				var gs []string
				if err := json.Unmarshal([]byte(r[6]), &gs); err != nil || !slices.Contains(gs, c.grants[0]) {
					t.Errorf("flag %s does not involve the donor's grant: grants %s", r[0], r[6])
				}
			}
			for _, r := range trail {
				if strings.Contains(r[11], other.DonorOrgID) && !strings.Contains(r[11], c.donor) {
					t.Errorf("event %s names only the other donor: %q", r[1], r[11])
				}
				if r[8] != "flag" && strings.Contains(r[11], other.DonorOrgID) {
					t.Errorf("event %s of type %s names the other donor: %q", r[1], r[8], r[11])
				}
				if r[9] == other.ID || r[9] == w.otherGrant.ID {
					t.Errorf("event %s is about grant %s", r[1], r[9])
				}
			}
		})
	}
}

// As-of: the pack at the earlier time holds the stages, items, reviews and
// events as they were then.
func TestPackTrailSheetsAsOf(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	b := w.pack(t, reports.Scope{AsOf: w.early})
	if !bytes.Equal(b, w.pack(t, reports.Scope{AsOf: w.early})) {
		t.Errorf("two packs of the same as-of differ")
	}
	f := open(t, b)
	checkManifest(t, f)

	proc := sheetRows(t, f, reports.SheetProcurement)
	var stagesA []string
	for _, r := range proc {
		if r[0] == w.lateItem.ID {
			t.Errorf("the item created after as-of is in the pack")
		}
		if r[0] == w.itemA.ID {
			stagesA = append(stagesA, r[12])
			if r[10] != "EVALUATED" {
				t.Errorf("item A's current stage at as-of %q, want EVALUATED", r[10])
			}
		}
	}
	if strings.Join(stagesA, ",") != "REQUISITIONED,TENDERED,EVALUATED" {
		t.Errorf("item A's stages at as-of %q", stagesA)
	}
	gref := map[string]string{w.eur.ID: w.eur.Reference, w.jpy.ID: w.jpy.Reference}
	diffRows(t, "procurement at as-of", cut(proc, 17), wantProcurement([]procurement.Item{w.itemA, w.itemB}, gref, w.early))

	for _, r := range sheetRows(t, f, reports.SheetFlags) {
		if r[0] == w.flagA.ID && (r[3] != "ACKNOWLEDGED" || r[13] != "ACKNOWLEDGE" || r[16] != "") {
			t.Errorf("flag A at as-of: status %s review %s note %q, want ACKNOWLEDGED by ACKNOWLEDGE", r[3], r[13], r[16])
		}
	}
	now := open(t, w.pack(t, reports.Scope{AsOf: time.Now()}))
	for _, r := range sheetRows(t, now, reports.SheetFlags) {
		if r[0] == w.flagA.ID && (r[3] != "DISMISSED" || r[13] != "DISMISS" || r[16] != "supplier confirmed a new date") {
			t.Errorf("flag A now: status %s review %s note %q", r[3], r[13], r[16])
		}
	}

	trail := sheetRows(t, f, reports.SheetAuditTrail)
	diffRows(t, "audit trail at as-of", trail, w.wantTrail(t, coord, nil, "", w.early))
	for _, r := range trail {
		for _, id := range w.lateEvents {
			if r[1] == fmt.Sprint(id) {
				t.Errorf("event %d occurred after as-of", id)
			}
		}
		if r[2] > stampOf(w.early) {
			t.Errorf("event %s at %s, after as-of", r[1], r[2])
		}
	}
}

// A change longer than a cell: the cell holds a prefix that fits (in UTF-16
// units, as Excel counts) marked as truncated, with the full change's length
// and SHA-256 beside it; the manifest is over the cell as written.
func TestPackTrailLongChange(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	f := open(t, w.pack(t, reports.Scope{AsOf: time.Now()}))
	checkManifest(t, f)
	events := map[string]audit.Event{}
	for _, e := range listEvents(t, coord, w.audit) {
		events[fmt.Sprint(e.ID)] = e
	}
	var long int
	for _, r := range sheetRows(t, f, reports.SheetAuditTrail) {
		e := events[r[1]]
		if units := len(utf16.Encode([]rune(r[12]))); units > reports.MaxCellChars {
			t.Errorf("event %s: cell of %d UTF-16 units", r[1], units)
		}
		if r[13] != fmt.Sprint(len(e.Change)) || r[14] != sum(e.Change) {
			t.Errorf("event %s: length %s sum %s, want %d %s", r[1], r[13], r[14], len(e.Change), sum(e.Change))
		}
		if len(e.Change) <= reports.MaxCellChars {
			if r[12] != e.Change {
				t.Errorf("event %s: short change altered", r[1])
			}
			continue
		}
		long++
		prefix, ok := strings.CutSuffix(r[12], reports.TruncatedMark)
		if !ok || !strings.HasPrefix(e.Change, prefix) || len(utf16.Encode([]rune(r[12]))) < reports.MaxCellChars-1 {
			t.Errorf("event %s (%s): cell %d bytes, not a maximal marked prefix of the change (%d bytes)", r[1], r[8], len(r[12]), len(e.Change))
		}
	}
	if long < 2 { // the emoji event and the EUR part of the batch
		t.Errorf("%d truncated changes, want 2", long)
	}
}

// An empty scope (a roadmap with nothing, or a donor with no grant in it)
// gives the three sheets with their headers and no rows — but for the
// creation of an empty roadmap, the one event about it.
func TestPackTrailSheetsEmpty(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	empty := try(roadmap.New(w.db.App).Create(coord, roadmap.Input{Country: "AGO", Title: "Empty",
		StartDate: day("2024-01-01"), EndDate: day("2024-12-31"), ReportingCurrency: "EUR"}, "empty")).must(t)
	for _, c := range []struct {
		name  string
		scope reports.Scope
		trail int
	}{
		{"empty roadmap", reports.Scope{RoadmapID: uuid.MustParse(empty.ID), AsOf: time.Now()}, 1},
		{"implementer as donor", reports.Scope{DonorOrgID: uuid.MustParse(w.impl), AsOf: time.Now()}, 0},
		{"donor A, grant of B", reports.Scope{DonorOrgID: uuid.MustParse(w.donorA), GrantID: uuid.MustParse(w.jpy.ID), AsOf: time.Now()}, 0},
		{"grant of another roadmap", reports.Scope{GrantID: uuid.MustParse(w.otherGrant.ID), AsOf: time.Now()}, 0},
		{"unknown grant", reports.Scope{GrantID: uuid.New(), AsOf: time.Now()}, 0},
		{"before anything", reports.Scope{AsOf: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := open(t, w.pack(t, c.scope))
			checkManifest(t, f)
			for _, name := range []string{reports.SheetProcurement, reports.SheetFlags} {
				if rows := sheetRows(t, f, name); len(rows) != 0 {
					t.Errorf("%s has %d rows", name, len(rows))
				}
			}
			trail := sheetRows(t, f, reports.SheetAuditTrail)
			if len(trail) != c.trail {
				t.Fatalf("Audit Trail has %d rows, want %d", len(trail), c.trail)
			}
			if c.trail == 1 && (trail[0][8] != "roadmap" || trail[0][9] != empty.ID) {
				t.Errorf("empty roadmap's trail %q", trail[0][:10])
			}
		})
	}
}

// The Audit Trail walks the events in sequence order along the unique index
// on seq — no sort, no scan of the table — and tests each event by primary-
// key look-ups; checked on 50 000 analysed events.
func TestPackTrailUsesIndexes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	rm := try(roadmap.New(db.App).Create(coord, roadmap.Input{Country: "AFG", Title: "Plan", StartDate: day("2024-01-01"),
		EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, "r")).must(t)
	if _, err := db.Owner.Exec(ctx, `
		INSERT INTO audit_events (occurred_at, actor_token_id, actor_name, actor_role, actor_org_id, method,
		                          entity_type, entity_id, request_id, subject_orgs, change, seq, prev_hash, hash)
		SELECT timestamptz '2024-01-01 00:00Z' + i * interval '10 minutes', 'tok-' || i % 200, 'n', 'donor', '', 'm', k,
		       gen_random_uuid()::text, 'r-' || i, ARRAY['donor-' || i % 50, 'impl-' || i % 40],
		       CASE WHEN k = 'transaction_batch' THEN '{"grantId":"' || gen_random_uuid() || '"}' ELSE '{}' END,
		       1000 + i, '\x00', '\x00'
		FROM generate_series(1, 50000) i,
		     LATERAL (SELECT CASE WHEN i % 100 < 80 THEN 'transaction' WHEN i % 100 < 85 THEN 'grant'
		                          WHEN i % 100 < 88 THEN 'transaction_batch' WHEN i % 100 < 91 THEN 'procurement_item'
		                          WHEN i % 100 < 94 THEN 'flag' WHEN i % 100 < 96 THEN 'milestone'
		                          WHEN i % 100 < 97 THEN 'detection_run' ELSE 'token' END AS k) x`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	donor := try(org.New(db.App).Create(coord, org.Organization{Name: "Donor", Kind: "DONOR"}, "d")).must(t)
	tr := &testdb.Tracer{}
	pool := testdb.TracedPool(t, db, tr)
	for _, s := range []reports.Scope{
		{RoadmapID: uuid.MustParse(rm.ID)},
		{RoadmapID: uuid.MustParse(rm.ID), DonorOrgID: uuid.MustParse(donor.ID)},
		{RoadmapID: uuid.MustParse(rm.ID), GrantID: uuid.New()},
	} {
		s.AsOf = time.Now()
		sql, args := tr.Capture(t, func() error {
			return reports.Write(ctx, new(strings.Builder), reports.Source{DB: pool}, s)
		}, "reports: audit trail")
		plan := testdb.ExplainPlan(t, pool, sql, args)
		top := plan
		if top.NodeType != "Index Scan" || top.IndexName != "audit_events_seq_key" {
			t.Errorf("scope %+v: the trail is read by %s %s, want an Index Scan on audit_events_seq_key", s, top.NodeType, top.IndexName)
		}
		// Subplans: the planner picks per statement between a hashed set
		// and a primary-key look-up per event (AlternativeSubPlan); on
		// these near-empty domain tables both are trivial, so only the walk
		// over the events is checked.
		plan.Walk(func(n testdb.Plan, repeated bool) {
			if n.NodeType == "Sort" || n.NodeType == "Incremental Sort" || (n.RelationName == "audit_events" && n.IndexName != "audit_events_seq_key") {
				t.Errorf("scope %+v: plan has %s on %s %s", s, n.NodeType, n.RelationName, n.IndexName)
			}
		})
	}
}

// Text a client may store but XML cannot hold (control characters) reaches
// the cell as U+FFFD, as excelize writes it, and the manifest hashes that:
// the pack still verifies.
func TestPackTrailControlCharacters(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	im := as(auth.Implementer, w.impl)
	ms := try(roadmap.New(w.db.App).CreateMilestone(coord, w.roadmapID, roadmap.MilestoneInput{Code: "M-9", Title: "M-9",
		ActivityType: "SURVEY", FundingRequirement: amt("1.00", "USD")}, w.req())).must(t)
	s := procurement.New(w.db.App)
	it := try(s.Create(im, procurement.Input{GrantID: uuid.MustParse(w.eur.ID), MilestoneID: uuid.MustParse(ms.ID),
		Description: "Detectors\x01 lot\x1f 2\uFFFE", Category: "PPE", EstimatedCost: amt("1.00", "EUR"),
		RequisitionedOn: day("2024-03-01")}, w.req())).must(t)
	try(s.Advance(im, uuid.MustParse(it.ID), "TENDERED", day("2024-03-02"), "tab\tok, bell\x07 not", w.req())).must(t)
	f := open(t, w.pack(t, reports.Scope{AsOf: time.Now()}))
	checkManifest(t, f)
	rows := sheetRows(t, f, reports.SheetProcurement)
	if len(rows) != 2 {
		t.Fatalf("%d procurement rows, want 2", len(rows))
	}
	if rows[0][4] != "Detectors\uFFFD lot\uFFFD 2\uFFFD" || rows[1][16] != "tab\tok, bell\uFFFD not" {
		t.Errorf("description %q, note %q", rows[0][4], rows[1][16])
	}
}

// The same holds for every text cell of every sheet, not only the trail's:
// a journal entry's note and reference with control characters reach
// Transactions as U+FFFD, text that looks like an escape of a surrogate
// (_xD800_) comes back as written, and the pack still verifies.
func TestPackTextCellsControlCharacters(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	da := as(auth.Donor, w.donorA)
	e := try(w.l.RecordTransaction(da, ledger.EntryInput{GrantID: uuid.MustParse(w.eur.ID), Type: "DISBURSEMENT",
		Amount: amt("10.00", "EUR"), ValueDate: day("2025-12-31"), Reference: "R\x02F", Note: " bell\x07 & <tab>\t _xD800_ _x005F_xDFFF_ "}, w.req())).must(t)
	b := w.pack(t, reports.Scope{AsOf: time.Now()})
	f := open(t, b)
	checkManifest(t, f)
	rows := sheetRows(t, f, reports.SheetTransactions)
	last := rows[len(rows)-1]
	if last[0] != e.ID {
		t.Fatalf("last Transactions row is %q, want the last entry %s", last[0], e.ID)
	}
	if got := strings.Join(last, "|"); !strings.Contains(got, "|R\uFFFDF|") || !strings.Contains(got, "|bell\uFFFD & <tab>\t _xD800_ _x005F_xDFFF_|") {
		t.Errorf("reference and note not as a reader gets them back: %q", last)
	}
	rep, err := reports.Verify(context.Background(), bytes.NewReader(b), int64(len(b)),
		reports.VerifyOptions{PublicKey: w.key.Public().(ed25519.PublicKey), Audit: w.audit})
	if err != nil || !rep.Verified {
		t.Fatalf("verify: %v %q", err, rep.Problems)
	}
}

// An unknown donor is NOT_FOUND naming donorOrgId, not an empty pack that
// reads as "nothing happened"; an as-of after the database's clock is
// refused, naming asOf.
func TestPackRefusesUnknownDonorAndFuture(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	src := reports.Source{DB: w.db.App, Audit: w.audit}
	err := reports.Write(ctx, io.Discard, src, reports.Scope{RoadmapID: w.roadmapID, DonorOrgID: uuid.New()})
	if !errors.Is(err, apperr.ErrNotFound) || !strings.Contains(err.Error(), "donorOrgId") {
		t.Errorf("unknown donor: %v, want not found naming donorOrgId", err)
	}
	err = reports.Write(ctx, io.Discard, src, reports.Scope{RoadmapID: w.roadmapID, AsOf: time.Now().Add(time.Hour)})
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) || inv.Violations[0].Field != "asOf" {
		t.Errorf("as-of in the future: %v, want invalid asOf", err)
	}
}
