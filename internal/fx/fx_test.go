package fx_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Rates list by pair and date, page after page, each exactly once.
func TestListPages(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	coord := auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "t", Role: auth.Coordinator})
	in := []fx.RateInput{
		{Currency: "GBP", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.80"},
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-06-01", Rate: "0.92"},
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.90"},
		{Currency: "EUR", QuoteCurrency: "GBP", Date: "2024-03-01", Rate: "1.17"},
		{Currency: "JPY", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "150"},
	}
	if _, err := s.Create(coord, in); err != nil {
		t.Fatal(err)
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		rates, next, err := s.List(coord, "", "", 2, token)
		if err != nil {
			t.Fatal(err)
		}
		if pages > 5 || len(rates) > 2 {
			t.Fatalf("page %d holds %d rates", pages, len(rates))
		}
		for _, r := range rates {
			got = append(got, r.Currency+"/"+r.QuoteCurrency+"/"+r.Date.Format("2006-01-02")+"="+r.Rate.String())
		}
		if token = next; token == "" {
			break
		}
	}
	want := "[EUR/GBP/2024-03-01=1.17 EUR/USD/2024-01-01=0.9 EUR/USD/2024-06-01=0.92 GBP/USD/2024-01-01=0.8 JPY/USD/2024-01-01=150]"
	if s := fmt.Sprint(got); s != want {
		t.Fatalf("listed %s\nwant   %s", s, want)
	}
	if eur, _, err := s.List(coord, "EUR", "USD", 0, ""); err != nil || len(eur) != 2 {
		t.Fatalf("EUR/USD: %v, %v", eur, err)
	}
	if _, _, err := s.List(coord, "", "", 2, "not-a-token"); err == nil {
		t.Fatal("a malformed page token was accepted")
	}
}
