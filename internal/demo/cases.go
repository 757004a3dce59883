package demo

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The planted cases. Each adds its own grants (on milestones the background
// programme leaves to them, so no background grant joins their flags) or
// touches one background grant, and records in Programme.Cases the flag
// kind detection must raise and the grants or milestone it names. Days are
// counted from the day the programme is generated for, so every case holds
// on that day with detection's default thresholds (internal/detect,
// DefaultConfig): a 90-day reference window for duplicates, receipts due
// within 30 days, stage dwell limits (TENDERED 60 days, CONTRACTED 120),
// milestones at risk within 90 days with a gap above 10 %, funds idle when
// 80 % of what was received 6 months ago is unspent.
func (g *gen) plant() {
	g.plantDuplicateDisbursement()
	g.plantDoubleClaimedInvoice()
	g.plantOverfundedMilestone()
	g.plantMissingReceipt()
	g.plantIdleFunds()
	g.plantOverlappingGrants()
	g.plantStalledTender()
	g.plantOverdueDelivery()
	g.plantMilestoneAtRisk()
}

func (g *gen) addCase(c Case) { g.p.Cases = append(g.p.Cases, c) }

// entry finds a grant's entry by type and reference suffix.
func (g *gen) entry(grant, typ, refSuffix string) int {
	for i, e := range g.p.Entries {
		if e.Grant == grant && e.Type == typ && strings.HasSuffix(e.Reference, refSuffix) {
			return i
		}
	}
	panic(fmt.Sprintf("no %s %s on %s", typ, refSuffix, grant))
}

// plantDuplicateDisbursement: the UK's grant to the Danish Refugee Council
// for Pailin clearance. Its first tranche (180 days ago) was keyed again two
// days later by another clerk, with the payment reference typed with spaces
// instead of dashes and slashes: detection compares references with case,
// spaces and punctuation ignored, so the two are one payment
// (DUPLICATE_TRANSACTION). The second entry has no receipt either (the bank
// paid once), so the grant also shows a RECEIPT_MISMATCH.
func (g *gen) plantDuplicateDisbursement() {
	gr := g.addGrant(g.org("gb"), "drc", "M-2.4", day(g.t, -200), day(g.t, 700), 650000)
	i := g.entry(gr.Ref, "DISBURSEMENT", "/T1")
	orig := g.p.Entries[i]
	dup := orig
	dup.Reference = strings.NewReplacer("-", " ", "/", " ").Replace(orig.Reference)
	dup.Date = day(orig.Date, 2)
	dup.Note = "tranche 1 (keyed from the bank advice)"
	dup.Single = true
	g.p.Entries[i].Single = true
	g.p.Entries = append(g.p.Entries, dup)
	g.addCase(Case{Name: "duplicate disbursement", Kind: "DUPLICATE_TRANSACTION", Grants: []string{gr.Ref},
		About: fmt.Sprintf("%s's tranche %s entered twice, the second time as %q", gr.Ref, orig.Reference, dup.Reference)})
}

// plantDoubleClaimedInvoice: Humanity & Inclusion claims one invoice twice:
// once against the Netherlands' finished livelihood grant, and again, eight
// months later, against Australia's grant that followed it for the same
// survivors (DUPLICATE_EXPENDITURE: one cost charged to two donors).
func (g *gen) plantDoubleClaimedInvoice() {
	old := g.addGrant(g.org("nl"), "hi", "M-4.2", day(g.t, -900), day(g.t, -430), 380000)
	cur := g.addGrant(g.org("au"), "hi", "M-4.2", day(g.t, -420), day(g.t, 400), 300000)
	inv := "HI/KHM/INV-DOUBLE-0427"
	amtOld := decimal.NewFromInt(18400)
	g.p.Entries = append(g.p.Entries,
		EntrySpec{Grant: old.Ref, Type: "EXPENDITURE", Amount: amtOld, Date: day(g.t, -450), Reference: inv,
			Milestone: old.Milestone, Note: "prosthetic components, supplier invoice 0427"},
		EntrySpec{Grant: cur.Ref, Type: "EXPENDITURE", Amount: g.amountIn("AUD", 20000, day(g.t, -210)), Date: day(g.t, -210),
			Reference: "HI-KHM-INV-DOUBLE-0427", Milestone: cur.Milestone, Note: "prosthetic components, supplier invoice 0427"})
	g.addCase(Case{Name: "invoice claimed on two grants", Kind: "DUPLICATE_EXPENDITURE", Grants: []string{old.Ref, cur.Ref},
		About: fmt.Sprintf("invoice %s claimed by Humanity & Inclusion on %s and on %s", inv, old.Ref, cur.Ref)})
}

// plantOverfundedMilestone: Norway (through Norwegian People's Aid) and the
// United States (through MAG) both earmark their grants to clearing Varin
// district, and together allocate 30 % more than its requirement
// (OVERFUNDED_MILESTONE: duplicate funding).
func (g *gen) plantOverfundedMilestone() {
	a := g.addGrant(g.org("no"), "npa", "M-2.6", day(g.t, -400), day(g.t, 300), 900000)
	b := g.addGrant(g.org("us"), "mag", "M-2.6", day(g.t, -300), day(g.t, 500), 1200000)
	g.milestone("M-2.6").cover = 1.3
	g.addCase(Case{Name: "milestone funded past its requirement", Kind: "OVERFUNDED_MILESTONE", Grants: []string{a.Ref, b.Ref},
		Milestone: "M-2.6", About: "M-2.6 allocated 130 % of its requirement by Norway and the United States"})
}

// plantMissingReceipt: the Kuwait Fund's second tranche to CMAC (about two
// months ago) was never confirmed as received (RECEIPT_MISMATCH: a
// disbursement with no receipt after the 30-day window). The grant is in
// KWD, a currency with three minor units.
func (g *gen) plantMissingReceipt() {
	gr := g.addGrant(g.org("kw"), "cmac", "M-2.4", day(g.t, -330), day(g.t, 400), 700000)
	i := g.entry(gr.Ref, "RECEIPT", "/T2")
	g.p.Entries = slices.Delete(g.p.Entries, i, i+1)
	g.addCase(Case{Name: "disbursement with no receipt", Kind: "RECEIPT_MISMATCH", Grants: []string{gr.Ref},
		About: fmt.Sprintf("%s/T2 disbursed, never received", gr.Ref)})
}

// plantIdleFunds: Switzerland's grant to UNDP for Choam Ksant clearance
// was disbursed and received over a year ago, and 5 % of it has been spent
// since (IDLE_FUNDS: an absorption bottleneck).
func (g *gen) plantIdleFunds() {
	d := g.org("ch")
	s := day(g.t, -460)
	amt := g.amountIn(d.Currency, 500000, s)
	gr := GrantSpec{Ref: g.nextRef("ch", s), Donor: "ch", Recipient: "undp", Currency: d.Currency, Milestone: "M-2.5",
		Title: "Clearing for Results, Preah Vihear (United Nations Development Programme)", Pledged: amt, Start: s,
		End: day(g.t, 450), Allocation: amt}
	g.p.Grants = append(g.p.Grants, gr)
	e := func(typ string, a decimal.Decimal, on int, ref, note string) {
		g.p.Entries = append(g.p.Entries, EntrySpec{Grant: gr.Ref, Type: typ, Amount: a, Date: day(g.t, on), Reference: ref,
			Milestone: gr.Milestone, Note: note})
	}
	e("COMMITMENT", amt, -455, gr.Ref+"/A", "signed agreement")
	e("DISBURSEMENT", amt, -430, gr.Ref+"/T1", "single tranche")
	e("RECEIPT", amt, -424, gr.Ref+"/T1", "funds received")
	e("EXPENDITURE", amt.Mul(decimal.NewFromFloat(0.05)).Round(2), -300, "UNDP/KHM/INV-2024-0091", "inception workshop and survey team set-up")
	g.addCase(Case{Name: "funds received long ago and unspent", Kind: "IDLE_FUNDS", Grants: []string{gr.Ref},
		About: fmt.Sprintf("%s received %s %s 424 days ago, 5 %% spent", gr.Ref, amt.StringFixed(2), gr.Currency)})
}

// plantOverlappingGrants: Germany and Japan both fund the HALO Trust to
// clear Preah Vihear (province KH-13), one district each, over overlapping
// periods (OVERLAPPING_GRANTS by region and activity: two donors, one
// partner, the same area and work).
func (g *gen) plantOverlappingGrants() {
	a := g.addGrant(g.org("de"), "halo", "M-2.5", day(g.t, -250), day(g.t, 500), 1500000)
	b := g.addGrant(g.org("jp"), "halo", "M-2.7", day(g.t, -150), day(g.t, 600), 1100000)
	g.addCase(Case{Name: "two donors, same region and activity", Kind: "OVERLAPPING_GRANTS", Grants: []string{a.Ref, b.Ref},
		About: "Germany and Japan both fund HALO's clearance in Preah Vihear (KH-13)"})
}

// plantStalledTender: HALO's tender for a mechanical ground-preparation
// machine under the German grant has sat in TENDERED for five months (the
// threshold is 60 days): PROCUREMENT_STALLED.
func (g *gen) plantStalledTender() {
	gr := g.caseGrant("two donors, same region and activity", 0)
	g.p.Items = append(g.p.Items, ItemSpec{Key: "stalled-tender", Grant: gr.Ref, Milestone: gr.Milestone,
		Description: "Armoured ground-preparation machine (tiller and flail)", Category: "MECHANICAL",
		Cost: g.amountIn(gr.Currency, 420000, g.t), Currency: gr.Currency, Expected: day(g.t, 200),
		Requisitioned: day(g.t, -170), Stages: []StageStep{{Stage: "TENDERED", On: day(g.t, -150)}}})
	g.addCase(Case{Name: "tender stalled for months", Kind: "PROCUREMENT_STALLED", Grants: []string{gr.Ref},
		About: "HALO's tender for a ground-preparation machine in TENDERED for 150 days"})
}

// plantOverdueDelivery: the Danish Refugee Council's PPE order under the
// UK grant was due three weeks ago and has not been delivered
// (PROCUREMENT_LATE).
func (g *gen) plantOverdueDelivery() {
	gr := g.caseGrant("duplicate disbursement", 0)
	g.p.Items = append(g.p.Items, ItemSpec{Key: "late-delivery", Grant: gr.Ref, Milestone: gr.Milestone,
		Description: "Blast-resistant PPE: visors, vests and aprons (120 sets)", Category: "PPE",
		Cost: g.amountIn(gr.Currency, 60000, g.t), Currency: gr.Currency, Expected: day(g.t, -21),
		Requisitioned: day(g.t, -170), Stages: []StageStep{
			{Stage: "TENDERED", On: day(g.t, -150)}, {Stage: "EVALUATED", On: day(g.t, -128)},
			{Stage: "AWARDED", On: day(g.t, -110)}, {Stage: "CONTRACTED", On: day(g.t, -95)}}})
	g.addCase(Case{Name: "delivery overdue", Kind: "PROCUREMENT_LATE", Grants: []string{gr.Ref},
		About: "DRC's PPE order expected 21 days ago, not delivered"})
}

// plantMilestoneAtRisk: clearing the Oddar Meanchey border minefields
// (M-2.3) is due in 60 days; its grants allocate 60 % of the requirement
// and its critical front-loader, contracted, is not expected until after
// the due date (MILESTONE_AT_RISK).
func (g *gen) plantMilestoneAtRisk() {
	m := g.milestone("M-2.3")
	m.cover = 0.6
	var gr *GrantSpec
	for i := range g.p.Grants {
		x := &g.p.Grants[i]
		if x.Milestone == "M-2.3" && !x.Start.After(day(g.t, -60)) && !x.End.Before(g.t) && x.Allocation.IsPositive() {
			gr = x
			break
		}
	}
	if gr == nil { // the background always funds it; keep the case whatever the seed
		gr = g.addGrant(g.org("us"), "cmac", "M-2.3", day(g.t, -200), day(g.t, 200), 900000)
	}
	g.p.Items = append(g.p.Items, ItemSpec{Key: "at-risk-loader", Grant: gr.Ref, Milestone: "M-2.3",
		Description: "Armoured front loader for mechanical clearance", Category: "MECHANICAL", Critical: true,
		Cost: g.amountIn(gr.Currency, 310000, g.t), Currency: gr.Currency, Expected: day(g.t, 75),
		Requisitioned: day(g.t, -100), Stages: []StageStep{
			{Stage: "TENDERED", On: day(g.t, -90)}, {Stage: "EVALUATED", On: day(g.t, -70)},
			{Stage: "AWARDED", On: day(g.t, -55)}, {Stage: "CONTRACTED", On: day(g.t, -40)}}})
	g.addCase(Case{Name: "milestone at risk", Kind: "MILESTONE_AT_RISK", Milestone: "M-2.3",
		About: "M-2.3 due in 60 days, 40 % unfunded, its critical front loader expected after the due date"})
}

func (g *gen) caseGrant(name string, i int) GrantSpec {
	for _, c := range g.p.Cases {
		if c.Name == name {
			return *g.grant(c.Grants[i])
		}
	}
	panic("no case " + name)
}

var _ = time.Time{}
