package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/server"
	"github.com/tranche-ledger/tranche/reports"
)

// tranche pack -h prints its usage and succeeds without a database.
func TestPackHelp(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none"}
	for _, args := range [][]string{{"pack", "-h"}, {"pack", "--help"}, {"help", "pack"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, env, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, w := range []string{"usage: tranche pack", "-roadmap", "-as-of", "-force", "TRANCHE_SIGNING_KEY", ".partial-"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: usage lacks %q", args, w)
			}
		}
	}
}

// Misuse is exit status 2, naming the flag, before any database is opened
// (the URL below answers nothing).
func TestPackMisuse(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none"}
	existing := filepath.Join(t.TempDir(), "there.xlsx")
	if err := os.WriteFile(existing, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	const rm = "0190a0a0-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--roadmap", rm}, "-o FILE is required"},
		{[]string{"-o", "x.xlsx"}, "--roadmap: is required"},
		{[]string{"--roadmap", "nope", "-o", "x.xlsx"}, "--roadmap: not an id"},
		{[]string{"--roadmap", rm, "--donor", "x", "-o", "x.xlsx"}, "--donor: not an id"},
		{[]string{"--roadmap", rm, "--from", "2024-13-01", "-o", "x.xlsx"}, "--from: not a date"},
		{[]string{"--roadmap", rm, "--to", "9999-01-01", "-o", "x.xlsx"}, "--to:"},
		{[]string{"--roadmap", rm, "--from", "2024-02-02", "--to", "2024-02-01", "-o", "x.xlsx"}, "--to: 2024-02-01 is before from"},
		{[]string{"--roadmap", rm, "--as-of", "2999-01-01T00:00:00Z", "-o", "x.xlsx"}, "--as-of: 2999-01-01T00:00:00Z is in the future"},
		{[]string{"--roadmap", rm, "--as-of", "today", "-o", "x.xlsx"}, "--as-of: not an RFC 3339 time"},
		{[]string{"--roadmap", rm, "-o", existing}, "already exists; --force"},
		{[]string{"--roadmap", rm, "-o", "x.xlsx", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := run(context.Background(), append([]string{"pack"}, tc.args...), env, io.Discard)
			ee, ok := err.(exitError)
			if !ok || ee.code != 2 || !strings.Contains(ee.msg, tc.want) {
				t.Fatalf("got %v, want exit 2 with %q", err, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Fatal("the existing file was touched")
	}
}

// On a terminal the progress is one line redrawn with \r: a bar of sheets,
// the sheet, its rows, elapsed; elsewhere one plain line per report.
func TestPackProgressDisplay(t *testing.T) {
	t.Parallel()
	var tty, plain bytes.Buffer
	start := time.Now()
	pt := &packProgress{w: &tty, tty: true, start: start, sheetIdx: map[string]int{}}
	pp := &packProgress{w: &plain, start: start, sheetIdx: map[string]int{}}
	for i, s := range reports.Layout {
		pt.sheetIdx[s.Name], pp.sheetIdx[s.Name] = i, i
	}
	for _, p := range []*packProgress{pt, pp} {
		p.update("Cover", 10, true)
		p.update("Transactions", 10000, false)
		p.update("Transactions", 20000, true)
		p.finish("")
	}
	if got := tty.String(); strings.Count(got, "\r") != 2 || !strings.Contains(got, "Transactions") ||
		!strings.Contains(got, "20000 rows") || !strings.Contains(got, fmt.Sprintf("%2d/%d", 4, len(reports.Layout))) || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
		// The middle report came within 100 ms of the first and was not drawn.
		t.Fatalf("terminal display %q", got)
	}
	want := []string{"pack: Cover: 10 rows, done", "pack: Transactions: 10000 rows so far", "pack: Transactions: 20000 rows, done"}
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 3 || strings.Contains(plain.String(), "\r") {
		t.Fatalf("plain display %q", plain.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d %q, want %q…", i, lines[i], w)
		}
	}
}

// tranche pack on the real binary, beside a running server on the same
// embedded cluster: the file is the pack (signed head), byte-identical to the
// API's download of the same scope and as-of and to -o -; no partial file is
// left; an existing file needs --force; an unknown roadmap writes nothing.
func TestPackEndToEnd(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	keys := t.TempDir()
	key := filepath.Join(keys, "heads")
	cli(t, dir, "keys", "generate", "--out", key)
	s := startServer(t, dir, "--signing-key", key+".key")
	_, admin := mintToken(t, dir, "--role", "admin")
	_, auditor := mintToken(t, dir, "--role", "auditor")
	post := func(path, body string) map[string]any {
		t.Helper()
		r := call(t, s, "POST", path, admin, body)
		if r.code != 200 {
			t.Fatalf("POST %s: %d %s", path, r.code, r.raw)
		}
		return r.body
	}
	id := func(m map[string]any, k string) string { return m[k].(map[string]any)["id"].(string) }
	donor := id(post("/v1/organizations", `{"organization":{"name":"Donor","kind":"DONOR"},"requestId":"o1"}`), "organization")
	ngo := id(post("/v1/organizations", `{"organization":{"name":"NGO","kind":"IMPLEMENTER"},"requestId":"o2"}`), "organization")
	rm := id(post("/v1/roadmaps", `{"roadmap":{"country":"AFG","title":"Plan","startDate":"2024-01-01","endDate":"2026-12-31","reportingCurrency":"USD"},"requestId":"r1"}`), "roadmap")
	grant := id(post("/v1/grants", fmt.Sprintf(`{"grant":{"roadmapId":%q,"donorOrgId":%q,"recipientOrgId":%q,"reference":"G-1","title":"Grant","currency":"USD",
		"pledged":{"amount":"1000.00","currency":"USD"},"startDate":"2024-01-01","endDate":"2025-12-31"},"requestId":"g1"}`, rm, donor, ngo)), "grant")
	post("/v1/grants/"+grant+"/transactions", `{"transaction":{"type":"COMMITMENT","amount":{"amount":"1000.00","currency":"USD"},"valueDate":"2024-02-01"},"requestId":"t1"}`)
	asOf := time.Now().UTC().Format(time.RFC3339Nano)

	out := filepath.Join(t.TempDir(), "pack.xlsx")
	// A symbolic link where an older version put its partial file is not
	// followed: what it points to is left as it was.
	sentinel := filepath.Join(t.TempDir(), "sentinel")
	if err := os.WriteFile(sentinel, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sentinel, out+".partial"); err != nil {
		t.Fatal(err)
	}
	args := []string{"pack", "--roadmap", rm, "--donor", donor, "--as-of", asOf, "--signing-key", key + ".key"}
	code, stdout, stderr := cliExit(t, dir, append(args, "-o", out)...)
	if code != 0 || !strings.Contains(stdout, "wrote "+out) {
		t.Fatalf("pack: exit %d\n%s%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(sentinel); string(b) != "keep" {
		t.Errorf("a link in the way was followed: the file it points to holds %d bytes", len(b))
	}
	// Not a terminal: plain progress lines, no redraws.
	if !strings.Contains(stderr, "pack: Cover: ") || !strings.Contains(stderr, "pack: Manifest: ") || strings.Contains(stderr, "\r") {
		t.Errorf("progress on a pipe:\n%s", stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.partial-*")); len(left) != 0 {
		t.Errorf("partial files left: %q", left)
	}
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := f.GetRows("Manifest")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var flat strings.Builder
	for _, r := range manifest {
		flat.WriteString(strings.Join(r, "\t") + "\n")
	}
	if !strings.Contains(flat.String(), "chainHead.signature") || strings.Contains(flat.String(), "unsigned") {
		t.Errorf("the Manifest's head is not signed:\n%s", flat.String())
	}

	// The API serves the same bytes for the same scope and as-of.
	req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/v1/audit-packs:download?roadmapId="+rm+"&donorOrgId="+donor+"&asOf="+asOf, nil)
	req.Header.Set("Authorization", "Bearer "+auditor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	api, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != server.PackContentType {
		t.Fatalf("download: %d %s %.300s", resp.StatusCode, resp.Header, api)
	}
	if !bytes.Equal(api, data) {
		t.Errorf("the API's pack (%d bytes) differs from tranche pack's (%d bytes)", len(api), len(data))
	}

	// -o - writes the same bytes to stdout.
	if code, stdout, stderr := cliExit(t, dir, append(args, "-o", "-")...); code != 0 || stdout != string(data) {
		t.Errorf("-o -: exit %d, %d bytes, want %d\n%s", code, len(stdout), len(data), stderr)
	}

	// An existing file stays unless --force.
	if code, _, stderr := cliExit(t, dir, append(args, "-o", out)...); code != 2 || !strings.Contains(stderr, "already exists") {
		t.Errorf("over an existing file: exit %d %s", code, stderr)
	}
	if code, _, stderr := cliExit(t, dir, append(args, "-o", out, "--force")...); code != 0 {
		t.Errorf("--force: exit %d %s", code, stderr)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, data) {
		t.Error("the pack rewritten with --force differs")
	}

	// An unknown roadmap is refused and leaves nothing behind.
	missing := filepath.Join(t.TempDir(), "missing.xlsx")
	if code, _, stderr := cliExit(t, dir, "pack", "--roadmap", "0190a0a0-0000-7000-8000-000000000000", "-o", missing); code != 2 || !strings.Contains(stderr, "not found") {
		t.Errorf("unknown roadmap: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed run", missing)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(missing), ".*.partial-*")); len(left) != 0 {
		t.Errorf("partial files left after a failed run: %q", left)
	}
}
