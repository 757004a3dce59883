package paging

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// A composite key survives the token, whatever its text holds, and a token
// that is not one is refused on pageToken.
func TestKeyTokens(t *testing.T) {
	t.Parallel()
	items := [][]string{{"EUR", "USD", "2024-01-01"}, {"a/b", `"q"`, ""}, {"GBP", "USD", "2024-01-02"}}
	page, token := NextKey(items, 2, func(k []string) []string { return k })
	if len(page) != 2 || token == "" {
		t.Fatalf("page %v, token %q", page, token)
	}
	after, n, err := StartKey(token, 0, 50, 3)
	if err != nil || n != 50 || fmt.Sprint(after) != fmt.Sprint(items[1]) {
		t.Fatalf("after %q, size %d, %v", after, n, err)
	}
	if _, last := NextKey(items, 3, func(k []string) []string { return k }); last != "" {
		t.Fatalf("the last page has a next token %q", last)
	}
	if after, n, err := StartKey("", 7, 50, 3); after != nil || n != 7 || err != nil {
		t.Fatalf("first page: %q, %d, %v", after, n, err)
	}
	_, wrongParts := NextKey(items, 1, func(k []string) []string { return k[:2] })
	for _, bad := range []string{"not base64!", "bm90IGpzb24", wrongParts} {
		var inv *apperr.InvalidError
		if _, _, err := StartKey(bad, 0, 50, 3); !errors.As(err, &inv) || inv.Violations[0].Field != "pageToken" {
			t.Errorf("token %q: %v", bad, err)
		}
	}
}

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
