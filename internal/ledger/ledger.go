// Package ledger is the fiduciary ledger: grants with their allocations, the
// append-only journal of each grant, and the figures derived from it
// (reconciliation, the funding behind each milestone).
//
// Every figure of a grant comes from its journal. grant_balances keeps the
// running totals per grant, in agreement and in reporting currency, written
// with each entry: its row lock serialises the writers of a grant, it carries
// the invariants (balance.go: disbursed ≤ committed, allocated ≤ committed,
// nothing pledged or committed below zero), and current reconciliations read
// it (a test replays the journal against it).
//
// Where things are:
//   - grant.go: grants and allocations;
//   - entry.go: checking, authorising and converting journal entries (both
//     write paths share it);
//   - balance.go: the balance invariants, defined once for both paths;
//   - batch.go: transactions:batchRecord and the pledge of a new grant, in
//     the caller's transaction, two round trips;
//   - single.go and group.go: one entry in one statement, committed in groups;
//   - import.go: the bulk entry points of imports (CreateGrantsIn, RecordIn,
//     FindGrants), in the importer's transaction;
//   - read.go: reading the journal; reconcile.go: reconciliation;
//     funding.go: the funding of milestones, for roadmap coverage.
//
// Domain inputs are parsed values; violations name the fields of the
// resource (amount.amount, valueDate) or, for lists of entries, their
// position ([3].amount.amount). internal/server turns them into request paths.
package ledger

import (
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
)

// Store is the ledger over one database.
type Store struct {
	pool *pgxpool.Pool
	// What never changes once written (grants are append-only, a milestone
	// never moves to another roadmap) is cached per process, so a journal
	// write reads none of it: grant id → *Grant (without its balances and
	// allocations), milestone id → roadmap id.
	grants, milestoneRoadmaps sync.Map
	// rates caches the FX table; writers check it is current (fx.Cache).
	rates fx.Cache
	// commit groups concurrent single-entry writes.
	commit *committer
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, commit: &committer{pool: pool}} }

// canRead: donors read their own grants, implementers the grants they
// receive, everyone else with a read role all grants.
func canRead(p auth.Principal, g *Grant) bool {
	switch p.Role {
	case auth.Admin, auth.Operator, auth.Coordinator, auth.Auditor:
		return true
	case auth.Donor:
		return g.DonorOrgID == p.OrgID
	case auth.Implementer:
		return g.RecipientOrgID == p.OrgID
	}
	return false
}

func notFound(id string) error { return fmt.Errorf("grant %s: %w", id, apperr.ErrNotFound) }
