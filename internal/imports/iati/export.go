package iati

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/money"
)

// ExportVersion is the IATI standard version WriteExport writes.
const ExportVersion = "2.03"

// Export is an IATI activity file to write.
type Export struct {
	GeneratedAt time.Time // iati-activities/@generated-datetime; required
	Activities  []ExportActivity
}

// ExportActivity is one iati-activity to write. Organisations are [Org]
// values; Org.Role is ignored (the field says the role) and Org.ActivityID is
// written only on a transaction's provider and receiver.
type ExportActivity struct {
	Identifier   string // iati-identifier; required
	ReportingOrg Org    // Ref, Name and Type required (the schema requires @ref and @type)
	Title        string // required
	Description  string // "" → an empty narrative (the schema requires a description)
	Status       int    // activity-status code 1..6; 0 → 2 (implementation)
	// Start and End are calendar dates (read in their own location, never
	// converted). At least one is required (the schema requires an
	// activity-date); see WriteExport for the type codes.
	Start, End time.Time
	// Funding and Implementing are the participating-orgs of role 1 and 4;
	// an Org with neither Ref nor Name is left out, and at least one is
	// required (the schema requires a participating-org).
	Funding, Implementing Org
	RecipientCountry      string // ISO 3166-1 alpha-2, "" → omitted
	Sectors               []ExportSector
	DefaultCurrency       string // ISO 4217; "" → every transaction names its currency
	LastUpdated           time.Time
	Lang                  string // ISO 639-1 language of the text (xml:lang); "" → "en"
	Transactions          []ExportTransaction
}

// ExportSector is one sector of an activity.
type ExportSector struct {
	Vocabulary string // "" → omitted (the standard's default, 1: DAC 5-digit)
	Code       string // required; 5 digits under vocabulary 1, 3 under 2
	Percentage string // plain decimal 0..100, "" → omitted
}

// ExportTransaction is one transaction of an activity.
type ExportTransaction struct {
	Ref         string          // transaction/@ref, "" → omitted
	Type        int             // IATI 2.0x transaction type code, 1..13
	Date        time.Time       // transaction-date; required
	Value       decimal.Decimal // negative allowed (a reversal: see WriteExport)
	Currency    string          // ISO 4217; "" → the activity's DefaultCurrency
	ValueDate   time.Time       // zero → Date
	Description string          // "" → omitted
	// Provider and Receiver are provider-org and receiver-org; their
	// ActivityID is written as @provider-activity-id / @receiver-activity-id.
	// An Org with no Ref, Name or ActivityID is left out.
	Provider, Receiver Org
}

const xmlNS = "http://www.w3.org/XML/1998/namespace"

var (
	orgTypes = map[string]bool{ // IATI OrganisationType codelist
		"10": true, "11": true, "15": true, "21": true, "22": true, "23": true, "24": true,
		"30": true, "40": true, "60": true, "70": true, "71": true, "72": true, "73": true,
		"80": true, "90": true,
	}
	langRe       = regexp.MustCompile(`^[a-z]{2,3}$`)
	percentageRe = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]+)?$`)
	digitsRe     = regexp.MustCompile(`^[0-9]+$`)
	// alpha2Re checks the form only: internal/isocodes lists alpha-3 codes.
	alpha2Re = regexp.MustCompile(`^[A-Z]{2}$`)
)

// WriteExport writes e as an IATI 2.03 activity file to w, streaming one
// activity at a time with encoding/xml. The whole export is checked first: a
// bad field makes an *apperr.InvalidError naming every bad field (e.g.
// "activities[0].transactions[2].currency") and nothing is written.
//
// # Export mapping
//
//	Export / ExportActivity / ExportTransaction   IATI 2.03                             notes
//	GeneratedAt                                   iati-activities/@generated-datetime   UTC, seconds; required
//	(constant)                                    iati-activities/@version              "2.03"
//	DefaultCurrency                               iati-activity/@default-currency       omitted when ""
//	LastUpdated                                   iati-activity/@last-updated-datetime  zero → GeneratedAt
//	Lang                                          iati-activity/@xml:lang               "" → "en"
//	Identifier                                    iati-identifier
//	ReportingOrg{Ref, Type, Name}                 reporting-org/@ref, @type, narrative  all three required
//	Title                                         title/narrative                       required
//	Description                                   description/narrative                 "" → empty narrative
//	Funding                                       participating-org @role="1"           Ref, Type, Name as given
//	Implementing                                  participating-org @role="4"
//	Status                                        activity-status/@code                 0 → 2 (implementation)
//	Start                                         activity-date @type 2 (actual start), or 1 (planned start)
//	                                                                                    when Status is 1 (pipeline) or
//	                                                                                    the date is after GeneratedAt
//	End                                           activity-date @type 3 (planned end), or 4 (actual end)
//	                                                                                    when Status is 3 or 4 (finalisation,
//	                                                                                    closed) and the date is not after
//	                                                                                    GeneratedAt
//	RecipientCountry                              recipient-country/@code               omitted when ""
//	Sectors                                       sector/@vocabulary, @code, @percentage
//	Transaction.Ref                               transaction/@ref                      omitted when ""
//	Transaction.Type                              transaction-type/@code                2.0x numeric code
//	Transaction.Date                              transaction-date/@iso-date
//	Transaction.Value                             value                                 decimal.String: plain, never a float
//	Transaction.Currency                          value/@currency                       always written (default currency when "")
//	Transaction.ValueDate                         value/@value-date                     zero → Date
//	Transaction.Description                       transaction/description/narrative     omitted when ""
//	Transaction.Provider (+ActivityID)            provider-org/@ref, @type, @provider-activity-id, narrative
//	Transaction.Receiver (+ActivityID)            receiver-org/@ref, @type, @receiver-activity-id, narrative
//
// Elements follow the order of the 2.03 schema's sequences; the tests
// validate the output against the official schema (testdata/schema-2.03)
// with xmllint. The schema checks structure, not codelists: the codes are
// checked here. Title, Description and names are trimmed. An Org's Type
// "" omits @type (except on reporting-org, where the schema requires it);
// a Type must be an IATI OrganisationType code (10, 11, 15, 21..24, 30, 40,
// 60, 70..73, 80, 90).
//
// Values are written as held: they must be in the currency's minor units
// (what the ledger holds; a value with more decimals would be rounded by any
// reader, this package's parser included) and have at most 15 integer digits.
// A reversal is written as a negative transaction of the reversed entry's
// type (a reversed disbursement is a type 3 transaction with a negative
// value): IATI values may be negative for such corrections, and this
// package's parser reads them back as corrections (Transaction.Correction).
//
// Dates are calendar dates: the year, month and day of the time.Time in its
// own location, never converted to UTC (midnight in Kabul stays that day).
// They must lie within 1990-01-01..2099-12-31, like every ledger date.
//
// Text: free text (Title, Description, organisation names) has each
// character XML cannot carry (NUL and other C0 controls but tab, newline and
// carriage return; U+FFFE, U+FFFF; invalid UTF-8) replaced with U+FFFD, so a
// stray control character in a description does not stop an export.
// Identifiers, references, codes and currencies are refused instead, naming
// the field: a changed identifier is another identifier. Everything is
// escaped by encoding/xml (&, <, >, quotes, CR).
func WriteExport(w io.Writer, e Export) error {
	if err := validateExport(&e); err != nil {
		return fmt.Errorf("writing IATI export: %w", err)
	}
	if err := writeExport(w, &e); err != nil {
		return fmt.Errorf("writing IATI export: %w", err)
	}
	return nil
}

// validXMLChar is the XML 1.0 Char production.
func validXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// xmlSafe tells whether s is valid UTF-8 holding only XML characters.
func xmlSafe(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false
			}
		}
		if !validXMLChar(r) {
			return false
		}
	}
	return true
}

// cleanText replaces what XML cannot carry with U+FFFD.
func cleanText(s string) string {
	if xmlSafe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				b.WriteRune(utf8.RuneError)
				continue
			}
		}
		if !validXMLChar(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

type exportChecker struct{ v apperr.Validator }

// id checks an identifier, reference or code: XML-safe, no surrounding
// white space (a reader trims it), required or not.
func (c *exportChecker) id(field, s string, required bool) {
	switch {
	case s == "":
		c.v.Check(!required, field, "required")
	case !xmlSafe(s):
		c.v.Add(field, "holds a character XML cannot carry (NUL, a control character, U+FFFE/U+FFFF or invalid UTF-8)")
	case strings.TrimSpace(s) != s:
		c.v.Add(field, "has surrounding white space")
	}
}

func (c *exportChecker) orgType(field, s string, required bool) {
	if s == "" {
		c.v.Check(!required, field, "required (an IATI organisation type code)")
		return
	}
	c.v.Check(orgTypes[s], field, "%q is not an IATI organisation type code", clip(s))
}

func (c *exportChecker) org(field string, o Org, withActivity bool) {
	c.id(field+".ref", o.Ref, false)
	c.orgType(field+".type", o.Type, false)
	if withActivity {
		c.id(field+".activityId", o.ActivityID, false)
	}
}

func (c *exportChecker) currency(field, s string) {
	if s == "" {
		return
	}
	if _, err := money.Currency(s); err != nil {
		c.v.Add(field, "%q is not an ISO 4217 currency", clip(cleanText(s)))
	}
}

func validateExport(e *Export) error {
	c := &exportChecker{}
	c.v.Date("generatedAt", e.GeneratedAt, true)
	if len(e.Activities) == 0 {
		c.v.Add("activities", "required (the schema requires at least one iati-activity)")
	}
	for i := range e.Activities {
		a := &e.Activities[i]
		f := fmt.Sprintf("activities[%d].", i)
		c.id(f+"identifier", a.Identifier, true)
		c.id(f+"reportingOrg.ref", a.ReportingOrg.Ref, true)
		c.orgType(f+"reportingOrg.type", a.ReportingOrg.Type, true)
		c.v.Check(strings.TrimSpace(a.ReportingOrg.Name) != "", f+"reportingOrg.name", "required")
		c.v.Check(strings.TrimSpace(a.Title) != "", f+"title", "required")
		c.v.Check(a.Status >= 0 && a.Status <= 6, f+"status", "%d is not an IATI activity status (1..6)", a.Status)
		c.v.Date(f+"start", a.Start, false)
		c.v.Date(f+"end", a.End, false)
		c.v.Check(!a.Start.IsZero() || !a.End.IsZero(), f+"start", "a start or end date is required (the schema requires an activity-date)")
		if !a.Start.IsZero() && !a.End.IsZero() && calendarDate(a.End) < calendarDate(a.Start) {
			c.v.Add(f+"end", "before the start")
		}
		c.org(f+"funding", a.Funding, false)
		c.org(f+"implementing", a.Implementing, false)
		c.v.Check(present(a.Funding, false) || present(a.Implementing, false), f+"funding", "a funding or implementing organisation is required (the schema requires a participating-org)")
		if a.RecipientCountry != "" {
			c.v.Check(alpha2Re.MatchString(a.RecipientCountry), f+"recipientCountry", "%q is not an ISO 3166-1 alpha-2 code (two capital letters)", clip(cleanText(a.RecipientCountry)))
		}
		for j, s := range a.Sectors {
			sf := fmt.Sprintf("%ssectors[%d].", f, j)
			c.id(sf+"vocabulary", s.Vocabulary, false)
			c.id(sf+"code", s.Code, true)
			switch s.Vocabulary {
			case "", "1":
				c.v.Check(s.Code == "" || len(s.Code) == 5 && digitsRe.MatchString(s.Code), sf+"code", "%q is not a DAC 5-digit purpose code", clip(cleanText(s.Code)))
			case "2":
				c.v.Check(s.Code == "" || len(s.Code) == 3 && digitsRe.MatchString(s.Code), sf+"code", "%q is not a DAC 3-digit sector code", clip(cleanText(s.Code)))
			}
			if s.Percentage != "" {
				p, err := decimal.NewFromString(s.Percentage)
				c.v.Check(percentageRe.MatchString(s.Percentage) && err == nil && p.LessThanOrEqual(decimal.NewFromInt(100)),
					sf+"percentage", "%q is not a plain decimal from 0 to 100", clip(cleanText(s.Percentage)))
			}
		}
		c.currency(f+"defaultCurrency", a.DefaultCurrency)
		if !a.LastUpdated.IsZero() {
			c.v.Date(f+"lastUpdated", a.LastUpdated, false)
		}
		c.v.Check(a.Lang == "" || langRe.MatchString(a.Lang), f+"lang", "%q is not an ISO 639-1 code", clip(cleanText(a.Lang)))
		for j := range a.Transactions {
			t := &a.Transactions[j]
			tf := fmt.Sprintf("%stransactions[%d].", f, j)
			c.id(tf+"ref", t.Ref, false)
			c.v.Check(t.Type >= 1 && t.Type <= 13, tf+"type", "%d is not an IATI 2.0x transaction type (1..13)", t.Type)
			c.v.Date(tf+"date", t.Date, true)
			c.v.Date(tf+"valueDate", t.ValueDate, false)
			cur := t.Currency
			if cur == "" {
				cur = a.DefaultCurrency
			}
			if cur == "" {
				c.v.Add(tf+"currency", "required: the activity has no default currency")
			}
			c.currency(tf+"currency", t.Currency)
			if _, err := money.Currency(cur); err == nil {
				c.v.Check(money.InMinorUnits(money.Amount{Value: t.Value, Currency: cur}), tf+"value",
					"%s has more decimals than %s allows", t.Value.String(), cur)
			}
			c.v.Check(t.Value.Abs().LessThan(decimal.New(1, money.MaxIntegerDigits)), tf+"value",
				"%s is beyond %d integer digits", clip(t.Value.String()), money.MaxIntegerDigits)
			c.org(tf+"provider", t.Provider, true)
			c.org(tf+"receiver", t.Receiver, true)
		}
	}
	return c.v.Err()
}

// present tells whether an Org is written at all.
func present(o Org, withActivity bool) bool {
	return o.Ref != "" || strings.TrimSpace(o.Name) != "" || withActivity && o.ActivityID != ""
}

// calendarDate is the date of t in its own location, YYYY-MM-DD.
func calendarDate(t time.Time) string { return t.Format(time.DateOnly) }

// startDateType and endDateType choose the activity-date/@type codes
// (IATI ActivityDateType: 1 planned start, 2 actual start, 3 planned end,
// 4 actual end). An actual date must not lie in the future.
func startDateType(status int, start, generated time.Time) string {
	if status == 1 || calendarDate(start) > calendarDate(generated.UTC()) {
		return "1"
	}
	return "2"
}

func endDateType(status int, end, generated time.Time) string {
	if (status == 3 || status == 4) && calendarDate(end) <= calendarDate(generated.UTC()) {
		return "4"
	}
	return "3"
}

func xname(local string) xml.Name { return xml.Name{Local: local} }

func xattr(local, value string) xml.Attr { return xml.Attr{Name: xname(local), Value: value} }

// elementWriter writes tokens, keeping the first error.
type elementWriter struct {
	enc *xml.Encoder
	err error
}

func (x *elementWriter) start(local string, attrs ...xml.Attr) {
	if x.err == nil {
		x.err = x.enc.EncodeToken(xml.StartElement{Name: xname(local), Attr: attrs})
	}
}

func (x *elementWriter) end(local string) {
	if x.err == nil {
		x.err = x.enc.EncodeToken(xml.EndElement{Name: xname(local)})
	}
}

func (x *elementWriter) text(s string) {
	if x.err == nil && s != "" {
		x.err = x.enc.EncodeToken(xml.CharData(s))
	}
}

// leaf writes <local attrs>text</local>.
func (x *elementWriter) leaf(local, text string, attrs ...xml.Attr) {
	x.start(local, attrs...)
	x.text(text)
	x.end(local)
}

// narrated writes <local attrs><narrative>text</narrative></local>.
func (x *elementWriter) narrated(local, text string, attrs ...xml.Attr) {
	x.start(local, attrs...)
	x.leaf("narrative", cleanText(text))
	x.end(local)
}

// org writes an organisation element: attributes in the given order, a
// narrative when it has a name.
func (x *elementWriter) org(local string, o Org, first []xml.Attr, activityAttr string) {
	attrs := first
	if o.Ref != "" {
		attrs = append(attrs, xattr("ref", o.Ref))
	}
	if activityAttr != "" && o.ActivityID != "" {
		attrs = append(attrs, xattr(activityAttr, o.ActivityID))
	}
	if o.Type != "" {
		attrs = append(attrs, xattr("type", o.Type))
	}
	x.start(local, attrs...)
	if n := strings.TrimSpace(o.Name); n != "" {
		x.leaf("narrative", cleanText(n))
	}
	x.end(local)
}

func writeExport(w io.Writer, e *Export) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", " ")
	x := &elementWriter{enc: enc}
	generated := e.GeneratedAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	x.start("iati-activities", xattr("version", ExportVersion), xattr("generated-datetime", generated))
	for i := range e.Activities {
		writeActivity(x, e, &e.Activities[i])
		if x.err == nil {
			// Hand each activity to w as it is done: memory stays flat.
			x.err = enc.Flush()
		}
	}
	x.end("iati-activities")
	if x.err != nil {
		return x.err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func writeActivity(x *elementWriter, e *Export, a *ExportActivity) {
	updated := a.LastUpdated
	if updated.IsZero() {
		updated = e.GeneratedAt
	}
	lang := a.Lang
	if lang == "" {
		lang = "en"
	}
	var attrs []xml.Attr
	if a.DefaultCurrency != "" {
		attrs = append(attrs, xattr("default-currency", a.DefaultCurrency))
	}
	attrs = append(attrs,
		xattr("last-updated-datetime", updated.UTC().Truncate(time.Second).Format(time.RFC3339)),
		xml.Attr{Name: xml.Name{Space: xmlNS, Local: "lang"}, Value: lang})
	x.start("iati-activity", attrs...)

	x.leaf("iati-identifier", a.Identifier)
	x.org("reporting-org", a.ReportingOrg, nil, "")
	x.narrated("title", strings.TrimSpace(a.Title))
	x.narrated("description", strings.TrimSpace(a.Description))
	if present(a.Funding, false) {
		x.org("participating-org", a.Funding, []xml.Attr{xattr("role", "1")}, "")
	}
	if present(a.Implementing, false) {
		x.org("participating-org", a.Implementing, []xml.Attr{xattr("role", "4")}, "")
	}
	status := a.Status
	if status == 0 {
		status = 2
	}
	x.leaf("activity-status", "", xattr("code", itoa(status)))
	if !a.Start.IsZero() {
		x.leaf("activity-date", "", xattr("type", startDateType(status, a.Start, e.GeneratedAt)), xattr("iso-date", calendarDate(a.Start)))
	}
	if !a.End.IsZero() {
		x.leaf("activity-date", "", xattr("type", endDateType(status, a.End, e.GeneratedAt)), xattr("iso-date", calendarDate(a.End)))
	}
	if a.RecipientCountry != "" {
		x.leaf("recipient-country", "", xattr("code", a.RecipientCountry))
	}
	for _, s := range a.Sectors {
		var sa []xml.Attr
		if s.Vocabulary != "" {
			sa = append(sa, xattr("vocabulary", s.Vocabulary))
		}
		sa = append(sa, xattr("code", s.Code))
		if s.Percentage != "" {
			sa = append(sa, xattr("percentage", s.Percentage))
		}
		x.leaf("sector", "", sa...)
	}
	for i := range a.Transactions {
		writeTransaction(x, a, &a.Transactions[i])
	}
	x.end("iati-activity")
}

func writeTransaction(x *elementWriter, a *ExportActivity, t *ExportTransaction) {
	var attrs []xml.Attr
	if t.Ref != "" {
		attrs = append(attrs, xattr("ref", t.Ref))
	}
	x.start("transaction", attrs...)
	x.leaf("transaction-type", "", xattr("code", itoa(t.Type)))
	x.leaf("transaction-date", "", xattr("iso-date", calendarDate(t.Date)))
	cur := t.Currency
	if cur == "" {
		cur = a.DefaultCurrency
	}
	vd := t.ValueDate
	if vd.IsZero() {
		vd = t.Date
	}
	x.leaf("value", t.Value.String(), xattr("currency", cur), xattr("value-date", calendarDate(vd)))
	if d := strings.TrimSpace(t.Description); d != "" {
		x.narrated("description", d)
	}
	if present(t.Provider, true) {
		x.org("provider-org", t.Provider, nil, "provider-activity-id")
	}
	if present(t.Receiver, true) {
		x.org("receiver-org", t.Receiver, nil, "receiver-activity-id")
	}
	x.end("transaction")
}
