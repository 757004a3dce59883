package ledger

import (
	"context"
	"slices"

	"github.com/tranche-ledger/tranche/internal/auth"
)

// GroupRow is one write's answer in a group.
type GroupRow struct {
	Outcome, PriorEntityID string
}

// RecordAsOneGroup prepares each entry as RecordTransaction does and commits
// them all as one group, as the committer groups concurrent writes, so tests
// can decide what shares a transaction. It returns each entry's answer in
// input order, or the group's error.
func (s *Store) RecordAsOneGroup(ctx context.Context, in []EntryInput, requestIDs []string) ([]GroupRow, error) {
	var group []*pending
	for i, e := range in {
		pl, err := newPlan(auth.FromContext(ctx), []EntryInput{e})
		if err != nil {
			return nil, err
		}
		w, err := s.newSingle(ctx, pl, requestIDs[i])
		if err != nil {
			return nil, err
		}
		t, args, err := w.build(ctx, s)
		if err != nil {
			return nil, err
		}
		group = append(group, &pending{grantID: t.GrantID, args: args, done: make(chan struct{})})
	}
	inOrder := slices.Clone(group) // flush sorts the group by grant id
	s.commit.flush(group)
	var rows []GroupRow
	for _, p := range inOrder {
		if p.err != nil {
			return nil, p.err
		}
		r := GroupRow{Outcome: p.row.outcome}
		if p.row.priorID != nil {
			r.PriorEntityID = *p.row.priorID
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// InvariantRules are the balance invariants as PostgreSQL prints a CHECK
// constraint stating them.
func InvariantRules() []string {
	var out []string
	for _, inv := range invariants {
		if inv.lesser == "0" {
			out = append(out, inv.greater+" >= (0)::numeric")
		} else {
			out = append(out, inv.lesser+" <= "+inv.greater)
		}
	}
	return out
}
