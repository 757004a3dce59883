package ocds

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/procurement"
)

// ItemInput shapes p for procurement.Store: the Input to Create (the item,
// REQUISITIONED on the timeline's first day) and the stages to Advance it
// through, in order. today bounds the days (procurement refuses a future
// day): later stages are left out. Each adjustment is a Problem naming the
// ocid and the item field. ok is false when the item cannot be created as
// is: the source gives no estimated cost (the caller must decide one).
func (p Process) ItemInput(grantID, milestoneID uuid.UUID, today time.Time) (in procurement.Input, advances []procurement.StageEntry, problems []Problem, ok bool) {
	add := func(field, format string, args ...any) {
		problems = append(problems, Problem{OCID: p.OCID, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	in = procurement.Input{GrantID: grantID, MilestoneID: milestoneID, Category: p.Category}
	in.Description = truncate(p.Description, procurement.MaxDescription)
	if in.Description != p.Description {
		add("description", "cut to %d characters", procurement.MaxDescription)
	}
	ok = true
	if p.EstimatedCost == nil {
		add("estimatedCost", "none in the source")
		ok = false
	} else {
		in.EstimatedCost = money.Amount{Value: p.EstimatedCost.Value, Currency: p.EstimatedCost.Currency}
	}
	today = today.UTC().Truncate(24 * time.Hour)
	var kept []Stage
	for _, s := range p.Stages {
		if s.On.After(today) {
			add("stages."+s.Stage, "%s is after %s: left out", day(s.On), day(today))
			continue
		}
		kept = append(kept, s)
	}
	if len(kept) == 0 {
		add("requisitionedOn", "no dated stage: requisitioned today")
	} else {
		in.RequisitionedOn = kept[0].On
		for _, s := range kept[1:] {
			advances = append(advances, procurement.StageEntry{Stage: s.Stage, EnteredOn: s.On, Note: truncate(note(s), procurement.MaxNote)})
		}
	}
	if d := p.ExpectedDelivery; d != nil {
		if !in.RequisitionedOn.IsZero() && d.On.Before(in.RequisitionedOn) {
			add("expectedDeliveryDate", "%s (%s) is before the requisition (%s): left out", day(d.On), d.Field, day(in.RequisitionedOn))
		} else {
			in.ExpectedDeliveryDate = d.On
		}
	}
	return in, advances, problems, ok
}

// note says where a stage's day came from, for the stage's note.
func note(s Stage) string {
	n := fmt.Sprintf("OCDS %s %s", s.Field, s.Source)
	if s.Inferred {
		n += " (inferred"
		if s.Note != "" {
			n += ": " + s.Note
		}
		n += ")"
	}
	return n
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
