package iati

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

const schemaPath = "testdata/schema-2.03/iati-activities-schema.xsd"

func day(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC) }

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// hostile is text a writer must escape or clean: markup, quotes, an entity
// look-alike, NUL, other C0 controls, U+FFFE/U+FFFF, a lone surrogate's
// encoding (invalid UTF-8), CR, non-ASCII and a character outside the BMP.
const hostile = "<b>&amp; \"q\" 'a' ]]> \x00 \x01 \x1f \uFFFE \uFFFF \xed\xa0\x80 \r\n Kaboul: déminage – Кабул – 地雷 – 💣 <![CDATA[x]]> <!-- c -->"

// baseActivity is a complete activity: every optional field set.
func baseActivity(id string) ExportActivity {
	return ExportActivity{
		Identifier:       id,
		ReportingOrg:     Org{Ref: "XM-DAC-21-1", Name: "HALO Trust", Type: "21"},
		Title:            "Clearance in Kabul province",
		Description:      "Survey and clearance of legacy contamination.",
		Status:           2,
		Start:            day(2024, 1, 1),
		End:              day(2027, 12, 31),
		Funding:          Org{Ref: "GB-GOV-1", Name: "United Kingdom", Type: "10"},
		Implementing:     Org{Ref: "XM-DAC-21-1", Name: "HALO Trust", Type: "21"},
		RecipientCountry: "AF",
		Sectors:          []ExportSector{{Vocabulary: "1", Code: "15250", Percentage: "100"}},
		DefaultCurrency:  "USD",
		LastUpdated:      time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC),
		Lang:             "en",
		Transactions: []ExportTransaction{
			{Ref: "C-1", Type: 11, Date: day(2024, 1, 10), Value: dec("1500000.00"), Description: "Commitment",
				Provider: Org{Ref: "GB-GOV-1", Name: "United Kingdom", Type: "10", ActivityID: "GB-GOV-1-300123"},
				Receiver: Org{Ref: "XM-DAC-21-1", Name: "HALO Trust", Type: "21", ActivityID: id}},
			{Ref: "R-1", Type: 1, Date: day(2024, 2, 1), ValueDate: day(2024, 2, 3), Value: dec("500000.5"), Currency: "GBP",
				Provider: Org{Ref: "GB-GOV-1", ActivityID: "GB-GOV-1-300123"}},
			{Type: 3, Date: day(2024, 6, 30), Value: dec("250000"), Receiver: Org{Name: "Local partner"}},
		},
	}
}

func exportCases() []struct {
	name string
	e    Export
} {
	gen := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	big := strings.Repeat(hostile, 100*1024/len(hostile)+1) // > 100 KB
	hostileAct := baseActivity("XM-DAC-21-1-HOSTILE")
	hostileAct.Title = hostile
	hostileAct.Description = big
	hostileAct.ReportingOrg.Name = hostile
	hostileAct.Funding.Name = big
	hostileAct.Implementing.Name = "Humanity & Inclusion <HI> \"Handicap International\""
	hostileAct.Transactions[0].Description = big
	hostileAct.Transactions[1].Provider.Name = hostile
	hostileAct.Transactions[2].Receiver.Name = "O'Brien & Søn"

	currencies := baseActivity("XM-DAC-21-1-CURRENCIES")
	currencies.DefaultCurrency = "JPY"
	currencies.Transactions = []ExportTransaction{
		{Type: 11, Date: day(2024, 3, 1), Value: dec("150000000")},                       // JPY: 0 decimals
		{Type: 1, Date: day(2024, 4, 1), Value: dec("75000000"), Currency: "JPY"},        // explicit
		{Type: 1, Date: day(2024, 5, 1), Value: dec("12345.678"), Currency: "KWD"},       // KWD: 3 decimals
		{Type: 1, Date: day(2024, 5, 2), Value: dec("0.001"), Currency: "KWD"},           // smallest KWD unit
		{Type: 3, Date: day(2024, 6, 1), Value: dec("999999999999999"), Currency: "JPY"}, // 15 integer digits
	}

	negative := baseActivity("XM-DAC-21-1-REVERSALS")
	negative.Transactions = []ExportTransaction{
		{Type: 3, Date: day(2024, 6, 1), Value: dec("1000.00")},
		{Type: 3, Date: day(2024, 6, 2), Value: dec("-1000.00"), Description: "reversal of the disbursement of 1 June"},
		{Type: 2, Date: day(2024, 6, 3), Value: dec("-0.01"), Currency: "EUR"},
		{Type: 4, Date: day(2024, 6, 4), Value: dec("-7"), Currency: "KWD"},
		{Type: 13, Date: day(2024, 6, 5), Value: dec("0")},
	}

	minimal := ExportActivity{
		Identifier:   "XM-DAC-21-1-MINIMAL",
		ReportingOrg: Org{Ref: "XM-DAC-21-1", Name: "HALO Trust", Type: "21"},
		Title:        "Minimal",
		Start:        day(2025, 1, 1),
		Funding:      Org{Name: "Anonymous donor"},
	}
	endOnly := ExportActivity{
		Identifier:   "XM-DAC-21-1-ENDONLY",
		ReportingOrg: Org{Ref: "XM-DAC-21-1", Name: "HALO Trust", Type: "21"},
		Title:        "End only, no default currency",
		Status:       4,
		End:          day(2025, 1, 1),
		Implementing: Org{Ref: "XM-DAC-21-1"},
		Sectors:      []ExportSector{{Code: "15250"}, {Vocabulary: "2", Code: "152", Percentage: "33.33"}},
		Transactions: []ExportTransaction{{Type: 4, Date: day(2024, 12, 1), Value: dec("10.50"), Currency: "EUR",
			Provider: Org{ActivityID: "XM-DAC-21-1-MINIMAL"}}},
	}
	return []struct {
		name string
		e    Export
	}{
		{"complete", Export{GeneratedAt: gen, Activities: []ExportActivity{baseActivity("XM-DAC-21-1-COMPLETE")}}},
		{"hostile text", Export{GeneratedAt: gen, Activities: []ExportActivity{hostileAct}}},
		{"JPY and KWD", Export{GeneratedAt: gen, Activities: []ExportActivity{currencies}}},
		{"negative values", Export{GeneratedAt: gen, Activities: []ExportActivity{negative}}},
		{"empty optional fields", Export{GeneratedAt: gen, Activities: []ExportActivity{minimal, endOnly}}},
		{"several activities", Export{GeneratedAt: gen.Add(123 * time.Millisecond), Activities: []ExportActivity{
			baseActivity("XM-1"), hostileAct, currencies, negative, minimal, endOnly}}},
	}
}

func write(t *testing.T, e Export) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteExport(&buf, e); err != nil {
		t.Fatalf("WriteExport: %v", err)
	}
	return buf.Bytes()
}

// xmllint validates doc against the 2.03 schema; it answers xmllint's
// output and whether the document is valid.
func xmllint(t *testing.T, doc []byte) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not found: install Debian's libxml2-utils (apt-get install libxml2-utils) to validate the export against the IATI 2.03 schema")
	}
	f := filepath.Join(t.TempDir(), "export.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", schemaPath, f).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running xmllint: %v", err)
	}
	return string(out), err == nil
}

func TestExportValidatesAgainstSchema(t *testing.T) {
	t.Parallel()
	for _, c := range exportCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			doc := write(t, c.e)
			if out, ok := xmllint(t, doc); !ok {
				t.Fatalf("the export does not validate against the 2.03 schema:\n%s", out)
			}
		})
	}
}

// TestSchemaValidationCanFail is the negative control: documents the schema
// must refuse are refused, so TestExportValidatesAgainstSchema cannot pass
// vacuously (a missing schema, a lax xmllint).
func TestSchemaValidationCanFail(t *testing.T) {
	t.Parallel()
	good := string(write(t, exportCases()[0].e))
	if out, ok := xmllint(t, []byte(good)); !ok {
		t.Fatalf("control document does not validate:\n%s", out)
	}
	swap := func(s, a, b string) string {
		i, j := strings.Index(s, a), strings.Index(s, b)
		if i < 0 || j < 0 || j <= i {
			t.Fatalf("cannot swap %q and %q", a, b)
		}
		return s[:i] + b + s[i+len(a):j] + a + s[j+len(b):]
	}
	status := regexp.MustCompile(`<activity-status[^>]*></activity-status>`).FindString(good)
	date := regexp.MustCompile(`<activity-date[^>]*></activity-date>`).FindString(good)
	cases := []struct{ name, doc string }{
		{"activity-status after activity-date", swap(good, status, date)},
		{"transaction-date before transaction-type", swap(good, `<transaction-type code="11"></transaction-type>`, `<transaction-date iso-date="2024-01-10"></transaction-date>`)},
		{"reporting-org without @type", strings.Replace(good, `<reporting-org ref="XM-DAC-21-1" type="21">`, `<reporting-org ref="XM-DAC-21-1">`, 1)},
		{"value in exponent notation", strings.Replace(good, `>1500000<`, `>1.5e6<`, 1)},
		{"value without value-date", regexp.MustCompile(` value-date="[^"]*"`).ReplaceAllString(good, "")},
		{"no version", strings.Replace(good, ` version="2.03"`, "", 1)},
		{"no description", regexp.MustCompile(`(?s)\n  <description>.*?</description>`).ReplaceAllString(good, "")},
	}
	for _, c := range cases {
		if c.doc == good {
			t.Fatalf("%s: the broken document is the good one", c.name)
		}
		if out, ok := xmllint(t, []byte(c.doc)); ok {
			t.Errorf("%s: the schema accepted a broken document", c.name)
		} else if !strings.Contains(out, "fails to validate") {
			t.Errorf("%s: xmllint failed but not on validation:\n%s", c.name, out)
		}
	}
}

// TestExportRoundTrip parses the written file with this package's parser
// and compares what matters to the ledger.
func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range exportCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			doc := write(t, c.e)
			f, err := Parse(bytes.NewReader(doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(f.Errors) > 0 {
				t.Fatalf("Parse: activity errors: %v", f.Errors[0])
			}
			if len(f.Activities) != len(c.e.Activities) {
				t.Fatalf("%d activities read, %d written", len(f.Activities), len(c.e.Activities))
			}
			// transaction-date is read by the parser only when value-date is
			// absent: read it back from the XML directly.
			txDates := regexp.MustCompile(`<transaction-date iso-date="([^"]+)">`).FindAllStringSubmatch(string(doc), -1)
			k := 0
			for i, want := range c.e.Activities {
				got := f.Activities[i]
				check := func(field string, got, want any) {
					t.Helper()
					if got != want {
						t.Errorf("activity %d %s: got %q, want %q", i, field, clip(toString(got)), clip(toString(want)))
					}
				}
				check("identifier", got.Identifier, want.Identifier)
				check("standard", got.Standard, "2.03")
				check("title", got.Title, strings.TrimSpace(cleanText(want.Title)))
				check("reporting-org ref", got.ReportingOrg.Ref, want.ReportingOrg.Ref)
				check("reporting-org type", got.ReportingOrg.Type, want.ReportingOrg.Type)
				check("reporting-org name", got.ReportingOrg.Name, strings.TrimSpace(cleanText(want.ReportingOrg.Name)))
				check("default currency", got.DefaultCurrency, want.DefaultCurrency)
				wantUpdated := want.LastUpdated
				if wantUpdated.IsZero() {
					wantUpdated = c.e.GeneratedAt
				}
				check("last-updated", got.Provenance.RecordVersion, wantUpdated.UTC().Truncate(time.Second).Format(time.RFC3339))
				var wantOrgs []Org
				if present(want.Funding, false) {
					wantOrgs = append(wantOrgs, Org{Ref: want.Funding.Ref, Name: strings.TrimSpace(cleanText(want.Funding.Name)), Type: want.Funding.Type, Role: "Funding"})
				}
				if present(want.Implementing, false) {
					wantOrgs = append(wantOrgs, Org{Ref: want.Implementing.Ref, Name: strings.TrimSpace(cleanText(want.Implementing.Name)), Type: want.Implementing.Type, Role: "Implementing"})
				}
				check("participating-org count", len(got.Participating), len(wantOrgs))
				for j := range min(len(got.Participating), len(wantOrgs)) {
					check("participating-org", got.Participating[j], wantOrgs[j])
				}
				var dates []string
				for _, d := range got.Dates {
					dates = append(dates, d.Kind+" "+d.Date)
				}
				var wantDates []string
				status := want.Status
				if status == 0 {
					status = 2
				}
				if !want.Start.IsZero() {
					wantDates = append(wantDates, dateKinds[startDateType(status, want.Start, c.e.GeneratedAt)]+" "+want.Start.Format(time.DateOnly))
				}
				if !want.End.IsZero() {
					wantDates = append(wantDates, dateKinds[endDateType(status, want.End, c.e.GeneratedAt)]+" "+want.End.Format(time.DateOnly))
				}
				check("dates", strings.Join(dates, ", "), strings.Join(wantDates, ", "))
				wantCountries := ""
				if want.RecipientCountry != "" {
					wantCountries = want.RecipientCountry
				}
				check("recipient-country", strings.Join(got.RecipientCountries, ","), wantCountries)
				check("sector count", len(got.Sectors), len(want.Sectors))
				for j := range min(len(got.Sectors), len(want.Sectors)) {
					ws := want.Sectors[j]
					check("sector", got.Sectors[j], Sector{Code: ws.Code, Vocabulary: ws.Vocabulary, Percentage: ws.Percentage})
				}
				check("transaction count", len(got.Transactions), len(want.Transactions))
				for j := range min(len(got.Transactions), len(want.Transactions)) {
					gt, wt := got.Transactions[j], want.Transactions[j]
					wantCur := wt.Currency
					if wantCur == "" {
						wantCur = want.DefaultCurrency
					}
					wantVD := wt.ValueDate
					if wantVD.IsZero() {
						wantVD = wt.Date
					}
					check("transaction type", gt.Type, wt.Type)
					check("transaction code", gt.Code, itoa(wt.Type))
					if !gt.Amount.Equal(wt.Value) {
						t.Errorf("activity %d transaction %d: amount %s, want %s", i, j+1, gt.Amount, wt.Value)
					}
					check("transaction value as written", gt.SourceValue, wt.Value.String())
					check("transaction rounded", gt.Rounded, false)
					check("transaction correction", gt.Correction, wt.Value.IsNegative())
					check("transaction currency", gt.Currency, wantCur)
					check("transaction value date", gt.ValueDate, wantVD.Format(time.DateOnly))
					check("transaction value date from", gt.ValueDateFrom, "value/@value-date")
					check("transaction date", txDates[k][1], wt.Date.Format(time.DateOnly))
					k++
					check("transaction description", gt.Description, strings.TrimSpace(cleanText(wt.Description)))
					wantOrg := func(o Org) Org {
						return Org{Ref: o.Ref, Name: strings.TrimSpace(cleanText(o.Name)), Type: o.Type, ActivityID: o.ActivityID}
					}
					check("transaction provider", gt.Provider, wantOrg(wt.Provider))
					check("transaction receiver", gt.Receiver, wantOrg(wt.Receiver))
				}
			}
			if k != len(txDates) {
				t.Errorf("%d transaction-date elements, %d transactions", len(txDates), k)
			}
		})
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	default:
		b, _ := xml.Marshal(struct {
			V any `xml:"v"`
		}{v})
		return string(b)
	}
}

// TestExportSpecialCharacters: markup is escaped, characters XML cannot
// carry are replaced in free text and refused in identifiers, and the
// output is well-formed for a strict decoder.
func TestExportSpecialCharacters(t *testing.T) {
	t.Parallel()
	a := baseActivity("XM-DAC-21-1-&<\"'>")
	a.Title = hostile
	a.Description = "a]]>b"
	a.Funding.Ref = `GB-GOV-1 & "x"`
	a.Transactions[0].Provider.ActivityID = `A<B>&'"`
	doc := write(t, Export{GeneratedAt: day(2026, 11, 27), Activities: []ExportActivity{a}})
	s := string(doc)
	if !strings.HasPrefix(s, `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML declaration: %q", clip(s))
	}
	for _, bad := range []string{"\x00", "\x01", "\x1f", "\uFFFE", "\uFFFF", "\xed\xa0\x80", "<b>", "]]>", "<![CDATA[", "<!--", "\r"} {
		if strings.Contains(s, bad) {
			t.Errorf("output holds %q raw", bad)
		}
	}
	if !strings.Contains(s, "<iati-identifier>XM-DAC-21-1-&amp;&lt;&#34;&#39;&gt;</iati-identifier>") {
		t.Errorf("identifier not escaped as expected:\n%s", clip(s[strings.Index(s, "<iati-identifier"):]))
	}
	// A strict decoder reads back exactly what was meant.
	var got struct {
		Activity struct {
			Identifier string `xml:"iati-identifier"`
			Title      string `xml:"title>narrative"`
			Desc       string `xml:"description>narrative"`
			Part       []struct {
				Ref string `xml:"ref,attr"`
			} `xml:"participating-org"`
			Tx []struct {
				Provider struct {
					Act string `xml:"provider-activity-id,attr"`
				} `xml:"provider-org"`
			} `xml:"transaction"`
		} `xml:"iati-activity"`
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	if err := d.Decode(&got); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	wantTitle := "<b>&amp; \"q\" 'a' ]]> \uFFFD \uFFFD \uFFFD \uFFFD \uFFFD \uFFFD\uFFFD\uFFFD \r\n Kaboul: déminage – Кабул – 地雷 – 💣 <![CDATA[x]]> <!-- c -->"
	if got.Activity.Title != wantTitle {
		t.Errorf("title read back %q, want %q", got.Activity.Title, wantTitle)
	}
	if got.Activity.Identifier != a.Identifier || got.Activity.Desc != "a]]>b" ||
		got.Activity.Part[0].Ref != a.Funding.Ref || got.Activity.Tx[0].Provider.Act != `A<B>&'"` {
		t.Errorf("read back %+v", got.Activity)
	}
	if out, ok := xmllint(t, doc); !ok {
		t.Fatalf("does not validate:\n%s", out)
	}
}

// TestExportRefuses: bad fields make an InvalidError naming each, and
// nothing is written.
func TestExportRefuses(t *testing.T) {
	t.Parallel()
	gen := day(2026, 11, 27)
	cases := []struct {
		name   string
		edit   func(e *Export)
		fields []string
	}{
		{"no generated time", func(e *Export) { e.GeneratedAt = time.Time{} }, []string{"generatedAt"}},
		{"no activities", func(e *Export) { e.Activities = nil }, []string{"activities"}},
		{"NUL in identifier", func(e *Export) { e.Activities[0].Identifier = "XM-1\x00" }, []string{"activities[0].identifier"}},
		{"U+FFFE in a ref", func(e *Export) { e.Activities[0].Funding.Ref = "GB-\uFFFE" }, []string{"activities[0].funding.ref"}},
		{"invalid UTF-8 in an activity id", func(e *Export) { e.Activities[0].Transactions[1].Provider.ActivityID = "GB-\xff" },
			[]string{"activities[0].transactions[1].provider.activityId"}},
		{"spaces around an identifier", func(e *Export) { e.Activities[0].Identifier = " XM-1" }, []string{"activities[0].identifier"}},
		{"no identifier", func(e *Export) { e.Activities[0].Identifier = "" }, []string{"activities[0].identifier"}},
		{"reporting-org incomplete", func(e *Export) { e.Activities[0].ReportingOrg = Org{} },
			[]string{"activities[0].reportingOrg.ref", "activities[0].reportingOrg.type", "activities[0].reportingOrg.name"}},
		{"no title", func(e *Export) { e.Activities[0].Title = " " }, []string{"activities[0].title"}},
		{"unknown org type", func(e *Export) { e.Activities[0].Implementing.Type = "NGO" }, []string{"activities[0].implementing.type"}},
		{"bad status", func(e *Export) { e.Activities[0].Status = 7 }, []string{"activities[0].status"}},
		{"no dates", func(e *Export) { e.Activities[0].Start, e.Activities[0].End = time.Time{}, time.Time{} }, []string{"activities[0].start"}},
		{"end before start", func(e *Export) { e.Activities[0].End = day(2023, 1, 1) }, []string{"activities[0].end"}},
		{"no participating org", func(e *Export) { e.Activities[0].Funding, e.Activities[0].Implementing = Org{}, Org{} }, []string{"activities[0].funding"}},
		{"alpha-3 country", func(e *Export) { e.Activities[0].RecipientCountry = "AFG" }, []string{"activities[0].recipientCountry"}},
		{"bad sector", func(e *Export) {
			e.Activities[0].Sectors = []ExportSector{{Code: "152"}, {Vocabulary: "1", Code: "15250", Percentage: "1e2"}, {Code: "15250", Percentage: "100.5"}}
		}, []string{"activities[0].sectors[0].code", "activities[0].sectors[1].percentage", "activities[0].sectors[2].percentage"}},
		{"bad default currency", func(e *Export) { e.Activities[0].DefaultCurrency = "usd" }, []string{"activities[0].defaultCurrency"}},
		{"bad lang", func(e *Export) { e.Activities[0].Lang = "English" }, []string{"activities[0].lang"}},
		{"bad transaction type", func(e *Export) { e.Activities[0].Transactions[0].Type = 14 }, []string{"activities[0].transactions[0].type"}},
		{"no transaction date", func(e *Export) { e.Activities[0].Transactions[2].Date = time.Time{} }, []string{"activities[0].transactions[2].date"}},
		{"date out of range", func(e *Export) { e.Activities[0].Transactions[2].ValueDate = day(10000, 1, 1) }, []string{"activities[0].transactions[2].valueDate"}},
		{"no currency at all", func(e *Export) { e.Activities[0].DefaultCurrency = "" }, []string{"activities[0].transactions[0].currency", "activities[0].transactions[2].currency"}},
		{"JPY with decimals", func(e *Export) {
			e.Activities[0].Transactions[1].Currency, e.Activities[0].Transactions[1].Value = "JPY", dec("100.5")
		}, []string{"activities[0].transactions[1].value"}},
		{"KWD with 4 decimals", func(e *Export) {
			e.Activities[0].Transactions[1].Currency, e.Activities[0].Transactions[1].Value = "KWD", dec("-1.2345")
		}, []string{"activities[0].transactions[1].value"}},
		{"16 integer digits", func(e *Export) { e.Activities[0].Transactions[2].Value = dec("-1000000000000000") }, []string{"activities[0].transactions[2].value"}},
		{"second activity", func(e *Export) {
			b := baseActivity("XM-2")
			b.Transactions[0].Currency = "XXX1"
			e.Activities = append(e.Activities, b)
		}, []string{"activities[1].transactions[0].currency"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := Export{GeneratedAt: gen, Activities: []ExportActivity{baseActivity("XM-1")}}
			c.edit(&e)
			var buf bytes.Buffer
			err := WriteExport(&buf, e)
			var inv *apperr.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error %v, want an InvalidError", err)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the refusal", buf.Len())
			}
			var fields []string
			for _, v := range inv.Violations {
				fields = append(fields, v.Field)
			}
			if strings.Join(fields, " ") != strings.Join(c.fields, " ") {
				t.Errorf("fields %v, want %v (%v)", fields, c.fields, err)
			}
			if strings.ContainsRune(err.Error(), 0) || !xmlSafe(err.Error()) {
				t.Errorf("the error message carries the bad characters: %q", err)
			}
		})
	}
}

// TestExportDates: activity-date type codes follow the status and the
// generation date, and dates are not shifted by a time zone.
func TestExportDates(t *testing.T) {
	t.Parallel()
	kabul := time.FixedZone("AFT", 4*3600+1800)
	gen := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	cases := []struct {
		status     int
		start, end time.Time
		want       string
	}{
		{0, day(2024, 1, 1), day(2027, 1, 1), `type="2" iso-date="2024-01-01"|type="3" iso-date="2027-01-01"`},
		{1, day(2024, 1, 1), day(2027, 1, 1), `type="1" iso-date="2024-01-01"|type="3" iso-date="2027-01-01"`},
		{2, day(2027, 1, 1), time.Time{}, `type="1" iso-date="2027-01-01"`},
		{4, day(2020, 1, 1), day(2025, 6, 30), `type="2" iso-date="2020-01-01"|type="4" iso-date="2025-06-30"`},
		{3, day(2020, 1, 1), day(2026, 11, 27), `type="2" iso-date="2020-01-01"|type="4" iso-date="2026-11-27"`},
		{4, day(2020, 1, 1), day(2026, 11, 28), `type="2" iso-date="2020-01-01"|type="3" iso-date="2026-11-28"`},
		{5, day(2020, 1, 1), day(2025, 1, 1), `type="2" iso-date="2020-01-01"|type="3" iso-date="2025-01-01"`},
		// midnight in Kabul is the previous evening in UTC: the date stays.
		{2, time.Date(2024, 3, 1, 0, 0, 0, 0, kabul), time.Time{}, `type="2" iso-date="2024-03-01"`},
	}
	re := regexp.MustCompile(`<activity-date (type="\d" iso-date="[^"]+")>`)
	for i, c := range cases {
		a := baseActivity("XM-1")
		a.Status, a.Start, a.End = c.status, c.start, c.end
		doc := write(t, Export{GeneratedAt: gen, Activities: []ExportActivity{a}})
		var got []string
		for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, "|") != c.want {
			t.Errorf("case %d: %s, want %s", i, strings.Join(got, "|"), c.want)
		}
	}
}

type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return 0, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestExportWriteError: a failing writer's error comes back, whenever it
// fails.
func TestExportWriteError(t *testing.T) {
	t.Parallel()
	e := exportCases()[5].e
	size := len(write(t, e))
	for _, n := range []int{0, 10, 5000, size / 2, size - 1} {
		if err := WriteExport(&failingWriter{n: n}, e); !errors.Is(err, errDiskFull) {
			t.Errorf("failing after %d bytes: %v, want disk full", n, err)
		}
	}
	if err := WriteExport(&failingWriter{n: size}, e); err != nil {
		t.Errorf("room for it all: %v", err)
	}
}

// FuzzWriteExport: whatever the text, the export is refused with an
// InvalidError and nothing written, or it is a file this package's parser
// reads back with the same identifier, names and amount.
func FuzzWriteExport(f *testing.F) {
	f.Add("XM-1", hostile, "GB-1", "HALO", "-12.345", "KWD")
	f.Add("XM-1\x00", "title", "GB-\uFFFE", "\xff", "1", "JPY")
	f.Add(" XM-1", "  ", "", "", "1.5", "JPY")
	f.Add("XM-<1>&", "]]>", "a\"b", "c'd", "999999999999999", "USD")
	f.Fuzz(func(t *testing.T, id, title, ref, orgName, value, currency string) {
		v, err := decimal.NewFromString(value)
		if err != nil || len(value) > 40 {
			return
		}
		a := baseActivity(id)
		a.Title = title
		a.Funding = Org{Ref: ref, Name: orgName}
		a.Transactions = []ExportTransaction{{Type: 3, Date: day(2024, 1, 2), Value: v, Currency: currency,
			Receiver: Org{Ref: ref, Name: orgName, ActivityID: id}}}
		var buf bytes.Buffer
		err = WriteExport(&buf, Export{GeneratedAt: day(2026, 11, 27), Activities: []ExportActivity{a}})
		if err != nil {
			var inv *apperr.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes written before the refusal", buf.Len())
			}
			return
		}
		file, err := Parse(&buf)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if len(file.Errors) > 0 {
			t.Fatalf("Parse: %v", file.Errors[0])
		}
		got := file.Activities[0]
		if got.Identifier != id || got.Title != strings.TrimSpace(cleanText(title)) {
			t.Fatalf("read back %q %q", got.Identifier, got.Title)
		}
		x := got.Transactions[0]
		if !x.Amount.Equal(v) || x.Rounded || x.Receiver.Ref != ref || x.Receiver.ActivityID != id ||
			x.Receiver.Name != strings.TrimSpace(cleanText(orgName)) {
			t.Fatalf("transaction read back %+v", x)
		}
	})
}
