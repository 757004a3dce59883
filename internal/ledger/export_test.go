package ledger

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
)

// RecordAsOneGroup prepares each entry as RecordTransaction does and commits
// them all as one group, as the committer groups concurrent writes, so tests
// can decide what shares a transaction. It returns each entry's outcome in
// input order, or the group's error.
func (s *Store) RecordAsOneGroup(ctx context.Context, in []EntryInput, requestIDs []string) ([]string, error) {
	var group []*pending
	for i, e := range in {
		pl, err := newPlan(auth.FromContext(ctx), []EntryInput{e}, "transaction.")
		if err != nil {
			return nil, err
		}
		sum, err := idempotency.Digest(e)
		if err != nil {
			return nil, err
		}
		if err := s.readStatic(ctx, pl); err != nil {
			return nil, err
		}
		if err := pl.found(); err != nil {
			return nil, err
		}
		rates, err := s.rates.Current(ctx, s.pool)
		if err != nil {
			return nil, err
		}
		pl.rates = rates.Table
		out, err := s.prepare(pl, []string{uuid.Must(uuid.NewV7()).String()})
		if err != nil {
			return nil, err
		}
		args, err := entryArgs(ctx, out[0], pl.grants[e.GrantID], requestIDs[i], sum, rates)
		if err != nil {
			return nil, err
		}
		group = append(group, &pending{grantID: e.GrantID, args: args, done: make(chan struct{})})
	}
	inOrder := slices.Clone(group) // flush sorts the group by grant id
	s.commit.flush(group)
	var outcomes []string
	for _, p := range inOrder {
		if p.err != nil {
			return nil, p.err
		}
		outcomes = append(outcomes, p.row.outcome)
	}
	return outcomes, nil
}
