package server

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// fxWorld is a EUR grant under a USD roadmap, committed, with its donor.
type fxWorld struct {
	h                        *harness
	admin, donor             context.Context
	grantID                  string
	grants                   pb.GrantServiceClient
	fx                       pb.FxRateServiceClient
	n                        int
	roadmapID, donorOrg, ngo string
}

func (w *fxWorld) rid() string { w.n++; return fmt.Sprint("fx-", w.n) }

func newFxWorld(t *testing.T) *fxWorld {
	t.Helper()
	h := newHarness(t)
	w := &fxWorld{h: h, admin: h.as(t, auth.Admin, ""), grants: pb.NewGrantServiceClient(h.conn), fx: pb.NewFxRateServiceClient(h.conn)}
	org := func(kind string) string { return h.org(t, w.admin, kind) }
	w.donorOrg, w.ngo = org("DONOR"), org("IMPLEMENTER")
	w.donor = h.as(t, auth.Donor, w.donorOrg)
	rm, err := pb.NewRoadmapServiceClient(h.conn).CreateRoadmap(w.admin, &pb.CreateRoadmapRequest{Roadmap: &pb.Roadmap{Country: "AFG", Title: "Strategy",
		StartDate: "2024-01-01", EndDate: "2026-12-31", ReportingCurrency: "USD"}, RequestId: w.rid()})
	if err != nil {
		t.Fatal(err)
	}
	w.roadmapID = rm.Roadmap.Id
	if _, err := w.fx.CreateFxRates(w.admin, &pb.CreateFxRatesRequest{Rates: []*pb.FxRate{
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.90"}}}); err != nil {
		t.Fatal(err)
	}
	w.grantID = w.grant(t, "EUR")
	w.record(t, "COMMITMENT", "1000.00", "EUR", "2024-02-01", "")
	return w
}

// grant creates a grant of the donor in currency, pledged 1000.
func (w *fxWorld) grant(t *testing.T, currency string) string {
	t.Helper()
	g, err := w.grants.CreateGrant(w.donor, &pb.CreateGrantRequest{RequestId: w.rid(), Grant: &pb.Grant{RoadmapId: w.roadmapID, DonorOrgId: w.donorOrg,
		RecipientOrgId: w.ngo, Reference: w.rid(), Title: "Grant", Currency: currency, Pledged: &pb.Money{Amount: "1000.00", Currency: currency},
		StartDate: "2024-01-01", EndDate: "2025-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	return g.Grant.Id
}

func (w *fxWorld) record(t *testing.T, typ, amount, currency, date, fxRate string) *pb.Transaction {
	t.Helper()
	return w.recordOn(t, w.grantID, typ, amount, currency, date, fxRate)
}

func (w *fxWorld) recordOn(t *testing.T, grantID, typ, amount, currency, date, fxRate string) *pb.Transaction {
	t.Helper()
	tx, err := w.grants.RecordTransaction(w.donor, &pb.RecordTransactionRequest{GrantId: grantID, RequestId: w.rid(),
		Transaction: &pb.Transaction{Type: typ, Amount: &pb.Money{Amount: amount, Currency: currency}, ValueDate: date, FxRate: fxRate, Reference: w.rid()}})
	if err != nil {
		t.Fatal(err)
	}
	return tx.Transaction
}

// fields returns the fields an INVALID_ARGUMENT names in its BadRequest.
func fields(t *testing.T, err error) []string {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

// An entry's own fxRate obeys the plausibility limits of table rates, and
// no entry converts to more digits than an entered amount may have, on the
// single and the batch path; nothing is written.
func TestEntryRatesAndConvertedAmountsAreBounded(t *testing.T) {
	t.Parallel()
	w := newFxWorld(t)
	for _, tc := range []struct {
		name, amount, fxRate, field string
	}{
		{"fxRate 1e-31", "1.00", "0." + strings.Repeat("0", 30) + "1", "fxRate"},
		{"fxRate 1e15", "1.00", "1000000000000000", "fxRate"},
		{"fxRate with 16 significant digits", "1.00", "0.9000000000000001", "fxRate"},
		{"converts beyond 15 integer digits", "10000000000.00", "0.00001", "amount.amount"}, // 10^15 USD
	} {
		entry := &pb.Transaction{Type: "DISBURSEMENT", Amount: &pb.Money{Amount: tc.amount, Currency: "EUR"}, ValueDate: "2024-03-01",
			FxRate: tc.fxRate, GrantId: w.grantID}
		_, err := w.grants.RecordTransaction(w.donor, &pb.RecordTransactionRequest{GrantId: w.grantID, RequestId: w.rid(), Transaction: entry})
		if got := fields(t, err); fmt.Sprint(got) != "[transaction."+tc.field+"]" {
			t.Errorf("%s: violations on %v (%v)", tc.name, got, err)
		}
		_, err = w.grants.BatchRecordTransactions(w.donor, &pb.BatchRecordTransactionsRequest{RequestId: w.rid(), Transactions: []*pb.Transaction{entry}})
		if got := fields(t, err); fmt.Sprint(got) != "[transactions[0]."+tc.field+"]" {
			t.Errorf("%s, batch: violations on %v (%v)", tc.name, got, err)
		}
	}
	// The limits themselves are accepted.
	w.record(t, "DISBURSEMENT", "1.00", "EUR", "2024-03-01", "0.00001")
	var n int
	if err := w.h.db.Owner.QueryRow(context.Background(), `SELECT count(*) FROM transactions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 { // the pledge, the commitment, the last disbursement
		t.Fatalf("%d entries stored, want 3", n)
	}
}

// A wrong table rate is superseded by a correcting one with a reason:
// conversions use the correction from then on, entries converted with the
// wrong rate keep their figures and are listed (directly, through the inverse
// pair and crossed through the reporting currency; not those converted with
// their own rate, with another date's rate, or already reversed), the
// correction is audited, and a retry with the request id answers the same.
func TestSupersedeRate(t *testing.T) {
	t.Parallel()
	w := newFxWorld(t)
	coordinator := w.h.as(t, auth.Coordinator, "")
	if _, err := w.fx.CreateFxRates(coordinator, &pb.CreateFxRatesRequest{Rates: []*pb.FxRate{
		{Currency: "GBP", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.80"},
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-03-01", Rate: "0.09", ConfirmLargeChange: true}, // the typo
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-04-01", Rate: "0.91", ConfirmLargeChange: true}, // back from the typo
	}}); err != nil {
		t.Fatal(err)
	}
	gbp := w.grant(t, "GBP")
	w.recordOn(t, gbp, "COMMITMENT", "1000.00", "GBP", "2024-02-01", "")
	w.record(t, "DISBURSEMENT", "9.00", "EUR", "2024-02-15", "")                   // 0.90: before the wrong rate
	direct := w.record(t, "DISBURSEMENT", "9.00", "EUR", "2024-03-05", "")         // 100.00 USD at 0.09
	inverse := w.record(t, "DISBURSEMENT", "10.00", "USD", "2024-03-06", "")       // 0.90 EUR at 1/0.09
	crossed := w.recordOn(t, gbp, "DISBURSEMENT", "9.00", "EUR", "2024-03-07", "") // EUR→GBP through USD
	w.record(t, "DISBURSEMENT", "9.00", "EUR", "2024-03-08", "0.92")               // its own rate
	reversed := w.record(t, "DISBURSEMENT", "9.00", "EUR", "2024-03-09", "")
	if _, err := w.grants.RecordTransaction(w.donor, &pb.RecordTransactionRequest{GrantId: w.grantID, RequestId: w.rid(),
		Transaction: &pb.Transaction{Type: "REVERSAL", ReversesTransactionId: reversed.Id, ValueDate: "2024-03-10"}}); err != nil {
		t.Fatal(err)
	}
	w.record(t, "DISBURSEMENT", "9.10", "EUR", "2024-04-02", "") // 0.91: after the next rate
	if direct.ReportingAmount.Amount != "100.00" {
		t.Fatalf("converted at the wrong rate: %v", direct.ReportingAmount)
	}

	req := &pb.SupersedeFxRateRequest{Rate: &pb.FxRate{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-03-01", Rate: "0.90", Source: "ECB"},
		Reason: "typed 0.09 for 0.90", RequestId: "fix-1"}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		edit func(*pb.SupersedeFxRateRequest)
		code codes.Code
		want string // the field named, for INVALID_ARGUMENT
	}{
		{"donor", w.donor, func(*pb.SupersedeFxRateRequest) {}, codes.PermissionDenied, ""},
		{"auditor", w.h.as(t, auth.Auditor, ""), func(*pb.SupersedeFxRateRequest) {}, codes.PermissionDenied, ""},
		{"blank reason", coordinator, func(r *pb.SupersedeFxRateRequest) { r.Reason = "  " }, codes.InvalidArgument, "reason"},
		{"no reason", coordinator, func(r *pb.SupersedeFxRateRequest) { r.Reason = "" }, codes.InvalidArgument, "reason"},
		{"implausible", coordinator, func(r *pb.SupersedeFxRateRequest) { r.Rate.Rate = "0.000000001" }, codes.InvalidArgument, "rate.rate"},
		{"large change unconfirmed", coordinator, func(r *pb.SupersedeFxRateRequest) { r.Rate.Rate = "9.0" }, codes.InvalidArgument, "rate.confirmLargeChange"},
		{"the same rate", coordinator, func(r *pb.SupersedeFxRateRequest) { r.Rate.Rate = "0.090" }, codes.InvalidArgument, "rate.rate"},
		{"no such rate", coordinator, func(r *pb.SupersedeFxRateRequest) { r.Rate.Date = "2024-03-02" }, codes.NotFound, ""},
	} {
		bad := proto.Clone(req).(*pb.SupersedeFxRateRequest)
		bad.RequestId = w.rid()
		tc.edit(bad)
		_, err := w.fx.SupersedeFxRate(tc.ctx, bad)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		} else if tc.want != "" && fmt.Sprint(fields(t, err)) != "["+tc.want+"]" {
			t.Errorf("%s: violations on %v, want %s", tc.name, fields(t, err), tc.want)
		}
	}

	got, err := w.fx.SupersedeFxRate(coordinator, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Rate; r.Rate != "0.9" || r.Revision != 1 || r.Reason != req.Reason || r.Superseded ||
		got.Superseded.Rate != "0.09" || got.Superseded.Revision != 0 || !got.Superseded.Superseded {
		t.Fatalf("answer %v", got)
	}
	want := map[string]string{direct.Id: w.grantID, inverse.Id: w.grantID, crossed.Id: gbp}
	affected := func(list []*pb.FxAffectedTransaction) map[string]string {
		out := map[string]string{}
		for _, a := range list {
			if a.RateRevision != 0 {
				t.Errorf("%s converted with revision %d, want 0", a.TransactionId, a.RateRevision)
			}
			out[a.TransactionId] = a.GrantId
		}
		return out
	}
	if a := affected(got.AffectedTransactions); fmt.Sprint(a) != fmt.Sprint(want) {
		t.Fatalf("affected %v, want %v", a, want)
	}

	// Conversions from now on use the correction; recorded figures stand.
	if tx := w.record(t, "DISBURSEMENT", "9.00", "EUR", "2024-03-20", ""); tx.ReportingAmount.Amount != "10.00" {
		t.Fatalf("after the correction 9.00 EUR converts to %v USD", tx.ReportingAmount)
	}
	list, err := w.grants.ListTransactions(w.admin, &pb.ListTransactionsRequest{GrantId: w.grantID, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range list.Transactions {
		if tx.Id == direct.Id && tx.ReportingAmount.Amount != "100.00" {
			t.Fatalf("a recorded entry changed: %v", tx)
		}
	}

	// A retry answers the same; the same id for another correction is refused.
	again, err := w.fx.SupersedeFxRate(coordinator, req)
	if err != nil || !proto.Equal(again, got) {
		t.Fatalf("replay: %v, %v\nwant %v", again, err, got)
	}
	other := proto.Clone(req).(*pb.SupersedeFxRateRequest)
	other.Rate.Rate = "0.91"
	if _, err := w.fx.SupersedeFxRate(coordinator, other); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("request id reused for another correction: %v", err)
	}

	// One audit event, naming the revision, the reason and what it superseded.
	var n int
	var change string
	if err := w.h.db.Owner.QueryRow(context.Background(), `SELECT count(*), max(change) FROM audit_events WHERE entity_type = 'fx_rate'
		AND entity_id = 'EUR/USD/2024-03-01/1' AND request_id = 'fix-1'`).Scan(&n, &change); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.Contains(change, req.Reason) || !strings.Contains(change, `"supersedes":{`) || !strings.Contains(change, `"rate":"0.09"`) {
		t.Fatalf("%d audit events: %s", n, change)
	}

	// The rate list shows both revisions; the affected list pages, for
	// coordinators and auditors only, and drops an entry once reversed.
	rates, err := w.fx.ListFxRates(w.donor, &pb.ListFxRatesRequest{Currency: "EUR", QuoteCurrency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, r := range rates.Rates {
		if r.Date == "2024-03-01" {
			revs = append(revs, fmt.Sprintf("%d %s %v %s", r.Revision, r.Rate, r.Superseded, r.Reason))
		}
	}
	if fmt.Sprint(revs) != "[0 0.09 true  1 0.9 false "+req.Reason+"]" {
		t.Fatalf("listed revisions %q", revs)
	}
	if _, err := w.fx.ListFxAffectedTransactions(w.donor, &pb.ListFxAffectedTransactionsRequest{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-03-01"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("donor listing affected entries: %v", err)
	}
	if _, err := w.grants.RecordTransaction(w.donor, &pb.RecordTransactionRequest{GrantId: w.grantID, RequestId: w.rid(),
		Transaction: &pb.Transaction{Type: "REVERSAL", ReversesTransactionId: direct.Id, ValueDate: "2024-03-21"}}); err != nil {
		t.Fatal(err)
	}
	delete(want, direct.Id)
	pages := map[string]string{}
	token := ""
	for range 5 {
		page, err := w.fx.ListFxAffectedTransactions(w.h.as(t, auth.Auditor, ""), &pb.ListFxAffectedTransactionsRequest{Currency: "EUR",
			QuoteCurrency: "USD", Date: "2024-03-01", PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.AffectedTransactions) > 1 {
			t.Fatalf("a page of 1 holds %d", len(page.AffectedTransactions))
		}
		maps.Copy(pages, affected(page.AffectedTransactions))
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("paged affected %v, want %v", pages, want)
	}
}

// FX requests name every bad field by its request path, whether the server
// cannot read it (a date, a rate) or fx refuses it (rates by their position
// in the list, a correction's fields relative to the request), and write
// nothing; a rate conflicting with a stored one is refused naming its
// position in the request.
func TestFxViolationsNameRequestPaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	coordinator := h.as(t, auth.Coordinator, "")
	fxs := pb.NewFxRateServiceClient(h.conn)
	if _, err := fxs.CreateFxRates(coordinator, &pb.CreateFxRatesRequest{Rates: []*pb.FxRate{
		{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-01-01", Rate: "0.90"}}}); err != nil {
		t.Fatal(err)
	}
	rate := func(cur, quote, date, r string) *pb.FxRate {
		return &pb.FxRate{Currency: cur, QuoteCurrency: quote, Date: date, Rate: r}
	}
	ok := rate("GBP", "USD", "2024-01-01", "0.80")
	for _, tc := range []struct {
		name  string
		rates []*pb.FxRate
		want  string
	}{
		{"no rates", nil, "[rates]"},
		{"unknown currency", []*pb.FxRate{ok, rate("XXX", "USD", "2024-01-01", "0.9")}, "[rates[1].currency]"},
		{"one currency", []*pb.FxRate{rate("USD", "USD", "2024-01-01", "1")}, "[rates[0].quoteCurrency]"},
		{"not a date", []*pb.FxRate{ok, rate("EUR", "USD", "2024-02-30", "0.9")}, "[rates[1].date]"},
		{"a date before 1990", []*pb.FxRate{rate("EUR", "USD", "1989-12-31", "0.9")}, "[rates[0].date]"},
		{"no rate", []*pb.FxRate{rate("EUR", "USD", "2024-02-01", "")}, "[rates[0].rate]"},
		{"not a number", []*pb.FxRate{rate("EUR", "USD", "2024-02-01", "0.9x")}, "[rates[0].rate]"},
		{"zero", []*pb.FxRate{rate("EUR", "USD", "2024-02-01", "0")}, "[rates[0].rate]"},
		{"implausible", []*pb.FxRate{rate("EUR", "USD", "2024-02-01", "0.000000001")}, "[rates[0].rate]"},
		{"source too long", []*pb.FxRate{{Currency: "EUR", QuoteCurrency: "USD", Date: "2024-02-01", Rate: "0.9", Source: strings.Repeat("x", 201)}},
			"[rates[0].source]"},
		{"NUL in the source", []*pb.FxRate{ok, {Currency: "EUR", QuoteCurrency: "USD", Date: "2024-02-01", Rate: "0.9", Source: "EC\x00B"}},
			"[rates[1].source]"},
		{"two rates for one pair and date", []*pb.FxRate{ok, rate("GBP", "USD", "2024-01-01", "0.81")}, "[rates[1].rate]"},
		{"large change unconfirmed", []*pb.FxRate{ok, rate("EUR", "USD", "2024-02-01", "9.0")}, "[rates[1].confirmLargeChange]"},
		{"several, in request order", []*pb.FxRate{rate("XXX", "USD", "2024-01-01", "0.9"), rate("EUR", "USD", "2024-02-01", "0")},
			"[rates[0].currency rates[1].rate]"},
	} {
		_, err := fxs.CreateFxRates(coordinator, &pb.CreateFxRatesRequest{Rates: tc.rates})
		if got := fmt.Sprint(fields(t, err)); got != tc.want {
			t.Errorf("%s: violations on %s, want %s (%v)", tc.name, got, tc.want, err)
		}
	}
	_, err := fxs.CreateFxRates(coordinator, &pb.CreateFxRatesRequest{Rates: []*pb.FxRate{ok, rate("EUR", "USD", "2024-01-01", "0.95")}})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "rate 1 of this request (EUR/USD 2024-01-01): already recorded as 0.9 ") {
		t.Errorf("a rate conflicting with a stored one: %v", err)
	}

	fix := func(edit func(*pb.SupersedeFxRateRequest)) *pb.SupersedeFxRateRequest {
		r := &pb.SupersedeFxRateRequest{Rate: rate("EUR", "USD", "2024-01-01", "0.91"), Reason: "typo", RequestId: "fix"}
		edit(r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *pb.SupersedeFxRateRequest
		want string
	}{
		{"not a date", fix(func(r *pb.SupersedeFxRateRequest) { r.Rate.Date = "2024-02-30" }), "[rate.date]"},
		{"a date before 1990", fix(func(r *pb.SupersedeFxRateRequest) { r.Rate.Date = "1900-01-01" }), "[rate.date]"},
		{"unknown currency", fix(func(r *pb.SupersedeFxRateRequest) { r.Rate.QuoteCurrency = "XXX" }), "[rate.quoteCurrency]"},
		{"not a number", fix(func(r *pb.SupersedeFxRateRequest) { r.Rate.Rate = "nine" }), "[rate.rate]"},
		{"zero", fix(func(r *pb.SupersedeFxRateRequest) { r.Rate.Rate = "0.0" }), "[rate.rate]"},
		{"blank reason", fix(func(r *pb.SupersedeFxRateRequest) { r.Reason = " " }), "[reason]"},
		// A NUL is refused at the edge, before the domain, for every request.
		{"NUL in source", fix(func(r *pb.SupersedeFxRateRequest) { r.Rate.Source = "a\x00b" }), "[rate.source]"},
	} {
		_, err := fxs.SupersedeFxRate(coordinator, tc.req)
		if got := fmt.Sprint(fields(t, err)); got != tc.want {
			t.Errorf("supersede, %s: violations on %s, want %s (%v)", tc.name, got, tc.want, err)
		}
	}
	for _, tc := range []struct {
		name, currency, date, want string
	}{
		{"not a date", "EUR", "2024-02-30", "[date]"},
		{"unknown currency", "XXX", "2024-01-01", "[currency]"},
	} {
		_, err := fxs.ListFxAffectedTransactions(coordinator, &pb.ListFxAffectedTransactionsRequest{Currency: tc.currency, QuoteCurrency: "USD", Date: tc.date})
		if got := fmt.Sprint(fields(t, err)); got != tc.want {
			t.Errorf("affected, %s: violations on %s, want %s (%v)", tc.name, got, tc.want, err)
		}
	}

	var rates, events int
	if err := h.db.Owner.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM fx_rates), (SELECT count(*) FROM audit_events WHERE entity_type LIKE 'fx%')`).Scan(&rates, &events); err != nil {
		t.Fatal(err)
	}
	if rates != 1 || events != 1 {
		t.Fatalf("%d rates and %d FX audit events after refused requests, want the first request's 1 and 1", rates, events)
	}
}
