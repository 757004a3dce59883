package ocds

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/procurement"
)

func TestItemInput(t *testing.T) {
	t.Parallel()
	g, m := uuid.New(), uuid.New()
	today := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)

	r := mustParse(t, readFile(t, "cdmx-release-package.json"))
	p := find(t, r, "OCDS-87SD3T-AD-SF-DRM-065-2015")
	in, adv, probs, ok := p.ItemInput(g, m, today)
	if !ok || len(probs) != 0 || in.GrantID != g || in.MilestoneID != m || in.Category != "OTHER" ||
		in.EstimatedCost.Currency != "MXN" || in.EstimatedCost.Value.String() != "1471566.72" || !money.InMinorUnits(in.EstimatedCost) ||
		day(in.RequisitionedOn) != "2015-12-14" || day(in.ExpectedDeliveryDate) != "2016-12-31" {
		t.Fatalf("input %+v problems %v ok %v", in, probs, ok)
	}
	var stages []string
	for _, a := range adv {
		stages = append(stages, a.Stage)
		if a.Note == "" || utf8.RuneCountInString(a.Note) > procurement.MaxNote {
			t.Errorf("note %q", a.Note)
		}
	}
	if !slices.Equal(stages, []string{"TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED"}) || !strings.Contains(adv[4].Note, "inferred") {
		t.Errorf("advances %v", adv)
	}

	// Every Armenian process: days never after today, never before the
	// requisition, moving forward; the expected delivery never before it.
	r = mustParse(t, readFile(t, "armenia-releases.json"))
	for _, p := range r.Processes {
		in, adv, _, _ := p.ItemInput(g, m, today)
		last := in.RequisitionedOn
		for _, a := range adv {
			if a.EnteredOn.Before(last) || a.EnteredOn.After(today) {
				t.Errorf("%s: %s on %s", p.OCID, a.Stage, day(a.EnteredOn))
			}
			last = a.EnteredOn
		}
		if !in.ExpectedDeliveryDate.IsZero() && !in.RequisitionedOn.IsZero() && in.ExpectedDeliveryDate.Before(in.RequisitionedOn) {
			t.Errorf("%s: delivery before requisition", p.OCID)
		}
		if !slices.Contains(procurement.Categories, in.Category) {
			t.Errorf("%s: category %q", p.OCID, in.Category)
		}
	}

	// Adjustments: no cost, a long description, stages after today, a
	// delivery due before the requisition.
	long := strings.Repeat("ж", procurement.MaxDescription+5)
	p = mustParse(t, []byte(`{"ocid":"o","date":"2020-01-01T00:00:00Z","tender":{"title":"`+long+`","datePublished":"2020-03-01T00:00:00Z","tenderPeriod":{"startDate":"2020-03-02T00:00:00Z","endDate":"2020-04-01T00:00:00Z"},"contractPeriod":{"endDate":"2020-02-01T00:00:00Z"}}}`)).Processes[0]
	in, adv, probs, ok = p.ItemInput(g, m, time.Date(2020, 3, 15, 0, 0, 0, 0, time.UTC))
	fields := map[string]bool{}
	for _, pr := range probs {
		fields[pr.Field] = pr.OCID == "o"
	}
	if ok || utf8.RuneCountInString(in.Description) != procurement.MaxDescription || len(adv) != 1 || adv[0].Stage != "TENDERED" ||
		!in.ExpectedDeliveryDate.IsZero() || !fields["estimatedCost"] || !fields["description"] || !fields["stages.EVALUATED"] || !fields["expectedDeliveryDate"] {
		t.Errorf("input %+v advances %v problems %v ok %v", in.RequisitionedOn, adv, probs, ok)
	}
}
