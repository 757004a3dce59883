package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// RecordTransaction appends one entry to a grant's journal. It is the hot
// path of the service: one round trip, one statement. What never changes
// (the grant, the milestone, the entry a reversal cancels) comes from caches
// or a read before the write, the conversion from the cached FX table;
// recordSQL then checks the FX cache is current, looks up the request id,
// moves the grant's balances under their invariants and row lock, and
// appends the entry, its claim and its audit event (see group.go).
//
// Violations name the entry's fields without position (amount.amount).
func (s *Store) RecordTransaction(ctx context.Context, in EntryInput, requestID string) (Transaction, error) {
	t, err := s.recordSingle(ctx, in, requestID)
	if err != nil {
		return Transaction{}, fmt.Errorf("recording transaction: %w", apperr.Fields(err, unlisted))
	}
	return t, nil
}

func (s *Store) recordSingle(ctx context.Context, in EntryInput, requestID string) (Transaction, error) {
	if requestID == "" {
		return Transaction{}, apperr.Invalid("requestId", "required")
	}
	pl, err := newPlan(auth.FromContext(ctx), []EntryInput{in})
	if err != nil {
		return Transaction{}, err
	}
	return s.recordOne(ctx, pl, requestID)
}

// unlisted drops the position of the one entry of a list from a field name.
func unlisted(field string) string { return strings.TrimPrefix(field, "[0].") }

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
	sum := digest([]EntryInput{pl.entries[0].in})
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
	return &single{pl: pl, g: pl.grants[pl.entries[0].grantID], id: uuid.Must(uuid.NewV7()).String(),
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
	args, err := entryArgs(ctx, out[0], w.g, w.pl.p.Scope(), w.requestID, w.sum, w.rates)
	return out[0], args, err
}

func (s *Store) recordOne(ctx context.Context, pl *plan, requestID string) (Transaction, error) {
	w, err := s.newSingle(ctx, pl, requestID)
	if err != nil {
		return Transaction{}, err
	}
	g, sum := w.g, w.sum
	stale := 0 // attempts that found the FX cache behind the table
	for attempt := 1; ; attempt++ {
		var t Transaction
		var row recordRow
		var err error
		if stale >= holdRatesAfter {
			t, row, err = s.writeHoldingRates(ctx, w)
		} else {
			var args []any
			if t, args, err = w.build(ctx, s); err != nil {
				return Transaction{}, err
			}
			if row, err = s.commit.write(t.GrantID, args); err != nil {
				// The group failed as a whole (nothing of it was written): alone,
				// this write either succeeds or fails for its own reason.
				row, err = writeAlone(ctx, s.pool, args)
			}
		}
		if c, ok := postgres.IsUniqueViolation(err); ok && c == "idempotency_keys_pkey" {
			if attempt == maxAttempts {
				return Transaction{}, fmt.Errorf("request id %q kept being claimed concurrently: %w", requestID, apperr.ErrAborted)
			}
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
			stale++
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
func entryArgs(ctx context.Context, t Transaction, g *Grant, scope, requestID string, sum []byte, rates *fx.Snapshot) ([]any, error) {
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
		t.RecordedBy, t.RecordedRole}, append(event, scope)...), nil
}

// holdRatesAfter is how many times a write may find the FX cache stale
// before it holds rate writers off for its own transaction: rates written in
// a burst could otherwise outrun it every time.
const holdRatesAfter = 2

// writeHoldingRates converts and writes the entry in a transaction that
// holds off FX rate writers (fx.HoldWriters), with the rates read under that
// hold: the table cannot change before the write commits, so it cannot be
// stale. It costs a transaction of its own, so it is the fallback only.
func (s *Store) writeHoldingRates(ctx context.Context, w *single) (Transaction, recordRow, error) {
	var t Transaction
	var row recordRow
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fx.HoldWriters(ctx, tx); err != nil {
			return err
		}
		rates, err := s.rates.Refresh(ctx, tx)
		if err != nil {
			return err
		}
		w.rates = rates
		var args []any
		if t, args, err = w.build(ctx, s); err != nil {
			return err
		}
		return tx.QueryRow(ctx, recordSQL, args...).Scan(&row.outcome, &row.priorID, &row.priorSum, &row.detail, &row.recordedAt)
	})
	return t, row, err
}

func writeAlone(ctx context.Context, pool *pgxpool.Pool, args []any) (recordRow, error) {
	var r recordRow
	err := pool.QueryRow(ctx, recordSQL, args...).Scan(&r.outcome, &r.priorID, &r.priorSum, &r.detail, &r.recordedAt)
	return r, err
}

// maxAttempts bounds the retries of a single write (a stale FX cache, a
// refusal that no longer holds).
const maxAttempts = 5

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
	roadmap.QueueMilestoneRoadmaps(b, missing, pl.milestoneRoadmap)
	// Whether the entry is reversed already is left to the statement (the
	// unique index on reverses_id), which looks up the request id first: a
	// retry of the reversal itself must replay, not be refused.
	queueOriginals(b, pl)
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
