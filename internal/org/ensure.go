package org

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// EnsureIn returns, for each of in, the organisation it names, registering
// those not registered yet, inside the caller's transaction (an importer's):
// all or nothing with the rest of its work. created[i] tells whether out[i]
// was registered by this call. Admin, coordinator and operator only.
//
// An input names an existing organisation
//   - by its FTSOrgID when it has one;
//   - else (none, or none matched) by its IATIRef when it has one: the
//     organisation registered from IATI first is found again from FTS;
//   - else, when it has neither identifier, by its exact name (trimmed),
//     among the organisations that have neither identifier either: a name
//     is matched only when nothing better identifies either side.
//
// A match is returned as stored, its name, kind, country and identifiers
// unchanged (organisations are append-only): the input's other fields are
// ignored, so an FTS id met after its organisation was registered from
// IATI is not recorded. Inputs naming one organisation (by the same keys)
// resolve to it, the first of them registering it. Every input is
// validated, matched or not; violations are named organizations[i].field.
//
// One query matches all inputs and one round trip registers the missing
// ones with their audit events (one per organisation, as Create writes it).
func (s *Store) EnsureIn(ctx context.Context, tx pgx.Tx, in []Organization) (out []Organization, created []bool, err error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return nil, nil, err
	}
	var v apperr.Validator
	for i, o := range in {
		if err := v.Merge(fmt.Sprintf("organizations[%d]", i), o.Validate()); err != nil {
			return nil, nil, err
		}
	}
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	if len(in) == 0 {
		return []Organization{}, []bool{}, nil
	}
	var ftsIDs, iatiRefs, names []string
	for _, o := range in {
		switch {
		case o.FTSOrgID != "":
			ftsIDs = append(ftsIDs, o.FTSOrgID)
			if o.IATIRef != "" { // checked below against a new organisation's IATI identifier
				iatiRefs = append(iatiRefs, o.IATIRef)
			}
		case o.IATIRef != "":
			iatiRefs = append(iatiRefs, o.IATIRef)
		default:
			names = append(names, strings.TrimSpace(o.Name))
		}
	}
	byFTS, byIATI, byName := map[string]int{}, map[string]int{}, map[string]int{}
	var known []Organization // stored and new, indexed by the maps
	index := func(o Organization) {
		k := len(known)
		known = append(known, o)
		switch {
		case o.FTSOrgID != "" || o.IATIRef != "":
			if o.FTSOrgID != "" {
				byFTS[o.FTSOrgID] = k
			}
			if o.IATIRef != "" {
				byIATI[o.IATIRef] = k
			}
		default:
			if _, dup := byName[o.Name]; !dup { // several name-only organisations may share a name: the first wins
				byName[o.Name] = k
			}
		}
	}
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM organizations
		WHERE (fts_org_id <> '' AND fts_org_id = ANY ($1::text[]))
		   OR (iati_ref <> '' AND iati_ref = ANY ($2::text[]))
		   OR (fts_org_id = '' AND iati_ref = '' AND name = ANY ($3::text[]))
		ORDER BY id`, ftsIDs, iatiRefs, names)
	if err != nil {
		return nil, nil, fmt.Errorf("matching organisations: %w", err)
	}
	stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Organization, error) {
		var o Organization
		return o, r.Scan(o.fields()...)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("matching organisations: %w", err)
	}
	for _, o := range stored {
		index(o)
	}

	out, created = make([]Organization, len(in)), make([]bool, len(in))
	var fresh []int // positions in in of the organisations to register
	for i, o := range in {
		o.Name = strings.TrimSpace(o.Name)
		k, ok := 0, false
		if o.FTSOrgID != "" {
			k, ok = byFTS[o.FTSOrgID]
		}
		if !ok && o.IATIRef != "" {
			k, ok = byIATI[o.IATIRef]
		}
		if !ok && o.FTSOrgID == "" && o.IATIRef == "" {
			k, ok = byName[o.Name]
		}
		if ok {
			out[i] = known[k]
			continue
		}
		o.ID = uuid.Must(uuid.NewV7()).String()
		index(o)
		out[i], created[i] = o, true
		fresh = append(fresh, i)
	}
	if len(fresh) == 0 {
		return out, created, nil
	}

	n := len(fresh)
	ids, nm, kinds, iati, country, fts := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	events := make([]audit.Entry, n)
	for j, i := range fresh {
		o := out[i]
		ids[j], nm[j], kinds[j], iati[j], country[j], fts[j] = o.ID, o.Name, o.Kind, o.IATIRef, o.Country, o.FTSOrgID
		events[j] = audit.Entry{EntityType: "organization", EntityID: o.ID, Change: o, SubjectOrgs: []string{o.ID}}
	}
	b := &pgx.Batch{}
	var at time.Time
	b.Queue(`INSERT INTO organizations (id, name, kind, iati_ref, country, fts_org_id)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`,
		ids, nm, kinds, iati, country, fts)
	if err := queueAudit(ctx, b, events); err != nil {
		return nil, nil, err
	}
	b.Queue(`SELECT now()`).QueryRow(func(r pgx.Row) error { return r.Scan(&at) }) // created_at's default
	err = tx.SendBatch(ctx, b).Close()
	if c, ok := postgres.IsUniqueViolation(err); ok {
		// Another transaction registered one of them meanwhile.
		return nil, nil, fmt.Errorf("registering organisations: %s taken meanwhile: %w", c, apperr.ErrAlreadyExists)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("registering organisations: %w", err)
	}
	for _, i := range fresh {
		out[i].CreatedAt = at
	}
	// Inputs resolved to an organisation registered above carry its time too.
	for i := range out {
		if out[i].CreatedAt.IsZero() {
			out[i].CreatedAt = at
		}
	}
	return out, created, nil
}

// queueAudit queues the audit events of one caller in one statement: the
// columns audit.Queue would write for each, inserted in order.
func queueAudit(ctx context.Context, b *pgx.Batch, events []audit.Entry) error {
	if len(events) == 0 {
		return nil
	}
	var actor []any
	types, ids, reqs, changes := make([]string, len(events)), make([]string, len(events)), make([]string, len(events)), make([]string, len(events))
	s1, s2 := make([]*string, len(events)), make([]*string, len(events))
	for i, e := range events {
		if len(e.SubjectOrgs) > 2 {
			return fmt.Errorf("recording audit events: at most two subject organisations, got %d", len(e.SubjectOrgs))
		}
		vals, err := audit.Values(ctx, e)
		if err != nil {
			return err
		}
		actor = vals[:5]
		types[i], ids[i], reqs[i], changes[i] = vals[5].(string), vals[6].(string), vals[7].(string), vals[9].(string)
		subjects := vals[8].([]string)
		if len(subjects) > 0 {
			s1[i] = &subjects[0]
		}
		if len(subjects) > 1 {
			s2[i] = &subjects[1]
		}
	}
	b.Queue(`INSERT INTO audit_events (actor_token_id, actor_name, actor_role, actor_org_id, method,
			entity_type, entity_id, request_id, subject_orgs, change)
		SELECT $1, $2, $3, $4, $5, e.typ, e.id, e.req, array_remove(ARRAY[e.s1, e.s2], NULL), e.change
		FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
			WITH ORDINALITY AS e(typ, id, req, s1, s2, change, n)
		ORDER BY e.n`, append(actor, types, ids, reqs, s1, s2, changes)...)
	return nil
}
