package fts

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
)

var pageNames = []string{
	"testdata/afghanistan-2020-page-1.json",
	"testdata/afghanistan-2020-page-2.json",
	"testdata/afghanistan-2020-page-3.json",
}

var (
	realOnce  sync.Once
	realFiles []File
	realErr   error
)

func readReal(t *testing.T) []File {
	t.Helper()
	realOnce.Do(func() {
		for _, n := range pageNames {
			b, err := os.ReadFile(n)
			if err != nil {
				realErr = err
				return
			}
			realFiles = append(realFiles, File{Name: n, Data: b})
		}
	})
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realFiles
}

func parseReal(t *testing.T) (*Import, []Classification) {
	t.Helper()
	imp, err := Parse(readReal(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := imp.Err(); err != nil {
		t.Fatalf("real pages have problems: %v", err)
	}
	return imp, Classify(imp.Flows)
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestRealPagesReproduceSourceTotals(t *testing.T) {
	t.Parallel()
	imp, cls := parseReal(t)
	if len(imp.Flows) != 484 || imp.Source.MetaCount != 484 {
		t.Fatalf("flows %d, meta.count %d; want 484", len(imp.Flows), imp.Source.MetaCount)
	}
	if len(imp.Notes) != 0 {
		t.Errorf("notes on the real pages: %v", imp.Notes)
	}
	tot := ComputeTotals(imp.Flows, cls)
	if err := tot.Check(imp.Source); err != nil {
		t.Fatal(err)
	}
	// The source's own figure, read from the file, and the figure itself.
	if !imp.Source.IncomingFundingTotal.Equal(dec("725591299")) {
		t.Fatalf("data.incoming.fundingTotal read as %s", imp.Source.IncomingFundingTotal)
	}
	tests := []struct {
		name string
		got  decimal.Decimal
		want string
	}{
		{"funding", tot.FundingUSD, "725591299"},
		{"pledge", tot.PledgeUSD, "0"},
		{"paid", tot.ByStatus["paid"], "428966359"},
		{"commitment", tot.ByStatus["commitment"], "296624940"},
		{"not counted: internal", tot.NotCountedUSD[ReasonInternal], "71958119"},
		{"not counted: shared", tot.NotCountedUSD[ReasonShared], "28526312"},
		{"USD-denominated (reported or inferred)", tot.ByCurrency["USD"], "405706259"},
		{"EUR in EUR", tot.ByCurrency["EUR"], "116987789"},
		{"EUR in USD", tot.ByCurrencyUSD["EUR"], "131944116"},
		{"JPY in JPY", tot.ByCurrency["JPY"], "203394391"},
		{"KWD in KWD", tot.ByCurrency["KWD"], "130237"},
	}
	for _, tc := range tests {
		if !tc.got.Equal(dec(tc.want)) {
			t.Errorf("%s: %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	if tot.CountedFlows != 311 || tot.IncomingFlows != 328 || tot.InternalFlows != 156 {
		t.Errorf("counted %d incoming %d internal %d; want 311 328 156", tot.CountedFlows, tot.IncomingFlows, tot.InternalFlows)
	}
	var sumUSD decimal.Decimal
	for _, v := range tot.ByCurrencyUSD {
		sumUSD = sumUSD.Add(v)
	}
	if !sumUSD.Equal(tot.FundingUSD) {
		t.Errorf("per-currency USD sums to %s, funding %s", sumUSD, tot.FundingUSD)
	}
}

// TestNaiveTotalsDoNotMatch shows why the rule is needed: summing every
// incoming flow (shared ones included) or everything misses the source's
// figure, so Check must refuse it.
func TestNaiveTotalsDoNotMatch(t *testing.T) {
	t.Parallel()
	imp, cls := parseReal(t)
	tests := []struct {
		name   string
		modify func(c *Classification, f *Flow)
	}{
		{"count shared flows", func(c *Classification, f *Flow) {
			if f.OnBoundary == OnBoundaryShared && f.Boundary == BoundaryIncoming {
				c.Counted = true
			}
		}},
		{"count internal flows", func(c *Classification, f *Flow) {
			if f.Boundary == BoundaryInternal {
				c.Counted = true
			}
		}},
		{"drop parked parents", func(c *Classification, f *Flow) {
			if f.IsParkedParent() {
				c.Counted = false
			}
		}},
		{"paid only", func(c *Classification, f *Flow) {
			if f.Status != "paid" {
				c.Counted = false
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c2 := append([]Classification(nil), cls...)
			for i := range c2 {
				tc.modify(&c2[i], &imp.Flows[i])
			}
			if err := ComputeTotals(imp.Flows, c2).Check(imp.Source); err == nil {
				t.Fatal("a wrong counting rule matched the source total")
			}
		})
	}
}

func TestRealFlowFields(t *testing.T) {
	t.Parallel()
	imp, _ := parseReal(t)
	f := imp.Flow("158080")
	if f == nil {
		t.Fatal("flow 158080 missing")
	}
	checks := []struct {
		name, got, want string
	}{
		{"amountUSD", f.AmountUSD.String(), "118868"},
		{"original", f.OriginalAmount.String() + " " + f.OriginalCurrency, "119700 CHF"},
		{"agreement amount", f.Amount.String() + " " + f.Currency, "119700 CHF"},
		{"rate", f.ExchangeRateSource, "1.007"},
		{"computed", f.ComputedUSD.String(), "118867.92"},
		{"status", f.Status + " " + f.EntryType, "commitment COMMITMENT"},
		{"flowType", f.FlowType, "Standard"},
		{"date", f.Date, "2016-03-31"},
		{"decisionDate", f.DecisionDate, ""},
		{"refCode", f.RefCode, "Z7H314300002"},
		{"boundary", f.Boundary + " " + f.OnBoundary, "incoming single"},
		{"donor", f.Source.Organizations[0].ID + " " + f.Source.Organizations[0].Name, "2924 Switzerland, Government of"},
		{"recipient", f.Destination.Organizations[0].Name, "World Food Programme"},
		{"destination global cluster", f.Destination.GlobalClusters[0].Name, "Coordination and support services"},
		{"destination location", f.Destination.Locations[0].ID, "1"},
		{"usage year", f.Destination.UsageYears[0].Name, "2020"},
		{"provenance", fmt.Sprintf("%s %d %d %s %d", f.Provenance.SourceKind, f.Provenance.Page, f.Provenance.Position, f.Provenance.FlowID, f.Provenance.Version), "fts 1 0 158080 1"},
		{"inferred", strings.Join(f.Inferred, ","), ""},
		{"contribution", fmt.Sprintf("%s %v", f.ContributionType, f.NewMoney), "financial true"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("158080 %s: %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(f.Provenance.FileSHA256) != 64 || f.Provenance.FileSHA256 != imp.Pages[0].SHA256 {
		t.Errorf("provenance sha %q", f.Provenance.FileSHA256)
	}

	// No original currency: amountUSD in USD, inferred.
	nc := imp.Flow("207188")
	if nc.Currency != "USD" || !nc.Amount.Equal(dec("24654545")) || strings.Join(nc.Inferred, ",") != "amount,currency" || nc.HasComputed {
		t.Errorf("207188: %s %s inferred %v computed %v", nc.Amount, nc.Currency, nc.Inferred, nc.HasComputed)
	}
	// A currency without an amount: noted, USD inferred.
	jp := imp.Flow("207176")
	if jp.Currency != "USD" || jp.OriginalCurrency != "JPY" || len(jp.Notes) != 1 || !strings.Contains(jp.Notes[0], "JPY") {
		t.Errorf("207176: %s, original %q, notes %v", jp.Currency, jp.OriginalCurrency, jp.Notes)
	}
	// Parked parent and child.
	p := imp.Flow("220524")
	c := imp.Flow("223269")
	if !p.IsParkedParent() || len(p.ChildFlowIDs) != 1 || p.ChildFlowIDs[0] != "223269" || c.ParentFlowID != "220524" {
		t.Errorf("220524/223269 parent/child not read: %v %q", p.ChildFlowIDs, c.ParentFlowID)
	}
	if e := imp.Flow("204322"); len(e.ChildFlowIDs) != 16 || e.Version != 4 {
		t.Errorf("204322: %d children, version %d", len(e.ChildFlowIDs), e.Version)
	}
	if p3 := imp.Flow("228316"); p3 == nil || p3.Provenance.Page != 3 {
		t.Errorf("228316 not on page 3: %+v", p3)
	}
	currencies := map[string]bool{}
	for _, f := range imp.Flows {
		if f.OriginalCurrency != "" {
			currencies[f.OriginalCurrency] = true
		}
		if len(f.Rounded) != 0 {
			t.Errorf("flow %s rounded %v: the real pages carry whole amounts", f.ID, f.Rounded)
		}
	}
	if len(currencies) != 13 {
		t.Errorf("%d original currencies, want 13 (and flows with none): %v", len(currencies), currencies)
	}
}

func TestRealVariances(t *testing.T) {
	t.Parallel()
	imp, _ := parseReal(t)
	want := map[string][2]string{
		"183693": {"98693", "98694.32"},
		"196042": {"239311", "239312.43"},
		"206445": {"829876", "829101.46"},
		"207053": {"564480", "564461.50"},
		"211411": {"5905469", "5905471.73"},
		"224942": {"300000", "299951.61"},
		"224943": {"20000", "19996.78"},
		"224944": {"100000", "99983.90"},
	}
	got := Variances(imp.Flows)
	if len(got) != len(want) {
		t.Errorf("%d variances, want %d", len(got), len(want))
	}
	for _, v := range got {
		w, ok := want[v.FlowID]
		if !ok {
			t.Errorf("unexpected variance on flow %s", v.FlowID)
			continue
		}
		if !v.ReportedUSD.Equal(dec(w[0])) || !v.ComputedUSD.Equal(dec(w[1])) || !v.Difference.Equal(dec(w[0]).Sub(dec(w[1]))) {
			t.Errorf("flow %s: reported %s computed %s diff %s, want %s %s", v.FlowID, v.ReportedUSD, v.ComputedUSD, v.Difference, w[0], w[1])
		}
	}
}

func TestRealClassification(t *testing.T) {
	t.Parallel()
	imp, cls := parseReal(t)
	byID := map[string]Classification{}
	for _, c := range cls {
		byID[c.FlowID] = c
	}
	tests := []struct {
		id        string
		counted   bool
		reason    string
		donor     string
		recipient string
	}{
		{"158080", true, ReasonIncoming, "2924", "3049"},
		{"207188", false, ReasonShared, "4537", "4393"},      // Japan → IFRC, six countries
		{"199443", false, ReasonShared, "3776", "2849"},      // Denmark → Save the Children, 2018–2020
		{"220524", true, ReasonParkedParent, "2917", "8417"}, // UK parked, 23M GBP left
		{"223269", true, ReasonParkedChild, "2917", "8417"},  // its 7M GBP child
		{"209791", false, ReasonInternal, "8148", "3049"},    // AHF → WFP
		{"204322", true, ReasonParkedParent, "8523", ""},     // ECHO parked, no recipient yet
		{"206799", true, ReasonParkedChild, "8523", "3244"},  // ECHO child → INTERSOS
		{"208195", true, ReasonIncoming, "", "2915"},         // no source organisation
		{"213244", true, ReasonIncoming, "2933", ""},         // no destination organisation
		{"197203", true, ReasonParkedChild, "2917", "2886"},  // child of a shared parked parent of 0
		{"217644", true, ReasonIncoming, "2921", "744"},      // Sweden → OXFAM
		{"217643", false, ReasonInternal, "4399", "744"},     // FAO → OXFAM, same refCode
		{"213408", false, ReasonInternal, "8148", "3049"},    // child of internal parked parent
		{"210862", false, ReasonInternal, "8148", ""},        // internal parked parent
		{"224942", true, ReasonParkedChild, "4849", "2715"},  // parent not in this response
		{"214923", true, ReasonParkedParent, "8523", ""},     // second ECHO parked allocation
		{"207326", true, ReasonParkedChild, "8523", "4398"},  // its child → WHO
		{"221955", false, ReasonInternal, "8148", "2304"},    // same-amount pair
		{"221956", false, ReasonInternal, "8148", "2304"},    //
		{"203130", true, ReasonParkedChild, "8523", "2849"},  // parent 184876 not in the response
	}
	for _, tc := range tests {
		c, ok := byID[tc.id]
		if !ok {
			t.Errorf("flow %s not classified", tc.id)
			continue
		}
		if c.Counted != tc.counted || c.Reason != tc.reason {
			t.Errorf("flow %s: counted %v (%s), want %v (%s)", tc.id, c.Counted, c.Reason, tc.counted, tc.reason)
		}
		if c.Donor.ID != tc.donor {
			t.Errorf("flow %s: donor %q, want %q", tc.id, c.Donor.ID, tc.donor)
		}
		if c.Recipient.ID != tc.recipient {
			t.Errorf("flow %s: recipient %q, want %q", tc.id, c.Recipient.ID, tc.recipient)
		}
	}
	// Parked parents hold only what was not split off: a parent's
	// amountUSD can be below its own children's, which it could not be if
	// it still held them (so counting both is not double counting).
	for _, id := range []string{"214923", "208329", "210862"} {
		p := imp.Flow(id)
		var kids decimal.Decimal
		for _, k := range p.ChildFlowIDs {
			if c := imp.Flow(k); c != nil {
				kids = kids.Add(c.AmountUSD)
			}
		}
		if !p.AmountUSD.LessThan(kids) {
			t.Errorf("parked %s: %s not below its children's %s", id, p.AmountUSD, kids)
		}
	}
}

func TestRealGrants(t *testing.T) {
	t.Parallel()
	imp, cls := parseReal(t)
	grants := Grants(imp.Flows, cls)
	refs := map[string]string{}
	inGrant := map[string]GrantKey{}
	for _, g := range grants {
		k := g.Key.DonorOrg + " " + g.Reference
		if prev, dup := refs[k]; dup {
			t.Errorf("reference %s used twice for donor %s (%s, %s)", g.Reference, g.Key.DonorOrg, prev, g.Key)
		}
		refs[k] = g.Key.String()
		for _, id := range g.FlowIDs {
			inGrant[id] = g.Key
		}
	}
	if len(inGrant) != len(imp.Flows) {
		t.Errorf("%d flows in grants, want %d", len(inGrant), len(imp.Flows))
	}
	tests := []struct {
		a, b string
		same bool
	}{
		{"220524", "223269", true},  // UK parked parent and child, both to UN Agencies
		{"207204", "208193", true},  // Japan parked → WFP children
		{"206799", "214537", true},  // ECHO children of 204322 to the same NGO
		{"206799", "207306", false}, // ECHO children of 204322 to different NGOs
		{"216104", "225884", false}, // same refCode, separate flows: separate FTS agreements
	}
	for _, tc := range tests {
		if (inGrant[tc.a] == inGrant[tc.b]) != tc.same {
			t.Errorf("flows %s and %s: grants %s and %s, want same=%v", tc.a, tc.b, inGrant[tc.a], inGrant[tc.b], tc.same)
		}
	}
	if k := inGrant["223269"]; k.String() != "fts:220524:2917>8417" {
		t.Errorf("grant key %s", k)
	}
}

func TestRealRepeatedRefCodes(t *testing.T) {
	t.Parallel()
	imp, cls := parseReal(t)
	groups := RepeatedRefCodes(imp.Flows, cls)
	if len(groups) != 61 {
		t.Errorf("%d repeated refCodes, want 61", len(groups))
	}
	kinds := map[string]int{}
	byCode := map[string]RefCodeGroup{}
	for _, g := range groups {
		kinds[g.Kind]++
		byCode[g.RefCode] = g
		// A parked parent and its child must never be the evidence of a
		// possible duplicate.
		if g.Kind == RefSameAmount {
			for _, id := range g.FlowIDs {
				if imp.Flow(id).IsParkedParent() {
					t.Errorf("%s: parked parent %s in a same-amount group", g.RefCode, id)
				}
			}
		}
	}
	want := map[string]int{RefParentChild: 21, RefParkedSiblings: 5, RefSplit: 27, RefSameAmount: 2, RefOtherParties: 6}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d groups, want %d (all: %v)", k, kinds[k], n, kinds)
		}
	}
	tests := []struct{ code, kind string }{
		{"300420-102", RefParentChild},
		{"SM200042", RefParentChild},
		{"AFG-20/3481/RA2/CCS/UN/15748", RefParentChild},
		{"ECHO/-AS/BUD/2020/91000", RefParkedSiblings},
		{"ECHO/-AS/BUD/2019/91021", RefParkedSiblings},
		{"AFG-20/3481/RA5/CPiE-GBV/INGO/17232", RefSameAmount},
		{"AFG-20/3481/RA3/GBV-CPiE/INGO/16102", RefSameAmount},
		{"QZA-20/0075-5", RefSplit},
		{"A-06288", RefOtherParties},
	}
	for _, tc := range tests {
		if g := byCode[tc.code]; g.Kind != tc.kind {
			t.Errorf("%s: %q (%s), want %q", tc.code, g.Kind, g.Why, tc.kind)
		}
	}
	if g := byCode["AFG-20/3481/RA5/CPiE-GBV/INGO/17232"]; !strings.Contains(g.Why, "249993") || !strings.Contains(g.Why, "221955, 221956") {
		t.Errorf("same-amount evidence: %s", g.Why)
	}
	codes := make([]string, 0, len(groups))
	for _, g := range groups {
		codes = append(codes, g.RefCode)
	}
	if !sort.StringsAreSorted(codes) {
		t.Error("groups not sorted by refCode")
	}
}

func TestPagesConcatenate(t *testing.T) {
	t.Parallel()
	real := readReal(t)
	// The same page twice: its flows are kept once.
	imp, err := Parse(real[0], real[1], real[2], real[2])
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Flows) != 484 || len(imp.Notes) != 84 {
		t.Errorf("flows %d notes %d, want 484 and 84", len(imp.Flows), len(imp.Notes))
	}
	// A page missing: counts no longer match.
	imp2, err := Parse(real[0], real[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(imp2.Notes) != 1 || !strings.Contains(imp2.Notes[0], "meta.count is 484 but the pages hold 400 distinct flows") {
		t.Errorf("notes %v", imp2.Notes)
	}
	if err := ComputeTotals(imp2.Flows, Classify(imp2.Flows)).Check(imp2.Source); err == nil {
		t.Error("two pages of three matched the source total")
	}
	// A flow repeated with different content.
	changed := strings.Replace(string(real[2].Data), `"amountUSD": 184013`, `"amountUSD": 184014`, 1)
	if changed == string(real[2].Data) {
		t.Fatal("fixture edit did not apply")
	}
	_, err = Parse(real[2], File{Name: "changed.json", Data: []byte(changed)})
	if err == nil || !strings.Contains(err.Error(), "flow 228315: on page 1") || !strings.Contains(err.Error(), "different content") {
		t.Errorf("conflicting repeat: %v", err)
	}
	// A page of another response.
	other := strings.Replace(string(real[1].Data), `"fundingTotal": 725591299`, `"fundingTotal": 1`, -1)
	_, err = Parse(real[0], File{Name: "other.json", Data: []byte(other)})
	if err == nil || !strings.Contains(err.Error(), "not a page of the same response") {
		t.Errorf("mixed responses: %v", err)
	}
	if _, err := Parse(); err == nil {
		t.Error("no pages accepted")
	}
}

func TestRealReport(t *testing.T) {
	t.Parallel()
	imp, _ := parseReal(t)
	r := Analyse(imp)
	if !r.TotalsMatch || r.TotalsError != "" {
		t.Fatalf("totals: %s", r.TotalsError)
	}
	if len(r.Files) != 3 || r.Files[2].Flows != 84 || r.Flows != 484 {
		t.Errorf("files %+v flows %d", r.Files, r.Flows)
	}
	if len(r.Variances) != 8 || len(r.RepeatedRefs) != 61 || len(r.Rounded) != 0 || len(r.Problems) != 0 {
		t.Errorf("variances %d refs %d rounded %d problems %d", len(r.Variances), len(r.RepeatedRefs), len(r.Rounded), len(r.Problems))
	}
	// 284 flows have no original currency, one more has a currency but no amount.
	if len(r.Inferred) != 285 {
		t.Errorf("%d flows with inferred fields, want 285", len(r.Inferred))
	}
	if len(r.Notes) != 1 || !strings.HasPrefix(r.Notes[0], "flow 207176: ") {
		t.Errorf("notes %v", r.Notes)
	}
	if len(r.Classes) != len(imp.Flows) {
		t.Errorf("classes %d", len(r.Classes))
	}
}

// BenchmarkParseRealPages parses and analyses the three real pages (484 flows).
func BenchmarkParseRealPages(b *testing.B) {
	var files []File
	for _, n := range pageNames {
		d, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, File{Name: n, Data: d})
	}
	b.ReportAllocs()
	for b.Loop() {
		imp, err := Parse(files...)
		if err != nil {
			b.Fatal(err)
		}
		if r := Analyse(imp); !r.TotalsMatch {
			b.Fatal(r.TotalsError)
		}
	}
	b.ReportMetric(float64(484*b.N)/b.Elapsed().Seconds(), "flows/s")
}
