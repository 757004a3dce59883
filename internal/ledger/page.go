package ledger

import (
	"encoding/base64"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// page decodes a keyset page token (the last id of the previous page).
func page(token string, size int) (string, int, error) {
	if size <= 0 {
		size = 50
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

func nextPage[T any](items []T, size int, id func(T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	items = items[:size]
	return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[size-1])))
}
