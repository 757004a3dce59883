package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// committer commits concurrent single-entry writes in groups: the writes
// that arrive while a group is in flight go together in the next one, as one
// pipelined batch of recordSQL statements that PostgreSQL runs as one implicit
// transaction. A group costs one round trip and one commit (one WAL flush)
// however many writes it holds, which is what bounds a small server's write
// rate; a write alone costs what it did ungrouped, so nobody waits for
// company. Each write still answers only after its own commit.
//
// recordSQL refuses without raising (refused writes change nothing), so
// one write's refusal never undoes the others. Anything that does raise (a
// request id claimed concurrently in another transaction, a lost connection)
// fails the whole group, and each of its writes is then tried again alone.
//
// Writes of a group lock their grants' balance rows in grant id order, as
// batches do, so concurrent groups do not deadlock over grants. (Two groups
// carrying the same request id at once can still deadlock over its claim;
// PostgreSQL breaks that after deadlock_timeout, and the failed group's
// writes are retried alone.)
type committer struct {
	pool *pgxpool.Pool

	mu       sync.Mutex
	queue    []*pending
	flushing int // groups in flight, at most maxFlushers
}

const (
	// maxFlushers groups may be in flight at once, so one group's execution
	// overlaps the previous one's WAL flush.
	maxFlushers = 2
	maxGroup    = 64
	// flushTimeout bounds a group, which serves several requests and so
	// cannot follow any one request's context.
	flushTimeout = 30 * time.Second
)

// pending is one write waiting for its group.
type pending struct {
	grantID  string
	args     []any
	row      recordRow
	err      error
	done     chan struct{}
	lead     chan struct{} // told to flush the next group (buffered, sent once)
	promoted bool          // lead was sent; guarded by committer.mu
}

// recordRow is what recordSQL returns.
type recordRow struct {
	outcome, detail string
	priorID         *string
	priorSum        []byte
	recordedAt      *time.Time
}

// write runs one recordSQL statement in a group and returns its row. An
// error means the group failed: nothing of it was written.
func (c *committer) write(grantID string, args []any) (recordRow, error) {
	p := &pending{grantID: grantID, args: args, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	leads := c.flushing < maxFlushers
	if leads {
		c.flushing++
	}
	c.mu.Unlock()
	if leads {
		c.flushNext()
	}
	for {
		select {
		case <-p.lead:
			c.flushNext()
		case <-p.done:
			// Told to lead after another flusher took this write: lead anyway,
			// or the flusher slot would be lost.
			select {
			case <-p.lead:
				c.flushNext()
			default:
			}
			return p.row, p.err
		}
	}
}

// flushNext commits the queued writes (up to maxGroup) as one group, then
// hands the flusher slot to the first write still queued, or gives it up.
func (c *committer) flushNext() {
	c.mu.Lock()
	n := min(len(c.queue), maxGroup)
	group := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	c.mu.Unlock()

	if len(group) > 0 {
		c.flush(group)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.queue {
		if !p.promoted {
			// Each write is told to lead at most once, so this never blocks.
			p.promoted = true
			p.lead <- struct{}{}
			return
		}
	}
	c.flushing--
}

func (c *committer) flush(group []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	slices.SortStableFunc(group, func(a, b *pending) int { return cmp.Compare(a.grantID, b.grantID) })
	b := &pgx.Batch{}
	for _, p := range group {
		b.Queue(recordSQL, p.args...).QueryRow(func(r pgx.Row) error {
			return r.Scan(&p.row.outcome, &p.row.priorID, &p.row.priorSum, &p.row.detail, &p.row.recordedAt)
		})
	}
	// One batch is one implicit transaction: all of it commits, or none.
	err := c.pool.SendBatch(ctx, b).Close()
	for _, p := range group {
		if err != nil {
			p.row, p.err = recordRow{}, err
		}
		close(p.done)
	}
}

// recordSQL appends one entry in one statement, and never raises for a
// refusal, so that several can share a transaction and a refused one writes
// nothing while the others stand. Its one row's outcome is
//
//	RECORDED  written, at recorded_at;
//	REPLAY    the request id was used before (prior entity and payload digest);
//	REFUSED   the balances would break an invariant; detail is the balance row
//	          as the statement saw it: pledged committed disbursed allocated;
//	FX_STALE  the caller's FX cache is behind the table.
//
// The conditional UPDATE is both the grant's row lock and the check: under
// READ COMMITTED a concurrent writer's update is waited for and the
// condition re-evaluated on the row it left. The entry, its claim and its
// audit event are inserted only from the updated row. A request id claimed
// concurrently by another transaction, or an entry reversed already (the
// unique index on reverses_id, which batches meet the same way), raises a
// unique violation instead: the group fails, and the write is retried alone
// and replays or is refused.
//
// $1 method, $2 request id, $3 payload digest, $4 FX cache seq (NULL when no
// table rate is used), $5-$22 the entry, $23-$32 the audit event's columns
// in audit.Values order, $33 the caller's request-id scope.
var recordSQL = `WITH fx AS (
	SELECT $4::bigint IS NULL OR $4::bigint = (SELECT coalesce(max(seq), 0) FROM fx_rates) AS current
), prior AS (
	SELECT entity_id, payload_sha256 FROM idempotency_keys WHERE scope = $33 AND method = $1 AND request_id = $2
), moved AS (
	UPDATE grant_balances SET
		pledged = pledged + CASE $8::text WHEN 'PLEDGE' THEN $11::numeric ELSE 0 END,
		committed = committed + CASE $8::text WHEN 'COMMITMENT' THEN $11::numeric ELSE 0 END,
		disbursed = disbursed + CASE $8::text WHEN 'DISBURSEMENT' THEN $11::numeric ELSE 0 END,
		received = received + CASE $8::text WHEN 'RECEIPT' THEN $11::numeric ELSE 0 END,
		spent = spent + CASE $8::text WHEN 'EXPENDITURE' THEN $11::numeric ELSE 0 END,
		pledged_reporting = pledged_reporting + CASE $8::text WHEN 'PLEDGE' THEN $12::numeric ELSE 0 END,
		committed_reporting = committed_reporting + CASE $8::text WHEN 'COMMITMENT' THEN $12::numeric ELSE 0 END,
		disbursed_reporting = disbursed_reporting + CASE $8::text WHEN 'DISBURSEMENT' THEN $12::numeric ELSE 0 END,
		received_reporting = received_reporting + CASE $8::text WHEN 'RECEIPT' THEN $12::numeric ELSE 0 END,
		spent_reporting = spent_reporting + CASE $8::text WHEN 'EXPENDITURE' THEN $12::numeric ELSE 0 END
	WHERE grant_id = $6::uuid
		AND (SELECT current FROM fx) AND NOT EXISTS (SELECT FROM prior)
		AND ` + invariantsSQL(movedColumn) + `
	RETURNING grant_id
), claim AS (
	INSERT INTO idempotency_keys (scope, method, request_id, payload_sha256, entity_id)
	SELECT $33, $1, $2, $3, $5::text FROM moved
), entry AS (
	INSERT INTO transactions (id, grant_id, type, bucket, currency, amount, agreement_amount, reporting_amount,
		agreement_rate, reporting_rate, fx_rate, value_date, reference, milestone_id, reverses_id, note,
		recorded_by, recorded_role)
	SELECT $5::uuid, $6::uuid, $7, $8, $9, $10::numeric, $11::numeric, $12::numeric, $13::numeric, $14::numeric,
		$15::numeric, $16::date, $17, $18::uuid, $19::uuid, $20, $21, $22 FROM moved
), event AS (
	INSERT INTO audit_events (actor_token_id, actor_name, actor_role, actor_org_id, method,
		entity_type, entity_id, request_id, subject_orgs, change)
	SELECT $23, $24, $25, $26, $27, $28, $29, $30, $31::text[], $32 FROM moved
)
SELECT CASE
		WHEN NOT (SELECT current FROM fx) THEN 'FX_STALE'
		WHEN EXISTS (SELECT FROM prior) THEN 'REPLAY'
		WHEN EXISTS (SELECT FROM moved) THEN 'RECORDED'
		ELSE 'REFUSED' END,
	(SELECT entity_id FROM prior), (SELECT payload_sha256 FROM prior),
	coalesce((SELECT concat_ws(' ', pledged, committed, disbursed, allocated) FROM grant_balances
		WHERE grant_id = $6::uuid AND NOT EXISTS (SELECT FROM moved)), ''),
	now()`

// movedColumn is a balance column after the entry of recordSQL moves it
// ($8 its bucket, $11 its amount in agreement currency).
func movedColumn(column string) string {
	if bucket, ok := columnBucket[column]; ok {
		return fmt.Sprintf("%s + CASE $8::text WHEN '%s' THEN $11::numeric ELSE 0 END", column, bucket)
	}
	return column // allocated, or the constant 0: entries do not move them
}
