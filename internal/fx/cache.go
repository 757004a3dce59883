package fx

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Cache keeps every stored rate in memory, so that recording a journal entry
// converts without reading the rate table. Rates are append-only and their
// writers serialise (see migration 004), so fx_rates.seq increases in commit
// order: the cache is current exactly when its Seq is still the table's
// max(seq), which the writer checks in the same statement as its write and
// refuses otherwise (then the caller refreshes and tries again). A correction
// (migration 005) is such a write too: its higher revision replaces the
// superseded rate of its date in the next snapshot.
//
// A programme holds a few currencies with at most daily rates: tens of
// thousands of rows, a few megabytes.
type Cache struct {
	cur atomic.Pointer[Snapshot]
}

// Snapshot is the rate table as of Seq. It is never modified, so readers
// share it without locks.
type Snapshot struct {
	*Table
	Seq int64
}

// Current returns the cached table, loading it on first use.
func (c *Cache) Current(ctx context.Context, q postgres.Querier) (*Snapshot, error) {
	if cur := c.cur.Load(); cur != nil {
		return cur, nil
	}
	return c.Refresh(ctx, q)
}

// Refresh reads the rates stored since the cached snapshot and returns the
// newest snapshot. Nothing is locked while it queries (a caller may hold a
// pooled connection; waiting for a lock held across a query that waits for
// a connection could deadlock). Concurrent refreshes may read the same rows;
// the snapshot with the higher Seq wins, and it holds every rate up to its
// Seq.
func (c *Cache) Refresh(ctx context.Context, q postgres.Querier) (*Snapshot, error) {
	old := c.cur.Load()
	if old == nil {
		old = &Snapshot{Table: &Table{byPair: map[[2]string][]Rate{}}}
	}
	rows, err := q.Query(ctx, `SELECT currency, quote_currency, date, rate, revision, seq FROM fx_rates WHERE seq > $1 ORDER BY seq`, old.Seq)
	if err != nil {
		return nil, fmt.Errorf("loading FX rates: %w", err)
	}
	defer rows.Close()
	next := old // copied on the first new rate
	touched := map[[2]string]bool{}
	for rows.Next() {
		if next == old {
			next = &Snapshot{Table: &Table{byPair: maps.Clone(old.byPair)}, Seq: old.Seq}
		}
		var r Rate
		if err := rows.Scan(&r.Currency, &r.QuoteCurrency, &r.Date, &r.Rate, &r.Revision, &next.Seq); err != nil {
			return nil, fmt.Errorf("loading FX rates: %w", err)
		}
		k := [2]string{r.Currency, r.QuoteCurrency}
		if !touched[k] {
			// Copy before appending: the old snapshot's slices stay as they were.
			next.byPair[k] = slices.Clone(next.byPair[k])
			touched[k] = true
		}
		next.byPair[k] = append(next.byPair[k], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading FX rates: %w", err)
	}
	for k := range touched {
		next.byPair[k] = effective(next.byPair[k])
	}
	for {
		cur := c.cur.Load()
		if cur != nil && cur.Seq >= next.Seq {
			return cur, nil // as new as this one, or newer
		}
		if c.cur.CompareAndSwap(cur, next) {
			return next, nil
		}
	}
}

// effective sorts a pair's rates by date and keeps each date's highest
// revision: a correction supersedes what it corrects. It reuses rs.
func effective(rs []Rate) []Rate {
	slices.SortFunc(rs, func(a, b Rate) int { return cmp.Or(a.Date.Compare(b.Date), cmp.Compare(a.Revision, b.Revision)) })
	out := rs[:0]
	for i, r := range rs {
		if i+1 < len(rs) && rs[i+1].Date.Equal(r.Date) {
			continue // a later revision of the same date follows
		}
		out = append(out, r)
	}
	return out
}
