package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// The bulk entry points of imports (internal/imports): grants and journal
// entries written inside the importer's transaction, all or nothing with the
// rest of its work, through the same rules as the API's CreateGrant and
// BatchRecord, without a round trip per record.
//
// Imports are run by admins, coordinators and the CLI's operator; they
// record any entry type on any grant (an FTS flow is a donor's commitment
// and its recipient's receipt alike), while the entries and the audit events
// name the caller as it is. Other roles are refused up front.

// importer checks the caller may import.
func importer(ctx context.Context) (auth.Principal, error) {
	p := auth.FromContext(ctx)
	return p, p.Require(auth.Coordinator) // admins and the operator pass too
}

// CreateGrantsIn registers grants inside tx, all or nothing, with the checks
// of CreateGrant: every field (violations named grants[i].reference), the
// roadmap, the donor an organisation that funds and the recipient one that
// receives, the reference unique per donor (ALREADY_EXISTS naming the
// grant's position, whether it repeats a stored grant or an earlier one of
// in). Each grant gets the audit event CreateGrant writes; a non-zero
// pledge becomes the grant's first PLEDGE entry, valued at its start date,
// recorded through RecordIn (so its audit event is a transaction_batch
// one, per grant and chunk). requestID, which may be empty (the call's then),
// goes into the audit events.
//
// The grants come back as GetGrant reads them.
//
// name(i) names grant i in errors (the importer's source record); nil names
// it grants[i].
func (s *Store) CreateGrantsIn(ctx context.Context, tx pgx.Tx, in []GrantInput, requestID string, name func(i int) string) ([]Grant, error) {
	if _, err := importer(ctx); err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return []Grant{}, nil
	}
	if name == nil {
		name = func(i int) string { return fmt.Sprintf("grants[%d]", i) }
	}
	out, err := s.createGrantsIn(ctx, tx, in, requestID, name)
	if err != nil {
		return nil, fmt.Errorf("importing grants: %w", err)
	}
	return out, nil
}

func (s *Store) createGrantsIn(ctx context.Context, tx pgx.Tx, in []GrantInput, requestID string, name func(int) string) ([]Grant, error) {
	var v apperr.Validator
	gs := make([]Grant, len(in))
	for i, x := range in {
		v.Item(i)
		gs[i] = checkGrant(&v, x)
	}
	if err := v.Err(); err != nil {
		return nil, apperr.Fields(err, func(f string) string {
			if j, rest, ok := item(f); ok {
				return name(j) + "." + rest
			}
			return f
		})
	}
	type key struct{ donor, reference string }
	seen := make(map[key]int, len(in))
	for i, g := range gs {
		k := key{g.DonorOrgID, g.Reference}
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s: donor %s has %s with reference %q in this import already: %w",
				name(i), g.DonorOrgID, name(j), g.Reference, apperr.ErrAlreadyExists)
		}
		seen[k] = i
	}

	// The roadmaps (usually one) and the organisations, in one query.
	reporting := map[string]string{}
	seenOrg := map[string]bool{}
	var orgIDs []string
	for i, g := range gs {
		if _, ok := reporting[g.RoadmapID]; !ok {
			rm, err := roadmap.Get(ctx, tx, g.RoadmapID)
			if errors.Is(err, apperr.ErrNotFound) {
				return nil, apperr.Invalid(name(i)+".roadmapId", "roadmap %s does not exist", g.RoadmapID)
			}
			if err != nil {
				return nil, err
			}
			reporting[g.RoadmapID] = rm.ReportingCurrency
		}
		gs[i].ReportingCurrency = reporting[g.RoadmapID]
		for _, id := range []string{g.DonorOrgID, g.RecipientOrgID} {
			if !seenOrg[id] {
				seenOrg[id] = true
				orgIDs = append(orgIDs, id)
			}
		}
	}
	kinds := make(map[string]string, len(orgIDs))
	rows, err := tx.Query(ctx, `SELECT id::text, kind FROM organizations WHERE id = ANY ($1::uuid[])`, orgIDs)
	if err != nil {
		return nil, err
	}
	var id, kind string
	if _, err := pgx.ForEachRow(rows, []any{&id, &kind}, func() error { kinds[id] = kind; return nil }); err != nil {
		return nil, err
	}
	// Each organisation unfit for a role it has is named once, at the first
	// grant giving it that role.
	v = apperr.Validator{}
	reported := map[string]bool{}
	check := func(i int, field, id string, fits func(string) bool, unfit string, roleKinds []string) {
		if reported[field+id] {
			return
		}
		switch k := kinds[id]; {
		case k == "":
			v.Add(name(i)+"."+field, "organisation %s does not exist", id)
		case !fits(k):
			v.Add(name(i)+"."+field, unfit, k, strings.Join(roleKinds, ", "))
		default:
			return
		}
		reported[field+id] = true
	}
	for i, g := range gs {
		check(i, "donorOrgId", g.DonorOrgID, org.CanFund, "a %s organisation does not give grants (donors are %s)", org.FundingKinds)
		check(i, "recipientOrgId", g.RecipientOrgID, org.CanReceive, "a %s organisation does not receive grants (recipients are %s)", org.ReceivingKinds)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}

	n := len(gs)
	ids, roadmaps, donors, recipients := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	refs, titles, currencies := make([]string, n), make([]string, n), make([]string, n)
	starts, ends := make([]time.Time, n), make([]time.Time, n)
	for i := range gs {
		g := &gs[i]
		g.ID = uuid.Must(uuid.NewV7()).String()
		ids[i], roadmaps[i], donors[i], recipients[i] = g.ID, g.RoadmapID, g.DonorOrgID, g.RecipientOrgID
		refs[i], titles[i], currencies[i], starts[i], ends[i] = g.Reference, g.Title, g.Currency, g.StartDate, g.EndDate
	}
	// A reference stored already, first in the order of in; and the
	// transaction's time, created_at's default, which the audit events carry.
	var at *int
	var ref *string
	var created time.Time
	err = tx.QueryRow(ctx, `SELECT now(), x.n - 1, x.reference
		FROM (SELECT) AS one LEFT JOIN (
			SELECT x.n, x.reference FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS x(donor, reference, n)
			WHERE EXISTS (SELECT FROM grants g WHERE g.donor_org_id = x.donor AND g.reference = x.reference)
			ORDER BY x.n LIMIT 1) AS x ON true`, donors, refs).Scan(&created, &at, &ref)
	if err != nil {
		return nil, err
	}
	if at != nil {
		return nil, fmt.Errorf("%s: donor %s already has a grant with reference %q: %w", name(*at), donors[*at], *ref, apperr.ErrAlreadyExists)
	}

	// The grants and their balance rows, then their audit events, as
	// CreateGrant writes them (its grant has its time and no allocations
	// yet). The events are canonicalised while the grants are written.
	events := make([]audit.Entry, n)
	for i := range gs {
		gs[i].CreatedAt = created
		events[i] = audit.Entry{EntityType: "grant", EntityID: gs[i].ID, Change: gs[i], RequestID: requestID,
			SubjectOrgs: []string{gs[i].DonorOrgID, gs[i].RecipientOrgID}}
	}
	type built struct {
		args []any
		err  error
	}
	eventArgs := make(chan built, 1)
	go func() {
		args, err := auditArgs(ctx, events)
		eventArgs <- built{args, err}
	}()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::date[], $9::date[])`,
		ids, roadmaps, donors, recipients, refs, titles, currencies, starts, ends)
	b.Queue(`INSERT INTO grant_balances (grant_id) SELECT unnest($1::uuid[])`, ids)
	err = tx.SendBatch(ctx, b).Close()
	ev := <-eventArgs
	if _, ok := postgres.IsUniqueViolation(err); ok {
		return nil, fmt.Errorf("a grant's reference was taken meanwhile: %w", apperr.ErrAlreadyExists)
	}
	if err != nil {
		return nil, err
	}
	if ev.err != nil {
		return nil, ev.err
	}
	if _, err := tx.Exec(ctx, auditSQL, ev.args...); err != nil {
		return nil, fmt.Errorf("recording audit events: %w", err)
	}

	var pledges []EntryInput
	var pledged []int // the grant of each pledge
	for i, x := range in {
		gs[i].Allocations = []Allocation{}
		if !x.Pledged.Value.IsZero() {
			pledges = append(pledges, EntryInput{GrantID: uuid.MustParse(gs[i].ID), Type: Pledge, Amount: x.Pledged,
				ValueDate: x.StartDate, Note: "pledge at grant creation"})
			pledged = append(pledged, i)
		}
	}
	if len(pledges) > 0 {
		// The pledge entry is the grant's pledged field.
		_, err := s.recordIn(ctx, tx, pledges, requestID, func(j int, field string) string {
			f := name(pledged[j]) + ".pledged"
			if field == "" {
				return f
			}
			return f + "." + strings.TrimPrefix(field, "amount.")
		})
		if err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// RecordIn records entries inside tx, all or nothing, in chunks of MaxBatch,
// each through BatchRecord's path with a batch id of its own: the balances
// under the grants' row locks, FX conversion, disbursed ≤ committed, the
// reversals, one audit event per grant per chunk. Entries are applied in
// order, across chunks too. name(i) names entry i of in, in violations
// (name(i).amount.amount) and in a refusal of the balances (name(i): ...);
// nil names it transactions[i].
//
// An importer reverses an entry with EntryInput{GrantID, Type: REVERSAL,
// ReversesID}.
func (s *Store) RecordIn(ctx context.Context, tx pgx.Tx, in []EntryInput, requestID string, name func(i int) string) ([]Transaction, error) {
	if _, err := importer(ctx); err != nil {
		return nil, err
	}
	if name == nil {
		name = func(i int) string { return fmt.Sprintf("transactions[%d]", i) }
	}
	out, err := s.recordIn(ctx, tx, in, requestID, func(i int, field string) string {
		if field == "" {
			return name(i)
		}
		return name(i) + "." + field
	})
	if err != nil {
		return nil, fmt.Errorf("importing entries: %w", err)
	}
	return out, nil
}

// recordIn records in in chunks; name(i, field) names field of entry i of
// in (field "": the entry itself) in errors.
func (s *Store) recordIn(ctx context.Context, tx pgx.Tx, in []EntryInput, requestID string,
	name func(i int, field string) string) ([]Transaction, error) {
	p := auth.FromContext(ctx)
	out := make([]Transaction, 0, len(in))
	for start := 0; start < len(in); start += MaxBatch {
		chunk := in[start:min(start+MaxBatch, len(in))]
		rename := func(err error) error {
			return apperr.Fields(err, func(f string) string {
				if j, rest, ok := item(f); ok {
					return name(start+j, rest)
				}
				return f
			})
		}
		// The plan's checks of shape run as an admin's; the entries and
		// audit events name the caller.
		pl, err := newPlan(auth.Principal{Role: auth.Admin}, chunk)
		if err != nil {
			return nil, rename(err)
		}
		pl.p, pl.importing = p, true
		pl.at = func(j int) string { return name(start+j, "") }
		got, err := s.record(ctx, tx, pl, uuid.Must(uuid.NewV7()).String(), requestID)
		if err != nil {
			return nil, rename(err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// item splits a field name "[3].amount.amount" into 3 and "amount.amount".
func item(f string) (int, string, bool) {
	if !strings.HasPrefix(f, "[") {
		return 0, "", false
	}
	end := strings.Index(f, "]")
	if end < 0 {
		return 0, "", false
	}
	j, err := strconv.Atoi(f[1:end])
	if err != nil {
		return 0, "", false
	}
	return j, strings.TrimPrefix(f[end+1:], "."), true
}

// DonorReference names a grant by its donor and its reference (as stored:
// trimmed).
type DonorReference struct{ DonorOrgID, Reference string }

// FindGrants returns the grants of the roadmap among refs, by donor and
// reference, read through q (an importer's transaction), as GetGrant reads
// them: what an import reuses of a previous one. References not found are
// absent from the map. The caller authorises: it is for importers.
func FindGrants(ctx context.Context, q postgres.Querier, roadmapID uuid.UUID, refs []DonorReference) (map[DonorReference]Grant, error) {
	donors, references := make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		if uuid.Validate(r.DonorOrgID) != nil {
			return nil, apperr.Invalid(fmt.Sprintf("refs[%d].donorOrgId", i), "not an id: %q", r.DonorOrgID)
		}
		donors[i], references[i] = r.DonorOrgID, r.Reference
	}
	out := make(map[DonorReference]Grant, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT `+grantColumns+grantFrom+`
		WHERE g.roadmap_id = $1 AND (g.donor_org_id, g.reference) IN (SELECT * FROM unnest($2::uuid[], $3::text[]))
		ORDER BY g.id`, roadmapID, donors, references)
	if err != nil {
		return nil, fmt.Errorf("finding grants: %w", err)
	}
	found, versions, err := collectGrants(rows)
	if err != nil {
		return nil, fmt.Errorf("finding grants: %w", err)
	}
	if err := attachAllocations(ctx, q, found, versions); err != nil {
		return nil, fmt.Errorf("finding grants: %w", err)
	}
	for _, g := range found {
		out[DonorReference{DonorOrgID: g.DonorOrgID, Reference: g.Reference}] = g
	}
	return out, nil
}

// queueAudit queues the audit events of one caller in one statement: the
// rows audit.Queue would write for each, inserted in order.
func queueAudit(ctx context.Context, b *pgx.Batch, events []audit.Entry) error {
	if len(events) == 0 {
		return nil
	}
	args, err := auditArgs(ctx, events)
	if err != nil {
		return err
	}
	b.Queue(auditSQL, args...)
	return nil
}

// auditSQL inserts audit events given as arrays by auditArgs.
const auditSQL = `INSERT INTO audit_events (actor_token_id, actor_name, actor_role, actor_org_id, method,
		entity_type, entity_id, request_id, subject_orgs, change)
	SELECT $1, $2, $3, $4, $5, e.typ, e.id, e.req, array_remove(ARRAY[e.s1, e.s2], NULL), e.change
	FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
		WITH ORDINALITY AS e(typ, id, req, s1, s2, change, n)
	ORDER BY e.n`

// auditArgs are the arguments of auditSQL for events of one caller (ctx),
// each with at most two subject organisations, from audit.Values.
func auditArgs(ctx context.Context, events []audit.Entry) ([]any, error) {
	actor := make([]any, 5)
	n := len(events)
	types, ids, reqs, changes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	s1, s2 := make([]*string, n), make([]*string, n)
	for i, e := range events {
		if len(e.SubjectOrgs) > 2 {
			return nil, fmt.Errorf("recording audit events: at most two subject organisations, got %d", len(e.SubjectOrgs))
		}
		vals, err := audit.Values(ctx, e)
		if err != nil {
			return nil, err
		}
		copy(actor, vals[:5])
		types[i], ids[i], reqs[i], changes[i] = vals[5].(string), vals[6].(string), vals[7].(string), vals[9].(string)
		if subjects := vals[8].([]string); len(subjects) > 0 {
			s1[i] = &subjects[0]
			if len(subjects) > 1 {
				s2[i] = &subjects[1]
			}
		}
	}
	return append(actor, types, ids, reqs, s1, s2, changes), nil
}
