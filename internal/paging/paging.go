// Package paging implements the keyset page tokens of every list: a token is
// the sort key of the last item of the previous page, opaque to clients.
// Lists ordered by UUIDv7 id use Start; lists ordered by another key (a
// sequence number) use StartAfter with a parser of their key, and lists
// ordered by several columns StartKey and NextKey, built on the same two.
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
	return StartAfter(token, size, defaultSize, func(key string) (string, bool) {
		if key == "" {
			return uuid.Nil.String(), true
		}
		return key, uuid.Validate(key) == nil
	})
}

// StartAfter decodes a page token into the key to list after, checked and
// converted by parse (an empty token gives parse("")), and applies the default
// page size to size ≤ 0. A token that does not decode, or whose key parse
// refuses, is INVALID_ARGUMENT naming pageToken.
func StartAfter[K any](token string, size, defaultSize int, parse func(key string) (K, bool)) (after K, n int, err error) {
	if size <= 0 {
		size = defaultSize
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		var ok bool
		if after, ok = parse(string(b)); ok {
			return after, size, nil
		}
	}
	var zero K
	return zero, 0, apperr.Invalid("pageToken", "malformed page token")
}

// Token is the page token of the given sort key.
func Token(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// Next trims a result fetched with LIMIT size+1 to size and returns the token
// of the next page, empty on the last page. key gives an item's sort key.
func Next[T any](items []T, size int, key func(T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	items = items[:size]
	return items, Token(key(items[size-1]))
}

// StartKey decodes a page token of a list ordered by a composite key of
// parts columns, given as text, into the key to list after (nil on the first
// page), and applies the default page size to size ≤ 0.
func StartKey(token string, size, defaultSize, parts int) (after []string, n int, err error) {
	return StartAfter(token, size, defaultSize, func(key string) ([]string, bool) {
		if key == "" {
			return nil, true
		}
		var k []string
		return k, json.Unmarshal([]byte(key), &k) == nil && len(k) == parts
	})
}

// NextKey is Next for a list ordered by a composite key.
func NextKey[T any](items []T, size int, key func(T) []string) ([]T, string) {
	return Next(items, size, func(t T) string {
		b, _ := json.Marshal(key(t)) // a []string always marshals
		return string(b)
	})
}
