package iati

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func parseFile(t *testing.T, name string) *File {
	t.Helper()
	fh, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f, err := Parse(fh)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// scanTotals computes the per type and currency totals of an IATI file with
// regular expressions, independently of the parser: each activity's
// @default-currency, each transaction's first transaction-type and value.
func scanTotals(t *testing.T, src string) map[string]decimal.Decimal {
	t.Helper()
	letters := map[string]string{"IF": "1", "C": "2", "D": "3", "E": "4"}
	actRe := regexp.MustCompile(`(?s)<iati-activity[\s>].*?</iati-activity>`)
	defRe := regexp.MustCompile(`^<iati-activity[^>]*\sdefault-currency="([A-Z]{3})"`)
	txRe := regexp.MustCompile(`(?s)<transaction[\s>].*?</transaction>`)
	typeRe := regexp.MustCompile(`<transaction-type[^>]*\scode="([^"]+)"`)
	valRe := regexp.MustCompile(`(?s)<value([^>]*)>([^<]*)</value>`)
	curRe := regexp.MustCompile(`\scurrency="([A-Z]{3})"`)
	out := map[string]decimal.Decimal{}
	for _, act := range actRe.FindAllString(src, -1) {
		def := ""
		if m := defRe.FindStringSubmatch(act); m != nil {
			def = m[1]
		}
		for _, tx := range txRe.FindAllString(act, -1) {
			code := typeRe.FindStringSubmatch(tx)[1]
			if l, ok := letters[code]; ok {
				code = l
			}
			v := valRe.FindStringSubmatch(tx)
			cur := def
			if m := curRe.FindStringSubmatch(v[1]); m != nil {
				cur = m[1]
			}
			d, err := decimal.NewFromString(strings.TrimSpace(v[2]))
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			out[code+" "+cur] = out[code+" "+cur].Add(d.RoundBank(2)) // all currencies here have 2 minor units
		}
	}
	return out
}

func totalsMap(ts []Total) map[string]decimal.Decimal {
	m := map[string]decimal.Decimal{}
	for _, x := range ts {
		m[itoa(x.Type)+" "+x.Currency] = x.Amount
	}
	return m
}

func TestRealFileTotals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file               string
		acts, txs, pairs   int
		rounded, negatives int
		// published figures, computed once with Python's ElementTree (another
		// XML reader) and pinned here
		pinned map[string]string
	}{
		{"dfid-drc-2013.xml", 205, 815, 138, 0, 30, map[string]string{
			"2 GBP": "992990730", "3 GBP": "330292477", "4 GBP": "130249835"}},
		{"bond-provider-activity-id.xml", 1, 11, 0, 0, 0, map[string]string{
			"1 GBP": "427835", "3 GBP": "16689", "4 GBP": "439124"}},
		{"dportal-2.03-undp-danida-ifad.xml", 100, 1902, 12, 2, 25, map[string]string{
			"1 USD": "524118679", "2 DKK": "177773074.53", "2 EUR": "36310000", "2 USD": "668921594",
			"3 DKK": "144063844.72", "3 USD": "9384052", "4 USD": "500976051", "11 USD": "796126412"}},
		{"dportal-2.03-foodsecurity.xml", 7, 63, 0, 0, 0, map[string]string{
			"1 EUR": "22685653", "1 GBP": "50000", "2 EUR": "48805638", "2 USD": "20000", "3 EUR": "10398513",
			"3 USD": "31525.85", "4 EUR": "3002026.83", "4 USD": "388073.01", "11 EUR": "57623858"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile("testdata/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			f := parseFile(t, c.file)
			if len(f.Errors) > 0 {
				t.Fatalf("errors: %v", f.Errors)
			}
			sum := sha256.Sum256(raw)
			if want := hex.EncodeToString(sum[:]); f.SHA256 != want || f.Activities[len(f.Activities)-1].Provenance.FileSHA256 != want {
				t.Errorf("sha256 %s, want %s", f.SHA256, want)
			}
			r := f.Report
			if r.Activities != c.acts || r.Transactions != c.txs || len(r.Pairs) != c.pairs || len(r.Rounded) != c.rounded || len(r.Corrections) != c.negatives {
				t.Errorf("activities %d transactions %d pairs %d rounded %d negatives %d, want %d %d %d %d %d",
					r.Activities, r.Transactions, len(r.Pairs), len(r.Rounded), len(r.Corrections), c.acts, c.txs, c.pairs, c.rounded, c.negatives)
			}
			scanned := scanTotals(t, string(raw))
			got, counted := totalsMap(r.Raw), totalsMap(r.Counted)
			if len(got) != len(scanned) || len(got) != len(c.pinned) {
				t.Errorf("type/currency pairs: parser %d, scan %d, pinned %d", len(got), len(scanned), len(c.pinned))
			}
			for k, want := range c.pinned {
				w := decimal.RequireFromString(want)
				if !got[k].Equal(w) || !scanned[k].Equal(w) {
					t.Errorf("%s: raw %s, scan %s, pinned %s", k, got[k], scanned[k], want)
				}
				// No parent in these files carries transactions and no
				// provider-activity-id names another activity of the same
				// file, so nothing is excluded: counted equals raw.
				if !counted[k].Equal(w) {
					t.Errorf("%s: counted %s, want %s", k, counted[k], want)
				}
			}
			if len(r.Excluded) != 0 {
				t.Errorf("excluded %d, want 0", len(r.Excluded))
			}
		})
	}
}

func TestRealFileFields(t *testing.T) {
	t.Parallel()
	undp := parseFile(t, "dportal-2.03-undp-danida-ifad.xml")
	var mine *Activity
	for _, a := range undp.Activities {
		if a.Identifier == "XM-DAC-41114-OUTPUT-00101989" {
			mine = a
		}
	}
	if mine == nil {
		t.Fatal("mine action activity not found")
	}
	if mine.Title != "Korea - Vietnam Mine Action" || mine.Standard != "2.03" || mine.DefaultCurrency != "USD" || mine.Hierarchy != 2 ||
		mine.ReportingOrg.Ref != "XM-DAC-41114" || mine.ReportingOrg.Name != "United Nations Development Programme" {
		t.Errorf("activity: %q %q %q %d %+v", mine.Title, mine.Standard, mine.DefaultCurrency, mine.Hierarchy, mine.ReportingOrg)
	}
	if len(mine.Related) != 1 || mine.Related[0] != (Related{Ref: "XM-DAC-41114-PROJECT-00098770", Type: 1}) {
		t.Errorf("related %+v", mine.Related)
	}
	if len(mine.Participating) != 3 || mine.Participating[0].Role != "Funding" || mine.Participating[0].Ref != "10712" || mine.Participating[2].Role != "Implementing" {
		t.Errorf("participating %+v", mine.Participating)
	}
	if len(mine.Transactions) != 35 {
		t.Fatalf("transactions %d", len(mine.Transactions))
	}
	t2 := mine.Transactions[1]
	if t2.Position != 2 || t2.Code != "11" || t2.LedgerType != "COMMITMENT" || t2.Direction != Incoming || !t2.Amount.Equal(decimal.RequireFromString("2835466")) ||
		t2.Currency != "USD" || t2.ValueDate != "2018-12-31" || t2.ValueDateFrom != "value/@value-date" || t2.Provider.Ref != "10712" ||
		t2.Receiver.ActivityID != "XM-DAC-41114-OUTPUT-00101989" || t2.Provenance.RecordID != mine.Identifier || t2.Provenance.Position != 2 {
		t.Errorf("transaction 2: %+v", t2)
	}
	last := mine.Transactions[34]
	if last.Code != "4" || last.LedgerType != "EXPENDITURE" || !last.Correction || last.Amount.String() != "-6424" {
		t.Errorf("transaction 35: %+v", last)
	}
	// The float artefact: rounded half-even, the source kept and listed.
	var art *Transaction
	for _, a := range undp.Activities {
		if a.Identifier == "XM-DAC-3-1-286115-34670" {
			art = &a.Transactions[0]
		}
	}
	if art == nil || !art.Rounded || art.Amount.String() != "60000000" || art.SourceValue != "59999999.99999999" || art.Provenance.Verbatim["value"] != "59999999.99999999" || art.Currency != "DKK" {
		t.Errorf("float artefact: %+v", art)
	}

	dfid := parseFile(t, "dfid-drc-2013.xml")
	a := dfid.Activities[0]
	if a.Identifier != "GB-1-105838" || a.Standard != "1.01" || a.Hierarchy != 1 || a.Title != "Support to the Poverty Reduction Strategy Process" ||
		len(a.Dates) != 4 || a.Dates[0] != (ActivityDate{"end-actual", "2010-12-31"}) || a.Participating[0].Role != "Funding" || a.Participating[1].Role != "Extending" {
		t.Errorf("dfid activity 1: %+v", a)
	}
	p := dfid.Report.Pairs[0]
	if p.Parent != "GB-1-105838" || p.Component != "GB-1-105838-101" || !strings.Contains(p.Via, "type 2") || !strings.Contains(p.Via, "type 1") {
		t.Errorf("pair %+v", p)
	}
	d := dfid.Activities[1].Transactions[0]
	if d.Code != "C" || d.Type != 2 || d.LedgerType != "COMMITMENT" || d.Currency != "GBP" || !hasInferred(d.Provenance, "currency") {
		t.Errorf("dfid commitment: %+v", d)
	}

	bond := parseFile(t, "bond-provider-activity-id.xml")
	b := bond.Activities[0]
	if b.Standard != "" || !hasInferred(b.Provenance, "standard") || len(b.Warnings) == 0 {
		t.Errorf("bond: standard %q inferred %v warnings %v", b.Standard, b.Provenance.Inferred, b.Warnings)
	}
	t1 := b.Transactions[0] // two types and two values published: the first is read, with a warning
	if t1.Code != "IF" || t1.LedgerType != "RECEIPT" || t1.Amount.String() != "271111" || t1.Provider.ActivityID != "GB-1-202907" {
		t.Errorf("bond transaction 1: %+v", t1)
	}
	t4 := b.Transactions[3]
	if t4.Currency != "GBP" || !hasInferred(t4.Provenance, "currency") {
		t.Errorf("bond transaction 4 currency: %+v", t4)
	}
	var links, self int
	for _, l := range bond.Report.Links {
		links++
		if l.Self {
			self++
		}
		if l.InImport && !l.Self {
			t.Errorf("link to another activity in a one-activity file: %+v", l)
		}
	}
	if links != 15 || self != 4 {
		t.Errorf("links %d self %d", links, self)
	}
}

func hasInferred(p Provenance, field string) bool {
	for _, s := range p.Inferred {
		if strings.HasPrefix(s, field+":") {
			return true
		}
	}
	return false
}

// Two donors' and an implementer's activities in one import: the counting
// rules must leave out the parent's repeat of its component's commitments
// and the implementer's incoming funds from the donor activity.
const linked = `<?xml version="1.0"?>
<iati-activities version="2.03">
 <iati-activity default-currency="EUR" hierarchy="1">
  <iati-identifier>XX-1-P</iati-identifier>
  <related-activity ref="XX-1-P-C" type="2"/>
  <transaction><transaction-type code="2"/><value value-date="2020-01-01">1000</value></transaction>
  <transaction><transaction-type code="4"/><value value-date="2020-01-01">5</value></transaction>
 </iati-activity>
 <iati-activity default-currency="EUR" hierarchy="2">
  <iati-identifier>XX-1-P-C</iati-identifier>
  <related-activity ref="XX-1-P" type="1"/>
  <transaction><transaction-type code="2"/><value value-date="2020-01-01">1000</value></transaction>
  <transaction><transaction-type code="3"/><value value-date="2020-02-01">400</value>
   <receiver-org ref="XX-2" receiver-activity-id="XX-2-A"/></transaction>
 </iati-activity>
 <iati-activity default-currency="EUR">
  <iati-identifier>XX-2-A</iati-identifier>
  <transaction><transaction-type code="1"/><value value-date="2020-02-03">400</value>
   <provider-org ref="XX-1" provider-activity-id="XX-1-P-C"/></transaction>
  <transaction><transaction-type code="1"/><value value-date="2020-02-03" currency="USD">50</value>
   <provider-org ref="XX-9" provider-activity-id="XX-9-ELSEWHERE"/></transaction>
  <transaction><transaction-type code="4"/><value value-date="2020-03-01">-10.5</value></transaction>
 </iati-activity>
</iati-activities>`

func TestCountingRules(t *testing.T) {
	t.Parallel()
	f, err := Parse(strings.NewReader(linked))
	if err != nil || len(f.Errors) > 0 {
		t.Fatal(err, f.Errors)
	}
	r := f.Report
	want := func(ts []Total, k, v string) {
		t.Helper()
		if got := totalsMap(ts)[k]; !got.Equal(decimal.RequireFromString(v)) {
			t.Errorf("%s: %s, want %s", k, got, v)
		}
	}
	want(r.Raw, "2 EUR", "2000")
	want(r.Counted, "2 EUR", "1000") // the parent's commitment repeats the component's
	want(r.Raw, "1 EUR", "400")
	want(r.Counted, "1 EUR", "0") // counted as XX-1-P-C's disbursement
	want(r.Counted, "3 EUR", "400")
	want(r.Counted, "1 USD", "50")   // provider activity not in this import: counted
	want(r.Counted, "4 EUR", "-5.5") // the parent's own expenditure: components report none
	if len(r.Excluded) != 2 || !strings.HasPrefix(r.Excluded[0].Note, RuleParentComponent) || r.Excluded[0].Activity != "XX-1-P" ||
		!strings.HasPrefix(r.Excluded[1].Note, RuleProviderLink) || r.Excluded[1].Activity != "XX-2-A" || r.Excluded[1].Position != 1 {
		t.Errorf("excluded %+v", r.Excluded)
	}
	if len(r.Pairs) != 1 || len(r.Corrections) != 1 || f.Activities[2].Hierarchy != 1 || !hasInferred(f.Activities[2].Provenance, "hierarchy") {
		t.Errorf("pairs %+v corrections %+v", r.Pairs, r.Corrections)
	}
}

func tx(inner string) string {
	return `<iati-activities version="2.03"><iati-activity default-currency="EUR"><iati-identifier>XX-1-A</iati-identifier>` +
		`<transaction><transaction-type code="3"/><value value-date="2020-01-01">1</value></transaction>` +
		inner + `</iati-activity></iati-activities>`
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dfid, err := os.ReadFile("testdata/dfid-drc-2013.xml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, src string
		syntax    bool
		want      string // substring of the error
	}{
		{"truncated real file", string(dfid[:len(dfid)/2]), true, "(after activity GB-1-"},
		{"truncated after last activity", strings.TrimSuffix(strings.TrimSpace(string(dfid)), "</iati-activities>"), true, "unexpected EOF"},
		{"not XML", "this is not XML", true, "not an IATI activity file"},
		{"JSON", `{"data": []}`, true, "not an IATI activity file"},
		{"empty", "", true, "not an IATI activity file"},
		{"other XML", `<rss><channel/></rss>`, true, "root element <rss>"},
		{"NUL byte", tx("<transaction><transaction-type code=\"3\"/><value>1\x002</value></transaction>"), true, "illegal character"},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?><iati-activities/>`, true, "UTF-8 only"},
		{"unknown type", tx(`<transaction><transaction-type code="Z"/><value value-date="2020-01-01">1</value></transaction>`), false,
			`activity XX-1-A: transaction 2: transaction-type: unknown code "Z"`},
		{"missing type", tx(`<transaction><value value-date="2020-01-01">1</value></transaction>`), false, "transaction 2: transaction-type: missing"},
		{"no currency", `<iati-activities version="2.03"><iati-activity><iati-identifier>XX-1-B</iati-identifier><transaction><transaction-type code="3"/><value value-date="2020-01-01">1</value></transaction></iati-activity></iati-activities>`, false,
			"activity XX-1-B: transaction 1: value/@currency: missing, and the activity has no @default-currency"},
		{"bad currency", tx(`<transaction><transaction-type code="3"/><value currency="XYZ" value-date="2020-01-01">1</value></transaction>`), false, `transaction 2: value/@currency: "XYZ" is not an ISO 4217 code`},
		{"too many decimals", tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">1.000000000000000001</value></transaction>`), false, "transaction 2: value: \"1.000000000000000001\" has too many decimals"},
		{"thousands separator", tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">1,000</value></transaction>`), false, "transaction 2: value: \"1,000\" has spaces or separators"},
		{"space in value", tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">1 000</value></transaction>`), false, "separators"},
		{"exponent", tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">1e400</value></transaction>`), false, "transaction 2: value: \"1e400\" is not a plain decimal"},
		{"huge", tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">` + strings.Repeat("9", 5000) + `</value></transaction>`), false, "transaction 2: value:"},
		{"empty value", tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01"> </value></transaction>`), false, "transaction 2: value: empty"},
		{"other date format", tx(`<transaction><transaction-type code="3"/><value value-date="01/02/2020">1</value></transaction>`), false, `transaction 2: value/@value-date: "01/02/2020" is not an ISO 8601 date`},
		{"impossible date", tx(`<transaction><transaction-type code="3"/><value value-date="2020-02-30">1</value></transaction>`), false, "not a calendar date"},
		{"no date", tx(`<transaction><transaction-type code="3"/><value>1</value></transaction>`), false, "transaction 2: value/@value-date: missing"},
		{"no identifier", `<iati-activities version="2.03"><iati-activity default-currency="EUR"><transaction><transaction-type code="3"/><value value-date="2020-01-01">Z</value></transaction></iati-activity></iati-activities>`, false,
			"activity at line 1: iati-identifier: missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse(strings.NewReader(c.src))
			var msg string
			if c.syntax {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("want a SyntaxError, got %v", err)
				}
				msg = err.Error()
			} else {
				if err != nil || len(f.Errors) != 1 {
					t.Fatalf("want one activity error, got %v %v", err, f)
				}
				msg = f.Errors[0].Error()
				if f.Report.Activities != 0 {
					t.Errorf("an activity with errors was counted")
				}
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not contain %q", msg, c.want)
			}
			if len(msg) > 600 {
				t.Errorf("error message of %d bytes", len(msg))
			}
		})
	}
}

func TestValueEdges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src, amount         string
		rounded, correction bool
	}{
		{"-0", "0", false, false},
		{"0.125", "0.12", true, false}, // half-even
		{"0.135", "0.14", true, false},
		{"100.000", "100", false, false}, // trailing zeros change nothing
		{"-25906", "-25906", false, true},
		{"\n  42.5 \n", "42.5", false, false},
	}
	for _, c := range cases {
		f, err := Parse(strings.NewReader(tx(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">` + c.src + `</value></transaction>`)))
		if err != nil || len(f.Errors) > 0 {
			t.Fatalf("%q: %v %v", c.src, err, f.Errors)
		}
		got := f.Activities[0].Transactions[1]
		if got.Amount.String() != c.amount || got.Rounded != c.rounded || got.Correction != c.correction {
			t.Errorf("%q: amount %s rounded %v correction %v", c.src, got.Amount, got.Rounded, got.Correction)
		}
	}
}

// TestStreaming reads activity by activity without Parse.
func TestStreaming(t *testing.T) {
	t.Parallel()
	fh, err := os.Open("testdata/dportal-2.03-foodsecurity.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := NewReader(fh)
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 7 || len(r.SHA256()) != 64 {
		t.Errorf("%d activities", n)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(linked))
	f.Add([]byte(tx("")))
	f.Add([]byte(`<iati-activities version="1.01"><iati-activity default-currency="GBP"><iati-identifier>A</iati-identifier><transaction><transaction-type code="D"/><value value-date="2020-01-01">-1.005</value></transaction></iati-activity></iati-activities>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(strings.NewReader(string(data)))
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, a := range file.Activities {
			for _, x := range a.Transactions {
				if x.Position < 1 {
					t.Fatalf("position %d", x.Position)
				}
			}
		}
		var n int
		for _, x := range file.Report.Raw {
			n += x.Count
		}
		if n != file.Report.Transactions {
			t.Fatalf("totals count %d transactions, report says %d", n, file.Report.Transactions)
		}
	})
}

func TestDuplicateActivity(t *testing.T) {
	t.Parallel()
	act := func(updated, value string) string {
		return `<iati-activity default-currency="EUR" last-updated-datetime="` + updated + `"><iati-identifier>XX-1-A</iati-identifier>` +
			`<transaction><transaction-type code="3"/><value value-date="2020-01-01">` + value + `</value></transaction></iati-activity>`
	}
	src := `<iati-activities version="2.03">` + act("2021-01-01T00:00:00", "100") + act("2022-01-01T00:00:00", "150") + act("2022-01-01T00:00:00", "999") + `</iati-activities>`
	f, err := Parse(strings.NewReader(src))
	if err != nil || len(f.Errors) > 0 {
		t.Fatal(err, f.Errors)
	}
	r := f.Report
	if got := totalsMap(r.Counted)["3 EUR"]; got.String() != "150" {
		t.Errorf("counted %s, want 150 (the latest copy, first on a tie)", got)
	}
	if got := totalsMap(r.Raw)["3 EUR"]; got.String() != "1249" {
		t.Errorf("raw %s, want 1249", got)
	}
	if len(r.Excluded) != 2 || !strings.HasPrefix(r.Excluded[0].Note, RuleDuplicate) {
		t.Errorf("excluded %+v", r.Excluded)
	}
}

// genReader produces an IATI file of n activities without holding it.
type genReader struct {
	n, i int
	buf  []byte
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case g.i == 0:
			g.buf = []byte(`<iati-activities version="2.03">`)
		case g.i <= g.n:
			g.buf = []byte(`<iati-activity default-currency="USD"><iati-identifier>XX-GEN-` + itoa(g.i) + `</iati-identifier><title><narrative>generated</narrative></title>` +
				strings.Repeat(`<transaction><transaction-type code="3"/><value value-date="2020-01-01">1.25</value><description><narrative>`+strings.Repeat("x", 200)+`</narrative></description></transaction>`, 5) +
				`</iati-activity>`)
		case g.i == g.n+1:
			g.buf = []byte(`</iati-activities>`)
		default:
			return 0, io.EOF
		}
		g.i++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestStreamingFlatMemory reads a ~10 MB generated file activity by activity
// and checks the heap stays far below the file's size.
func TestStreamingFlatMemory(t *testing.T) {
	const n = 8000
	r := NewReader(&genReader{n: n})
	var peak uint64
	var sum decimal.Decimal
	for i := 0; ; i++ {
		a, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range a.Transactions {
			sum = sum.Add(x.Amount)
		}
		if i%2000 == 1999 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	if sum.String() != "50000" {
		t.Errorf("sum %s", sum)
	}
	if peak > 8<<20 {
		t.Errorf("heap %d bytes while streaming a ~10 MB file", peak)
	}
}

func BenchmarkReader(b *testing.B) {
	for b.Loop() {
		r := NewReader(&genReader{n: 1000})
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "activities/s")
}

func TestTypeTableAndInference(t *testing.T) {
	t.Parallel()
	cases := []struct {
		version, code, ledger string
		typ                   int
		journaled             bool
	}{
		{"1.01", "IF", "RECEIPT", 1, true}, {"1.01", "C", "COMMITMENT", 2, true}, {"1.01", "D", "DISBURSEMENT", 3, true},
		{"1.01", "E", "EXPENDITURE", 4, true}, {"1.01", "IR", "", 5, false}, {"1.01", "LR", "", 6, false},
		{"1.01", "R", "DISBURSEMENT", 7, true}, {"1.01", "QP", "", 8, false}, {"1.01", "QS", "", 9, false}, {"1.01", "CG", "", 10, false},
		{"2.03", "1", "RECEIPT", 1, true}, {"2.03", "5", "", 5, false}, {"2.03", "10", "", 10, false},
		{"2.03", "11", "COMMITMENT", 11, true}, {"2.03", "12", "PLEDGE", 12, true}, {"2.03", "13", "PLEDGE", 13, true},
	}
	for _, c := range cases {
		// the activity's own @version wins over the root's
		src := `<iati-activities version="9.99"><iati-activity version="` + c.version + `" default-currency="JPY"><iati-identifier>XX-T</iati-identifier>` +
			`<transaction><transaction-type code="` + c.code + `"/><value>100</value><transaction-date iso-date="2020-05-01T10:00:00+02:00"/></transaction></iati-activity></iati-activities>`
		f, err := Parse(strings.NewReader(src))
		if err != nil || len(f.Errors) > 0 {
			t.Fatalf("%s: %v %v", c.code, err, f.Errors)
		}
		a := f.Activities[0]
		x := a.Transactions[0]
		if a.Standard != c.version || x.Type != c.typ || x.LedgerType != c.ledger || x.Journaled != c.journaled || (x.NotJournaledReason == "") != c.journaled {
			t.Errorf("%s %s: standard %s type %d ledger %q journaled %v %q", c.version, c.code, a.Standard, x.Type, x.LedgerType, x.Journaled, x.NotJournaledReason)
		}
		if x.ValueDate != "2020-05-01" || x.ValueDateFrom != "transaction-date/@iso-date" || !hasInferred(x.Provenance, "value date") || !hasInferred(x.Provenance, "currency") || x.Currency != "JPY" {
			t.Errorf("%s: value date %s from %s, currency %s, inferred %v", c.code, x.ValueDate, x.ValueDateFrom, x.Currency, x.Provenance.Inferred)
		}
		if (len(f.Report.NotJournaled) == 1) == c.journaled {
			t.Errorf("%s: not journaled list %+v", c.code, f.Report.NotJournaled)
		}
	}
	// JPY has no minor units: 100.5 rounds half-even to 100, the source kept.
	f, _ := Parse(strings.NewReader(`<iati-activities version="2.03"><iati-activity default-currency="JPY"><iati-identifier>XX-J</iati-identifier><transaction><transaction-type code="3"/><value value-date="2020-01-01">100.5</value></transaction></iati-activity></iati-activities>`))
	if x := f.Activities[0].Transactions[0]; x.Amount.String() != "100" || !x.Rounded || x.Provenance.Verbatim["value"] != "100.5" {
		t.Errorf("JPY: %+v", x)
	}
}
