// Package fx keeps exchange rates, append-only facts, and converts amounts
// under the programme's rules: the latest rate on or before the value date,
// full precision, one half-to-even rounding per amount.
//
// Rate convention (as in OCHA FTS): rate = units of currency per one unit of
// quote currency; 0.88 EUR per USD means 3 500 000 EUR = 3 977 272.73 USD.
//
// # Corrections
//
// A wrong rate is never edited: Supersede stores a correcting rate, with a
// reason, as the next revision of the same pair and date, and the highest
// revision is the one conversions use (Load, Cache). Entries converted with
// a superseded revision keep their figures; ListAffected finds them.
//
// # Plausibility
//
// Every rate, in the table or an entry's own, is held to CheckRate:
//
//	limit               value          why
//	smallest rate       0.00000001     1/30 of the smallest real pair (KWD per IRR, ~3e-7)
//	largest rate        100 000 000    30 × the largest real pair (IRR per KWD, ~3.3e6)
//	significant digits  15             publishers give 4 to 6; a float carries ~16
//	large change        factor 1.5     either way from the pair's previous rate
//
// A table rate more than a factor of 1.5 above or below the pair's previous
// rate (the latest before its date, as a conversion would find it) needs
// confirmLargeChange, which its audit event records. An amount converted with
// any rate keeps the digit limit of entered amounts (money.CheckConverted).
package fx

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Rate is one published rate, or a correction of one.
type Rate struct {
	Currency      string          `json:"currency"`
	QuoteCurrency string          `json:"quoteCurrency"`
	Date          time.Time       `json:"date"`
	Rate          decimal.Decimal `json:"rate"`
	Source        string          `json:"source"`
	// Revision is 0 for a rate as first recorded and n+1 for the correction
	// that supersedes revision n of the same pair and date; the highest
	// revision is the pair's rate for that date.
	Revision int `json:"revision,omitempty"`
	// Reason says why a correction was made.
	Reason string `json:"reason,omitempty"`
	// Superseded is set by List when a later revision exists.
	Superseded bool `json:"-"`
}

// RateInput is a rate to store, parsed. Violations name its fields as an
// FxRate's JSON does (date, rate, confirmLargeChange), prefixed with its
// position in the list given ([1].rate); a violation of the list as a whole
// has the empty field name.
type RateInput struct {
	Currency, QuoteCurrency string
	Date                    time.Time       // the zero time: none given (refused)
	Rate                    decimal.Decimal // zero: none given (refused as not positive)
	Source                  string
	// ConfirmLargeChange accepts a rate more than LargeChange away from the
	// pair's previous one.
	ConfirmLargeChange bool
}

// MaxRates is how many rates one Create stores at most.
const MaxRates = 10000

// Store keeps rates.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// writersLock is the advisory lock every writer of fx_rates holds until it
// commits (migration 004's fx_rates_serialise trigger takes it on INSERT).
// Create takes it before its checks, so a rate committed by a concurrent
// request is seen by them instead of racing past them.
const writersLock = 7346002

// HoldWriters holds off writers of FX rates until tx ends (a shared hold of
// their lock; many may hold it at once), so that rates read in tx stay the
// table's until it commits.
func HoldWriters(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, writersLock)
	return err
}

// Create stores rates, all or nothing. A rate already stored with the same
// value is skipped; a different value for the same pair and date is refused,
// since rates are facts that transactions were converted with. A request
// holds at most one rate per pair and date: a second one, even identical, is
// refused, since a file that repeats a rate is as likely to hold a typo.
func (s *Store) Create(ctx context.Context, in []RateInput) (int, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return 0, err
	}
	var v apperr.Validator
	v.Check(len(in) > 0 && len(in) <= MaxRates, "", "between 1 and %d rates, got %d", MaxRates, len(in))
	rates := make([]Rate, 0, len(in))
	first := map[pairDate]int{} // the position of the first rate given for each pair and date
	for i, r := range in {
		f := func(name string) string { return fmt.Sprintf("[%d].%s", i, name) }
		x := checkInput(&v, f, r.Currency, r.QuoteCurrency, r.Date, r.Rate, r.Source)
		if !r.Date.IsZero() {
			k := pairDate{r.Currency, r.QuoteCurrency, r.Date.Format(time.DateOnly)}
			if j, dup := first[k]; dup {
				v.Add(f("rate"), "rate %d of this request already gives the %s/%s rate for %s (%s); a request holds one rate per pair and date",
					j, r.Currency, r.QuoteCurrency, k.date, in[j].Rate)
			} else {
				first[k] = i
			}
		}
		rates = append(rates, x)
	}
	if err := v.Err(); err != nil {
		return 0, err
	}
	var stored []Rate
	var fresh []int // indexes in the request of the rates stored
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writersLock); err != nil {
			return err
		}
		var cur, quote []string
		var dates []time.Time
		for _, r := range rates {
			cur, quote, dates = append(cur, r.Currency), append(quote, r.QuoteCurrency), append(dates, r.Date)
		}
		// Under the lock, this sees every rate committed before: none can
		// appear between it and the insert.
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT ON (f.currency, f.quote_currency, f.date) f.currency, f.quote_currency, f.date, f.rate
			FROM unnest($1::text[], $2::text[], $3::date[]) AS i(currency, quote_currency, date)
			JOIN fx_rates f USING (currency, quote_currency, date)
			ORDER BY f.currency, f.quote_currency, f.date, f.revision DESC`, cur, quote, dates)
		if err != nil {
			return err
		}
		have := map[pairDate]decimal.Decimal{}
		var k pairDate
		var d time.Time
		var r decimal.Decimal
		if _, err := pgx.ForEachRow(rows, []any{&k.currency, &k.quote, &d, &r}, func() error {
			k.date = d.Format(time.DateOnly)
			have[k] = r
			return nil
		}); err != nil {
			return err
		}
		stored, fresh = stored[:0], fresh[:0]
		for i, r := range rates {
			old, ok := have[pairDate{r.Currency, r.QuoteCurrency, r.Date.Format(time.DateOnly)}]
			switch {
			case !ok:
				stored, fresh = append(stored, r), append(fresh, i)
			case !old.Equal(r.Rate):
				return fmt.Errorf("rate %d of this request (%s/%s %s): already recorded as %s (given %s); rates are append-only facts, "+
					"corrected by a superseding rate (POST /v1/fx-rates:supersede): %w",
					i, r.Currency, r.QuoteCurrency, r.Date.Format(time.DateOnly), old, r.Rate, apperr.ErrAlreadyExists)
			}
		}
		if len(stored) == 0 {
			return nil
		}
		change, err := checkChanges(ctx, tx, in, rates, fresh)
		if err != nil {
			return err
		}
		var src []string
		var vals []decimal.Decimal
		cur, quote, dates = cur[:0], quote[:0], dates[:0]
		for _, r := range stored {
			cur, quote, dates = append(cur, r.Currency), append(quote, r.QuoteCurrency), append(dates, r.Date)
			vals, src = append(vals, r.Rate), append(src, r.Source)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO fx_rates (currency, quote_currency, date, rate, source)
			SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::numeric[], $5::text[])`,
			cur, quote, dates, vals, src); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "fx_rates", EntityID: fmt.Sprintf("%d rates", len(stored)), Change: change})
	})
	if err != nil {
		return 0, fmt.Errorf("recording FX rates: %w", err)
	}
	return len(stored), nil
}

// rateChange is a stored rate as its audit event records it: whether a
// large change from the previous rate was confirmed is part of the fact.
type rateChange struct {
	Rate
	LargeChangeConfirmed bool `json:"largeChangeConfirmed,omitempty"`
}

// checkChanges holds each new rate (rates[i] for i in fresh, given as in[i])
// to the large-change rule against the pair's previous rate, the latest
// before its date, direct or inverse, as a conversion would find it, counting
// the request's own earlier rates. It runs under the writers' lock, so the
// previous rate cannot change meanwhile. It returns the audit change.
func checkChanges(ctx context.Context, tx pgx.Tx, in []RateInput, rates []Rate, fresh []int) ([]rateChange, error) {
	var currencies []string
	var upTo time.Time
	for _, r := range rates {
		currencies = append(currencies, r.Currency, r.QuoteCurrency)
		if r.Date.After(upTo) {
			upTo = r.Date
		}
	}
	t, err := Load(ctx, tx, currencies, upTo)
	if err != nil {
		return nil, err
	}
	for _, i := range fresh {
		t.put(rates[i])
	}
	var v apperr.Validator
	out := make([]rateChange, len(fresh))
	for k, i := range fresh {
		r := rates[i]
		out[k].Rate = r
		prev, ok := t.unit(r.Currency, r.QuoteCurrency, r.Date.AddDate(0, 0, -1))
		if !ok || !IsLargeChange(prev.Rate, r.Rate) {
			continue
		}
		out[k].LargeChangeConfirmed = in[i].ConfirmLargeChange
		v.Check(in[i].ConfirmLargeChange, fmt.Sprintf("[%d].confirmLargeChange", i),
			"%s differs by more than a factor of %s from the previous %s/%s rate, %s of %s; set confirmLargeChange if it is right",
			r.Rate, LargeChange, r.Currency, r.QuoteCurrency, prev.Rate.Round(12), prev.Date.Format(time.DateOnly))
	}
	return out, v.Err()
}

// pairDate identifies a rate: one value per pair and date (YYYY-MM-DD).
type pairDate struct{ currency, quote, date string }

// List pages through rates by pair, date and revision (the primary key's
// order, so each page is an index range): every revision, each marked when a
// later one supersedes it.
func (s *Store) List(ctx context.Context, currency, quote string, pageSize int, pageToken string) ([]Rate, string, error) {
	after, pageSize, err := paging.StartKey(pageToken, pageSize, 100, 4) // currency, quote currency, date, revision
	if err != nil {
		return nil, "", err
	}
	if after == nil {
		after = []string{"", "", "", "-1"}
	}
	afterDate, errD := time.Time{}, error(nil)
	if after[2] != "" {
		afterDate, errD = time.Parse(time.DateOnly, after[2])
	}
	afterRev, errR := strconv.Atoi(after[3])
	if errD != nil || errR != nil {
		return nil, "", apperr.Invalid("pageToken", "malformed page token")
	}
	rows, err := s.pool.Query(ctx, `
		SELECT currency, quote_currency, date, rate, source, revision, reason,
		  EXISTS (SELECT FROM fx_rates n WHERE (n.currency, n.quote_currency, n.date, n.revision) = (f.currency, f.quote_currency, f.date, f.revision + 1))
		FROM fx_rates f
		WHERE ($1 = '' OR currency = $1) AND ($2 = '' OR quote_currency = $2)
		  AND (currency, quote_currency, date, revision) > ($3, $4, $5, $6)
		ORDER BY currency, quote_currency, date, revision LIMIT $7`, currency, quote, after[0], after[1], afterDate, afterRev, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing FX rates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rate, error) {
		var x Rate
		err := r.Scan(&x.Currency, &x.QuoteCurrency, &x.Date, &x.Rate, &x.Source, &x.Revision, &x.Reason, &x.Superseded)
		return x, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing FX rates: %w", err)
	}
	out, next := paging.NextKey(out, pageSize, func(r Rate) []string {
		return []string{r.Currency, r.QuoteCurrency, r.Date.Format(time.DateOnly), strconv.Itoa(r.Revision)}
	})
	return out, next, nil
}

// Table holds the rates among a few currencies, loaded once for an operation.
type Table struct {
	byPair map[[2]string][]Rate // sorted by date
}

// NewTable returns a table of rates held in memory (tests, imports), given in
// any order; a later rate for a pair and date already given replaces it.
func NewTable(rates ...Rate) *Table {
	t := &Table{byPair: map[[2]string][]Rate{}}
	for _, r := range rates {
		t.put(r)
	}
	return t
}

// Load reads the rate of each pair and date (its highest revision) between
// the given currencies, dated on or before upTo.
func Load(ctx context.Context, q postgres.Querier, currencies []string, upTo time.Time) (*Table, error) {
	cs := slices.Compact(slices.Sorted(slices.Values(currencies)))
	if len(cs) < 2 {
		return NewTable(), nil
	}
	return load(ctx, q, `WHERE currency = ANY ($1) AND quote_currency = ANY ($1) AND date <= $2`, cs, upTo)
}

// load reads the rates matching where, in date and revision order, so that
// put keeps each date's highest revision.
func load(ctx context.Context, q postgres.Querier, where string, args ...any) (*Table, error) {
	rows, err := q.Query(ctx, `SELECT currency, quote_currency, date, rate, revision FROM fx_rates `+where+` ORDER BY date, revision`, args...)
	if err != nil {
		return nil, fmt.Errorf("loading FX rates: %w", err)
	}
	t := NewTable()
	var r Rate
	if _, err := pgx.ForEachRow(rows, []any{&r.Currency, &r.QuoteCurrency, &r.Date, &r.Rate, &r.Revision}, func() error {
		t.put(r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("loading FX rates: %w", err)
	}
	return t, nil
}

// latest is the newest rate of the pair dated on or before d.
func (t *Table) latest(cur, quote string, d time.Time) (Rate, bool) {
	rs := t.byPair[[2]string{cur, quote}]
	i, _ := slices.BinarySearchFunc(rs, d, func(r Rate, d time.Time) int {
		if r.Date.After(d) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return Rate{}, false
	}
	return rs[i-1], true
}

// put adds r to its pair's rates, kept sorted by date; r replaces a rate of
// the same date (put a pair's revisions in order). It modifies the pair's
// slice in place: only for a table no one else holds yet.
func (t *Table) put(r Rate) {
	k := [2]string{r.Currency, r.QuoteCurrency}
	rs := t.byPair[k]
	i, found := slices.BinarySearchFunc(rs, r.Date, func(x Rate, d time.Time) int { return x.Date.Compare(d) })
	if found {
		rs[i] = r
	} else {
		rs = slices.Insert(rs, i, r)
	}
	t.byPair[k] = rs
}

// perUnit returns units of `from` per one unit of `to` on date d: the direct
// rate, or the inverse of the opposite pair, whichever is dated later.
func (t *Table) perUnit(from, to string, d time.Time) (decimal.Decimal, bool) {
	r, ok := t.unit(from, to, d)
	return r.Rate, ok
}

// unit is perUnit with the date of the rate it found.
func (t *Table) unit(from, to string, d time.Time) (Rate, bool) {
	direct, okD := t.latest(from, to, d)
	inverse, okI := t.latest(to, from, d)
	switch {
	case okD && (!okI || !inverse.Date.After(direct.Date)):
		return direct, true
	case okI:
		return Rate{Currency: from, QuoteCurrency: to, Date: inverse.Date, Rate: decimal.NewFromInt(1).DivRound(inverse.Rate, 24)}, true
	}
	return Rate{}, false
}

// Rate returns units of `from` per one unit of `to` valid on d: direct,
// inverse, or crossed through `via` (the roadmap's reporting currency).
func (t *Table) Rate(from, to, via string, d time.Time) (decimal.Decimal, error) {
	if from == to {
		return decimal.NewFromInt(1), nil
	}
	if r, ok := t.perUnit(from, to, d); ok {
		return r, nil
	}
	if via != "" && via != from && via != to {
		a, okA := t.perUnit(from, via, d)
		b, okB := t.perUnit(to, via, d)
		if okA && okB {
			return a.DivRound(b, 24), nil
		}
	}
	return decimal.Decimal{}, fmt.Errorf("no %s/%s exchange rate on or before %s: %w", from, to, d.Format(time.DateOnly), apperr.ErrFailedPrecondition)
}
