package reports

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/isocodes"
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

// Now is the database's clock, truncated to the microseconds PostgreSQL
// keeps: the as-of of a pack of "now". Rows are dated by the database, so
// a pack is dated by the same clock (a server whose clock runs ahead would
// otherwise date a pack after rows that are yet to be written).
func (src Source) Now(ctx context.Context) (time.Time, error) {
	tx, err := src.DB.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("reading the database's clock: %w", err)
	}
	return now.UTC().Truncate(time.Microsecond), nil
}

// settleWait bounds how long a pack waits for writers that began before its
// as-of; settlePoll is how often it looks.
const (
	settleWait = 30 * time.Second
	settlePoll = 20 * time.Millisecond
)

// settle opens the pack's snapshot once the database holds everything
// dated at or before asOf. A row is dated by its transaction's start
// (now()), so a write transaction that began by as-of and is still open
// could commit rows dated before as-of after the snapshot, and a second pack
// of the same as-of would differ. So, for an as-of within settleWait of the
// database's clock, settle waits until every transaction of this
// database that held a transaction id when it was called has ended
// (pg_locks: no privilege needed), then seals
// pending audit events, then opens the snapshot; an event dated by as-of
// still unsealed in the snapshot (committed between sealing and the
// snapshot) makes it start over. A writer open longer than wait makes the
// pack fail with ErrAborted: the client may retry. Residuals: a transaction
// that began by as-of but had not written anything when settle looked, and
// for an older as-of, a write transaction open longer than settleWait
// across it.
func settle(ctx context.Context, src Source, asOf time.Time, wait time.Duration) (pgx.Tx, error) {
	deadline := time.Now().Add(wait)
	var writers []string // transaction ids of this database's writers when settle began
	first := true
	for {
		var open bool
		var err error
		if first {
			first = false
			// The transactions of this database's sessions that hold a
			// transaction id (they have written) — through pg_locks, which
			// every role may read, and pg_stat_activity's database, which it
			// shows for every session. Other databases' writers, and
			// prepared transactions (no session), are not waited for.
			err = pgx.BeginTxFunc(ctx, src.DB, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT coalesce(array_agg(l.transactionid::text), '{}')
					FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
					WHERE clock_timestamp() - $1::timestamptz <= $2 * interval '1 microsecond'
						AND l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
						AND l.pid <> pg_backend_pid()
						AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
					asOf, wait.Microseconds()).Scan(&writers)
			})
		}
		if err == nil && len(writers) > 0 {
			// Open while one of them still holds its own transaction id.
			err = pgx.BeginTxFunc(ctx, src.DB, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'transactionid'
					AND mode = 'ExclusiveLock' AND transactionid::text = ANY($1))`, writers).Scan(&open)
			})
		}
		if err != nil {
			return nil, fmt.Errorf("looking for writers before as-of: %w", err)
		}
		if !open {
			if src.Audit != nil {
				// Seal what is pending, so the snapshot sees every event
				// committed so far with its sequence.
				if _, err := src.Audit.Head(ctx); err != nil {
					return nil, err
				}
			}
			tx, err := src.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				return nil, err
			}
			if src.Audit == nil { // no head in the pack: nothing was sealed to check
				return tx, nil
			}
			var unsealed bool
			err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events WHERE seq IS NULL AND occurred_at <= $1)`,
				asOf).Scan(&unsealed)
			if err == nil && !unsealed {
				return tx, nil
			}
			_ = tx.Rollback(context.WithoutCancel(ctx))
			if err != nil {
				return nil, fmt.Errorf("looking for unsealed events before as-of: %w", err)
			}
		}
		if time.Now().After(deadline) {
			what := "writes that began before then are still open"
			if !open {
				what = "audit events dated before then are still being sealed"
			}
			return nil, fmt.Errorf("audit pack as of %s: %s after %s; retry: %w",
				asOf.Format(time.RFC3339Nano), what, wait, apperr.ErrAborted)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(settlePoll):
		}
	}
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
	if !scope.From.IsZero() && !scope.To.IsZero() && scope.To.Before(scope.From) {
		return apperr.Invalid("to", "is before from")
	}
	now, err := src.Now(ctx)
	if err != nil {
		return err
	}
	if scope.AsOf.IsZero() {
		scope.AsOf = now
	}
	scope.AsOf = scope.AsOf.UTC().Truncate(time.Microsecond)
	if scope.AsOf.After(now) {
		return apperr.Invalid("asOf", "%s is after the database's clock (%s): a pack of the future could change",
			scope.AsOf.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	tx, err := settle(ctx, src, scope.AsOf, settleWait)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	p := &pack{ctx: ctx, tx: tx, scope: scope, f: excelize.NewFile(), styles: map[int32]int{}, progress: src.Progress,
		data: map[string]*sheetData{}}
	defer func() {
		if cerr := p.f.Close(); err == nil {
			err = cerr
		}
		for _, d := range p.data {
			d.remove()
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
	// An unknown donor would give an empty pack that reads as "nothing
	// happened": refused, naming the field. (A roadmap or grant created
	// after as-of gives an empty pack on purpose: that is what was there.)
	if scope.DonorOrgID != uuid.Nil {
		var found bool
		err := p.tx.QueryRow(ctx, `SELECT true FROM organizations WHERE id = $1`, scope.DonorOrgID).Scan(&found)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("donorOrgId: organisation %s: %w", scope.DonorOrgID, apperr.ErrNotFound)
		case err != nil:
			return err
		}
	}
	// The head at as-of, for the Manifest and the Audit Trail: the sealed
	// event of the greatest sequence that occurred by then.
	err = p.tx.QueryRow(ctx, `SELECT seq FROM audit_events WHERE seq IS NOT NULL AND occurred_at <= $1
		ORDER BY seq DESC LIMIT 1`, scope.AsOf).Scan(&p.headSeq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("finding the audit head at as-of: %w", err)
	}
	if src.Audit != nil {
		vctx, cancel := context.WithCancel(ctx)
		defer func() {
			cancel()
			p.awaitVerification() // never leave the verification running
		}()
		if err := p.chainHead(vctx, src.Audit); err != nil {
			return err
		}
	}
	for _, s := range Layout {
		if err := p.sheet(s); err != nil {
			return fmt.Errorf("sheet %s: %w", s.Name, err)
		}
	}

	parts := map[string]*sheetData{}
	for id, name := range p.f.GetSheetMap() {
		if d := p.data[name]; d != nil {
			parts["xl/worksheets/sheet"+strconv.Itoa(id)+".xml"] = d
		}
	}
	zw := newDeterministicZip(w, scope.AsOf, parts)
	p.f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return zw })
	// excelize hands its own buffer to the zip-writer function; ours writes
	// to w instead, so the buffer stays empty and Write to io.Discard only
	// runs the serialisation.
	if err := p.f.Write(io.Discard); err != nil {
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
	signer       *audit.Store          // signs the manifest; nil: unsigned
	money        *moneyFigures         // computed once, by figures
	headSeq      int64                 // the sealed event of the greatest sequence by as-of; 0: none
	data         map[string]*sheetData // each sheet's deflated data rows, by sheet name

	// verified delivers the chain verification, which runs on its own
	// goroutine and connection while the sheets are written (chainHead).
	verified chan verification
	verify   verification
}

type verification struct {
	r   audit.Result
	err error
}

// chainHead finds the head at the as-of point in the snapshot: the sealed
// event of the greatest sequence that occurred at or before as-of. A sealed
// hash never changes, so the head is then read and signed through the audit
// store outside the snapshot, and the chain verified there too, on its own
// goroutine while the sheets are written: whole-chain verification reads
// every event, and overlapping it with the sheets takes it off the pack's
// critical path. Decision: the chain is verified whole (VerifySince), the
// strongest statement the pack can carry.
func (p *pack) chainHead(ctx context.Context, st *audit.Store) error {
	p.signer = st
	h, err := st.HeadAt(ctx, p.headSeq)
	if err != nil {
		return err
	}
	sig, key := "unsigned: the server has no signing key", ""
	if h.Signed() {
		sig, key = audit.EncodeSignature(h.Signature), h.KeyID
	}
	p.head = [][2]string{
		{"chainHead.sequence", strconv.FormatInt(h.Seq, 10)},
		{"chainHead.hash", audit.HexHash(h.Hash)},
		{"chainHead.signature", sig},
		{"chainHead.keyId", key},
		{"chainVerification", ""}, // filled in by awaitVerification
	}
	p.verified = make(chan verification, 1)
	go func() {
		r, err := st.VerifySince(ctx, h)
		p.verified <- verification{r, err}
	}()
	return nil
}

// awaitVerification waits for the chain verification chainHead started (if
// any) and puts its verdict into the manifest facts.
func (p *pack) awaitVerification() error {
	if p.verified == nil {
		return p.verify.err
	}
	p.verify = <-p.verified
	p.verified = nil
	if p.verify.err != nil {
		return p.verify.err
	}
	r := p.verify.r
	verdict := "verified: the chain recomputes and extends this head"
	if !r.Verified {
		verdict = fmt.Sprintf("FAILED at sequence %d: %s: %s", r.FirstBadSeq, r.Problem, r.Detail)
	}
	p.head[len(p.head)-1][1] = verdict
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
		if err := p.awaitVerification(); err != nil {
			return err
		}
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
	// The data rows do not go through excelize: see sheetData.
	data, err := newSheetData()
	if err != nil {
		return err
	}
	p.data[s.Name] = data
	w := newSheetWriter(p, s, data)
	ferr := fill(w)
	if err := w.close(); ferr == nil {
		ferr = err
	}
	if ferr != nil {
		return ferr
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
		p.manifest = append(p.manifest, sheetSum{s.Name, w.rows, hex.EncodeToString(data.hash.Sum(nil))})
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

// sheetWriter turns a sheet's rows into worksheet XML and canonical bytes
// on the filling goroutine (the one reading PostgreSQL) and hands them in
// batches to the sheet's sheetData goroutine, which hashes and deflates them:
// the pack uses both cores, and excelize's per-cell work (an interface
// value, a cell name, a style lookup and a struct per cell) is replaced by
// appending bytes. The cells are written exactly as excelize's StreamWriter
// writes them (inline strings, same escaping, same number formatting).
type sheetWriter struct {
	p     *pack
	sheet Sheet
	rows  int64
	width int
	refs  [][]byte // column letters of each spreadsheet column
	data  *sheetData
	cur   *rowBatch
	tmp   []byte
}

// rowBatch is a run of rows: their worksheet XML and their canonical form.
type rowBatch struct{ xml, canon []byte }

// batchBytes is the XML size at which a batch is handed over; batchesAhead
// how many may wait (memory bound: about batchesAhead+2 batches).
const (
	batchBytes   = 256 << 10
	batchesAhead = 4
)

func newSheetWriter(p *pack, s Sheet, data *sheetData) *sheetWriter {
	w := &sheetWriter{p: p, sheet: s, data: data, width: len(s.Headers())}
	for i := 1; i <= w.width; i++ {
		name, _ := excelize.ColumnNumberToName(i)
		w.refs = append(w.refs, []byte(name))
	}
	w.cur = data.batch()
	return w
}

// maxRows is Excel's row limit less the header row.
const maxRows = 1<<20 - 1

// row writes one data row and feeds its canonical form to the sheet's hash.
func (w *sheetWriter) row(vals ...value) error {
	if len(vals) != len(w.sheet.Columns) {
		return fmt.Errorf("row of %d values for %d columns", len(vals), len(w.sheet.Columns))
	}
	if w.rows == maxRows {
		return fmt.Errorf("sheet %s has more than %d rows, a spreadsheet's limit: narrow the scope (a donor, a grant, a value-date period): %w",
			w.sheet.Name, maxRows, apperr.ErrFailedPrecondition)
	}
	if err := w.data.failed(); err != nil {
		return err
	}
	b := w.cur
	xmlStart, canonStart := len(b.xml), len(b.canon)
	r := w.rows + 2 // row 1 is the header
	b.xml = append(b.xml, `<row r="`...)
	b.xml = strconv.AppendInt(b.xml, r, 10)
	b.xml = append(b.xml, `">`...)
	b.canon = binary.BigEndian.AppendUint32(b.canon, uint32(w.width))
	col := 0
	for i, c := range w.sheet.Columns {
		v := vals[i]
		switch {
		case v.null:
			w.empty(b)
			if c.Kind == Amount {
				col++
				w.empty(b)
			}
		case c.Kind == Text:
			w.text(b, col, r, v.s) // "" gives no cell at all: smaller, and reads back as ""
		case c.Kind == Date:
			if v.t.IsZero() {
				w.empty(b)
				break
			}
			d := time.Date(v.t.Year(), v.t.Month(), v.t.Day(), 0, 0, 0, 0, time.UTC)
			w.tmp = d.AppendFormat(w.tmp[:0], time.DateOnly)
			w.canonBytes(b, w.tmp)
			if serial, ok := excelDay(d); ok {
				w.tmp = strconv.AppendInt(w.tmp[:0], serial, 10)
				w.number(b, col, r, w.p.date, w.tmp)
			} else { // before 1900: excelize writes the time as a string
				w.open(b, col, r, w.p.date)
				w.inline(b, d.Format(time.RFC3339Nano))
			}
		case c.Kind == Timestamp:
			w.tmp = v.t.UTC().AppendFormat(w.tmp[:0], "2006-01-02T15:04:05.000000Z")
			w.canonBytes(b, w.tmp)
			w.open(b, col, r, 0) // plain: digits, '-', ':', 'T', '.', 'Z'
			b.xml = append(b.xml, ` t="inlineStr"><is><t>`...)
			b.xml = append(b.xml, w.tmp...)
			b.xml = append(b.xml, `</t></is></c>`...)
		case c.Kind == Amount:
			style, err := w.p.amountStyle(v.s)
			if err != nil {
				b.xml, b.canon = b.xml[:xmlStart], b.canon[:canonStart]
				return err
			}
			if minor, ok := isocodes.MinorUnits(v.s); ok && w.fixed(b, col, r, style, v.d, minor, false) {
				col++
				w.text(b, col, r, v.s)
				break
			}
			s := money.Format(v.d, v.s)
			w.canonString(b, s)
			if sigDigits(s) <= maxCellDigits {
				w.float(b, col, r, style, s)
			} else { // more than a double holds: exact, as text (digits.go)
				w.open(b, col, r, style)
				w.inline(b, s)
			}
			col++
			w.text(b, col, r, v.s)
		case c.Kind == Integer:
			w.tmp = strconv.AppendInt(w.tmp[:0], v.i, 10)
			w.canonBytes(b, w.tmp)
			w.number(b, col, r, 0, w.tmp)
		case c.Kind == Decimal:
			if w.fixed(b, col, r, 0, v.d, 0, true) {
				break
			}
			s, number := decimalCell(v.d.String())
			w.canonString(b, s)
			if number {
				w.float(b, col, r, 0, s)
			} else {
				w.cell(b, col, r, s)
			}
		}
		col++
	}
	b.xml = append(b.xml, `</row>`...)
	w.rows++
	if len(b.xml) >= batchBytes {
		w.data.send(b)
		w.cur = w.data.batch()
	}
	if w.p.progress != nil && w.rows%ProgressEvery == 0 {
		w.p.progress(w.sheet.Name, w.rows, false)
	}
	return nil
}

// close hands over the last batch and waits until the sheet's data is
// hashed and deflated.
func (w *sheetWriter) close() error {
	if w.cur != nil {
		w.data.send(w.cur)
		w.cur = nil
	}
	return w.data.close()
}

func (w *sheetWriter) canonString(b *rowBatch, s string) {
	b.canon = binary.BigEndian.AppendUint32(b.canon, uint32(len(s)))
	b.canon = append(b.canon, s...)
}

func (w *sheetWriter) canonBytes(b *rowBatch, s []byte) {
	b.canon = binary.BigEndian.AppendUint32(b.canon, uint32(len(s)))
	b.canon = append(b.canon, s...)
}

// empty is an empty cell: no XML, the empty canonical string.
func (w *sheetWriter) empty(b *rowBatch) {
	b.canon = binary.BigEndian.AppendUint32(b.canon, 0)
}

// text is a text cell and its canonical form.
func (w *sheetWriter) text(b *rowBatch, col int, r int64, s string) {
	if !plain(s) {
		// What a reader gets back from the cell, so that the canonical form
		// is re-derivable from it: a character XML cannot hold becomes
		// U+FFFD, and text over Excel's cell limit is cut and marked.
		s = fitCell(xmlText(s))
	}
	w.canonString(b, s)
	if s != "" {
		w.cell(b, col, r, s)
	}
}

func (w *sheetWriter) open(b *rowBatch, col int, r int64, style int) {
	b.xml = append(b.xml, `<c r="`...)
	b.xml = append(b.xml, w.refs[col]...)
	b.xml = strconv.AppendInt(b.xml, r, 10)
	b.xml = append(b.xml, '"')
	if style != 0 {
		b.xml = append(b.xml, ` s="`...)
		b.xml = strconv.AppendInt(b.xml, int64(style), 10)
		b.xml = append(b.xml, '"')
	}
}

// number writes a numeric cell whose value text is already in v.
func (w *sheetWriter) number(b *rowBatch, col int, r int64, style int, v []byte) {
	w.open(b, col, r, style)
	b.xml = append(b.xml, `><v>`...)
	b.xml = append(b.xml, v...)
	b.xml = append(b.xml, `</v></c>`...)
}

// float writes the decimal s as a numeric cell: the nearest double (what
// excelize wrote from decimal.Float64, which is correctly rounded too),
// formatted as excelize formats a float64 (at most 15 significant digits).
func (w *sheetWriter) float(b *rowBatch, col int, r int64, style int, s string) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		f = 0
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		w.open(b, col, r, style)
		w.inline(b, fmt.Sprint(f))
		return
	}
	w.tmp = strconv.AppendFloat(w.tmp[:0], f, 'f', -1, 64)
	if math.Abs(f) != math.MaxFloat64 {
		w.tmp = excelDigits(w.tmp)
	}
	w.number(b, col, r, style, w.tmp)
}

// fixed is the allocation-free path of an amount (places decimals, the
// currency's minor units) or, with trim, a decimal (no trailing zeros): for
// a value of at most 15 digits whose exponent needs no rounding it writes
// the same canonical string as money.Format or Decimal.String, and the
// number float64(coefficient) / 10^scale, which is the nearest double, as
// ParseFloat of that string is (IEEE division of two exact operands rounds
// correctly). It reports false, writing nothing, for any other value.
func (w *sheetWriter) fixed(b *rowBatch, col int, r int64, style int, d decimal.Decimal, places int32, trim bool) bool {
	exp := d.Exponent()
	if exp > 0 || (!trim && -exp > places) || -exp > 22 || d.NumDigits() > 15 {
		return false
	}
	coef, scale := d.CoefficientInt64(), -exp
	if trim {
		for scale > 0 && coef%10 == 0 {
			coef, scale = coef/10, scale-1
		}
	} else {
		for ; scale < places; scale++ {
			if coef > 1<<53/10 || coef < -(1<<53)/10 {
				return false // the double would not be exact
			}
			coef *= 10
		}
	}
	w.tmp = appendScaled(w.tmp[:0], coef, int(scale))
	w.canonBytes(b, w.tmp)
	f := float64(coef) / pow10[scale]
	w.tmp = strconv.AppendFloat(w.tmp[:0], f, 'f', -1, 64)
	w.tmp = excelDigits(w.tmp)
	w.number(b, col, r, style, w.tmp)
	return true
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// appendScaled appends coef × 10^-scale in plain decimal notation with
// exactly scale decimals.
func appendScaled(dst []byte, coef int64, scale int) []byte {
	if coef < 0 {
		dst = append(dst, '-')
		coef = -coef
	}
	var digits [24]byte
	ds := strconv.AppendInt(digits[:0], coef, 10)
	if scale == 0 {
		return append(dst, ds...)
	}
	if len(ds) <= scale {
		dst = append(dst, '0', '.')
		for i := len(ds); i < scale; i++ {
			dst = append(dst, '0')
		}
		return append(dst, ds...)
	}
	dst = append(dst, ds[:len(ds)-scale]...)
	dst = append(dst, '.')
	return append(dst, ds[len(ds)-scale:]...)
}

// cell writes a string cell (an inline string, as excelize's StreamWriter).
func (w *sheetWriter) cell(b *rowBatch, col int, r int64, s string) {
	w.open(b, col, r, 0)
	w.inline(b, s)
}

func (w *sheetWriter) inline(b *rowBatch, s string) {
	b.xml = append(b.xml, ` t="inlineStr"><is><t`...)
	if plain(s) {
		b.xml = append(b.xml, '>')
		b.xml = append(b.xml, s...)
	} else {
		v, preserve := excelText(s)
		if preserve {
			b.xml = append(b.xml, ` xml:space="preserve"`...)
		}
		b.xml = append(b.xml, '>')
		b.xml = append(b.xml, v...)
	}
	b.xml = append(b.xml, `</t></is></c>`...)
}

// plain reports whether s goes into XML as it is: printable ASCII with
// nothing to escape, no surrounding whitespace, no _xHHHH_ escape
// look-alike, and short of Excel's cell limit.
func plain(s string) bool {
	if len(s) > excelize.TotalCellChars {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '&' || c == '\'' || c == '<' || c == '>' {
			if c == ' ' && i > 0 && i < len(s)-1 {
				continue
			}
			return false
		}
		if c == '_' && i+1 < len(s) && s[i+1] == 'x' {
			return false
		}
	}
	return true
}

// excelText is excelize's trimCellValue(s, true) followed by bstrMarshal
// (excelize v2.11.1 cell.go and lib.go, BSD-3-Clause): truncation to Excel's
// 32 767 UTF-16 units, xml:space="preserve" for surrounding whitespace, XML
// escaping (newlines kept), and the _xHHHH_ escape of look-alikes.
func excelText(value string) (string, bool) {
	if n := utf16Units(value); n > excelize.TotalCellChars {
		cnt := 0
		for i, r := range value {
			if cnt += utf16.RuneLen(r); cnt > excelize.TotalCellChars {
				value = value[:i]
				break
			}
		}
	}
	preserve := false
	if value != "" {
		prefix, suffix := value[0], value[len(value)-1]
		for _, ascii := range []byte{9, 10, 13, 32} {
			if prefix == ascii || suffix == ascii {
				preserve = true
				break
			}
		}
		var buf strings.Builder
		_ = xml.EscapeText(&buf, []byte(value))
		value = strings.ReplaceAll(buf.String(), "&#xA;", "\n")
	}
	return bstrMarshal(value), preserve
}

var (
	bstrExp       = regexp.MustCompile(`_x[a-fA-F\d]{4}_`)
	bstrEscapeExp = regexp.MustCompile(`x[a-fA-F\d]{4}_`)
)

// bstrNames reports whether a reader takes _xHHHH_ for an escape: any four
// hex digits. excelize escapes only those naming a character Go can quote,
// so a literal _xD800_ (a surrogate) went in unescaped and read back as
// nothing; the pack escapes it too.
func bstrNames(hex string) bool {
	if _, err := strconv.Unquote(`"\u` + hex + `"`); err == nil {
		return true
	}
	v, err := strconv.ParseUint(hex, 16, 16)
	return err == nil && v >= 0xD800 && v <= 0xDFFF
}

// bstrMarshal is excelize's (lib.go): a literal _xHHHH_ in a string would
// read back as the character it names, so it is escaped as _x005F_xHHHH_.
// One difference: surrogates are escaped too (bstrNames).
func bstrMarshal(s string) (result string) {
	matches, l, cursor := bstrExp.FindAllStringSubmatchIndex(s, -1), len(s), 0
	for _, match := range matches {
		result += s[cursor:match[0]]
		subStr := s[match[0]:match[1]]
		if subStr == "_x005F_" {
			cursor = match[1]
			if match[1]+6 <= l && bstrEscapeExp.MatchString(s[match[1]:match[1]+6]) {
				if bstrNames(s[match[1]+1 : match[1]+5]) {
					result += subStr + "x005F" + subStr
					continue
				}
			}
			result += subStr + "x005F_"
			continue
		}
		if bstrExp.MatchString(subStr) {
			cursor = match[1]
			if bstrNames(s[match[0]+2 : match[1]-1]) {
				result += "_x005F" + subStr
				continue
			}
		}
	}
	if cursor < l {
		result += s[cursor:]
	}
	return result
}

// excelDigits is excelize's formatCellFloat for automatic precision: the
// 'f' formatting cut to Excel's 15 significant digits.
func excelDigits(str []byte) []byte {
	const maxPrec = 15
	dot := bytes.IndexByte(str, '.')
	significant := 0
	for idx := range str {
		if str[idx] < '0' || str[idx] > '9' || significant == 0 && str[idx] == '0' {
			continue
		}
		significant++
		if significant <= maxPrec {
			continue
		}
		if dot >= 0 && idx > dot {
			return bytes.TrimSuffix(str[:idx], []byte("."))
		}
		if dot < 0 {
			dot = len(str)
		}
		truncated := str[:dot]
		for ; idx < len(truncated); idx++ {
			truncated[idx] = '0'
		}
		return truncated
	}
	return str
}

// excelDay is the Excel serial number (1900 date system) of a UTC midnight,
// as excelize computes it; false before 1900-01-01, which excelize writes as
// a string.
func excelDay(d time.Time) (int64, bool) {
	days := (d.Unix() - excelEpoch.Unix()) / 86400 // not d.Sub: a Duration saturates after 292 years
	if days <= 0 {
		return 0, false
	}
	if d.After(excelLeapBug) {
		days++ // Excel's 1900-02-29
	}
	return days, true
}

var (
	excelEpoch   = time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC)
	excelLeapBug = time.Date(1900, 2, 28, 0, 0, 0, 0, time.UTC)
)

// sheetData is the deflated data rows of one sheet, built on its own
// goroutine while the rows are read: it hashes each batch's canonical bytes
// (the manifest checksum) and deflates its XML into a temporary file,
// keeping the CRC-32 and size of the uncompressed XML. The deflate stream
// is sync-flushed, not closed, so the zip writer can put it between the
// deflated start and end of excelize's worksheet (see deterministicZip).
type sheetData struct {
	file     *os.File
	buf      *bufio.Writer
	fw       *flate.Writer
	hash     hash.Hash
	crc      uint32
	size     int64
	in, free chan *rowBatch
	done     chan struct{}
	err      error // set by the goroutine, read after done or through failed
	mu       sync.Mutex
	shut     bool
}

func newSheetData() (*sheetData, error) {
	f, err := os.CreateTemp("", "tranche-pack-*")
	if err != nil {
		return nil, err
	}
	d := &sheetData{file: f, buf: bufio.NewWriterSize(f, 256<<10), hash: sha256.New(),
		in: make(chan *rowBatch, batchesAhead), free: make(chan *rowBatch, batchesAhead+2), done: make(chan struct{})}
	d.fw, _ = flate.NewWriter(d.buf, flate.BestSpeed)
	go d.run()
	return d, nil
}

func (d *sheetData) run() {
	defer close(d.done)
	var err error
	for b := range d.in {
		if err == nil {
			d.hash.Write(b.canon)
			d.crc = crc32.Update(d.crc, crc32.IEEETable, b.xml)
			d.size += int64(len(b.xml))
			if _, err = d.fw.Write(b.xml); err != nil {
				d.setErr(err)
			}
		}
		b.xml, b.canon = b.xml[:0], b.canon[:0]
		select {
		case d.free <- b:
		default:
		}
	}
	if err == nil {
		if err = d.fw.Flush(); err == nil {
			err = d.buf.Flush()
		}
		d.setErr(err)
	}
}

func (d *sheetData) setErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
}

func (d *sheetData) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *sheetData) batch() *rowBatch {
	select {
	case b := <-d.free:
		return b
	default:
		return &rowBatch{xml: make([]byte, 0, batchBytes+64<<10), canon: make([]byte, 0, batchBytes)}
	}
}

func (d *sheetData) send(b *rowBatch) {
	if len(b.xml) > 0 || len(b.canon) > 0 {
		d.in <- b
	}
}

// close waits for the goroutine; the file stays for the zip writer.
func (d *sheetData) close() error {
	if !d.shut {
		d.shut = true
		close(d.in)
	}
	<-d.done
	return d.failed()
}

// remove stops the goroutine (if still running) and deletes the file.
func (d *sheetData) remove() {
	_ = d.close()
	_ = d.file.Close()
	_ = os.Remove(d.file.Name())
}

// compressedSize is the size of the finished deflate stream.
func (d *sheetData) compressedSize() (int64, error) {
	return d.file.Seek(0, io.SeekEnd)
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
// streamed worksheets in map order, so those are held (they are small: the
// header row only) and written sorted by name at the end, each with its
// sheet's data rows spliced in before </sheetData>: the data rows were
// deflated while they were read (sheetData), so the entry is the deflated
// start of excelize's XML (sync-flushed), the data's deflate stream, and the
// deflated rest (final block) — one valid deflate stream, since each part's
// compressor starts afresh and never refers back into another — with the
// CRC-32 of the whole combined from the parts'.
type deterministicZip struct {
	zw     *zip.Writer
	mod    time.Time
	parts  map[string]*bytes.Buffer
	data   map[string]*sheetData // by worksheet part name
	err    error
	closed bool
}

func newDeterministicZip(w io.Writer, mod time.Time, data map[string]*sheetData) *deterministicZip {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	return &deterministicZip{zw: zw, mod: mod, parts: map[string]*bytes.Buffer{}, data: data}
}

func (z *deterministicZip) Create(name string) (io.Writer, error) {
	if strings.HasPrefix(name, "xl/worksheets/") {
		b := new(bytes.Buffer)
		z.parts[name] = b
		return b, nil
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

// finish writes the worksheets in name order and the central directory.
func (z *deterministicZip) finish() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	z.err = z.writeSheets()
	if z.err == nil {
		z.err = z.zw.Close()
	}
	return z.err
}

func (z *deterministicZip) writeSheets() error {
	names := make([]string, 0, len(z.parts))
	for n := range z.parts {
		names = append(names, n)
	}
	sort.Strings(names)
	for n := range z.data {
		if z.parts[n] == nil {
			return fmt.Errorf("reports: excelize wrote no %s", n)
		}
	}
	for _, n := range names {
		part := z.parts[n].Bytes()
		d := z.data[n]
		if d == nil {
			out, err := z.create(n)
			if err != nil {
				return err
			}
			if _, err := out.Write(part); err != nil {
				return err
			}
			continue
		}
		if err := z.splice(n, part, d); err != nil {
			return err
		}
	}
	return nil
}

func (z *deterministicZip) splice(name string, part []byte, d *sheetData) error {
	i := bytes.Index(part, []byte("</sheetData>"))
	if i < 0 {
		return fmt.Errorf("reports: no </sheetData> in %s", name)
	}
	prefix, suffix := part[:i], part[i:]
	var head, tail bytes.Buffer
	fw, _ := flate.NewWriter(&head, flate.BestSpeed)
	_, _ = fw.Write(prefix)
	if err := fw.Flush(); err != nil {
		return err
	}
	fw.Reset(&tail)
	_, _ = fw.Write(suffix)
	if err := fw.Close(); err != nil {
		return err
	}
	dataSize, err := d.compressedSize()
	if err != nil {
		return err
	}
	crc := crc32.ChecksumIEEE(prefix)
	crc = crc32Combine(crc, d.crc, d.size)
	crc = crc32Combine(crc, crc32.ChecksumIEEE(suffix), int64(len(suffix)))
	fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: z.mod, CRC32: crc,
		CompressedSize64:   uint64(head.Len()) + uint64(dataSize) + uint64(tail.Len()),
		UncompressedSize64: uint64(len(prefix)) + uint64(d.size) + uint64(len(suffix))}
	stampZip(fh)
	out, err := z.zw.CreateRaw(fh)
	if err != nil {
		return err
	}
	if _, err := out.Write(head.Bytes()); err != nil {
		return err
	}
	if _, err := d.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if n, err := io.Copy(out, d.file); err != nil {
		return err
	} else if n != dataSize {
		return fmt.Errorf("reports: %s: %d of %d deflated bytes", name, n, dataSize)
	}
	_, err = out.Write(tail.Bytes())
	return err
}

// stampZip sets the MS-DOS time and the extended-timestamp field from
// fh.Modified, as zip.Writer.CreateHeader does (CreateRaw does not), so
// every entry of a pack carries its time the same way.
func stampZip(fh *zip.FileHeader) {
	t := fh.Modified
	fh.ModifiedDate = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	fh.ModifiedTime = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	var x [9]byte
	binary.LittleEndian.PutUint16(x[0:], 0x5455) // extended timestamp
	binary.LittleEndian.PutUint16(x[2:], 5)
	x[4] = 1 // modification time present
	binary.LittleEndian.PutUint32(x[5:], uint32(t.Unix()))
	fh.Extra = append(fh.Extra, x[:]...)
}

// crc32Combine is the CRC-32 (IEEE) of A followed by B from crc(A), crc(B)
// and len(B) (zlib's crc32_combine).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	var even, odd [32]uint32
	odd[0] = 0xedb88320 // the reversed polynomial: one zero bit
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	for {
		gf2Square(&even, &odd)
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		gf2Square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := 0; n < 32; n++ {
		square[n] = gf2Times(mat, mat[n])
	}
}

// num scans a NUMERIC into a decimal straight from pgx's binary form. A
// *decimal.Decimal scan target goes through database/sql's Scanner (pgx
// prefers an sql.Scanner to the registered pgx-shopspring-decimal type),
// which formats the number as text and parses it again: 13 % of a pack's
// CPU. Use num{&d} (and numOpt{&nd} for a nullable column) in Scan.
type num struct{ d *decimal.Decimal }

func (n num) ScanNumeric(v pgtype.Numeric) error {
	if !v.Valid || v.NaN || v.InfinityModifier != pgtype.Finite {
		return errors.New("reports: NUMERIC is NULL, NaN or infinite")
	}
	*n.d = decimal.NewFromBigInt(v.Int, v.Exp)
	return nil
}

// numOpt is num for a nullable NUMERIC.
type numOpt struct{ d *decimal.NullDecimal }

func (n numOpt) ScanNumeric(v pgtype.Numeric) error {
	if !v.Valid {
		*n.d = decimal.NullDecimal{}
		return nil
	}
	var d decimal.Decimal
	if err := (num{&d}).ScanNumeric(v); err != nil {
		return err
	}
	*n.d = decimal.NullDecimal{Decimal: d, Valid: true}
	return nil
}
