// Package paging implements the keyset page tokens of lists ordered by UUIDv7
// id: the token is the last id of the previous page, opaque to clients.
package paging

import (
	"encoding/base64"

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
