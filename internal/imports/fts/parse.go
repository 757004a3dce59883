package fts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/money"
)

// Limits on text fields, so a hostile file cannot make the import carry
// megabyte strings into the ledger.
const (
	maxDescription = 64 << 10
	maxShortText   = 1 << 10
	maxIDLen       = 64
	maxChildren    = 10000
	maxNumberLen   = 40 // digits of a number as written: beyond, a typo or an attack
)

// Problem is a per-record fault: the record is left out of Flows and the
// import is refused unless the caller skips invalid records.
type Problem struct {
	File     string
	Page     int
	Position int    // index in data.flows
	FlowID   string // "" when the id itself is unreadable
	Field    string
	Message  string
}

func (p Problem) Error() string {
	who := "flow " + p.FlowID
	if p.FlowID == "" {
		who = fmt.Sprintf("%s: data.flows[%d]", p.File, p.Position)
	}
	if p.Field == "" {
		return who + ": " + p.Message
	}
	return who + ": " + p.Field + ": " + p.Message
}

// SourceTotals are the figures the page's envelope publishes.
type SourceTotals struct {
	IncomingFlowCount    int
	IncomingFundingTotal decimal.Decimal
	IncomingPledgeTotal  decimal.Decimal
	OutgoingFlowCount    int
	OutgoingFundingTotal decimal.Decimal
	OutgoingPledgeTotal  decimal.Decimal
	InternalFlowCount    int
	MetaCount            int // meta.count: flows in the whole response
}

// Page is one parsed page of the flow API.
type Page struct {
	FileName string
	SHA256   string
	Number   int
	Status   string
	NextLink string
	Source   SourceTotals
	Flows    []Flow
	Problems []Problem
}

// envelope is the page's outer shape; flows are decoded one by one so a
// bad flow is a Problem naming it, not a failure of the whole file.
type envelope struct {
	Status json.RawMessage `json:"status"`
	Data   *struct {
		Incoming json.RawMessage   `json:"incoming"`
		Outgoing json.RawMessage   `json:"outgoing"`
		Internal json.RawMessage   `json:"internal"`
		Flows    []json.RawMessage `json:"flows"`
	} `json:"data"`
	Meta json.RawMessage `json:"meta"`
}

// ParsePage parses one page of /v1/public/fts/flow. page is the page's
// 1-based position in the import. The error is for a file that cannot be
// read as a page at all (malformed or truncated JSON, no data.flows);
// faults of single flows are in Page.Problems.
func ParsePage(name string, b []byte, page int) (*Page, error) {
	sum := sha256.Sum256(b)
	p := &Page{FileName: name, SHA256: hex.EncodeToString(sum[:]), Number: page}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("%s: NUL byte at offset %d", name, i)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%s: not valid UTF-8", name)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%s: %w", name, describeJSONError(b, err))
	}
	if env.Data == nil || env.Data.Flows == nil {
		return nil, fmt.Errorf("%s: no data.flows array: not a page of the FTS flow API", name)
	}
	if len(env.Status) > 0 {
		if err := json.Unmarshal(env.Status, &p.Status); err != nil {
			return nil, fmt.Errorf("%s: status: want a string", name)
		}
		if p.Status != "ok" {
			return nil, fmt.Errorf("%s: status: %q, want \"ok\"", name, p.Status)
		}
	}
	if err := parseEnvelopeTotals(&p.Source, env.Data.Incoming, env.Data.Outgoing, env.Data.Internal, env.Meta, &p.NextLink); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i, raw := range env.Data.Flows {
		fp := flowParser{prov: Provenance{SourceKind: SourceKind, FileName: name, FileSHA256: p.SHA256, Page: page, Position: i}}
		f, ok := fp.parse(raw)
		p.Problems = append(p.Problems, fp.problems...)
		if ok {
			p.Flows = append(p.Flows, f)
		}
	}
	return p, nil
}

// describeJSONError adds line and column to a JSON syntax or type error.
func describeJSONError(b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset is just past the offending byte.
		l, c := lineCol(b, max(se.Offset-1, 0))
		if se.Offset >= int64(len(b)) {
			return fmt.Errorf("truncated or malformed JSON at end of file (line %d, column %d): %v", l, c, se)
		}
		return fmt.Errorf("malformed JSON at line %d, column %d (offset %d): %v", l, c, se.Offset, se)
	case errors.As(err, &te):
		l, c := lineCol(b, te.Offset)
		return fmt.Errorf("%s: want %s, got JSON %s at line %d, column %d", te.Field, te.Type, te.Value, l, c)
	}
	return err
}

func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func parseEnvelopeTotals(st *SourceTotals, in, out, internal, meta json.RawMessage, next *string) error {
	type totals struct {
		FlowCount    *json.Number `json:"flowCount"`
		FundingTotal *json.Number `json:"fundingTotal"`
		PledgeTotal  *json.Number `json:"pledgeTotal"`
	}
	read := func(field string, raw json.RawMessage, count *int, funding, pledge *decimal.Decimal) error {
		if len(raw) == 0 || string(raw) == "null" {
			return nil
		}
		var t totals
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&t); err != nil {
			return fmt.Errorf("data.%s: %v", field, err)
		}
		if t.FlowCount != nil {
			n, err := strconv.Atoi(t.FlowCount.String())
			if err != nil || n < 0 {
				return fmt.Errorf("data.%s.flowCount: %q is not a count", field, t.FlowCount.String())
			}
			*count = n
		}
		for _, x := range []struct {
			name string
			n    *json.Number
			dst  *decimal.Decimal
		}{{"fundingTotal", t.FundingTotal, funding}, {"pledgeTotal", t.PledgeTotal, pledge}} {
			if x.n == nil || x.dst == nil {
				continue
			}
			v, err := money.ParseDecimal(x.n.String())
			if err != nil {
				return fmt.Errorf("data.%s.%s: %v", field, x.name, err)
			}
			*x.dst = v
		}
		return nil
	}
	if err := read("incoming", in, &st.IncomingFlowCount, &st.IncomingFundingTotal, &st.IncomingPledgeTotal); err != nil {
		return err
	}
	if err := read("outgoing", out, &st.OutgoingFlowCount, &st.OutgoingFundingTotal, &st.OutgoingPledgeTotal); err != nil {
		return err
	}
	if err := read("internal", internal, &st.InternalFlowCount, nil, nil); err != nil {
		return err
	}
	if len(meta) > 0 && string(meta) != "null" {
		var m struct {
			Count    *json.Number `json:"count"`
			NextLink *string      `json:"nextLink"`
		}
		d := json.NewDecoder(bytes.NewReader(meta))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return fmt.Errorf("meta: %v", err)
		}
		if m.Count != nil {
			n, err := strconv.Atoi(m.Count.String())
			if err != nil || n < 0 {
				return fmt.Errorf("meta.count: %q is not a count", m.Count.String())
			}
			st.MetaCount = n
		}
		if m.NextLink != nil {
			*next = *m.NextLink
		}
	}
	return nil
}

// flowParser reads one flow, collecting every fault rather than stopping
// at the first, so the import report lists them all.
type flowParser struct {
	prov     Provenance
	id       string
	problems []Problem
}

func (fp *flowParser) fail(field, format string, args ...any) {
	fp.problems = append(fp.problems, Problem{
		File: fp.prov.FileName, Page: fp.prov.Page, Position: fp.prov.Position,
		FlowID: fp.id, Field: field, Message: fmt.Sprintf(format, args...),
	})
}

// kind of a raw JSON value by its first byte.
func kind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "missing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '[':
		return "array"
	case '{':
		return "object"
	}
	return "number"
}

func absent(raw json.RawMessage) bool { k := kind(raw); return k == "missing" || k == "null" }

// quote shows a raw value in a message, shortened.
func quote(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

func (fp *flowParser) parse(raw json.RawMessage) (Flow, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		fp.fail("", "want a JSON object, got %s", kind(raw))
		return Flow{}, false
	}
	f := Flow{}
	var cb bytes.Buffer
	if json.Compact(&cb, raw) == nil {
		f.raw = cb.Bytes()
	}

	// id first: every later message names it.
	if id, ok := fp.idValue("id", m["id"], true); ok {
		fp.id = id
		f.ID = id
	} else {
		return Flow{}, false
	}
	n := len(fp.problems)

	if v := m["versionId"]; !absent(v) {
		ver, err := strconv.Atoi(string(v))
		if kind(v) != "number" || err != nil || ver < 0 {
			fp.fail("versionId", "want a non-negative integer, got %s", quote(v))
		} else {
			f.Version, f.HasVersion = ver, true
		}
	}

	// Reported USD.
	if d, src, ok := fp.number("amountUSD", m["amountUSD"], true); ok {
		f.AmountUSDSource = src
		f.AmountUSD = fp.round(&f, "amountUSD", src, d, "USD")
	}

	// Original currency and amount.
	if v := m["originalCurrency"]; !absent(v) {
		if c, ok := fp.text("originalCurrency", v, 8); ok {
			if _, err := money.Currency(c); err != nil || c == "" {
				fp.fail("originalCurrency", "%q is not an ISO 4217 code", c)
			} else {
				f.OriginalCurrency = c
			}
		}
	}
	if d, src, ok := fp.number("originalAmount", m["originalAmount"], false); ok {
		f.OriginalAmountSource = src
		switch {
		case f.OriginalCurrency != "":
			f.OriginalAmount = fp.round(&f, "originalAmount", src, d, f.OriginalCurrency)
			f.HasOriginal = true
		case absent(m["originalCurrency"]):
			fp.fail("originalCurrency", "missing, but originalAmount %s is given", src)
		}
	}
	if d, src, ok := fp.number("exchangeRate", m["exchangeRate"], false); ok {
		if !d.IsPositive() {
			fp.fail("exchangeRate", "%s: must be positive", src)
		} else {
			f.ExchangeRate, f.ExchangeRateSource, f.HasRate = d, src, true
		}
	}
	if f.HasOriginal {
		f.Amount, f.Currency = f.OriginalAmount, f.OriginalCurrency
		if f.HasRate {
			c := money.Convert(f.OriginalAmount, f.ExchangeRate, false, "USD")
			if err := money.CheckConverted(c, "USD"); err != nil {
				fp.fail("exchangeRate", "%s %s at %s: %v", f.OriginalAmountSource, f.OriginalCurrency, f.ExchangeRateSource, err)
			} else {
				f.ComputedUSD, f.HasComputed = c, true
			}
		}
	} else {
		f.Amount, f.Currency = f.AmountUSD, "USD"
		f.Inferred = append(f.Inferred, "amount", "currency")
		if f.OriginalCurrency != "" {
			f.Notes = append(f.Notes, fmt.Sprintf("originalCurrency %s given without originalAmount: amountUSD taken as the amount, in USD", f.OriginalCurrency))
		}
	}

	// Codes.
	if s, ok := fp.requiredText("status", m["status"]); ok {
		if e, known := statusEntry[s]; known {
			f.Status, f.EntryType = s, e
		} else {
			fp.fail("status", "unknown status %q (want pledge, commitment or paid)", s)
		}
	}
	if s, ok := fp.requiredText("flowType", m["flowType"]); ok {
		if flowTypes[s] {
			f.FlowType = s
		} else {
			fp.fail("flowType", "unknown flow type %q (want Standard, Parked, Carryover or Pass through)", s)
		}
	}
	if s, ok := fp.requiredText("boundary", m["boundary"]); ok {
		if boundaries[s] {
			f.Boundary = s
		} else {
			fp.fail("boundary", "unknown boundary %q (want incoming, internal or outgoing)", s)
		}
	}
	if v := m["onBoundary"]; !absent(v) {
		if s, ok := fp.text("onBoundary", v, maxShortText); ok {
			if onBoundaries[s] {
				f.OnBoundary = s
			} else {
				fp.fail("onBoundary", "unknown value %q (want single or shared)", s)
			}
		}
	}

	if v := m["contributionType"]; !absent(v) {
		f.ContributionType, _ = fp.text("contributionType", v, maxShortText)
	}
	if v := m["newMoney"]; !absent(v) {
		switch string(v) {
		case "true", "false":
			f.NewMoney, f.HasNewMoney = string(v) == "true", true
		default:
			fp.fail("newMoney", "want true or false, got %s", quote(v))
		}
	}

	// Parent and children.
	if v := m["parentFlowId"]; !absent(v) {
		if id, ok := fp.idValue("parentFlowId", v, false); ok {
			if id == f.ID {
				fp.fail("parentFlowId", "the flow names itself as its parent")
			} else {
				f.ParentFlowID = id
			}
		}
	}
	if v := m["childFlowIds"]; !absent(v) {
		var items []json.RawMessage
		if kind(v) != "array" || json.Unmarshal(v, &items) != nil {
			fp.fail("childFlowIds", "want an array of flow ids, got %s", kind(v))
		} else if len(items) > maxChildren {
			fp.fail("childFlowIds", "%d ids, more than %d", len(items), maxChildren)
		} else {
			for i, it := range items {
				if id, ok := fp.idValue(fmt.Sprintf("childFlowIds[%d]", i), it, true); ok {
					f.ChildFlowIDs = append(f.ChildFlowIDs, id)
				}
			}
		}
	}

	// Dates.
	if v := m["date"]; absent(v) {
		fp.fail("date", "missing")
	} else if d, ok := fp.date("date", v); ok {
		f.Date = d
	}
	if v := m["decisionDate"]; !absent(v) {
		if d, ok := fp.date("decisionDate", v); ok {
			f.DecisionDate = d
		}
	}

	// Text.
	if v := m["description"]; !absent(v) {
		f.Description, _ = fp.text("description", v, maxDescription)
	}
	if v := m["refCode"]; !absent(v) {
		s, _ := fp.text("refCode", v, maxShortText)
		f.RefCode = strings.TrimSpace(s)
	}

	f.Source = fp.objects("sourceObjects", m["sourceObjects"])
	f.Destination = fp.objects("destinationObjects", m["destinationObjects"])
	if len(f.Source.Organizations) > 1 {
		f.Notes = append(f.Notes, fmt.Sprintf("%d source organisations: the first (%s) is the donor", len(f.Source.Organizations), f.Source.Organizations[0].ID))
	}
	if len(f.Destination.Organizations) > 1 {
		f.Notes = append(f.Notes, fmt.Sprintf("%d destination organisations: the first (%s) is the recipient", len(f.Destination.Organizations), f.Destination.Organizations[0].ID))
	}

	f.Provenance = fp.prov
	f.Provenance.FlowID = f.ID
	f.Provenance.Version, f.Provenance.HasVersion = f.Version, f.HasVersion
	return f, len(fp.problems) == n
}

// idValue reads a flow or object id: FTS writes flow ids as strings and
// parent/child ids as numbers; both are kept as decimal text.
func (fp *flowParser) idValue(field string, v json.RawMessage, required bool) (string, bool) {
	var s string
	switch kind(v) {
	case "missing", "null":
		if required {
			fp.fail(field, "missing")
		}
		return "", false
	case "string":
		if err := json.Unmarshal(v, &s); err != nil {
			fp.fail(field, "unreadable string")
			return "", false
		}
	case "number":
		s = string(v)
	default:
		fp.fail(field, "want an id (string or integer), got %s", kind(v))
		return "", false
	}
	if s == "" || len(s) > maxIDLen {
		fp.fail(field, "id %q: want 1 to %d digits", quote(json.RawMessage(s)), maxIDLen)
		return "", false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			fp.fail(field, "id %q: want digits only", quote(json.RawMessage(s)))
			return "", false
		}
	}
	return s, true
}

// number reads a JSON number as a decimal: plain notation only (no
// exponent, at most money.MaxIntegerDigits integer digits), never a float.
func (fp *flowParser) number(field string, v json.RawMessage, required bool) (decimal.Decimal, string, bool) {
	switch kind(v) {
	case "missing", "null":
		if required {
			fp.fail(field, "missing")
		}
		return decimal.Decimal{}, "", false
	case "number":
	default:
		fp.fail(field, "want a number, got %s %s", kind(v), quote(v))
		return decimal.Decimal{}, "", false
	}
	src := string(v)
	if len(src) > maxNumberLen {
		fp.fail(field, "number of %d characters, more than %d", len(src), maxNumberLen)
		return decimal.Decimal{}, "", false
	}
	d, err := money.ParseDecimal(src)
	if err != nil {
		fp.fail(field, "%v", err)
		return decimal.Decimal{}, "", false
	}
	return d, src, true
}

// round rounds d half-even to currency's minor units, recording the source
// text when that changes the value's scale.
func (fp *flowParser) round(f *Flow, field, src string, d decimal.Decimal, currency string) decimal.Decimal {
	r := money.Round(d, currency)
	if !r.Equal(d) {
		f.Rounded = append(f.Rounded, Rounded{Field: field, Source: src, Value: r, Currency: currency})
	}
	return r
}

func (fp *flowParser) requiredText(field string, v json.RawMessage) (string, bool) {
	if absent(v) {
		fp.fail(field, "missing")
		return "", false
	}
	return fp.text(field, v, maxShortText)
}

// text reads a string field: valid UTF-8, no NUL, at most max bytes.
func (fp *flowParser) text(field string, v json.RawMessage, max int) (string, bool) {
	if kind(v) != "string" {
		fp.fail(field, "want a string, got %s %s", kind(v), quote(v))
		return "", false
	}
	var s string
	if bytes.IndexByte(v, '\\') < 0 && len(v) >= 2 && v[len(v)-1] == '"' {
		// No escapes: the text between the quotes is the string (the file
		// was checked to be valid JSON and UTF-8).
		s = string(v[1 : len(v)-1])
	} else if err := json.Unmarshal(v, &s); err != nil {
		fp.fail(field, "unreadable string")
		return "", false
	}
	switch {
	case strings.ContainsRune(s, 0):
		fp.fail(field, "contains a NUL character")
		return "", false
	case !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError):
		fp.fail(field, "not valid UTF-8")
		return "", false
	case len(s) > max:
		fp.fail(field, "%d bytes, more than %d", len(s), max)
		return "", false
	}
	return s, true
}

// date reads an FTS timestamp ("2020-03-19T00:00:00Z") or a plain date and
// keeps the calendar date as written.
func (fp *flowParser) date(field string, v json.RawMessage) (string, bool) {
	s, ok := fp.text(field, v, 64)
	if !ok {
		return "", false
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Format(time.DateOnly), true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Format(time.DateOnly), true
	}
	fp.fail(field, "%q is not an RFC 3339 timestamp or a date", s)
	return "", false
}

// rawObject holds the fields of a source or destination object this
// package reads; the others are skipped.
type rawObject struct {
	Type              json.RawMessage `json:"type"`
	ID                json.RawMessage `json:"id"`
	Name              json.RawMessage `json:"name"`
	Behavior          json.RawMessage `json:"behavior"`
	OrganizationTypes json.RawMessage `json:"organizationTypes"`
}

func (fp *flowParser) objects(field string, v json.RawMessage) Objects {
	var out Objects
	if absent(v) {
		return out
	}
	var items []json.RawMessage
	if kind(v) != "array" || json.Unmarshal(v, &items) != nil {
		fp.fail(field, "want an array of objects, got %s", kind(v))
		return out
	}
	for i, it := range items {
		at := fmt.Sprintf("%s[%d]", field, i)
		var m rawObject
		if kind(it) != "object" || json.Unmarshal(it, &m) != nil {
			fp.fail(at, "want an object, got %s", kind(it))
			continue
		}
		var o Object
		var ok bool
		if o.Type, ok = fp.requiredText(at+".type", m.Type); !ok {
			continue
		}
		if o.ID, ok = fp.idValue(at+".id", m.ID, true); !ok {
			continue
		}
		if !absent(m.Name) {
			o.Name, _ = fp.text(at+".name", m.Name, maxShortText)
		}
		if !absent(m.Behavior) {
			o.Behavior, _ = fp.text(at+".behavior", m.Behavior, maxShortText)
		}
		if v := m.OrganizationTypes; !absent(v) {
			var ts []json.RawMessage
			if kind(v) != "array" || json.Unmarshal(v, &ts) != nil {
				fp.fail(at+".organizationTypes", "want an array of strings, got %s", kind(v))
			} else {
				for j, t := range ts {
					if s, ok := fp.text(fmt.Sprintf("%s.organizationTypes[%d]", at, j), t, maxShortText); ok {
						o.OrganizationTypes = append(o.OrganizationTypes, s)
					}
				}
			}
		}
		switch o.Type {
		case "Organization":
			out.Organizations = append(out.Organizations, o)
		case "Location":
			out.Locations = append(out.Locations, o)
		case "UsageYear":
			out.UsageYears = append(out.UsageYears, o)
		case "Plan":
			out.Plans = append(out.Plans, o)
		case "GlobalCluster":
			out.GlobalClusters = append(out.GlobalClusters, o)
		case "Cluster":
			out.Clusters = append(out.Clusters, o)
		case "Emergency":
			out.Emergencies = append(out.Emergencies, o)
		case "Project":
			out.Projects = append(out.Projects, o)
		default:
			out.Other = append(out.Other, o)
		}
	}
	return out
}

// File is one page's bytes and the name to report it by.
type File struct {
	Name string
	Data []byte
}

// Import is the pages of one response, concatenated.
type Import struct {
	Pages    []*Page
	Flows    []Flow // unique by id, in order of first appearance
	Source   SourceTotals
	Problems []Problem
	Notes    []string
}

// Parse parses the pages of one response as one import. A flow id that
// appears on two pages with the same content is kept once; with different
// content it is an error, as are pages whose envelope totals disagree (they
// are not pages of one response).
func Parse(files ...File) (*Import, error) {
	if len(files) == 0 {
		return nil, errors.New("no pages given")
	}
	// Pages parse on their own, side by side; they are merged in order.
	pages, errs := make([]*Page, len(files)), make([]error, len(files))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, fl := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			pages[i], errs[i] = ParsePage(fl.Name, fl.Data, i+1)
		}()
	}
	wg.Wait()
	imp := &Import{}
	seen := map[string]int{} // id → index in imp.Flows
	for i, fl := range files {
		p, err := pages[i], errs[i]
		if err != nil {
			return nil, err
		}
		if i == 0 {
			imp.Source = p.Source
		} else if !sameTotals(imp.Source, p.Source) {
			return nil, fmt.Errorf("%s: data.incoming/outgoing/internal or meta.count differ from %s: not a page of the same response", fl.Name, files[0].Name)
		}
		imp.Pages = append(imp.Pages, p)
		imp.Problems = append(imp.Problems, p.Problems...)
		for _, f := range p.Flows {
			if j, dup := seen[f.ID]; dup {
				prev := imp.Flows[j]
				if !bytes.Equal(prev.raw, f.raw) {
					return nil, fmt.Errorf("flow %s: on page %d (%s) and page %d (%s) with different content", f.ID, prev.Provenance.Page, prev.Provenance.FileName, p.Number, p.FileName)
				}
				imp.Notes = append(imp.Notes, fmt.Sprintf("flow %s: repeated unchanged on page %d; kept once", f.ID, p.Number))
				continue
			}
			seen[f.ID] = len(imp.Flows)
			imp.Flows = append(imp.Flows, f)
		}
	}
	if n := len(imp.Flows) + countDistinctProblemFlows(imp.Problems); imp.Source.MetaCount != 0 && n != imp.Source.MetaCount {
		imp.Notes = append(imp.Notes, fmt.Sprintf("meta.count is %d but the pages hold %d distinct flows: a page missing or a flow repeated", imp.Source.MetaCount, n))
	}
	return imp, nil
}

func countDistinctProblemFlows(ps []Problem) int {
	ids := map[string]bool{}
	for _, p := range ps {
		ids[fmt.Sprintf("%d/%d", p.Page, p.Position)] = true
	}
	return len(ids)
}

func sameTotals(a, b SourceTotals) bool {
	return a.IncomingFlowCount == b.IncomingFlowCount && a.IncomingFundingTotal.Equal(b.IncomingFundingTotal) &&
		a.IncomingPledgeTotal.Equal(b.IncomingPledgeTotal) && a.OutgoingFlowCount == b.OutgoingFlowCount &&
		a.OutgoingFundingTotal.Equal(b.OutgoingFundingTotal) && a.OutgoingPledgeTotal.Equal(b.OutgoingPledgeTotal) &&
		a.InternalFlowCount == b.InternalFlowCount && a.MetaCount == b.MetaCount
}

// Err is nil when every flow parsed, else one error listing each problem
// (the import is all or nothing per file unless invalid records are skipped).
func (imp *Import) Err() error {
	if len(imp.Problems) == 0 {
		return nil
	}
	errs := make([]error, len(imp.Problems))
	for i, p := range imp.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Flow returns the flow with id, or nil.
func (imp *Import) Flow(id string) *Flow {
	for i := range imp.Flows {
		if imp.Flows[i].ID == id {
			return &imp.Flows[i]
		}
	}
	return nil
}

// sortedKeys returns a map's keys in order, for deterministic reports.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
