// Package audit is the tamper-evident trail: one event per accepted mutation,
// written by Record in the same database transaction as the change, then
// sealed into a SHA-256 hash chain.
//
// # Why events are sealed after commit
//
// Chaining at write time would make every writer wait for the previous
// writer's hash, i.e. hold a chain-wide lock across its commit, which caps
// throughput near one fsync at a time. Instead, writers only append an
// unsealed row (no chain position, no hash). A Sealer, running in every
// tranche server but mutually excluded through a PostgreSQL advisory lock,
// repeatedly takes the committed unsealed events in id order, gives them the
// next gap-free sequence numbers and hashes, and stores those in one
// statement. An event committed late simply gets a later sequence number; the
// chain stays total and gap-free.
//
// Bound: while a tranche server runs, an event stays unsealed for at most one
// sealing interval (default 200 ms) plus the time to seal the backlog ahead of
// it (about 5 000 events per batch). `tranche verify`, the verify endpoint
// and audit packs seal everything pending before they read the chain.
//
// # Canonical encoding
//
// The hashed bytes of an event are the RFC 8785 (JCS) JSON object
//
//	{"v":"tranche-audit/1","seq":"<n>","prevHash":"<hex>","id":"<n>",
//	 "occurredAt":"<RFC 3339 UTC, 6 fractional digits>","actorTokenId":…,
//	 "actorName":…,"actorRole":…,"actorOrgId":…,"method":…,"entityType":…,
//	 "entityId":…,"requestId":…,"subjectOrgs":[…],"change":<object>}
//
// with every number written as a decimal string, so no float formatting is
// involved, and keys sorted as RFC 8785 requires. hash = SHA-256(prev_hash ||
// canonical), where prev_hash is the 32 raw bytes of the previous event's hash
// (32 zero bytes before the first event). The sequence number and the previous
// hash are inside the hashed bytes, so moving or dropping an event breaks the
// chain.
//
// # Protection in the database
//
// The application role has no UPDATE, DELETE or TRUNCATE on audit_events;
// triggers refuse them for every role, except the one-time filling of an
// unsealed event's chain fields, which the application performs only through
// the SECURITY DEFINER function audit_seal. A superuser can still bypass
// triggers; verification then reports the first bad sequence number, and a
// head recorded outside the database (every audit pack carries one) exposes a
// rewritten tail.
//
// # Signed heads
//
// Whoever can bypass the triggers can also re-hash the chain after an edit,
// and the chain verifies again; only a head kept outside the database shows
// the rewrite. A Head is (seq, hash of the event at seq), signed with the
// server's ed25519 key when it has one (Store.SetSigningKey), over the RFC
// 8785 message {"hash":"<hex>","seq":"<n>","v":"tranche-audit-head/1"}: a
// domain label, so the signature cannot be replayed as anything else, and no
// delimiter-joined fields. Store.VerifySince recomputes the chain and checks
// that it still has the head's hash at the head's sequence and verifies to
// its end. The signature proves who issued the head, not that the chain was
// sound then: a head is worth what the verification done when it was taken
// was worth, which is why packs carry the verification result beside it.
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/auth"
)

// Entry is what a domain records about one accepted mutation.
type Entry struct {
	EntityType string
	EntityID   string
	// Change is marshalled to JSON and canonicalised (RFC 8785). Decimals must
	// marshal as strings (shopspring/decimal does).
	Change any
	// SubjectOrgs are the organisations whose records the change concerns; a
	// donor or implementer may read events about its own organisation only.
	SubjectOrgs []string
	// RequestID is the client's idempotency key (AIP-155), when the request
	// had one; otherwise the event carries the transport's x-request-id.
	RequestID string
}

// Call identifies the request a mutation belongs to.
type Call struct {
	Method    string
	RequestID string
}

type callKey struct{}

// WithCall returns ctx carrying the call's method and request id.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) Call {
	c, _ := ctx.Value(callKey{}).(Call)
	return c
}

// Record appends one unsealed event in tx. Call it after the change succeeded,
// inside the same transaction, so an event never exists without its change.
func Record(ctx context.Context, tx pgx.Tx, e Entry) error {
	sql, args, err := insert(ctx, e)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	return nil
}

// Queue adds the event's insert to a batch that the caller sends inside the
// transaction making the change, so the audit trail costs no extra round trip.
func Queue(ctx context.Context, b *pgx.Batch, e Entry) error {
	sql, args, err := insert(ctx, e)
	if err != nil {
		return err
	}
	b.Queue(sql, args...)
	return nil
}

func insert(ctx context.Context, e Entry) (string, []any, error) {
	args, err := Values(ctx, e)
	if err != nil {
		return "", nil, err
	}
	return `INSERT INTO audit_events (actor_token_id, actor_name, actor_role, actor_org_id, method,
		                          entity_type, entity_id, request_id, subject_orgs, change)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args, nil
}

// Values returns an event's columns in the order (actor_token_id, actor_name,
// actor_role, actor_org_id, method, entity_type, entity_id, request_id,
// subject_orgs, change), for a statement that inserts the event itself (the
// single-statement journal write in internal/ledger).
func Values(ctx context.Context, e Entry) ([]any, error) {
	change, err := Canonical(e.Change)
	if err != nil {
		return nil, fmt.Errorf("recording audit event: %w", err)
	}
	p := auth.FromContext(ctx)
	c := callFrom(ctx)
	if e.RequestID != "" {
		c.RequestID = e.RequestID
	}
	subjects := make([]string, 0, len(e.SubjectOrgs))
	for _, s := range e.SubjectOrgs {
		if s != "" {
			subjects = append(subjects, s)
		}
	}
	return []any{p.TokenID, p.Name, string(p.Role), p.OrgID, c.Method,
		e.EntityType, e.EntityID, c.RequestID, subjects, string(change)}, nil
}

// Canonical returns the RFC 8785 JSON of v.
func Canonical(v any) ([]byte, error) {
	if c, ok := v.(Canonicaler); ok {
		return c.CanonicalJSON(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(b)
}
