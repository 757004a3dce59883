package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// BatchRecord records up to 1 000 entries across grants, all or nothing, in
// the order given (a commitment may precede a disbursement it allows).
//
// Violations name each entry by its position ([3].amount.amount); a
// violation of the list as a whole has the empty field name.
func (s *Store) BatchRecord(ctx context.Context, in []EntryInput, requestID string) ([]Transaction, error) {
	var v apperr.Validator
	v.Check(len(in) > 0 && len(in) <= MaxBatch, "", "between 1 and %d entries, got %d", MaxBatch, len(in))
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return nil, err
	}
	p := auth.FromContext(ctx)
	// The caller's role and the entries' shape are checked before the
	// request id is looked up, so that a replay answers only a caller who
	// could have made the request.
	pl, err := newPlan(p, in)
	if err != nil {
		return nil, err
	}
	sum := digest(in)
	// The grants are checked readable before any of their rows is locked
	// (gather): naming another donor's grant must neither stall its writers
	// nor, by waiting, tell that it exists. Cached grants cost no round trip.
	if err := s.mayRead(ctx, p, pl.grantIDs); err != nil {
		return nil, err
	}
	var out []Transaction
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		batchID := uuid.Must(uuid.NewV7()).String()
		prev, replay, err := idempotency.ClaimDigest(ctx, tx, p.Scope(), "BatchRecordTransactions", requestID, sum, batchID)
		if err != nil {
			return err
		}
		if replay {
			if out, err = s.readTransactions(ctx, tx, 0, `t.batch_id = $1`, prev); err != nil {
				return err
			}
			ids := make([]string, len(out))
			for i, t := range out {
				ids[i] = t.GrantID
			}
			return s.mayReadAll(ctx, tx, p, ids)
		}
		out, err = s.record(ctx, tx, pl, batchID, requestID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording batch: %w", err)
	}
	return out, nil
}

// MaxBatch is the most entries one batch records.
const MaxBatch = 1000

// mayRead checks that the caller may read every one of the grants.
func (s *Store) mayRead(ctx context.Context, p auth.Principal, ids []string) error {
	return s.mayReadAll(ctx, s.pool, p, ids)
}

// mayReadAll checks, through q, that the caller may read every one of the grants.
func (s *Store) mayReadAll(ctx context.Context, q postgres.Querier, p auth.Principal, ids []string) error {
	b := &pgx.Batch{}
	gs := s.queueGrants(b, ids)
	if b.Len() > 0 {
		if err := q.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if g := gs[id]; g == nil || !canRead(p, g) {
			return notFound(id)
		}
	}
	return nil
}

// gather queues the reads of a plan: the grants with their balance rows
// locked, what reversals cancel, the milestones named, and the FX table's
// head, against which the cached rates are checked.
func (s *Store) gather(b *pgx.Batch, pl *plan) {
	// Fresh for every attempt: a retried transaction reads again.
	pl.grants, pl.bals = map[string]*Grant{}, map[string]*balance{}
	pl.originals, pl.milestoneRoadmap = map[string]Transaction{}, map[string]string{}
	// Driven by the ids (a nested loop over the primary keys): a filter
	// "g.id = ANY ($1)" let the planner scan every grant for each batch
	// once a bulk import had made the tables large within its transaction.
	b.Queue(`SELECT `+grantColumns+`, b.committed, b.disbursed, b.received, b.spent, b.allocated
		FROM unnest($1::uuid[]) AS k(id) CROSS JOIN LATERAL (SELECT * FROM grants WHERE grants.id = k.id) g
		JOIN roadmaps r ON r.id = g.roadmap_id
		CROSS JOIN LATERAL (SELECT * FROM grant_balances WHERE grant_balances.grant_id = g.id) b
		ORDER BY g.id FOR UPDATE OF b`, pl.grantIDs).Query(func(rows pgx.Rows) error {
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
	queueOriginals(b, pl)
	roadmap.QueueMilestoneRoadmaps(b, pl.milestoneIDs, pl.milestoneRoadmap)
	b.Queue(`SELECT coalesce(max(seq), 0) FROM fx_rates`).QueryRow(func(r pgx.Row) error { return r.Scan(&pl.fxSeq) })
}

// queueOriginals queues the read of the entries a plan's reversals cancel,
// among the plan's grants' entries only. Whether one is reversed already is
// the unique index on reverses_id's to say, for both write paths
// (writeError).
func queueOriginals(b *pgx.Batch, pl *plan) {
	if len(pl.reversed) == 0 {
		return
	}
	b.Queue(`SELECT `+txColumns+txFrom+` WHERE t.id = ANY ($1::uuid[]) AND t.grant_id = ANY ($2::uuid[])`,
		pl.reversed, pl.grantIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var t Transaction
			if err := scanTx(rows, &t); err != nil {
				return err
			}
			pl.originals[t.ID] = t
		}
		return rows.Err()
	})
}

// apply checks a batch's entries in order against the grants' running
// balances, read under their row locks, and queues the writes: the entries,
// the balances and the audit events.
func (s *Store) apply(ctx context.Context, pl *plan, ids []string, batchID, requestID string) ([]Transaction, *pgx.Batch, error) {
	out, err := s.prepare(pl, ids)
	if err != nil {
		return nil, nil, err
	}
	for i, t := range out {
		g := pl.grants[t.GrantID]
		if err := pl.bals[g.ID].take(t, g); err != nil {
			if pl.at != nil {
				err = fmt.Errorf("%s: %w", pl.at(pl.entries[i].item), err)
			}
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
		events := make([]audit.Entry, 0, len(pl.grantIDs))
		for _, id := range pl.grantIDs {
			g := pl.grants[id]
			events = append(events, audit.Entry{EntityType: "transaction_batch", EntityID: batchID,
				Change:    batchChange{BatchID: batchID, GrantID: id, Transactions: perGrant[id]},
				RequestID: requestID, SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}})
		}
		// In one statement: a batch across a thousand grants writes a
		// thousand events.
		if err := queueAudit(ctx, b, events); err != nil {
			return nil, nil, err
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
func (s *Store) record(ctx context.Context, tx pgx.Tx, pl *plan, batchID, requestID string) ([]Transaction, error) {
	ids := make([]string, len(pl.entries))
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
