package fx_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func supersede(rate, reason string) fx.SupersedeInput {
	return fx.SupersedeInput{Currency: "EUR", QuoteCurrency: "USD", Date: ymd("2024-01-01"), Rate: decimal.RequireFromString(rate), Reason: reason}
}

// After a correction, every way of reading the table (Load, a cache filled
// before it and refreshed, a cache filled after it) gives the correction,
// while List shows every revision; a new rate request repeating the
// correction is skipped and one repeating the superseded value is refused.
func TestCorrectionIsTheEffectiveRate(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	ctx := coordinator()
	if _, err := s.Create(ctx, []fx.RateInput{
		rateIn("EUR", "USD", "2024-01-01", "0.90"),
		rateIn("EUR", "USD", "2024-01-02", "0.91"),
	}); err != nil {
		t.Fatal(err)
	}
	var before fx.Cache
	if _, err := before.Current(ctx, db.App); err != nil {
		t.Fatal(err)
	}
	for i, r := range []string{"0.92", "0.93"} {
		if _, err := s.Supersede(ctx, supersede(r, "revised"), fmt.Sprint("c-", i)); err != nil {
			t.Fatal(err)
		}
	}
	jan1, jan2 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	loaded, err := fx.Load(ctx, db.App, []string{"EUR", "USD"}, jan2)
	if err != nil {
		t.Fatal(err)
	}
	refreshed, err := before.Refresh(ctx, db.App)
	if err != nil {
		t.Fatal(err)
	}
	var after fx.Cache
	fresh, err := after.Current(ctx, db.App)
	if err != nil {
		t.Fatal(err)
	}
	for name, table := range map[string]*fx.Table{"Load": loaded, "refreshed cache": refreshed.Table, "new cache": fresh.Table} {
		for d, want := range map[time.Time]string{jan1: "0.93", jan2: "0.91"} {
			if got, err := table.Rate("EUR", "USD", "", d); err != nil || got.String() != want {
				t.Errorf("%s on %s: %s, %v; want %s", name, d.Format(time.DateOnly), got, err, want)
			}
		}
	}
	var listed []string
	token := ""
	for range 10 {
		page, next, err := s.List(ctx, "EUR", "USD", 1, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			listed = append(listed, fmt.Sprintf("%s/%d=%s superseded=%v", r.Date.Format(time.DateOnly), r.Revision, r.Rate, r.Superseded))
		}
		if token = next; token == "" {
			break
		}
	}
	want := "[2024-01-01/0=0.9 superseded=true 2024-01-01/1=0.92 superseded=true 2024-01-01/2=0.93 superseded=false 2024-01-02/0=0.91 superseded=false]"
	if fmt.Sprint(listed) != want {
		t.Fatalf("listed %v\nwant   %s", listed, want)
	}
	if n, err := s.Create(ctx, []fx.RateInput{rateIn("EUR", "USD", "2024-01-01", "0.93")}); err != nil || n != 0 {
		t.Fatalf("resending the correction: %d, %v", n, err)
	}
	if _, err := s.Create(ctx, []fx.RateInput{rateIn("EUR", "USD", "2024-01-01", "0.90")}); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Fatalf("resending the superseded rate: %v", err)
	}
}

// Concurrent corrections of one rate form one chain of revisions, each
// audited once; concurrent retries of one request make one correction.
func TestConcurrentCorrections(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	if _, err := s.Create(coordinator(), []fx.RateInput{rateIn("EUR", "USD", "2024-01-01", "0.90")}); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	answers := make([]fx.Correction, 2*writers)
	errs := make([]error, 2*writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 2 * writers {
		wg.Go(func() {
			<-start
			if i < writers { // distinct corrections
				answers[i], errs[i] = s.Supersede(coordinator(), supersede(fmt.Sprintf("0.9%02d", i+1), "revised"), fmt.Sprint("distinct-", i))
			} else { // one correction, retried
				answers[i], errs[i] = s.Supersede(coordinator(), supersede("0.95", "one"), "same")
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for _, a := range answers[writers:] {
		if a.Rate.Revision != answers[writers].Rate.Revision || a.Rate.Reason != "one" {
			t.Fatalf("retries answered revisions %d and %d", a.Rate.Revision, answers[writers].Rate.Revision)
		}
	}
	var revs, gaps, events int
	if err := db.Owner.QueryRow(context.Background(), `SELECT count(*), max(revision) + 1 - count(*) FROM fx_rates`).Scan(&revs, &gaps); err != nil {
		t.Fatal(err)
	}
	if err := db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE entity_type = 'fx_rate'`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if revs != writers+2 || gaps != 0 || events != writers+1 {
		t.Fatalf("%d revisions (%d gaps), %d audit events; want %d, 0, %d", revs, gaps, events, writers+2, writers+1)
	}
}

// A correction's violations name its fields relative to the request it is
// (rate.date, rate.rate, reason), in order, before anything is read.
func TestSupersedeViolationsNameRequestFields(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := fx.New(db.App)
	if _, err := s.Create(coordinator(), []fx.RateInput{rateIn("EUR", "USD", "2024-01-01", "0.90")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		edit      func(*fx.SupersedeInput)
		requestID string
		want      string
	}{
		{"no date", func(in *fx.SupersedeInput) { in.Date = time.Time{} }, "r", "[rate.date]"},
		{"a date before 1990", func(in *fx.SupersedeInput) { in.Date = ymd("1900-01-01") }, "r", "[rate.date]"},
		{"no rate", func(in *fx.SupersedeInput) { in.Rate = decimal.Decimal{} }, "r", "[rate.rate]"},
		{"unknown currency", func(in *fx.SupersedeInput) { in.Currency = "XXX" }, "r", "[rate.currency]"},
		{"source with NUL", func(in *fx.SupersedeInput) { in.Source = "\x00" }, "r", "[rate.source]"},
		{"blank reason", func(in *fx.SupersedeInput) { in.Reason = " \t" }, "r", "[reason]"},
		{"everything", func(in *fx.SupersedeInput) { in.QuoteCurrency, in.Rate, in.Reason = "EUR", decimal.New(1, -9), "" }, "",
			"[rate.quoteCurrency rate.rate reason requestId]"},
	} {
		in := supersede("0.91", "typo")
		tc.edit(&in)
		_, err := s.Supersede(coordinator(), in, tc.requestID)
		if got := fmt.Sprint(violations(t, err)); got != tc.want {
			t.Errorf("%s: violations on %s, want %s (%v)", tc.name, got, tc.want, err)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM fx_rates`); n != 1 {
		t.Fatalf("%d rates stored, want 1", n)
	}
}
