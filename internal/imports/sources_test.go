package imports_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func readFile(t testing.TB, parts ...string) imports.File {
	t.Helper()
	name := filepath.Join(parts...)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return imports.File{Name: filepath.Base(name), Data: b}
}

// After the FTS pages are imported, detection does not take the flows of a
// parked family (one agreement split, sharing a reference code) for one
// payment entered twice; every duplicate it does report is a repeated
// reference code the import report explains, and every group the report
// expects flagged is flagged.
func TestFTSDetection(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	rep, err := imports.New(db.App).Run(coord, imports.Request{Kind: imports.FTS, Files: ftsPages(t)})
	if err != nil {
		t.Fatal(err)
	}
	rm := uuid.MustParse(rep.RoadmapID)
	det := detect.New(db.App, detect.DefaultConfig())
	if _, err := det.Run(coord, rm, time.Date(2021, 3, 31, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	var flags []detect.Flag
	for page := ""; ; {
		got, next, err := det.List(coord, detect.ListFilter{RoadmapID: rm, Kind: "DUPLICATE_TRANSACTION", PageSize: 200, PageToken: page})
		if err != nil {
			t.Fatal(err)
		}
		flags = append(flags, got...)
		if page = next; page == "" {
			break
		}
	}
	// Each flow's repeated-code group, from the report.
	group := map[string]imports.RefGroup{}
	for _, g := range rep.RepeatedReferences {
		if g.Explanation == "" || g.Kind == "" {
			t.Errorf("group %s is not explained: %+v", g.Code, g)
		}
		for _, r := range g.Records {
			group[strings.TrimPrefix(r, "flow ")] = g
		}
	}
	flagged := map[string]bool{}
	for _, f := range flags {
		var ids []string
		for _, s := range f.Subjects {
			if s.Type == "transaction" {
				ids = append(ids, s.ID)
			}
		}
		prov, err := imports.ProvenanceOf(context.Background(), db.App, imports.EntityTransaction, ids)
		if err != nil {
			t.Fatal(err)
		}
		var flows []string
		for _, p := range prov {
			flows = append(flows, p.RecordID)
		}
		slices.Sort(flows)
		flows = slices.Compact(flows)
		if len(flows) < 2 {
			continue // one flow's own commitment and disbursement are not compared across types
		}
		g, ok := group[flows[0]]
		if !ok {
			t.Logf("flagged flows %v share no reference code (same amount and days): %s", flows, f.Explanation)
			continue
		}
		if g.Kind == "parent-child" || g.Kind == "parked family" {
			t.Errorf("flows %v of the parked family %s are flagged as a duplicate: %s", flows, g.Code, f.Explanation)
		}
		flagged[g.Code] = true
	}
	want := 0
	for _, g := range rep.RepeatedReferences {
		if g.Flagged {
			want++
			if !flagged[g.Code] {
				t.Errorf("group %s (%s) is expected flagged and is not", g.Code, g.Kind)
			}
		}
	}
	t.Logf("%d duplicate flags; %d repeated codes, %d expected flagged, %d flagged", len(flags), len(rep.RepeatedReferences), want, len(flagged))
	// The two same-amount pairs are internal flows (kept out of the ledger):
	// the report says so rather than expecting a flag.
	for _, g := range rep.RepeatedReferences {
		if g.Kind == "same amount" && (g.Flagged || !strings.Contains(g.Explanation, "Not in the ledger")) {
			t.Errorf("same-amount group %s: flagged %v, explanation %q", g.Code, g.Flagged, g.Explanation)
		}
	}
}

// seedRates gives the FX table a rate for each currency against USD, from
// 1990, so IATI entries convert to a USD roadmap.
func seedRates(t testing.TB, db *testdb.DB, currencies ...string) {
	t.Helper()
	var in []fx.RateInput
	for _, c := range currencies {
		in = append(in, fx.RateInput{Currency: c, QuoteCurrency: "USD", Date: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC),
			Rate: decimal.NewFromInt(1), Source: "test"})
	}
	if _, err := fx.New(db.App).Create(coord, in); err != nil {
		t.Fatal(err)
	}
}

// ledgerTotals sums the live imported entries of a roadmap per IATI type
// code and currency, in the entries' own currency, as the IATI report keys
// them ("3 DKK").
func ledgerTotals(t testing.TB, db *testdb.DB, roadmapID string) map[string]decimal.Decimal {
	t.Helper()
	rows, err := db.App.Query(context.Background(), `SELECT t.bucket, t.currency,
			sum(CASE WHEN t.type = 'REVERSAL' THEN -t.amount ELSE t.amount END)::text
		FROM transactions t JOIN grants g ON g.id = t.grant_id
		WHERE g.roadmap_id = $1 GROUP BY 1, 2`, roadmapID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	code := map[string]string{"COMMITMENT": "2", "DISBURSEMENT": "3", "EXPENDITURE": "4", "RECEIPT": "1", "PLEDGE": "12"}
	out := map[string]decimal.Decimal{}
	for rows.Next() {
		var b, c, s string
		if err := rows.Scan(&b, &c, &s); err != nil {
			t.Fatal(err)
		}
		out[code[b]+" "+c] = decimal.RequireFromString(s)
	}
	return out
}

// The UNDP/Danida/IFAD file (IATI 2.03, a real mine action activity): every
// counted total per type and currency reaches the ledger, float artefacts
// are rounded with the source kept, negative values become reversals, and
// re-importing writes nothing.
func TestIATIImport(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	seedRates(t, db, "DKK", "EUR", "GBP")
	s := imports.New(db.App)
	f := readFile(t, "iati", "testdata", "dportal-2.03-undp-danida-ifad.xml")
	rep, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{f}, NewRoadmap: imports.RoadmapHint{Country: "AFG"}})
	if err != nil {
		t.Fatalf("%v %+v", err, rep.Problems)
	}
	got := ledgerTotals(t, db, rep.RoadmapID)
	for _, x := range rep.Totals {
		code, _, _ := strings.Cut(x.Name, " ")
		k := code + " " + x.Currency
		switch code {
		case "1", "2", "3", "4":
		default:
			continue // 11 (incoming commitment) is journaled as a COMMITMENT, checked with 2 below
		}
		want := x.Computed
		if code == "2" {
			for _, y := range rep.Totals {
				if strings.HasPrefix(y.Name, "11 ") && y.Currency == x.Currency {
					want = want.Add(y.Computed)
				}
			}
			want = want.Add(implied(rep, x.Currency, db))
		}
		if code == "4" {
			// Expenditures of activities with several funders are listed,
			// not journaled: they cannot be told to one grant.
			for _, n := range rep.NotCounted {
				if n.Type == "EXPENDITURE" && n.Currency == x.Currency && strings.HasPrefix(n.Reason, "expenditure of") {
					want = want.Sub(n.Amount)
				}
			}
		}
		if !got[k].Equal(want) {
			t.Errorf("%s: ledger %s, counted %s", k, got[k], want)
		}
	}
	if !slices.ContainsFunc(rep.Rounded, func(r imports.Rounded) bool { return r.Source == "59999999.99999999" && r.Stored == "60000000" }) {
		t.Errorf("rounded %+v", rep.Rounded)
	}
	again, err := s.Run(coord, imports.Request{Kind: imports.IATI, Files: []imports.File{f}, RoadmapID: uuid.MustParse(rep.RoadmapID)})
	if err != nil || again.RunID != "" || again.EntriesCreated != 0 {
		t.Errorf("re-import: %v run %q entries %d", err, again.RunID, again.EntriesCreated)
	}
}

// implied sums the commitments the import implied for disbursements the
// source reports no commitment for, in one currency.
func implied(rep *imports.Report, cur string, db *testdb.DB) decimal.Decimal {
	var s decimal.Decimal
	_ = db.App.QueryRow(context.Background(), `SELECT coalesce(sum(t.amount), 0) FROM transactions t
		JOIN provenance p ON p.entity_type = 'transaction' AND p.entity_id = t.id
		WHERE t.type = 'COMMITMENT' AND t.currency = $1 AND EXISTS (SELECT 1 FROM unnest(p.inferred) i WHERE i LIKE 'type: COMMITMENT implied%')`,
		cur).Scan(&s)
	return s
}

// OCDS processes become procurement items with their stages; dates in the
// wrong order are reported per process and never stored as a stage moving
// back; re-importing writes nothing.
func TestOCDSImport(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	g, ms := grantFor(t, db)
	s := imports.New(db.App)
	for _, name := range []string{"cdmx-release-package.json", "armenia-releases.json"} {
		f := readFile(t, "ocds", "testdata", name)
		rep, err := s.Run(coord, imports.Request{Kind: imports.OCDS, Files: []imports.File{f}, GrantID: uuid.MustParse(g.ID), MilestoneID: ms})
		if err != nil {
			t.Fatalf("%s: %v %+v", name, err, rep.Problems)
		}
		if rep.ProcurementItemsCreated != rep.Records || rep.Records == 0 {
			t.Errorf("%s: %d processes, %d items", name, rep.Records, rep.ProcurementItemsCreated)
		}
		if name == "armenia-releases.json" && len(rep.Inconsistencies) == 0 {
			t.Errorf("armenia: no inconsistencies reported")
		}
		again, err := s.Run(coord, imports.Request{Kind: imports.OCDS, Files: []imports.File{f}, GrantID: uuid.MustParse(g.ID), MilestoneID: ms})
		if err != nil || again.ProcurementItemsCreated != 0 || again.Unchanged != rep.Records || again.RunID != "" {
			t.Errorf("%s re-import: %v created %d unchanged %d run %q", name, err, again.ProcurementItemsCreated, again.Unchanged, again.RunID)
		}
	}
	items, _, err := procurement.New(db.App).List(coord, procurement.Filter{GrantID: uuid.MustParse(g.ID), PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 102 {
		t.Errorf("%d items, want 102 (2 Mexico City processes, 100 Armenian)", len(items))
	}
	for _, it := range items {
		for i := 1; i < len(it.Stages); i++ {
			if it.Stages[i].EnteredOn.Before(it.Stages[i-1].EnteredOn) {
				t.Errorf("item %s: stage %s on %s before %s on %s", it.ID, it.Stages[i].Stage, it.Stages[i].EnteredOn,
					it.Stages[i-1].Stage, it.Stages[i-1].EnteredOn)
			}
		}
	}
}

// grantFor makes a USD grant and a milestone to hang procurement on.
func grantFor(t testing.TB, db *testdb.DB) (ledger.Grant, uuid.UUID) {
	t.Helper()
	orgs := org.New(db.App)
	d, err := orgs.Create(coord, org.Organization{Name: "Donor", Kind: "DONOR"}, "d")
	if err != nil {
		t.Fatal(err)
	}
	i, err := orgs.Create(coord, org.Organization{Name: "Partner", Kind: "IMPLEMENTER"}, "i")
	if err != nil {
		t.Fatal(err)
	}
	rm, err := roadmap.New(db.App).Create(coord, roadmap.Input{Country: "MEX", Title: "Procurement", StartDate: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC),
		EndDate: time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC), ReportingCurrency: "USD"}, "r")
	if err != nil {
		t.Fatal(err)
	}
	admin := as("admin", "")
	g, err := ledger.New(db.App).CreateGrant(admin, ledger.GrantInput{RoadmapID: uuid.MustParse(rm.ID), DonorOrgID: uuid.MustParse(d.ID),
		RecipientOrgID: uuid.MustParse(i.ID), Reference: "P-1", Title: "Procurement", Currency: "USD",
		Pledged: money.Amount{Value: decimal.Zero, Currency: "USD"}, StartDate: rm.StartDate, EndDate: rm.EndDate}, "g")
	if err != nil {
		t.Fatal(err)
	}
	m, err := roadmap.New(db.App).CreateMilestone(coord, uuid.MustParse(rm.ID), roadmap.MilestoneInput{Code: "M-1", Title: "Equipment",
		ActivityType: "CLEARANCE", FundingRequirement: money.Amount{Value: decimal.New(1, 6), Currency: "USD"}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	return g, uuid.MustParse(m.ID)
}

var _ = fmt.Sprint
