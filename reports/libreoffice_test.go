package reports_test

import (
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/reports"
)

// shown is an amount as a spreadsheet shows it with the pack's number
// format (#,##0.00 for two minor units): thousands separated.
func shown(d decimal.Decimal, cur string) string {
	s := money.Format(d, cur)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// A real spreadsheet application opens the pack: LibreOffice Calc, headless,
// converts every sheet to CSV with cell contents as shown. The sheets and
// headers are the layout's, the Grants and Transactions rows show the API's
// figures with each currency's minor units, and the canonical rows read back
// from what LibreOffice shows give the manifest's row counts and checksums.
// .ci/run installs LibreOffice (libreoffice-calc-nogui); the test skips only
// where soffice is not on PATH.
func TestPackOpensInLibreOffice(t *testing.T) {
	t.Parallel()
	soffice, err := exec.LookPath("soffice")
	if err != nil {
		t.Skip("LibreOffice is not installed (no soffice on PATH): .ci/run installs libreoffice-calc-nogui; this test then checks the pack opens in it")
	}
	w := newWorld(t)
	dir := t.TempDir()
	pack := filepath.Join(dir, "pack.xlsx")
	if err := os.WriteFile(pack, w.pack(t, reports.Scope{}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "csv")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Filter options: comma, double quote, UTF-8, from line 1, language
	// en-US (1033: "," thousands, "." decimals), …, cell contents as shown,
	// every sheet (-1; LibreOffice >= 7.2 writes pack-<Sheet>.csv each).
	cmd := exec.CommandContext(ctx, soffice, "-env:UserInstallation=file://"+filepath.Join(dir, "profile"),
		"--headless", "--norestore", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,1033,false,true,true,false,false,-1",
		"--outdir", out, pack)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, b)
	}

	// Saved again by LibreOffice (shared strings, its own styles and XML),
	// the pack still verifies: the checksums depend on cell values only.
	resaved := filepath.Join(dir, "resaved")
	cmd = exec.CommandContext(ctx, soffice, "-env:UserInstallation=file://"+filepath.Join(dir, "profile"),
		"--headless", "--norestore", "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", resaved, pack)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, b)
	}
	rep, err := reports.VerifyFile(ctx, filepath.Join(resaved, "pack.xlsx"),
		reports.VerifyOptions{PublicKey: w.key.Public().(ed25519.PublicKey), Audit: w.audit})
	if err != nil || !rep.Verified {
		t.Errorf("the pack saved again by LibreOffice does not verify: %v %q", err, rep.Problems)
	}

	sheets := map[string][][]string{}
	for _, s := range reports.Layout {
		f, err := os.Open(filepath.Join(out, "pack-"+s.Name+".csv"))
		if err != nil {
			t.Fatalf("LibreOffice wrote no CSV for sheet %s (one CSV per sheet needs LibreOffice >= 7.2): %v", s.Name, err)
		}
		r := csv.NewReader(f)
		r.FieldsPerRecord = -1
		rows, err := r.ReadAll()
		f.Close()
		if err != nil {
			t.Fatalf("%s.csv: %v", s.Name, err)
		}
		if len(rows) == 0 || strings.Join(rows[0], "\x00") != strings.Join(s.Headers(), "\x00") {
			t.Fatalf("%s: header %q, want %q", s.Name, rows[:min(1, len(rows))], s.Headers())
		}
		width := len(s.Headers())
		for i := range rows {
			for len(rows[i]) < width {
				rows[i] = append(rows[i], "")
			}
		}
		sheets[s.Name] = rows[1:]
	}

	// Grants: the reconciliation API's figures, shown with the minor units.
	grants := sheets[reports.SheetGrants]
	if len(grants) != 2 {
		t.Fatalf("%d grant rows, want 2", len(grants))
	}
	for i, g := range []ledger.Grant{w.eur, w.jpy} {
		a := try(w.l.Reconcile(coord, uuid.MustParse(g.ID), w.asOf)).must(t).Agreement
		r := grants[i]
		want := []string{g.ID, g.Reference, g.Title, g.DonorOrgID, r[4], g.RecipientOrgID, "Demining NGO",
			g.StartDate.Format(time.DateOnly), g.EndDate.Format(time.DateOnly), r[9],
			shown(a.Pledged, g.Currency), g.Currency, shown(a.Committed, g.Currency), g.Currency,
			shown(a.Disbursed, g.Currency), g.Currency, shown(a.Received, g.Currency), g.Currency,
			shown(a.Spent, g.Currency), g.Currency}
		if strings.Join(r, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("Grants row %d in LibreOffice\n got %q\nwant %q", i+2, r, want)
		}
	}
	if grants[0][10] != "1,000,000.00" || grants[1][10] != "50,000,000" {
		t.Errorf("pledges shown %q and %q, want 1,000,000.00 and 50,000,000", grants[0][10], grants[1][10])
	}

	// Transactions: the journal, in order, amounts as the API has them.
	txs := sheets[reports.SheetTransactions]
	if len(txs) != len(w.entries) {
		t.Fatalf("%d transaction rows, want %d", len(txs), len(w.entries))
	}
	for i, e := range w.entries {
		r := txs[i]
		want := []string{e.ID, e.GrantID, e.Type, e.Bucket, e.ValueDate.Format(time.DateOnly),
			shown(e.Amount, e.Currency), e.Currency, shown(e.ReportingAmount, "USD"), "USD"}
		got := []string{r[0], r[1], r[3], r[4], r[5], r[6], r[7], r[10], r[11]}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("Transactions row %d in LibreOffice\n got %q\nwant %q", i+2, got, want)
		}
	}

	// Manifest: every sheet's row count and checksum, recomputed from the
	// canonical rows of what LibreOffice shows.
	lines := map[string][]string{}
	for _, r := range sheets[reports.SheetManifest] {
		if n, ok := strings.CutPrefix(r[0], "sheet:"); ok {
			lines[n] = r
		}
	}
	for _, s := range reports.Layout[:len(reports.Layout)-1] {
		rows := sheets[s.Name]
		canon := make([][]string, len(rows))
		for i, r := range rows {
			canon[i] = canonicalShown(t, s, r)
		}
		m := lines[s.Name]
		if m == nil {
			t.Errorf("no manifest line for %s", s.Name)
			continue
		}
		if m[1] != fmt.Sprint(len(rows)) || m[2] != reports.CanonicalSHA256(canon) {
			t.Errorf("%s in LibreOffice: %d rows, SHA-256 %s; the manifest says %s rows, %s", s.Name, len(rows), reports.CanonicalSHA256(canon), m[1], m[2])
		}
	}
}

// canonicalShown is the canonical form (reports doc) of a row as a
// spreadsheet shows it: amounts without their thousands separators.
func canonicalShown(t *testing.T, s reports.Sheet, r []string) []string {
	t.Helper()
	var out []string
	i := 0
	for _, c := range s.Columns {
		v := r[i]
		switch c.Kind {
		case reports.Amount:
			if v != "" {
				v = money.Format(decimal.RequireFromString(strings.ReplaceAll(v, ",", "")), r[i+1])
			}
			out = append(out, v, r[i+1])
			i += 2
			continue
		case reports.Decimal, reports.Integer:
			if v != "" {
				v = decimal.RequireFromString(v).String()
			}
		}
		out = append(out, v)
		i++
	}
	return out
}
