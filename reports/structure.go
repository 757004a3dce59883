package reports

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"regexp"
	"strings"

	"github.com/xuri/excelize/v2"
)

// Problem codes of the file's structure (checkStructure).
const (
	// ProblemStructure: something in the file that changes what a reader
	// sees without changing a cell's value — a formula, a hidden sheet, row
	// or column, a number format that scales or hides, a macro, a second
	// copy of a part.
	ProblemStructure = "STRUCTURE"
	// ProblemNotIdentical: the values match what the database gives, but the
	// file is not byte for byte the pack the server writes for its scope and
	// as-of (a pack re-saved by a spreadsheet application, or a forged
	// presentation).
	ProblemNotIdentical = "NOT_IDENTICAL"
)

var (
	// A cell formula (any prefix, any white space after the name): Excel
	// recomputes it on opening, over the cached value the checksums read.
	formulaTag = regexp.MustCompile(`<(?:[\w.-]+:)?f[\s>/]`)
	// A hidden or zero-sized row or column, or conditional formatting (a
	// white font on a white cell hides as well as hidden="1" does).
	hiddenAttr = regexp.MustCompile(`\b(?:hidden|zeroHeight)\s*=\s*["'](?:1|true)["']|\b(?:ht|width)\s*=\s*["']0*(?:\.0*)?["']|<(?:[\w.-]+:)?conditionalFormatting\b`)
	sheetState = regexp.MustCompile(`<(?:[\w.-]+:)?sheet\b[^>]*\bstate\s*=\s*["'](?:hidden|veryHidden)["']`)
	numFmt     = regexp.MustCompile(`formatCode\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	// The parts a pack has, or a spreadsheet application saving it again
	// adds; any other part (a worksheet moved elsewhere, a macro, an
	// embedded object, a calculation chain) is STRUCTURE.
	knownPart = regexp.MustCompile(`^(?:\[Content_Types\]\.xml|_rels/\.rels|docProps/(?:core|app|custom)\.xml|` +
		`xl/(?:workbook|styles|sharedStrings)\.xml|xl/_rels/workbook\.xml\.rels|xl/theme/theme\d+\.xml|` +
		`xl/worksheets/sheet\d+\.xml|xl/worksheets/_rels/sheet\d+\.xml\.rels|` +
		`xl/drawings/drawing\d+\.xml|xl/drawings/_rels/drawing\d+\.xml\.rels|` +
		`xl/charts/(?:chart|style|colors)\d+\.xml|xl/charts/_rels/chart\d+\.xml\.rels|` +
		`xl/printerSettings/printerSettings\d+\.bin)$`)
)

// checkStructure reads the zip itself for what excelize's cell values do not
// show: every problem names the part. Worksheets are scanned as a stream.
func (v *verifier) checkStructure(path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil // reported by excelize already (NOT_A_PACK)
	}
	defer zr.Close()
	seen := map[string]bool{}
	bad := func(part, format string, args ...any) {
		v.problem(Problem{Code: ProblemStructure, Detail: part + ": " + fmt.Sprintf(format, args...)})
	}
	for _, f := range zr.File {
		name := f.Name
		if seen[strings.ToLower(name)] {
			bad(name, "a second part of the same name (a reader may take either)")
		}
		seen[strings.ToLower(name)] = true
		lower := strings.ToLower(name)
		if !knownPart.MatchString(name) {
			bad(name, "a part no pack has (a moved worksheet, a macro, an embedded object, formulas' calculation chain)")
			continue
		}
		switch {
		case strings.HasPrefix(lower, "xl/worksheets/sheet"):
			if err := v.scanWorksheet(f, bad); err != nil {
				return err
			}
		case lower == "xl/workbook.xml", lower == "xl/styles.xml", lower == "[content_types].xml":
			b, err := readPart(f, 64<<20)
			if err != nil {
				bad(name, "unreadable: %v", err)
				continue
			}
			if sheetState.Match(b) {
				bad(name, "a hidden sheet")
			}
			if bytes.Contains(b, []byte("macroEnabled")) {
				bad(name, "declares macros")
			}
			for _, m := range numFmt.FindAllSubmatch(b, -1) {
				code := html.UnescapeString(string(m[1]) + string(m[2]))
				if why := suspectFormat(code); why != "" {
					bad(name, "number format %q %s", code, why)
				}
			}
		}
	}
	return nil
}

// suspectFormat says why a number format would show a value other than the
// cell's: scaling by thousands (a comma before the end or before a
// decimal point... at the end of a number part), percent, hiding (an empty
// section), or literal text standing in for digits. "" when it shows the
// value. Quoted and escaped characters are literal text and are checked
// too: a format that prints a fixed number is suspect.
func suspectFormat(code string) string {
	var plain strings.Builder // the format outside quotes and escapes
	quoted := false
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
			if c >= '0' && c <= '9' || c == '-' {
				return "prints digits or a sign of its own"
			}
		case c == '\\' && i+1 < len(code):
			if n := code[i+1]; n >= '0' && n <= '9' || n == '-' && !strings.Contains(code[:i], "y") {
				return "prints digits or a sign of its own"
			}
			i++
		default:
			plain.WriteByte(c)
		}
	}
	p := plain.String()
	sections := strings.Split(p, ";")
	for i, section := range sections {
		s := strings.TrimSpace(section)
		if s == "" && len(sections) > 1 {
			return "hides values (an empty section)"
		}
		if strings.Contains(s, "%") {
			return "scales by 100 (percent)"
		}
		if strings.Contains(s, "[") && !strings.Contains(s, "[$") {
			return "has a colour or a condition (a colour can hide a value, a condition pick another section)"
		}
		if i == 1 && !strings.ContainsAny(s, "-(") && !strings.HasPrefix(strings.ToLower(s), "general") {
			return "shows negative values without their sign"
		}
		// A comma right after the last digit placeholder scales by 1000.
		t := strings.TrimRight(s, " _)-")
		if strings.HasSuffix(t, ",") || strings.Contains(t, ",.") || strings.Contains(t, ",;") {
			return "scales by thousands"
		}
	}
	return ""
}

func readPart(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("larger than %d bytes", limit)
	}
	return b, err
}

// scanWorksheet streams a worksheet for formulas and hidden rows or
// columns, in windows that overlap by a tag's length.
func (v *verifier) scanWorksheet(f *zip.File, bad func(part, format string, args ...any)) error {
	rc, err := f.Open()
	if err != nil {
		bad(f.Name, "unreadable: %v", err)
		return nil
	}
	defer rc.Close()
	const window, overlap = 1 << 20, 64
	buf := make([]byte, 0, window+overlap)
	formula, hidden := false, false
	for n := 0; ; n++ {
		if n%16 == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		k := len(buf)
		m, rerr := io.ReadFull(rc, buf[k:k+window])
		buf = buf[:k+m]
		if !formula && formulaTag.Match(buf) {
			formula = true
			bad(f.Name, "a cell formula (a reader recomputes it over the value the checksums read)")
		}
		if !hidden && hiddenAttr.Match(buf) {
			hidden = true
			bad(f.Name, "a hidden or zero-sized row or column, or conditional formatting")
		}
		if rerr != nil {
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return nil
			}
			bad(f.Name, "unreadable: %v", rerr)
			return nil
		}
		if len(buf) > overlap {
			buf = append(buf[:0], buf[len(buf)-overlap:]...)
		}
	}
}

// signatureLines are the Manifest lines a re-derived pack may hold
// differently: the verifier writes it with or without the signing key
// (the seal covers the head's signature; Verify checks the seal itself).
var signatureLines = map[string]bool{
	"chainHead.signature": true, "chainHead.keyId": true, "manifest.sha256": true, "manifest.signature": true, "manifest.keyId": true,
}

// partDifference compares the file with the pack written again (again, and
// g opened on it) part by part on content: "" when they are the same, else
// the first difference. The Manifest's worksheet, when its bytes differ, is
// compared line by line with the signature lines left out.
func (v *verifier) partDifference(again string, g *excelize.File) (string, error) {
	za, err := zip.OpenReader(v.path)
	if err != nil {
		return "", err
	}
	defer za.Close()
	zb, err := zip.OpenReader(again)
	if err != nil {
		return "", err
	}
	defer zb.Close()
	if len(za.File) != len(zb.File) {
		return fmt.Sprintf("%d parts, the pack has %d", len(za.File), len(zb.File)), nil
	}
	manifest := fmt.Sprintf("xl/worksheets/sheet%d.xml", len(Layout))
	for i, fa := range za.File {
		fb := zb.File[i]
		if fa.Name != fb.Name {
			return fmt.Sprintf("part %d is %s, the pack's is %s", i+1, fa.Name, fb.Name), nil
		}
		sa, err := partSHA256(fa)
		if err != nil {
			return fmt.Sprintf("%s: unreadable: %v", fa.Name, err), nil
		}
		sb, err := partSHA256(fb)
		if err != nil {
			return "", err
		}
		if sa == sb {
			continue
		}
		if fa.Name == manifest {
			same, err := v.sameManifest(g)
			if err != nil {
				return "", err
			}
			if same {
				continue
			}
		}
		return fa.Name + " differs", nil
	}
	return "", nil
}

func partSHA256(f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sameManifest compares the Manifest rows of the file and of g, raw cell
// values, signature lines left out.
func (v *verifier) sameManifest(g *excelize.File) (bool, error) {
	read := func(f *excelize.File) ([][]string, error) {
		rows, err := f.Rows(SheetManifest)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out [][]string
		for rows.Next() && len(out) <= maxManifestLines {
			cells, err := rows.Columns(excelize.Options{RawCellValue: true})
			if err != nil {
				return nil, err
			}
			if len(cells) > 0 && signatureLines[cells[0]] {
				continue
			}
			out = append(out, cells)
		}
		return out, rows.Error()
	}
	a, err := read(v.f)
	if err != nil {
		return false, nil
	}
	b, err := read(g)
	if err != nil {
		return false, err
	}
	if len(a) != len(b) {
		return false, nil
	}
	for i := range a {
		if strings.Join(a[i], "\x00") != strings.Join(b[i], "\x00") {
			return false, nil
		}
	}
	return true, nil
}
