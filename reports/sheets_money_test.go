package reports_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/reports"
)

// moneyWorld extends world with milestones, allocations, tagged entries, a
// reversal, status changes and progress, in two phases: asOf1 lies between
// them, and the second phase changes all of it (an emptied allocation set,
// a status change of a milestone created IN_PROGRESS, a new milestone, later
// progress, a reversal of an entry recorded before asOf1).
type moneyWorld struct {
	*world
	rm           *roadmap.Store
	m1, m2, m3   roadmap.Milestone
	tagged       []ledger.Transaction // entries tagged with a milestone
	allocs       []allocSet           // every allocation set, in order
	asOf1, asOf2 time.Time
}

type allocSet struct {
	grant ledger.Grant
	at    time.Time
	set   []ledger.Allocation
}

func newMoneyWorld(t *testing.T) *moneyWorld {
	w := &moneyWorld{world: newWorld(t)}
	w.rm = roadmap.New(w.db.App)
	rid := w.roadmapID
	ms := func(code, typ, req, status string, due time.Time) roadmap.Milestone {
		return try(w.rm.CreateMilestone(coord, rid, roadmap.MilestoneInput{Code: code, Title: "Milestone " + code,
			ActivityType: typ, Region: "AF-HEL", TargetQuantity: decimal.RequireFromString("2500"), TargetUnit: "m2",
			DueDate: due, FundingRequirement: amt(req, "USD"), Status: status}, w.req())).must(t)
	}
	w.m1 = ms("M-1", "CLEARANCE", "5000000.00", "", day("2025-12-31"))
	w.m2 = ms("M-2", "EORE", "1000000.00", "IN_PROGRESS", time.Time{})
	alloc := func(g ledger.Grant, pairs ...string) {
		var in []ledger.AllocationInput
		for i := 0; i < len(pairs); i += 2 {
			in = append(in, ledger.AllocationInput{MilestoneID: uuid.MustParse(pairs[i]), Amount: amt(pairs[i+1], g.Currency)})
		}
		ng := try(w.l.SetAllocations(as(auth.Donor, g.DonorOrgID), uuid.MustParse(g.ID), in, w.req())).must(t)
		w.allocs = append(w.allocs, allocSet{grant: g, at: time.Now(), set: ng.Allocations})
	}
	rec := func(ctx context.Context, g ledger.Grant, typ, a, date, ref, m string) ledger.Transaction {
		in := ledger.EntryInput{GrantID: uuid.MustParse(g.ID), Type: typ, Amount: amt(a, g.Currency), ValueDate: day(date), Reference: ref}
		if m != "" {
			in.MilestoneID = uuid.MustParse(m)
		}
		e := try(w.l.RecordTransaction(ctx, in, w.req())).must(t)
		if e.MilestoneID != "" {
			w.tagged = append(w.tagged, e)
		}
		return e
	}
	reverse := func(ctx context.Context, g ledger.Grant, e ledger.Transaction) {
		r := try(w.l.RecordTransaction(ctx, ledger.EntryInput{GrantID: uuid.MustParse(g.ID), Type: "REVERSAL",
			ReversesID: uuid.MustParse(e.ID), ValueDate: day("2024-05-02"), Note: "wrong"}, w.req())).must(t)
		if r.MilestoneID != "" {
			w.tagged = append(w.tagged, r)
		}
	}
	da, dbk, im := as(auth.Donor, w.donorA), as(auth.Donor, w.donorB), as(auth.Implementer, w.impl)

	// Phase 1.
	alloc(w.eur, w.m1.ID, "300000.00", w.m2.ID, "100000.00")
	alloc(w.jpy, w.m1.ID, "10000000")
	rec(da, w.eur, "DISBURSEMENT", "50000.00", "2024-05-01", "T|1", w.m1.ID)
	rec(im, w.eur, "RECEIPT", "49000.00", "2024-05-03", "T|1", "")
	spent := rec(im, w.eur, "EXPENDITURE", "2000.00", "2024-05-04", "INV-9", w.m1.ID)
	wrong := rec(dbk, w.jpy, "DISBURSEMENT", "300000", "2024-05-01", "J-3", w.m2.ID)
	reverse(dbk, w.jpy, wrong)
	rec(dbk, w.jpy, "DISBURSEMENT", "500000", "2024-05-01", "J-4", w.m2.ID)
	rec(im, w.jpy, "RECEIPT", "7000", "2024-05-05", "nothing", "")
	try(w.rm.SetStatus(coord, uuid.MustParse(w.m1.ID), "IN_PROGRESS", "", w.req())).must(t)
	try(w.rm.ReportProgress(coord, uuid.MustParse(w.m1.ID), decimal.RequireFromString("1000"), day("2024-05-01"), "", w.req())).must(t)
	time.Sleep(2 * time.Millisecond)
	w.asOf1 = time.Now().UTC().Truncate(time.Microsecond)
	time.Sleep(2 * time.Millisecond)

	// Phase 2.
	alloc(w.eur) // emptied
	try(w.rm.SetStatus(coord, uuid.MustParse(w.m2.ID), "COMPLETED", "", w.req())).must(t)
	try(w.rm.ReportProgress(coord, uuid.MustParse(w.m1.ID), decimal.RequireFromString("2000"), day("2024-06-01"), "", w.req())).must(t)
	rec(da, w.eur, "DISBURSEMENT", "10000.00", "2024-06-01", "T|2", w.m1.ID)
	reverse(im, w.eur, spent)
	w.m3 = ms("M-3", "SURVEY", "250000.00", "", time.Time{})
	time.Sleep(2 * time.Millisecond)
	w.asOf2 = time.Now().UTC().Truncate(time.Microsecond)
	return w
}

// wantCoverage derives the Summary's milestone and TOTAL figures from the
// world's own records (not from the code under test): per milestone created
// by asOf, the allocation set of each grant in scope in force at asOf, and the
// tagged entries of those grants recorded by asOf, in reporting currency.
func (w *moneyWorld) wantCoverage(asOf time.Time, grants map[string]bool) [][]string {
	type fig struct{ req, alloc, com, dis, spent decimal.Decimal }
	var order []roadmap.Milestone
	for _, m := range []roadmap.Milestone{w.m1, w.m2, w.m3} {
		if m.ID != "" && !w.created(m, asOf) {
			continue
		}
		order = append(order, m)
	}
	figs := map[string]*fig{}
	for _, m := range order {
		figs[m.ID] = &fig{req: m.FundingRequirement.Value}
	}
	inForce := map[string][]ledger.Allocation{}
	for _, a := range w.allocs {
		if grants[a.grant.ID] && !a.at.After(asOf) {
			inForce[a.grant.ID] = a.set
		}
	}
	for _, set := range inForce {
		for _, a := range set {
			if f := figs[a.MilestoneID]; f != nil {
				f.alloc = f.alloc.Add(a.ReportingAmount)
			}
		}
	}
	for _, e := range w.tagged {
		f := figs[e.MilestoneID]
		if f == nil || !grants[e.GrantID] || e.RecordedAt.After(asOf) {
			continue
		}
		switch e.Bucket {
		case "COMMITMENT":
			f.com = f.com.Add(e.ReportingAmount)
		case "DISBURSEMENT":
			f.dis = f.dis.Add(e.ReportingAmount)
		case "EXPENDITURE":
			f.spent = f.spent.Add(e.ReportingAmount)
		}
	}
	var out [][]string
	var tot fig
	line := func(code string, f fig) []string {
		u := func(d decimal.Decimal) string { return money.Format(d, "USD") }
		return []string{code, u(f.req), u(f.alloc), u(f.com), u(f.dis), u(f.spent), u(f.req.Sub(f.alloc))}
	}
	for _, m := range order {
		f := *figs[m.ID]
		out = append(out, line(m.Code+m.Title, f))
		tot = fig{tot.req.Add(f.req), tot.alloc.Add(f.alloc), tot.com.Add(f.com), tot.dis.Add(f.dis), tot.spent.Add(f.spent)}
	}
	return append(out, line(reports.TotalTitle, tot))
}

func (w *moneyWorld) created(m roadmap.Milestone, asOf time.Time) bool {
	var ok bool
	if err := w.db.App.QueryRow(context.Background(), `SELECT created_at <= $2 FROM milestones WHERE id = $1`, m.ID, asOf).Scan(&ok); err != nil {
		panic(err)
	}
	return ok
}

// summaryFigures keeps a Summary row's code and figures (amounts without
// their currency cells, which are checked to be USD).
func summaryFigures(t *testing.T, rows [][]string) [][]string {
	t.Helper()
	var out [][]string
	for _, r := range rows {
		for _, i := range []int{3, 5, 7, 9, 11, 13} { // the currency cells
			if (r[i-1] == "") != (r[i] == "") || r[i] != "" && r[i] != "USD" {
				t.Errorf("Summary row %q: currency %q, want USD", r, r[i])
			}
		}
		out = append(out, []string{r[0] + r[1], r[2], r[4], r[6], r[8], r[10], r[12]})
	}
	return out
}

func TestPackMoneySheets(t *testing.T) {
	t.Parallel()
	w := newMoneyWorld(t)
	a, b := w.donorA, w.donorB
	for _, c := range []struct {
		name   string
		scope  reports.Scope
		grants []ledger.Grant // in scope, in pack order
	}{
		{"now", reports.Scope{AsOf: w.asOf2}, []ledger.Grant{w.eur, w.jpy}},
		{"past", reports.Scope{AsOf: w.asOf1}, []ledger.Grant{w.eur, w.jpy}},
		{"before milestones", reports.Scope{AsOf: w.asOf}, []ledger.Grant{w.eur, w.jpy}},
		{"donor A past", reports.Scope{AsOf: w.asOf1, DonorOrgID: uuid.MustParse(a)}, []ledger.Grant{w.eur}},
		{"donor B now", reports.Scope{AsOf: w.asOf2, DonorOrgID: uuid.MustParse(b)}, []ledger.Grant{w.jpy}},
		{"grant", reports.Scope{AsOf: w.asOf1, GrantID: uuid.MustParse(w.jpy.ID)}, []ledger.Grant{w.jpy}},
		{"empty: donor A, grant of B", reports.Scope{AsOf: w.asOf2, DonorOrgID: uuid.MustParse(a), GrantID: uuid.MustParse(w.jpy.ID)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := open(t, w.pack(t, c.scope))
			inScope := map[string]bool{}
			for _, g := range c.grants {
				inScope[g.ID] = true
			}

			// Reconciliation: every figure is the API's for the same as-of.
			recs := sheetRows(t, f, reports.SheetReconciliation)
			if len(recs) != len(c.grants) {
				t.Fatalf("%d reconciliation rows, want %d", len(recs), len(c.grants))
			}
			var com, dis, spent decimal.Decimal
			for i, g := range c.grants {
				api := try(w.l.Reconcile(coord, uuid.MustParse(g.ID), c.scope.AsOf)).must(t)
				want := []string{g.ID, g.Reference, g.DonorOrgID}
				for _, bal := range []ledger.Balances{api.Agreement, api.Reporting} {
					for _, d := range []decimal.Decimal{bal.Pledged, bal.Committed, bal.Disbursed, bal.Received, bal.Spent,
						bal.UndisbursedCommitment, bal.UnspentBalance} {
						want = append(want, money.Format(d, bal.Currency), bal.Currency)
					}
				}
				for _, s := range api.Summary {
					want = append(want, fmt.Sprint(s.Count))
				}
				if got := recs[i]; strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("reconciliation of %s\n got %q\nwant %q", g.Reference, got, want)
				}
				com, dis, spent = com.Add(api.Reporting.Committed), dis.Add(api.Reporting.Disbursed), spent.Add(api.Reporting.Spent)
			}

			// Summary: coverage derived from the records, then the grants line.
			sum := sheetRows(t, f, reports.SheetSummary)
			got := summaryFigures(t, sum)
			want := w.wantCoverage(c.scope.AsOf, inScope)
			u := func(d decimal.Decimal) string { return money.Format(d, "USD") }
			want = append(want, []string{reports.GrantsTitle, "", "", u(com), u(dis), u(spent), ""})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Summary\n got %q\nwant %q", got, want)
			}
			if c.name == "now" { // the coverage API answers for now, the whole roadmap
				cov := try(w.rm.Coverage(coord, w.roadmapID, w.l)).must(t)
				cov.Totals.Code, cov.Totals.Title = "", reports.TotalTitle
				for i, m := range append(cov.Milestones, cov.Totals) {
					api := []string{m.Code + m.Title, u(m.Requirement), u(m.Allocated), u(m.Committed), u(m.Disbursed), u(m.Spent), u(m.Gap)}
					if fmt.Sprint(got[i]) != fmt.Sprint(api) || sum[i][14] != fmt.Sprint(m.Donors) {
						t.Errorf("Summary row %d %q (donors %s), coverage API %q (donors %d)", i, got[i], sum[i][14], api, m.Donors)
					}
				}
			}
			if c.scope.DonorOrgID != uuid.Nil {
				for _, r := range recs {
					if r[2] != c.scope.DonorOrgID.String() {
						t.Errorf("a pack narrowed to %s holds grant %s of %s", c.scope.DonorOrgID, r[0], r[2])
					}
				}
			}

			// Manifest checksums recompute from the cells.
			sheets, _ := manifest(t, f)
			for _, name := range []string{reports.SheetSummary, reports.SheetReconciliation, reports.SheetMilestones} {
				rows := sheetRows(t, f, name)
				if m := sheets[name]; m.rows != fmt.Sprint(len(rows)) || m.sum != reports.CanonicalSHA256(rows) {
					t.Errorf("manifest %s: %+v, recomputed %d rows %s", name, m, len(rows), reports.CanonicalSHA256(rows))
				}
			}
		})
	}
}

// Milestones as of: status (a milestone created IN_PROGRESS keeps that
// status until its first change), latest progress and allocations in scope as
// recorded by then.
func TestPackMilestonesAsOf(t *testing.T) {
	t.Parallel()
	w := newMoneyWorld(t)
	eurM1 := w.allocs[0].set[0].ReportingAmount
	jpyM1 := w.allocs[1].set[0].ReportingAmount
	eurM2 := w.allocs[0].set[1].ReportingAmount
	u := func(d decimal.Decimal) string { return money.Format(d, "USD") }
	for _, c := range []struct {
		name  string
		scope reports.Scope
		want  []string // code status allocated achieved progress-date
	}{
		{"past", reports.Scope{AsOf: w.asOf1}, []string{
			"M-1 IN_PROGRESS " + u(eurM1.Add(jpyM1)) + " 1000 2024-05-01",
			"M-2 IN_PROGRESS " + u(eurM2) + "  ",
		}},
		{"now", reports.Scope{AsOf: w.asOf2}, []string{
			"M-1 IN_PROGRESS " + u(jpyM1) + " 2000 2024-06-01",
			"M-2 COMPLETED 0.00  ",
			"M-3 PLANNED 0.00  ",
		}},
		{"donor B past", reports.Scope{AsOf: w.asOf1, DonorOrgID: uuid.MustParse(w.donorB)}, []string{
			"M-1 IN_PROGRESS " + u(jpyM1) + " 1000 2024-05-01",
			"M-2 IN_PROGRESS 0.00  ",
		}},
		{"before milestones", reports.Scope{AsOf: w.asOf}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := sheetRows(t, open(t, w.pack(t, c.scope)), reports.SheetMilestones)
			var got []string
			for _, r := range rows {
				got = append(got, strings.Join([]string{r[1], r[8], r[11], r[13], r[14]}, " "))
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("milestones\n got %q\nwant %q", got, c.want)
			}
			for _, r := range rows {
				if r[1] == "M-1" && (r[3] != "CLEARANCE" || r[5] != "2500" || r[7] != "2025-12-31" || r[9] != "5000000.00" || r[10] != "USD") {
					t.Errorf("M-1 row %q", r)
				}
			}
		})
	}
}

// Summary carries a native chart over its milestone rows, and a pack with it
// is still byte-deterministic.
func TestPackSummaryChart(t *testing.T) {
	t.Parallel()
	w := newMoneyWorld(t)
	p1 := w.pack(t, reports.Scope{AsOf: w.asOf2})
	p2 := w.pack(t, reports.Scope{AsOf: w.asOf2})
	if string(p1) != string(p2) {
		for _, e := range try(zip.NewReader(bytes.NewReader(p1), int64(len(p1)))).must(t).File {
			if a, b := zipEntry(t, p1, e.Name), zipEntry(t, p2, e.Name); !bytes.Equal(a, b) {
				t.Errorf("%s differs:\n%s\n%s", e.Name, a, b)
			}
		}
		t.Fatalf("two packs with a chart differ (%d and %d bytes)", len(p1), len(p2))
	}
	chart := string(zipEntry(t, p1, "xl/charts/chart1.xml"))
	for _, ref := range []string{"Summary!$A$2:$A$4", "Summary!$C$2:$C$4", "Summary!$G$2:$G$4", "Summary!$I$2:$I$4", "Summary!$K$2:$K$4", `barDir val="col"`} {
		if !strings.Contains(chart, ref) {
			t.Errorf("chart has no %s", ref)
		}
	}
	// Amount cells carry their currency's minor units (Summary in USD;
	// Reconciliation: EUR grant, then JPY, then the reporting USD columns).
	f := open(t, p1)
	for _, c := range [][3]string{
		{reports.SheetSummary, "C2", "#,##0.00"}, {reports.SheetReconciliation, "D2", "#,##0.00"},
		{reports.SheetReconciliation, "D3", "#,##0"}, {reports.SheetReconciliation, "R3", "#,##0.00"},
		{reports.SheetMilestones, "J2", "#,##0.00"},
	} {
		style := try(f.GetStyle(try(f.GetCellStyle(c[0], c[1])).must(t))).must(t)
		if style.CustomNumFmt == nil || *style.CustomNumFmt != c[2] {
			t.Errorf("%s!%s number format %v, want %q", c[0], c[1], style.CustomNumFmt, c[2])
		}
	}
	if v := try(f.GetCellValue(reports.SheetReconciliation, "S3")).must(t); v != "USD" {
		t.Errorf("Reconciliation!S3 = %q, want USD beside the first reporting amount", v)
	}
	rels := string(zipEntry(t, p1, "xl/worksheets/_rels/sheet2.xml.rels"))
	if !strings.Contains(rels, "drawing") {
		t.Errorf("Summary (sheet2) does not link its drawing: %s", rels)
	}
	if !strings.Contains(string(zipEntry(t, p1, "xl/worksheets/sheet2.xml")), "<drawing ") {
		t.Errorf("Summary worksheet has no drawing element")
	}
	// No milestones yet: no chart, a valid pack.
	if f := open(t, w.pack(t, reports.Scope{AsOf: w.asOf})); len(sheetRows(t, f, reports.SheetSummary)) != 2 {
		t.Errorf("before milestones: want the TOTAL and GRANTS lines only")
	}
}
