package roadmap_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// MilestonesAt: milestones created by then, with the status and latest
// progress recorded by then; a milestone created IN_PROGRESS has that status
// before its first change; after the last change it answers ListMilestones.
func TestMilestonesAt(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := roadmap.New(db.App)
	rm, err := s.Create(coord, roadmap.Input{Country: "AFG", Title: "Strategy", StartDate: day("2024-01-01"),
		EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, "rm")
	if err != nil {
		t.Fatal(err)
	}
	rid := uuid.MustParse(rm.ID)
	n := 0
	ms := func(code, status string) uuid.UUID {
		n++
		m, err := s.CreateMilestone(coord, rid, roadmap.MilestoneInput{Code: code, Title: code, ActivityType: "SURVEY", Status: status,
			FundingRequirement: money.Amount{Value: decimal.NewFromInt(1000), Currency: "USD"}}, fmt.Sprint("m", n))
		if err != nil {
			t.Fatal(err)
		}
		return uuid.MustParse(m.ID)
	}
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	now := func() time.Time {
		time.Sleep(2 * time.Millisecond)
		at := time.Now().UTC()
		time.Sleep(2 * time.Millisecond)
		return at
	}
	t0 := now()
	a, b := ms("A", ""), ms("B", "IN_PROGRESS")
	t1 := now()
	_, err = s.SetStatus(coord, a, "IN_PROGRESS", "", fmt.Sprint("s", n))
	step(err)
	_, err = s.ReportProgress(coord, a, decimal.NewFromInt(10), day("2024-03-01"), "", fmt.Sprint("p", n))
	step(err)
	t2 := now()
	_, err = s.SetStatus(coord, b, "SUSPENDED", "", fmt.Sprint("s", n))
	step(err)
	_, err = s.ReportProgress(coord, a, decimal.NewFromInt(5), day("2024-02-01"), "earlier day, later report", fmt.Sprint("p", n))
	step(err)
	ms("C", "")
	t3 := now()

	describe := func(list []roadmap.Milestone) string {
		var out []string
		for _, m := range list {
			p := "-"
			if m.AchievedQuantity != nil {
				p = m.AchievedQuantity.String() + "@" + m.ProgressAsOf.Format(time.DateOnly)
			}
			out = append(out, m.Code+" "+m.Status+" "+p)
		}
		return strings.Join(out, ", ")
	}
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{t0, ""},
		{t1, "A PLANNED -, B IN_PROGRESS -"},
		{t2, "A IN_PROGRESS 10@2024-03-01, B IN_PROGRESS -"},
		{t3, "A IN_PROGRESS 10@2024-03-01, B SUSPENDED -, C PLANNED -"},
	} {
		got, err := roadmap.MilestonesAt(coord, db.App, rid, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if describe(got) != c.want {
			t.Errorf("as of %v: %q, want %q", c.at, describe(got), c.want)
		}
	}
	current, err := s.ListMilestones(coord, rid)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := roadmap.MilestonesAt(coord, db.App, rid, t3); describe(got) != describe(current) {
		t.Errorf("after the last change %q, ListMilestones %q", describe(got), describe(current))
	}
}
