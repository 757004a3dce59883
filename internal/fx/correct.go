package fx

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// SupersedeInput is a correcting rate, parsed: the pair and date of the rate
// it corrects, the right rate, and why. It is the whole request, so
// violations name its fields relative to the request: those of the rate
// under "rate." (rate.rate, rate.date, rate.confirmLargeChange), then reason
// and requestId.
type SupersedeInput struct {
	Currency, QuoteCurrency string
	Date                    time.Time       // the zero time: none given (refused)
	Rate                    decimal.Decimal // zero: none given (refused as not positive)
	Source                  string
	ConfirmLargeChange      bool
	Reason                  string
}

// Correction is what Supersede did: the correcting rate, the rate it
// superseded, and the first page of the entries converted with a superseded
// rate of that pair and date (ListAffected continues from NextPageToken).
type Correction struct {
	Rate, Superseded Rate
	Affected         []Affected
	NextPageToken    string
}

// Affected is a journal entry converted with a rate since superseded. Its
// figures stand (the journal is append-only); it is listed so that it can be
// reversed and recorded again.
type Affected struct {
	TransactionID, GrantID, Type                   string
	Amount, AgreementAmount, ReportingAmount       decimal.Decimal
	Currency, AgreementCurrency, ReportingCurrency string
	ValueDate                                      time.Time
	RateRevision                                   int // the revision it was converted with
}

// affectedFirstPage is how many affected entries Supersede's answer holds.
const affectedFirstPage = 1000

// correctionChange is a correction as its audit event records it.
type correctionChange struct {
	Rate
	Supersedes           Rate `json:"supersedes"`
	LargeChangeConfirmed bool `json:"largeChangeConfirmed,omitempty"`
}

// Supersede corrects the rate of a pair and date: the correcting rate is
// stored as the next revision, which conversions use from then on (it is a
// new fx_rates row under the writers' lock, so every FX cache sees it); the
// superseded row stays as it was. A large change from the previous date's
// rate needs ConfirmLargeChange as for a new rate; the reason is required.
// Entries already converted keep their figures: the answer lists them.
//
// A retry with the same request id answers the same correction and rate,
// with the affected entries as they stand at the retry.
func (s *Store) Supersede(ctx context.Context, in SupersedeInput, requestID string) (Correction, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return Correction{}, err
	}
	var v apperr.Validator
	rate := checkInput(&v, func(f string) string { return "rate." + f }, in.Currency, in.QuoteCurrency, in.Date, in.Rate, in.Source)
	rate.Reason = v.Text("reason", in.Reason, false, 2000)
	v.Check(rate.Reason != "", "reason", "required: say why the rate is wrong")
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Correction{}, err
	}
	d, day := rate.Date, rate.Date.Format(time.DateOnly)
	var out Correction
	var replayed string
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		replayed = ""
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writersLock); err != nil {
			return err
		}
		revs, err := revisions(ctx, tx, rate.Currency, rate.QuoteCurrency, d)
		if err != nil {
			return err
		}
		rate.Revision = len(revs) // revisions are 0, 1, … with no gap
		prev, replay, err := idempotency.Claim(ctx, tx, auth.FromContext(ctx).Scope(), "SupersedeFxRate", requestID, in, rateID(rate))
		if err != nil || replay {
			replayed = prev
			return err
		}
		if len(revs) == 0 {
			return fmt.Errorf("no %s/%s rate for %s to supersede: %w", rate.Currency, rate.QuoteCurrency, day, apperr.ErrNotFound)
		}
		old := revs[len(revs)-1]
		if old.Rate.Equal(rate.Rate) {
			return apperr.Invalid("rate.rate", "%s is already the %s/%s rate for %s", rate.Rate, rate.Currency, rate.QuoteCurrency, day)
		}
		change := correctionChange{Rate: rate, Supersedes: old}
		t, err := Load(ctx, tx, []string{rate.Currency, rate.QuoteCurrency}, d)
		if err != nil {
			return err
		}
		if p, ok := t.unit(rate.Currency, rate.QuoteCurrency, d.AddDate(0, 0, -1)); ok && IsLargeChange(p.Rate, rate.Rate) {
			if !in.ConfirmLargeChange {
				return apperr.Invalid("rate.confirmLargeChange",
					"%s differs by more than a factor of %s from the previous %s/%s rate, %s of %s; set confirmLargeChange if it is right",
					rate.Rate, LargeChange, rate.Currency, rate.QuoteCurrency, p.Rate.Round(12), p.Date.Format(time.DateOnly))
			}
			change.LargeChangeConfirmed = true
		}
		if _, err := tx.Exec(ctx, `INSERT INTO fx_rates (currency, quote_currency, date, rate, source, revision, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, rate.Currency, rate.QuoteCurrency, d, rate.Rate, rate.Source, rate.Revision, rate.Reason); err != nil {
			return err
		}
		old.Superseded = true
		out.Rate, out.Superseded = rate, old
		return audit.Record(ctx, tx, audit.Entry{EntityType: "fx_rate", EntityID: rateID(rate), RequestID: requestID, Change: change})
	})
	if err == nil && replayed != "" {
		out, err = s.readCorrection(ctx, replayed)
	}
	if err == nil {
		out.Affected, out.NextPageToken, err = s.affected(ctx, rate.Currency, rate.QuoteCurrency, d, affectedFirstPage, "")
	}
	if err != nil {
		return Correction{}, fmt.Errorf("superseding FX rate: %w", err)
	}
	return out, nil
}

// checkPair checks a pair of currencies and a date, naming fields with f,
// and returns a Rate holding them.
func checkPair(v *apperr.Validator, f func(string) string, currency, quote string, d time.Time) Rate {
	_, errC := money.Currency(currency)
	v.Check(errC == nil, f("currency"), "unknown ISO 4217 currency %q", currency)
	_, errQ := money.Currency(quote)
	v.Check(errQ == nil, f("quoteCurrency"), "unknown ISO 4217 currency %q", quote)
	v.Check(currency != quote, f("quoteCurrency"), "must differ from currency")
	v.Date(f("date"), d, true)
	return Rate{Currency: currency, QuoteCurrency: quote, Date: d}
}

// checkInput checks a rate to store, new or correcting: its pair and date,
// the rate's plausibility and its source, naming fields with f. It returns
// the Rate, its source trimmed.
func checkInput(v *apperr.Validator, f func(string) string, currency, quote string, d time.Time, rate decimal.Decimal, source string) Rate {
	r := checkPair(v, f, currency, quote, d)
	if err := CheckRate(rate); err != nil {
		v.Add(f("rate"), "%v", err)
	}
	r.Rate = rate
	r.Source = v.Text(f("source"), source, false, 200)
	return r
}

// rateID names one revision of a rate, as audit events and request ids
// record it: EUR/USD/2024-01-01/1.
func rateID(r Rate) string {
	return fmt.Sprintf("%s/%s/%s/%d", r.Currency, r.QuoteCurrency, r.Date.Format(time.DateOnly), r.Revision)
}

// revisions reads every revision of a pair's rate for date d, in order.
func revisions(ctx context.Context, q postgres.Querier, currency, quote string, d time.Time) ([]Rate, error) {
	rows, err := q.Query(ctx, `SELECT currency, quote_currency, date, rate, source, revision, reason FROM fx_rates
		WHERE currency = $1 AND quote_currency = $2 AND date = $3 ORDER BY revision`, currency, quote, d)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rate, error) {
		var x Rate
		err := r.Scan(&x.Currency, &x.QuoteCurrency, &x.Date, &x.Rate, &x.Source, &x.Revision, &x.Reason)
		return x, err
	})
}

// readCorrection reads the correction a request id recorded (rateID) and
// the revision it superseded.
func (s *Store) readCorrection(ctx context.Context, id string) (Correction, error) {
	p := strings.Split(id, "/")
	var d time.Time
	n, err := 0, error(nil)
	if len(p) == 4 {
		d, err = time.Parse(time.DateOnly, p[2])
		if err == nil {
			n, err = strconv.Atoi(p[3])
		}
	}
	if len(p) != 4 || err != nil || n < 1 {
		return Correction{}, fmt.Errorf("unexpected correction id %q", id)
	}
	revs, err := revisions(ctx, s.pool, p[0], p[1], d)
	if err != nil {
		return Correction{}, err
	}
	if len(revs) <= n {
		return Correction{}, fmt.Errorf("correction %s not found", id)
	}
	old := revs[n-1]
	old.Superseded = true
	rate := revs[n]
	rate.Superseded = len(revs) > n+1
	return Correction{Rate: rate, Superseded: old}, nil
}

// ListAffected pages through the journal entries converted with a
// superseded revision of the pair's rate for date and not reversed yet, in
// recording order. An entry is listed when a rate it was converted with is
// the one that revision gives, had it been the pair's newest rate, and not
// the one the rates give today; entries recorded with their own fxRate are
// listed only for what they converted through the table. Every entry
// converting between the pair's currencies with a value date from that date
// on is examined (a full scan of the journal, filtered by currency): a
// correction is rare, and the answer must not depend on later rates.
//
// Violations name the fields currency, quoteCurrency and date.
func (s *Store) ListAffected(ctx context.Context, currency, quote string, d time.Time, pageSize int, pageToken string) ([]Affected, string, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator, auth.Auditor); err != nil {
		return nil, "", err
	}
	var v apperr.Validator
	checkPair(&v, func(f string) string { return f }, currency, quote, d)
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	out, next, err := s.affected(ctx, currency, quote, d, pageSize, pageToken)
	if err != nil {
		return nil, "", fmt.Errorf("listing entries converted with a superseded rate: %w", err)
	}
	return out, next, nil
}

func (s *Store) affected(ctx context.Context, currency, quote string, d time.Time, pageSize int, pageToken string) ([]Affected, string, error) {
	after, size, err := paging.Start(pageToken, pageSize, 100)
	if err != nil {
		return nil, "", err
	}
	revs, err := revisions(ctx, s.pool, currency, quote, d)
	if err != nil {
		return nil, "", err
	}
	if len(revs) == 0 {
		return nil, "", fmt.Errorf("no %s/%s rate for %s: %w", currency, quote, d.Format(time.DateOnly), apperr.ErrNotFound)
	}
	if len(revs) == 1 {
		return nil, "", nil // nothing superseded
	}
	now, err := load(ctx, s.pool, "")
	if err != nil {
		return nil, "", err
	}
	then := make([]*Table, len(revs)-1) // the rates as each superseded revision would give them
	for i, r := range revs[:len(revs)-1] {
		then[i] = now.pinned(r)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT t.id::text, t.grant_id::text, t.type, t.amount, t.currency, t.agreement_amount, g.currency,
		  t.reporting_amount, r.reporting_currency, t.agreement_rate, t.reporting_rate, t.fx_rate IS NOT NULL, t.value_date
		FROM transactions t JOIN grants g ON g.id = t.grant_id JOIN roadmaps r ON r.id = g.roadmap_id
		WHERE t.id > $1::uuid AND t.type <> 'REVERSAL' AND t.value_date >= $2
		  AND ARRAY[$3, $4]::text[] <@ ARRAY[t.currency, g.currency, r.reporting_currency]
		  AND NOT EXISTS (SELECT FROM transactions x WHERE x.reverses_id = t.id)
		ORDER BY t.id`, after, d, currency, quote)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Affected
	for len(out) <= size && rows.Next() {
		var e entry
		a := &e.Affected
		if err := rows.Scan(&a.TransactionID, &a.GrantID, &a.Type, &a.Amount, &a.Currency, &a.AgreementAmount, &a.AgreementCurrency,
			&a.ReportingAmount, &a.ReportingCurrency, &e.agreementRate, &e.reportingRate, &e.ownRate, &a.ValueDate); err != nil {
			return nil, "", err
		}
		for i := len(then) - 1; i >= 0; i-- {
			if e.convertedWith(then[i], now) {
				a.RateRevision = revs[i].Revision
				out = append(out, *a)
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := paging.Next(out, size, func(a Affected) string { return a.TransactionID })
	return out, next, nil
}

// entry is a journal entry with the rates it was converted with.
type entry struct {
	Affected
	agreementRate, reportingRate decimal.Decimal
	ownRate                      bool // converted to reporting currency with its own fxRate
}

// convertedWith reports whether a rate e was converted with through the
// table is the one then gives and not the one now gives. It mirrors
// internal/ledger: to agreement currency crossed through the reporting
// currency, to reporting currency directly, an own fxRate taking the place
// of the table's rate to reporting currency (and to agreement currency when
// the two are the same).
func (e *entry) convertedWith(then, now *Table) bool {
	side := func(to, via string, recorded decimal.Decimal) bool {
		if e.Currency == to {
			return false
		}
		was, err := then.Rate(e.Currency, to, via, e.ValueDate)
		if err != nil || !was.Equal(recorded) {
			return false
		}
		is, err := now.Rate(e.Currency, to, via, e.ValueDate)
		return err != nil || !is.Equal(recorded)
	}
	ownAgreement := e.ownRate && e.AgreementCurrency == e.ReportingCurrency
	return (!ownAgreement && side(e.AgreementCurrency, e.ReportingCurrency, e.agreementRate)) ||
		(!e.ownRate && side(e.ReportingCurrency, "", e.reportingRate))
}

// pinned returns a copy of t in which r is its pair's newest rate in either
// direction: the rates a conversion found while r was the latest.
func (t *Table) pinned(r Rate) *Table {
	out := &Table{byPair: maps.Clone(t.byPair)}
	k, inv := [2]string{r.Currency, r.QuoteCurrency}, [2]string{r.QuoteCurrency, r.Currency}
	var direct, inverse []Rate
	for _, x := range t.byPair[k] {
		if x.Date.Before(r.Date) {
			direct = append(direct, x)
		}
	}
	for _, x := range t.byPair[inv] {
		if !x.Date.After(r.Date) { // on the same date the direct rate wins anyway
			inverse = append(inverse, x)
		}
	}
	out.byPair[k], out.byPair[inv] = append(direct, r), inverse
	return out
}
