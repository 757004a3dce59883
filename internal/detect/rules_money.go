package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// moneyRules find duplicate funding and reconciliation gaps in the journal
// and allocations.
//
// Every rule reads the roadmap's journal through liveCTE (one scan of the
// roadmap's entries, however many grants it has) and does its matching in
// SQL with window functions and aggregates over equality keys (never a join
// of rows with rows of their own kind, which a hot key or a stale row
// estimate could turn into a loop over pairs); Go only
// shapes the rows that come back into findings and, for duplicates, joins
// the pairs SQL found into groups (union-find over those pairs, bounded by
// what SQL returned). Details of the entries a finding names are read once
// per rule by id (loadEntries).
var moneyRules = []rule{
	{kind: DuplicateTransaction, find: findDuplicateTransactions},
	{kind: DuplicateExpenditure, find: findDuplicateExpenditures},
	{kind: OverfundedMilestone, find: findOverfundedMilestones},
	{kind: OverlappingGrants, find: findOverlappingGrants},
	{kind: ReceiptMismatch, find: findReceiptMismatches},
	{kind: IdleFunds, find: findIdleFunds},
}

// liveCTE defines the CTE live: the entries of roadmap $1's grants, of the
// given buckets, live as of day $2 by the scope's definition of "as of":
// value_date <= $2, not a reversal, and not reversed by a reversal with
// value_date <= $2. (A reversal dated after $2 leaves its original live; a
// reversal on or before $2 of an entry dated after $2 cancels nothing live.)
//
// The roadmap's entries are read once, by one scan (sequential, or by index
// over the roadmap's grants). Whether an entry is reversed is an anti-join
// on transactions_reverses_id_key, the partial unique index of the few
// entries that reverse another: a probe per entry, or a hash of the
// reversals, whichever the planner prefers; with any row estimate, never a
// comparison of every entry with every reversal. (An anti-join of the
// entries read against themselves was quadratic when statistics were stale
// and the planner took the two sides for one row each.)
//
// nref is the normalised reference, stored with the entry (migration 012):
// lower case, with ASCII spaces and ASCII punctuation removed and every other
// character kept, so `DE-2024/0017` and `de 2024 0017` are one reference
// while `Рахунок-17` and `Акт-17` stay two in any database locale.
func liveCTE(buckets ...string) string {
	return `live AS (
	  SELECT t.id, t.grant_id, t.type, t.amount, t.currency, t.agreement_amount, t.reporting_amount,
	         t.value_date, t.reference, t.norm_reference AS nref, t.milestone_id,
	         g.donor_org_id, g.recipient_org_id, g.currency AS agreement_currency
	  FROM grants g JOIN transactions t ON t.grant_id = g.id
	  WHERE g.roadmap_id = $1 AND t.value_date <= $2::date AND t.bucket IN ('` + strings.Join(buckets, "', '") + `')
	    AND t.type <> 'REVERSAL'
	    AND NOT EXISTS (SELECT FROM transactions r WHERE r.reverses_id = t.id AND r.value_date <= $2::date)
	)`
}

// entry is one journal entry a finding names, with its grant's parties.
type entry struct {
	ID, GrantID, GrantRef, DonorID, RecipientID, Type string
	Currency, AgreementCcy, Reference, MilestoneID    string
	Amount, Agreement, Reporting                      decimal.Decimal
	ValueDate                                         time.Time
}

// loadEntries reads the entries with the given ids (by primary key).
func loadEntries(ctx context.Context, q postgres.Querier, ids []string) (map[string]entry, error) {
	out := make(map[string]entry, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT t.id::text, t.grant_id::text, g.reference, g.donor_org_id::text, g.recipient_org_id::text, t.type,
		t.currency, g.currency, t.reference, coalesce(t.milestone_id::text, ''), t.amount, t.agreement_amount, t.reporting_amount, t.value_date
		FROM transactions t JOIN grants g ON g.id = t.grant_id WHERE t.id = ANY ($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading entries: %w", err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var e entry
		return e, r.Scan(&e.ID, &e.GrantID, &e.GrantRef, &e.DonorID, &e.RecipientID, &e.Type, &e.Currency, &e.AgreementCcy,
			&e.Reference, &e.MilestoneID, &e.Amount, &e.Agreement, &e.Reporting, &e.ValueDate)
	})
	if err != nil {
		return nil, fmt.Errorf("reading entries: %w", err)
	}
	for _, e := range es {
		out[e.ID] = e
	}
	return out, nil
}

// evidence is an entry as a finding's evidence shows it: its amount as
// entered, in the grant's agreement currency and in reporting currency.
func (e entry) evidence(reporting string) map[string]any {
	m := map[string]any{
		"transactionId":   e.ID,
		"grantId":         e.GrantID,
		"type":            e.Type,
		"amount":          moneyJSON(e.Amount, e.Currency),
		"agreementAmount": moneyJSON(e.Agreement, e.AgreementCcy),
		"reportingAmount": moneyJSON(e.Reporting, reporting),
		"valueDate":       dayJSON(e.ValueDate),
		"reference":       e.Reference,
	}
	if e.MilestoneID != "" {
		m["milestoneId"] = e.MilestoneID
	}
	return m
}

// subjects collects the subjects of a finding once each, in a stable order.
type subjects struct {
	seen map[Subject]bool
	list []Subject
}

func (s *subjects) add(typ, id string) {
	if id == "" {
		return
	}
	k := Subject{Type: typ, ID: id}
	if s.seen == nil {
		s.seen = map[Subject]bool{}
	}
	if !s.seen[k] {
		s.seen[k] = true
		s.list = append(s.list, k)
	}
}

// grant adds a grant with its donor and recipient: flags are visible to the
// organisations of the grants they name.
func (s *subjects) grant(id, donor, recipient string) {
	s.add(SubjectGrant, id)
	s.add(SubjectOrganization, donor)
	s.add(SubjectOrganization, recipient)
}

// entry adds an entry with its grant, the grant's parties and its milestone.
func (s *subjects) entry(e entry) {
	s.add(SubjectTransaction, e.ID)
	s.grant(e.GrantID, e.DonorID, e.RecipientID)
	s.add(SubjectMilestone, e.MilestoneID)
}

func (s *subjects) sorted() []Subject {
	out := slices.Clone(s.list)
	slices.SortFunc(out, func(a, b Subject) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// sortedKey joins sorted ids into a finding key.
func sortedKey(prefix string, ids []string) string {
	s := slices.Sorted(slices.Values(ids))
	s = slices.Compact(s)
	if prefix != "" {
		return prefix + ":" + strings.Join(s, ",")
	}
	return strings.Join(s, ",")
}
