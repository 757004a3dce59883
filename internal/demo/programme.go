// Package demo builds the sample programme `tranche demo` loads: a national
// mine action roadmap with its donors, implementing partners, grants in
// several currencies, three years of journal entries, FX rates and
// procurement, plus a handful of planted cases that the detection engine
// must find (see cases.go). Generate is pure and deterministic: the same
// seed and day give the same programme, to the last minor unit. Load writes
// it through the same domain stores the API uses, each write with its audit
// event and a request id derived from the seed, so a load that is repeated
// (or resumed after an interruption) writes nothing twice.
package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/money"
)

// HistoryDays is how far before the day the programme's history starts:
// three years. The roadmap starts that many days before the day it was
// generated for, which is how a later start recovers that day (Anchor).
const HistoryDays = 1096

// ReportingCurrency is the sample roadmap's reporting currency.
const ReportingCurrency = "USD"

// Programme is the sample programme, before it is loaded: everything refers
// to everything else by keys (organisation keys, milestone codes, grant
// references), never by database ids.
type Programme struct {
	Seed       int64
	Day        time.Time // the day it was generated for (UTC midnight)
	Roadmap    RoadmapSpec
	Orgs       []OrgSpec
	Milestones []MilestoneSpec
	Rates      []RateSpec
	Grants     []GrantSpec
	Entries    []EntrySpec
	Items      []ItemSpec
	Cases      []Case
}

// RoadmapSpec is the national strategy.
type RoadmapSpec struct {
	Country, Title string
	Start, End     time.Time
}

// OrgSpec is an organisation. Key is how the programme refers to it.
type OrgSpec struct {
	Key, Name, Kind, IATIRef, Country string
	Currency                          string // a donor's agreement currency
	Weight                            int    // a donor's share of the money, relative
}

// MilestoneSpec is a milestone; Requirement is in the reporting currency.
type MilestoneSpec struct {
	Code, Title, Activity, Region string
	Quantity                      decimal.Decimal
	Unit                          string
	Due                           time.Time
	Requirement                   decimal.Decimal
	Responsible                   string // org key
	Status                        string
	// Cover is how much of the requirement the grants' allocations cover
	// (the requirement is set from them): below 1 a gap, above 1 overfunded.
	cover float64
}

// RateSpec is one FX rate: units of Currency per one USD on Date.
type RateSpec struct {
	Currency string
	Date     time.Time
	Rate     decimal.Decimal
}

// GrantSpec is a funding agreement funding one milestone.
type GrantSpec struct {
	Ref, Donor, Recipient, Title, Currency string
	Milestone                              string
	Pledged                                decimal.Decimal
	Start, End                             time.Time
	Allocation                             decimal.Decimal // to Milestone, set once the journal is recorded
}

// EntrySpec is one journal entry of a grant (Grant is the grant's
// reference), in the grant's currency. Single entries are recorded one by
// one (RecordTransaction), as a clerk keying them would; the others in one
// batch per grant.
type EntrySpec struct {
	Grant, Type string
	Amount      decimal.Decimal
	Date        time.Time
	Reference   string
	Milestone   string
	Note        string
	Single      bool
}

// ItemSpec is a procurement item and the stages it went through after
// REQUISITIONED (on Requisitioned).
type ItemSpec struct {
	Key, Grant, Milestone, Description, Category string
	Critical                                     bool
	Cost                                         decimal.Decimal
	Currency                                     string
	Expected                                     time.Time // zero: none
	Requisitioned                                time.Time
	Stages                                       []StageStep
}

// StageStep is a stage an item entered, and when.
type StageStep struct {
	Stage string
	On    time.Time
	Note  string
}

// Case is a planted case: what it is, the flag kind it must produce, and
// the grants and milestone that flag names.
type Case struct {
	Name, Kind, About string
	Grants            []string // grant references
	Milestone         string   // milestone code, if the flag names one
}

// Anchor is the day a programme was generated for, from its roadmap's start.
func Anchor(roadmapStart time.Time) time.Time {
	return roadmapStart.AddDate(0, 0, HistoryDays)
}

// RoadmapTitle is the sample roadmap's title for a seed: how a second start
// finds the programme it loaded.
func RoadmapTitle(seed int64) string {
	return fmt.Sprintf("Cambodia National Mine Action Strategy — Tranche demo programme (seed %d)", seed)
}

// day is d days after the anchor day t.
func day(t time.Time, d int) time.Time { return t.AddDate(0, 0, d) }

func today() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

// Today is the current UTC day, the default day to generate for.
func Today() time.Time { return today() }

// gen carries the random source and the programme being built.
type gen struct {
	r   *rand.Rand
	p   *Programme
	t   time.Time // the anchor day
	seq map[string]int
}

func (g *gen) between(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }
func (g *gen) f(lo, hi float64) float64 {
	return lo + g.r.Float64()*(hi-lo)
}

// Generate builds the programme for seed as of day (UTC midnight).
func Generate(seed int64, day time.Time) *Programme {
	day = day.UTC().Truncate(24 * time.Hour)
	g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 0x7472616e636865)), t: day, seq: map[string]int{}}
	g.p = &Programme{Seed: seed, Day: day}
	g.p.Roadmap = RoadmapSpec{Country: "KHM", Title: RoadmapTitle(seed), Start: day.AddDate(0, 0, -HistoryDays),
		End: day.AddDate(0, 0, 4*365)}
	g.p.Orgs = organisations()
	g.rates()
	g.milestones()
	g.grants()
	g.plant()
	g.requirements()
	g.procurement()
	slices.SortStableFunc(g.p.Entries, func(a, b EntrySpec) int { return a.Date.Compare(b.Date) })
	return g.p
}

// organisations are the programme's parties: a few large donors and a long
// tail (as in Landmine Monitor's figures: the top five give about three
// quarters), the implementing partners, the national authority. IATI
// organisation identifiers follow the real registration agencies' patterns.
func organisations() []OrgSpec {
	return []OrgSpec{
		{Key: "us", Name: "United States, Department of State (PM/WRA)", Kind: "DONOR", IATIRef: "US-GOV-1", Country: "USA", Currency: "USD", Weight: 30},
		{Key: "eu", Name: "European Union (DG INTPA)", Kind: "DONOR", IATIRef: "XM-DAC-918-3", Country: "", Currency: "EUR", Weight: 16},
		{Key: "de", Name: "Germany, Federal Foreign Office", Kind: "DONOR", IATIRef: "XM-DAC-5-7", Country: "DEU", Currency: "EUR", Weight: 13},
		{Key: "jp", Name: "Japan, Ministry of Foreign Affairs", Kind: "DONOR", IATIRef: "XM-DAC-701-1", Country: "JPN", Currency: "JPY", Weight: 12},
		{Key: "no", Name: "Norway, Ministry of Foreign Affairs", Kind: "DONOR", IATIRef: "XM-DAC-8-1", Country: "NOR", Currency: "NOK", Weight: 9},
		{Key: "gb", Name: "United Kingdom, Foreign, Commonwealth & Development Office", Kind: "DONOR", IATIRef: "GB-GOV-1", Country: "GBR", Currency: "GBP", Weight: 7},
		{Key: "nl", Name: "Netherlands, Ministry of Foreign Affairs", Kind: "DONOR", IATIRef: "XM-DAC-7-1", Country: "NLD", Currency: "EUR", Weight: 4},
		{Key: "ch", Name: "Switzerland, Federal Department of Foreign Affairs", Kind: "DONOR", IATIRef: "XM-DAC-11-1", Country: "CHE", Currency: "CHF", Weight: 3},
		{Key: "kw", Name: "Kuwait Fund for Arab Economic Development", Kind: "DONOR", IATIRef: "XM-DAC-1312-1", Country: "KWT", Currency: "KWD", Weight: 2},
		{Key: "au", Name: "Australia, Department of Foreign Affairs and Trade", Kind: "DONOR", IATIRef: "XM-DAC-801-2", Country: "AUS", Currency: "AUD", Weight: 2},
		{Key: "dk", Name: "Denmark, Ministry of Foreign Affairs", Kind: "DONOR", IATIRef: "XM-DAC-3-1", Country: "DNK", Currency: "DKK", Weight: 1},
		{Key: "halo", Name: "The HALO Trust", Kind: "IMPLEMENTER", IATIRef: "GB-CHC-1001813", Country: "GBR"},
		{Key: "mag", Name: "Mines Advisory Group (MAG)", Kind: "IMPLEMENTER", IATIRef: "GB-CHC-1083008", Country: "GBR"},
		{Key: "npa", Name: "Norwegian People's Aid", Kind: "IMPLEMENTER", IATIRef: "NO-BRC-971255862", Country: "NOR"},
		{Key: "hi", Name: "Humanity & Inclusion", Kind: "IMPLEMENTER", IATIRef: "FR-RNA-W691054327", Country: "FRA"},
		{Key: "drc", Name: "Danish Refugee Council (Humanitarian Disarmament and Peacebuilding)", Kind: "IMPLEMENTER", IATIRef: "DK-CVR-20699310", Country: "DNK"},
		{Key: "undp", Name: "United Nations Development Programme", Kind: "IMPLEMENTER", IATIRef: "XM-DAC-41114", Country: ""},
		{Key: "cmac", Name: "Cambodian Mine Action Centre (CMAC)", Kind: "IMPLEMENTER", IATIRef: "KH-MOI-CMAC", Country: "KHM"},
		{Key: "cmaa", Name: "Cambodian Mine Action and Victim Assistance Authority (CMAA)", Kind: "NATIONAL_AUTHORITY", IATIRef: "KH-GOV-CMAA", Country: "KHM"},
	}
}

// baseRates are units per USD the rate paths start from.
var baseRates = []struct {
	cur  string
	rate float64
	dp   int32
}{
	{"EUR", 0.9210, 4}, {"JPY", 142.35, 2}, {"NOK", 10.612, 3}, {"GBP", 0.7915, 4}, {"CHF", 0.8842, 4},
	{"KWD", 0.30712, 5}, {"AUD", 1.5134, 4}, {"DKK", 6.8715, 4},
}

// rates are monthly rates (as the UN operational rates of exchange are), on
// the first of each month from the start of the history to the day. A
// month's rate depends on the currency and the month alone, never on the
// seed or the day the programme is generated for, so programmes of several
// seeds, or loaded on different days, share one FX table (rates are facts:
// the table refuses a second value for a pair and date). Rates drift by at
// most about 0.7 % a month, so a receipt a few days after its disbursement
// never differs from it by more than the receipt tolerance for FX alone.
func (g *gen) rates() {
	first := g.p.Roadmap.Start.AddDate(0, 0, -g.p.Roadmap.Start.Day()+1)
	for i, b := range baseRates {
		for m := first; !m.After(g.t); m = m.AddDate(0, 1, 0) {
			g.p.Rates = append(g.p.Rates, RateSpec{Currency: b.cur, Date: m, Rate: monthlyRate(b.rate, i, m).Round(b.dp)})
		}
	}
}

// monthlyRate is a currency's rate for month m: its base rate moved along
// a slow wave (±2.5 %, about two years long) with a small fixed wobble.
func monthlyRate(base float64, i int, m time.Time) decimal.Decimal {
	n := float64(m.Year()*12 + int(m.Month()))
	wobble := float64((m.Year()*12+int(m.Month()))*7919%13-6) / 6 * 0.001
	return decimal.NewFromFloat(base * (1 + 0.025*math.Sin(n*0.25+float64(i)) + wobble))
}

// rateOn is the rate of cur on day d from the generated table (1 for USD).
func (g *gen) rateOn(cur string, d time.Time) decimal.Decimal {
	if cur == ReportingCurrency {
		return decimal.NewFromInt(1)
	}
	var r decimal.Decimal
	for _, x := range g.p.Rates {
		if x.Currency == cur && !x.Date.After(d) {
			r = x.Rate
		}
	}
	return r
}

// milestones are the roadmap's outcomes: survey, clearance, risk education,
// victim assistance, stockpile destruction and capacity building, in the
// provinces of the north-west (ISO 3166-2:KH), due over the coming years;
// those due already are completed. Each area (region and activity) has one
// milestone, but for the two of the planted overlap.
func (g *gen) milestones() {
	m := func(code, title, act, region string, qty int64, unit string, due int, resp string) {
		st := "IN_PROGRESS"
		if due < 0 {
			st = "COMPLETED"
		} else if due > 700 {
			st = "PLANNED"
		}
		g.p.Milestones = append(g.p.Milestones, MilestoneSpec{Code: code, Title: title, Activity: act, Region: region,
			Quantity: decimal.NewFromInt(qty), Unit: unit, Due: day(g.t, due), Responsible: resp, Status: st,
			cover: g.f(0.55, 0.9)})
	}
	m("M-1.1", "Non-technical survey of Banteay Meanchey", "SURVEY", "KH-1", 180, "villages surveyed", -640, "cmaa")
	m("M-1.2", "Technical survey of suspected hazardous areas, Battambang", "SURVEY", "KH-2", 4200000, "m² surveyed", 420, "cmaa")
	m("M-2.1", "Land release in Banteay Meanchey", "CLEARANCE", "KH-1", 6500000, "m² released", 230, "cmaa")
	m("M-2.2", "Clearance of Battambang minefields (K5 belt)", "CLEARANCE", "KH-2", 3800000, "m² released", -290, "cmaa")
	m("M-2.3", "Clearance of Oddar Meanchey border minefields", "CLEARANCE", "KH-22", 2900000, "m² released", 60, "cmaa")
	m("M-2.4", "Clearance of Pailin", "CLEARANCE", "KH-24", 2100000, "m² released", 540, "cmaa")
	m("M-2.5", "Clearance of Preah Vihear, Choam Ksant district", "CLEARANCE", "KH-13", 1600000, "m² released", 610, "cmaa")
	m("M-2.6", "Clearance of Siem Reap, Varin district", "CLEARANCE", "KH-17", 1200000, "m² released", 480, "cmaa")
	m("M-2.7", "Clearance of Preah Vihear, Rovieng district", "CLEARANCE", "KH-13", 1400000, "m² released", 750, "cmaa")
	m("M-3.1", "Explosive ordnance risk education in Battambang schools", "EORE", "KH-2", 120000, "people reached", 320, "cmaa")
	m("M-3.2", "Risk education for returnees, Oddar Meanchey", "EORE", "KH-22", 45000, "people reached", -120, "cmaa")
	m("M-4.1", "Physical rehabilitation and prosthetics, Battambang", "VICTIM_ASSISTANCE", "KH-2", 3500, "survivors assisted", 460, "cmaa")
	m("M-4.2", "Livelihood support for survivors, Banteay Meanchey", "VICTIM_ASSISTANCE", "KH-1", 1200, "households supported", 820, "cmaa")
	m("M-5.1", "Destruction of stockpiled anti-personnel mines", "STOCKPILE_DESTRUCTION", "KH-12", 14000, "mines destroyed", 360, "cmaa")
	m("M-6.1", "National mine action database and quality management", "CAPACITY_BUILDING", "KH-12", 1, "system in service", 260, "cmaa")
	m("M-6.2", "Provincial mine action committees, training", "CAPACITY_BUILDING", "KH-17", 250, "staff trained", 900, "cmaa")
}

func (g *gen) milestone(code string) *MilestoneSpec {
	for i := range g.p.Milestones {
		if g.p.Milestones[i].Code == code {
			return &g.p.Milestones[i]
		}
	}
	panic("no milestone " + code)
}

func (g *gen) org(key string) OrgSpec {
	for _, o := range g.p.Orgs {
		if o.Key == key {
			return o
		}
	}
	panic("no organisation " + key)
}

func (g *gen) grant(ref string) *GrantSpec {
	for i := range g.p.Grants {
		if g.p.Grants[i].Ref == ref {
			return &g.p.Grants[i]
		}
	}
	panic("no grant " + ref)
}

// implementers of each activity (the first is the usual one).
var implementersOf = map[string][]string{
	"SURVEY": {"cmac", "halo", "npa"}, "CLEARANCE": {"halo", "mag", "cmac", "npa"}, "EORE": {"mag", "hi", "drc"},
	"VICTIM_ASSISTANCE": {"hi", "drc"}, "STOCKPILE_DESTRUCTION": {"cmac", "npa"}, "CAPACITY_BUILDING": {"undp", "cmac"},
}

// donor picks a donor by weight.
func (g *gen) donor() OrgSpec {
	total := 0
	for _, o := range g.p.Orgs {
		total += o.Weight
	}
	n := g.r.IntN(total)
	for _, o := range g.p.Orgs {
		if n < o.Weight {
			return o
		}
		n -= o.Weight
	}
	panic("unreachable")
}

// refPrefix makes agreement numbers look like each donor's.
var refPrefix = map[string]string{
	"us": "SPMWRA%02d-CA-%04d", "eu": "NDICI-ASIA/20%02d/%06d", "de": "AA-S07-321.50-KHM-%02d-%03d", "jp": "JP-MOFA-KH-20%02d-%02d",
	"no": "KHM-%02d/%04d", "gb": "FCDO-MA-%02d%04d", "nl": "NL-MFA-4000%02d%04d", "ch": "CH-FDFA-7F-%02d%03d",
	"kw": "KFAED-KH-%02d-%03d", "au": "DFAT-7%02d%04d", "dk": "DK-MFA-%02d-%04d",
}

func (g *gen) nextRef(donor string, start time.Time) string {
	g.seq[donor]++
	// The seed keeps programmes of different seeds apart (references are
	// unique per donor across roadmaps): seed 0 and 1 give the plain form,
	// others a suffix naming the seed, so seeds 1 and 1001 never collide.
	ref := fmt.Sprintf(refPrefix[donor], start.Year()%100, int(g.p.Seed%1000)*1000+10*g.seq[donor]+g.r.IntN(10))
	if g.p.Seed >= 1000 {
		ref += fmt.Sprintf("-S%d", g.p.Seed)
	}
	return ref
}

// amountIn is usd in cur at day d, rounded to a round figure the size of the
// agreement (a thousand units; a million yen).
func (g *gen) amountIn(cur string, usd float64, d time.Time) decimal.Decimal {
	v := decimal.NewFromFloat(usd).Mul(g.rateOn(cur, d))
	step := decimal.NewFromInt(1000)
	if cur == "JPY" {
		step = decimal.NewFromInt(1000000)
	}
	return v.Div(step).Round(0).Mul(step)
}

// grants fund each milestone as agreements following one another (one
// donor at a time per partner and milestone, so no background overlap),
// from about the start of the history until the milestone is due. The
// milestones of planted cases get only their planted grants.
func (g *gen) grants() {
	start := g.p.Roadmap.Start
	for _, m := range g.p.Milestones {
		if slices.Contains(reserved, m.Code) {
			continue
		}
		impl := implementersOf[m.Activity]
		partners := []string{impl[g.r.IntN(len(impl))]}
		if m.Activity == "CLEARANCE" || g.r.IntN(3) == 0 {
			if o := impl[g.r.IntN(len(impl))]; o != partners[0] {
				partners = append(partners, o)
			}
		}
		for _, rec := range partners {
			s := day(start, g.between(0, 120))
			end := m.Due
			if end.Before(day(g.t, 200)) && m.Status != "COMPLETED" {
				end = day(g.t, 200)
			}
			for s.Before(end) && !s.After(g.t) {
				length := g.between(300, 560)
				e := day(s, length)
				if e.After(end) || day(e, 240).After(end) {
					e = end
				}
				d := g.donor()
				usd := g.f(250000, 900000) * float64(d.Weight+4) / 12
				g.addGrant(d, rec, m.Code, s, e, usd)
				s = day(e, 1)
			}
		}
	}
}

// reserved are the milestones only planted cases fund (cases.go).
var reserved = []string{"M-2.4", "M-2.5", "M-2.6", "M-2.7", "M-4.2"}

// titles of grants by activity.
var grantTitle = map[string]string{
	"SURVEY": "Survey of suspected hazardous areas", "CLEARANCE": "Humanitarian mine clearance",
	"EORE": "Explosive ordnance risk education", "VICTIM_ASSISTANCE": "Victim assistance",
	"STOCKPILE_DESTRUCTION": "Stockpile destruction", "CAPACITY_BUILDING": "National capacity development",
}

// addGrant adds a grant and its ordinary journal: a commitment (sometimes
// in two parts, the second an amendment a year on), tranches disbursed
// over the period, each received a few days later under its reference, and
// spent month by month against invoices, all on days that have happened.
func (g *gen) addGrant(d OrgSpec, rec, milestone string, s, e time.Time, usd float64) *GrantSpec {
	m := g.milestone(milestone)
	cur := d.Currency
	pledged := g.amountIn(cur, usd, s)
	gs := GrantSpec{Ref: g.nextRef(d.Key, s), Donor: d.Key, Recipient: rec, Currency: cur, Milestone: milestone,
		Title: fmt.Sprintf("%s, %s (%s)", grantTitle[m.Activity], m.Region, g.org(rec).Name), Pledged: pledged, Start: s, End: e}
	g.p.Grants = append(g.p.Grants, gs)
	ref := gs.Ref
	add := func(typ string, amt decimal.Decimal, on time.Time, reference, note string) {
		if on.After(g.t) {
			return
		}
		g.p.Entries = append(g.p.Entries, EntrySpec{Grant: ref, Type: typ, Amount: amt, Date: on, Reference: reference,
			Milestone: milestone, Note: note})
	}
	type commit struct {
		on  time.Time
		amt decimal.Decimal
	}
	var commits []commit
	if g.r.IntN(4) == 0 && day(s, 365).Before(e) && !day(s, 365).After(g.t) {
		first := money.Round(pledged.Mul(decimal.NewFromFloat(0.6)), cur)
		commits = []commit{{day(s, 5), first}, {day(s, 365), pledged.Sub(first)}}
		add("COMMITMENT", first, day(s, 5), ref+"/A", "signed agreement, first phase")
		add("COMMITMENT", pledged.Sub(first), day(s, 365), ref+"/A1", "amendment: second phase")
	} else {
		commits = []commit{{day(s, 5), pledged}}
		add("COMMITMENT", pledged, day(s, 5), ref+"/A", "signed agreement")
	}
	committedOn := func(on time.Time) decimal.Decimal {
		c := decimal.Zero
		for _, x := range commits {
			if !x.on.After(on) {
				c = c.Add(x.amt)
			}
		}
		return c
	}
	// Tranches: 40 %, 30 %, 30 % of the pledge at the start, a third and two
	// thirds through the period (never ahead of what is committed); the
	// allocation earmarks what is committed.
	span := int(e.Sub(s).Hours() / 24)
	shares := []float64{0.4, 0.3, 0.3}
	sofar := decimal.Zero
	last := s
	for i, sh := range shares {
		on := day(s, 20+i*span/3)
		amt := money.Round(pledged.Mul(decimal.NewFromFloat(sh)), cur)
		if i == len(shares)-1 {
			amt = pledged.Sub(sofar)
		}
		sofar = sofar.Add(amt)
		if committedOn(on).LessThan(sofar) {
			on = day(commits[len(commits)-1].on, 10)
		}
		if !on.After(last) {
			on = day(last, 1)
		}
		last = on
		if on.After(g.t) {
			break
		}
		tref := fmt.Sprintf("%s/T%d", ref, i+1)
		add("DISBURSEMENT", amt, on, tref, fmt.Sprintf("tranche %d", i+1))
		rcv := day(on, g.between(3, 9))
		add("RECEIPT", amt, rcv, tref, "funds received")
		// Spend 75–95 % of the tranche over the following months.
		spend := amt.Mul(decimal.NewFromFloat(g.f(0.75, 0.95)))
		n := g.between(2, 4)
		for k := 0; k < n; k++ {
			part := money.Round(spend.Div(decimal.NewFromInt(int64(n))), cur)
			if cur == "KWD" {
				part = part.Add(decimal.New(int64(g.between(1, 999)), -3)) // fils, to show the third decimal
			}
			on := day(rcv, 20+k*g.between(25, 40))
			g.seq["inv/"+rec]++
			inv := fmt.Sprintf("%s/KHM/INV-%d-%04d", upper(rec), on.Year(), g.seq["inv/"+rec])
			add("EXPENDITURE", part, on, inv, "invoice "+inv)
		}
	}
	gp := &g.p.Grants[len(g.p.Grants)-1]
	if !day(s, 5).After(g.t) {
		gp.Allocation = committedBy(g.p.Entries, ref)
	}
	return gp
}

func committedBy(entries []EntrySpec, ref string) decimal.Decimal {
	c := decimal.Zero
	for _, e := range entries {
		if e.Grant == ref && e.Type == "COMMITMENT" {
			c = c.Add(e.Amount)
		}
	}
	return c
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// requirements sets each milestone's funding requirement from what its
// grants allocate, in USD at the day's rates: cover < 1 leaves a gap (the
// usual case: requirements are rarely met in full), > 1 overfunds.
// Completed milestones were funded in full.
func (g *gen) requirements() {
	for i := range g.p.Milestones {
		m := &g.p.Milestones[i]
		alloc := decimal.Zero
		for _, gr := range g.p.Grants {
			if gr.Milestone == m.Code && gr.Allocation.IsPositive() {
				alloc = alloc.Add(gr.Allocation.Div(g.rateOn(gr.Currency, g.t)))
			}
		}
		cover := m.cover
		if m.Status == "COMPLETED" {
			cover = 0.97
		}
		req := alloc.Div(decimal.NewFromFloat(cover))
		if alloc.IsZero() {
			req = decimal.NewFromInt(int64(g.between(800, 2500)) * 1000)
		}
		m.Requirement = req.Div(decimal.NewFromInt(1000)).Ceil().Mul(decimal.NewFromInt(1000))
	}
}

// procurement: items at every stage, each moving through its stages within
// the dwell thresholds and delivered by its expected date (so none of them
// is flagged); the planted ones come from cases.go.
func (g *gen) procurement() {
	type kind struct{ desc, cat string }
	kinds := []kind{
		{"Metal detectors (Minelab F3, 40 units)", "DETECTORS"}, {"Dual-sensor detectors (VMR3, 12 units)", "DETECTORS"},
		{"Blast-resistant PPE: visors and vests (200 sets)", "PPE"}, {"4×4 field vehicles (6 units)", "VEHICLES"},
		{"Brush cutter for vegetation removal", "MECHANICAL"}, {"Mine detection dogs and handler training (8 teams)", "ANIMALS"},
		{"Medical evacuation support contract", "SERVICES"}, {"Field camp equipment", "OTHER"},
		{"Ambulance (Land Cruiser conversion)", "VEHICLES"}, {"Prosthetic components (polypropylene, knee units)", "OTHER"},
	}
	forward := []string{"TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED", "ACCEPTED"}
	// Final stage of each background item; recent enough to be within dwell.
	finals := []string{"ACCEPTED", "ACCEPTED", "ACCEPTED", "DELIVERED", "CONTRACTED", "AWARDED", "EVALUATED", "TENDERED",
		"REQUISITIONED", "CANCELLED", "ACCEPTED", "CONTRACTED"}
	// Active grants (period holds the day) with money disbursed.
	var active []GrantSpec
	for _, gr := range g.p.Grants {
		m := g.milestone(gr.Milestone)
		if !gr.Start.After(day(g.t, -60)) && !gr.End.Before(g.t) && m.Due.After(day(g.t, 120)) && gr.Allocation.IsPositive() {
			active = append(active, gr)
		}
	}
	for i, final := range finals {
		gr := active[(i*7)%len(active)]
		k := kinds[i%len(kinds)]
		// Work back from the day: the last stage entered recently.
		stages := []string{}
		if final == "CANCELLED" {
			stages = []string{"TENDERED", "CANCELLED"}
		} else if final != "REQUISITIONED" {
			stages = forward[:slices.Index(forward, final)+1]
		}
		on := day(g.t, -g.between(3, 20))
		if final == "ACCEPTED" {
			on = day(g.t, -g.between(30, 400))
		}
		steps := make([]StageStep, len(stages))
		for j := len(stages) - 1; j >= 0; j-- {
			steps[j] = StageStep{Stage: stages[j], On: on}
			if stages[j] == "CANCELLED" {
				steps[j].Note = "bids above the estimate; requirement merged into a framework agreement"
			}
			on = day(on, -g.between(8, 25))
		}
		req := on
		if req.Before(gr.Start) {
			req = gr.Start
			for j := range steps { // keep the order and the day
				if steps[j].On.Before(req) {
					steps[j].On = req
				}
			}
		}
		expected := day(g.t, g.between(45, 200))
		if final == "ACCEPTED" || final == "DELIVERED" {
			expected = day(steps[slices.IndexFunc(steps, func(s StageStep) bool { return s.Stage == "DELIVERED" })].On, g.between(0, 30))
		}
		cost := g.amountIn(gr.Currency, g.f(20000, 250000), g.t)
		g.p.Items = append(g.p.Items, ItemSpec{Key: fmt.Sprintf("item-%02d", i+1), Grant: gr.Ref, Milestone: gr.Milestone,
			Description: k.desc, Category: k.cat, Critical: i%3 == 0, Cost: cost, Currency: gr.Currency,
			Expected: expected, Requisitioned: req, Stages: steps})
	}
}
