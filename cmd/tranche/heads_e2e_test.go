package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// cliExit runs a tranche command that may fail and returns its exit status,
// stdout and stderr.
func cliExit(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "TRANCHE_DATA_DIR="+dir, "TRANCHE_SIGNING_KEY=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("tranche %v: %v", args, err)
	return 0, "", ""
}

// An operator generates a key pair and serves with it; an auditor saves the
// signed head from the API and later checks with the published public key
// that today's chain extends it. A forged head, a head signed by another key,
// an unsigned head, and a rewritten (and re-hashed) chain tail are refused
// with exit status 2 naming the sequence.
func TestSignedHeadsEndToEnd(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	keys := t.TempDir()
	prefix := filepath.Join(keys, "tranche-heads")
	cli(t, dir, "keys", "generate", "--out", prefix)
	cli(t, dir, "keys", "generate", "--out", filepath.Join(keys, "other"))
	if code, _, stderr := cliExit(t, dir, "keys", "generate", "--out", prefix); code != 2 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("keys generate over an existing pair: exit %d %s", code, stderr)
	}
	s := startServer(t, dir, "--signing-key", prefix+".key")
	_, admin := mintToken(t, dir, "--role", "admin")
	_, auditor := mintToken(t, dir, "--role", "auditor")
	org := func(i int) {
		t.Helper()
		body := fmt.Sprintf(`{"organization":{"name":"Donor %d","kind":"DONOR"},"requestId":"heads-%d"}`, i, i)
		if r := call(t, s, "POST", "/v1/organizations", admin, body); r.code != 200 {
			t.Fatalf("create organisation: %d %s", r.code, r.raw)
		}
	}
	for i := range 4 {
		org(i)
	}
	donorOrg := call(t, s, "GET", "/v1/organizations?pageSize=1", admin, "").body["organizations"].([]any)[0].(map[string]any)["id"].(string)
	_, donor := mintToken(t, dir, "--role", "donor", "--org", donorOrg)
	if r := call(t, s, "GET", "/v1/audit-events:head", donor, ""); r.code != 403 {
		t.Fatalf("donor asks for the head: %d %s, want 403", r.code, r.raw)
	}
	head := call(t, s, "GET", "/v1/audit-events:head", auditor, "")
	if head.code != 200 || head.body["signed"] != true {
		t.Fatalf("head: %d %s", head.code, head.raw)
	}
	seq := head.body["seq"].(string) // int64 travels as a JSON string
	saved := filepath.Join(keys, "head.json")
	if err := os.WriteFile(saved, []byte(head.raw), 0o644); err != nil {
		t.Fatal(err)
	}
	pub := prefix + ".pub"

	// More changes later: the chain extends the saved head.
	for i := 4; i < 7; i++ {
		org(i)
	}
	if code, out, stderr := cliExit(t, dir, "verify", "--since-head", saved, "--public-key", pub); code != 0 || !strings.Contains(out, "extends it:     true") {
		t.Fatalf("genuine head: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := cliExit(t, dir, "verify", "--json", "--since-head", saved, "--public-key", pub); code != 0 {
		t.Fatalf("genuine head, JSON: exit %d\n%s%s", code, out, stderr)
	} else {
		var rep struct {
			Verified  bool
			SinceHead struct {
				Seq      int64
				Extended bool
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Verified || !rep.SinceHead.Extended || fmt.Sprint(rep.SinceHead.Seq) != seq {
			t.Fatalf("JSON report %s (%v)", out, err)
		}
	}
	// The server's own key serves as the trusted key when no public key is given.
	if code, out, stderr := cliExit(t, dir, "verify", "--since-head", saved, "--signing-key", prefix+".key"); code != 0 {
		t.Fatalf("genuine head, signing key: exit %d\n%s%s", code, out, stderr)
	}

	var m map[string]any
	if err := json.Unmarshal([]byte(head.raw), &m); err != nil {
		t.Fatal(err)
	}
	variant := func(name string, change func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		change(c)
		b, _ := json.Marshal(c)
		p := filepath.Join(keys, name+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := m["hash"].(string)
	flipped := map[byte]string{'0': "1"}[hash[0]]
	if flipped == "" {
		flipped = "0"
	}
	refusals := []struct {
		name string
		args []string
		want []string
	}{
		{"hash changed", []string{"--since-head", variant("hash", func(c map[string]any) { c["hash"] = flipped + hash[1:] }), "--public-key", pub},
			[]string{"sequence " + seq, "HEAD_BAD_SIGNATURE"}},
		{"seq changed", []string{"--since-head", variant("seq", func(c map[string]any) { c["seq"] = "2" }), "--public-key", pub},
			[]string{"sequence 2", "HEAD_BAD_SIGNATURE"}},
		{"another key", []string{"--since-head", saved, "--public-key", filepath.Join(keys, "other.pub")},
			[]string{"sequence " + seq, "HEAD_BAD_SIGNATURE"}},
		{"unsigned", []string{"--since-head", variant("unsigned", func(c map[string]any) {
			delete(c, "signature")
			c["signed"] = false
		}), "--public-key", pub}, []string{"sequence " + seq, "HEAD_UNSIGNED", "--allow-unsigned"}},
		{"no trusted key", []string{"--since-head", saved}, []string{"--public-key"}},
		{"beyond the chain", []string{"--allow-unsigned", "--since-head", variant("beyond", func(c map[string]any) {
			delete(c, "signature")
			c["seq"] = "100000"
		})}, []string{"sequence 100000", "HEAD_BEYOND_END"}},
	}
	for _, tc := range refusals {
		code, out, stderr := cliExit(t, dir, append([]string{"verify"}, tc.args...)...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s%s", tc.name, code, out, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: %q does not say %q", tc.name, stderr, w)
			}
		}
	}

	// Someone with database access rewrites an event before the head and
	// re-hashes everything after it: the chain verifies on its own, but no
	// longer extends the saved head.
	ctx := context.Background()
	cl, err := postgres.StartCluster(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	conn, err := pgx.Connect(ctx, cl.OwnerURL())
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			`SET LOCAL session_replication_role = replica`,
			`UPDATE audit_events SET change = replace(change, 'Donor 1', 'Donor X') WHERE entity_type = 'organization' AND change LIKE '%Donor 1"%'`,
			`UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL
			  WHERE seq >= (SELECT seq FROM audit_events WHERE change LIKE '%Donor X"%')`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cliExit(t, dir, "verify"); code != 0 {
		t.Fatalf("the re-hashed chain should verify on its own: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr := cliExit(t, dir, "verify", "--since-head", saved, "--public-key", pub)
	if code != 2 || !strings.Contains(stderr, "sequence "+seq) || !strings.Contains(stderr, "HEAD_MISMATCH") || !strings.Contains(out, "extends it:     false") {
		t.Fatalf("rewritten tail: exit %d\n%s%s", code, out, stderr)
	}
}
