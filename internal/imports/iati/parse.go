package iati

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tranche-ledger/tranche/internal/money"
)

// raw* mirror the XML. Tags carry no namespace, so they match the element or
// attribute of that local name in any namespace (d-portal re-exports prefix
// some attributes, e.g. iati-activities:version).
type rawText struct {
	Text string   `xml:",chardata"`
	Narr []string `xml:"narrative"`
}

// text is the first non-empty narrative (2.0x) or else the element text (1.0x).
func (t rawText) text() string {
	for _, n := range t.Narr {
		if s := strings.TrimSpace(n); s != "" {
			return s
		}
	}
	return strings.TrimSpace(t.Text)
}

type rawOrg struct {
	Ref     string   `xml:"ref,attr"`
	Role    string   `xml:"role,attr"`
	Type    string   `xml:"type,attr"`
	ProvAct string   `xml:"provider-activity-id,attr"`
	RecvAct string   `xml:"receiver-activity-id,attr"`
	Text    string   `xml:",chardata"`
	Narr    []string `xml:"narrative"`
}

func (o rawOrg) org() Org {
	return Org{
		Ref:  strings.TrimSpace(o.Ref),
		Name: rawText{Text: o.Text, Narr: o.Narr}.text(),
		Type: strings.TrimSpace(o.Type),
	}
}

type rawDate struct {
	Type    string `xml:"type,attr"`
	IsoDate string `xml:"iso-date,attr"`
	Text    string `xml:",chardata"`
}

type rawCode struct {
	Code       string `xml:"code,attr"`
	Vocabulary string `xml:"vocabulary,attr"`
	Percentage string `xml:"percentage,attr"`
}

type rawRelated struct {
	Ref  string `xml:"ref,attr"`
	Type string `xml:"type,attr"`
}

type rawValue struct {
	Currency  string `xml:"currency,attr"`
	ValueDate string `xml:"value-date,attr"`
	Text      string `xml:",chardata"`
}

type rawTx struct {
	Types    []rawCode  `xml:"transaction-type"`
	Values   []rawValue `xml:"value"`
	Dates    []rawDate  `xml:"transaction-date"`
	Provider []rawOrg   `xml:"provider-org"`
	Receiver []rawOrg   `xml:"receiver-org"`
	Desc     []rawText  `xml:"description"`
	Flow     []rawCode  `xml:"flow-type"`
	Channel  []rawCode  `xml:"disbursement-channel"`
}

type rawActivity struct {
	Version         string       `xml:"version,attr"`
	DefaultCurrency string       `xml:"default-currency,attr"`
	Hierarchy       string       `xml:"hierarchy,attr"`
	LastUpdated     string       `xml:"last-updated-datetime,attr"`
	Identifier      []string     `xml:"iati-identifier"`
	Title           []rawText    `xml:"title"`
	Reporting       []rawOrg     `xml:"reporting-org"`
	Participating   []rawOrg     `xml:"participating-org"`
	Dates           []rawDate    `xml:"activity-date"`
	Related         []rawRelated `xml:"related-activity"`
	Sectors         []rawCode    `xml:"sector"`
	Countries       []rawCode    `xml:"recipient-country"`
	Tx              []rawTx      `xml:"transaction"`
}

// SyntaxError is a file that is not well-formed XML or not an IATI activity
// file. It stops the parse: nothing after it can be trusted.
type SyntaxError struct {
	Line  int    // line in the file, 0 if unknown
	After string // identifier of the last activity read whole, "" if none
	Err   error
}

func (e *SyntaxError) Error() string {
	s := "iati: "
	if e.Line > 0 {
		s += fmt.Sprintf("line %d: ", e.Line)
	}
	if e.After != "" {
		s += fmt.Sprintf("(after activity %s) ", e.After)
	}
	return s + e.Err.Error()
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Reader streams an IATI activity file: one iati-activity is decoded at a
// time, so memory stays flat however big the file.
type Reader struct {
	src      io.Reader
	d        *xml.Decoder
	h        hash.Hash
	standard string // iati-activities/@version
	sawRoot  bool
	n        int    // activities read
	last     string // last identifier read
	done     bool
}

// NewReader reads IATI activity XML from r.
func NewReader(r io.Reader) *Reader {
	h := sha256.New()
	src := io.TeeReader(r, h)
	d := xml.NewDecoder(src)
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("encoding %q is not supported (UTF-8 only)", label)
	}
	return &Reader{src: src, d: d, h: h}
}

// SHA256 is the hex SHA-256 of the bytes read; after Next returned io.EOF it
// is the whole file's.
func (r *Reader) SHA256() string { return hex.EncodeToString(r.h.Sum(nil)) }

func (r *Reader) syntaxErr(err error) error {
	line, _ := r.d.InputPos()
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		line = se.Line
		err = fmt.Errorf("malformed XML: %s", se.Msg)
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("malformed XML: unexpected end of file")
	}
	r.done = true
	return &SyntaxError{Line: line, After: r.last, Err: err}
}

// Next returns the next activity, or io.EOF after the last. A *SyntaxError
// ends the file. Any other error is an *ActivityError: the activity (as far as
// it could be read) is returned with it, and Next may be called again.
func (r *Reader) Next() (*Activity, error) {
	if r.done {
		return nil, io.EOF
	}
	for {
		tok, err := r.d.Token()
		if err == io.EOF {
			r.done = true
			_, _ = io.Copy(io.Discard, r.src) // hash the whole file
			if !r.sawRoot && r.n == 0 {
				return nil, &SyntaxError{Err: errors.New("not an IATI activity file: no iati-activities or iati-activity element")}
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, r.syntaxErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "iati-activities":
				if r.sawRoot || r.n > 0 {
					return nil, r.syntaxErr(errors.New("iati-activities inside iati-activities"))
				}
				r.sawRoot = true
				r.standard = strings.TrimSpace(attr(t, "version"))
			case "iati-activity":
				line, _ := r.d.InputPos()
				var raw rawActivity
				if err := r.d.DecodeElement(&raw, &t); err != nil {
					return nil, r.syntaxErr(err)
				}
				r.n++
				a, err := r.build(&raw, line)
				r.last = a.Identifier
				return a, err
			default:
				if !r.sawRoot && r.n == 0 {
					r.done = true
					return nil, &SyntaxError{Line: line(r.d), Err: fmt.Errorf("not an IATI activity file: root element <%s>", t.Name.Local)}
				}
				if err := r.d.Skip(); err != nil { // e.g. ir:registry-record
					return nil, r.syntaxErr(err)
				}
			}
		case xml.CharData:
			if !r.sawRoot && r.n == 0 && len(strings.TrimSpace(string(t))) > 0 {
				r.done = true
				return nil, &SyntaxError{Line: line(r.d), Err: errors.New("not an IATI activity file: text before any element (not XML?)")}
			}
		}
	}
}

func line(d *xml.Decoder) int { l, _ := d.InputPos(); return l }

func attr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// ActivityError gathers the field errors of one activity.
type ActivityError struct {
	Activity string
	Errs     []*Error
}

func (e *ActivityError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, x := range e.Errs {
		parts[i] = x.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap gives the field errors.
func (e *ActivityError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, x := range e.Errs {
		out[i] = x
	}
	return out
}

type builder struct {
	a    *Activity
	line int
	errs []*Error
}

func (b *builder) fail(pos int, field string, format string, args ...any) {
	b.errs = append(b.errs, &Error{Activity: b.a.Identifier, Transaction: pos, Field: field, Line: b.line, Err: fmt.Errorf(format, args...)})
}

func (b *builder) warn(format string, args ...any) {
	b.a.Warnings = append(b.a.Warnings, fmt.Sprintf(format, args...))
}

func (r *Reader) build(raw *rawActivity, line int) (*Activity, error) {
	a := &Activity{}
	b := &builder{a: a, line: line}
	if len(raw.Identifier) > 0 {
		a.Identifier = strings.TrimSpace(raw.Identifier[0])
		if len(raw.Identifier) > 1 {
			b.warn("%d iati-identifier elements; the first is read", len(raw.Identifier))
		}
	}
	if a.Identifier == "" {
		b.fail(0, "iati-identifier", "missing or empty")
	}
	a.Provenance = Provenance{SourceKind: SourceKind, RecordID: a.Identifier, RecordVersion: strings.TrimSpace(raw.LastUpdated), Line: line}
	a.Standard = strings.TrimSpace(raw.Version)
	if a.Standard == "" {
		a.Standard = r.standard
		if a.Standard != "" && raw.Version == "" {
			a.Provenance.infer("standard", "iati-activities/@version")
		}
	}
	if a.Standard == "" {
		a.Provenance.infer("standard", "not declared; transaction codes read in either form (1.0x letters, 2.0x numbers)")
	} else if !strings.HasPrefix(a.Standard, "1.0") && !strings.HasPrefix(a.Standard, "2.0") {
		b.warn("standard version %q is neither 1.0x nor 2.0x; codes read in either form", a.Standard)
	}
	a.Provenance.Standard = a.Standard
	for _, t := range raw.Title {
		if s := t.text(); s != "" {
			a.Title = s
			break
		}
	}
	if len(raw.Reporting) > 0 {
		a.ReportingOrg = raw.Reporting[0].org()
	}
	for _, p := range raw.Participating {
		o := p.org()
		role := strings.TrimSpace(p.Role)
		o.Role = roles[role]
		if o.Role == "" && role != "" {
			b.warn("participating-org %q: unknown role %q, kept without role", o.Ref, role)
		}
		a.Participating = append(a.Participating, o)
	}
	if dc := strings.TrimSpace(raw.DefaultCurrency); dc != "" {
		if _, err := money.Currency(dc); err != nil {
			b.fail(0, "@default-currency", "%q is not an ISO 4217 code", dc)
		} else {
			a.DefaultCurrency = dc
		}
	}
	if h := strings.TrimSpace(raw.Hierarchy); h == "" {
		a.Hierarchy = 1
		a.Provenance.infer("hierarchy", "absent, 1 by the standard's default")
	} else if n, err := strconv.Atoi(h); err != nil || n < 1 || n > 99 {
		b.fail(0, "@hierarchy", "%q is not a hierarchy level", h)
	} else {
		a.Hierarchy = n
	}
	for _, d := range raw.Dates {
		kind := dateKinds[strings.TrimSpace(d.Type)]
		if kind == "" {
			b.warn("activity-date: unknown type %q, skipped", d.Type)
			continue
		}
		src := d.IsoDate
		if strings.TrimSpace(src) == "" {
			src = d.Text // 1.01 puts the date in the text
		}
		date, err := parseDate(src)
		if err != nil {
			b.fail(0, "activity-date "+kind, "%v", err)
			continue
		}
		a.Dates = append(a.Dates, ActivityDate{Kind: kind, Date: date})
	}
	for _, rel := range raw.Related {
		n, err := strconv.Atoi(strings.TrimSpace(rel.Type))
		if err != nil || n < 1 || n > 5 {
			b.warn("related-activity %q: unknown type %q, kept as 0", rel.Ref, rel.Type)
			n = 0
		}
		a.Related = append(a.Related, Related{Ref: strings.TrimSpace(rel.Ref), Type: n})
	}
	for _, s := range raw.Sectors {
		a.Sectors = append(a.Sectors, Sector{Code: strings.TrimSpace(s.Code), Vocabulary: strings.TrimSpace(s.Vocabulary), Percentage: strings.TrimSpace(s.Percentage)})
	}
	for _, c := range raw.Countries {
		a.RecipientCountries = append(a.RecipientCountries, strings.TrimSpace(c.Code))
	}
	for i := range raw.Tx {
		a.Transactions = append(a.Transactions, b.transaction(&raw.Tx[i], i+1))
	}
	if len(b.errs) > 0 {
		return a, &ActivityError{Activity: a.Identifier, Errs: b.errs}
	}
	return a, nil
}

func first[T any](b *builder, pos int, name string, xs []T) (T, bool) {
	var zero T
	if len(xs) == 0 {
		return zero, false
	}
	if len(xs) > 1 {
		b.warn("transaction %d: %d %s elements; the first is read", pos, len(xs), name)
	}
	return xs[0], true
}

func (b *builder) transaction(raw *rawTx, pos int) Transaction {
	a := b.a
	t := Transaction{Position: pos}
	t.Provenance = Provenance{SourceKind: SourceKind, RecordID: a.Identifier, RecordVersion: a.Provenance.RecordVersion, Position: pos, Line: b.line, Standard: a.Standard}

	if tt, ok := first(b, pos, "transaction-type", raw.Types); !ok {
		b.fail(pos, "transaction-type", "missing")
	} else {
		t.Code = strings.TrimSpace(tt.Code)
		def, letter := byLetter[t.Code], true
		if def == nil {
			def, letter = byCode[t.Code], false
		}
		switch {
		case def == nil:
			b.fail(pos, "transaction-type", "unknown code %q", t.Code)
		default:
			if letter && strings.HasPrefix(a.Standard, "2.") || !letter && strings.HasPrefix(a.Standard, "1.") {
				b.warn("transaction %d: transaction-type %q is not in the form of standard %s; read anyway", pos, t.Code, a.Standard)
			}
			t.Type, t.TypeName, t.Direction = def.code, def.name, def.direction
			t.LedgerType, t.Journaled, t.NotJournaledReason = def.ledger, def.ledger != "", def.reason
		}
	}

	v, hasValue := first(b, pos, "value", raw.Values)
	if !hasValue {
		b.fail(pos, "value", "missing")
	}
	t.Currency = strings.TrimSpace(v.Currency)
	switch {
	case !hasValue:
	case t.Currency != "":
		if _, err := money.Currency(t.Currency); err != nil {
			b.fail(pos, "value/@currency", "%q is not an ISO 4217 code", t.Currency)
		}
	case a.DefaultCurrency != "":
		t.Currency = a.DefaultCurrency
		t.Provenance.infer("currency", "the activity's @default-currency")
	default:
		b.fail(pos, "value/@currency", "missing, and the activity has no @default-currency")
	}
	if hasValue {
		b.value(&t, v.Text)
	}

	td, hasTD := first(b, pos, "transaction-date", raw.Dates)
	switch {
	case hasValue && strings.TrimSpace(v.ValueDate) != "":
		d, err := parseDate(v.ValueDate)
		if err != nil {
			b.fail(pos, "value/@value-date", "%v", err)
		}
		t.ValueDate, t.ValueDateFrom = d, "value/@value-date"
	case hasTD && strings.TrimSpace(td.IsoDate) != "":
		d, err := parseDate(td.IsoDate)
		if err != nil {
			b.fail(pos, "transaction-date/@iso-date", "%v", err)
		}
		t.ValueDate, t.ValueDateFrom = d, "transaction-date/@iso-date"
		t.Provenance.infer("value date", "transaction-date/@iso-date (no value/@value-date)")
	default:
		b.fail(pos, "value/@value-date", "missing, and no transaction-date/@iso-date")
	}

	if p, ok := first(b, pos, "provider-org", raw.Provider); ok {
		t.Provider = p.org()
		t.Provider.ActivityID = strings.TrimSpace(p.ProvAct)
	}
	if rc, ok := first(b, pos, "receiver-org", raw.Receiver); ok {
		t.Receiver = rc.org()
		t.Receiver.ActivityID = strings.TrimSpace(rc.RecvAct)
	}
	if d, ok := first(b, pos, "description", raw.Desc); ok {
		t.Description = d.text()
	}
	if f, ok := first(b, pos, "flow-type", raw.Flow); ok {
		t.FlowType = strings.TrimSpace(f.Code)
	}
	if c, ok := first(b, pos, "disbursement-channel", raw.Channel); ok {
		t.DisbursementChannel = strings.TrimSpace(c.Code)
	}
	return t
}

// maxSignificant is the most significant digits a value may carry and still
// be rounded: what a float64 prints (17). Longer values are not float
// artefacts but too precise to be money, and are refused.
const maxSignificant = 17

func (b *builder) value(t *Transaction, text string) {
	src := strings.TrimSpace(text)
	t.SourceValue = src
	if src == "" {
		b.fail(t.Position, "value", "empty")
		return
	}
	if strings.ContainsAny(src, " ,'_\u00a0\u202f\t\n\r") {
		b.fail(t.Position, "value", "%q has spaces or separators: refused (a comma may separate thousands or decimals)", clip(src))
		return
	}
	d, err := money.ParseDecimal(src)
	if err != nil {
		b.fail(t.Position, "value", "%s", clipErr(err))
		return
	}
	digits := strings.TrimLeft(strings.ReplaceAll(strings.TrimPrefix(src, "-"), ".", ""), "0")
	if len(digits) > maxSignificant {
		b.fail(t.Position, "value", "%q has too many decimals (%d significant digits; at most %d are rounded as a float artefact)", clip(src), len(digits), maxSignificant)
		return
	}
	t.Amount = d
	t.Correction = d.Sign() < 0
	if t.Currency == "" {
		return
	}
	if _, err := money.Currency(t.Currency); err != nil {
		return
	}
	r := money.Round(d, t.Currency)
	if !r.Equal(d) {
		t.Rounded = true
		t.Provenance.keep("value", src)
	}
	t.Amount = r
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func clipErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

var isoDate = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$`)

// parseDate reads an ISO 8601 date, with an optional time and zone (dropped:
// IATI dates are calendar dates). Other formats (01/02/2012) are refused:
// day and month order cannot be told.
func parseDate(s string) (string, error) {
	s = strings.TrimSpace(s)
	m := isoDate.FindStringSubmatch(s)
	if m == nil {
		return "", fmt.Errorf("%q is not an ISO 8601 date (YYYY-MM-DD)", clip(s))
	}
	if _, err := time.Parse("2006-01-02", m[1]); err != nil {
		return "", fmt.Errorf("%q is not a calendar date", clip(s))
	}
	return m[1], nil
}
