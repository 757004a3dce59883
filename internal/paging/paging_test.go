package paging

import (
	"errors"
	"fmt"
	"testing"

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
