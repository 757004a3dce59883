package reports

// Verify's decisions are in the package doc (doc.go, "Verification (tranche pack verify)").

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/money"
)

// VerifyOptions are what Verify checks the pack against.
type VerifyOptions struct {
	// PublicKey is the trusted key the chain head's signature must verify
	// with (the operator's published key); nil: no trusted key.
	PublicKey ed25519.PublicKey
	// AllowUnsigned accepts a head whose signature is not checked: an
	// unsigned head, a pack without a head, or no PublicKey given.
	AllowUnsigned bool
	// Audit is the live audit trail the head is checked against; nil: the
	// chain is not checked (reported, not a failure).
	Audit *audit.Store
	// Rederive, when set, writes the pack again from this source for the
	// manifest's scope and as-of and compares every sheet with the file,
	// naming the first row that differs, then the files byte for byte
	// (NOT_IDENTICAL). It costs a full pack write.
	Rederive *Source
}

// Problem codes of a VerifyReport, besides audit's (HEAD_MISMATCH,
// HEAD_BEYOND_END, HEAD_BAD_SIGNATURE, HEAD_UNSIGNED, HASH_MISMATCH, …).
const (
	ProblemNotAPack        = "NOT_A_PACK"          // not a readable .xlsx
	ProblemSheets          = "SHEETS"              // sheets missing, extra or out of order
	ProblemHeader          = "HEADER"              // a header row differs from Layout
	ProblemCell            = "CELL"                // a cell that no writer of this format writes
	ProblemRowCount        = "ROW_COUNT"           // rows differ from the manifest's count
	ProblemChecksum        = "CHECKSUM"            // SHA-256 differs from the manifest's
	ProblemManifest        = "MANIFEST"            // the manifest is malformed
	ProblemHeadMissing     = "HEAD_MISSING"        // the pack carries no chain head
	ProblemNoTrustedKey    = "HEAD_NO_TRUSTED_KEY" // signed, but no key to check it with
	ProblemPackChainFailed = "PACK_CHAIN_FAILED"   // the pack says its chain did not verify
	ProblemRederived       = "REDERIVED_MISMATCH"  // the database gives other rows for the same scope and as-of
	ProblemManifestSeal    = "MANIFEST_SEAL"       // the manifest's lines differ from its sealed checksum
	ProblemManifestBadSig  = "MANIFEST_BAD_SIGNATURE"
	ProblemManifestNotSig  = "MANIFEST_UNSIGNED"
)

// Problem is one finding. Sheet and Row (the spreadsheet's row number, 1 is
// the header) and Column name a place in the file; Seq an audit sequence
// when HasSeq.
type Problem struct {
	Code   string `json:"problem"`
	Sheet  string `json:"sheet,omitempty"`
	Row    int    `json:"row,omitempty"`
	Column string `json:"column,omitempty"`
	Seq    int64  `json:"seq,omitempty"`
	HasSeq bool   `json:"hasSeq,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	var where []string
	if p.Sheet != "" {
		where = append(where, "sheet "+p.Sheet)
	}
	if p.Row != 0 {
		where = append(where, fmt.Sprintf("row %d", p.Row))
	}
	if p.Column != "" {
		where = append(where, "column "+strconv.Quote(p.Column))
	}
	if p.HasSeq {
		where = append(where, fmt.Sprintf("sequence %d", p.Seq))
	}
	s := p.Code + ": " + p.Detail
	if len(where) > 0 {
		s = strings.Join(where, " ") + ": " + s
	}
	return s
}

// SheetCheck is one sheet's manifest line against what the file holds.
type SheetCheck struct {
	Sheet          string `json:"sheet"`
	Rows           int64  `json:"rows"`
	SHA256         string `json:"sha256"`
	ManifestRows   int64  `json:"manifestRows"`
	ManifestSHA256 string `json:"manifestSha256"`
	OK             bool   `json:"ok"`
}

// HeadCheck is the chain head the manifest names and what became of it.
type HeadCheck struct {
	Included bool   `json:"included"`
	Seq      int64  `json:"seq"`
	Hash     string `json:"hash"`
	KeyID    string `json:"keyId,omitempty"`
	Signed   bool   `json:"signed"`
	// Signature says how the signature was checked: "valid, key …",
	// "FAILED: …", "not checked: …".
	Signature string `json:"signature"`
	// Chain says whether the live chain extends the head: "extends the head
	// (…)", "FAILED at sequence N: …", "not checked: …".
	Chain string `json:"chain"`
	// Rederived says whether the database gives the same sheets for the
	// manifest's scope and as-of: "same rows in every sheet", "FAILED: …",
	// "not checked: …".
	Rederived string `json:"rederived"`
	// PackVerification is the pack's own chainVerification line.
	PackVerification string `json:"packVerification"`
	// Manifest says how the manifest's own seal was checked: "valid, key
	// …", "FAILED: …", "none: …".
	Manifest string `json:"manifest"`
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Verified  bool              `json:"verified"`
	Format    string            `json:"format"`
	Generator string            `json:"generator"`
	Facts     map[string]string `json:"facts"` // the manifest's Entry → Value lines
	Sheets    []SheetCheck      `json:"sheets"`
	Head      HeadCheck         `json:"head"`
	Problems  []Problem         `json:"problems"`
}

// First is the first problem, the one a command names; "" when verified.
func (r VerifyReport) First() string {
	if len(r.Problems) == 0 {
		return ""
	}
	return r.Problems[0].String()
}

// maxProblemsPerSheet bounds the cell problems listed per sheet, so a file
// of a million bad cells gives a readable report.
const maxProblemsPerSheet = 20

// maxManifestLines bounds the Manifest lines read (a pack has about 25), so
// a forged manifest cannot grow the report without limit.
const maxManifestLines = 1000

// maxUnzipped bounds what a pack may unzip to (excelize spools it to
// temporary files): a zip bomb is refused, not written out. A 1 048 575-row
// Transactions sheet is well under 2 GiB of XML.
const maxUnzipped = 8 << 30

// Verify checks the pack of size bytes in r; see VerifyFile. excelize reads
// a pack in flat memory only from a file (OpenReader reads it whole), so r
// is copied to a temporary file first.
func Verify(ctx context.Context, r io.ReaderAt, size int64, opts VerifyOptions) (VerifyReport, error) {
	tmp, err := os.CreateTemp("", "tranche-verify-*.xlsx")
	if err != nil {
		return VerifyReport{}, err
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if _, err := io.Copy(tmp, io.NewSectionReader(r, 0, size)); err != nil {
		return VerifyReport{}, err
	}
	if err := tmp.Close(); err != nil {
		return VerifyReport{}, err
	}
	return VerifyFile(ctx, tmp.Name(), opts)
}

// VerifyFile checks the pack at path: sheets and headers against Layout,
// every sheet's row count and canonical SHA-256 against the manifest, the
// chain head's signature against opts.PublicKey and, with opts.Audit, that
// the live chain extends the head. Findings are in the report (Verified
// false, Problems); the error is for what kept it from reading (I/O, the
// database, ctx). See the decisions at the top of verify.go.
func VerifyFile(ctx context.Context, path string, opts VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Facts: map[string]string{}}
	fi, err := os.Stat(path)
	if err != nil {
		return rep, err
	}
	if !fi.Mode().IsRegular() {
		return rep, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := excelize.OpenFile(path, excelize.Options{UnzipSizeLimit: maxUnzipped})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return rep, err
		}
		rep.Problems = append(rep.Problems, Problem{Code: ProblemNotAPack, Detail: "not a readable .xlsx file: " + err.Error()})
		return rep, nil
	}
	defer f.Close()
	v := &verifier{ctx: ctx, f: f, rep: &rep, path: path}
	if err := v.run(opts); err != nil {
		return rep, err
	}
	if err := v.checkStructure(path); err != nil {
		return rep, err
	}
	rep.Verified = len(rep.Problems) == 0
	return rep, nil
}

type verifier struct {
	ctx      context.Context
	f        *excelize.File
	rep      *VerifyReport
	date1904 bool
	manifest map[string]SheetCheck // by sheet name, from the Manifest sheet
	path     string                // the file being verified
	// seal is the canonical SHA-256 of the Manifest's lines above its
	// manifest.sha256 line, nil when there is no such line.
	seal []byte
}

func (v *verifier) problem(p Problem) { v.rep.Problems = append(v.rep.Problems, p) }

func (v *verifier) run(opts VerifyOptions) error {
	if props, err := v.f.GetWorkbookProps(); err == nil && props.Date1904 != nil {
		v.date1904 = *props.Date1904
	}
	present := map[string]bool{}
	got := v.f.GetSheetList()
	for _, n := range got {
		present[n] = true
	}
	for i, s := range Layout { // the first sheet out of place
		if i < len(got) && got[i] == s.Name {
			continue
		}
		detail := fmt.Sprintf("sheet %d of %d is missing", i+1, len(Layout))
		if i < len(got) {
			detail = fmt.Sprintf("sheet %d is %q, want %q", i+1, got[i], s.Name)
		}
		v.problem(Problem{Code: ProblemSheets, Sheet: s.Name, Detail: detail})
		break
	}
	if len(got) > len(Layout) {
		v.problem(Problem{Code: ProblemSheets, Sheet: got[len(Layout)], Detail: fmt.Sprintf("%d sheets, the format has %d", len(got), len(Layout))})
	}
	if !present[SheetManifest] {
		v.problem(Problem{Code: ProblemManifest, Sheet: SheetManifest, Detail: "the pack has no Manifest sheet"})
		return nil
	}
	if err := v.readManifest(); err != nil {
		return err
	}
	for _, s := range Layout[:len(Layout)-1] {
		if !present[s.Name] {
			continue
		}
		if err := v.checkSheet(s); err != nil {
			return err
		}
	}
	if err := v.checkHead(opts); err != nil {
		return err
	}
	v.checkSeal(opts)
	if opts.Rederive != nil {
		return v.rederive(*opts.Rederive)
	}
	return nil
}

// rows streams a sheet's rows as raw cell values to fn (row numbers from 1).
func (v *verifier) rows(name string, fn func(row int, cells []string) error) error {
	rows, err := v.f.Rows(name)
	if err != nil {
		return err
	}
	defer rows.Close()
	for n := 1; rows.Next(); n++ {
		if n%4096 == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return err
		}
		if err := fn(n, cells); err != nil {
			return err
		}
	}
	return rows.Error()
}

func (v *verifier) readManifest() error {
	s := Layout[len(Layout)-1]
	v.manifest = map[string]SheetCheck{}
	var order []string
	sealHash := sha256.New()
	after := 0 // lines read after manifest.sha256
	err := v.rows(s.Name, func(n int, cells []string) error {
		if n == 1 {
			v.checkHeader(s, cells)
			return nil
		}
		cell := func(i int) string {
			if i < len(cells) {
				return cells[i]
			}
			return ""
		}
		if n > maxManifestLines {
			if n == maxManifestLines+1 {
				v.problem(Problem{Code: ProblemManifest, Sheet: s.Name, Row: n,
					Detail: fmt.Sprintf("more than %d lines; the rest is not read", maxManifestLines)})
			}
			return nil
		}
		entry := cell(0)
		for i := len(s.Headers()); i < len(cells); i++ {
			if cells[i] != "" {
				col, _ := excelize.ColumnNumberToName(i + 1)
				v.problem(Problem{Code: ProblemCell, Sheet: s.Name, Row: n, Column: col,
					Detail: "a cell beyond the manifest's columns, which its seal does not cover"})
				break
			}
		}
		if v.seal != nil {
			// After the seal only its signature and key id, in that order.
			after++
			want := map[int]string{1: "manifest.signature", 2: "manifest.keyId"}[after]
			if entry != want {
				v.problem(Problem{Code: ProblemManifestSeal, Sheet: s.Name, Row: n,
					Detail: fmt.Sprintf("line %q after manifest.sha256, which its seal does not cover", entry)})
				return nil
			}
		}
		if entry == "manifest.sha256" && v.seal == nil {
			v.seal = sealHash.Sum(nil)
		} else if v.seal == nil {
			writeCanonical(sealHash, v.canonicalRow(s, n, cells, nil, func(Problem) {}))
		}
		bad := func(format string, args ...any) {
			v.problem(Problem{Code: ProblemManifest, Sheet: s.Name, Row: n, Detail: fmt.Sprintf(format, args...)})
		}
		if name, ok := strings.CutPrefix(entry, "sheet:"); ok {
			rows, err := strconv.ParseInt(cell(1), 10, 64)
			if err != nil || rows < 0 {
				bad("the row count of %s is %q, not a count", name, cell(1))
				return nil
			}
			if _, dup := v.manifest[name]; dup {
				bad("a second line for sheet %s", name)
				return nil
			}
			v.manifest[name] = SheetCheck{Sheet: name, ManifestRows: rows, ManifestSHA256: cell(2)}
			order = append(order, name)
			return nil
		}
		if entry == "" {
			bad("a line without an entry")
			return nil
		}
		if _, dup := v.rep.Facts[entry]; dup {
			bad("a second %s line", entry)
			return nil
		}
		v.rep.Facts[entry] = cell(3)
		return nil
	})
	if err != nil {
		if v.ctx.Err() != nil {
			return err
		}
		v.problem(Problem{Code: ProblemManifest, Sheet: s.Name, Detail: "unreadable: " + err.Error()})
		return nil
	}
	var want []string
	for _, sh := range Layout[:len(Layout)-1] {
		want = append(want, sh.Name)
	}
	if strings.Join(order, "\x00") != strings.Join(want, "\x00") {
		v.problem(Problem{Code: ProblemManifest, Sheet: s.Name,
			Detail: fmt.Sprintf("sheet lines %q, want one per sheet before it: %q", order, want)})
	}
	v.rep.Format, v.rep.Generator = v.rep.Facts["format"], v.rep.Facts["generator"]
	if v.rep.Format != Format {
		v.problem(Problem{Code: ProblemManifest, Sheet: s.Name, Detail: fmt.Sprintf("format %q, this verifier reads %q", v.rep.Format, Format)})
	}
	return nil
}

func (v *verifier) checkHeader(s Sheet, cells []string) {
	want := s.Headers()
	for i := range max(len(want), len(cells)) {
		var g, w string
		if i < len(cells) {
			g = cells[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			col, _ := excelize.ColumnNumberToName(i + 1)
			v.problem(Problem{Code: ProblemHeader, Sheet: s.Name, Row: 1, Column: col,
				Detail: fmt.Sprintf("header %q, want %q", g, w)})
			return
		}
	}
}

// checkSheet recomputes a sheet's row count and checksum and compares them
// with its manifest line.
func (v *verifier) checkSheet(s Sheet) error {
	h := sha256.New()
	var count int64
	cellProblems := 0
	cellProblem := func(p Problem) {
		if cellProblems < maxProblemsPerSheet {
			v.problem(p)
		}
		cellProblems++
	}
	var canon []string
	width := len(s.Headers())
	err := v.rows(s.Name, func(n int, cells []string) error {
		if n == 1 {
			v.checkHeader(s, cells)
			return nil
		}
		count++
		empty := true
		for i, c := range cells {
			if c == "" {
				continue
			}
			empty = false
			if i >= width {
				col, _ := excelize.ColumnNumberToName(i + 1)
				cellProblem(Problem{Code: ProblemCell, Sheet: s.Name, Row: n, Column: col,
					Detail: fmt.Sprintf("a value beyond the layout's %d columns, which no checksum covers", width)})
				break
			}
		}
		if empty {
			cellProblem(Problem{Code: ProblemCell, Sheet: s.Name, Row: n, Detail: "an empty row inside the data (a row deleted?)"})
		}
		canon = canon[:0]
		canon = v.canonicalRow(s, n, cells, canon, cellProblem)
		writeCanonical(h, canon)
		return nil
	})
	if err != nil {
		if v.ctx.Err() != nil {
			return err
		}
		v.problem(Problem{Code: ProblemCell, Sheet: s.Name, Detail: "unreadable: " + err.Error()})
		return nil
	}
	c, ok := v.manifest[s.Name]
	c.Sheet, c.Rows, c.SHA256 = s.Name, count, hex.EncodeToString(h.Sum(nil))
	c.OK = ok && c.Rows == c.ManifestRows && c.SHA256 == c.ManifestSHA256
	v.rep.Sheets = append(v.rep.Sheets, c)
	switch {
	case !ok:
		// reported by readManifest
	case c.Rows != c.ManifestRows:
		v.problem(Problem{Code: ProblemRowCount, Sheet: s.Name,
			Detail: fmt.Sprintf("%d data rows, the manifest says %d", c.Rows, c.ManifestRows)})
	case c.SHA256 != c.ManifestSHA256:
		v.problem(Problem{Code: ProblemChecksum, Sheet: s.Name,
			Detail: fmt.Sprintf("SHA-256 of the %d rows is %s, the manifest says %s: a cell was changed", c.Rows, c.SHA256, c.ManifestSHA256)})
	}
	return nil
}

// canonicalRow appends the canonical strings (doc.go) of one row's raw
// cells. A cell that cannot be the writer's is reported and contributes its
// raw text, which then fails the checksum too.
func (v *verifier) canonicalRow(s Sheet, n int, cells, canon []string, bad func(Problem)) []string {
	cell := func(i int) string {
		if i < len(cells) {
			return cells[i]
		}
		return ""
	}
	i := 0
	for _, c := range s.Columns {
		raw := cell(i)
		report := func(col int, format string, args ...any) {
			name, _ := excelize.ColumnNumberToName(col + 1)
			bad(Problem{Code: ProblemCell, Sheet: s.Name, Row: n, Column: name,
				Detail: fmt.Sprintf("%s (%s): ", s.Headers()[col], c.Kind) + fmt.Sprintf(format, args...)})
		}
		switch c.Kind {
		case Amount:
			cur := cell(i + 1)
			out, err := canonicalAmount(raw, cur)
			if err != nil {
				report(i, "%v", err)
			}
			canon = append(canon, out, cur)
			i += 2
			continue
		case Date:
			out, err := canonicalDate(raw, v.date1904)
			if err != nil {
				report(i, "%v", err)
			}
			canon = append(canon, out)
		case Integer:
			out, err := canonicalInteger(raw)
			if err != nil {
				report(i, "%v", err)
			}
			canon = append(canon, out)
		case Decimal:
			out, err := canonicalDecimal(raw)
			if err != nil {
				report(i, "%v", err)
			}
			canon = append(canon, out)
		default: // Text, Timestamp
			canon = append(canon, raw)
		}
		i++
	}
	return canon
}

// parseNumber reads a numeric cell's raw text as Excel holds it: a double.
func parseNumber(raw string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", raw)
	}
	return f, nil
}

// canonicalAmount: the double must be the one nearest to a whole number of
// the currency's minor units; that number, with exactly the minor units.
func canonicalAmount(raw, cur string) (string, error) {
	if raw == "" {
		return "", nil
	}
	minor, err := money.Currency(cur)
	if err != nil {
		return raw, fmt.Errorf("currency %q beside it: %v", cur, err)
	}
	if _, frac, _ := strings.Cut(raw, "."); plainDecimal(raw) && len(frac) == int(minor) && sigDigits(raw) > maxCellDigits {
		// A text cell of the writer (digits.go): exact, with exactly the
		// currency's minor units. (A number saved again with 17 digits has
		// more decimals than that, and is read as a number below.)
		return raw, nil
	}
	f, err := parseNumber(raw)
	if err != nil {
		return raw, err
	}
	d := decimal.NewFromFloat(f)
	r := d.Round(minor)
	if rf, _ := r.Float64(); rf != f {
		return raw, fmt.Errorf("%s is not a whole number of %s minor units (%d decimals)", raw, cur, minor)
	}
	return money.Format(r, cur), nil
}

// canonicalDate: a whole-day serial number, as YYYY-MM-DD.
func canonicalDate(raw string, date1904 bool) (string, error) {
	if raw == "" {
		return "", nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05", strings.TrimSuffix(raw, "Z")); err == nil {
		// An ISO 8601 date cell (t="d"), as some applications save dates.
		if t != t.Truncate(24*time.Hour) {
			return raw, fmt.Errorf("%s is not a whole day", raw)
		}
		return t.Format(time.DateOnly), nil
	}
	f, err := parseNumber(raw)
	if err != nil {
		return raw, err
	}
	if f != math.Trunc(f) || f < 1 || f > 2958465 { // 9999-12-31
		return raw, fmt.Errorf("%s is not a whole-day date serial number", raw)
	}
	t, err := excelize.ExcelDateToTime(f, date1904)
	if err != nil {
		return raw, err
	}
	return t.Format(time.DateOnly), nil
}

func canonicalInteger(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	f, err := parseNumber(raw)
	if err != nil {
		return raw, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return raw, fmt.Errorf("%s is not a whole number", raw)
	}
	return strconv.FormatInt(int64(f), 10), nil
}

// canonicalDecimal: the shortest decimal that reads back as the same double,
// without trailing zeros.
func canonicalDecimal(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	f, err := parseNumber(raw)
	if err != nil {
		return raw, err
	}
	short := decimal.NewFromFloat(f).String()
	if plainDecimal(raw) && sigDigits(raw) > maxCellDigits && sigDigits(short) > maxCellDigits {
		// A text cell of the writer (digits.go): the exact decimal.
		return decimal.RequireFromString(raw).String(), nil
	}
	return short, nil
}

// checkHead checks the manifest's chain head: its signature with the
// trusted key, then, with an audit store, that the live chain extends it.
func (v *verifier) checkHead(opts VerifyOptions) error {
	facts := v.rep.Facts
	hc := &v.rep.Head
	hc.PackVerification = facts["chainVerification"]
	hc.Chain = "not checked: no database access"
	hc.Rederived = "not checked: no database access"
	seqText := facts["chainHead.sequence"]
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq < 0 {
		hc.Signature = "none: the pack carries no chain head"
		hc.Chain = "not checked: the pack carries no chain head"
		if !opts.AllowUnsigned {
			v.problem(Problem{Code: ProblemHeadMissing, Sheet: SheetManifest,
				Detail: fmt.Sprintf("chainHead.sequence is %q: the pack carries no chain head to vouch for it (AllowUnsigned checks the checksums alone)", seqText)})
		} else {
			hc.Signature += " (accepted: unsigned allowed)"
		}
		return nil
	}
	hash, err := hex.DecodeString(facts["chainHead.hash"])
	if err != nil || len(hash) != sha256.Size {
		v.problem(Problem{Code: ProblemManifest, Sheet: SheetManifest, Seq: seq, HasSeq: true,
			Detail: fmt.Sprintf("chainHead.hash %q is not 64 hex digits", facts["chainHead.hash"])})
		return nil
	}
	hc.Included, hc.Seq, hc.Hash = true, seq, hex.EncodeToString(hash)
	head := audit.Head{Seq: seq, Hash: hash, KeyID: facts["chainHead.keyId"]}
	hc.KeyID = head.KeyID
	headProblem := func(code, format string, args ...any) {
		v.problem(Problem{Code: code, Sheet: SheetManifest, Seq: seq, HasSeq: true, Detail: fmt.Sprintf(format, args...)})
	}
	sigText := facts["chainHead.signature"]
	switch {
	case sigText == "" || strings.HasPrefix(sigText, "unsigned"):
		hc.Signature = "none: the head is unsigned (" + sigText + ")"
		if opts.AllowUnsigned {
			hc.Signature += "; accepted: unsigned allowed"
		} else {
			headProblem(audit.HeadNotSigned, "the head has no signature, so anyone could have written it; allowing unsigned heads checks its hash alone")
		}
	default:
		hc.Signed = true
		if head.Signature, err = audit.DecodeSignature(sigText); err != nil {
			hc.Signature = "FAILED: not base64"
			headProblem(audit.HeadBadSig, "chainHead.signature is not base64: %v", err)
			break
		}
		if opts.PublicKey == nil {
			hc.Signature = "not checked: no trusted public key given"
			if opts.AllowUnsigned {
				hc.Signature += "; accepted: unsigned allowed"
			} else {
				headProblem(ProblemNoTrustedKey, "no trusted public key to check the head's signature with (key id %s)", head.KeyID)
			}
			break
		}
		if err := head.VerifySignature(opts.PublicKey); err != nil {
			hc.Signature = "FAILED: " + err.Error()
			headProblem(audit.HeadBadSig, "%v", err)
			break
		}
		hc.Signature = "valid, key " + audit.KeyID(opts.PublicKey)
	}
	if pv := hc.PackVerification; !strings.HasPrefix(pv, "verified") {
		p := Problem{Code: ProblemPackChainFailed, Sheet: SheetManifest,
			Detail: fmt.Sprintf("the pack's own chain verification says %q", pv)}
		var at int64
		if _, err := fmt.Sscanf(pv, "FAILED at sequence %d", &at); err == nil {
			p.Seq, p.HasSeq = at, true
		}
		v.problem(p)
	}
	if opts.Audit == nil {
		return nil
	}
	r, err := opts.Audit.VerifySince(v.ctx, head)
	if err != nil {
		return fmt.Errorf("checking the live chain: %w", err)
	}
	if !r.Verified {
		hc.Chain = fmt.Sprintf("FAILED at sequence %d: %s: %s", r.FirstBadSeq, r.Problem, r.Detail)
		v.problem(Problem{Code: r.Problem, Seq: r.FirstBadSeq, HasSeq: true,
			Detail: fmt.Sprintf("the live chain does not extend the pack's head at sequence %d: %s", seq, r.Detail)})
		return nil
	}
	hc.Chain = fmt.Sprintf("extends the head: %d events recomputed, the chain now ends at sequence %d", r.EventsChecked, r.HeadSeq)
	return nil
}

// checkSeal checks the manifest's own seal: that its lines above
// manifest.sha256 still hash to it, and that the signature over it
// (ManifestMessage) is the trusted key's. With a valid seal, an edited
// sheet cannot be hidden by editing its manifest line too, nor can the
// scope, the as-of or the head be changed, without the server's key.
func (v *verifier) checkSeal(opts VerifyOptions) {
	facts := v.rep.Facts
	hc := &v.rep.Head
	bad := func(code, format string, args ...any) {
		hc.Manifest = "FAILED: " + fmt.Sprintf(format, args...)
		v.problem(Problem{Code: code, Sheet: SheetManifest, Detail: fmt.Sprintf(format, args...)})
	}
	if v.seal == nil {
		hc.Manifest = "none: the manifest has no manifest.sha256 line"
		if !opts.AllowUnsigned {
			bad(ProblemManifestNotSig, "the manifest has no manifest.sha256 line, so it is not sealed")
		}
		return
	}
	if got := hex.EncodeToString(v.seal); facts["manifest.sha256"] != got {
		bad(ProblemManifestSeal, "the lines above manifest.sha256 hash to %s, the manifest says %q: the manifest was changed", got, facts["manifest.sha256"])
		return
	}
	sigText := facts["manifest.signature"]
	if sigText == "" || strings.HasPrefix(sigText, "unsigned") {
		hc.Manifest = "none: the manifest is unsigned (" + sigText + ")"
		if opts.AllowUnsigned {
			hc.Manifest += "; accepted: unsigned allowed"
		} else {
			bad(ProblemManifestNotSig, "the manifest has no signature, so anyone could have written it with its checksums")
		}
		return
	}
	sig, err := audit.DecodeSignature(sigText)
	if err != nil {
		bad(ProblemManifestBadSig, "manifest.signature is not base64: %v", err)
		return
	}
	if opts.PublicKey == nil {
		hc.Manifest = "not checked: no trusted public key given"
		if opts.AllowUnsigned {
			hc.Manifest += "; accepted: unsigned allowed"
		} else if !strings.HasPrefix(hc.Signature, "not checked") {
			// The head's check names the missing key when the head is signed.
			bad(ProblemNoTrustedKey, "no trusted public key to check the manifest's signature with (key id %s)", facts["manifest.keyId"])
		}
		return
	}
	if id := audit.KeyID(opts.PublicKey); facts["manifest.keyId"] != id {
		bad(ProblemManifestBadSig, "the manifest was signed by key %q, the trusted key is %s", facts["manifest.keyId"], id)
		return
	}
	if !ed25519.Verify(opts.PublicKey, ManifestMessage(v.seal), sig) {
		bad(ProblemManifestBadSig, "the manifest's signature does not verify with key %s", audit.KeyID(opts.PublicKey))
		return
	}
	hc.Manifest = "valid, key " + audit.KeyID(opts.PublicKey)
}

// scopeFromFacts reads the pack's scope back from its manifest.
func scopeFromFacts(facts map[string]string) (Scope, error) {
	var s Scope
	var err error
	if s.RoadmapID, err = uuid.Parse(facts["scope.roadmapId"]); err != nil {
		return s, fmt.Errorf("scope.roadmapId %q: %v", facts["scope.roadmapId"], err)
	}
	for _, id := range []struct {
		key string
		to  *uuid.UUID
	}{{"scope.donorOrgId", &s.DonorOrgID}, {"scope.grantId", &s.GrantID}} {
		if v := facts[id.key]; v != "all" {
			if *id.to, err = uuid.Parse(v); err != nil {
				return s, fmt.Errorf("%s %q: %v", id.key, v, err)
			}
		}
	}
	for _, d := range []struct {
		key string
		to  *time.Time
	}{{"scope.from", &s.From}, {"scope.to", &s.To}} {
		if v := facts[d.key]; v != "open" {
			if *d.to, err = time.Parse(time.DateOnly, v); err != nil {
				return s, fmt.Errorf("%s %q: %v", d.key, v, err)
			}
		}
	}
	if s.AsOf, err = time.Parse(time.RFC3339Nano, facts["asOf"]); err != nil {
		return s, fmt.Errorf("asOf %q: %v", facts["asOf"], err)
	}
	return s, nil
}

// rederive writes the pack of the manifest's scope and as-of again from src
// into a temporary file and compares each sheet's rows with the file's,
// naming the first row and column that differ.
func (v *verifier) rederive(src Source) error {
	hc := &v.rep.Head
	scope, err := scopeFromFacts(v.rep.Facts)
	if err != nil {
		hc.Rederived = "not checked: the manifest's scope does not read: " + err.Error()
		v.problem(Problem{Code: ProblemManifest, Sheet: SheetManifest, Detail: hc.Rederived})
		return nil
	}
	tmp, err := os.CreateTemp("", "tranche-rederive-*.xlsx")
	if err != nil {
		return err
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	src.Progress = nil
	if err := Write(v.ctx, tmp, src, scope); err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			hc.Rederived = "FAILED: the database has no roadmap " + scope.RoadmapID.String()
			v.problem(Problem{Code: ProblemRederived, Detail: hc.Rederived})
			return nil
		}
		return fmt.Errorf("writing the pack again: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	g, err := excelize.OpenFile(tmp.Name(), excelize.Options{UnzipSizeLimit: maxUnzipped})
	if err != nil {
		return err
	}
	defer g.Close()
	present := map[string]bool{}
	for _, n := range v.f.GetSheetList() {
		present[n] = true
	}
	bad := 0
	for _, s := range Layout[:len(Layout)-1] {
		if !present[s.Name] {
			continue // reported as SHEETS
		}
		p, err := v.firstDifference(g, s)
		if err != nil {
			if v.ctx.Err() != nil {
				return err
			}
			p = &Problem{Code: ProblemRederived, Sheet: s.Name, Detail: "unreadable: " + err.Error()}
		}
		if p != nil {
			v.problem(*p)
			bad++
		}
	}
	hc.Rederived = "same rows in every sheet as the database gives for the manifest's scope and as-of"
	if bad > 0 {
		hc.Rederived = fmt.Sprintf("FAILED: %d sheets differ from what the database gives for the manifest's scope and as-of", bad)
		return nil
	}
	// Packs are byte-identical for a scope and as-of: anything else in the
	// file — formats, hidden state, extra parts — is not what the server
	// wrote, even with every value right. Compared part by part on their
	// content; the Manifest's signature lines may differ (the verifier need
	// not hold the signing key: its pack is unsigned).
	diff, err := v.partDifference(tmp.Name(), g)
	if err != nil {
		return err
	}
	if diff != "" {
		hc.Rederived = "values as the database gives them, but the file is not the one the server writes: " + diff
		v.problem(Problem{Code: ProblemNotIdentical, Detail: "every value matches the database, but the file is not the pack of its scope and as-of (" +
			diff + "): its presentation was changed, or it was saved again by another application"})
		return nil
	}
	hc.Rederived = "identical to the pack the database gives for the manifest's scope and as-of, part by part (signatures aside)"
	return nil
}

// firstDifference streams sheet s of the file and of the re-derived pack g
// side by side, in canonical form, and names the first row that differs.
func (v *verifier) firstDifference(g *excelize.File, s Sheet) (*Problem, error) {
	a, err := v.f.Rows(s.Name)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	b, err := g.Rows(s.Name)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	ignore := func(Problem) {}
	other := &verifier{ctx: v.ctx, f: g, rep: &VerifyReport{}}
	var ca, cb []string
	headers := s.Headers()
	for n := 1; ; n++ {
		if n%4096 == 0 {
			if err := v.ctx.Err(); err != nil {
				return nil, err
			}
		}
		moreA, moreB := a.Next(), b.Next()
		if !moreA || !moreB {
			if err := a.Error(); err != nil {
				return nil, err
			}
			if err := b.Error(); err != nil {
				return nil, err
			}
			switch {
			case moreA:
				return &Problem{Code: ProblemRederived, Sheet: s.Name, Row: n,
					Detail: fmt.Sprintf("the database gives %d data rows; the file has more", n-2)}, nil
			case moreB:
				return &Problem{Code: ProblemRederived, Sheet: s.Name, Row: n,
					Detail: fmt.Sprintf("the file ends at data row %d; the database gives more", n-2)}, nil
			}
			return nil, nil
		}
		ra, err := a.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return nil, err
		}
		rb, err := b.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return nil, err
		}
		if n == 1 {
			continue // headers: checked against Layout
		}
		ca = v.canonicalRow(s, n, ra, ca[:0], ignore)
		cb = other.canonicalRow(s, n, rb, cb[:0], ignore)
		for i := range ca {
			if ca[i] != cb[i] {
				col, _ := excelize.ColumnNumberToName(i + 1)
				return &Problem{Code: ProblemRederived, Sheet: s.Name, Row: n, Column: col,
					Detail: fmt.Sprintf("%s: the file has %q, the database gives %q for the manifest's scope and as-of", headers[i], ca[i], cb[i])}, nil
			}
		}
	}
}
