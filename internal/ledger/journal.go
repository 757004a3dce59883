package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Transaction types (IATI / FTS).
const (
	Pledge       = "PLEDGE"
	Commitment   = "COMMITMENT"
	Disbursement = "DISBURSEMENT"
	Receipt      = "RECEIPT"
	Expenditure  = "EXPENDITURE"
	Reversal     = "REVERSAL"
)

var (
	types = []string{Pledge, Commitment, Disbursement, Receipt, Expenditure, Reversal}
	// donorTypes are what a donor records (and may reverse); implementers
	// record the others.
	donorTypes       = []string{Pledge, Commitment, Disbursement}
	implementerTypes = []string{Receipt, Expenditure}
)

// ValueDateSlack is how far outside the grant period a value date may lie:
// pledges and commitments often precede the agreement's start, final
// expenditures and receipts follow its end. Further out is almost certainly
// a typo (a wrong year) and is refused.
const ValueDateSlack = 366 * 24 * time.Hour

// EntryInput is a journal entry as a client sends it.
type EntryInput struct {
	GrantID, Type, Amount, Currency, ValueDate, Reference, MilestoneID, ReversesID, FxRate, Note string
}

// Transaction is one stored journal entry.
type Transaction struct {
	ID              string           `json:"id"`
	GrantID         string           `json:"grantId"`
	Type            string           `json:"type"`
	Bucket          string           `json:"bucket"`
	Amount          decimal.Decimal  `json:"amount"`
	Currency        string           `json:"currency"`
	AgreementAmount decimal.Decimal  `json:"agreementAmount"`
	AgreementCcy    string           `json:"agreementCurrency"`
	ReportingAmount decimal.Decimal  `json:"reportingAmount"`
	ReportingCcy    string           `json:"reportingCurrency"`
	AgreementRate   decimal.Decimal  `json:"agreementRate"`
	ReportingRate   decimal.Decimal  `json:"reportingRate"`
	FxRate          *decimal.Decimal `json:"fxRate,omitempty"`
	ValueDate       time.Time        `json:"valueDate"`
	Reference       string           `json:"reference"`
	MilestoneID     string           `json:"milestoneId,omitempty"`
	ReversesID      string           `json:"reversesTransactionId,omitempty"`
	Note            string           `json:"note"`
	RecordedBy      string           `json:"recordedBy"`
	RecordedRole    string           `json:"-"`
	RecordedAt      time.Time        `json:"-"`
	BatchID         string           `json:"-"` // the batch's audit event holds it
}

// RecordTransaction appends one entry to a grant's journal. It is the hot
// path of the service: one round trip, one statement. What never changes
// (the grant, the milestone, the entry a reversal cancels) comes from caches
// or a read before the write, the conversion from the cached FX table;
// recordSQL then checks the FX cache is current, looks up the request id,
// moves the grant's balances under their invariants and row lock, and
// appends the entry, its claim and its audit event (see group.go).
func (s *Store) RecordTransaction(ctx context.Context, in EntryInput, requestID string) (Transaction, error) {
	if requestID == "" {
		return Transaction{}, apperr.Invalid("requestId", "required")
	}
	pl, err := newPlan(auth.FromContext(ctx), []EntryInput{in}, "transaction.")
	if err != nil {
		return Transaction{}, err
	}
	t, err := s.recordOne(ctx, pl, requestID)
	if err != nil {
		return Transaction{}, fmt.Errorf("recording transaction: %w", err)
	}
	return t, nil
}

// single is one entry being recorded alone: what it needs from the
// database, read once, and the FX snapshot it is converted with.
type single struct {
	pl            *plan
	g             *Grant
	id, requestID string
	sum           []byte // the request's payload digest
	rates         *fx.Snapshot
}

// newSingle reads what a single entry needs: the grant and milestone (cached),
// the entry a reversal cancels, the FX table (cached).
func (s *Store) newSingle(ctx context.Context, pl *plan, requestID string) (*single, error) {
	sum, err := idempotency.Digest(pl.entries[0].in)
	if err != nil {
		return nil, err
	}
	if err := s.readStatic(ctx, pl); err != nil {
		return nil, err
	}
	if err := pl.found(); err != nil {
		return nil, err
	}
	rates, err := s.rates.Current(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	return &single{pl: pl, g: pl.grants[pl.entries[0].in.GrantID], id: uuid.Must(uuid.NewV7()).String(),
		requestID: requestID, sum: sum, rates: rates}, nil
}

// build checks and converts the entry with the current snapshot and returns
// it with recordSQL's arguments.
func (w *single) build(ctx context.Context, s *Store) (Transaction, []any, error) {
	w.pl.rates = w.rates.Table
	out, err := s.prepare(w.pl, []string{w.id})
	if err != nil {
		return Transaction{}, nil, err
	}
	args, err := entryArgs(ctx, out[0], w.g, w.requestID, w.sum, w.rates)
	return out[0], args, err
}

func (s *Store) recordOne(ctx context.Context, pl *plan, requestID string) (Transaction, error) {
	w, err := s.newSingle(ctx, pl, requestID)
	if err != nil {
		return Transaction{}, err
	}
	g, sum := w.g, w.sum
	for attempt := 1; ; attempt++ {
		t, args, err := w.build(ctx, s)
		if err != nil {
			return Transaction{}, err
		}
		row, err := s.commit.write(t.GrantID, args)
		if err != nil {
			// The group failed as a whole (nothing of it was written): alone,
			// this write either succeeds or fails for its own reason.
			row, err = writeAlone(ctx, s.pool, args)
		}
		if c, ok := postgres.IsUniqueViolation(err); ok && c == "idempotency_keys_pkey" && attempt < maxAttempts {
			continue // the same request id committed meanwhile: the next attempt replays it
		}
		if err != nil {
			return Transaction{}, writeError(err)
		}
		switch row.outcome {
		case "RECORDED":
			t.RecordedAt = *row.recordedAt
			return t, nil
		case "REPLAY":
			prev, err := idempotency.Replay(requestID, sum, row.priorSum, *row.priorID)
			if err != nil {
				return Transaction{}, err
			}
			out, err := s.readTransactions(ctx, s.pool, 0, `t.id = $1`, prev)
			if err != nil {
				return Transaction{}, err
			}
			if len(out) != 1 {
				return Transaction{}, fmt.Errorf("replay found %d entries", len(out))
			}
			return out[0], nil
		case "REVERSED":
			return Transaction{}, fmt.Errorf("entry %s is already reversed: %w", t.ReversesID, apperr.ErrFailedPrecondition)
		case "REFUSED":
			if err := balanceRefusal(row.detail, t, g); err != nil {
				return Transaction{}, err
			}
			// The balances it was refused on have moved since, so far that
			// it would pass now: try again.
			if attempt == maxAttempts {
				return Transaction{}, fmt.Errorf("grant %s: balances kept changing under the write: %w", g.Reference, apperr.ErrAborted)
			}
		case "FX_STALE":
			if attempt == maxAttempts {
				return Transaction{}, fmt.Errorf("FX rates kept changing under the write: %w", apperr.ErrAborted)
			}
			// Rates were added since the cache was filled: convert again.
			if w.rates, err = s.rates.Refresh(ctx, s.pool); err != nil {
				return Transaction{}, err
			}
		default:
			return Transaction{}, fmt.Errorf("unexpected outcome %q", row.outcome)
		}
	}
}

// entryArgs are recordSQL's arguments for entry t of grant g, converted with
// rates.
func entryArgs(ctx context.Context, t Transaction, g *Grant, requestID string, sum []byte, rates *fx.Snapshot) ([]any, error) {
	var fxSeq *int64 // only a conversion through the table depends on the cache
	if t.Type != Reversal && (t.Currency != g.Currency || t.Currency != g.ReportingCurrency) {
		fxSeq = &rates.Seq
	}
	var fxText *string
	if t.FxRate != nil {
		fxText = nullable(t.FxRate.String())
	}
	event, err := audit.Values(ctx, audit.Entry{EntityType: "transaction", EntityID: t.ID, Change: t,
		RequestID: requestID, SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}})
	if err != nil {
		return nil, err
	}
	return append([]any{"RecordTransaction", requestID, sum, fxSeq,
		t.ID, t.GrantID, t.Type, t.Bucket, t.Currency,
		t.Amount.String(), t.AgreementAmount.String(), t.ReportingAmount.String(),
		t.AgreementRate.String(), t.ReportingRate.String(), fxText,
		t.ValueDate, t.Reference, nullable(t.MilestoneID), nullable(t.ReversesID), t.Note,
		t.RecordedBy, t.RecordedRole}, event...), nil
}

func writeAlone(ctx context.Context, pool *pgxpool.Pool, args []any) (recordRow, error) {
	var r recordRow
	err := pool.QueryRow(ctx, recordSQL, args...).Scan(&r.outcome, &r.priorID, &r.priorSum, &r.detail, &r.recordedAt)
	return r, err
}

// maxAttempts bounds the retries of a single write (a stale FX cache, a
// refusal that no longer holds).
const maxAttempts = 5

// balanceRefusal explains why recordSQL refused an entry, from the
// balance row it was refused on (detail: pledged committed disbursed
// allocated), with the same words as a batch's check. nil means the row no
// longer refuses it.
func balanceRefusal(detail string, t Transaction, g *Grant) error {
	f := strings.Fields(detail)
	if len(f) != 4 {
		return fmt.Errorf("unexpected refusal detail %q", detail)
	}
	var b balance
	for i, v := range []*decimal.Decimal{&b.pledged, &b.committed, &b.disbursed, &b.allocated} {
		d, err := decimal.NewFromString(f[i])
		if err != nil {
			return fmt.Errorf("unexpected refusal detail %q", detail)
		}
		*v = d
	}
	return b.take(t, g)
}

// readStatic fills a single-entry plan with what never changes: the grant
// and the milestone (cached), and for a reversal the entry it cancels. Cache
// misses and the reversal cost one round trip together.
func (s *Store) readStatic(ctx context.Context, pl *plan) error {
	pl.originals, pl.milestoneRoadmap = map[string]Transaction{}, map[string]string{}
	b := &pgx.Batch{}
	pl.grants = s.queueGrants(b, pl.grantIDs)
	var missing []string
	for _, id := range pl.milestoneIDs {
		if rm, ok := s.milestoneRoadmaps.Load(id); ok {
			pl.milestoneRoadmap[id] = rm.(string)
		} else {
			missing = append(missing, id)
		}
	}
	queueMilestones(b, missing, pl)
	// Whether the entry is reversed already is left to the statement, which
	// looks up the request id first: a retry of the reversal itself must
	// replay, not be refused.
	queueOriginals(b, pl, false)
	if b.Len() > 0 {
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
	}
	for _, id := range missing {
		if rm, ok := pl.milestoneRoadmap[id]; ok {
			s.milestoneRoadmaps.Store(id, rm)
		}
	}
	return nil
}

// queueGrants returns the grants' unchanging fields from the cache and queues
// a read of those not cached yet, which fills the map in when the batch runs.
// Unknown grants are left out, for found to report.
func (s *Store) queueGrants(b *pgx.Batch, ids []string) map[string]*Grant {
	out := map[string]*Grant{}
	var missing []string
	for _, id := range ids {
		if g, ok := s.grants.Load(id); ok {
			out[id] = g.(*Grant)
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		b.Queue(`SELECT g.id, g.roadmap_id, g.donor_org_id, g.recipient_org_id, g.reference, g.title, g.currency,
				g.start_date, g.end_date, g.created_at, r.reporting_currency
			FROM grants g JOIN roadmaps r ON r.id = g.roadmap_id WHERE g.id = ANY ($1::uuid[])`, missing).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				g := &Grant{}
				if err := rows.Scan(&g.ID, &g.RoadmapID, &g.DonorOrgID, &g.RecipientOrgID, &g.Reference, &g.Title, &g.Currency,
					&g.StartDate, &g.EndDate, &g.CreatedAt, &g.ReportingCurrency); err != nil {
					return err
				}
				s.grants.Store(g.ID, g)
				out[g.ID] = g
			}
			return rows.Err()
		})
	}
	return out
}

// BatchRecord records up to 1 000 entries across grants, all or nothing, in
// the order given (a commitment may precede a disbursement it allows).
func (s *Store) BatchRecord(ctx context.Context, in []EntryInput, requestID string) ([]Transaction, error) {
	var v apperr.Validator
	v.Check(len(in) > 0 && len(in) <= 1000, "transactions", "between 1 and 1000 entries, got %d", len(in))
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return nil, err
	}
	var out []Transaction
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		batchID := uuid.Must(uuid.NewV7()).String()
		prev, replay, err := idempotency.Claim(ctx, tx, "BatchRecordTransactions", requestID, in, batchID)
		if err != nil {
			return err
		}
		if replay {
			out, err = s.readTransactions(ctx, tx, 0, `t.batch_id = $1`, prev)
			return err
		}
		out, err = s.record(ctx, tx, in, batchID, "transactions", requestID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording batch: %w", err)
	}
	return out, nil
}

// balance is a grant's totals in agreement currency, read under its row
// lock, plus what this write adds in reporting currency.
type balance struct {
	pledged, committed, disbursed, received, spent, allocated decimal.Decimal
	reporting                                                 [5]decimal.Decimal // deltas, in the order of buckets
}

var buckets = [5]string{Pledge, Commitment, Disbursement, Receipt, Expenditure}

func (b *balance) add(bucket string, agreement, reporting decimal.Decimal) {
	switch bucket {
	case Pledge:
		b.pledged = b.pledged.Add(agreement)
	case Commitment:
		b.committed = b.committed.Add(agreement)
	case Disbursement:
		b.disbursed = b.disbursed.Add(agreement)
	case Receipt:
		b.received = b.received.Add(agreement)
	case Expenditure:
		b.spent = b.spent.Add(agreement)
	}
	i := slices.Index(buckets[:], bucket)
	b.reporting[i] = b.reporting[i].Add(reporting)
}

type parsed struct {
	in        EntryInput
	field     func(string) string
	amount    decimal.Decimal
	valueDate time.Time
	fxRate    *decimal.Decimal
}

// plan is what recording entries needs from the database. For a batch,
// gather queues every read into one round trip (with the grants' row locks)
// and apply the writes into a second; a single entry reads only what its
// caches miss (readStatic) and writes in one statement.
type plan struct {
	p                auth.Principal
	entries          []parsed
	grantIDs         []string // sorted: rows are locked in this order, so writers cannot deadlock
	reversed         []string
	milestoneIDs     []string
	grants           map[string]*Grant
	bals             map[string]*balance
	originals        map[string]Transaction
	reversedAlready  map[string]bool // batch path: reversed entries, read under the grants' locks
	milestoneRoadmap map[string]string
	rates            *fx.Table
	fxSeq            int64 // the FX table's head, read with the grants' locks
}

// newPlan checks the shape of every entry before touching the database.
func newPlan(p auth.Principal, in []EntryInput, prefix string) (*plan, error) {
	if err := p.Require(auth.Donor, auth.Implementer); err != nil {
		return nil, err
	}
	var v apperr.Validator
	entries := make([]parsed, len(in))
	for i, e := range in {
		f := func(name string) string { return prefix + name }
		if prefix == "transactions" {
			f = func(name string) string { return fmt.Sprintf("transactions[%d].%s", i, name) }
		}
		pe := parsed{in: e, field: f}
		v.Check(uuid.Validate(e.GrantID) == nil, f("grantId"), "not an id: %q", e.GrantID)
		v.Check(slices.Contains(types, e.Type), f("type"), "unknown type %q (want one of PLEDGE, COMMITMENT, DISBURSEMENT, RECEIPT, EXPENDITURE, REVERSAL)", e.Type)
		if e.Type == Reversal {
			v.Check(uuid.Validate(e.ReversesID) == nil, f("reversesTransactionId"), "a REVERSAL names the entry it cancels")
			if e.Amount != "" {
				// A reversal cancels the entry in full; an amount, if given, must be that entry's.
				if a, err := money.Parse(e.Amount, e.Currency); err != nil {
					v.Add(f("amount.amount"), "%v", err)
				} else {
					pe.amount = a
				}
			}
		} else {
			v.Check(e.ReversesID == "", f("reversesTransactionId"), "only a REVERSAL names a reversed entry")
			_, errC := money.Currency(e.Currency)
			a, err := money.Parse(e.Amount, e.Currency)
			switch {
			case errC != nil:
				v.Add(f("amount.currency"), "%v", errC)
			case err != nil:
				v.Add(f("amount.amount"), "%v", err)
			case a.IsZero():
				v.Add(f("amount.amount"), "must not be zero")
			case a.IsNegative() && e.Type != Pledge && e.Type != Commitment:
				v.Add(f("amount.amount"), "must be positive for %s (only pledges and commitments are amended downwards)", e.Type)
			}
			pe.amount = a
		}
		pe.valueDate = parseDate(&v, f("valueDate"), e.ValueDate, true)
		text(&v, f("reference"), e.Reference, e.Type == Expenditure, 200)
		text(&v, f("note"), e.Note, false, 2000)
		v.Check(e.MilestoneID == "" || uuid.Validate(e.MilestoneID) == nil, f("milestoneId"), "not an id: %q", e.MilestoneID)
		if e.FxRate != "" {
			r, err := money.ParseDecimal(e.FxRate)
			if err == nil {
				err = fx.CheckRate(r) // the plausibility limits of table rates (internal/fx)
			}
			if err != nil {
				v.Add(f("fxRate"), "%v", err)
			}
			pe.fxRate = &r
		}
		entries[i] = pe
	}
	if err := v.Err(); err != nil {
		return nil, err
	}

	pl := &plan{p: p, entries: entries}
	for _, e := range in {
		pl.grantIDs = append(pl.grantIDs, e.GrantID)
		if e.ReversesID != "" {
			pl.reversed = append(pl.reversed, e.ReversesID)
		}
		if e.MilestoneID != "" {
			pl.milestoneIDs = append(pl.milestoneIDs, e.MilestoneID)
		}
	}
	pl.grantIDs = slices.Compact(slices.Sorted(slices.Values(pl.grantIDs)))
	return pl, nil
}

// gather queues the reads of a plan: the grants with their balance rows
// locked, what reversals cancel, the milestones named, and the FX table's
// head, against which the cached rates are checked.
func (s *Store) gather(b *pgx.Batch, pl *plan) {
	// Fresh for every attempt: a retried transaction reads again.
	pl.grants, pl.bals = map[string]*Grant{}, map[string]*balance{}
	pl.originals, pl.milestoneRoadmap, pl.reversedAlready = map[string]Transaction{}, map[string]string{}, map[string]bool{}
	b.Queue(`SELECT `+grantColumns+`, b.committed, b.disbursed, b.received, b.spent, b.allocated`+grantFrom+`
		WHERE g.id = ANY ($1::uuid[]) ORDER BY g.id FOR UPDATE OF b`, pl.grantIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			g, b := &Grant{}, &balance{}
			var version int
			if err := rows.Scan(&g.ID, &g.RoadmapID, &g.DonorOrgID, &g.RecipientOrgID, &g.Reference, &g.Title, &g.Currency,
				&g.StartDate, &g.EndDate, &g.CreatedAt, &g.ReportingCurrency, &b.pledged, &version,
				&b.committed, &b.disbursed, &b.received, &b.spent, &b.allocated); err != nil {
				return err
			}
			pl.grants[g.ID], pl.bals[g.ID] = g, b
		}
		return rows.Err()
	})
	queueOriginals(b, pl, true)
	queueMilestones(b, pl.milestoneIDs, pl)
	b.Queue(`SELECT coalesce(max(seq), 0) FROM fx_rates`).QueryRow(func(r pgx.Row) error { return r.Scan(&pl.fxSeq) })
}

// queueOriginals queues the read of the entries a plan's reversals cancel,
// and, with reversed, of which of them are cancelled already.
func queueOriginals(b *pgx.Batch, pl *plan, reversed bool) {
	if len(pl.reversed) == 0 {
		return
	}
	b.Queue(`SELECT `+txColumns+txFrom+` WHERE t.id = ANY ($1::uuid[])`, pl.reversed).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var t Transaction
			if err := scanTx(rows, &t); err != nil {
				return err
			}
			pl.originals[t.ID] = t
		}
		return rows.Err()
	})
	if !reversed {
		return
	}
	b.Queue(`SELECT reverses_id::text FROM transactions WHERE reverses_id = ANY ($1::uuid[])`, pl.reversed).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			pl.reversedAlready[id] = true
		}
		return rows.Err()
	})
}

// queueMilestones queues the read of the milestones' roadmaps.
func queueMilestones(b *pgx.Batch, ids []string, pl *plan) {
	if len(ids) == 0 {
		return
	}
	b.Queue(`SELECT id::text, roadmap_id::text FROM milestones WHERE id = ANY ($1::uuid[])`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id, rm string
			if err := rows.Scan(&id, &rm); err != nil {
				return err
			}
			pl.milestoneRoadmap[id] = rm
		}
		return rows.Err()
	})
}

// found reports a grant that does not exist or that the caller may not see.
func (pl *plan) found() error {
	for _, id := range pl.grantIDs {
		if g := pl.grants[id]; g == nil || !canRead(pl.p, g) {
			return notFound(id)
		}
	}
	return nil
}

// prepare checks each entry against what never changes (the grant's period
// and parties, the milestone, the reversed entry, the caller's rights) and
// converts it; the balances are checked by the writer.
func (s *Store) prepare(pl *plan, ids []string) ([]Transaction, error) {
	p := pl.p
	out := make([]Transaction, len(pl.entries))
	for i, e := range pl.entries {
		g := pl.grants[e.in.GrantID]
		f := e.field
		t := Transaction{ID: ids[i], GrantID: g.ID, Type: e.in.Type, Bucket: e.in.Type, Amount: e.amount, Currency: e.in.Currency,
			AgreementCcy: g.Currency, ReportingCcy: g.ReportingCurrency, FxRate: e.fxRate, ValueDate: e.valueDate,
			Reference: e.in.Reference, MilestoneID: e.in.MilestoneID, ReversesID: e.in.ReversesID, Note: e.in.Note,
			RecordedBy: p.TokenID, RecordedRole: string(p.Role)}
		if p.Role == auth.Operator {
			t.RecordedBy = "operator:" + p.Name
		}
		if e.valueDate.Before(g.StartDate.Add(-ValueDateSlack)) || e.valueDate.After(g.EndDate.Add(ValueDateSlack)) {
			return nil, apperr.Invalid(f("valueDate"), "%s is more than a year outside the grant period %s to %s",
				e.in.ValueDate, g.StartDate.Format(time.DateOnly), g.EndDate.Format(time.DateOnly))
		}
		if t.MilestoneID != "" && pl.milestoneRoadmap[t.MilestoneID] != g.RoadmapID {
			return nil, apperr.Invalid(f("milestoneId"), "milestone %s is not in the grant's roadmap", t.MilestoneID)
		}
		if t.Type == Reversal {
			orig, ok := pl.originals[t.ReversesID]
			switch {
			case !ok:
				return nil, apperr.Invalid(f("reversesTransactionId"), "no entry %s in this journal", t.ReversesID)
			case orig.GrantID != g.ID:
				return nil, apperr.Invalid(f("reversesTransactionId"), "entry %s belongs to another grant", t.ReversesID)
			case orig.Type == Reversal:
				return nil, apperr.Invalid(f("reversesTransactionId"), "a reversal cannot be reversed; record the entry again instead")
			case e.in.Amount != "" && (!e.amount.Equal(orig.Amount) || e.in.Currency != orig.Currency):
				return nil, apperr.Invalid(f("amount"), "a reversal cancels the entry in full: %s %s", money.Format(orig.Amount, orig.Currency), orig.Currency)
			}
			t.Bucket, t.Amount, t.Currency = orig.Type, orig.Amount, orig.Currency
			t.AgreementAmount, t.ReportingAmount = orig.AgreementAmount.Neg(), orig.ReportingAmount.Neg()
			t.AgreementRate, t.ReportingRate = orig.AgreementRate, orig.ReportingRate
			if t.MilestoneID == "" {
				t.MilestoneID = orig.MilestoneID
			}
		} else {
			if _, err := money.Currency(t.Currency); err != nil {
				return nil, apperr.Invalid(f("amount.currency"), "%v", err)
			}
			ar, rr, err := conversionRates(pl.rates, t.Currency, g.Currency, g.ReportingCurrency, t.ValueDate, e.fxRate)
			if err != nil {
				return nil, err
			}
			t.AgreementRate, t.ReportingRate = ar, rr
			t.AgreementAmount = money.Convert(t.Amount, ar, false, g.Currency)
			t.ReportingAmount = money.Convert(t.Amount, rr, false, g.ReportingCurrency)
			// Converted figures keep the digit limit of entered amounts (internal/money).
			if err = money.CheckConverted(t.AgreementAmount, g.Currency); err == nil {
				err = money.CheckConverted(t.ReportingAmount, g.ReportingCurrency)
			}
			if err != nil {
				return nil, apperr.Invalid(f("amount.amount"), "%v", err)
			}
		}
		if err := allowed(p, g, t.Bucket); err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// apply checks a batch's entries in order against the grants' running
// balances, read under their row locks, and queues the writes: the entries,
// the balances and the audit events.
func (s *Store) apply(ctx context.Context, pl *plan, ids []string, batchID, requestID string) ([]Transaction, *pgx.Batch, error) {
	out, err := s.prepare(pl, ids)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range out {
		if t.Type == Reversal {
			if pl.reversedAlready[t.ReversesID] {
				return nil, nil, fmt.Errorf("entry %s is already reversed: %w", t.ReversesID, apperr.ErrFailedPrecondition)
			}
			pl.reversedAlready[t.ReversesID] = true // by this batch
		}
		g := pl.grants[t.GrantID]
		if err := pl.bals[g.ID].take(t, g); err != nil {
			return nil, nil, err
		}
	}

	// One round trip writes the entries, the balances and the audit events.
	b := &pgx.Batch{}
	var (
		cols                 [9][]string
		dates                []time.Time
		milestones, reverses []*string
	)
	// Decimals travel as text and PostgreSQL casts them: exact either way,
	// and much cheaper for pgx to encode in bulk than binary NUMERIC.
	var amt, agrAmt, repAmt, agrR, repR []string
	var fxText []*string
	for _, t := range out {
		for k, v := range []string{t.ID, t.GrantID, t.Type, t.Bucket, t.Currency, t.Reference, t.Note, t.RecordedBy, t.RecordedRole} {
			cols[k] = append(cols[k], v)
		}
		amt, agrAmt, repAmt = append(amt, t.Amount.String()), append(agrAmt, t.AgreementAmount.String()), append(repAmt, t.ReportingAmount.String())
		agrR, repR = append(agrR, t.AgreementRate.String()), append(repR, t.ReportingRate.String())
		if t.FxRate != nil {
			fxText = append(fxText, nullable(t.FxRate.String()))
		} else {
			fxText = append(fxText, nil)
		}
		dates = append(dates, t.ValueDate)
		milestones = append(milestones, nullable(t.MilestoneID))
		reverses = append(reverses, nullable(t.ReversesID))
	}
	b.Queue(`INSERT INTO transactions (id, grant_id, type, bucket, currency, reference, note, recorded_by, recorded_role,
			amount, agreement_amount, reporting_amount, agreement_rate, reporting_rate, fx_rate, value_date,
			milestone_id, reverses_id, batch_id)
		SELECT *, $19::uuid FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::text[]::numeric[], $11::text[]::numeric[], $12::text[]::numeric[], $13::text[]::numeric[], $14::text[]::numeric[],
			$15::text[]::numeric[], $16::date[],
			$17::uuid[], $18::uuid[])`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8],
		amt, agrAmt, repAmt, agrR, repR, fxText, dates, milestones, reverses, nullable(batchID))
	var gid []string
	var pled, comm, disb, recv, spnt []decimal.Decimal
	var rep [5][]decimal.Decimal
	for _, id := range pl.grantIDs {
		x := pl.bals[id]
		gid, pled, comm = append(gid, id), append(pled, x.pledged), append(comm, x.committed)
		disb, recv, spnt = append(disb, x.disbursed), append(recv, x.received), append(spnt, x.spent)
		for i := range rep {
			rep[i] = append(rep[i], x.reporting[i])
		}
	}
	b.Queue(`UPDATE grant_balances b SET pledged = x.pledged, committed = x.committed, disbursed = x.disbursed,
			received = x.received, spent = x.spent,
			pledged_reporting = b.pledged_reporting + x.rp, committed_reporting = b.committed_reporting + x.rc,
			disbursed_reporting = b.disbursed_reporting + x.rd, received_reporting = b.received_reporting + x.rr,
			spent_reporting = b.spent_reporting + x.rs
		FROM unnest($1::uuid[], $2::numeric[], $3::numeric[], $4::numeric[], $5::numeric[], $6::numeric[],
			$7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[])
			AS x(grant_id, pledged, committed, disbursed, received, spent, rp, rc, rd, rr, rs)
		WHERE b.grant_id = x.grant_id`, gid, pled, comm, disb, recv, spnt, rep[0], rep[1], rep[2], rep[3], rep[4])
	// One audit event per accepted entry; a batch (all or nothing, its entries
	// carrying the batch id) gets one event per grant it touches, so each
	// event concerns one donor and one recipient only.
	if batchID == "" {
		g := pl.grants[out[0].GrantID]
		if err := audit.Queue(ctx, b, audit.Entry{EntityType: "transaction", EntityID: out[0].ID, Change: out[0],
			RequestID: requestID, SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}}); err != nil {
			return nil, nil, err
		}
	} else {
		perGrant := map[string][]Transaction{}
		for _, t := range out {
			perGrant[t.GrantID] = append(perGrant[t.GrantID], t)
		}
		for _, id := range pl.grantIDs {
			g := pl.grants[id]
			if err := audit.Queue(ctx, b, audit.Entry{EntityType: "transaction_batch", EntityID: batchID,
				Change:    batchChange{BatchID: batchID, GrantID: id, Transactions: perGrant[id]},
				RequestID: requestID, SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}}); err != nil {
				return nil, nil, err
			}
		}
	}
	// Entries are recorded at the transaction's start (the column default).
	b.Queue(`SELECT now()`).QueryRow(func(r pgx.Row) error {
		var at time.Time
		if err := r.Scan(&at); err != nil {
			return err
		}
		for i := range out {
			out[i].RecordedAt, out[i].BatchID = at, batchID
		}
		return nil
	})
	return out, b, nil
}

// record records entries inside tx, with fresh ids: one round trip to read,
// one to write. prefix names the entries in errors: "transactions" gives
// transactions[i].field, anything else (e.g. "grant.pledged.") prefix+field.
func (s *Store) record(ctx context.Context, tx pgx.Tx, in []EntryInput, batchID, prefix, requestID string) ([]Transaction, error) {
	pl, err := newPlan(auth.FromContext(ctx), in, prefix)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	reads := &pgx.Batch{}
	s.gather(reads, pl)
	if err := tx.SendBatch(ctx, reads).Close(); err != nil {
		return nil, err
	}
	if err := pl.found(); err != nil {
		return nil, err
	}
	rates, err := s.rates.Current(ctx, tx)
	if err == nil && rates.Seq < pl.fxSeq {
		rates, err = s.rates.Refresh(ctx, tx) // rates were added since the cache was filled
	}
	if err != nil {
		return nil, err
	}
	pl.rates = rates.Table
	out, writes, err := s.apply(ctx, pl, ids, batchID, requestID)
	if err != nil {
		return nil, err
	}
	if err := tx.SendBatch(ctx, writes).Close(); err != nil {
		return nil, writeError(err)
	}
	return out, nil
}

// writeError names the one constraint a concurrent writer can break.
func writeError(err error) error {
	if c, ok := postgres.IsUniqueViolation(err); ok && c == "transactions_reverses_id_key" {
		return fmt.Errorf("entry is already reversed: %w", apperr.ErrFailedPrecondition)
	}
	return err
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// conversionRates returns units of the entry's currency per one unit of the
// agreement and of the reporting currency. The entry's own fxRate (units of
// its currency per reporting-currency unit, as in FTS) wins over the table.
func conversionRates(t *fx.Table, cur, agreement, reporting string, d time.Time, given *decimal.Decimal) (decimal.Decimal, decimal.Decimal, error) {
	var ar, rr decimal.Decimal
	var err error
	switch {
	case cur == agreement:
		ar = decimal.NewFromInt(1)
	case given != nil && agreement == reporting:
		ar = *given
	default:
		if ar, err = t.Rate(cur, agreement, reporting, d); err != nil {
			return ar, rr, err
		}
	}
	switch {
	case cur == reporting:
		rr = decimal.NewFromInt(1)
	case given != nil:
		rr = *given
	default:
		if rr, err = t.Rate(cur, reporting, "", d); err != nil {
			return ar, rr, err
		}
	}
	return ar, rr, nil
}

// allowed: donors record and reverse pledges, commitments and disbursements
// on their own grants; implementers receipts and expenditures on grants they
// receive; admins anything.
func allowed(p auth.Principal, g *Grant, bucket string) error {
	switch p.Role {
	case auth.Admin, auth.Operator:
		return nil
	case auth.Donor:
		if g.DonorOrgID == p.OrgID && slices.Contains(donorTypes, bucket) {
			return nil
		}
	case auth.Implementer:
		if g.RecipientOrgID == p.OrgID && slices.Contains(implementerTypes, bucket) {
			return nil
		}
	}
	return fmt.Errorf("role %s may not record %s entries on this grant: %w", p.Role, bucket, apperr.ErrPermissionDenied)
}

// take adds entry t of grant g to the balances and says why, if the result
// breaks an invariant.
func (b *balance) take(t Transaction, g *Grant) error {
	b.add(t.Bucket, t.AgreementAmount, t.ReportingAmount)
	if err := b.check(g.Currency); err != nil {
		return fmt.Errorf("%s of %s %s on grant %s: %w", t.Type, money.Format(t.Amount, t.Currency), t.Currency, g.Reference, err)
	}
	return nil
}

// check holds the invariants of a grant's balances.
func (b *balance) check(cur string) error {
	f := func(d decimal.Decimal) string { return money.Format(d, cur) + " " + cur }
	switch {
	case b.disbursed.GreaterThan(b.committed):
		return fmt.Errorf("disbursed %s would exceed committed %s: %w", f(b.disbursed), f(b.committed), apperr.ErrFailedPrecondition)
	case b.allocated.GreaterThan(b.committed):
		return fmt.Errorf("allocations %s would exceed committed %s: %w", f(b.allocated), f(b.committed), apperr.ErrFailedPrecondition)
	case b.committed.IsNegative():
		return fmt.Errorf("committed would fall below zero (%s): %w", f(b.committed), apperr.ErrFailedPrecondition)
	case b.pledged.IsNegative():
		return fmt.Errorf("pledged would fall below zero (%s): %w", f(b.pledged), apperr.ErrFailedPrecondition)
	}
	return nil
}

const txColumns = `t.id, t.grant_id, t.type, t.bucket, t.amount, t.currency, t.agreement_amount, g.currency,
	t.reporting_amount, r.reporting_currency, t.agreement_rate, t.reporting_rate, t.fx_rate, t.value_date, t.reference,
	coalesce(t.milestone_id::text, ''), coalesce(t.reverses_id::text, ''), t.note, t.recorded_by, t.recorded_role, t.recorded_at,
	coalesce(t.batch_id::text, '')`

const txFrom = ` FROM transactions t JOIN grants g ON g.id = t.grant_id JOIN roadmaps r ON r.id = g.roadmap_id`

func scanTx(row pgx.Row, t *Transaction) error {
	return row.Scan(&t.ID, &t.GrantID, &t.Type, &t.Bucket, &t.Amount, &t.Currency, &t.AgreementAmount, &t.AgreementCcy,
		&t.ReportingAmount, &t.ReportingCcy, &t.AgreementRate, &t.ReportingRate, &t.FxRate, &t.ValueDate, &t.Reference,
		&t.MilestoneID, &t.ReversesID, &t.Note, &t.RecordedBy, &t.RecordedRole, &t.RecordedAt, &t.BatchID)
}

// readTransactions reads entries matching where, in id (recording) order, at
// most limit of them when limit > 0.
func (s *Store) readTransactions(ctx context.Context, q querier, limit int, where string, args ...any) ([]Transaction, error) {
	sql := `SELECT ` + txColumns + txFrom + ` WHERE ` + where + ` ORDER BY t.id`
	if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transaction, error) {
		var t Transaction
		return t, scanTx(r, &t)
	})
}

// ListTransactions pages through a grant's journal in recording order.
func (s *Store) ListTransactions(ctx context.Context, grantID, typ string, pageSize int, pageToken string) ([]Transaction, string, error) {
	if _, err := s.readableGrant(ctx, grantID); err != nil {
		return nil, "", err
	}
	if typ != "" && !slices.Contains(types, typ) {
		return nil, "", apperr.Invalid("type", "unknown type %q", typ)
	}
	after, size, err := paging.Start(pageToken, pageSize, 50)
	if err != nil {
		return nil, "", err
	}
	out, err := s.readTransactions(ctx, s.pool, size+1, `t.grant_id = $1 AND ($2 = '' OR t.type = $2) AND t.id > $3`,
		grantID, typ, after)
	if err != nil {
		return nil, "", fmt.Errorf("listing transactions: %w", err)
	}
	out, next := paging.Next(out, size, func(t Transaction) string { return t.ID })
	return out, next, nil
}
