package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// sealLock is the advisory lock key that makes one sealer run at a time
// across every process sharing the database (audit_seal takes it too).
const sealLock = 7346001

// Event is one stored audit event.
type Event struct {
	ID           int64
	OccurredAt   time.Time
	ActorTokenID string
	ActorName    string
	ActorRole    string
	ActorOrgID   string
	Method       string
	EntityType   string
	EntityID     string
	RequestID    string
	SubjectOrgs  []string
	Change       string // canonical JSON
	Seq          int64  // 0 while unsealed
	PrevHash     []byte
	Hash         []byte
}

const eventColumns = `id, occurred_at, actor_token_id, actor_name, actor_role, actor_org_id, method,
	entity_type, entity_id, request_id, subject_orgs, change,
	coalesce(seq, 0), coalesce(prev_hash, ''::bytea), coalesce(hash, ''::bytea)`

func scanEvent(row pgx.Row, e *Event) error {
	return row.Scan(&e.ID, &e.OccurredAt, &e.ActorTokenID, &e.ActorName, &e.ActorRole, &e.ActorOrgID,
		&e.Method, &e.EntityType, &e.EntityID, &e.RequestID, &e.SubjectOrgs, &e.Change,
		&e.Seq, &e.PrevHash, &e.Hash)
}

// canonicalEvent is the hashed form of e at position seq after prev: the
// RFC 8785 object written directly, keys in their sorted order. The change
// is stored canonical (Record writes it so) and goes in byte for byte, so a
// large change is not parsed again and any edit of its bytes changes the
// hash. A test pins the bytes against the generic canonicaliser.
func canonicalEvent(e *Event, seq int64, prev []byte) ([]byte, error) {
	if !json.Valid([]byte(e.Change)) {
		return nil, fmt.Errorf("event %d: change is not valid JSON", e.ID)
	}
	b := make([]byte, 0, 512+len(e.Change))
	field := func(key, val string) {
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		b = AppendString(b, val)
	}
	b = append(b, `{"actorName":`...)
	b = AppendString(b, e.ActorName)
	field("actorOrgId", e.ActorOrgID)
	field("actorRole", e.ActorRole)
	field("actorTokenId", e.ActorTokenID)
	b = append(b, `,"change":`...)
	b = append(b, e.Change...)
	field("entityId", e.EntityID)
	field("entityType", e.EntityType)
	field("id", strconv.FormatInt(e.ID, 10))
	field("method", e.Method)
	field("occurredAt", e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000Z"))
	field("prevHash", hex.EncodeToString(prev))
	field("requestId", e.RequestID)
	field("seq", strconv.FormatInt(seq, 10))
	b = append(b, `,"subjectOrgs":[`...)
	for i, s := range e.SubjectOrgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	b = append(b, ']')
	field("v", "tranche-audit/1")
	return append(b, '}'), nil
}

// chainHash is SHA-256(prev || canonical event).
func chainHash(e *Event, seq int64, prev []byte) ([]byte, error) {
	c, err := canonicalEvent(e, seq, prev)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(c)
	return h.Sum(nil), nil
}

var zeroHash = make([]byte, sha256.Size)

// Sealer assigns chain positions and hashes to committed events.
type Sealer struct {
	pool      *pgxpool.Pool
	Interval  time.Duration
	BatchSize int
	Log       *slog.Logger
}

// NewSealer returns a sealer with the documented defaults.
func NewSealer(pool *pgxpool.Pool) *Sealer {
	return &Sealer{pool: pool, Interval: 200 * time.Millisecond, BatchSize: 5000, Log: slog.Default()}
}

// Run seals pending events every Interval until ctx ends, then once more so a
// clean shutdown leaves nothing unsealed that it could see.
func (s *Sealer) Run(ctx context.Context) {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := s.SealPending(fctx); err != nil {
				s.Log.Warn("final audit sealing", "err", err)
			}
			cancel()
			return
		case <-t.C:
			// While another server seals, skip the tick rather than hold a
			// pooled connection waiting for its lock.
			if _, err := s.seal(ctx, false); err != nil && ctx.Err() == nil {
				s.Log.Warn("sealing audit events", "err", err)
			}
		}
	}
}

// SealPending seals every committed unsealed event and returns how many it
// sealed. When another process is sealing, it waits for it, so after it
// returns every event committed before the call is sealed.
func (s *Sealer) SealPending(ctx context.Context) (int, error) { return s.seal(ctx, true) }

// seal seals batches until none is full; without wait it gives up at once
// when another sealer holds the lock.
func (s *Sealer) seal(ctx context.Context, wait bool) (int, error) {
	total := 0
	for {
		n, err := s.sealBatch(ctx, wait)
		total += n
		if err != nil || n < s.BatchSize {
			return total, err
		}
	}
}

func (s *Sealer) sealBatch(ctx context.Context, wait bool) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("sealing: %w", err)
	}
	defer tx.Rollback(ctx)
	if wait {
		_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, sealLock)
	} else {
		var locked bool
		if err = tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sealLock).Scan(&locked); err == nil && !locked {
			return 0, nil // another server is sealing
		}
	}
	if err != nil {
		return 0, fmt.Errorf("sealing: %w", err)
	}
	var headSeq int64
	var headHash []byte
	err = tx.QueryRow(ctx, `SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&headSeq, &headHash)
	if err == pgx.ErrNoRows {
		headSeq, headHash, err = 0, zeroHash, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sealing: reading head: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE seq IS NULL ORDER BY id LIMIT $1`, s.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("sealing: %w", err)
	}
	var ids, seqs []int64
	var prevs, hashes [][]byte
	prev := headHash
	for rows.Next() {
		var e Event
		if err := scanEvent(rows, &e); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sealing: %w", err)
		}
		seq := headSeq + int64(len(ids)) + 1
		h, err := chainHash(&e, seq, prev)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("sealing: %w", err)
		}
		ids, seqs, prevs, hashes = append(ids, e.ID), append(seqs, seq), append(prevs, prev), append(hashes, h)
		prev = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sealing: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, `SELECT audit_seal($1, $2, $3, $4)`, ids, seqs, prevs, hashes); err != nil {
		return 0, fmt.Errorf("sealing: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("sealing: %w", err)
	}
	return len(ids), nil
}

// Problems verification can report.
const (
	HashMismatch = "HASH_MISMATCH" // the event's content no longer hashes to its stored hash
	BrokenLink   = "BROKEN_LINK"   // prev_hash is not the hash of the event before it
	Gap          = "GAP"           // a sequence number is missing
	Reordered    = "REORDERED"     // events sit at each other's positions
)

// Result is the outcome of verifying the chain.
type Result struct {
	Verified      bool
	EventsChecked int64
	HeadSeq       int64
	HeadHash      []byte
	Unsealed      int64
	FirstBadSeq   int64
	Problem       string
	Detail        string
	// MarkHash is the recomputed hash at the sequence verify was asked to
	// mark (VerifySince's head), nil when the chain does not reach it
	// soundly.
	MarkHash []byte
}

// verify recomputes the chain from the first event, streaming, and reports
// the first bad sequence number; the recomputed hash at sequence mark goes in
// MarkHash.
func verify(ctx context.Context, pool *pgxpool.Pool, mark int64) (Result, error) {
	var r Result
	// One repeatable-read snapshot, so the count and the chain agree.
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE seq IS NULL`).Scan(&r.Unsealed); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE seq IS NOT NULL ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		r, err = verifyRows(rows, r, mark)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("verifying audit chain: %w", err)
	}
	return r, nil
}

// verifyRows walks events in seq order. It looks one event ahead so that two
// swapped events are reported as REORDERED rather than a broken link.
func verifyRows(rows pgx.Rows, r Result, mark int64) (Result, error) {
	prev := zeroHash
	var cur, next *Event
	var scanErr error
	read := func() *Event {
		if scanErr != nil || !rows.Next() {
			return nil
		}
		e := new(Event)
		if scanErr = scanEvent(rows, e); scanErr != nil {
			return nil
		}
		return e
	}
	cur = read()
	if cur != nil {
		next = read()
	}
	for expected := int64(1); cur != nil; expected++ {
		fail := func(problem, format string, args ...any) (Result, error) {
			r.Verified, r.FirstBadSeq, r.Problem, r.Detail = false, expected, problem, fmt.Sprintf(format, args...)
			return r, nil
		}
		if cur.Seq != expected {
			return fail(Gap, "expected sequence %d, found %d", expected, cur.Seq)
		}
		if !bytes.Equal(cur.PrevHash, prev) {
			if next != nil && bytes.Equal(cur.PrevHash, next.Hash) {
				return fail(Reordered, "event %d (id %d) links to the event stored after it (seq %d)", cur.Seq, cur.ID, next.Seq)
			}
			return fail(BrokenLink, "prev_hash of sequence %d is %x, the chain has %x", cur.Seq, cur.PrevHash, prev)
		}
		h, err := chainHash(cur, cur.Seq, prev)
		if err != nil {
			return fail(HashMismatch, "%v", err)
		}
		if !bytes.Equal(h, cur.Hash) {
			return fail(HashMismatch, "event id %d at sequence %d hashes to %x, stored %x", cur.ID, cur.Seq, h, cur.Hash)
		}
		r.EventsChecked++
		r.HeadSeq, r.HeadHash = cur.Seq, cur.Hash
		if cur.Seq == mark {
			r.MarkHash = h
		}
		prev = cur.Hash
		cur, next = next, nil
		if cur != nil {
			next = read()
		}
	}
	if scanErr != nil {
		return r, scanErr
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, err
	}
	r.Verified = true
	return r, nil
}

// HexHash formats a hash for display.
func HexHash(b []byte) string { return hex.EncodeToString(b) }
