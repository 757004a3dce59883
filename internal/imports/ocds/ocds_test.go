package ocds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/procurement"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, data []byte) *Result {
	t.Helper()
	r, err := ParseBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func find(t testing.TB, r *Result, ocid string) Process {
	t.Helper()
	for _, p := range r.Processes {
		if p.OCID == ocid {
			return p
		}
	}
	t.Fatalf("no process %s", ocid)
	return Process{}
}

// utcDay computes a source date's UTC day independently of the parser.
func utcDay(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC().Truncate(24 * time.Hour)
}

// checkForward asserts the timeline invariants: stages in forward order,
// days never decreasing, REQUISITIONED first, CANCELLED only last.
func checkForward(t testing.TB, p Process) {
	t.Helper()
	seen := map[Problem]bool{}
	for _, pr := range p.Problems {
		if seen[pr] {
			t.Errorf("%s: problem reported twice: %v", p.OCID, pr)
		}
		seen[pr] = true
	}
	last, lastIdx := time.Time{}, -1
	for i, s := range p.Stages {
		if s.On.Before(last) {
			t.Errorf("%s: stage %s on %s moves back from %s", p.OCID, s.Stage, day(s.On), day(last))
		}
		last = s.On
		if i == 0 && s.Stage != procurement.Requisitioned {
			t.Errorf("%s: first stage %s", p.OCID, s.Stage)
		}
		if s.Stage == procurement.Cancelled {
			if i != len(p.Stages)-1 {
				t.Errorf("%s: CANCELLED not last", p.OCID)
			}
			continue
		}
		idx := slices.Index(procurement.Forward, s.Stage)
		if idx <= lastIdx {
			t.Errorf("%s: stage %s does not move forward", p.OCID, s.Stage)
		}
		lastIdx = idx
		if s.On.Before(MinDay) || !s.On.Before(MaxDay) || s.On.Hour() != 0 || s.On.Location() != time.UTC {
			t.Errorf("%s: stage %s day %v not a UTC day in range", p.OCID, s.Stage, s.On)
		}
	}
}

func TestCDMX(t *testing.T) {
	t.Parallel()
	data := readFile(t, "cdmx-release-package.json")
	r := mustParse(t, data)
	sum := sha256.Sum256(data)
	if r.FileSHA256 != hex.EncodeToString(sum[:]) || r.Form != FormReleasePackage || r.Releases != 4 || len(r.Processes) != 2 {
		t.Fatalf("sha %s form %s releases %d processes %d", r.FileSHA256, r.Form, r.Releases, len(r.Processes))
	}
	// Independently: the latest release of each ocid, by date.
	var pkg struct {
		Releases []struct {
			OCID, ID, Date string
			Tender         struct {
				Title        string
				Value        struct{ Amount json.Number }
				TenderPeriod struct{ StartDate, EndDate string }
			}
			Awards    []struct{ Date string }
			Contracts []struct {
				DateSigned string
				Period     struct{ EndDate string }
			}
		}
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		t.Fatal(err)
	}
	latest := map[string]int{}
	for i, rel := range pkg.Releases {
		j, ok := latest[rel.OCID]
		if !ok || utcDay(t, rel.Date).After(utcDay(t, pkg.Releases[j].Date)) {
			latest[rel.OCID] = i
		}
	}
	if len(latest) != 2 {
		t.Fatalf("file has %d ocids", len(latest))
	}
	for ocid, i := range latest {
		rel := pkg.Releases[i]
		t.Run(ocid, func(t *testing.T) {
			t.Parallel()
			p := find(t, r, ocid)
			checkForward(t, p)
			if p.Provenance.Version != rel.ID || p.Provenance.VersionDate != rel.Date || p.Provenance.Position != i || len(p.Provenance.Releases) != 2 {
				t.Errorf("provenance %+v, want version %s at %d", p.Provenance, rel.ID, i)
			}
			if p.Title != rel.Tender.Title || p.Description != rel.Tender.Title {
				t.Errorf("title %q", p.Title)
			}
			if p.EstimatedCost == nil || p.EstimatedCost.Currency != "MXN" || p.EstimatedCost.Source != rel.Tender.Value.Amount.String() {
				t.Errorf("estimated cost %+v, want %s MXN", p.EstimatedCost, rel.Tender.Value.Amount)
			}
			want := map[string]time.Time{
				procurement.Tendered:   utcDay(t, rel.Tender.TenderPeriod.StartDate),
				procurement.Evaluated:  utcDay(t, rel.Tender.TenderPeriod.EndDate),
				procurement.Awarded:    utcDay(t, rel.Awards[0].Date),
				procurement.Contracted: utcDay(t, rel.Contracts[0].DateSigned),
			}
			for stage, on := range want {
				s, ok := p.Stage(stage)
				if !ok || !s.On.Equal(on) || s.Inferred {
					t.Errorf("%s: got %+v, want %s read", stage, s, day(on))
				}
			}
			req, _ := p.Stage(procurement.Requisitioned)
			if !req.Inferred || !req.On.Equal(want[procurement.Tendered]) {
				t.Errorf("REQUISITIONED %+v", req)
			}
			if p.ExpectedDelivery == nil || !p.ExpectedDelivery.On.Equal(utcDay(t, rel.Contracts[0].Period.EndDate)) {
				t.Errorf("expected delivery %+v", p.ExpectedDelivery)
			}
			if len(p.Inconsistencies) != 0 {
				t.Errorf("inconsistencies %v", p.Inconsistencies)
			}
		})
	}
	// 065: its one milestone is met (no dateMet): DELIVERED on its due day,
	// inferred. 063: milestones only partly met, payments alone: not delivered.
	d, ok := find(t, r, "OCDS-87SD3T-AD-SF-DRM-065-2015").Stage(procurement.Delivered)
	if !ok || !d.Inferred || day(d.On) != "2016-03-10" {
		t.Errorf("065 DELIVERED %+v", d)
	}
	if _, ok := find(t, r, "OCDS-87SD3T-AD-SF-DRM-063-2015").Stage(procurement.Delivered); ok {
		t.Error("063 delivered")
	}
}

func TestArmenia(t *testing.T) {
	t.Parallel()
	data := readFile(t, "armenia-releases.json")
	r := mustParse(t, data)
	if r.Releases != 100 || len(r.Processes) != 100 {
		t.Fatalf("releases %d processes %d", r.Releases, len(r.Processes))
	}
	kinds := map[string]int{}
	dated := 0
	for _, p := range r.Processes {
		checkForward(t, p)
		for _, i := range p.Inconsistencies {
			kinds[i.Kind]++
			if i.OCID != p.OCID || i.First.Field == "" || i.Second.Field == "" || !i.Second.On.Before(i.First.On) {
				t.Errorf("inconsistency %+v", i)
			}
		}
		if len(p.Stages) > 0 {
			dated++
		}
	}
	// 27 releases carry a tender; the 73 planning-only ones have no stage date.
	if dated != 27 || len(r.Inconsistent()) != 18 || kinds[KindNegativeDuration] != 21 || kinds[KindStageOrder] != 51 {
		t.Errorf("dated %d inconsistent %d kinds %v", dated, len(r.Inconsistent()), kinds)
	}

	// Independently: every tender period the source itself gives a negative
	// durationInDays (both dates present, different UTC days) is reported.
	var pkg struct {
		Releases []struct {
			OCID   string
			Tender *struct {
				TenderPeriod struct {
					StartDate, EndDate *string
					DurationInDays     int
				}
			}
			Awards []struct{ Date string }
		}
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		t.Fatal(err)
	}
	negatives := 0
	for _, rel := range pkg.Releases {
		tp := rel.Tender
		if tp == nil || tp.TenderPeriod.DurationInDays >= 0 || tp.TenderPeriod.StartDate == nil || tp.TenderPeriod.EndDate == nil {
			continue
		}
		if !utcDay(t, *tp.TenderPeriod.EndDate).Before(utcDay(t, *tp.TenderPeriod.StartDate)) {
			continue
		}
		negatives++
		p := find(t, r, rel.OCID)
		if !slices.ContainsFunc(p.Inconsistencies, func(i Inconsistency) bool {
			return i.Kind == KindNegativeDuration && i.First.Field == "tender.tenderPeriod.startDate"
		}) {
			t.Errorf("%s: negative tender period not reported", rel.OCID)
		}
		if _, ok := p.Stage(procurement.Tendered); ok {
			if _, ok := p.Stage(procurement.Evaluated); ok {
				t.Errorf("%s: both ends of a negative tender period kept", rel.OCID)
			}
		}
	}
	// Independently: processes with an award dated before their tender
	// opened are each reported with that pair.
	early := 0
	for _, rel := range pkg.Releases {
		if rel.Tender == nil || rel.Tender.TenderPeriod.StartDate == nil || len(rel.Awards) == 0 {
			continue
		}
		opened := utcDay(t, *rel.Tender.TenderPeriod.StartDate)
		if !slices.ContainsFunc(rel.Awards, func(a struct{ Date string }) bool { return utcDay(t, a.Date).Before(opened) }) {
			continue
		}
		early++
		if !slices.ContainsFunc(find(t, r, rel.OCID).Inconsistencies, func(i Inconsistency) bool {
			return i.Kind == KindStageOrder && i.First.Field == "tender.tenderPeriod.startDate" && strings.HasPrefix(i.Second.Field, "awards[")
		}) {
			t.Errorf("%s: award before tender opened not reported", rel.OCID)
		}
	}
	if early != 11 {
		t.Errorf("%d processes with an award before the tender opened", early)
	}
	if negatives != 10 {
		t.Errorf("%d negative tender periods in the source, want 10", negatives)
	}

	// Examples. An award before its tender opened: the tender's start (the
	// system's entry time) is dropped, award and contract kept.
	p := find(t, r, "AM-PPS-7f895e8f69a7135feb09fd71e305cb16")
	if _, ok := p.Stage(procurement.Tendered); ok {
		t.Error("7f89: TENDERED kept")
	}
	if a, ok := p.Stage(procurement.Awarded); !ok || day(a.On) != "2016-06-30" || a.Field != "awards[0].date" {
		t.Errorf("7f89: AWARDED %+v", a)
	}
	if !slices.ContainsFunc(p.Inconsistencies, func(i Inconsistency) bool {
		return i.Kind == KindStageOrder && i.First.Field == "tender.tenderPeriod.startDate" && i.Second.Field == "awards[0].date" &&
			strings.Contains(i.Action, "dropped TENDERED")
	}) {
		t.Errorf("7f89: %v", p.Inconsistencies)
	}
	// Award and contract before the tender published and opened: the larger
	// consistent set (REQUISITIONED, TENDERED, EVALUATED) is kept.
	p = find(t, r, "AM-PPS-528d9fb0d715989252f7e003c3cb92b5")
	if len(p.Stages) != 3 || len(p.Dropped) != 2 || p.Dropped[0].Stage != procurement.Awarded || p.Dropped[1].Stage != procurement.Contracted {
		t.Errorf("528d: stages %v dropped %v", p.Stages, p.Dropped)
	}
	// Cancelled tender with a negative tender period, dated by its release.
	p = find(t, r, "AM-PPS-cd59b69d149e811de21d582805b28efa")
	if c := p.Stages[len(p.Stages)-1]; c.Stage != procurement.Cancelled || !c.Inferred || day(c.On) != "2018-01-11" {
		t.Errorf("cd59: last stage %+v", c)
	}
	// planning as an array: the budget read from it; category from CPV.
	if p.EstimatedCost == nil || p.EstimatedCost.Value.String() != "16000" || p.Category != "VEHICLES" {
		t.Errorf("cd59: cost %+v category %s", p.EstimatedCost, p.Category)
	}
	// A planning-only process: no stage, a problem naming it, a description.
	p = find(t, r, "AM-PPS-7dbf4fa867c8925ba60bb408e1a3fd3e")
	if len(p.Stages) != 0 || p.DescriptionField != "planning.budget.description" || p.EstimatedCost == nil || p.EstimatedCost.Source != "18900.0" {
		t.Errorf("7dbf: %+v", p)
	}
	if !slices.ContainsFunc(p.Problems, func(pr Problem) bool { return strings.Contains(pr.Message, "no dated stage") }) {
		t.Errorf("7dbf problems %v", p.Problems)
	}
	// Negative planning amounts are reported, naming ocid and field.
	neg := 0
	for _, p := range r.Processes {
		for _, pr := range p.Problems {
			if strings.Contains(pr.Message, "is negative") {
				neg++
				if pr.OCID != p.OCID || !strings.HasSuffix(pr.Field, "budget.amount") {
					t.Errorf("problem %v", pr)
				}
			}
		}
	}
	if neg != 4 {
		t.Errorf("%d negative budgets", neg)
	}
}

const rel1 = `{"ocid":"ocds-x-1","id":"a","date":"2020-01-01T00:00:00Z","tender":{"title":"Detectors","value":{"amount":100,"currency":"USD"},"tenderPeriod":{"startDate":"2020-01-10T00:00:00Z","endDate":"2020-01-20T00:00:00Z"}}}`
const rel2 = `{"ocid":"ocds-x-1","id":"b","date":"2020-03-01T00:00:00Z","tender":{"title":null,"status":"complete"},"awards":[{"id":"1","date":"2020-02-01T00:00:00Z","status":"active"}],"contracts":[{"id":"c","awardID":"1","dateSigned":"2020-02-10T23:30:00-05:00","status":"terminated","implementation":{"transactions":[{"id":"t","date":"2020-06-30T00:00:00Z"}]}}]}`

func TestForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, form string
	}{
		{"release package", `{"releases":[` + rel1 + `,` + rel2 + `]}`, FormReleasePackage},
		{"later release first in file", `{"releases":[` + rel2 + `,` + rel1 + `]}`, FormReleasePackage},
		{"array", `[` + rel1 + `,` + rel2 + `]`, FormReleaseArray},
		{"line-delimited", rel1 + "\n" + rel2 + "\n", FormReleases},
		{"record package with releases", `{"records":[{"ocid":"ocds-x-1","releases":[` + rel1 + `,` + rel2 + `,{"url":"http://x"}]}]}`, FormRecordPackage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := mustParse(t, []byte(c.in))
			if r.Form != c.form || len(r.Processes) != 1 {
				t.Fatalf("form %s processes %d", r.Form, len(r.Processes))
			}
			p := r.Processes[0]
			checkForward(t, p)
			// Merge: the later release's null title keeps the earlier one.
			if p.Title != "Detectors" || p.Category != "OTHER" || p.Provenance.Version != "b" || p.EstimatedCost.Value.String() != "100" {
				t.Errorf("%+v", p)
			}
			var got []string
			for _, s := range p.Stages {
				got = append(got, s.Stage+" "+day(s.On))
			}
			// 2020-02-10T23:30-05:00 is 2020-02-11 in UTC. A terminated
			// contract is delivered on its last payment.
			want := []string{"REQUISITIONED 2020-01-10", "TENDERED 2020-01-10", "EVALUATED 2020-01-20", "AWARDED 2020-02-01", "CONTRACTED 2020-02-11", "DELIVERED 2020-06-30"}
			if !slices.Equal(got, want) {
				t.Errorf("stages %v", got)
			}
		})
	}
	// A compiled release stands for the record.
	r := mustParse(t, []byte(`{"records":[{"ocid":"ocds-x-1","compiledRelease":`+rel1+`,"releases":[{"url":"x"}]}]}`))
	if p := r.Processes[0]; !p.Provenance.Compiled || p.Provenance.Version != "a" || len(p.Stages) != 3 {
		t.Errorf("compiled %+v", p)
	}
}

func TestInconsistent(t *testing.T) {
	t.Parallel()
	in := `{"ocid":"o","id":"1","date":"2021-01-01T00:00:00Z","tender":{"title":"t","status":"cancelled","tenderPeriod":{"startDate":"2020-05-01T00:00:00Z","endDate":"2020-05-10T00:00:00Z"}},
	"awards":[{"id":"A","date":"2020-04-01T00:00:00Z"}],"contracts":[{"id":"C","awardID":"A","dateSigned":"2020-03-01T00:00:00Z","period":{"startDate":"2020-06-01","endDate":"2020-05-01"}}]}`
	p := mustParse(t, []byte(in)).Processes[0]
	checkForward(t, p)
	var got []string
	for _, s := range p.Stages {
		got = append(got, s.Stage)
	}
	if !slices.Equal(got, []string{"REQUISITIONED", "TENDERED", "EVALUATED", "CANCELLED"}) {
		t.Errorf("stages %v", got)
	}
	kinds := map[string]int{}
	for _, i := range p.Inconsistencies {
		kinds[i.Kind]++
	}
	// TENDERED>AWARDED, TENDERED>CONTRACTED, EVALUATED>AWARDED,
	// EVALUATED>CONTRACTED, AWARDED>CONTRACTED; the contract period; the
	// contract before its award.
	if kinds[KindStageOrder] != 5 || kinds[KindNegativeDuration] != 1 || kinds[KindContractBefore] != 1 {
		t.Errorf("kinds %v: %v", kinds, p.Inconsistencies)
	}
	if c, _ := p.Stage(procurement.Cancelled); day(c.On) != "2021-01-01" {
		t.Errorf("cancelled %+v", c)
	}
	// A cancellation dated before the last stage is moved to that stage's day.
	in = strings.Replace(in, `"date":"2021-01-01T00:00:00Z"`, `"date":"2020-05-05T00:00:00Z"`, 1)
	p = mustParse(t, []byte(in)).Processes[0]
	checkForward(t, p)
	if c, _ := p.Stage(procurement.Cancelled); day(c.On) != "2020-05-10" || !slices.ContainsFunc(p.Inconsistencies, func(i Inconsistency) bool { return i.Kind == KindCancelledBefore }) {
		t.Errorf("cancelled %+v, %v", c, p.Inconsistencies)
	}
}

func TestUntidyValues(t *testing.T) {
	t.Parallel()
	mk := func(tender string) string {
		return `{"releases":[{"ocid":"ocds-u","id":"1","date":"2020-01-01T00:00:00Z","tender":` + tender + `}]}`
	}
	cases := []struct {
		name, in    string
		cost        string // "" = none
		rounded     bool
		problemPart string // a problem whose field contains this; "" = none
	}{
		{"float artefact rounded half-even", mk(`{"value":{"amount":59999999.99999999,"currency":"DKK"}}`), "60000000", true, ""},
		{"half-even down", mk(`{"value":{"amount":0.125,"currency":"USD"}}`), "0.12", true, ""},
		{"zero decimals currency", mk(`{"value":{"amount":1000.5,"currency":"JPY"}}`), "1000", true, ""},
		{"minus zero is a placeholder", mk(`{"value":{"amount":-0,"currency":"USD"}}`), "", false, ""},
		{"huge number", mk(`{"value":{"amount":1e400,"currency":"USD"}}`), "", false, "tender.value"},
		{"too many digits", mk(`{"value":{"amount":1234567890123456,"currency":"USD"}}`), "", false, "tender.value"},
		{"amount as string", mk(`{"value":{"amount":"100","currency":"USD"}}`), "", false, "tender.value"},
		{"unknown currency", mk(`{"value":{"amount":100,"currency":"XYZ"}}`), "", false, "tender.value"},
		{"missing currency", mk(`{"value":{"amount":100}}`), "", false, "tender.value"},
		{"tender a string", mk(`"closed"`), "", false, "tender"},
		{"year 0001", mk(`{"tenderPeriod":{"startDate":"0001-01-01T00:00:00Z"}}`), "", false, "tender.tenderPeriod.startDate"},
		{"year 9999", mk(`{"tenderPeriod":{"startDate":"9999-12-31T23:59:59Z"}}`), "", false, "tender.tenderPeriod.startDate"},
		{"not a date", mk(`{"tenderPeriod":{"startDate":"last tuesday"}}`), "", false, "tender.tenderPeriod.startDate"},
		{"date a number", mk(`{"tenderPeriod":{"startDate":20200101}}`), "", false, "tender.tenderPeriod.startDate"},
		{"budget fallback", `{"releases":[{"ocid":"ocds-u","id":"1","planning":{"budget":{"amount":{"amount":12.5,"currency":"EUR"}}}}]}`, "12.5", false, "releases[0].date"},
		{"huge title", mk(`{"title":"` + strings.Repeat("é", 1<<20) + `"}`), "", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, []byte(c.in)).Processes[0]
			checkForward(t, p)
			switch {
			case c.cost == "" && p.EstimatedCost != nil:
				t.Errorf("cost %+v", p.EstimatedCost)
			case c.cost != "" && (p.EstimatedCost == nil || p.EstimatedCost.Value.String() != c.cost || p.EstimatedCost.Rounded != c.rounded):
				t.Errorf("cost %+v, want %s rounded %v", p.EstimatedCost, c.cost, c.rounded)
			}
			if c.rounded && p.EstimatedCost.Source == p.EstimatedCost.Value.String() {
				t.Error("source not kept")
			}
			found := false
			for _, pr := range p.Problems {
				if pr.OCID != "ocds-u" {
					t.Errorf("problem without ocid: %v", pr)
				}
				if c.problemPart != "" && strings.Contains(pr.Field, c.problemPart) {
					found = true
				}
			}
			if c.problemPart != "" && !found {
				t.Errorf("no problem on %s: %v", c.problemPart, p.Problems)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	cdmx := readFile(t, "cdmx-release-package.json")
	cases := []struct{ name, in, want string }{
		{"empty", ``, "no OCDS releases"},
		{"truncated", string(cdmx[:len(cdmx)/2]), "truncated JSON"},
		{"NUL byte", strings.Replace(string(cdmx), `"tender"`, "\"ten\x00der\"", 1), "malformed JSON at line"},
		{"NUL outside strings", "\x00" + rel1, "malformed JSON at line 1 column 1"},
		{"garbage after", rel1 + "}", "malformed JSON"},
		{"releases not array", `{"releases":5}`, "releases: want an array, got a number"},
		{"release not object", `{"releases":[` + rel1 + `,"x"]}`, "releases[1]: want a release object, got a string"},
		{"missing ocid", `{"releases":[{"id":"1"}]}`, "releases[0]: ocid: want a non-empty string, got null"},
		{"ocid a number", `[{"ocid":7}]`, "[0]: ocid: want a non-empty string, got a number"},
		{"records not array", `{"records":{}}`, "records: want an array"},
		{"record without releases", `{"records":[{"ocid":"x"}]}`, "records[0]: neither compiledRelease nor releases"},
		{"linked releases only", `{"records":[{"ocid":"x","releases":[{"url":"u"}]}]}`, "only linked releases"},
		{"scalar", `42`, "want a JSON object or array, got a number"},
		{"unknown object", `{"foo":1}`, "not an OCDS release"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseBytes([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, %v; want error with %q", r, err, c.want)
			}
		})
	}
	if _, err := Parse(bytes.NewReader(cdmx)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(rel1 + "\n" + rel2))
	f.Add([]byte(`{"releases":[` + rel2 + `]}`))
	f.Add([]byte(`{"records":[{"ocid":"o","compiledRelease":` + rel1 + `}]}`))
	f.Add([]byte(`[{"ocid":"o","planning":[{"budget":{"amount":{"amount":1e400,"currency":"AMD"}}}],"tender":{"status":"cancelled"}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseBytes(data)
		if err != nil {
			return
		}
		if len(r.Processes) == 0 {
			t.Fatal("no process and no error")
		}
		for _, p := range r.Processes {
			checkForward(t, p)
			for _, pr := range p.Problems {
				if pr.OCID != p.OCID || pr.Field == "" || pr.Message == "" {
					t.Fatalf("problem %v", pr)
				}
			}
		}
	})
}
