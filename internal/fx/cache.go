package fx

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Cache keeps every stored rate in memory, so that recording a journal entry
// converts without reading the rate table. Rates are append-only and their
// writers serialise (see migration 004), so fx_rates.seq increases in commit
// order: the cache is current exactly when its Seq is still the table's
// max(seq), which the writer checks in the same statement as its write and
// refuses otherwise (then the caller refreshes and tries again).
//
// A programme holds a few currencies with at most daily rates: tens of
// thousands of rows, a few megabytes.
type Cache struct {
	mu  sync.Mutex
	cur *Snapshot
}

// Snapshot is the rate table as of Seq. It is never modified, so readers
// share it without locks.
type Snapshot struct {
	*Table
	Seq int64
}

// Current returns the cached table, loading it on first use.
func (c *Cache) Current(ctx context.Context, q Querier) (*Snapshot, error) {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil {
		return cur, nil
	}
	return c.Refresh(ctx, q)
}

// Refresh reads the rates stored since the cached snapshot and returns the
// newest snapshot. The query runs without the lock (a caller may hold a
// pooled connection while it waits for the lock; holding the lock while
// waiting for a connection could then deadlock). Concurrent refreshes may
// read the same rows; the snapshot with the higher Seq wins, and it holds
// every rate up to its Seq.
func (c *Cache) Refresh(ctx context.Context, q Querier) (*Snapshot, error) {
	c.mu.Lock()
	old := c.cur
	c.mu.Unlock()
	if old == nil {
		old = &Snapshot{Table: &Table{byPair: map[[2]string][]Rate{}}}
	}
	rows, err := q.Query(ctx, `SELECT currency, quote_currency, date, rate, seq FROM fx_rates WHERE seq > $1 ORDER BY seq`, old.Seq)
	if err != nil {
		return nil, fmt.Errorf("loading FX rates: %w", err)
	}
	defer rows.Close()
	next := &Snapshot{Table: &Table{byPair: make(map[[2]string][]Rate, len(old.byPair))}, Seq: old.Seq}
	for k, v := range old.byPair {
		next.byPair[k] = v
	}
	touched := map[[2]string]bool{}
	for rows.Next() {
		var r Rate
		if err := rows.Scan(&r.Currency, &r.QuoteCurrency, &r.Date, &r.Rate, &next.Seq); err != nil {
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
		slices.SortFunc(next.byPair[k], func(a, b Rate) int { return a.Date.Compare(b.Date) })
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && c.cur.Seq >= next.Seq {
		return c.cur, nil
	}
	c.cur = next
	return next, nil
}
