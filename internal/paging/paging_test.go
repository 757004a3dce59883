package paging

import (
	"errors"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

func TestStartAndNextRoundTrip(t *testing.T) {
	t.Parallel()
	ids := []string{uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()}
	page, next := Next(ids, 2, func(s string) string { return s })
	if len(page) != 2 || next == "" {
		t.Fatalf("page %v next %q", page, next)
	}
	after, n, err := Start(next, 0, 50)
	if err != nil || after != ids[1] || n != 50 {
		t.Fatalf("Start(next) = %q %d %v, want %q 50", after, n, err, ids[1])
	}
	if _, last := Next(ids[2:], 2, func(s string) string { return s }); last != "" {
		t.Fatalf("last page has token %q", last)
	}
	if after, n, err := Start("", 7, 50); err != nil || after != uuid.Nil.String() || n != 7 {
		t.Fatalf("Start(\"\") = %q %d %v", after, n, err)
	}
}

func TestStartAfterCustomKey(t *testing.T) {
	t.Parallel()
	parse := func(key string) (int64, bool) {
		if key == "" {
			return 0, true
		}
		n, err := strconv.ParseInt(key, 10, 64)
		return n, err == nil && n > 0
	}
	after, _, err := StartAfter(Token("42"), 0, 100, parse)
	if err != nil || after != 42 {
		t.Fatalf("got %d %v, want 42", after, err)
	}
	tests := []struct{ name, token string }{
		{"not base64", "!!"},
		{"key refused", Token("-3")},
		{"key of another list", Token(uuid.NewString())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := StartAfter(tc.token, 0, 100, parse)
			var inv *apperr.InvalidError
			if !errors.As(err, &inv) || inv.Violations[0].Field != "pageToken" {
				t.Fatalf("got %v, want INVALID_ARGUMENT naming pageToken", err)
			}
		})
	}
}
