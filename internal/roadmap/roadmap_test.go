package roadmap_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var coord = auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-coord", Role: auth.Coordinator})

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func setup(t *testing.T) (*roadmap.Store, roadmap.Milestone) {
	t.Helper()
	db := testdb.New(t)
	s := roadmap.New(db.App)
	rm, err := s.Create(coord, roadmap.Input{Country: "AFG", Title: "Strategy", StartDate: day("2024-01-01"),
		EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, "rm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateMilestone(coord, uuid.MustParse(rm.ID), roadmap.MilestoneInput{Code: "M-1", Title: "Clearance",
		ActivityType: "CLEARANCE", FundingRequirement: money.Amount{Value: decimal.NewFromInt(1000), Currency: "USD"}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

func field(err error) string {
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) || len(inv.Violations) == 0 {
		return ""
	}
	return inv.Violations[0].Field
}

func TestProgressIsReportedForDaysThatHappened(t *testing.T) {
	t.Parallel()
	s, m := setup(t)
	id := uuid.MustParse(m.ID)
	tomorrow := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	if _, err := s.ReportProgress(coord, id, decimal.NewFromInt(5), tomorrow, "", "p-1"); field(err) != "asOf" {
		t.Fatalf("progress as of tomorrow: %v", err)
	}
	if _, err := s.ReportProgress(coord, id, decimal.NewFromInt(5), day("1900-01-01"), "", "p-2"); field(err) != "asOf" {
		t.Fatalf("progress as of 1900: %v", err)
	}
	if _, err := s.ReportProgress(coord, id, decimal.NewFromInt(5), time.Now().UTC().Truncate(24*time.Hour), "", "p-3"); err != nil {
		t.Fatalf("progress as of today: %v", err)
	}
}

// Taking back a settled status needs a reason, and is kept with it.
func TestStatusMovesBackOnlyWithAReason(t *testing.T) {
	t.Parallel()
	s, m := setup(t)
	id := uuid.MustParse(m.ID)
	steps := []struct {
		to, note string
		ok       bool
	}{
		{roadmap.InProgress, "", true},
		{roadmap.Planned, "", false},
		{roadmap.Completed, "", true},
		{roadmap.Planned, "", false},
		{roadmap.InProgress, "", false},
		{roadmap.InProgress, "survey found more contamination", true},
		{roadmap.Cancelled, "", true},
		{roadmap.Suspended, "", false},
	}
	for i, st := range steps {
		_, err := s.SetStatus(coord, id, st.to, st.note, fmt.Sprint("s-", i))
		if st.ok && err != nil || !st.ok && field(err) != "note" {
			t.Fatalf("step %d to %s (note %q): %v", i, st.to, st.note, err)
		}
	}
	_, _, history, err := s.GetMilestone(coord, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 4 || history[2].Note != "survey found more contamination" {
		t.Fatalf("history %+v", history)
	}
}

// A retry answers what the first request answered, not the milestone now.
func TestMilestoneReplaysAnswerTheOriginal(t *testing.T) {
	t.Parallel()
	s, m := setup(t)
	id := uuid.MustParse(m.ID)
	first, err := s.SetStatus(coord, id, roadmap.InProgress, "", "s-1")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := s.ReportProgress(coord, id, decimal.NewFromInt(10), day("2024-05-01"), "", "p-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(coord, id, roadmap.Completed, "", "s-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReportProgress(coord, id, decimal.NewFromInt(20), day("2024-06-01"), "", "p-2"); err != nil {
		t.Fatal(err)
	}
	again, err := s.SetStatus(coord, id, roadmap.InProgress, "", "s-1")
	if err != nil || again.Status != first.Status || again.AchievedQuantity != nil {
		t.Fatalf("status retry answered %+v, %v; first answer %+v", again, err, first)
	}
	p1again, err := s.ReportProgress(coord, id, decimal.NewFromInt(10), day("2024-05-01"), "", "p-1")
	if err != nil || p1again.Status != roadmap.InProgress || !p1again.AchievedQuantity.Equal(*p1.AchievedQuantity) {
		t.Fatalf("progress retry answered %+v, %v; first answer %+v", p1again, err, p1)
	}
	// Another caller's id of the same text is its own.
	other := auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-other", Role: auth.Coordinator})
	if _, err := s.SetStatus(other, id, roadmap.InProgress, "", "s-1"); field(err) != "note" {
		t.Fatalf("another coordinator's s-1 replayed: %v", err)
	}
}
