// Package idempotency implements AIP-155 request ids: the first request with
// an id does the work; a retry with the same id and payload gets the original
// result and writes nothing; the same id with another payload is refused.
//
// Request ids are scoped to the caller (auth.Principal.Scope: its
// organisation, or its token for roles bound to none), as payment APIs scope
// idempotency keys to the account: two donors may use the same id, and one
// learns nothing of the other's ids. Callers check authorisation before they
// claim, so a replay never answers someone who may not make the request.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// Claim reserves (operation, requestID) for entityID inside tx, which must
// also make the change. It returns replay=true and the entity id of the first
// request when the id was used before with the same payload; then the caller
// returns that entity and lets tx roll back or commit with nothing else in it.
//
// Two concurrent requests with the same id serialise on the key's primary
// key: the second waits for the first to commit and then replays it.
func Claim(ctx context.Context, tx pgx.Tx, scope, operation, requestID string, payload any, entityID string) (string, bool, error) {
	sum, err := Digest(payload)
	if err != nil {
		return "", false, err
	}
	return ClaimDigest(ctx, tx, scope, operation, requestID, sum, entityID)
}

// ClaimDigest is Claim for a payload the caller digests itself (SHA-256 of
// an unambiguous encoding): for payloads too large to marshal cheaply, such
// as a batch of entries.
func ClaimDigest(ctx context.Context, tx pgx.Tx, scope, operation, requestID string, sum []byte, entityID string) (string, bool, error) {
	tag, err := tx.Exec(ctx, claimSQL, scope, operation, requestID, sum, entityID)
	if err != nil {
		return "", false, fmt.Errorf("claiming request id: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return entityID, false, nil
	}
	return earlier(ctx, tx, scope, operation, requestID, sum)
}

const claimSQL = `INSERT INTO idempotency_keys (scope, method, request_id, payload_sha256, entity_id)
	VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`

// Replay decides on a request whose id was already claimed, given the claim
// found (its payload digest and entity id): the entity to return, or
// ErrAlreadyExists when the id came with another payload.
func Replay(requestID string, sum, prevSum []byte, prevID string) (string, error) {
	if string(prevSum) != string(sum) {
		return "", fmt.Errorf("requestId %q was already used for a different request: %w", requestID, apperr.ErrAlreadyExists)
	}
	return prevID, nil
}

// Digest is the SHA-256 of a request's payload (its JSON), which a retry must
// repeat exactly.
func Digest(payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("hashing request: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

func earlier(ctx context.Context, q pgx.Tx, scope, operation, requestID string, sum []byte) (string, bool, error) {
	var prevSum []byte
	var prevID string
	err := q.QueryRow(ctx, `SELECT payload_sha256, entity_id FROM idempotency_keys
		WHERE scope = $1 AND method = $2 AND request_id = $3`, scope, operation, requestID).Scan(&prevSum, &prevID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("request id %q: concurrent use, retry: %w", requestID, apperr.ErrFailedPrecondition)
	}
	if err != nil {
		return "", false, fmt.Errorf("claiming request id: %w", err)
	}
	prevID, err = Replay(requestID, sum, prevSum, prevID)
	return prevID, err == nil, err
}

// SaveAnswer keeps, in tx, the answer of a request whose resource changes
// later, so that LoadAnswer can give a retry the original answer.
func SaveAnswer(ctx context.Context, tx pgx.Tx, scope, operation, requestID string, answer any) error {
	b, err := json.Marshal(answer)
	if err != nil {
		return fmt.Errorf("keeping the answer: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_answers (scope, method, request_id, answer) VALUES ($1, $2, $3, $4)`,
		scope, operation, requestID, b)
	return err
}

// ClaimAnswer claims requestID for a write whose answer SaveAnswer keeps:
// on a retry it reads the first answer into out and reports the replay, so
// the caller returns out and writes nothing.
func ClaimAnswer(ctx context.Context, tx pgx.Tx, scope, operation, requestID string, payload any, entityID string, out any) (bool, error) {
	_, replay, err := Claim(ctx, tx, scope, operation, requestID, payload, entityID)
	if err != nil || !replay {
		return false, err
	}
	return true, LoadAnswer(ctx, tx, scope, operation, requestID, out)
}

// LoadAnswer reads the answer SaveAnswer kept into out.
func LoadAnswer(ctx context.Context, tx pgx.Tx, scope, operation, requestID string, out any) error {
	var b []byte
	if err := tx.QueryRow(ctx, `SELECT answer FROM idempotency_answers WHERE scope = $1 AND method = $2 AND request_id = $3`,
		scope, operation, requestID).Scan(&b); err != nil {
		return fmt.Errorf("reading the original answer: %w", err)
	}
	return json.Unmarshal(b, out)
}
