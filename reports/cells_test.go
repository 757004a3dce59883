package reports

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/xuri/excelize/v2"
)

// TestCellsAsExcelize: the pack writes data rows itself (sheetWriter); each
// row must be byte for byte what excelize's StreamWriter writes for the same
// cells, hostile strings, edge dates and long decimals included, and its
// canonical form what the manifest checksum documents.
func TestCellsAsExcelize(t *testing.T) {
	t.Parallel()
	sheet := Sheet{"S", []Column{{"T", Text, 10}, {"D", Date, 10}, {"A", Amount, 10}, {"I", Integer, 10},
		{"R", Decimal, 10}, {"S", Timestamp, 10}}}
	ts := time.Date(2024, 3, 1, 10, 15, 0, 123456000, time.FixedZone("x", 3600))
	long := strings.Repeat("é", 40000)
	num := decimal.RequireFromString
	rows := []struct {
		text string
		day  time.Time
		amt  decimal.Decimal
		cur  string
		i    int64
		rate decimal.Decimal
	}{
		{"plain text", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), num("1234.50"), "EUR", 7, num("0.92")},
		{"", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), num("-1234"), "JPY", -5, num("150")},
		{"a\x00b\tc", time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC), num("0.001"), "KWD", 0, num("0.333333333333333333")},
		{" lead", time.Date(1900, 2, 28, 0, 0, 0, 0, time.UTC), num("99999999999999999999.99"), "USD", 1 << 62, num("0.0000001")},
		{"trail\n", time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC), num("123456789012345.67"), "USD", -1, num("1e20")},
		{`<&>"'` + "\r", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), num("0"), "EUR", 1, num("-0.5")},
		{"_x0041_ and _x005F_x0041_ and _xZZZZ_", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), num("1.1"), "EUR", 2, num("12345678901234567")},
		{"é漢字😀 mid space", time.Time{}, num("2.5"), "EUR", 3, num("1")},
		{long, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("3"), "EUR", 4, num("2")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("1234.5"), "KWD", 5, num("1.50")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("-0.05"), "EUR", 6, num("-0.000")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("1.005"), "EUR", 7, num("100")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("-1.005"), "JPY", 8, num("999999999999999")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("999999999999999"), "KWD", 9, num("0.1234567890123456")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("9007199254740.99"), "EUR", 10, num("123456789012.345")},
		{"x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), num("0.1"), "USD", 11, num("1e-22")},
	}

	p := &pack{f: excelize.NewFile(), styles: map[int32]int{}, data: map[string]*sheetData{}}
	defer p.f.Close()
	if err := p.setup(); err != nil {
		t.Fatal(err)
	}
	data, err := newSheetData()
	if err != nil {
		t.Fatal(err)
	}
	defer data.remove()
	w := newSheetWriter(p, sheet, data)

	ref := excelize.NewFile()
	defer ref.Close()
	sw, err := ref.NewStreamWriter("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	canonical := sha256.New()
	for n, r := range rows {
		if err := w.row(text(r.text), day(r.day), amount(r.amt, r.cur), integer(r.i), dec(r.rate), stamp(ts)); err != nil {
			t.Fatal(err)
		}
		style, err := p.amountStyle(r.cur)
		if err != nil {
			t.Fatal(err)
		}
		// Amounts and decimals of more than 15 significant digits are exact
		// text cells (digits.go); the rest numbers, as excelize writes them.
		amtText := money.Format(r.amt, r.cur)
		var amtCell any = amtText
		if sigDigits(amtText) <= maxCellDigits {
			af, _ := strconv.ParseFloat(amtText, 64)
			amtCell = af
		}
		rateText, isNum := decimalCell(r.rate.String())
		var rateCell any = rateText
		if isNum {
			rateCell, _ = strconv.ParseFloat(rateText, 64)
		}
		// The pack writes text as a reader gets it back (U+FFFD for what XML
		// cannot hold, cut and marked at the cell limit); excelize, given
		// that text, writes the same bytes.
		txt := fitCell(xmlText(r.text))
		var textCell, dayCell any
		if txt != "" {
			textCell = txt
		}
		dayText := ""
		if !r.day.IsZero() {
			dayCell, dayText = excelize.Cell{StyleID: p.date, Value: r.day}, r.day.Format(time.DateOnly)
		}
		stampText := ts.UTC().Format("2006-01-02T15:04:05.000000Z")
		cell, _ := excelize.CoordinatesToCellName(1, n+2)
		if err := sw.SetRow(cell, []any{textCell, dayCell, excelize.Cell{StyleID: style, Value: amtCell}, r.cur, r.i, rateCell,
			stampText}); err != nil {
			t.Fatal(err)
		}
		writeCanonical(canonical, []string{txt, dayText, r.amt.StringFixedBank(map[string]int32{"EUR": 2, "JPY": 0,
			"KWD": 3, "USD": 2}[r.cur]), r.cur, decimal.NewFromInt(r.i).String(), rateText, stampText})
	}
	got := string(w.cur.xml)
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ref.Write(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, f := range zr.File {
		if f.Name == "xl/worksheets/sheet1.xml" {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			s := string(b)
			want = s[strings.Index(s, `<row r="2"`):strings.Index(s, `</sheetData>`)]
		}
	}
	if got != want {
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				lo := max(0, i-200)
				t.Fatalf("rows differ at byte %d:\n got %q\nwant %q", i, got[lo:min(len(got), i+100)], want[lo:min(len(want), i+100)])
			}
		}
		t.Fatalf("rows differ in length: got %d bytes, want %d", len(got), len(want))
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if g, w := data.hash.Sum(nil), canonical.Sum(nil); !bytes.Equal(g, w) {
		t.Fatalf("canonical hash %x, want %x", g, w)
	}
	if data.crc != crc32.ChecksumIEEE([]byte(got)) || data.size != int64(len(got)) {
		t.Fatalf("data crc/size %08x/%d, want %08x/%d", data.crc, data.size, crc32.ChecksumIEEE([]byte(got)), len(got))
	}
}

func TestCRC32Combine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b string }{{"", ""}, {"abc", ""}, {"", "abc"}, {"hello ", "world"},
		{strings.Repeat("x", 1000), strings.Repeat("yz", 70001)}} {
		got := crc32Combine(crc32.ChecksumIEEE([]byte(tc.a)), crc32.ChecksumIEEE([]byte(tc.b)), int64(len(tc.b)))
		if want := crc32.ChecksumIEEE([]byte(tc.a + tc.b)); got != want {
			t.Errorf("crc32Combine(%d+%d bytes) = %08x, want %08x", len(tc.a), len(tc.b), got, want)
		}
	}
}

// Decimals of more than 15 significant digits: exact text, or a number only
// when the double's shortest decimal keeps every whole unit.
func TestDecimalCell(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, canon string
		number    bool
	}{
		{"0.92", "0.92", true},
		{"123456789012345", "123456789012345", true},
		{"1.086956521739130434782609", "1.086956521739130434782609", false},
		{"0.920000000000000000000001", "0.92", true},
		{"10000000000000001", "10000000000000001", false},
		{"10000000000000000.01", "10000000000000000", true}, // a fraction beyond a double's precision
		{"-0.000000000000000000000001", "-0.000000000000000000000001", true},
		{"-1.086956521739130434782609", "-1.086956521739130434782609", false},
	} {
		canon, number := decimalCell(c.in)
		if canon != c.canon || number != c.number {
			t.Errorf("decimalCell(%s) = %s, %v; want %s, %v", c.in, canon, number, c.canon, c.number)
		}
	}
}
