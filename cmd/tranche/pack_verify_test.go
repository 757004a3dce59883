package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/reports"
)

// editPack rewrites one cell of a worksheet inside the pack's zip, as
// someone editing the file by hand would, and writes the result to a new
// file.
func editPack(t *testing.T, src, entry, ref string, fn func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(<c r="` + ref + `"[^>]*>(?:<v>|<is><t[^>]*>))([^<]*)`)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, e := range zr.File {
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == entry {
			edited := re.ReplaceAllFunc(data, func(m []byte) []byte {
				sub := re.FindSubmatch(m)
				return append(append([]byte{}, sub[1]...), fn(string(sub[2]))...)
			})
			if bytes.Equal(edited, data) {
				t.Fatalf("no cell %s in %s", ref, entry)
			}
			data = edited
		}
		w, err := zw.Create(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "edited.xlsx")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// An auditor checks a pack with the real binary: exit 0 when it verifies
// (with and without the database), 2 naming the sheet for an edited cell,
// the sequence for a forged head and for a chain rewritten after the pack was
// written; --json gives the report.
func TestPackVerifyEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := dataDir(t)
	keys := t.TempDir()
	prefix := filepath.Join(keys, "tranche-heads")
	cli(t, dir, "keys", "generate", "--out", prefix)
	cli(t, dir, "migrate")
	pub := prefix + ".pub"

	// A pack written by the library over the same cluster, signed with the key.
	cl, err := postgres.StartCluster(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Stop() })
	pool, err := postgres.Connect(ctx, cl.AppURL(), 4)
	if err != nil {
		t.Fatal(err)
	}
	op := audit.WithCall(auth.WithPrincipal(ctx, auth.Principal{TokenID: "t", Role: auth.Admin}), audit.Call{Method: "test"})
	donor, err := org.New(pool).Create(op, org.Organization{Name: "Donor", Kind: "DONOR"}, "d")
	if err != nil {
		t.Fatal(err)
	}
	impl, err := org.New(pool).Create(op, org.Organization{Name: "NGO", Kind: "IMPLEMENTER"}, "i")
	if err != nil {
		t.Fatal(err)
	}
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	rm, err := roadmap.New(pool).Create(op, roadmap.Input{Country: "AFG", Title: "Strategy",
		StartDate: day("2024-01-01"), EndDate: day("2026-12-31"), ReportingCurrency: "EUR"}, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.New(pool).CreateGrant(op, ledger.GrantInput{RoadmapID: uuid.MustParse(rm.ID),
		DonorOrgID: uuid.MustParse(donor.ID), RecipientOrgID: uuid.MustParse(impl.ID), Reference: "G-1", Title: "Grant",
		Currency: "EUR", Pledged: money.Amount{Value: decimal.RequireFromString("1000.50"), Currency: "EUR"},
		StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}, "g"); err != nil {
		t.Fatal(err)
	}
	key, err := audit.LoadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	st := audit.New(pool)
	st.SetSigningKey(key)
	pack := filepath.Join(t.TempDir(), "pack.xlsx")
	var buf bytes.Buffer
	if err := reports.Write(ctx, &buf, reports.Source{DB: pool, Audit: st}, reports.Scope{RoadmapID: uuid.MustParse(rm.ID)}); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if err := os.WriteFile(pack, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Genuine: human and JSON reports, flags before or after the file.
	code, out, stderr := cliExit(t, dir, "pack", "verify", pack, "--public-key", pub)
	if code != 0 || !strings.Contains(out, "verified:     true") || !strings.Contains(out, "chain:        extends the head") ||
		!strings.Contains(out, "signature:    valid, key") || !strings.Contains(out, "rederived:    identical to the pack") {
		t.Fatalf("genuine pack: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cliExit(t, dir, "pack", "verify", "--json", "--public-key", pub, pack)
	var rep struct {
		File     string
		Verified bool
		Sheets   []struct {
			Sheet string
			Rows  int64
			OK    bool
		}
		Head struct {
			Seq   int64
			Chain string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || !rep.Verified || rep.File != pack ||
		len(rep.Sheets) != len(reports.Layout)-1 || rep.Sheets[2].Sheet != reports.SheetGrants || rep.Sheets[2].Rows != 1 {
		t.Fatalf("genuine pack, JSON: exit %d (%v)\n%s%s", code, err, out, stderr)
	}
	seq := fmt.Sprint(rep.Head.Seq)

	manifest := "xl/worksheets/sheet11.xml"
	hashCell := ""
	xf, err := excelize.OpenFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	mrows, err := xf.GetRows(reports.SheetManifest)
	xf.Close()
	if err != nil {
		t.Fatal(err)
	}
	grantsSum := ""
	for i, r := range mrows {
		switch r[0] {
		case "chainHead.hash":
			hashCell = fmt.Sprintf("D%d", i+1)
		case "sheet:Grants":
			grantsSum = fmt.Sprintf("C%d", i+1)
		}
	}
	// A forgery: a pledge raised and the Grants checksum in the manifest
	// recomputed; the manifest's seal shows it, and the database names the
	// cell.
	edited := editPack(t, pack, "xl/worksheets/sheet3.xml", "K2", func(string) string { return "1000.51" })
	er, err := reports.VerifyFile(ctx, edited, reports.VerifyOptions{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	forged := editPack(t, edited, manifest, grantsSum, func(string) string { return er.Sheets[2].SHA256 })
	cases := []struct {
		name string
		env  string // TRANCHE_DATA_DIR
		args []string
		code int
		want []string // in stdout+stderr
	}{
		{"offline", dir, []string{"--offline", "--public-key", pub, pack}, 0, []string{"chain:        not checked: --offline"}},
		{"no database", t.TempDir(), []string{"--public-key", pub, pack}, 0, []string{"not checked: no database"}},
		{"the signing key's public half", dir, []string{"--signing-key", prefix + ".key", pack}, 0, []string{"valid, key " + audit.KeyID(key.Public().(ed25519.PublicKey))}},
		{"no trusted key", dir, []string{pack}, 2, []string{"sequence " + seq, reports.ProblemNoTrustedKey}},
		{"no trusted key, allowed", dir, []string{"--allow-unsigned", pack}, 0, []string{"not checked: no trusted public key"}},
		{"edited cell", dir, []string{"--public-key", pub, edited}, 2, []string{"sheet Grants", reports.ProblemChecksum}},
		{"edited cell and checksum", dir, []string{"--public-key", pub, forged}, 2,
			[]string{`sheet Grants row 2 column "K": ` + reports.ProblemRederived, `the file has "1000.51", the database gives "1000.50"`}},
		{"edited cell and checksum, offline", dir, []string{"--offline", "--public-key", pub, forged}, 2,
			[]string{"sheet Manifest: " + reports.ProblemManifestSeal, "rederived:    not checked: --offline"}},
		{"edited cell and checksum, not re-derived", dir, []string{"--no-rederive", "--public-key", pub, forged}, 2,
			[]string{"sheet Manifest: " + reports.ProblemManifestSeal, "chain:        extends the head"}},
		{"forged head", dir, []string{"--public-key", pub, editPack(t, pack, manifest, hashCell, func(h string) string { return strings.Repeat("0", len(h)) })},
			2, []string{"sequence " + seq, audit.HeadBadSig}},
		{"not a pack", dir, []string{"--public-key", pub, pub}, 2, []string{reports.ProblemNotAPack}},
		{"missing file", dir, []string{"--public-key", pub, pack + ".none"}, 2, []string{"no such file"}},
		{"no file", dir, []string{"--public-key", pub}, 2, []string{"usage: tranche pack verify"}},
		{"two files", dir, []string{pack, pack}, 2, []string{"one pack"}},
	}
	for _, c := range cases {
		code, out, stderr := cliExit(t, c.env, append([]string{"pack", "verify"}, c.args...)...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, out, stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out+stderr, w) {
				t.Errorf("%s: output does not say %q:\n%s%s", c.name, w, out, stderr)
			}
		}
	}

	// A superuser rewrites an event before the head and re-hashes the tail:
	// the chain verifies on its own, but no longer has the pack's head.
	conn, err := pgx.Connect(ctx, cl.OwnerURL())
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			`SET LOCAL session_replication_role = replica`,
			`UPDATE audit_events SET change = replace(change, '"NGO"', '"N.G.O."') WHERE entity_type = 'organization' AND change LIKE '%"NGO"%'`,
			`UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL WHERE seq >= 1`,
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
	code, out, stderr = cliExit(t, dir, "pack", "verify", "--public-key", pub, pack)
	if code != 2 || !strings.Contains(stderr, "sequence "+seq) || !strings.Contains(stderr, audit.HeadMismatch) ||
		!strings.Contains(out, "chain:        FAILED at sequence "+seq) {
		t.Fatalf("rewritten chain: exit %d\n%s%s", code, out, stderr)
	}
	// Offline, the file alone still checks out.
	if code, out, stderr := cliExit(t, dir, "pack", "verify", "--offline", "--public-key", pub, pack); code != 0 {
		t.Fatalf("rewritten chain, offline: exit %d\n%s%s", code, out, stderr)
	}
}

// tranche pack verify -h prints its usage and succeeds; misuse is exit 2.
func TestPackVerifyUsage(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none"}
	for _, args := range [][]string{{"pack", "verify", "-h"}, {"pack", "verify", "--help"}, {"pack", "verify", "x.xlsx", "-h"}, {"help", "pack", "verify"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, env, &out); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		for _, w := range []string{"usage: tranche pack verify", "-public-key", "-allow-unsigned", "-offline", "-no-rederive", "-json"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: usage does not mention %q:\n%s", args, w, out.String())
			}
		}
	}
	for _, args := range [][]string{{"pack", "verify"}, {"pack", "verify", "--no-such-flag", "x"}, {"pack", "verify", "a", "b"}} {
		err := run(context.Background(), args, env, io.Discard)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: %v, want exit status 2", args, err)
		}
	}
}
