package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/demo"
)

// demoProc is a running `tranche demo` and what its summary said.
type demoProc struct {
	proc
	out        *bytes.Buffer
	tokens     map[string]string
	roadmapID  string
	ftsRoadmap string
	packPath   string
}

var (
	tokenLine   = regexp.MustCompile(`(?m)^  (admin|coordinator|donor|implementer|auditor)\s+(trn_\S+)`)
	restLine    = regexp.MustCompile(`(?m)^REST API: http://(\S+)`)
	roadmapLine = regexp.MustCompile(`(?m)^  sample roadmap:\s+(\S+)`)
	ftsLine     = regexp.MustCompile(`(?m)^  FTS roadmap:\s+(\S+)`)
	packLine    = regexp.MustCompile(`(?m)^audit pack: (\S+) \(`)
)

// startDemo runs `tranche demo` on free ports and waits for its summary.
func startDemo(t *testing.T, dir string) *demoProc {
	t.Helper()
	cmd := exec.Command(binary, "demo", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "TRANCHE_SIGNING_KEY=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &demoProc{proc: proc{cmd: cmd, done: make(chan error, 1), logs: &bytes.Buffer{}}, out: &bytes.Buffer{}}
	cmd.Stderr = d.logs // written by exec's copier, read only after Wait
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !signalled && strings.HasPrefix(sc.Text(), "ready in ") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		d.done <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-d.done:
		t.Fatalf("tranche demo exited: %v\n%s\n%s", err, d.out, d.logs)
	case <-time.After(150 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("tranche demo was not ready in 150 s\n%s", d.out)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			d.stop(t, syscall.SIGTERM)
		}
	})
	mu.Lock()
	out := d.out.String()
	mu.Unlock()
	d.tokens = map[string]string{}
	for _, m := range tokenLine.FindAllStringSubmatch(out, -1) {
		d.tokens[m[1]] = m[2]
	}
	for _, x := range []struct {
		re  *regexp.Regexp
		dst *string
	}{{restLine, &d.httpAddr}, {roadmapLine, &d.roadmapID}, {ftsLine, &d.ftsRoadmap}, {packLine, &d.packPath}} {
		m := x.re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("the summary has no line matching %s:\n%s", x.re, out)
		}
		*x.dst = m[1]
	}
	if len(d.tokens) != 5 {
		t.Fatalf("the summary shows %d tokens, want 5:\n%s", len(d.tokens), out)
	}
	return d
}

// list reads every page of a REST listing and answers its items.
func (d *demoProc) list(t *testing.T, path, field string, q url.Values) []map[string]any {
	t.Helper()
	var all []map[string]any
	q.Set("pageSize", "500")
	for {
		r := call(t, &d.proc, http.MethodGet, path+"?"+q.Encode(), d.tokens["admin"], "")
		if r.code != http.StatusOK {
			t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), r.code, r.raw)
		}
		items, _ := r.body[field].([]any)
		for _, it := range items {
			all = append(all, it.(map[string]any))
		}
		next, _ := r.body["nextPageToken"].(string)
		if next == "" {
			return all
		}
		q.Set("pageToken", next)
	}
}

// counts are what a second start must leave as it found: the roadmaps, the
// grants of both and the journal entries of the sample's.
type counts struct{ roadmaps, sampleGrants, ftsGrants, sampleEntries int }

func (d *demoProc) counts(t *testing.T) (counts, map[string]string) {
	c := counts{roadmaps: len(d.list(t, "/v1/roadmaps", "roadmaps", url.Values{}))}
	grants := d.list(t, "/v1/grants", "grants", url.Values{"roadmapId": {d.roadmapID}})
	c.sampleGrants = len(grants)
	byRef := map[string]string{}
	for _, g := range grants {
		byRef[g["reference"].(string)] = g["id"].(string)
		c.sampleEntries += len(d.list(t, "/v1/grants/"+g["id"].(string)+"/transactions", "transactions", url.Values{}))
	}
	c.ftsGrants = len(d.list(t, "/v1/grants", "grants", url.Values{"roadmapId": {d.ftsRoadmap}}))
	return c, byRef
}

// A newcomer runs `tranche demo`: every planted case has its flag, the audit
// pack verifies, the console answers, the FTS flows are there as a second
// roadmap; a second start on the same data loads nothing twice.
func TestDemoEndToEnd(t *testing.T) {
	dir := dataDir(t)
	d := startDemo(t, dir)
	t.Logf("first start:\n%s", d.out)

	// The programme the demo loaded: its day is its roadmap's start + 3 years.
	r := call(t, &d.proc, http.MethodGet, "/v1/roadmaps/"+d.roadmapID, d.tokens["admin"], "")
	if r.code != http.StatusOK {
		t.Fatalf("GET roadmap: %d %s", r.code, r.raw)
	}
	rm, _ := r.body["roadmap"].(map[string]any)
	sd, _ := rm["startDate"].(string)
	start, err := time.Parse(time.DateOnly, sd)
	if err != nil {
		t.Fatalf("roadmap startDate in %s: %v", r.raw, err)
	}
	prog := demo.Generate(1, demo.Anchor(start))
	first, grantIDs := d.counts(t)
	if first.sampleGrants != len(prog.Grants) {
		t.Errorf("the sample roadmap has %d grants, the programme %d", first.sampleGrants, len(prog.Grants))
	}
	if first.sampleEntries < 300 {
		t.Errorf("the sample roadmap has %d journal entries, want several hundred", first.sampleEntries)
	}
	if first.ftsGrants < 250 || first.roadmaps != 2 {
		t.Errorf("%d roadmaps, the FTS one with %d grants; want 2, and the FTS flows' grants (298)", first.roadmaps, first.ftsGrants)
	}
	milestones := map[string]string{}
	for _, m := range d.list(t, "/v1/roadmaps/"+d.roadmapID+"/milestones", "milestones", url.Values{}) {
		milestones[m["code"].(string)] = m["id"].(string)
	}

	// Each planted case: its flag, open, naming its grants or milestone.
	for _, c := range prog.Cases {
		q := url.Values{"roadmapId": {d.roadmapID}, "kind": {c.Kind}, "status": {"OPEN"}}
		for _, ref := range c.Grants {
			q.Set("grantId", grantIDs[ref])
			if flags := d.list(t, "/v1/flags", "flags", q); len(flags) == 0 {
				t.Errorf("planted case %q: no open %s flag involving grant %s", c.Name, c.Kind, ref)
			}
		}
		if c.Milestone == "" {
			continue
		}
		q.Del("grantId")
		found := false
		for _, f := range d.list(t, "/v1/flags", "flags", q) {
			subjects, _ := f["subjects"].([]any)
			for _, s := range subjects {
				s := s.(map[string]any)
				found = found || (s["type"] == "milestone" && s["id"] == milestones[c.Milestone])
			}
		}
		if !found {
			t.Errorf("planted case %q: no open %s flag naming milestone %s", c.Name, c.Kind, c.Milestone)
		}
	}

	// The pack is on disk and verifies against the database.
	if filepath.Dir(d.packPath) != func() string { a, _ := filepath.Abs(dir); return a }() {
		t.Errorf("pack written to %s, not in the data directory %s", d.packPath, dir)
	}
	out := cli(t, dir, "pack", "verify", "--allow-unsigned", d.packPath)
	t.Logf("pack verify:\n%s", out)

	// The console answers.
	resp, err := http.Get("http://" + d.httpAddr + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /signin: %d", resp.StatusCode)
	}

	// A second start finds the programme and loads nothing twice; its
	// tokens are new, and the first start's still work.
	d.stop(t, syscall.SIGINT)
	d2 := startDemo(t, dir)
	t.Logf("second start:\n%s", d2.out)
	if !strings.Contains(d2.out.String(), "is already loaded; loading nothing") {
		t.Errorf("the second start did not say it found the programme")
	}
	if d2.roadmapID != d.roadmapID || d2.ftsRoadmap != d.ftsRoadmap {
		t.Errorf("second start: roadmaps %s and %s, first %s and %s", d2.roadmapID, d2.ftsRoadmap, d.roadmapID, d.ftsRoadmap)
	}
	second, _ := d2.counts(t)
	if second != first {
		t.Errorf("after a second start %+v, after the first %+v", second, first)
	}
	if d2.tokens["admin"] == d.tokens["admin"] {
		t.Errorf("the second start printed the first start's admin token")
	}
	if r := call(t, &d2.proc, http.MethodGet, "/v1/roadmaps", d.tokens["admin"], ""); r.code != http.StatusOK {
		t.Errorf("the first start's admin token: %d %s", r.code, r.raw)
	}
	d2.stop(t, syscall.SIGINT)
}

// demo answers --help with its usage and serve's flags, and refuses a bad
// seed as a usage error.
func TestDemoUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"demo", "--help"}, nil, &out); err != nil {
		t.Fatalf("demo --help: %v", err)
	}
	for _, want := range []string{"usage: tranche demo", "-seed", "-http-addr", "-signing-key", "demo-audit-pack.xlsx"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo --help lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"help"}, nil, &out); err != nil || !strings.Contains(out.String(), "\n  demo ") {
		t.Errorf("tranche help does not list demo (%v):\n%s", err, out.String())
	}
	err := run(t.Context(), []string{"demo", "--seed", "-1"}, nil, io.Discard)
	if ee, ok := err.(exitError); !ok || ee.code != 2 {
		t.Errorf("demo --seed -1: %v, want a usage error", err)
	}
}
