package ocds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/money"
)

// SourceKind is the provenance source kind of every record this package parses.
const SourceKind = "ocds"

// MaxFileSize bounds the bytes Parse reads; a larger file is refused.
const MaxFileSize = 256 << 20

// Input forms (Result.Form).
const (
	FormReleasePackage = "release-package"
	FormRecordPackage  = "record-package"
	FormReleaseArray   = "release-array"
	FormReleases       = "releases" // one or more bare release objects (line-delimited or concatenated)
	FormMixed          = "mixed"
)

// Date is a day read (or inferred) from the source: On is the UTC day at
// midnight, Field the OCDS path it came from, Source its text verbatim.
type Date struct {
	On     time.Time `json:"on"`
	Field  string    `json:"field"`
	Source string    `json:"source"`
}

// Amount is a source amount as a decimal in its currency's minor units.
// Source is the number as written; Rounded tells whether it had more
// decimals than the currency has and was rounded half-to-even.
type Amount struct {
	Value    decimal.Decimal `json:"value"`
	Currency string          `json:"currency"`
	Field    string          `json:"field"`
	Source   string          `json:"source"`
	Rounded  bool            `json:"rounded"`
}

// Stage is one stage of a timeline and the day it was entered.
type Stage struct {
	Stage string `json:"stage"`
	Date
	// Inferred: the day is a stand-in, not the source's date for this stage
	// (Note says from what).
	Inferred bool   `json:"inferred"`
	Note     string `json:"note,omitempty"`
}

// Inconsistency is a pair of source dates in the wrong order (or a period
// ending before it starts), and what the timeline did about it.
type Inconsistency struct {
	OCID   string `json:"ocid"`
	Kind   string `json:"kind"`
	First  Date   `json:"first"`  // should be on or before Second
	Second Date   `json:"second"` // but is before First
	Action string `json:"action"`
}

func (i Inconsistency) String() string {
	return fmt.Sprintf("ocid %s: %s: %s %s is after %s %s; %s", i.OCID, i.Kind,
		i.First.Field, day(i.First.On), i.Second.Field, day(i.Second.On), i.Action)
}

// Inconsistency kinds.
const (
	KindStageOrder       = "stage order"
	KindNegativeDuration = "negative duration"
	KindContractBefore   = "contract signed before its award"
	KindCancelledBefore  = "cancelled before last stage"
)

// Problem is a field of a process the parser could not use.
type Problem struct {
	OCID    string `json:"ocid"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p Problem) Error() string {
	if p.OCID == "" {
		return fmt.Sprintf("%s: %s", p.Field, p.Message)
	}
	return fmt.Sprintf("ocid %s: %s: %s", p.OCID, p.Field, p.Message)
}

// ReleaseRef names one release merged into a process.
type ReleaseRef struct {
	ID       string `json:"id"`
	Date     string `json:"date"`
	Position int    `json:"position"`
}

// Provenance says where a process came from.
type Provenance struct {
	SourceKind string `json:"sourceKind"`
	FileSHA256 string `json:"fileSha256"`
	// RecordID is the ocid; Version the id of the latest release (or of the
	// compiled release), VersionDate its date verbatim, Position its index
	// among the file's releases (0-based, in file order).
	RecordID    string       `json:"recordId"`
	Version     string       `json:"version"`
	VersionDate string       `json:"versionDate"`
	Position    int          `json:"position"`
	Releases    []ReleaseRef `json:"releases"`
	Compiled    bool         `json:"compiled"`
}

// Process is one contracting process (ocid) as a procurement timeline.
type Process struct {
	OCID        string `json:"ocid"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// DescriptionField is where Description came from.
	DescriptionField string `json:"descriptionField"`
	// Category is one of procurement.Categories, inferred from
	// CategorySource (mainProcurementCategory and item classifications).
	Category       string  `json:"category"`
	CategorySource string  `json:"categorySource"`
	EstimatedCost  *Amount `json:"estimatedCost,omitempty"`
	// ExpectedDelivery is the day delivery is due, if the source says.
	ExpectedDelivery *Date `json:"expectedDelivery,omitempty"`
	// TenderStatus is tender.status verbatim.
	TenderStatus string `json:"tenderStatus"`
	// Stages move forward only (days never decrease); CANCELLED, if any, is last.
	Stages []Stage `json:"stages"`
	// Dropped are candidate stages left out because their dates contradict
	// the stages kept.
	Dropped         []Stage         `json:"dropped,omitempty"`
	Inconsistencies []Inconsistency `json:"inconsistencies,omitempty"`
	Problems        []Problem       `json:"problems,omitempty"`
	// Inferred lists the fields of this process that were inferred rather than read.
	Inferred   []string   `json:"inferred,omitempty"`
	Provenance Provenance `json:"provenance"`
}

// Stage returns the timeline's entry for stage, if any.
func (p Process) Stage(stage string) (Stage, bool) {
	for _, s := range p.Stages {
		if s.Stage == stage {
			return s, true
		}
	}
	return Stage{}, false
}

// Result is a parsed file.
type Result struct {
	FileSHA256 string    `json:"fileSha256"`
	Form       string    `json:"form"`
	Releases   int       `json:"releases"`
	Processes  []Process `json:"processes"`
}

// Inconsistent returns the processes with at least one inconsistency.
func (r *Result) Inconsistent() []Process {
	var out []Process
	for _, p := range r.Processes {
		if len(p.Inconsistencies) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// release is one release (or compiled release) found in the file.
type release struct {
	m        map[string]any
	ocid     string
	id       string
	date     string
	on       time.Time // zero if date unreadable
	pos      int
	compiled bool
}

// Parse reads an OCDS file: a release package, a record package, a JSON array
// of releases, or releases one after another (line-delimited). A file that is
// not JSON, truncated, or not shaped like any of these is an error naming the
// position; per-field trouble is a Problem on its process.
func Parse(r io.Reader) (*Result, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", MaxFileSize)
	}
	return ParseBytes(data)
}

// ParseBytes is Parse over data in memory.
func ParseBytes(data []byte) (*Result, error) {
	sum := sha256.Sum256(data)
	res := &Result{FileSHA256: hex.EncodeToString(sum[:])}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var rels []release
	forms := map[string]bool{}
	for n := 0; ; n++ {
		start := dec.InputOffset()
		var v any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, syntaxError(data, start, err)
		}
		where := position(data, start)
		switch t := v.(type) {
		case map[string]any:
			switch {
			case t["releases"] != nil:
				forms[FormReleasePackage] = true
				arr, ok := t["releases"].([]any)
				if !ok {
					return nil, fmt.Errorf("%s: releases: want an array, got %s", where, kind(t["releases"]))
				}
				for i, e := range arr {
					rel, err := toRelease(e, fmt.Sprintf("releases[%d]", i), len(rels), false)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", where, err)
					}
					rels = append(rels, rel)
				}
			case t["records"] != nil:
				forms[FormRecordPackage] = true
				arr, ok := t["records"].([]any)
				if !ok {
					return nil, fmt.Errorf("%s: records: want an array, got %s", where, kind(t["records"]))
				}
				for i, e := range arr {
					got, err := recordReleases(e, fmt.Sprintf("records[%d]", i), len(rels))
					if err != nil {
						return nil, fmt.Errorf("%s: %w", where, err)
					}
					rels = append(rels, got...)
				}
			case t["ocid"] != nil:
				forms[FormReleases] = true
				rel, err := toRelease(t, fmt.Sprintf("value %d", n), len(rels), false)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				rels = append(rels, rel)
			default:
				return nil, fmt.Errorf("%s: not an OCDS release, release package or record package (no ocid, releases or records)", where)
			}
		case []any:
			forms[FormReleaseArray] = true
			for i, e := range t {
				rel, err := toRelease(e, fmt.Sprintf("[%d]", i), len(rels), false)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				rels = append(rels, rel)
			}
		default:
			return nil, fmt.Errorf("%s: want a JSON object or array, got %s", where, kind(v))
		}
	}
	if len(rels) == 0 {
		return nil, errors.New("no OCDS releases in file")
	}
	if len(forms) == 1 {
		for f := range forms {
			res.Form = f
		}
	} else {
		res.Form = FormMixed
	}
	res.Releases = len(rels)
	res.Processes = build(rels, res.FileSHA256)
	return res, nil
}

func recordReleases(e any, path string, pos int) ([]release, error) {
	rec, ok := e.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want an object, got %s", path, kind(e))
	}
	if cr, ok := rec["compiledRelease"]; ok && cr != nil {
		rel, err := toRelease(cr, path+".compiledRelease", pos, true)
		if err != nil {
			return nil, err
		}
		return []release{rel}, nil
	}
	arr, ok := rec["releases"].([]any)
	if !ok {
		return nil, fmt.Errorf("%s: neither compiledRelease nor releases[]", path)
	}
	var out []release
	for i, x := range arr {
		m, ok := x.(map[string]any)
		if ok && m["ocid"] == nil && m["url"] != nil {
			// A linked release (url only): nothing to read here.
			continue
		}
		rel, err := toRelease(x, fmt.Sprintf("%s.releases[%d]", path, i), pos+len(out), false)
		if err != nil {
			return nil, err
		}
		out = append(out, rel)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: only linked releases (url), no release data", path)
	}
	return out, nil
}

func toRelease(e any, path string, pos int, compiled bool) (release, error) {
	m, ok := e.(map[string]any)
	if !ok {
		return release{}, fmt.Errorf("%s: want a release object, got %s", path, kind(e))
	}
	ocid, ok := m["ocid"].(string)
	if !ok || strings.TrimSpace(ocid) == "" {
		return release{}, fmt.Errorf("%s: ocid: want a non-empty string, got %s", path, kind(m["ocid"]))
	}
	rel := release{m: m, ocid: strings.TrimSpace(ocid), pos: pos, compiled: compiled}
	switch id := m["id"].(type) {
	case string:
		rel.id = id
	case json.Number:
		rel.id = id.String()
	}
	if d, ok := m["date"].(string); ok {
		rel.date = d
		if t, err := parseDay(d); err == nil {
			rel.on = t
		}
	}
	return rel, nil
}

// build groups releases by ocid (in order of first appearance) and makes a
// process of each.
func build(rels []release, sha string) []Process {
	groups := map[string][]release{}
	var order []string
	for _, r := range rels {
		if _, ok := groups[r.ocid]; !ok {
			order = append(order, r.ocid)
		}
		groups[r.ocid] = append(groups[r.ocid], r)
	}
	out := make([]Process, 0, len(order))
	for _, ocid := range order {
		out = append(out, process(ocid, groups[ocid], sha))
	}
	return out
}

// sortReleases orders releases oldest first: by date (to the second, UTC;
// an unreadable date sorts first), then by position in the file.
func sortReleases(rs []release) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := releaseInstant(rs[i]), releaseInstant(rs[j])
		if !a.Equal(b) {
			return a.Before(b)
		}
		return rs[i].pos < rs[j].pos
	})
}

func releaseInstant(r release) time.Time {
	t, err := parseInstant(r.date)
	if err != nil {
		return time.Time{}
	}
	return t
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// position names a byte offset as line:column (1-based) and offset.
func position(data []byte, off int64) string {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("line %d column %d (byte %d)", line, col, off)
}

func syntaxError(data []byte, start int64, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at %s: %v", position(data, se.Offset-1), se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated JSON: value starting at %s ends at end of file (byte %d)", position(data, start), len(data))
	}
	return fmt.Errorf("malformed JSON after %s: %v", position(data, start), err)
}

// toAmount reads an OCDS Value object ({amount, currency}).
func toAmount(v map[string]any, field string) (*Amount, error) {
	raw, ok := v["amount"]
	if !ok || raw == nil {
		return nil, nil
	}
	num, ok := raw.(json.Number)
	if !ok {
		return nil, fmt.Errorf("%s.amount: want a number, got %s", field, kind(raw))
	}
	cur, ok := v["currency"].(string)
	if !ok || cur == "" {
		return nil, fmt.Errorf("%s.currency: want an ISO 4217 code, got %s", field, kind(v["currency"]))
	}
	if _, err := money.Currency(cur); err != nil {
		return nil, fmt.Errorf("%s.currency: %q is not an ISO 4217 code", field, cur)
	}
	if len(num) > 64 {
		return nil, fmt.Errorf("%s.amount: number of %d characters", field, len(num))
	}
	d, err := decimal.NewFromString(num.String())
	if err != nil {
		return nil, fmt.Errorf("%s.amount: %q is not a decimal number", field, num.String())
	}
	if e := d.Exponent(); e > 20 || e < -40 {
		return nil, fmt.Errorf("%s.amount: %s is out of range", field, num.String())
	}
	if d.Sign() < 0 {
		return nil, fmt.Errorf("%s.amount: %s is negative", field, num.String())
	}
	if d.Abs().GreaterThanOrEqual(decimal.New(1, money.MaxIntegerDigits)) {
		return nil, fmt.Errorf("%s.amount: %s has more than %d integer digits", field, num.String(), money.MaxIntegerDigits)
	}
	r := money.Round(d, cur)
	return &Amount{Value: r, Currency: cur, Field: field, Source: num.String(), Rounded: !r.Equal(d)}, nil
}
