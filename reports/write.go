package reports

import (
	"archive/zip"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/money"
)

// Format names the layout; Generator the code that wrote a pack. Both are
// constants (not build info) so that a rebuilt binary writes the same bytes.
const (
	Format    = "tranche-audit-pack/1"
	Generator = "tranche reports 0.1"
)

// Source is where a pack's rows and chain head come from.
type Source struct {
	// DB opens the read transaction the pack is read in (a *pgxpool.Pool).
	DB interface {
		BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
	}
	// Audit gives the chain head at the as-of point, signed when it has a
	// key, and verifies the chain; nil leaves the head out of the manifest
	// (it says so).
	Audit *audit.Store
	// Progress, when set, is told how far the pack has got: called with a
	// sheet's name and its rows so far, every ProgressEvery rows and once
	// when the sheet is done (done true). It must be quick; it runs on the
	// writing goroutine.
	Progress func(sheet string, rows int64, done bool)
}

// ProgressEvery is how many rows pass between two Progress calls.
const ProgressEvery = 10000

// Scope is what a pack covers. RoadmapID is required; a zero DonorOrgID or
// GrantID does not narrow; From and To (value dates, inclusive; zero: open)
// narrow the journal rows. AsOf is the point in time: rows recorded after it
// are left out (zero: now, truncated to PostgreSQL's microseconds).
type Scope struct {
	RoadmapID  uuid.UUID
	DonorOrgID uuid.UUID
	GrantID    uuid.UUID
	From, To   time.Time
	AsOf       time.Time
}

// Write streams the pack of scope to w. Authorisation is the caller's: Write
// reads whatever the scope names.
func Write(ctx context.Context, w io.Writer, src Source, scope Scope) (err error) {
	if scope.RoadmapID == uuid.Nil {
		return apperr.Invalid("roadmapId", "is required")
	}
	if scope.AsOf.IsZero() {
		scope.AsOf = time.Now()
	}
	scope.AsOf = scope.AsOf.UTC().Truncate(time.Microsecond)
	if !scope.From.IsZero() && !scope.To.IsZero() && scope.To.Before(scope.From) {
		return apperr.Invalid("to", "is before from")
	}

	if src.Audit != nil {
		// Seal what is pending before the snapshot starts, so the snapshot
		// sees every event committed so far with its sequence.
		if _, err := src.Audit.Head(ctx); err != nil {
			return err
		}
	}
	tx, err := src.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	p := &pack{ctx: ctx, tx: tx, scope: scope, f: excelize.NewFile(), styles: map[int32]int{}, progress: src.Progress}
	defer func() {
		if cerr := p.f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := p.f.SetDocProps(&excelize.DocProperties{
		Created: scope.AsOf.Format(time.RFC3339), Modified: scope.AsOf.Format(time.RFC3339),
		Creator: Generator, LastModifiedBy: Generator, Title: Format, Language: "en",
	}); err != nil {
		return err
	}
	if err := p.setup(); err != nil {
		return err
	}
	if err := p.tx.QueryRow(ctx, `SELECT title, country, reporting_currency FROM roadmaps WHERE id = $1`,
		scope.RoadmapID).Scan(&p.roadmap.title, &p.roadmap.country, &p.roadmap.reporting); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("roadmap %s: %w", scope.RoadmapID, apperr.ErrNotFound)
		}
		return err
	}
	if src.Audit != nil {
		if err := p.chainHead(src.Audit); err != nil {
			return err
		}
	}
	for _, s := range Layout {
		if err := p.sheet(s); err != nil {
			return fmt.Errorf("sheet %s: %w", s.Name, err)
		}
	}

	zw := newDeterministicZip(w, scope.AsOf)
	p.f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return zw })
	// excelize hands its own buffer to the zip-writer function; ours writes
	// to w instead, so the buffer stays empty and Write to io.Discard only
	// runs the serialisation.
	if err := p.f.Write(io.Discard); err != nil {
		zw.cleanup()
		return err
	}
	return zw.finish()
}

type pack struct {
	ctx     context.Context
	tx      pgx.Tx
	scope   Scope
	f       *excelize.File
	roadmap struct{ title, country, reporting string }

	header, date int
	styles       map[int32]int // minor units → amount style
	manifest     []sheetSum
	head         [][2]string // manifest facts about the chain head
	progress     func(sheet string, rows int64, done bool)
	signer       *audit.Store // signs the manifest; nil: unsigned
}

// chainHead finds the head at the as-of point in the snapshot: the sealed
// event of the greatest sequence that occurred at or before as-of. A sealed
// hash never changes, so the head is then read, signed and the chain verified
// through the audit store outside the snapshot. Decision: the chain is
// verified whole (VerifySince), the strongest statement the pack can carry.
func (p *pack) chainHead(st *audit.Store) error {
	var seq int64
	err := p.tx.QueryRow(p.ctx, `SELECT seq FROM audit_events WHERE seq IS NOT NULL AND occurred_at <= $1
		ORDER BY seq DESC LIMIT 1`, p.scope.AsOf).Scan(&seq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("finding the audit head at as-of: %w", err)
	}
	p.signer = st
	h, err := st.HeadAt(p.ctx, seq)
	if err != nil {
		return err
	}
	sig, key := "unsigned: the server has no signing key", ""
	if h.Signed() {
		sig, key = audit.EncodeSignature(h.Signature), h.KeyID
	}
	r, err := st.VerifySince(p.ctx, h)
	if err != nil {
		return err
	}
	verdict := "verified: the chain recomputes and extends this head"
	if !r.Verified {
		verdict = fmt.Sprintf("FAILED at sequence %d: %s: %s", r.FirstBadSeq, r.Problem, r.Detail)
	}
	p.head = [][2]string{
		{"chainHead.sequence", strconv.FormatInt(h.Seq, 10)},
		{"chainHead.hash", audit.HexHash(h.Hash)},
		{"chainHead.signature", sig},
		{"chainHead.keyId", key},
		{"chainVerification", verdict},
	}
	return nil
}

type sheetSum struct {
	name string
	rows int64
	sum  string
}

func (p *pack) setup() error {
	var err error
	if p.header, err = p.f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}}); err != nil {
		return err
	}
	dateFmt := "yyyy-mm-dd"
	if p.date, err = p.f.NewStyle(&excelize.Style{CustomNumFmt: &dateFmt}); err != nil {
		return err
	}
	for i, s := range Layout {
		if i == 0 {
			if err := p.f.SetSheetName(p.f.GetSheetName(0), s.Name); err != nil {
				return err
			}
			continue
		}
		if _, err := p.f.NewSheet(s.Name); err != nil {
			return err
		}
	}
	return nil
}

// amountStyle is the number format of a currency: its minor units, with
// thousands separators (created once per minor-unit count, in first-use
// order, which the stable row order makes deterministic).
func (p *pack) amountStyle(currency string) (int, error) {
	minor, err := money.Currency(currency)
	if err != nil {
		return 0, err
	}
	if id, ok := p.styles[minor]; ok {
		return id, nil
	}
	nf := "#,##0"
	if minor > 0 {
		nf += "." + strings.Repeat("0", int(minor))
	}
	id, err := p.f.NewStyle(&excelize.Style{CustomNumFmt: &nf})
	if err != nil {
		return 0, err
	}
	p.styles[minor] = id
	return id, nil
}

// sheet writes one sheet: header, rows, then the frozen pane, autofilter and
// widths, and records its manifest line.
func (p *pack) sheet(s Sheet) error {
	if s.Name == SheetManifest {
		return p.writeSheet(s, p.manifestRows)
	}
	fill := map[string]func(*sheetWriter) error{
		SheetCover:          p.coverRows,
		SheetGrants:         p.grantRows,
		SheetTransactions:   p.transactionRows,
		SheetFXRates:        p.fxRows,
		SheetSummary:        p.summaryRows,
		SheetReconciliation: p.reconciliationRows,
		SheetMilestones:     p.milestoneRows,
		SheetProcurement:    p.procurementRows,
		SheetFlags:          p.flagRows,
		SheetAuditTrail:     p.auditRows,
	}[s.Name]
	if fill == nil {
		fill = func(*sheetWriter) error { return nil } // not yet built: header only (see doc.go)
	}
	return p.writeSheet(s, fill)
}

func (p *pack) writeSheet(s Sheet, fill func(*sheetWriter) error) error {
	sw, err := p.f.NewStreamWriter(s.Name)
	if err != nil {
		return err
	}
	col := 1
	for _, c := range s.Columns {
		n := 1
		if c.Kind == Amount {
			n = 2
		}
		if err := sw.SetColWidth(col, col, c.Width); err != nil {
			return err
		}
		if n == 2 {
			if err := sw.SetColWidth(col+1, col+1, 9); err != nil {
				return err
			}
		}
		col += n
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	headers := s.Headers()
	cells := make([]any, len(headers))
	for i, h := range headers {
		cells[i] = excelize.Cell{StyleID: p.header, Value: h}
	}
	if err := sw.SetRow("A1", cells); err != nil {
		return err
	}
	w := &sheetWriter{p: p, sw: sw, sheet: s, hash: sha256.New(), width: len(headers)}
	if err := fill(w); err != nil {
		return err
	}
	last, err := excelize.CoordinatesToCellName(len(headers), int(w.rows)+1)
	if err != nil {
		return err
	}
	if err := p.f.AutoFilter(s.Name, "A1:"+last, nil); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if p.progress != nil {
		p.progress(s.Name, w.rows, true)
	}
	if s.Name != SheetManifest {
		p.manifest = append(p.manifest, sheetSum{s.Name, w.rows, hex.EncodeToString(w.hash.Sum(nil))})
	}
	return nil
}

// value is one cell of a row, of its column's kind.
type value struct {
	s    string
	t    time.Time
	d    decimal.Decimal
	i    int64
	null bool
}

func text(s string) value                        { return value{s: s} }
func day(t time.Time) value                      { return value{t: t} }
func stamp(t time.Time) value                    { return value{t: t} }
func amount(d decimal.Decimal, cur string) value { return value{d: d, s: cur} }
func integer(i int64) value                      { return value{i: i} }
func dec(d decimal.Decimal) value                { return value{d: d} }
func decOpt(d decimal.NullDecimal) value {
	return value{d: d.Decimal, null: !d.Valid}
}

type sheetWriter struct {
	p     *pack
	sw    *excelize.StreamWriter
	sheet Sheet
	hash  hash.Hash
	rows  int64
	width int
	cells []any
	canon []string
}

// maxRows is Excel's row limit less the header row.
const maxRows = 1<<20 - 1

// row writes one data row and feeds its canonical form to the sheet's hash.
func (w *sheetWriter) row(vals ...value) error {
	if len(vals) != len(w.sheet.Columns) {
		return fmt.Errorf("row of %d values for %d columns", len(vals), len(w.sheet.Columns))
	}
	if w.rows == maxRows {
		return fmt.Errorf("more than %d rows: narrow the scope", maxRows)
	}
	w.cells, w.canon = w.cells[:0], w.canon[:0]
	for i, c := range w.sheet.Columns {
		v := vals[i]
		switch {
		case v.null:
			w.put(nil, "")
		case c.Kind == Text && v.s == "":
			w.put(nil, "") // no cell at all: smaller, and reads back as ""
		case c.Kind == Text:
			w.put(v.s, v.s)
		case c.Kind == Date:
			if v.t.IsZero() {
				w.put(nil, "")
				break
			}
			d := time.Date(v.t.Year(), v.t.Month(), v.t.Day(), 0, 0, 0, 0, time.UTC)
			w.put(excelize.Cell{StyleID: w.p.date, Value: d}, d.Format(time.DateOnly))
		case c.Kind == Timestamp:
			s := v.t.UTC().Format("2006-01-02T15:04:05.000000Z")
			w.put(s, s)
		case c.Kind == Amount:
			style, err := w.p.amountStyle(v.s)
			if err != nil {
				return err
			}
			f, _ := v.d.Float64()
			w.put(excelize.Cell{StyleID: style, Value: f}, money.Format(v.d, v.s))
			w.put(v.s, v.s)
		case c.Kind == Integer:
			w.put(v.i, strconv.FormatInt(v.i, 10))
		case c.Kind == Decimal:
			f, _ := v.d.Float64()
			w.put(f, v.d.String())
		}
		if c.Kind == Amount && v.null {
			w.put(nil, "")
		}
	}
	writeCanonical(w.hash, w.canon)
	w.rows++
	if w.p.progress != nil && w.rows%ProgressEvery == 0 {
		w.p.progress(w.sheet.Name, w.rows, false)
	}
	cell, err := excelize.CoordinatesToCellName(1, int(w.rows)+1)
	if err != nil {
		return err
	}
	return w.sw.SetRow(cell, w.cells)
}

func (w *sheetWriter) put(cell any, canon string) {
	w.cells = append(w.cells, cell)
	w.canon = append(w.canon, canon)
}

// writeCanonical appends one row's canonical form (see doc.go): the number of
// cells, then each cell's length and UTF-8 bytes, as 4-byte big-endian
// lengths, so no cell content can imitate a boundary.
func writeCanonical(h io.Writer, cells []string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(cells)))
	_, _ = h.Write(n[:])
	for _, c := range cells {
		binary.BigEndian.PutUint32(n[:], uint32(len(c)))
		_, _ = h.Write(n[:])
		_, _ = io.WriteString(h, c)
	}
}

// CanonicalSHA256 is the manifest checksum of rows of canonical cells, for
// verifiers and tests.
func CanonicalSHA256(rows [][]string) string {
	h := sha256.New()
	for _, r := range rows {
		writeCanonical(h, r)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// deterministicZip is the excelize ZipWriter of a pack: entries stamped with
// the as-of time, deflated at BestSpeed straight onto the destination (no
// in-memory copy of the file, DESIGN section 6). excelize writes its
// streamed worksheets in map order, so those are spooled to temporary files
// and written sorted by name at the end; everything else it writes sorted.
type deterministicZip struct {
	zw     *zip.Writer
	mod    time.Time
	spool  map[string]*os.File
	err    error
	closed bool
}

func newDeterministicZip(w io.Writer, mod time.Time) *deterministicZip {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	return &deterministicZip{zw: zw, mod: mod, spool: map[string]*os.File{}}
}

func (z *deterministicZip) Create(name string) (io.Writer, error) {
	if strings.HasPrefix(name, "xl/worksheets/") {
		f, err := os.CreateTemp("", "tranche-pack-*")
		if err != nil {
			return nil, err
		}
		z.spool[name] = f
		return f, nil
	}
	return z.create(name)
}

func (z *deterministicZip) create(name string) (io.Writer, error) {
	return z.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: z.mod})
}

func (z *deterministicZip) AddFS(fs.FS) error { return errors.New("reports: AddFS not supported") }

// Close is what excelize calls when it is done, also after a failure; it
// does nothing, so that a failed pack never gets a central directory (a
// reader refuses the truncated file rather than taking it for a pack).
// Write calls finish once excelize succeeded.
func (z *deterministicZip) Close() error { return nil }

// finish writes the spooled worksheets in name order and the central
// directory.
func (z *deterministicZip) finish() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	defer z.cleanup()
	names := make([]string, 0, len(z.spool))
	for n := range z.spool {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := z.spool[n]
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			z.err = err
			return err
		}
		out, err := z.create(n)
		if err != nil {
			z.err = err
			return err
		}
		if _, err := io.Copy(out, f); err != nil {
			z.err = err
			return err
		}
	}
	z.err = z.zw.Close()
	return z.err
}

func (z *deterministicZip) cleanup() {
	for n, f := range z.spool {
		_ = f.Close()
		_ = os.Remove(f.Name())
		delete(z.spool, n)
	}
}
