package reports_test

import (
	"archive/zip"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
	"github.com/tranche-ledger/tranche/reports"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func as(role auth.Role, orgID string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "tok-" + string(role) + orgID, Role: role, OrgID: orgID})
}

var coord = as(auth.Coordinator, "")

type result[T any] struct {
	v   T
	err error
}

// try3 drops the page token of a list call.
func try3[T any](v T, _ string, err error) result[T] { return result[T]{v, err} }

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func amt(a, c string) money.Amount {
	return money.Amount{Value: decimal.RequireFromString(a), Currency: c}
}

// world: a USD roadmap with a EUR grant (two minor units) and a JPY grant
// (none) from two donors, some journal entries, and one entry recorded after
// the as-of time.
type world struct {
	db                   *testdb.DB
	l                    *ledger.Store
	audit                *audit.Store
	key                  ed25519.PrivateKey
	roadmapID            uuid.UUID
	eur, jpy             ledger.Grant
	entries              []ledger.Transaction // recorded by asOf
	late                 ledger.Transaction   // recorded after asOf
	asOf                 time.Time
	reqs                 int
	impl, donorA, donorB string
}

func (w *world) req() string { w.reqs++; return fmt.Sprintf("req-%d", w.reqs) }

func newWorld(t testing.TB) *world {
	db := testdb.New(t)
	w := &world{db: db, l: ledger.New(db.App), audit: audit.New(db.App)}
	_, w.key, _ = ed25519.GenerateKey(rand.Reader)
	w.audit.SetSigningKey(w.key)
	orgs := org.New(db.App)
	w.impl = try(orgs.Create(coord, org.Organization{Name: "Demining NGO", Kind: "IMPLEMENTER"}, "impl")).must(t).ID
	w.donorA = try(orgs.Create(coord, org.Organization{Name: "Donor | A", Kind: "DONOR"}, "da")).must(t).ID
	w.donorB = try(orgs.Create(coord, org.Organization{Name: "Donor B", Kind: "DONOR"}, "db")).must(t).ID
	rm := try(roadmap.New(db.App).Create(coord, roadmap.Input{Country: "AFG", Title: "National Mine Action Strategy",
		StartDate: day("2024-01-01"), EndDate: day("2026-12-31"), ReportingCurrency: "USD"}, w.req())).must(t)
	w.roadmapID = uuid.MustParse(rm.ID)
	try(fx.New(db.App).Create(coord, []fx.RateInput{
		{Currency: "EUR", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: decimal.RequireFromString("0.92"), Source: "test"},
		{Currency: "JPY", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: decimal.RequireFromString("150"), Source: "test"},
		{Currency: "GBP", QuoteCurrency: "USD", Date: day("2024-01-01"), Rate: decimal.RequireFromString("0.80"), Source: "test"}, // no grant in GBP
	})).must(t)
	grant := func(donor, cur, ref, pledged string) ledger.Grant {
		return try(w.l.CreateGrant(as(auth.Donor, donor), ledger.GrantInput{RoadmapID: w.roadmapID,
			DonorOrgID: uuid.MustParse(donor), RecipientOrgID: uuid.MustParse(w.impl), Reference: ref, Title: "Grant " + ref,
			Currency: cur, Pledged: amt(pledged, cur), StartDate: day("2024-01-01"), EndDate: day("2025-12-31")}, w.req())).must(t)
	}
	w.eur = grant(w.donorA, "EUR", "A-1", "1000000.00")
	w.jpy = grant(w.donorB, "JPY", "B-1", "50000000")
	rec := func(ctx context.Context, g ledger.Grant, typ, a, cur, date, ref string) ledger.Transaction {
		return try(w.l.RecordTransaction(ctx, ledger.EntryInput{GrantID: uuid.MustParse(g.ID), Type: typ,
			Amount: amt(a, cur), ValueDate: day(date), Reference: ref}, w.req())).must(t)
	}
	da, dbk, im := as(auth.Donor, w.donorA), as(auth.Donor, w.donorB), as(auth.Implementer, w.impl)
	w.entries = append(w.entries,
		rec(da, w.eur, "COMMITMENT", "800000.00", "EUR", "2024-02-01", ""),
		rec(da, w.eur, "DISBURSEMENT", "250000.55", "EUR", "2024-03-01", "P|1"),
		rec(im, w.eur, "RECEIPT", "250000.55", "EUR", "2024-03-03", "P|1"),
		rec(dbk, w.jpy, "COMMITMENT", "30000000", "JPY", "2024-02-15", ""),
		rec(dbk, w.jpy, "DISBURSEMENT", "1234567", "JPY", "2024-04-01", "J-1"),
	)
	// A mistaken disbursement and its reversal (negative in the pack), and an
	// expenditure with its own FX rate.
	wrong := rec(dbk, w.jpy, "DISBURSEMENT", "1000", "JPY", "2024-04-02", "J-2")
	rate := decimal.RequireFromString("0.93")
	w.entries = append(w.entries, wrong,
		try(w.l.RecordTransaction(dbk, ledger.EntryInput{GrantID: uuid.MustParse(w.jpy.ID), Type: "REVERSAL",
			ReversesID: uuid.MustParse(wrong.ID), ValueDate: day("2024-04-03"), Note: "entered twice"}, w.req())).must(t),
		try(w.l.RecordTransaction(im, ledger.EntryInput{GrantID: uuid.MustParse(w.eur.ID), Type: "EXPENDITURE",
			Amount: amt("1000.10", "EUR"), ValueDate: day("2024-04-10"), Reference: "INV-7", FxRate: &rate}, w.req())).must(t),
	)
	// The pledge of each grant is its first journal entry; the pack lists
	// the journal in (value date, recorded at, id) order.
	for _, g := range []ledger.Grant{w.eur, w.jpy} {
		w.entries = append(w.entries, try3(w.l.ListTransactions(coord, uuid.MustParse(g.ID), "PLEDGE", 10, "")).must(t)...)
	}
	slices.SortFunc(w.entries, func(a, b ledger.Transaction) int {
		return cmp.Or(a.ValueDate.Compare(b.ValueDate), a.RecordedAt.Compare(b.RecordedAt), strings.Compare(a.ID, b.ID))
	})
	time.Sleep(2 * time.Millisecond)
	w.asOf = time.Now().UTC().Truncate(time.Microsecond)
	time.Sleep(2 * time.Millisecond)
	w.late = rec(da, w.eur, "DISBURSEMENT", "1000.00", "EUR", "2024-03-05", "late")
	return w
}

func (w *world) pack(t *testing.T, s reports.Scope) []byte {
	t.Helper()
	var buf bytes.Buffer
	if s.RoadmapID == uuid.Nil {
		s.RoadmapID = w.roadmapID
	}
	if s.AsOf.IsZero() {
		s.AsOf = w.asOf
	}
	if err := reports.Write(context.Background(), &buf, reports.Source{DB: w.db.App, Audit: w.audit}, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ids are the ids of the entries recorded by asOf of a grant ("": any)
// with a value date in [from, to] ("": open), in pack order.
func (w *world) ids(grant, from, to string) []string {
	var s []string
	for _, e := range w.entries {
		d := e.ValueDate.Format(time.DateOnly)
		if (grant == "" || e.GrantID == grant) && (from == "" || d >= from) && (to == "" || d <= to) {
			s = append(s, e.ID)
		}
	}
	return s
}

func open(t *testing.T, b []byte) *excelize.File {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// sheetRows reads a sheet's data rows back into canonical cells, the way a
// verifier would (raw values; amounts re-formatted with the currency in the
// next column), so that the manifest can be recomputed from the file alone.
func sheetRows(t *testing.T, f *excelize.File, name string) [][]string {
	t.Helper()
	var sheet reports.Sheet
	for _, s := range reports.Layout {
		if s.Name == name {
			sheet = s
		}
	}
	raw := try(f.GetRows(name, excelize.Options{RawCellValue: true})).must(t)
	shown := try(f.GetRows(name)).must(t)
	if got, want := raw[0], sheet.Headers(); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("%s headers %q, want %q", name, got, want)
	}
	var out [][]string
	for r := 1; r < len(raw); r++ {
		cells := raw[r]
		cell := func(i int) string {
			if i < len(cells) {
				return cells[i]
			}
			return ""
		}
		var canon []string
		i := 0
		for _, c := range sheet.Columns {
			v := cell(i)
			switch c.Kind {
			case reports.Amount:
				cur := cell(i + 1)
				if v != "" {
					v = money.Format(decimal.RequireFromString(v), cur)
				}
				canon = append(canon, v, cur)
				i += 2
				continue
			case reports.Date:
				if v != "" {
					v = shown[r][i] // the yyyy-mm-dd number format
				}
			case reports.Decimal:
				if v != "" {
					v = decimal.RequireFromString(v).String()
				}
			}
			canon = append(canon, v)
			i++
		}
		out = append(out, canon)
	}
	return out
}

type manifestLine struct {
	rows string
	sum  string
}

func manifest(t *testing.T, f *excelize.File) (map[string]manifestLine, map[string]string) {
	t.Helper()
	sheets, facts := map[string]manifestLine{}, map[string]string{}
	for _, r := range try(f.GetRows(reports.SheetManifest)).must(t)[1:] {
		for len(r) < 4 {
			r = append(r, "")
		}
		if n, ok := strings.CutPrefix(r[0], "sheet:"); ok {
			sheets[n] = manifestLine{r[1], r[2]}
		} else {
			facts[r[0]] = r[3]
		}
	}
	return sheets, facts
}

func TestPackContents(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	f := open(t, w.pack(t, reports.Scope{}))

	var names []string
	for _, s := range reports.Layout {
		names = append(names, s.Name)
	}
	if got := f.GetSheetList(); strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("sheets %q, want %q", got, names)
	}

	// Grants: one row per grant, figures equal to the reconciliation API's
	// agreement-currency totals for the same as-of (the late entry left out).
	grants := sheetRows(t, f, reports.SheetGrants)
	if len(grants) != 2 {
		t.Fatalf("%d grant rows, want 2", len(grants))
	}
	for i, g := range []ledger.Grant{w.eur, w.jpy} { // ordered by reference
		rec := try(w.l.Reconcile(coord, uuid.MustParse(g.ID), w.asOf)).must(t)
		a := rec.Agreement
		want := []string{g.ID, g.Reference, g.Title, g.DonorOrgID, "", g.RecipientOrgID, "Demining NGO",
			g.StartDate.Format(time.DateOnly), g.EndDate.Format(time.DateOnly), "",
			money.Format(a.Pledged, g.Currency), g.Currency, money.Format(a.Committed, g.Currency), g.Currency,
			money.Format(a.Disbursed, g.Currency), g.Currency, money.Format(a.Received, g.Currency), g.Currency,
			money.Format(a.Spent, g.Currency), g.Currency}
		got := grants[i]
		want[4], want[9] = got[4], got[9] // names and creation time checked below
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("grant row %d\n got %q\nwant %q", i, got, want)
		}
	}
	if grants[0][4] != "Donor | A" || grants[1][4] != "Donor B" {
		t.Errorf("donor names %q, %q", grants[0][4], grants[1][4])
	}
	if grants[0][12] != "800000.00" || grants[0][14] != "250000.55" {
		t.Errorf("EUR grant committed %s disbursed %s (the late 1000.00 must not count)", grants[0][12], grants[0][14])
	}

	// Transactions: the entries recorded by asOf, in value-date order.
	txs := sheetRows(t, f, reports.SheetTransactions)
	if len(txs) != len(w.entries) {
		t.Fatalf("%d transaction rows, want %d", len(txs), len(w.entries))
	}
	for i, e := range w.entries { // recorded in value-date order already
		got := txs[i]
		if got[0] != e.ID || got[3] != e.Type || got[5] != e.ValueDate.Format(time.DateOnly) ||
			got[6] != money.Format(e.Amount, e.Currency) || got[7] != e.Currency {
			t.Errorf("transaction row %d = %q, want id %s %s %s %s", i, got[:8], e.ID, e.Type, e.ValueDate.Format(time.DateOnly), e.Amount.String()+" "+e.Currency)
		}
		if got[0] == w.late.ID {
			t.Errorf("the entry recorded after asOf is in the pack")
		}
	}

	// The reversal: its amount as entered, its effect negative, naming the entry it cancels; the expenditure
	// carries its own rate, the others none.
	byID := map[string][]string{}
	for _, r := range txs {
		byID[r[0]] = r
	}
	for _, e := range w.entries {
		r := byID[e.ID]
		switch e.Type {
		case "REVERSAL":
			if r[6] != "1000" || r[8] != "-1000" || r[17] != e.ReversesID || r[18] != "entered twice" {
				t.Errorf("reversal row %q", r)
			}
		case "EXPENDITURE":
			if r[14] != "0.93" || r[10] != money.Format(e.ReportingAmount, "USD") || r[11] != "USD" {
				t.Errorf("expenditure row %q, want own rate 0.93 and reporting %s USD", r, e.ReportingAmount)
			}
		default:
			if r[14] != "" {
				t.Errorf("%s row has an entry FX rate %q", e.Type, r[14])
			}
		}
	}

	// Cell types and number formats: amounts numeric with the currency's
	// minor units, dates numeric with a date format, rates numeric.
	for _, c := range []struct {
		sheet, cell, format string
		typ                 excelize.CellType
	}{
		{reports.SheetGrants, "H2", "yyyy-mm-dd", excelize.CellTypeUnset},
		{reports.SheetGrants, "K2", "#,##0.00", excelize.CellTypeUnset},
		{reports.SheetGrants, "K3", "#,##0", excelize.CellTypeUnset},
		{reports.SheetTransactions, "G2", "#,##0.00", excelize.CellTypeUnset},
		{reports.SheetTransactions, "K2", "#,##0.00", excelize.CellTypeUnset}, // reporting amount, USD
	} {
		typ := try(f.GetCellType(c.sheet, c.cell)).must(t)
		if typ != c.typ && typ != excelize.CellTypeNumber {
			t.Errorf("%s!%s type %v, want a number", c.sheet, c.cell, typ)
		}
		style := try(f.GetStyle(try(f.GetCellStyle(c.sheet, c.cell)).must(t))).must(t)
		if style.CustomNumFmt == nil || *style.CustomNumFmt != c.format {
			t.Errorf("%s!%s number format %v, want %q", c.sheet, c.cell, style.CustomNumFmt, c.format)
		}
	}
	if v := try(f.GetCellValue(reports.SheetGrants, "K2")).must(t); v != "1,000,000.00" {
		t.Errorf("Grants!K2 shows %q, want 1,000,000.00", v)
	}
	if v := try(f.GetCellValue(reports.SheetGrants, "K3")).must(t); v != "50,000,000" {
		t.Errorf("Grants!K3 shows %q, want 50,000,000", v)
	}

	// Header frozen, widths set, autofilter over the data.
	for _, s := range reports.Layout {
		panes := try(f.GetPanes(s.Name)).must(t)
		if !panes.Freeze || panes.YSplit != 1 {
			t.Errorf("%s: header not frozen: %+v", s.Name, panes)
		}
		if wd := try(f.GetColWidth(s.Name, "A")).must(t); wd != s.Columns[0].Width {
			t.Errorf("%s: column A width %v, want %v", s.Name, wd, s.Columns[0].Width)
		}
	}
	xml := zipEntry(t, w.pack(t, reports.Scope{}), "xl/worksheets/sheet4.xml") // Transactions
	ref := fmt.Sprintf(`<autoFilter ref="$A$1:$W$%d"`, len(w.entries)+1)       // 23 columns: 20 + 3 currency columns
	if !bytes.Contains(xml, []byte(ref)) {
		t.Errorf("Transactions has no %s…: %s", ref, xml[max(0, len(xml)-300):])
	}

	// Manifest: row counts and checksums recomputed from the cells.
	sheets, facts := manifest(t, f)
	for _, s := range reports.Layout[:len(reports.Layout)-1] {
		rows := sheetRows(t, f, s.Name)
		m, ok := sheets[s.Name]
		if !ok {
			t.Errorf("manifest has no line for %s", s.Name)
			continue
		}
		if m.rows != fmt.Sprint(len(rows)) || m.sum != reports.CanonicalSHA256(rows) {
			t.Errorf("manifest %s: %s rows %s, recomputed %d rows %s", s.Name, m.rows, m.sum, len(rows), reports.CanonicalSHA256(rows))
		}
	}
	if facts["asOf"] != w.asOf.Format("2006-01-02T15:04:05.000000Z") || facts["scope.roadmapId"] != w.roadmapID.String() ||
		facts["format"] != reports.Format || facts["scope.donorOrgId"] != "all" {
		t.Errorf("manifest facts %v", facts)
	}
}

func zipEntry(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	zr := try(zip.NewReader(bytes.NewReader(b), int64(len(b)))).must(t)
	for _, e := range zr.File {
		if e.Name == name {
			rc := try(e.Open()).must(t)
			defer rc.Close()
			return try(io.ReadAll(rc)).must(t)
		}
	}
	t.Fatalf("no %s in the pack", name)
	return nil
}

func TestPackDeterministic(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a, b := w.pack(t, reports.Scope{}), w.pack(t, reports.Scope{})
	if !bytes.Equal(a, b) {
		t.Fatalf("two packs of the same scope and as-of differ (%d and %d bytes)", len(a), len(b))
	}
	// Zip entries carry the as-of time, not the time of writing.
	zr := try(zip.NewReader(bytes.NewReader(a), int64(len(a)))).must(t)
	for _, e := range zr.File {
		if !e.Modified.Equal(w.asOf.Truncate(time.Second)) {
			t.Errorf("%s modified %v, want %v", e.Name, e.Modified, w.asOf)
		}
	}
	// A later as-of sees the late entry: a different file.
	if c := w.pack(t, reports.Scope{AsOf: time.Now()}); bytes.Equal(a, c) {
		t.Errorf("a later as-of gave the same bytes")
	}
}

func TestPackScopes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := func(rows [][]string, col int) []string {
		var s []string
		for _, r := range rows {
			s = append(s, r[col])
		}
		return s
	}
	for _, c := range []struct {
		name   string
		scope  reports.Scope
		grants []string
		txs    []string
	}{
		{"donor A", reports.Scope{DonorOrgID: uuid.MustParse(w.donorA)}, []string{w.eur.ID}, w.ids(w.eur.ID, "", "")},
		{"donor B", reports.Scope{DonorOrgID: uuid.MustParse(w.donorB)}, []string{w.jpy.ID}, w.ids(w.jpy.ID, "", "")},
		{"grant", reports.Scope{GrantID: uuid.MustParse(w.jpy.ID)}, []string{w.jpy.ID}, w.ids(w.jpy.ID, "", "")},
		{"donor A, grant of B", reports.Scope{DonorOrgID: uuid.MustParse(w.donorA), GrantID: uuid.MustParse(w.jpy.ID)}, nil, nil},
		{"period", reports.Scope{From: day("2024-02-15"), To: day("2024-03-01")}, []string{w.eur.ID, w.jpy.ID},
			w.ids("", "2024-02-15", "2024-03-01")},
		{"implementer's org as donor", reports.Scope{DonorOrgID: uuid.MustParse(w.impl)}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := open(t, w.pack(t, c.scope))
			g, tx := sheetRows(t, f, reports.SheetGrants), sheetRows(t, f, reports.SheetTransactions)
			if got := ids(g, 0); strings.Join(got, ",") != strings.Join(c.grants, ",") {
				t.Errorf("grants %q, want %q", got, c.grants)
			}
			if got := ids(tx, 0); strings.Join(got, ",") != strings.Join(c.txs, ",") {
				t.Errorf("transactions %q, want %q", got, c.txs)
			}
			if c.scope.DonorOrgID != uuid.Nil {
				for _, r := range g {
					if r[3] != c.scope.DonorOrgID.String() {
						t.Errorf("grant %s of donor %s in a pack narrowed to %s", r[0], r[3], c.scope.DonorOrgID)
					}
				}
			}
		})
	}
}

func TestPackEmptyAndUnknown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	empty := try(roadmap.New(w.db.App).Create(coord, roadmap.Input{Country: "AGO", Title: "Empty",
		StartDate: day("2024-01-01"), EndDate: day("2024-12-31"), ReportingCurrency: "EUR"}, "empty")).must(t)
	f := open(t, w.pack(t, reports.Scope{RoadmapID: uuid.MustParse(empty.ID), AsOf: time.Now()}))
	sheets, _ := manifest(t, f)
	if m := sheets[reports.SheetTransactions]; m.rows != "0" || m.sum != reports.CanonicalSHA256(nil) {
		t.Errorf("empty roadmap: Transactions manifest %+v", m)
	}
	err := reports.Write(context.Background(), io.Discard, reports.Source{DB: w.db.App}, reports.Scope{RoadmapID: uuid.New()})
	if !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("unknown roadmap: %v, want not found", err)
	}
	err = reports.Write(context.Background(), io.Discard, reports.Source{DB: w.db.App}, reports.Scope{})
	var invalid *apperr.InvalidError
	if !errors.As(err, &invalid) {
		t.Errorf("no roadmap: %v, want invalid", err)
	}
}

// The manifest carries the signed chain head at as-of and the verdict of a
// verification; a rewritten chain shows up as a failure in the next pack.
func TestPackChainHead(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.pack(t, reports.Scope{})
	_, facts := manifest(t, open(t, b))

	ctx := context.Background()
	var wantSeq, lastSeq int64
	var wantHash []byte
	if err := w.db.Owner.QueryRow(ctx, `SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL AND occurred_at <= $1
		ORDER BY seq DESC LIMIT 1`, w.asOf).Scan(&wantSeq, &wantHash); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Owner.QueryRow(ctx, `SELECT max(seq) FROM audit_events`).Scan(&lastSeq); err != nil {
		t.Fatal(err)
	}
	if lastSeq <= wantSeq {
		t.Fatalf("the late entry's event (seq %d) should lie beyond the head at as-of (%d)", lastSeq, wantSeq)
	}
	if facts["chainHead.sequence"] != fmt.Sprint(wantSeq) || facts["chainHead.hash"] != hex.EncodeToString(wantHash) {
		t.Errorf("head %s %s, want %d %x", facts["chainHead.sequence"], facts["chainHead.hash"], wantSeq, wantHash)
	}
	sig := try(audit.DecodeSignature(facts["chainHead.signature"])).must(t)
	h := audit.Head{Seq: wantSeq, Hash: wantHash, Signature: sig, KeyID: facts["chainHead.keyId"]}
	if err := h.VerifySignature(w.key.Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("head signature: %v", err)
	}
	if !strings.HasPrefix(facts["chainVerification"], "verified") {
		t.Errorf("verification %q", facts["chainVerification"])
	}

	// Without an audit store the manifest says the head is not included.
	var buf bytes.Buffer
	if err := reports.Write(ctx, &buf, reports.Source{DB: w.db.App}, reports.Scope{RoadmapID: w.roadmapID, AsOf: w.asOf}); err != nil {
		t.Fatal(err)
	}
	if _, f := manifest(t, open(t, buf.Bytes())); !strings.HasPrefix(f["chainHead.sequence"], "not included") {
		t.Errorf("no audit store: head %q", f["chainHead.sequence"])
	}

	// A rewritten event before the head: the pack reports the failure.
	err := pgx.BeginFunc(ctx, w.db.Owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE audit_events SET change = replace(change, 'Demining', 'Dem1ning') WHERE seq = 1`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, facts = manifest(t, open(t, w.pack(t, reports.Scope{})))
	if !strings.HasPrefix(facts["chainVerification"], "FAILED at sequence 1") {
		t.Errorf("after tampering with seq 1: verification %q", facts["chainVerification"])
	}
}

// FX Rates holds the rates between the scope's currencies recorded by as-of.
func TestPackFXRates(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, c := range []struct {
		name  string
		scope reports.Scope
		want  [][]string
	}{
		{"roadmap", reports.Scope{}, [][]string{
			{"EUR", "USD", "2024-01-01", "0.92", "0", "test", ""},
			{"JPY", "USD", "2024-01-01", "150", "0", "test", ""},
		}},
		{"donor A", reports.Scope{DonorOrgID: uuid.MustParse(w.donorA)}, [][]string{
			{"EUR", "USD", "2024-01-01", "0.92", "0", "test", ""},
		}},
		{"before the rates were recorded", reports.Scope{AsOf: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := sheetRows(t, open(t, w.pack(t, c.scope)), reports.SheetFXRates)
			var got [][]string
			for _, r := range rows {
				got = append(got, r[:len(r)-1]) // recorded at: a time of this run
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("FX rates %q, want %q", got, c.want)
			}
		})
	}
}

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

var errDiskFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}

// A destination that fails mid-file makes Write fail, not report a pack.
func TestPackWriteFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, n := range []int{0, 100, 5000} {
		err := reports.Write(context.Background(), &failAfter{n}, reports.Source{DB: w.db.App, Audit: w.audit},
			reports.Scope{RoadmapID: w.roadmapID, AsOf: w.asOf})
		if !errors.Is(err, errDiskFull) {
			t.Errorf("failing after %d bytes: %v, want the writer's error", n, err)
		}
	}
}
