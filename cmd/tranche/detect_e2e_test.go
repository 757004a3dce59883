package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A thresholds file the service cannot use stops serve before it starts,
// with exit status 2 naming the flag, the file and the field.
func TestServeRefusesBadDetectionThresholds(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	file := filepath.Join(t.TempDir(), "thresholds.json")
	if err := os.WriteFile(file, []byte(`{"idleMonths": 0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--data-dir", dir, "--detect-config", file)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("serve with a bad thresholds file: %v, want exit status 2\n%s", err, stderr.String())
	}
	for _, want := range []string{"--detect-config (env TRANCHE_DETECT_CONFIG)", file, "idleMonths"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("message %q does not say %q", stderr.String(), want)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the data directory was created: serve got past its configuration")
	}
}

// serve with thresholds and a detection interval detects in the background
// from the start and answers detection requests over REST.
func TestServeDetects(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	file := filepath.Join(t.TempDir(), "thresholds.json")
	if err := os.WriteFile(file, []byte(`{"duplicateWindowDays": 3, "stageDwellDays": {"TENDERED": 90}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir, "--detect-config", file, "--detect-interval", "10s")
	_, admin := mintToken(t, dir, "--role", "admin")
	rm := call(t, s, "POST", "/v1/roadmaps", admin,
		`{"roadmap":{"country":"AFG","title":"Strategy","startDate":"2024-01-01","endDate":"2026-12-31","reportingCurrency":"USD"},"requestId":"r1"}`)
	if rm.code != 200 {
		t.Fatalf("roadmap: %d %s", rm.code, rm.raw)
	}
	id := rm.body["roadmap"].(map[string]any)["id"].(string)
	r := call(t, s, "POST", "/v1/flags:detect", admin, `{"roadmapId":"`+id+`","asOf":"2025-06-30"}`)
	if counts, _ := r.body["counts"].([]any); r.code != 200 || len(counts) != 9 || r.body["asOf"] != "2025-06-30" {
		t.Fatalf("detect: %d %s", r.code, r.raw)
	}
	if l := call(t, s, "GET", "/v1/flags?roadmapId="+id, admin, ""); l.code != 200 {
		t.Fatalf("list: %d %s", l.code, l.raw)
	}
	// The background round after the roadmap was created runs it as the
	// operator (the first round, at start, found no roadmap).
	deadline := time.Now().Add(40 * time.Second)
	for {
		ev := call(t, s, "GET", "/v1/audit-events?entityType=detection_run", admin, "")
		found := false
		for _, e := range asEvents(ev.body["events"]) {
			found = found || (e["actorRole"] == "operator" && strings.Contains(e["change"].(string), id))
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background detection run of the roadmap audited in 40 s: %s", ev.raw)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func asEvents(v any) []map[string]any {
	var out []map[string]any
	list, _ := v.([]any)
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
