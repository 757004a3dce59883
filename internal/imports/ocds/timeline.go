package ocds

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/procurement"
)

// Days outside [MinDay, MaxDay) are absurd (year 0001, 9999): reported, not
// used. The range is the one every Tranche date is held to (apperr).
var (
	MinDay = apperr.Earliest
	MaxDay = apperr.Latest.AddDate(0, 0, 1)
)

var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999", // no zone: read as UTC
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseInstant reads an OCDS date-time; one without a zone is taken as UTC.
func parseInstant(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date-time", s)
}

// parseDay reads an OCDS date-time as its UTC day.
func parseDay(s string) (time.Time, error) {
	t, err := parseInstant(s)
	if err != nil {
		return time.Time{}, err
	}
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if d.Before(MinDay) || !d.Before(MaxDay) {
		return time.Time{}, fmt.Errorf("%q is outside %d–%d", s, MinDay.Year(), MaxDay.Year()-1)
	}
	return d, nil
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

// merge folds src into dst (a fresh tree): the later non-empty value of each
// field wins; objects merge field by field; arrays of objects with an id merge
// by id; other arrays are replaced whole. null, "" and empty arrays/objects
// never erase an earlier value.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if empty(v) {
			continue
		}
		switch sv := v.(type) {
		case map[string]any:
			if dv, ok := dst[k].(map[string]any); ok {
				merge(dv, sv)
				continue
			}
			n := map[string]any{}
			merge(n, sv)
			dst[k] = n
		case []any:
			if dv, ok := dst[k].([]any); ok && idArray(dv) && idArray(sv) {
				dst[k] = mergeByID(dv, sv)
				continue
			}
			dst[k] = cloneArr(sv)
		default:
			dst[k] = v
		}
	}
}

func empty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

func idOf(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	switch id := m["id"].(type) {
	case string:
		return id, true
	case json.Number:
		return id.String(), true
	}
	return "", false
}

func idArray(a []any) bool {
	for _, e := range a {
		if _, ok := idOf(e); !ok {
			return false
		}
	}
	return true
}

func mergeByID(dst, src []any) []any {
	out := cloneArr(dst)
	at := map[string]int{}
	for i, e := range out {
		id, _ := idOf(e)
		at[id] = i
	}
	for _, e := range src {
		id, _ := idOf(e)
		if i, ok := at[id]; ok {
			merge(out[i].(map[string]any), e.(map[string]any))
			continue
		}
		n := map[string]any{}
		merge(n, e.(map[string]any))
		at[id] = len(out)
		out = append(out, n)
	}
	return out
}

func cloneArr(a []any) []any {
	out := make([]any, len(a))
	for i, e := range a {
		switch t := e.(type) {
		case map[string]any:
			n := map[string]any{}
			merge(n, t)
			out[i] = n
		case []any:
			out[i] = cloneArr(t)
		default:
			out[i] = e
		}
	}
	return out
}

// reader reads fields of one merged release, noting problems.
type reader struct{ p *Process }

func (r reader) problem(field, format string, args ...any) {
	r.p.Problems = append(r.p.Problems, Problem{OCID: r.p.OCID, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (r reader) obj(m map[string]any, key, field string) map[string]any {
	if m == nil {
		return nil
	}
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		r.problem(field, "want an object, got %s", kind(v))
	}
	return o
}

func (r reader) arr(m map[string]any, key, field string) []any {
	if m == nil {
		return nil
	}
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		r.problem(field, "want an array, got %s", kind(v))
	}
	return a
}

func (r reader) str(m map[string]any, key, field string) string {
	if m == nil {
		return ""
	}
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.problem(field, "want a string, got %s", kind(v))
	}
	return strings.TrimSpace(s)
}

func (r reader) date(m map[string]any, key, field string) (Date, bool) {
	s := r.str(m, key, field)
	if s == "" {
		return Date{}, false
	}
	d, err := parseDay(s)
	if err != nil {
		r.problem(field, "%v", err)
		return Date{}, false
	}
	return Date{On: d, Field: field, Source: s}, true
}

func (r reader) amount(m map[string]any, key, field string) *Amount {
	v := r.obj(m, key, field)
	if v == nil {
		return nil
	}
	a, err := toAmount(v, field)
	if err != nil {
		r.problem(field, "%v", strings.TrimPrefix(err.Error(), field+"."))
		return nil
	}
	return a
}

func objs(r reader, a []any, field string) []map[string]any {
	var out []map[string]any
	for i, e := range a {
		m, ok := e.(map[string]any)
		if !ok {
			r.problem(fmt.Sprintf("%s[%d]", field, i), "want an object, got %s", kind(e))
			continue
		}
		out = append(out, m)
	}
	return out
}

// process merges the releases of one ocid and derives its timeline.
func process(ocid string, rels []release, sha string) Process {
	sortReleases(rels)
	p := Process{OCID: ocid}
	rd := reader{&p}
	merged := map[string]any{}
	for _, rel := range rels {
		merge(merged, rel.m)
		if rel.on.IsZero() && !rel.compiled {
			rd.problem(fmt.Sprintf("releases[%d].date", rel.pos), "missing or unreadable release date %q (sorted first)", rel.date)
		}
		p.Provenance.Releases = append(p.Provenance.Releases, ReleaseRef{ID: rel.id, Date: rel.date, Position: rel.pos})
	}
	last := rels[len(rels)-1]
	p.Provenance.SourceKind = SourceKind
	p.Provenance.FileSHA256 = sha
	p.Provenance.RecordID = ocid
	p.Provenance.Version = last.id
	p.Provenance.VersionDate = last.date
	p.Provenance.Position = last.pos
	p.Provenance.Compiled = last.compiled

	tender := rd.obj(merged, "tender", "tender")
	p.Title = rd.str(tender, "title", "tender.title")
	p.TenderStatus = rd.str(tender, "status", "tender.status")
	items := objs(rd, rd.arr(tender, "items", "tender.items"), "tender.items")
	switch desc := rd.str(tender, "description", "tender.description"); {
	case p.Title != "":
		p.Description, p.DescriptionField = p.Title, "tender.title"
	case desc != "":
		p.Description, p.DescriptionField = desc, "tender.description"
	case len(items) > 0 && rd.str(items[0], "description", "tender.items[0].description") != "":
		p.Description, p.DescriptionField = rd.str(items[0], "description", "tender.items[0].description"), "tender.items[0].description"
	case planDesc(merged) != "":
		p.Description, p.DescriptionField = planDesc(merged), "planning.budget.description"
		p.Inferred = append(p.Inferred, "description")
	default:
		p.Description, p.DescriptionField = ocid, "ocid"
		p.Inferred = append(p.Inferred, "description")
		rd.problem("tender.title", "no title, description or item description; the ocid stands in")
	}

	p.Category, p.CategorySource = category(rd, tender, items)
	p.Inferred = append(p.Inferred, "category")

	p.EstimatedCost = rd.amount(tender, "value", "tender.value")
	if p.EstimatedCost != nil && p.EstimatedCost.Value.IsZero() {
		p.EstimatedCost = nil // a zero tender value is a placeholder
	}
	if p.EstimatedCost == nil {
		p.EstimatedCost = budget(rd, merged)
	}

	awards := objs(rd, rd.arr(merged, "awards", "awards"), "awards")
	contracts := objs(rd, rd.arr(merged, "contracts", "contracts"), "contracts")
	p.ExpectedDelivery = expected(rd, tender, awards, contracts)

	cands := candidates(rd, tender, awards, contracts)
	var incs []Inconsistency
	incs = append(incs, periodChecks(rd, tender, contracts)...)
	incs = append(incs, contractChecks(rd, awards, contracts)...)
	p.Stages, p.Dropped, incs = timeline(cands, incs)

	if cancelled(p.TenderStatus) {
		st := cancelStage(rd, rels)
		if len(p.Stages) > 0 {
			prev := p.Stages[len(p.Stages)-1]
			if st.On.Before(prev.On) {
				incs = append(incs, Inconsistency{Kind: KindCancelledBefore, First: prev.Date, Second: st.Date,
					Action: "CANCELLED set to the day of " + prev.Stage})
				st.On = prev.On
				st.Note += "; moved to the day of " + prev.Stage
			}
		}
		if st.Field == "" {
			rd.problem("tender.status", "%s, but no date for it", p.TenderStatus)
		} else {
			if len(p.Stages) == 0 {
				p.Stages = append(p.Stages, Stage{Stage: procurement.Requisitioned, Date: st.Date, Inferred: true,
					Note: "no stage date: the day the cancellation was known stands in"})
			}
			p.Stages = append(p.Stages, st)
		}
	}
	for i := range incs {
		incs[i].OCID = ocid
	}
	p.Inconsistencies = incs
	if len(p.Stages) == 0 {
		rd.problem("tender", "no dated stage (no tender period, award or contract dates)")
	}
	p.Problems = uniqueProblems(p.Problems)
	for _, s := range p.Stages {
		if s.Inferred {
			p.Inferred = append(p.Inferred, "stages."+s.Stage)
		}
	}
	return p
}

func cancelled(status string) bool { return status == "cancelled" || status == "unsuccessful" }

// cancelStage dates CANCELLED by the first release that shows the tender
// cancelled or unsuccessful: the day it was known to be (inferred).
func cancelStage(rd reader, rels []release) Stage {
	for _, rel := range rels {
		t, _ := rel.m["tender"].(map[string]any)
		s, _ := t["status"].(string)
		if !cancelled(s) || rel.on.IsZero() {
			continue
		}
		return Stage{Stage: procurement.Cancelled, Date: Date{On: rel.on, Field: "date", Source: rel.date}, Inferred: true,
			Note: fmt.Sprintf("tender.status %s in release %s; dated by that release", s, rel.id)}
	}
	return Stage{Stage: procurement.Cancelled}
}

// budget reads planning.budget.amount; planning may be an array (Armenia):
// the amounts of its elements in one currency are summed.
func budget(rd reader, m map[string]any) *Amount {
	var plans []map[string]any
	var prefix []string
	switch pl := m["planning"].(type) {
	case nil:
		return nil
	case map[string]any:
		plans, prefix = []map[string]any{pl}, []string{"planning"}
	case []any:
		for i, e := range pl {
			if o, ok := e.(map[string]any); ok {
				plans = append(plans, o)
				prefix = append(prefix, fmt.Sprintf("planning[%d]", i))
			}
		}
	default:
		rd.problem("planning", "want an object or array, got %s", kind(pl))
		return nil
	}
	var sum *Amount
	for i, pl := range plans {
		b := rd.obj(pl, "budget", prefix[i]+".budget")
		a := rd.amount(b, "amount", prefix[i]+".budget.amount")
		if a == nil {
			continue
		}
		if sum == nil {
			c := *a
			sum = &c
			continue
		}
		if a.Currency != sum.Currency {
			rd.problem(a.Field, "currency %s differs from %s; not added", a.Currency, sum.Currency)
			continue
		}
		sum.Value = sum.Value.Add(a.Value)
		sum.Source += "+" + a.Source
		sum.Field = "planning[].budget.amount"
		sum.Rounded = sum.Rounded || a.Rounded
	}
	if sum != nil && sum.Value.IsZero() {
		return nil
	}
	return sum
}

// CPV prefixes that name a Tranche category.
var cpvCategories = []struct{ prefix, category string }{
	{"38546", "DETECTORS"}, // explosives detection systems
	{"38295", "DETECTORS"}, // geophysical (mine detection) instruments
	{"35113", "PPE"},       // safety equipment
	{"18143", "PPE"},       // protective gear
	{"18130", "PPE"},       // occupational clothing
	{"341", "VEHICLES"},    // motor vehicles
	{"3433", "VEHICLES"},   // vehicle parts
	{"43", "MECHANICAL"},   // mining, quarrying, construction machinery
	{"0332", "ANIMALS"},    // live animals
	{"98380", "ANIMALS"},   // dog kennel services
}

func category(rd reader, tender map[string]any, items []map[string]any) (string, string) {
	main := rd.str(tender, "mainProcurementCategory", "tender.mainProcurementCategory")
	src := "tender.mainProcurementCategory=" + main
	for i, it := range items {
		c := rd.obj(it, "classification", fmt.Sprintf("tender.items[%d].classification", i))
		scheme := rd.str(c, "scheme", "classification.scheme")
		id := rd.str(c, "id", "classification.id")
		if strings.EqualFold(scheme, "CPV") {
			for _, cc := range cpvCategories {
				if strings.HasPrefix(id, cc.prefix) {
					return cc.category, fmt.Sprintf("tender.items[%d].classification=CPV %s", i, id)
				}
			}
		}
	}
	if main == "services" {
		return "SERVICES", src
	}
	if main == "" {
		src = "none"
	}
	return "OTHER", src
}

// expected: the latest contract period end; else the latest implementation
// milestone due date; else tender.contractPeriod.endDate; else the latest
// award contractPeriod end.
func expected(rd reader, tender map[string]any, awards, contracts []map[string]any) *Date {
	var best *Date
	keep := func(d Date, ok bool) {
		if ok && (best == nil || d.On.After(best.On)) {
			c := d
			best = &c
		}
	}
	for i, c := range contracts {
		if rd.str(c, "status", fmt.Sprintf("contracts[%d].status", i)) == "cancelled" {
			continue
		}
		keep(rd.date(rd.obj(c, "period", fmt.Sprintf("contracts[%d].period", i)), "endDate", fmt.Sprintf("contracts[%d].period.endDate", i)))
	}
	if best != nil {
		return best
	}
	for i, c := range contracts {
		impl := rd.obj(c, "implementation", fmt.Sprintf("contracts[%d].implementation", i))
		for j, ms := range objs(rd, rd.arr(impl, "milestones", fmt.Sprintf("contracts[%d].implementation.milestones", i)), "milestones") {
			keep(rd.date(ms, "dueDate", fmt.Sprintf("contracts[%d].implementation.milestones[%d].dueDate", i, j)))
		}
	}
	if best != nil {
		return best
	}
	keep(rd.date(rd.obj(tender, "contractPeriod", "tender.contractPeriod"), "endDate", "tender.contractPeriod.endDate"))
	if best != nil {
		return best
	}
	for i, a := range awards {
		keep(rd.date(rd.obj(a, "contractPeriod", fmt.Sprintf("awards[%d].contractPeriod", i)), "endDate", fmt.Sprintf("awards[%d].contractPeriod.endDate", i)))
	}
	return best
}

// candidates are the dated forward stages the source gives, in stage order.
func candidates(rd reader, tender map[string]any, awards, contracts []map[string]any) []Stage {
	var out []Stage
	add := func(stage string, d Date, ok bool, inferred bool, note string) {
		if ok {
			out = append(out, Stage{Stage: stage, Date: d, Inferred: inferred, Note: note})
		}
	}
	d, ok := rd.date(tender, "datePublished", "tender.datePublished")
	add(procurement.Requisitioned, d, ok, true, "the tender notice's publication day stands in for the requisition")
	tp := rd.obj(tender, "tenderPeriod", "tender.tenderPeriod")
	d, ok = rd.date(tp, "startDate", "tender.tenderPeriod.startDate")
	add(procurement.Tendered, d, ok, false, "")
	if d, ok = rd.date(tp, "endDate", "tender.tenderPeriod.endDate"); ok {
		add(procurement.Evaluated, d, ok, false, "bids closed; evaluation begins")
	} else {
		ap := rd.obj(tender, "awardPeriod", "tender.awardPeriod")
		d, ok = rd.date(ap, "startDate", "tender.awardPeriod.startDate")
		add(procurement.Evaluated, d, ok, false, "award period opened")
	}
	d, ok = earliest(rd, awards, "awards", "date", func(s string) bool {
		return s == "" || s == "active"
	})
	add(procurement.Awarded, d, ok, false, "earliest active award")
	d, ok = earliest(rd, contracts, "contracts", "dateSigned", func(s string) bool {
		return s == "" || s == "active" || s == "terminated"
	})
	add(procurement.Contracted, d, ok, false, "earliest signature")
	if dd, ok, inferred, note := delivered(rd, contracts); ok {
		add(procurement.Delivered, dd, true, inferred, note)
	}
	return out
}

func earliest(rd reader, xs []map[string]any, name, key string, counts func(string) bool) (Date, bool) {
	var best Date
	found := false
	for i, x := range xs {
		if !counts(rd.str(x, "status", fmt.Sprintf("%s[%d].status", name, i))) {
			continue
		}
		d, ok := rd.date(x, key, fmt.Sprintf("%s[%d].%s", name, i, key))
		if ok && (!found || d.On.Before(best.On)) {
			best, found = d, true
		}
	}
	return best, found
}

// delivered: every live contract shows delivery — all its implementation
// milestones met (day: the latest dateMet, else the latest dueDate,
// inferred), or its status terminated (day: its last implementation
// transaction, else its period end, inferred). Payments alone are not
// delivery. The process's day is the latest contract's.
func delivered(rd reader, contracts []map[string]any) (Date, bool, bool, string) {
	var best Date
	inferred := false
	n := 0
	var notes []string
	for i, c := range contracts {
		st := rd.str(c, "status", fmt.Sprintf("contracts[%d].status", i))
		if st == "cancelled" || st == "pending" {
			continue
		}
		n++
		impl := rd.obj(c, "implementation", fmt.Sprintf("contracts[%d].implementation", i))
		ms := objs(rd, rd.arr(impl, "milestones", fmt.Sprintf("contracts[%d].implementation.milestones", i)), "milestones")
		var d Date
		ok, inf := false, false
		note := ""
		if len(ms) > 0 && allMet(rd, ms) {
			for j, m := range ms {
				if x, y := rd.date(m, "dateMet", fmt.Sprintf("contracts[%d].implementation.milestones[%d].dateMet", i, j)); y && (!ok || x.On.After(d.On)) {
					d, ok = x, true
				}
			}
			note = "all implementation milestones met"
			if !ok {
				for j, m := range ms {
					if x, y := rd.date(m, "dueDate", fmt.Sprintf("contracts[%d].implementation.milestones[%d].dueDate", i, j)); y && (!ok || x.On.After(d.On)) {
						d, ok, inf = x, true, true
					}
				}
				note = "all implementation milestones met, no dateMet: their latest due date stands in"
			}
		}
		if !ok && st == "terminated" {
			for j, t := range objs(rd, rd.arr(impl, "transactions", fmt.Sprintf("contracts[%d].implementation.transactions", i)), "transactions") {
				if x, y := rd.date(t, "date", fmt.Sprintf("contracts[%d].implementation.transactions[%d].date", i, j)); y && (!ok || x.On.After(d.On)) {
					d, ok = x, true
				}
			}
			note = "contract terminated: its last payment"
			if !ok {
				d, ok = rd.date(rd.obj(c, "period", fmt.Sprintf("contracts[%d].period", i)), "endDate", fmt.Sprintf("contracts[%d].period.endDate", i))
				note = "contract terminated: its period end stands in"
			}
			inf = true
		}
		if !ok {
			return Date{}, false, false, ""
		}
		notes = append(notes, note)
		if d.On.After(best.On) {
			best = d
		}
		inferred = inferred || inf
	}
	if n == 0 {
		return Date{}, false, false, ""
	}
	return best, true, inferred, strings.Join(dedupe(notes), "; ")
}

func allMet(rd reader, ms []map[string]any) bool {
	for _, m := range ms {
		if rd.str(m, "status", "implementation.milestones[].status") != "met" {
			return false
		}
	}
	return true
}

func dedupe(xs []string) []string {
	sort.Strings(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// periodChecks reports periods that end before they start.
func periodChecks(rd reader, tender map[string]any, contracts []map[string]any) []Inconsistency {
	var out []Inconsistency
	check := func(m map[string]any, field string) {
		s, ok1 := rd.date(m, "startDate", field+".startDate")
		e, ok2 := rd.date(m, "endDate", field+".endDate")
		if ok1 && ok2 && e.On.Before(s.On) {
			out = append(out, Inconsistency{Kind: KindNegativeDuration, First: s, Second: e})
		}
	}
	check(rd.obj(tender, "tenderPeriod", "tender.tenderPeriod"), "tender.tenderPeriod")
	check(rd.obj(tender, "awardPeriod", "tender.awardPeriod"), "tender.awardPeriod")
	check(rd.obj(tender, "contractPeriod", "tender.contractPeriod"), "tender.contractPeriod")
	for i, c := range contracts {
		check(rd.obj(c, "period", fmt.Sprintf("contracts[%d].period", i)), fmt.Sprintf("contracts[%d].period", i))
	}
	return out
}

// contractChecks reports contracts signed before the award they implement.
func contractChecks(rd reader, awards, contracts []map[string]any) []Inconsistency {
	byID := map[string]Date{}
	for i, a := range awards {
		id, _ := idOf(a)
		if d, ok := rd.date(a, "date", fmt.Sprintf("awards[%d].date", i)); ok && id != "" {
			byID[id] = d
		}
	}
	var out []Inconsistency
	for i, c := range contracts {
		aid := ""
		switch v := c["awardID"].(type) {
		case string:
			aid = v
		case json.Number:
			aid = v.String()
		}
		ad, ok := byID[aid]
		if !ok {
			continue
		}
		if sd, ok := rd.date(c, "dateSigned", fmt.Sprintf("contracts[%d].dateSigned", i)); ok && sd.On.Before(ad.On) {
			out = append(out, Inconsistency{Kind: KindContractBefore, First: ad, Second: sd})
		}
	}
	return out
}

// timeline keeps the largest set of candidate stages whose days never
// decrease in stage order (ties: the set keeping later stages), drops the
// rest, and reports every candidate pair out of order. REQUISITIONED, if not
// kept, is inferred as the first kept stage's day.
func timeline(cands []Stage, incs []Inconsistency) ([]Stage, []Stage, []Inconsistency) {
	n := len(cands)
	bestMask, bestScore := 0, -1
	for mask := 0; mask < 1<<n; mask++ {
		ok := true
		var prev time.Time
		score := 0
		for i := 0; i < n; i++ {
			if mask&(1<<i) == 0 {
				continue
			}
			if cands[i].On.Before(prev) {
				ok = false
				break
			}
			prev = cands[i].On
			score += 1000 + 1<<i
		}
		if ok && score > bestScore {
			bestMask, bestScore = mask, score
		}
	}
	var kept, dropped []Stage
	for i, c := range cands {
		if bestMask&(1<<i) != 0 {
			kept = append(kept, c)
		} else {
			dropped = append(dropped, c)
		}
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if !cands[j].On.Before(cands[i].On) {
				continue
			}
			var act []string
			for _, k := range []int{i, j} {
				if bestMask&(1<<k) == 0 {
					act = append(act, fmt.Sprintf("dropped %s (%s)", cands[k].Stage, cands[k].Field))
				}
			}
			incs = append(incs, Inconsistency{Kind: KindStageOrder, First: cands[i].Date, Second: cands[j].Date,
				Action: strings.Join(act, ", ")})
		}
	}
	for i := range incs {
		if incs[i].Action == "" {
			incs[i].Action = "reported only"
		}
	}
	if len(kept) > 0 && kept[0].Stage != procurement.Requisitioned {
		first := kept[0]
		kept = append([]Stage{{Stage: procurement.Requisitioned, Date: first.Date, Inferred: true,
			Note: "no requisition date: the day of " + first.Stage + " stands in"}}, kept...)
	}
	return kept, dropped, incs
}

// planDesc is the (first) planning budget's description, for processes that
// are only planned; planning may be an array.
func planDesc(m map[string]any) string {
	pl := m["planning"]
	if a, ok := pl.([]any); ok && len(a) > 0 {
		pl = a[0]
	}
	o, _ := pl.(map[string]any)
	b, _ := o["budget"].(map[string]any)
	s, _ := b["description"].(string)
	return strings.Trim(strings.TrimSpace(s), "- ")
}

// uniqueProblems drops repeats: a field read for several purposes is
// reported once.
func uniqueProblems(ps []Problem) []Problem {
	seen := map[Problem]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
