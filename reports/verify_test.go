package reports_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/reports"
)

// rezip returns the pack with the named zip entry rewritten by edit, the
// way someone editing the file by hand (or with a script) would.
func rezip(t *testing.T, b []byte, name string, edit func([]byte) []byte) []byte {
	t.Helper()
	zr := try(zip.NewReader(bytes.NewReader(b), int64(len(b)))).must(t)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	found := false
	for _, e := range zr.File {
		rc := try(e.Open()).must(t)
		data := try(io.ReadAll(rc)).must(t)
		rc.Close()
		if e.Name == name {
			found = true
			edited := edit(data)
			if bytes.Equal(edited, data) {
				t.Fatalf("the edit of %s changed nothing", name)
			}
			data = edited
		}
		wr := try(zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: e.Modified})).must(t)
		if _, err := wr.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("no %s in the pack", name)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// sheetXML is the zip entry of a Layout sheet (excelize numbers them in
// order).
func sheetXML(name string) string {
	for i, s := range reports.Layout {
		if s.Name == name {
			return fmt.Sprintf("xl/worksheets/sheet%d.xml", i+1)
		}
	}
	panic("no sheet " + name)
}

// setCell replaces the value of cell ref (a number or an inline string) in
// a worksheet's XML by fn of the old value.
func setCell(ref string, fn func(old string) string) func([]byte) []byte {
	re := regexp.MustCompile(`(<c r="` + ref + `"[^>]*>(?:<v>|<is><t[^>]*>))([^<]*)`)
	return func(x []byte) []byte {
		return re.ReplaceAllFunc(x, func(m []byte) []byte {
			sub := re.FindSubmatch(m)
			return append(append([]byte{}, sub[1]...), fn(string(sub[2]))...)
		})
	}
}

func to(v string) func(string) string { return func(string) string { return v } }

// deleteRow takes <row r="n"> out of a worksheet's XML.
func deleteRow(n int) func([]byte) []byte {
	re := regexp.MustCompile(`<row r="` + strconv.Itoa(n) + `"[^>]*>.*?</row>`)
	return func(x []byte) []byte { return re.ReplaceAll(x, nil) }
}

// manifestCell is the Manifest cell of an entry's value column (D) or
// another column.
func manifestCell(t *testing.T, b []byte, entry, col string) string {
	t.Helper()
	f := open(t, b)
	rows := try(f.GetRows(reports.SheetManifest)).must(t)
	for i, r := range rows {
		if len(r) > 0 && r[0] == entry {
			return fmt.Sprintf("%s%d", col, i+1)
		}
	}
	t.Fatalf("no manifest line %s", entry)
	return ""
}

func flipHex(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

func verify(t *testing.T, b []byte, opts reports.VerifyOptions) reports.VerifyReport {
	t.Helper()
	rep, err := reports.Verify(context.Background(), bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verified != (len(rep.Problems) == 0) {
		t.Fatalf("verified %v with problems %v", rep.Verified, rep.Problems)
	}
	return rep
}

// want is what the first matching problem must say.
type want struct {
	code, sheet, column string
	row                 int
	seq                 int64
	hasSeq              bool
}

func checkProblem(t *testing.T, rep reports.VerifyReport, w want) {
	t.Helper()
	if rep.Verified {
		t.Fatalf("verified, want %s", w.code)
	}
	for _, p := range rep.Problems {
		if p.Code != w.code {
			continue
		}
		if p.Sheet != w.sheet || p.Row != w.row || (w.column != "" && p.Column != w.column) || p.HasSeq != w.hasSeq || p.Seq != w.seq {
			t.Errorf("%s at %q, want %+v", p.Code, p.String(), w)
		}
		return
	}
	t.Errorf("no %s among %q", w.code, rep.Problems)
}

func TestVerifyPack(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pub := w.key.Public().(ed25519.PublicKey)
	good := w.pack(t, reports.Scope{})
	trusted := reports.VerifyOptions{PublicKey: pub, Audit: w.audit}

	rep := verify(t, good, trusted)
	if !rep.Verified {
		t.Fatalf("an untouched pack does not verify: %q", rep.Problems)
	}
	head := rep.Head
	if !head.Included || !head.Signed || !strings.HasPrefix(head.Signature, "valid, key "+audit.KeyID(pub)) ||
		!strings.HasPrefix(head.Chain, "extends the head") || len(rep.Sheets) != len(reports.Layout)-1 || rep.Format != reports.Format {
		t.Fatalf("report of an untouched pack: %+v", rep)
	}
	for _, s := range rep.Sheets {
		if !s.OK || s.Rows != s.ManifestRows || s.SHA256 != s.ManifestSHA256 {
			t.Errorf("sheet %+v", s)
		}
	}
	seq := head.Seq
	hashCell := manifestCell(t, good, "chainHead.hash", "D")
	seqCell := manifestCell(t, good, "chainHead.sequence", "D")
	grantsSum := manifestCell(t, good, "sheet:Grants", "C")
	txRows := len(w.entries) + 1 // the last row of Transactions

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherStore := audit.New(w.db.App)
	otherStore.SetSigningKey(otherKey)
	var otherSigned, unsigned bytes.Buffer
	for _, c := range []struct {
		st  *audit.Store
		buf *bytes.Buffer
	}{{otherStore, &otherSigned}, {audit.New(w.db.App), &unsigned}} {
		if err := reports.Write(context.Background(), c.buf, reports.Source{DB: w.db.App, Audit: c.st},
			reports.Scope{RoadmapID: w.roadmapID, AsOf: w.asOf}); err != nil {
			t.Fatal(err)
		}
	}
	// 17 significant digits, as some spreadsheet applications save doubles.
	resaved := func(old string) string {
		f, _ := strconv.ParseFloat(old, 64)
		return strconv.FormatFloat(f, 'g', 17, 64)
	}

	cases := []struct {
		name string
		pack []byte
		opts reports.VerifyOptions
		want *want // nil: verifies
	}{
		{"untouched, offline", good, reports.VerifyOptions{PublicKey: pub}, nil},
		{"re-saved with 17 significant digits", rezip(t, good, sheetXML(reports.SheetTransactions),
			setCell(`[GIKMN](?:[2-9]|\d\d+)`, resaved)), trusted, nil}, // amounts and rates
		{"a date saved as an ISO 8601 date cell", rezip(t, good, sheetXML(reports.SheetGrants), func(x []byte) []byte {
			return regexp.MustCompile(`<c r="H2"([^>]*)><v>[^<]*</v>`).ReplaceAll(x, []byte(`<c r="H2"$1 t="d"><v>2024-01-01T00:00:00</v>`))
		}), trusted, nil},
		{"edited amount", rezip(t, good, sheetXML(reports.SheetGrants), setCell("K2", to("1000001"))), trusted,
			&want{code: reports.ProblemChecksum, sheet: reports.SheetGrants}},
		{"edited text", rezip(t, good, sheetXML(reports.SheetTransactions), setCell("D2", to("RECEIPT"))), trusted,
			&want{code: reports.ProblemChecksum, sheet: reports.SheetTransactions}},
		{"half a yen", rezip(t, good, sheetXML(reports.SheetGrants), setCell("K3", to("50000000.5"))), trusted,
			&want{code: reports.ProblemCell, sheet: reports.SheetGrants, row: 3, column: "K"}},
		{"date with a time", rezip(t, good, sheetXML(reports.SheetGrants), setCell("H2", func(o string) string { return o + ".25" })), trusted,
			&want{code: reports.ProblemCell, sheet: reports.SheetGrants, row: 2, column: "H"}},
		{"row deleted inside", rezip(t, good, sheetXML(reports.SheetTransactions), deleteRow(3)), trusted,
			&want{code: reports.ProblemCell, sheet: reports.SheetTransactions, row: 3}},
		{"last row deleted", rezip(t, good, sheetXML(reports.SheetTransactions), deleteRow(txRows)), trusted,
			&want{code: reports.ProblemRowCount, sheet: reports.SheetTransactions}},
		{"a cell beyond the layout", rezip(t, good, sheetXML(reports.SheetFXRates), func(x []byte) []byte {
			return bytes.Replace(x, []byte(`</row><row r="3">`), []byte(`<c r="Z2"><v>1</v></c></row><row r="3">`), 1)
		}), trusted, &want{code: reports.ProblemCell, sheet: reports.SheetFXRates, row: 2, column: "Z"}},
		{"header renamed", rezip(t, good, sheetXML(reports.SheetGrants), setCell("K1", to("Pledge"))), trusted,
			&want{code: reports.ProblemHeader, sheet: reports.SheetGrants, row: 1, column: "K"}},
		{"sheet renamed", rezip(t, good, "xl/workbook.xml", func(x []byte) []byte {
			return bytes.Replace(x, []byte(`name="FX Rates"`), []byte(`name="FX"`), 1)
		}), trusted, &want{code: reports.ProblemSheets, sheet: reports.SheetFXRates}},
		{"manifest checksum edited", rezip(t, good, sheetXML(reports.SheetManifest), setCell(grantsSum, flipHex)), trusted,
			&want{code: reports.ProblemChecksum, sheet: reports.SheetGrants}},
		{"forged head hash", rezip(t, good, sheetXML(reports.SheetManifest), setCell(hashCell, flipHex)), trusted,
			&want{code: audit.HeadBadSig, sheet: reports.SheetManifest, seq: seq, hasSeq: true}},
		{"forged head sequence", rezip(t, good, sheetXML(reports.SheetManifest), setCell(seqCell, to("2"))), trusted,
			&want{code: audit.HeadBadSig, sheet: reports.SheetManifest, seq: 2, hasSeq: true}},
		{"forged hash, unsigned allowed: the live chain has another", rezip(t, good, sheetXML(reports.SheetManifest), setCell(hashCell, flipHex)),
			reports.VerifyOptions{AllowUnsigned: true, Audit: w.audit}, &want{code: audit.HeadMismatch, seq: seq, hasSeq: true}},
		{"signed by another key", otherSigned.Bytes(), trusted,
			&want{code: audit.HeadBadSig, sheet: reports.SheetManifest, seq: seq, hasSeq: true}},
		{"unsigned head", unsigned.Bytes(), trusted,
			&want{code: audit.HeadNotSigned, sheet: reports.SheetManifest, seq: seq, hasSeq: true}},
		{"unsigned head, allowed", unsigned.Bytes(), reports.VerifyOptions{AllowUnsigned: true, Audit: w.audit}, nil},
		{"no trusted key", good, reports.VerifyOptions{Audit: w.audit},
			&want{code: reports.ProblemNoTrustedKey, sheet: reports.SheetManifest, seq: seq, hasSeq: true}},
		{"no trusted key, allowed", good, reports.VerifyOptions{AllowUnsigned: true}, nil},
		{"not a pack", []byte("PK\x03\x04 nothing of the sort"), trusted, &want{code: reports.ProblemNotAPack}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep := verify(t, c.pack, c.opts)
			if c.want == nil {
				if !rep.Verified {
					t.Fatalf("does not verify: %q", rep.Problems)
				}
				return
			}
			checkProblem(t, rep, *c.want)
		})
	}
}

// With database access the pack is written again for its manifest's scope
// and as-of: a cell edited together with its manifest checksum (which the
// file alone cannot show) is named by sheet, row and column.
func TestVerifyPackRederived(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pub := w.key.Public().(ed25519.PublicKey)
	good := w.pack(t, reports.Scope{DonorOrgID: uuid.MustParse(w.donorA), From: day("2024-01-01"), To: day("2024-12-31")})
	opts := reports.VerifyOptions{PublicKey: pub, Audit: w.audit, Rederive: &reports.Source{DB: w.db.App, Audit: w.audit}}
	rep := verify(t, good, opts)
	if !rep.Verified || !strings.HasPrefix(rep.Head.Rederived, "identical") {
		t.Fatalf("untouched: %q %q", rep.Head.Rederived, rep.Problems)
	}

	// Consistent forgery: the EUR grant's pledge raised, the Grants checksum
	// in the manifest recomputed to match.
	edited := rezip(t, good, sheetXML(reports.SheetGrants), setCell("K2", to("1000000.01")))
	sum := ""
	for _, s := range verify(t, edited, reports.VerifyOptions{AllowUnsigned: true}).Sheets {
		if s.Sheet == reports.SheetGrants {
			sum = s.SHA256
		}
	}
	forged := rezip(t, edited, sheetXML(reports.SheetManifest), setCell(manifestCell(t, edited, "sheet:Grants", "C"), to(sum)))
	// The file alone catches it by the manifest's seal; a forger who also
	// re-seals (recomputes manifest.sha256) still lacks the server's key.
	checkProblem(t, verify(t, forged, reports.VerifyOptions{PublicKey: pub}),
		want{code: reports.ProblemManifestSeal, sheet: reports.SheetManifest})
	seal := verify(t, forged, reports.VerifyOptions{AllowUnsigned: true}).Problems
	var resealed []byte
	for _, p := range seal {
		if p.Code == reports.ProblemManifestSeal {
			got := strings.Fields(p.Detail)[6] // "the lines above manifest.sha256 hash to <hex>, …"
			resealed = rezip(t, forged, sheetXML(reports.SheetManifest),
				setCell(manifestCell(t, forged, "manifest.sha256", "D"), to(strings.TrimSuffix(got, ","))))
		}
	}
	if resealed == nil {
		t.Fatalf("no seal problem to re-seal from: %q", seal)
	}
	checkProblem(t, verify(t, resealed, reports.VerifyOptions{PublicKey: pub}),
		want{code: reports.ProblemManifestBadSig, sheet: reports.SheetManifest})
	if r := verify(t, resealed, reports.VerifyOptions{AllowUnsigned: true}); !r.Verified {
		t.Fatalf("re-sealed, the forgery passes the checksums of the file alone (only the signature and the database catch it): %q", r.Problems)
	}
	txLast := len(w.ids(w.eur.ID, "2024-01-01", "2024-12-31")) + 1
	for _, c := range []struct {
		name string
		pack []byte
		want want
	}{
		{"cell, checksum and seal edited", resealed, want{code: reports.ProblemRederived, sheet: reports.SheetGrants, row: 2, column: "K"}},
		{"text edited", rezip(t, good, sheetXML(reports.SheetTransactions), setCell("D3", to("RECEIPT"))),
			want{code: reports.ProblemRederived, sheet: reports.SheetTransactions, row: 3, column: "D"}},
		{"last row deleted", rezip(t, good, sheetXML(reports.SheetTransactions), deleteRow(txLast)),
			want{code: reports.ProblemRederived, sheet: reports.SheetTransactions, row: txLast}},
		{"scope widened in the manifest", rezip(t, good, sheetXML(reports.SheetManifest), setCell(manifestCell(t, good, "scope.donorOrgId", "D"), to("all"))),
			want{code: reports.ProblemRederived, sheet: reports.SheetCover, row: 8, column: "B"}}, // the donor filter line
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep := verify(t, c.pack, opts)
			checkProblem(t, rep, c.want)
			if !strings.HasPrefix(rep.Head.Rederived, "FAILED") {
				t.Errorf("rederived %q", rep.Head.Rederived)
			}
		})
	}
}

// A pack written before a superuser rewrote the audit chain no longer
// matches the live chain: the rewritten event is named, and a rewrite that
// re-hashed the tail (so the chain verifies on its own) is caught at the
// pack's head.
func TestVerifyPackRewrittenChain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		rehash  bool
		problem string
	}{
		{"edited event", false, audit.HashMismatch},
		{"edited and re-hashed tail", true, audit.HeadMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			b := w.pack(t, reports.Scope{})
			opts := reports.VerifyOptions{PublicKey: w.key.Public().(ed25519.PublicKey), Audit: w.audit}
			rep := verify(t, b, opts)
			if !rep.Verified {
				t.Fatalf("before the rewrite: %q", rep.Problems)
			}
			ctx := context.Background()
			err := pgx.BeginFunc(ctx, w.db.Owner, func(tx pgx.Tx) error {
				qs := []string{`SET LOCAL session_replication_role = replica`,
					`UPDATE audit_events SET change = replace(change, 'Demining', 'Dem1ning') WHERE seq = 1`}
				if c.rehash {
					qs = append(qs, `UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL WHERE seq >= 1`)
				}
				for _, q := range qs {
					if _, err := tx.Exec(ctx, q); err != nil {
						return fmt.Errorf("%s: %w", q, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			wantSeq := int64(1)
			if c.rehash {
				if r := try(w.audit.Verify(ctx)).must(t); !r.Verified {
					t.Fatalf("the re-hashed chain should verify on its own: %+v", r)
				}
				wantSeq = rep.Head.Seq
			}
			after := verify(t, b, opts)
			checkProblem(t, after, want{code: c.problem, seq: wantSeq, hasSeq: true})
			if !strings.HasPrefix(after.Head.Chain, fmt.Sprintf("FAILED at sequence %d", wantSeq)) {
				t.Errorf("chain %q", after.Head.Chain)
			}
			// The file alone still checks out: only the database shows it.
			if off := verify(t, b, reports.VerifyOptions{PublicKey: opts.PublicKey}); !off.Verified {
				t.Errorf("offline: %q", off.Problems)
			}
		})
	}
}

// VerifyFile reads from a path; a missing file is an error, not a finding.
func TestVerifyFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	path := filepath.Join(t.TempDir(), "pack.xlsx")
	if err := os.WriteFile(path, w.pack(t, reports.Scope{}), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := reports.VerifyFile(context.Background(), path, reports.VerifyOptions{PublicKey: w.key.Public().(ed25519.PublicKey)})
	if err != nil || !rep.Verified {
		t.Fatalf("%v %q", err, rep.Problems)
	}
	if _, err := reports.VerifyFile(context.Background(), path+".missing", reports.VerifyOptions{}); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := reports.VerifyFile(context.Background(), t.TempDir(), reports.VerifyOptions{}); err == nil {
		t.Errorf("a directory verified")
	}
}

// The ledger's inverse and cross rates have 24 decimals and an amount may
// have up to 18 significant digits: more than a numeric cell holds. They are
// exact text cells, and the pack still verifies from the file alone.
func TestVerifyPackLongDecimals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	da := as(auth.Donor, w.donorA)
	usd := try(w.l.RecordTransaction(da, ledger.EntryInput{GrantID: uuid.MustParse(w.eur.ID), Type: "DISBURSEMENT",
		Amount: amt("1000.00", "USD"), ValueDate: day("2025-12-30"), Reference: "USD-1"}, w.req())).must(t)
	jpy := try(w.l.RecordTransaction(da, ledger.EntryInput{GrantID: uuid.MustParse(w.eur.ID), Type: "DISBURSEMENT",
		Amount: amt("100000", "JPY"), ValueDate: day("2025-12-31"), Reference: "JPY-1"}, w.req())).must(t)
	for _, e := range []ledger.Transaction{usd, jpy} {
		if len(e.AgreementRate.String()) <= 17 {
			t.Fatalf("agreement rate %s: the test needs a rate longer than a double holds", e.AgreementRate)
		}
	}
	b := w.pack(t, reports.Scope{AsOf: time.Now()})
	rows := sheetRows(t, open(t, b), reports.SheetTransactions)
	got := map[string]bool{}
	for _, r := range rows {
		for _, c := range r {
			got[c] = true
		}
	}
	for _, e := range []ledger.Transaction{usd, jpy} {
		if !got[e.AgreementRate.String()] {
			t.Errorf("agreement rate %s is not in Transactions exactly", e.AgreementRate)
		}
	}
	rep := verify(t, b, reports.VerifyOptions{PublicKey: w.key.Public().(ed25519.PublicKey), Audit: w.audit})
	if !rep.Verified {
		t.Fatalf("does not verify: %q", rep.Problems)
	}
}

// addPart appends a zip part (a second copy when the name is taken).
func addPart(t *testing.T, b []byte, name string, data []byte) []byte {
	t.Helper()
	zr := try(zip.NewReader(bytes.NewReader(b), int64(len(b)))).must(t)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, e := range zr.File {
		if err := zw.Copy(e); err != nil {
			t.Fatal(err)
		}
	}
	w := try(zw.Create(name)).must(t)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func replace(old, new string) func([]byte) []byte {
	return func(x []byte) []byte { return bytes.Replace(x, []byte(old), []byte(new), 1) }
}

// What changes what a reader sees without changing a value is caught from
// the file alone; with the database, any other difference from the pack
// the server writes is NOT_IDENTICAL. After the manifest's seal only its
// signature and key id may follow.
func TestVerifyPackPresentation(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pub := w.key.Public().(ed25519.PublicKey)
	good := w.pack(t, reports.Scope{})
	tx := sheetXML(reports.SheetTransactions)
	grants := try(zip.NewReader(bytes.NewReader(good), int64(len(good)))).must(t)
	var grantsXML []byte
	for _, e := range grants.File {
		if e.Name == sheetXML(reports.SheetGrants) {
			rc := try(e.Open()).must(t)
			grantsXML = try(io.ReadAll(rc)).must(t)
			rc.Close()
		}
	}
	sealed := manifestCell(t, good, "manifest.keyId", "A")
	next := "A" + strconv.Itoa(try(strconv.Atoi(sealed[1:])).must(t)+1)
	for _, c := range []struct {
		name string
		pack []byte
		code string
	}{
		{"a formula over an amount", rezip(t, good, tx, replace(`<c r="G3" s="4"><v>`, `<c r="G3" s="4"><f>9999999</f><v>`)), reports.ProblemStructure},
		{"a hidden row", rezip(t, good, tx, replace(`<row r="3"`, `<row r="3" hidden="1"`)), reports.ProblemStructure},
		{"a hidden sheet", rezip(t, good, "xl/workbook.xml", replace(`name="Flags"`, `name="Flags" state="veryHidden"`)), reports.ProblemStructure},
		{"amounts shown in thousands", rezip(t, good, "xl/styles.xml", replace(`formatCode="#,##0.00"`, `formatCode="#,##0.00,"`)), reports.ProblemStructure},
		{"a macro part", addPart(t, good, "xl/vbaProject.bin", []byte{1, 2, 3}), reports.ProblemStructure},
		{"a part no pack has", addPart(t, good, "xl/ws/sheet4.xml", grantsXML), reports.ProblemStructure},
		{"a formula after a newline", rezip(t, good, tx, replace(`<c r="G3" s="4"><v>`, `<c r="G3" s="4"><x:f`+"\n"+`>1+1</x:f><v>`)), reports.ProblemStructure},
		{"a hidden row, single quotes", rezip(t, good, tx, replace(`<row r="3"`, `<row r="3" hidden = '1'`)), reports.ProblemStructure},
		{"a row of no height", rezip(t, good, tx, replace(`<row r="3"`, `<row r="3" ht="0" customHeight="1"`)), reports.ProblemStructure},
		{"conditional formatting", rezip(t, good, tx, replace(`</sheetData>`, `</sheetData><conditionalFormatting sqref="G2:G9"><cfRule type="expression" dxfId="0" priority="1"><formula>TRUE</formula></cfRule></conditionalFormatting>`)), reports.ProblemStructure},
		{"a hidden sheet, single quotes", rezip(t, good, "xl/workbook.xml", replace(`name="Flags"`, `name="Flags" state='hidden'`)), reports.ProblemStructure},
		{"amounts in white", rezip(t, good, "xl/styles.xml", replace(`formatCode="#,##0.00"`, `formatCode="[White]#,##0.00"`)), reports.ProblemStructure},
		{"negative amounts without a sign", rezip(t, good, "xl/styles.xml", replace(`formatCode="#,##0.00"`, `formatCode="#,##0.00;#,##0.00"`)), reports.ProblemStructure},
		{"thousands, single quotes", rezip(t, good, "xl/styles.xml", replace(`formatCode="#,##0.00"`, `formatCode='#,##0.00,,'`)), reports.ProblemStructure},
		{"a second copy of a sheet", addPart(t, good, sheetXML(reports.SheetGrants), grantsXML), reports.ProblemStructure},
		{"a line after the seal", rezip(t, good, sheetXML(reports.SheetManifest),
			replace(`</sheetData>`, `<row r="`+next[1:]+`"><c r="`+next+`" t="inlineStr"><is><t>auditorOpinion</t></is></c></row></sheetData>`)), reports.ProblemManifestSeal},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkProblem(t, verify(t, c.pack, reports.VerifyOptions{PublicKey: pub}), want{code: c.code, sheet: map[string]string{
				reports.ProblemManifestSeal: reports.SheetManifest}[c.code], row: map[bool]int{true: try(strconv.Atoi(next[1:])).must(t)}[c.code == reports.ProblemManifestSeal]})
		})
	}
	// A format with quoted text (entities in the XML) is not suspect.
	euro := rezip(t, good, "xl/styles.xml", replace(`formatCode="#,##0.00"`, `formatCode="#,##0.00&quot; €&quot;;-#,##0.00&quot; €&quot;"`))
	for _, p := range verify(t, euro, reports.VerifyOptions{PublicKey: pub}).Problems {
		if p.Code == reports.ProblemStructure {
			t.Errorf("a harmless format: %s", p)
		}
	}
	// A cell style switched (an amount shown as a date): no value changed,
	// nothing structural; the database shows the file is not the pack.
	restyled := rezip(t, good, tx, replace(`<c r="G3" s="4"><v>`, `<c r="G3" s="2"><v>`))
	checkProblem(t, verify(t, restyled, reports.VerifyOptions{PublicKey: pub, Audit: w.audit, Rederive: &reports.Source{DB: w.db.App, Audit: w.audit}}),
		want{code: reports.ProblemNotIdentical})
}
