// Package paging implements keyset page tokens: the token holds the key of
// the last item of the previous page, opaque to clients. Lists ordered by
// UUIDv7 id use Start and Next; lists ordered by a composite key (several
// columns) use StartKey and NextKey.
package paging

import (
	"encoding/base64"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// Start decodes a page token into the id to list after, and applies the
// default page size to size ≤ 0.
func Start(token string, size, defaultSize int) (after string, n int, err error) {
	if size <= 0 {
		size = defaultSize
	}
	if token == "" {
		return uuid.Nil.String(), size, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || uuid.Validate(string(b)) != nil {
		return "", 0, apperr.Invalid("pageToken", "malformed page token")
	}
	return string(b), size, nil
}

// Next trims a result fetched with LIMIT size+1 to size and returns the token
// of the next page, empty on the last page.
func Next[T any](items []T, size int, id func(T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	items = items[:size]
	return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[size-1])))
}

// StartKey decodes a page token of a list ordered by a composite key of
// parts columns, given as text, into the key to list after (nil on the first
// page), and applies the default page size to size ≤ 0.
func StartKey(token string, size, defaultSize, parts int) (after []string, n int, err error) {
	if size <= 0 {
		size = defaultSize
	}
	if token == "" {
		return nil, size, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(b, &after)
	}
	if err != nil || len(after) != parts {
		return nil, 0, apperr.Invalid("pageToken", "malformed page token")
	}
	return after, size, nil
}

// NextKey is Next for a list ordered by a composite key.
func NextKey[T any](items []T, size int, key func(T) []string) ([]T, string) {
	return Next(items, size, func(t T) string {
		b, _ := json.Marshal(key(t)) // a []string always marshals
		return string(b)
	})
}
