package detect

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// The generator loads a realistic mine action programme of a given number
// of journal entries into a test database, fast: rows are built in Go from
// a seeded generator (the same seed gives the same programme) and written
// with COPY, straight into the tables. Its shape:
//
//   - a national roadmap (USD) with one milestone per 50 grants (at least
//     50), over 33 provinces and the 7 activity types, due 2024–2027, most
//     of the past ones completed; and a small second roadmap;
//   - 40 donors, a few large and a long tail (weights ∝ 1/rank), each in
//     its own currency (USD, EUR, GBP, JPY, SEK, CHF), and one implementer
//     per 10 grants, each working in one province with a main donor;
//   - one grant per ~10 entries: pledge, commitment (sometimes amended
//     down), 1–4 disbursement instalments of equal amounts with distinct
//     references, a receipt for most, expenditures against invoices;
//     allocations of 90 % of the commitment to a milestone of the grant's
//     province and activity, and for a fifth of the grants a second one
//     (half of those re-allocated later); grant_balances replay the journal,
//     so every CHECK holds;
//   - monthly FX rates for every currency against USD, and entries whose
//     agreement and reporting amounts are converted at those rates;
//   - procurement for a quarter of the grants, with stage histories that
//     mostly keep to the dwell limits;
//   - planted cases of every kind of DESIGN section 5, a few per cent of the
//     grants (genResult.Planted counts them), and legitimate near misses.
//
// Value dates span 2023-01-01 to genAsOf, the day the benchmark detects as of.

// genAsOf is the day the generated programme is looked at.
var genAsOf = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)

var (
	genEpoch  = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	genMonth0 = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC) // first month with FX rates
	genMonths = 72                                          // 2022-01 … 2027-12
)

type genCur struct {
	code  string
	minor int
	base4 int64 // units per USD × 10⁴
}

var genCurrencies = []genCur{{"USD", 2, 10000}, {"EUR", 2, 9200}, {"GBP", 2, 7900}, {"JPY", 0, 1450000}, {"SEK", 2, 105000}, {"CHF", 2, 9000}}

var genRegions = strings.Fields("BDS BDG BGL BAL BAM DAY FRA FYB GHA GHO HEL HER JOW KAB KAN KAP KHO KNR KDZ LAG LOG NAN NIM NUR PKA PAN PAR SAM SAR TAK URU WAR ZAB")

var genActivities = []string{"SURVEY", "CLEARANCE", "EORE", "VICTIM_ASSISTANCE", "CAPACITY_BUILDING", "STOCKPILE_DESTRUCTION", "COORDINATION"}

var genItems = []struct{ desc, category string }{
	{"40 metal detectors", "DETECTORS"}, {"12 large-loop detectors", "DETECTORS"}, {"PPE kits for 3 teams", "PPE"},
	{"2 armoured Land Cruisers", "VEHICLES"}, {"Ambulance", "VEHICLES"}, {"Mechanical flail", "MECHANICAL"},
	{"Armoured excavator", "MECHANICAL"}, {"6 mine detection dogs", "ANIMALS"}, {"Non-technical survey services", "SERVICES"},
	{"Field radios", "OTHER"},
}

// Journal entry types, in the order the schema lists them.
const (
	tPledge = iota
	tCommitment
	tDisbursement
	tReceipt
	tExpenditure
	tReversal
)

var genTypes = []string{"PLEDGE", "COMMITMENT", "DISBURSEMENT", "RECEIPT", "EXPENDITURE", "REVERSAL"}

// gtx is one journal entry, compact until it is copied.
type gtx struct {
	id, grant, milestone, reverses uuid.UUID // zero milestone/reverses: NULL
	typ, bucket                    uint8
	cur                            uint8
	amount, agr, rep               int64 // minor units of cur, of the agreement currency, of USD
	agrRate, repRate               decimal.Decimal
	day                            int32 // days since genEpoch
	ref                            string
	implementer                    bool
}

type gGrant struct {
	id, roadmap, donor, recipient uuid.UUID
	donorIdx, recipientIdx        int
	ref                           string
	cur                           uint8
	start, end                    time.Time
	ms                            []int // milestone indexes allocated to
	// balances in agreement minor units, and in USD cents
	bal, balRep [5]int64
	allocated   int64
	allocVer    int
	// allocRep is the current allocation to each of ms, in USD cents.
	allocRep []int64
}

type genResult struct {
	Roadmap, SmallRoadmap uuid.UUID
	Rows                  map[string]int // table → rows copied
	Planted               map[string]int // what was planted → how many
}

type generator struct {
	r        *rand.Rand
	rates    [][]int64           // currency → month → rate4
	rateDec  [][]decimal.Decimal // the same as decimals
	one      decimal.Decimal
	donors   []uuid.UUID
	dWeights []float64
	dCur     []uint8
	recips   []uuid.UUID
	rDonor   []int // main donor of each recipient
	authID   uuid.UUID
	// milestones: big roadmap first, then the small one's
	msID          []uuid.UUID
	msRoadmap     []uuid.UUID
	msRegion      []int
	msActivity    []int
	byCell        map[[2]int][]int // (region, activity) → milestones of the big roadmap
	small         []int
	msAllocRep    []int64 // USD cents currently allocated
	grants        []*gGrant
	txns          []gtx
	allocs        [][]any
	items, stages [][]any
	donorRefs     []int
	invoices      map[int][3]any // recipient → last invoice (ref, amount, cur)
	lastTranche   [4]int64       // amount, day, cur, donor of the last first-tranche
	planted       map[string]int
	byID          map[uuid.UUID]*gGrant
	// rows to copy
	orgs, roadmaps, milestones, history, grantRows, balances, rateRows [][]any
	curCache                                                           *gGrant
}

func (g *generator) uuid() uuid.UUID {
	var u uuid.UUID
	a, b := g.r.Uint64(), g.r.Uint64()
	for i := range 8 {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (g *generator) chance(p float64) bool  { return g.r.Float64() < p }
func (g *generator) between(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

func genDayOf(t time.Time) int32  { return int32(t.Sub(genEpoch).Hours() / 24) }
func genDateOf(d int32) time.Time { return genEpoch.AddDate(0, 0, int(d)) }
func genMonthIdx(d int32) int {
	t := genDateOf(d)
	return (t.Year()-genMonth0.Year())*12 + int(t.Month()) - 1
}

// genDivRound is n/d rounded half to even (d > 0).
func genDivRound(n, d int64) int64 {
	neg := n < 0
	if neg {
		n = -n
	}
	q, r := n/d, n%d
	if 2*r > d || (2*r == d && q%2 == 1) {
		q++
	}
	if neg {
		return -q
	}
	return q
}

func genPow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// toUSD converts minor units of cur on a day to USD cents at the month's rate.
func (g *generator) toUSD(amount int64, cur uint8, day int32) int64 {
	c := genCurrencies[cur]
	return genDivRound(amount*100*10000, genPow10(c.minor)*g.rates[cur][genMonthIdx(day)])
}

// fromUSD converts USD cents to minor units of cur.
func (g *generator) fromUSD(cents int64, cur uint8, day int32) int64 {
	c := genCurrencies[cur]
	return genDivRound(cents*g.rates[cur][genMonthIdx(day)]*genPow10(c.minor), 100*10000)
}

// add appends an entry of grant gr in its agreement currency and moves its
// balances.
func (g *generator) add(gr *gGrant, typ uint8, amount int64, day int32, ref string, milestone uuid.UUID) *gtx {
	t := gtx{id: g.uuid(), grant: gr.id, typ: typ, bucket: typ, cur: gr.cur, amount: amount, agr: amount,
		rep: g.toUSD(amount, gr.cur, day), agrRate: g.one, repRate: g.rateDec[gr.cur][genMonthIdx(day)], day: day, ref: ref,
		milestone: milestone, implementer: typ == tReceipt || typ == tExpenditure}
	return g.push(gr, t)
}

func (g *generator) push(gr *gGrant, t gtx) *gtx {
	gr.bal[t.bucket] += t.agr
	gr.balRep[t.bucket] += t.rep
	g.txns = append(g.txns, t)
	return &g.txns[len(g.txns)-1]
}

// reverse appends the reversal of t on day.
func (g *generator) reverse(gr *gGrant, t gtx, day int32) {
	r := t
	r.id, r.typ, r.reverses, r.day, r.agr, r.rep, r.ref = g.uuid(), tReversal, t.id, day, -t.agr, -t.rep, ""
	g.push(gr, r)
}

// convertedCopy appends t entered again in USD, converted at the day's rate.
func (g *generator) convertedCopy(gr *gGrant, t gtx, day int32) {
	c := t
	rate4 := g.rates[gr.cur][genMonthIdx(day)]
	c.id, c.day, c.cur = g.uuid(), day, 0
	c.amount = g.toUSD(t.amount, gr.cur, day)
	c.rep, c.repRate = c.amount, g.one
	c.agr = genDivRound(c.amount*rate4*genPow10(genCurrencies[gr.cur].minor), 100*10000)
	c.agrRate = decimal.NewFromInt(10000).DivRound(decimal.NewFromInt(rate4), 12) // USD per agreement unit
	g.push(gr, c)
}

func genNoisy(ref string) string {
	return strings.NewReplacer("/", " ", "-", " ").Replace(strings.ToLower(ref))
}

func newGenerator(seed uint64) *generator {
	g := &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), one: decimal.NewFromInt(1),
		byCell: map[[2]int][]int{}, invoices: map[int][3]any{}, planted: map[string]int{}}
	for ci, c := range genCurrencies {
		g.rates = append(g.rates, make([]int64, genMonths))
		g.rateDec = append(g.rateDec, make([]decimal.Decimal, genMonths))
		drift := int64(0)
		for m := range genMonths {
			if ci > 0 {
				drift = max(-40, min(40, drift+int64(g.between(-8, 8))))
			}
			g.rates[ci][m] = c.base4 * (1000 + drift) / 1000
			g.rateDec[ci][m] = decimal.New(g.rates[ci][m], -4)
		}
	}
	return g
}

// generate loads a programme of about entries journal entries into db. With
// fast, foreign keys are not checked while copying (session_replication_role
// replica: the rows are consistent by construction, and TestGenerator loads
// with every check on); the load ends with VACUUM ANALYZE, as a database in
// service would be.
func generate(tb testing.TB, db *testdb.DB, entries int, seed uint64, fast bool) genResult {
	tb.Helper()
	ctx := context.Background()
	g := newGenerator(seed)
	res := g.plan(entries)
	orgs, roadmaps, milestones, history, grants, balances, rates := g.orgs, g.roadmaps, g.milestones, g.history, g.grantRows, g.balances, g.rateRows
	conn, err := db.Owner.Acquire(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Release()
	if fast {
		if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
			tb.Fatal(err)
		}
		defer conn.Exec(ctx, `RESET session_replication_role`) //nolint:errcheck // the connection goes back to a test's pool
	}
	copyRows := func(table string, cols []string, src pgx.CopyFromSource) {
		n, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{table}, cols, src)
		if err != nil {
			tb.Fatalf("copying %s: %v", table, err)
		}
		res.Rows[table] = int(n)
	}
	copyRows("organizations", []string{"id", "name", "kind", "iati_ref", "country"}, pgx.CopyFromRows(orgs))
	copyRows("roadmaps", []string{"id", "country", "title", "start_date", "end_date", "reporting_currency"}, pgx.CopyFromRows(roadmaps))
	copyRows("milestones", []string{"id", "roadmap_id", "code", "title", "activity_type", "region", "target_quantity", "target_unit",
		"due_date", "funding_requirement", "responsible_org_id", "status", "created_at"}, pgx.CopyFromRows(milestones))
	copyRows("milestone_status_history", []string{"id", "milestone_id", "status", "note", "recorded_by", "recorded_at"}, pgx.CopyFromRows(history))
	copyRows("grants", []string{"id", "roadmap_id", "donor_org_id", "recipient_org_id", "reference", "title", "currency", "start_date", "end_date"},
		pgx.CopyFromRows(grants))
	copyRows("grant_balances", []string{"grant_id", "pledged", "committed", "disbursed", "received", "spent", "allocated", "allocation_version",
		"pledged_reporting", "committed_reporting", "disbursed_reporting", "received_reporting", "spent_reporting"}, pgx.CopyFromRows(balances))
	copyRows("allocations", []string{"grant_id", "version", "milestone_id", "amount", "reporting_amount", "created_at"}, pgx.CopyFromRows(g.allocs))
	copyRows("fx_rates", []string{"currency", "quote_currency", "date", "rate", "source"}, pgx.CopyFromRows(rates))
	i := 0
	row := make([]any, 18)
	nullable := func(u uuid.UUID) any {
		if u == uuid.Nil {
			return nil
		}
		return u
	}
	copyRows("transactions", []string{"id", "grant_id", "type", "bucket", "amount", "currency", "agreement_amount", "reporting_amount",
		"agreement_rate", "reporting_rate", "value_date", "reference", "milestone_id", "reverses_id", "note", "recorded_by", "recorded_role", "recorded_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(g.txns) {
				return nil, nil
			}
			t := &g.txns[i]
			i++
			gr := genCurrencies[g.grantCur(t.grant)]
			role := "donor"
			if t.implementer {
				role = "implementer"
			}
			d := genDateOf(t.day)
			row[0], row[1], row[2], row[3] = t.id, t.grant, genTypes[t.typ], genTypes[t.bucket]
			row[4], row[5] = decimal.New(t.amount, -int32(genCurrencies[t.cur].minor)), genCurrencies[t.cur].code
			row[6], row[7] = decimal.New(t.agr, -int32(gr.minor)), decimal.New(t.rep, -2)
			row[8], row[9], row[10], row[11] = t.agrRate, t.repRate, d, t.ref
			row[12], row[13], row[14], row[15], row[16] = nullable(t.milestone), nullable(t.reverses), "", "gen", role
			row[17] = d.Add(time.Duration(26+i%8) * time.Hour)
			return row, nil
		}))
	copyRows("procurement_items", []string{"id", "grant_id", "milestone_id", "description", "category", "critical", "estimated_cost", "currency",
		"expected_delivery_date", "recorded_by"}, pgx.CopyFromRows(g.items))
	copyRows("procurement_stages", []string{"item_id", "seq", "stage", "entered_on", "recorded_by"}, pgx.CopyFromRows(g.stages))
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		tb.Fatal(err)
	}
	return res
}

// grantCur finds a grant's currency while copying (grants are few next to
// entries, and entries come grant by grant, so the last lookup is cached).
func (g *generator) grantCur(id uuid.UUID) uint8 {
	if g.curCache != nil && g.curCache.id == id {
		return g.curCache.cur
	}
	if g.byID == nil {
		g.byID = make(map[uuid.UUID]*gGrant, len(g.grants))
		for _, gr := range g.grants {
			g.byID[gr.id] = gr
		}
	}
	g.curCache = g.byID[id]
	return g.curCache.cur
}

// grant generates one grant with its allocations, journal and procurement.
func (g *generator) grant(res genResult, asOf int32) {
	gr := &gGrant{id: g.uuid(), roadmap: res.Roadmap, allocVer: 1}
	small := len(g.grants) < 20 // the second roadmap's grants
	if small {
		gr.roadmap = res.SmallRoadmap
	}
	gr.recipientIdx = g.r.IntN(len(g.recips))
	gr.donorIdx = g.rDonor[gr.recipientIdx]
	if g.chance(0.15) {
		gr.donorIdx = g.r.IntN(len(g.donors))
	}
	gr.donor, gr.recipient = g.donors[gr.donorIdx], g.recips[gr.recipientIdx]
	gr.cur = g.dCur[gr.donorIdx]
	if gr.cur != 0 && g.chance(0.1) {
		gr.cur = 0
	}
	g.donorRefs[gr.donorIdx]++
	gr.start = genEpoch.AddDate(0, 0, g.r.IntN(1000))
	gr.end = gr.start.AddDate(0, 0, g.between(365, 1095))
	gr.ref = fmt.Sprintf("D%02d-%d/%05d", gr.donorIdx, gr.start.Year(), g.donorRefs[gr.donorIdx])
	// One or two milestones of the recipient's province and one activity.
	if small {
		gr.ms = []int{g.small[g.r.IntN(len(g.small))]}
	} else {
		region := gr.recipientIdx % len(genRegions)
		cands := g.byCell[[2]int{region, g.r.IntN(len(genActivities))}]
		for len(cands) == 0 {
			cands = g.byCell[[2]int{g.r.IntN(len(genRegions)), g.r.IntN(len(genActivities))}]
		}
		gr.ms = []int{cands[g.r.IntN(len(cands))]}
		// A fifth of the grants fund a second milestone anywhere in the
		// roadmap (the same share at every size of programme).
		if g.chance(0.2) {
			if o := g.r.IntN(len(g.msID) - len(g.small)); o != gr.ms[0] {
				gr.ms = append(gr.ms, o)
			}
		}
	}
	g.grants = append(g.grants, gr)
	ms0 := g.msID[gr.ms[0]]
	minor := genCurrencies[gr.cur].minor
	unit := genPow10(minor) * 100 // amounts in hundreds

	start := genDayOf(gr.start)
	usd := int64(25_000*math.Pow(200, g.r.Float64())) * 100 // 25 000 to 5 000 000 USD, log-uniform
	pledged := g.fromUSD(usd, gr.cur, start) / unit * unit
	g.add(gr, tPledge, pledged, start, "", uuid.Nil)
	cday := start + int32(g.between(5, 45))
	g.add(gr, tCommitment, pledged, cday, gr.ref, uuid.Nil)
	committed := pledged
	if g.chance(0.08) {
		if d := cday + int32(g.between(60, 300)); d <= asOf {
			cut := -committed * int64(g.between(5, 20)) / 100 / unit * unit
			g.add(gr, tCommitment, cut, d, gr.ref+"/A1", uuid.Nil)
			committed += cut
		}
	}

	// Allocations: 90 % of the commitment, split over the milestones, set
	// after the commitment; a tenth of the grants re-allocate later.
	alloc := func(version int, day int32, shares []int64) {
		total := committed * 9 / 10
		var sum int64
		gr.allocRep = make([]int64, len(gr.ms))
		for k, m := range gr.ms {
			a := total * shares[k] / 100
			if a <= 0 {
				continue
			}
			rep := g.toUSD(a, gr.cur, day)
			g.allocs = append(g.allocs, []any{gr.id, version, g.msID[m], decimal.New(a, -int32(minor)), decimal.New(rep, -2),
				genDateOf(day).Add(10 * time.Hour)})
			sum, gr.allocRep[k] = sum+a, rep
		}
		gr.allocated, gr.allocVer = sum, version
	}
	split := []int64{100}
	if len(gr.ms) == 2 {
		split = []int64{60, 40}
	}
	aday := cday + int32(g.between(1, 20))
	alloc(1, aday, split)
	if len(gr.ms) == 2 && g.chance(0.5) {
		alloc(2, aday+int32(g.between(100, 300)), []int64{30, 70})
	}
	for k, m := range gr.ms {
		g.msAllocRep[m] += gr.allocRep[k] // what the milestone's requirement is built from
	}

	// Disbursement instalments: equal amounts, distinct references, 60–150
	// days apart; a receipt for most; expenditures against invoices.
	nt := g.between(1, 4)
	tranche := committed * 8 / 10 / int64(nt) / unit * unit
	interval := int32(g.between(60, 150))
	idle := g.chance(0.03)
	if idle {
		g.planted["IDLE_FUNDS"]++
	}
	for i := range nt {
		d := cday + 15 + int32(i)*interval
		if d > asOf || tranche <= 0 {
			break
		}
		ref := fmt.Sprintf("%s-T%d", gr.ref, i+1)
		amount := tranche
		if i == 0 && g.lastTranche[3] != int64(gr.donorIdx) && g.lastTranche[2] == int64(gr.cur) && g.lastTranche[0] <= amount &&
			int32(g.lastTranche[1]) >= start && int32(g.lastTranche[1]) <= asOf && g.chance(0.05) {
			// The same amount on the same day as another donor's payment: legitimate.
			amount, d = g.lastTranche[0], int32(g.lastTranche[1])
			g.planted["near miss: same amount and day, other donor"]++
		}
		if i == 0 {
			g.lastTranche = [4]int64{amount, int64(d), int64(gr.cur), int64(gr.donorIdx)}
		}
		t := *g.add(gr, tDisbursement, amount, d, ref, ms0)
		// A duplicate must leave room for the instalments still to come
		// (disbursed never exceeds committed), with a unit to spare for a
		// converted copy's rounding.
		room := func() bool { return gr.bal[tDisbursement]+amount+int64(nt-1-i)*tranche+unit <= committed }
		switch x := g.r.Float64(); {
		case x < 0.010 && room():
			g.add(gr, tDisbursement, amount, d+int32(g.between(0, 5)), genNoisy(ref), ms0)
			g.planted["DUPLICATE_TRANSACTION noisy reference"]++
		case x < 0.017 && room():
			g.add(gr, tDisbursement, amount, d, ref, ms0)
			g.planted["DUPLICATE_TRANSACTION entered twice"]++
		case x < 0.024 && gr.cur != 0 && room():
			g.convertedCopy(gr, t, d+int32(g.between(0, 3)))
			g.planted["DUPLICATE_TRANSACTION converted copy"]++
		case x < 0.029 && room():
			dup := *g.add(gr, tDisbursement, amount, d+1, ref, ms0)
			g.reverse(gr, dup, d+int32(g.between(2, 10)))
			g.planted["near miss: duplicate reversed"]++
		}
		var rday int32
		var received int64
		switch x := g.r.Float64(); {
		case x < 0.955:
			rday, received = d+int32(g.between(2, 20)), amount
		case x < 0.965:
			rday, received = d+int32(g.between(2, 20)), amount*95/100
			g.planted["RECEIPT_MISMATCH amount"]++
		default:
			if d+30 < asOf {
				g.planted["RECEIPT_MISMATCH no receipt"]++
			}
		}
		if received == 0 || rday > asOf {
			continue
		}
		g.add(gr, tReceipt, received, rday, ref, ms0)
		share := int64(g.between(50, 95))
		if idle {
			share = 5
		}
		nx := g.between(1, 2)
		for k := range nx {
			eday := rday + int32(g.between(10, 120))
			if idle {
				eday = rday + 5
			}
			if eday > asOf {
				break
			}
			spend := received * share / 100 / int64(nx)
			if spend <= 0 {
				break
			}
			inv := fmt.Sprintf("INV-%04d-%06d", gr.recipientIdx, len(g.txns))
			if last, ok := g.invoices[gr.recipientIdx]; ok && k == 0 && last[2].(uint8) == gr.cur && last[1].(int64) <= received && g.chance(0.01) {
				// The same invoice claimed against a second grant.
				inv, spend = last[0].(string), last[1].(int64)
				g.planted["DUPLICATE_EXPENDITURE"]++
			}
			e := *g.add(gr, tExpenditure, spend, eday, inv, ms0)
			g.invoices[gr.recipientIdx] = [3]any{inv, spend, gr.cur}
			if g.chance(0.01) && eday+3 <= asOf {
				// A wrong entry reversed and recorded again.
				g.reverse(gr, e, eday+3)
				g.add(gr, tExpenditure, spend*9/10, eday+3, inv, ms0)
			}
		}
	}
	if g.chance(0.003) {
		d := min(asOf, start+int32(g.between(30, 300)))
		g.add(gr, tReceipt, int64(g.between(1, 50))*unit*10, d, fmt.Sprintf("RCPT-%s", gr.ref), ms0)
		g.planted["RECEIPT_MISMATCH receipt without disbursement"]++
	}

	// Procurement for a quarter of the grants.
	if !g.chance(0.25) {
		return
	}
	for range g.between(1, 2) {
		it := genItems[g.r.IntN(len(genItems))]
		id := g.uuid()
		req := start + int32(g.between(0, 400))
		expected := genDateOf(req + int32(g.between(120, 360)))
		cost := g.fromUSD(int64(g.between(5, 500))*1000_00, gr.cur, start) / genPow10(minor) * genPow10(minor)
		if g.chance(0.03) {
			// Stuck in tender for months, past its delivery date.
			req = asOf - int32(g.between(200, 400))
			expected = genDateOf(req + int32(g.between(120, 180)))
			g.items = append(g.items, []any{id, gr.id, ms0, it.desc, it.category, g.chance(0.5), decimal.New(cost, -int32(minor)),
				genCurrencies[gr.cur].code, expected, "gen"})
			g.stages = append(g.stages, []any{id, 1, "REQUISITIONED", genDateOf(req), "gen"}, []any{id, 2, "TENDERED", genDateOf(req + 20), "gen"})
			g.planted["PROCUREMENT_STALLED"]++
			g.planted["PROCUREMENT_LATE"]++
			continue
		}
		critical := g.chance(0.3)
		g.items = append(g.items, []any{id, gr.id, ms0, it.desc, it.category, critical, decimal.New(cost, -int32(minor)),
			genCurrencies[gr.cur].code, expected, "gen"})
		stages := []string{"TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED", "ACCEPTED"}
		limits := map[string]int{"REQUISITIONED": 30, "TENDERED": 60, "EVALUATED": 30, "AWARDED": 30, "CONTRACTED": 120, "DELIVERED": 30}
		cur, day, seq := "REQUISITIONED", req, 1
		g.stages = append(g.stages, []any{id, seq, cur, genDateOf(day), "gen"})
		stalled := false
		for _, next := range stages {
			if next == "EVALUATED" && g.chance(0.3) {
				continue
			}
			lim := limits[cur]
			dwell := lim * g.between(20, 95) / 100
			if g.chance(0.06) {
				dwell = lim * g.between(110, 300) / 100
			}
			if g.chance(0.02) {
				next = "CANCELLED"
			}
			nd := day + int32(dwell)
			if nd > asOf {
				stalled = asOf-day > int32(lim)
				break
			}
			cur, day, seq = next, nd, seq+1
			g.stages = append(g.stages, []any{id, seq, cur, genDateOf(day), "gen"})
			if cur == "CANCELLED" {
				break
			}
		}
		if stalled {
			g.planted["PROCUREMENT_STALLED"]++
		}
		if expected.Before(genAsOf) && req <= asOf && cur != "DELIVERED" && cur != "ACCEPTED" && cur != "CANCELLED" {
			g.planted["PROCUREMENT_LATE"]++
		}
	}
}

// The generator's programme obeys the schema with every check on (foreign
// keys included), its balances replay from its journal, its conversions
// agree with its rates, and the same seed gives the same programme.
func TestGenerator(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	res := generate(t, db, 4000, 7, false)
	if n := res.Rows["transactions"]; n < 4000 || n > 4100 {
		t.Errorf("%d entries, want about 4000", n)
	}
	ctx := context.Background()
	checks := map[string]string{
		"balances that do not replay the journal": `
			SELECT count(*) FROM grant_balances b JOIN (
			  SELECT grant_id,
			    coalesce(sum(agreement_amount) FILTER (WHERE bucket = 'PLEDGE'), 0) AS p,
			    coalesce(sum(agreement_amount) FILTER (WHERE bucket = 'COMMITMENT'), 0) AS c,
			    coalesce(sum(agreement_amount) FILTER (WHERE bucket = 'DISBURSEMENT'), 0) AS d,
			    coalesce(sum(agreement_amount) FILTER (WHERE bucket = 'RECEIPT'), 0) AS r,
			    coalesce(sum(agreement_amount) FILTER (WHERE bucket = 'EXPENDITURE'), 0) AS s,
			    coalesce(sum(reporting_amount) FILTER (WHERE bucket = 'DISBURSEMENT'), 0) AS dr
			  FROM transactions GROUP BY grant_id) j ON j.grant_id = b.grant_id
			WHERE (b.pledged, b.committed, b.disbursed, b.received, b.spent, b.disbursed_reporting) <> (j.p, j.c, j.d, j.r, j.s, j.dr)`,
		"grants without a balance": `SELECT count(*) FROM grants g WHERE NOT EXISTS (SELECT FROM grant_balances b WHERE b.grant_id = g.id)`,
		"allocated not the current set": `
			SELECT count(*) FROM grant_balances b WHERE b.allocated <>
			  (SELECT coalesce(sum(amount), 0) FROM allocations a WHERE a.grant_id = b.grant_id AND a.version = b.allocation_version)`,
		"entries whose conversion disagrees with their rates": `
			SELECT count(*) FROM transactions t JOIN grants g ON g.id = t.grant_id WHERE t.type <> 'REVERSAL' AND (
			  abs(t.reporting_amount - t.amount / t.reporting_rate) > 0.0051
			  OR abs(t.agreement_amount - t.amount / t.agreement_rate) > CASE g.currency WHEN 'JPY' THEN 0.51 ELSE 0.0051 END)`,
		"allocations in another roadmap": `
			SELECT count(*) FROM allocations a JOIN grants g ON g.id = a.grant_id JOIN milestones m ON m.id = a.milestone_id
			WHERE m.roadmap_id <> g.roadmap_id`,
		"stage histories out of order": `
			SELECT count(*) FROM procurement_stages a JOIN procurement_stages b ON b.item_id = a.item_id AND b.seq = a.seq + 1
			WHERE b.entered_on < a.entered_on`,
	}
	for what, sql := range checks {
		var n int
		if err := db.Owner.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, what)
		}
	}
	var kinds int
	if err := db.Owner.QueryRow(ctx, `SELECT count(DISTINCT type) FROM transactions`).Scan(&kinds); err != nil || kinds != 6 {
		t.Errorf("%d entry types (%v), want all 6", kinds, err)
	}
	s, err := loadScope(ctx, db.App, res.Roadmap, genAsOf, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range procurementRules {
		fs, err := r.find(ctx, db.App, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 0 {
			t.Errorf("the programme has no %s", r.kind)
		}
	}

	a, b := newGenerator(42), newGenerator(42)
	a.plan(2000)
	b.plan(2000)
	if len(a.txns) != len(b.txns) || len(a.items) != len(b.items) {
		t.Fatalf("same seed, %d and %d entries", len(a.txns), len(b.txns))
	}
	for i := range a.txns {
		x, y := a.txns[i], b.txns[i]
		if x.id != y.id || x.amount != y.amount || x.day != y.day || x.ref != y.ref {
			t.Fatalf("same seed, entry %d differs: %+v and %+v", i, x, y)
		}
	}
}

// plan builds the programme in memory: the rows of every table but the
// journal, which stays compact in g.txns until it is copied.
func (g *generator) plan(entries int) genResult {
	res := genResult{Roadmap: g.uuid(), SmallRoadmap: g.uuid(), Rows: map[string]int{}, Planted: g.planted}
	nGrants := max(100, entries/10)
	nDonors, nRecips, nMs := 40, max(20, nGrants/10), max(50, nGrants/50)

	g.authID = g.uuid()
	g.orgs = append(g.orgs, []any{g.authID, "Mine Action Coordination Centre", "NATIONAL_AUTHORITY", "", "AFG"})
	weightSum := 0.0
	for i := range nDonors {
		id := g.uuid()
		g.donors = append(g.donors, id)
		w := 1 / float64(i+1)
		weightSum += w
		g.dWeights = append(g.dWeights, weightSum)
		g.dCur = append(g.dCur, uint8(i%len(genCurrencies)))
		g.orgs = append(g.orgs, []any{id, fmt.Sprintf("Donor %02d", i), "DONOR", fmt.Sprintf("XM-GEN-%02d", i), ""})
	}
	g.donorRefs = make([]int, nDonors)
	pickDonor := func() int {
		x := g.r.Float64() * weightSum
		for i, w := range g.dWeights {
			if x < w {
				return i
			}
		}
		return nDonors - 1
	}
	for i := range nRecips {
		id := g.uuid()
		g.recips = append(g.recips, id)
		g.rDonor = append(g.rDonor, pickDonor())
		g.orgs = append(g.orgs, []any{id, fmt.Sprintf("Demining partner %04d", i), "IMPLEMENTER", "", "AFG"})
	}
	g.roadmaps = append(g.roadmaps,
		[]any{res.Roadmap, "AFG", "National Mine Action Strategy 2023-2027", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC), "USD"},
		[]any{res.SmallRoadmap, "TJK", "Residual contamination plan", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), "USD"})
	addMs := func(rm uuid.UUID, region, activity int) {
		k := len(g.msID)
		g.msID, g.msRoadmap = append(g.msID, g.uuid()), append(g.msRoadmap, rm)
		g.msRegion, g.msActivity = append(g.msRegion, region), append(g.msActivity, activity)
		g.msAllocRep = append(g.msAllocRep, 0)
		if rm == res.Roadmap {
			cell := [2]int{region, activity}
			g.byCell[cell] = append(g.byCell[cell], k)
		} else {
			g.small = append(g.small, k)
		}
	}
	for k := range nMs {
		addMs(res.Roadmap, k%len(genRegions), (k/len(genRegions))%len(genActivities))
	}
	for k := range 8 {
		addMs(res.SmallRoadmap, k%len(genRegions), k%len(genActivities))
	}

	// Grants and their journals, until the journal holds the entries asked for.
	asOf := genDayOf(genAsOf)
	for len(g.txns) < entries {
		g.grant(res, asOf)
	}

	// Milestones, now that their allocations are known: most are funded to
	// within a few per cent of their requirement, some have a gap, a few
	// are over-funded (allocations above the requirement).
	for k, id := range g.msID {
		due := genEpoch.AddDate(1, 0, g.r.IntN(4*365))
		alloc := g.msAllocRep[k]
		// One milestone in 17 is due within the next 90 days and under-funded.
		soon := k%17 == 3
		if soon {
			due = genAsOf.AddDate(0, 0, g.between(1, 90))
		}
		var req int64
		switch x := g.r.Float64(); {
		case soon:
			req = max(alloc, 100_000_00) * int64(g.between(130, 200)) / 100
			g.planted["MILESTONE_AT_RISK gap"]++
		case alloc == 0:
			req = int64(g.between(100, 2000)) * 100000_00
		case x < 0.02:
			req = alloc * 85 / 100
			g.planted["OVERFUNDED_MILESTONE"]++
		case x < 0.14:
			req = alloc * int64(g.between(130, 200)) / 100
			g.planted["MILESTONE_AT_RISK gap"]++
		default:
			req = alloc * int64(g.between(100, 108)) / 100
		}
		status := "PLANNED"
		var changed time.Time
		switch {
		case due.Before(genAsOf) && g.chance(0.85):
			status, changed = "COMPLETED", due.AddDate(0, 0, g.between(-20, 10))
		case g.chance(0.5):
			status, changed = "IN_PROGRESS", genEpoch.AddDate(0, 0, g.r.IntN(365))
		}
		if status != "PLANNED" {
			g.history = append(g.history, []any{g.uuid(), id, status, "", "gen", changed.Add(11 * time.Hour)})
		}
		code := fmt.Sprintf("M-%d.%d", g.msActivity[k]+1, k+1)
		act := strings.ToLower(strings.ReplaceAll(genActivities[g.msActivity[k]], "_", " "))
		title := fmt.Sprintf("%s%s in province AF-%s", strings.ToUpper(act[:1]), act[1:], genRegions[g.msRegion[k]])
		g.milestones = append(g.milestones, []any{id, g.msRoadmap[k], code, title, genActivities[g.msActivity[k]],
			"AF-" + genRegions[g.msRegion[k]], decimal.NewFromInt(int64(g.between(1, 500)) * 10000), "m2", due,
			decimal.New(req, -2), g.authID, status, genEpoch.Add(8 * time.Hour)})
	}
	for _, gr := range g.grants {
		c := genCurrencies[gr.cur]
		g.grantRows = append(g.grantRows, []any{gr.id, gr.roadmap, gr.donor, gr.recipient, gr.ref, "Mine action grant " + gr.ref, c.code, gr.start, gr.end})
		row := []any{gr.id}
		for _, b := range []int{tPledge, tCommitment, tDisbursement, tReceipt, tExpenditure} {
			row = append(row, decimal.New(gr.bal[b], -int32(c.minor)))
		}
		row = append(row, decimal.New(gr.allocated, -int32(c.minor)), gr.allocVer)
		for _, b := range []int{tPledge, tCommitment, tDisbursement, tReceipt, tExpenditure} {
			row = append(row, decimal.New(gr.balRep[b], -2))
		}
		g.balances = append(g.balances, row)
	}
	for ci, c := range genCurrencies[1:] {
		for m := range genMonths {
			g.rateRows = append(g.rateRows, []any{c.code, "USD", genMonth0.AddDate(0, m, 0), g.rateDec[ci+1][m], "generator"})
		}
	}

	return res
}
