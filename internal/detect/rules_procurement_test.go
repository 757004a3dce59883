package detect

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The day the procurement tests look at, and the stage limits they use
// (the defaults: REQUISITIONED 30, TENDERED 60, CONTRACTED 120, DELIVERED 30).
const procAsOf = "2025-06-30"

func TestProcurementStalled(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t)
	m := f.milestone("M-1", "2026-12-31", "0")
	g := f.grant("1000000.00")
	cases := []struct {
		name     string
		critical bool
		stages   []stageAt
		flag     string // stage of the stall, "" for none
		severity string
		over     int
	}{
		{"tendered 61 days, over the 60-day limit", false, []stageAt{{"REQUISITIONED", "2025-03-01"}, {"TENDERED", "2025-04-30"}}, "TENDERED", Medium, 1},
		{"tendered 60 days, at the limit", false, []stageAt{{"REQUISITIONED", "2025-03-01"}, {"TENDERED", "2025-05-01"}}, "", "", 0},
		{"critical, requisitioned 31 days", true, []stageAt{{"REQUISITIONED", "2025-05-30"}}, "REQUISITIONED", High, 1},
		{"critical, requisitioned 30 days", true, []stageAt{{"REQUISITIONED", "2025-05-31"}}, "", "", 0},
		{"delivered 31 days, never accepted", false, []stageAt{{"REQUISITIONED", "2024-01-01"}, {"DELIVERED", "2025-05-30"}}, "DELIVERED", Medium, 1},
		{"accepted long ago", true, []stageAt{{"REQUISITIONED", "2024-01-01"}, {"DELIVERED", "2024-03-01"}, {"ACCEPTED", "2024-03-05"}}, "", "", 0},
		{"cancelled long ago", true, []stageAt{{"REQUISITIONED", "2024-01-01"}, {"CANCELLED", "2024-02-01"}}, "", "", 0},
		{"requisitioned only after the day", true, []stageAt{{"REQUISITIONED", "2025-07-01"}}, "", "", 0},
		{"contracted 121 days, same day entries ordered by seq", false,
			[]stageAt{{"REQUISITIONED", "2025-03-01"}, {"AWARDED", "2025-03-01"}, {"CONTRACTED", "2025-03-01"}}, "CONTRACTED", Medium, 1},
	}
	ids := make([]uuid.UUID, len(cases))
	for i, c := range cases {
		ids[i] = f.item(g, m, "Tender for 40 detectors", c.critical, "", c.stages...)
	}
	got := ofKind(f.run(procAsOf, DefaultConfig()), ProcurementStalled)
	for i, c := range cases {
		key := ids[i].String() + "/" + c.flag
		x, ok := got[key]
		if c.flag == "" {
			for k := range got {
				if strings.HasPrefix(k, ids[i].String()) {
					t.Errorf("%s: flagged %s", c.name, k)
				}
			}
			continue
		}
		if !ok {
			t.Errorf("%s: not flagged as stalled in %s", c.name, c.flag)
			continue
		}
		if x.Severity != c.severity || x.Evidence["daysOver"] != c.over || x.Evidence["stage"] != c.flag {
			t.Errorf("%s: severity %s, evidence %v", c.name, x.Severity, x.Evidence)
		}
		for _, s := range []Subject{{SubjectItem, ids[i].String()}, {SubjectGrant, g.String()}, {SubjectMilestone, m.String()},
			{SubjectOrganization, f.donor.String()}, {SubjectOrganization, f.impl.String()}} {
			if !slices.Contains(x.Subjects, s) {
				t.Errorf("%s: subjects %v lack %v", c.name, x.Subjects, s)
			}
		}
	}
	if len(got) != 4 {
		t.Errorf("%d stalls, want 4: %v", len(got), findingKeys(got))
	}
	x := got[ids[0].String()+"/TENDERED"]
	if want := `Item "Tender for 40 detectors" (M-1) has been in TENDERED for 61 days since 2025-04-30, 1 over the 60-day limit`; !strings.HasPrefix(x.Explanation, want) {
		t.Errorf("explanation %q, want it to start %q", x.Explanation, want)
	}
}

// Advancing an item resolves its stall; a stall in the next stage is a new
// finding, and a replay of an earlier day still sees the first one.
func TestProcurementStallMovesWithTheStage(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t)
	m := f.milestone("M-1", "", "0")
	item := f.item(f.grant("1000.00"), m, "Armoured vehicle", true, "", stageAt{"REQUISITIONED", "2025-02-01"}, stageAt{"TENDERED", "2025-03-01"})
	tendered, awarded := item.String()+"/TENDERED", item.String()+"/AWARDED"
	if got := ofKind(f.run("2025-06-10", DefaultConfig()), ProcurementStalled); len(got) != 1 || got[tendered].Key == "" {
		t.Fatalf("before advancing: %v", findingKeys(got))
	}
	f.advance(item, "AWARDED", "2025-06-15")
	if got := ofKind(f.run("2025-06-10", DefaultConfig()), ProcurementStalled); len(got) != 1 || got[tendered].Key == "" {
		t.Errorf("replay of 2025-06-10 after advancing on 2025-06-15: %v", findingKeys(got))
	}
	if got := ofKind(f.run(procAsOf, DefaultConfig()), ProcurementStalled); len(got) != 0 {
		t.Errorf("awarded 15 days: %v", findingKeys(got))
	}
	if got := ofKind(f.run("2025-07-16", DefaultConfig()), ProcurementStalled); len(got) != 1 || got[awarded].Key == "" {
		t.Errorf("awarded 31 days: %v", findingKeys(got))
	}
	// A deployment's own limit applies.
	cfg := DefaultConfig()
	cfg.StageDwellDays["AWARDED"] = 10
	if got := ofKind(f.run(procAsOf, cfg), ProcurementStalled); len(got) != 1 || got[awarded].Evidence["daysOver"] != 5 {
		t.Errorf("awarded 15 days, limit 10: %v", got)
	}
}

func TestProcurementLate(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t)
	m := f.milestone("M-1", "", "0")
	g := f.grant("1000.00")
	req := stageAt{"REQUISITIONED", "2025-01-01"}
	cases := []struct {
		name, expected string
		critical       bool
		stages         []stageAt
		late           int // days late, 0 for not flagged
	}{
		{"expected yesterday, contracted", "2025-06-29", true, []stageAt{req, {"CONTRACTED", "2025-03-01"}}, 1},
		{"expected today", "2025-06-30", true, []stageAt{req, {"CONTRACTED", "2025-03-01"}}, 0},
		{"delivered before the day", "2025-06-01", true, []stageAt{req, {"DELIVERED", "2025-06-20"}}, 0},
		{"accepted", "2025-06-01", false, []stageAt{req, {"DELIVERED", "2025-05-20"}, {"ACCEPTED", "2025-05-25"}}, 0},
		{"cancelled", "2025-06-01", true, []stageAt{req, {"CANCELLED", "2025-05-20"}}, 0},
		{"delivered only after the day", "2025-06-01", false, []stageAt{req, {"DELIVERED", "2025-07-05"}}, 29},
		{"no expected date", "", true, []stageAt{req}, 0},
		{"requisitioned after the day", "2025-06-01", true, []stageAt{{"REQUISITIONED", "2025-07-01"}}, 0},
	}
	ids := make([]uuid.UUID, len(cases))
	for i, c := range cases {
		ids[i] = f.item(g, m, "PPE for 3 teams", c.critical, c.expected, c.stages...)
	}
	got := ofKind(f.run(procAsOf, DefaultConfig()), ProcurementLate)
	want := 0
	for i, c := range cases {
		x, ok := got[ids[i].String()]
		if c.late == 0 {
			if ok {
				t.Errorf("%s: flagged late: %v", c.name, x.Evidence)
			}
			continue
		}
		want++
		if !ok {
			t.Errorf("%s: not flagged late", c.name)
			continue
		}
		sev := Medium
		if c.critical {
			sev = High
		}
		if x.Evidence["daysLate"] != c.late || x.Severity != sev || x.Evidence["expectedDeliveryDate"] != c.expected {
			t.Errorf("%s: severity %s, evidence %v", c.name, x.Severity, x.Evidence)
		}
	}
	if len(got) != want {
		t.Errorf("%d late, want %d: %v", len(got), want, findingKeys(got))
	}
	// Delivery clears lateness for the days after it.
	if got := ofKind(f.run("2025-07-05", DefaultConfig()), ProcurementLate); got[ids[5].String()].Key != "" {
		t.Errorf("delivered on the day still late")
	}
}

func TestMilestoneAtRisk(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t)
	g := f.grant("100000.00")
	early := procDay("2025-01-01").Add(9 * time.Hour)
	tendered := []stageAt{{"REQUISITIONED", "2025-01-10"}, {"TENDERED", "2025-02-01"}}
	type ms struct {
		id      uuid.UUID
		want    bool
		sev     string
		items   int
		gapFlag bool
	}
	all := map[string]*ms{}
	add := func(code, due, requirement, allocated string, want bool, sev string, items int, gap bool) uuid.UUID {
		id := f.milestone(code, due, requirement)
		all[code] = &ms{id, want, sev, items, gap}
		if allocated != "" {
			f.allocate(f.grant("100000.00"), 1, early, map[uuid.UUID]string{id: allocated})
		}
		return id
	}
	// Due in exactly AtRiskDays (90), fully funded, a critical item tendered.
	mA := add("M-A", "2025-09-28", "1000.00", "1000.00", true, Medium, 1, false)
	iA := f.item(g, mA, "40 detectors", true, "", tendered...)
	f.item(g, mA, "Spare batteries", false, "", tendered...) // not critical: not evidence
	// One day further: not yet.
	mB := add("M-B", "2025-09-29", "1000.00", "1000.00", false, "", 0, false)
	f.item(g, mB, "40 detectors", true, "", tendered...)
	// Only non-critical procurement undelivered.
	mC := add("M-C", "2025-08-01", "1000.00", "1000.00", false, "", 0, false)
	f.item(g, mC, "Tents", false, "", tendered...)
	// Critical procurement delivered or cancelled.
	mD := add("M-D", "2025-08-01", "1000.00", "1000.00", false, "", 0, false)
	f.item(g, mD, "Flail", true, "", stageAt{"REQUISITIONED", "2025-01-10"}, stageAt{"DELIVERED", "2025-06-01"})
	f.item(g, mD, "Dogs", true, "", stageAt{"REQUISITIONED", "2025-01-10"}, stageAt{"CANCELLED", "2025-03-01"})
	// Gap 101 of 1000 (over 10 %) and exactly 100 (not over).
	add("M-E", "2025-08-01", "1000.00", "899.00", true, Medium, 0, true)
	add("M-F", "2025-08-01", "1000.00", "900.00", false, "", 0, false)
	// Nothing allocated at all, no requirement: no gap.
	add("M-Z", "2025-08-01", "0", "", false, "", 0, false)
	// Overdue with a critical item: urgent.
	mG := add("M-G", "2025-06-01", "1000.00", "1000.00", true, High, 1, false)
	f.item(g, mG, "Mechanical demining machine", true, "", tendered...)
	// Both causes: urgent.
	mH := add("M-H", "2025-09-01", "1000.00", "", true, High, 1, true)
	f.item(g, mH, "Vehicles", true, "", tendered...)
	// Completed before the day (and no due date): never at risk.
	mI := add("M-I", "2025-08-01", "1000.00", "1000.00", false, "", 0, false)
	f.item(g, mI, "Vehicles", true, "", tendered...)
	f.status(mI, "COMPLETED", procDay("2025-06-15").Add(10*time.Hour))
	mJ := add("M-J", "", "1000.00", "", false, "", 0, false)
	f.item(g, mJ, "Vehicles", true, "", tendered...)

	got := ofKind(f.run(procAsOf, DefaultConfig()), MilestoneAtRisk)
	for code, m := range all {
		x, ok := got[m.id.String()]
		if ok != m.want {
			t.Errorf("%s: at risk %v, want %v (%v)", code, ok, m.want, x.Evidence)
			continue
		}
		if !ok {
			continue
		}
		items := x.Evidence["criticalItems"].([]map[string]any)
		if x.Severity != m.sev || len(items) != m.items || x.Evidence["fundingGap"] != m.gapFlag {
			t.Errorf("%s: severity %s, evidence %v", code, x.Severity, x.Evidence)
		}
		if !slices.Contains(x.Subjects, Subject{SubjectMilestone, m.id.String()}) || !slices.Contains(x.Subjects, Subject{SubjectOrganization, f.respOrg.String()}) {
			t.Errorf("%s: subjects %v", code, x.Subjects)
		}
	}
	a := got[mA.String()]
	if a.Evidence["daysLeft"] != 90 || a.Evidence["gap"].(map[string]string)["amount"] != "0.00" {
		t.Errorf("M-A evidence %v", a.Evidence)
	}
	if it := a.Evidence["criticalItems"].([]map[string]any); it[0]["itemId"] != iA.String() || it[0]["stage"] != "TENDERED" {
		t.Errorf("M-A items %v", it)
	}
	for _, s := range []Subject{{SubjectItem, iA.String()}, {SubjectGrant, g.String()}, {SubjectOrganization, f.donor.String()}, {SubjectOrganization, f.impl.String()}} {
		if !slices.Contains(a.Subjects, s) {
			t.Errorf("M-A subjects %v lack %v", a.Subjects, s)
		}
	}
	if e := got[all["M-E"].id.String()]; e.Evidence["gap"].(map[string]string)["amount"] != "101.00" ||
		!strings.Contains(e.Explanation, "101.00 USD (10%) of its 1000.00 USD requirement not allocated") {
		t.Errorf("M-E %q %v", e.Explanation, e.Evidence)
	}
	// Replayed before it was completed, M-I was at risk.
	if got := ofKind(f.run("2025-06-14", DefaultConfig()), MilestoneAtRisk); got[mI.String()].Key == "" {
		t.Errorf("M-I not at risk on 2025-06-14, before it was completed")
	}
}

// A replay of a day before a milestone was created does not flag it: it did
// not exist yet. Created at 10:00 UTC on 2025-06-20, it counts from that day.
func TestMilestoneAtRiskNotBeforeCreated(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t)
	g := f.grant("100000.00")
	m := f.milestone("M-1", "2025-07-15", "1000.00")
	f.exec(`UPDATE milestones SET created_at = '2025-06-20T10:00:00Z' WHERE id = $1`, m)
	f.item(g, m, "40 detectors", true, "", stageAt{"REQUISITIONED", "2025-01-10"}, stageAt{"TENDERED", "2025-02-01"})
	for _, c := range []struct {
		asOf string
		want bool
	}{{"2025-06-19", false}, {"2025-06-20", true}, {procAsOf, true}} {
		if _, ok := ofKind(f.run(c.asOf, DefaultConfig()), MilestoneAtRisk)[m.String()]; ok != c.want {
			t.Errorf("as of %s: at risk %v, want %v", c.asOf, ok, c.want)
		}
	}
}

// Allocations count as of the day: a later set does not fund the past, and
// as of today the grant's current set counts, even an emptied one.
func TestMilestoneAtRiskAllocationsAsOf(t *testing.T) {
	t.Parallel()
	f := newProcFixture(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	due := today.AddDate(0, 0, 30).Format(time.DateOnly)
	m := f.milestone("M-1", due, "1000.00")
	other := f.milestone("M-2", "", "1000.00")
	g := f.grant("5000.00")
	// Fully funded since long ago; moved to another milestone 10 days ago,
	// then a day later all allocations withdrawn (an empty set leaves no row).
	f.allocate(g, 1, today.AddDate(0, 0, -50).Add(13*time.Hour), map[uuid.UUID]string{m: "1000.00"})
	f.allocate(g, 2, today.AddDate(0, 0, -10), map[uuid.UUID]string{other: "1000.00", m: "500.00"})
	f.exec(`UPDATE grant_balances SET allocation_version = 3, allocated = 0 WHERE grant_id = $1`, g)
	cases := []struct {
		asOf      time.Time
		allocated string // "" for funded enough not to be at risk
	}{
		{today.AddDate(0, 0, -51), "0.00"},   // before any allocation
		{today.AddDate(0, 0, -50), ""},       // the day version 1 was set
		{today.AddDate(0, 0, -11), ""},       // the day before version 2
		{today.AddDate(0, 0, -10), "500.00"}, // version 2
		{today.AddDate(0, 0, -1), "500.00"},  // the emptied set is invisible in the past
		{today, "0.00"},                      // as of today: the current, empty, set
	}
	for _, c := range cases {
		d := c.asOf.Format(time.DateOnly)
		x, ok := ofKind(f.run(d, DefaultConfig()), MilestoneAtRisk)[m.String()]
		switch {
		case c.allocated == "":
			if ok {
				t.Errorf("as of %s: at risk with %v", d, x.Evidence["allocated"])
			}
		case !ok:
			t.Errorf("as of %s: not at risk, want allocated %s", d, c.allocated)
		case x.Evidence["allocated"].(map[string]string)["amount"] != c.allocated:
			t.Errorf("as of %s: allocated %v, want %s", d, x.Evidence["allocated"], c.allocated)
		}
	}
}

func findingKeys(m map[string]finding) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
