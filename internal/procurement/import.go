package procurement

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// ImportItem is an item to import with its stage history: Input as Create
// takes it (REQUISITIONED on RequisitionedOn, default today) and the later
// stages in the order they were entered, each as Advance takes it (Stage,
// EnteredOn default today, Note). internal/imports/ocds's Process.ItemInput
// gives both.
type ImportItem struct {
	Input  Input
	Stages []StageEntry
}

// ImportIn creates items with their stage histories inside the caller's
// transaction tx, under the rules of Create followed by one Advance per
// stage, all or nothing: if anything is refused, nothing of the call is
// written in tx (the caller still rolls tx back).
//
// Only admins, coordinators and the CLI operator import; other roles are
// PERMISSION_DENIED before anything is read. Violations name
// procurementItems[i].field (the fields of Input) and
// procurementItems[i].stages[j].field (stage, enteredOn, note), every one at
// once: stage j is checked against the last stage of item i that was not
// refused, as successive Advance calls would be. A grant that does not exist
// is INVALID_ARGUMENT naming procurementItems[i].grantId (Create, for one
// item, says NOT_FOUND); the milestone must exist and be in the grant's
// roadmap, as for Create. requestID is required; it is recorded on the audit
// events, but not claimed: the importer makes a run idempotent, not this.
//
// The audit trail gets what Create and Advance write: for each item one
// event with the new item, then one per stage after REQUISITIONED (its
// seq, the stage it left, the stage, day and note), about the grant's donor
// then its recipient; the method is the context's audit.Call. Items read back
// through Get and List as the same items made by Create and Advance would.
// It makes two round trips whatever the number of items: one query reads
// the grants and milestones, one batch writes the items, the stages and the
// audit events.
func (s *Store) ImportIn(ctx context.Context, tx pgx.Tx, items []ImportItem, requestID string) ([]Item, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return nil, fmt.Errorf("importing procurement items: %w", err)
	}
	now := today()
	var v apperr.Validator
	v.Check(requestID != "", "requestId", "required")
	type checked struct {
		description string
		stages      []StageEntry // REQUISITIONED first
	}
	valid := make([]checked, len(items))
	for i, in := range items {
		var iv apperr.Validator
		description, requisitioned := checkInput(&iv, in.Input, now)
		cur := StageEntry{Stage: Requisitioned, EnteredOn: requisitioned}
		stages := make([]StageEntry, 1, 1+len(in.Stages))
		stages[0] = cur
		for j, st := range in.Stages {
			var sv apperr.Validator
			day, note := checkStage(&sv, st.Stage, st.EnteredOn, st.Note, now)
			if sv.Err() == nil {
				checkNext(&sv, cur, st.Stage, day)
			}
			if err := sv.Err(); err != nil {
				_ = iv.Merge(fmt.Sprintf("stages[%d]", j), err)
				continue
			}
			cur = StageEntry{Stage: st.Stage, EnteredOn: day, Note: note}
			stages = append(stages, cur)
		}
		if err := iv.Err(); err != nil {
			_ = v.Merge(fmt.Sprintf("procurementItems[%d]", i), err)
			continue
		}
		valid[i] = checked{description, stages}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []Item{}, nil
	}
	grants, err := importGrants(ctx, tx, items)
	if err != nil {
		return nil, fmt.Errorf("importing procurement items: %w", err)
	}
	out := make([]Item, len(items))
	for i, in := range items {
		g := grants[pair{in.Input.GrantID, in.Input.MilestoneID}]
		switch {
		case !g.grantFound:
			v.Add(fmt.Sprintf("procurementItems[%d].grantId", i), "grant %s does not exist", in.Input.GrantID)
		case !g.milestoneFound:
			v.Add(fmt.Sprintf("procurementItems[%d].milestoneId", i), "milestone %s does not exist", in.Input.MilestoneID)
		case g.milestoneRoadmap != g.RoadmapID:
			v.Add(fmt.Sprintf("procurementItems[%d].milestoneId", i), "milestone %s is not in the grant's roadmap %s",
				in.Input.MilestoneID, g.RoadmapID)
		}
		out[i] = newItem(in.Input, valid[i].description, valid[i].stages[0].EnteredOn, g.grantParties, p.TokenID)
		out[i].Stages = valid[i].stages
		out[i].Stage = valid[i].stages[len(valid[i].stages)-1].Stage
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if out, err = s.writeImport(ctx, tx, out, requestID); err != nil {
		return nil, fmt.Errorf("importing procurement items: %w", err)
	}
	return out, nil
}

type pair struct{ grant, milestone uuid.UUID }

type importGrant struct {
	grantParties
	grantFound, milestoneFound bool
	milestoneRoadmap           string
}

// importGrants reads, in one query, the grant and the milestone's roadmap of
// each distinct (grant, milestone) pair of items.
func importGrants(ctx context.Context, tx pgx.Tx, items []ImportItem) (map[pair]importGrant, error) {
	seen := map[pair]importGrant{}
	var grantIDs, milestoneIDs []string
	for _, in := range items {
		k := pair{in.Input.GrantID, in.Input.MilestoneID}
		if _, ok := seen[k]; !ok {
			seen[k] = importGrant{}
			grantIDs, milestoneIDs = append(grantIDs, k.grant.String()), append(milestoneIDs, k.milestone.String())
		}
	}
	rows, err := tx.Query(ctx, `SELECT x.g::text, x.m::text, g.id IS NOT NULL, coalesce(g.roadmap_id::text, ''),
			coalesce(g.donor_org_id::text, ''), coalesce(g.recipient_org_id::text, ''), m.id IS NOT NULL, coalesce(m.roadmap_id::text, '')
		FROM unnest($1::uuid[], $2::uuid[]) AS x(g, m)
		LEFT JOIN grants g ON g.id = x.g
		LEFT JOIN milestones m ON m.id = x.m`, grantIDs, milestoneIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var gid, mid string
		var g importGrant
		if err := rows.Scan(&gid, &mid, &g.grantFound, &g.RoadmapID, &g.DonorOrgID, &g.RecipientOrgID,
			&g.milestoneFound, &g.milestoneRoadmap); err != nil {
			return nil, err
		}
		seen[pair{uuid.MustParse(gid), uuid.MustParse(mid)}] = g
	}
	return seen, rows.Err()
}

// writeImport writes checked items, their stages and their audit events in
// one batch, and answers the items with the time they were recorded.
func (s *Store) writeImport(ctx context.Context, tx pgx.Tx, items []Item, requestID string) ([]Item, error) {
	n := len(items)
	ids, grants, milestones := make([]string, n), make([]string, n), make([]string, n)
	descriptions, categories, currencies := make([]string, n), make([]string, n), make([]string, n)
	critical, costs, expected := make([]bool, n), make([]string, n), make([]*time.Time, n)
	var stageItems, stageNames, notes []string
	var seqs []int32
	var days []time.Time
	recordedBy := items[0].RecordedBy // the caller's, as for every item
	b := &pgx.Batch{}
	// Queued after the items' and stages' inserts below (a batch runs in
	// order); made first so that a change that cannot be encoded fails before
	// anything is sent.
	events := &pgx.Batch{}
	for i, it := range items {
		ids[i], grants[i], milestones[i] = it.ID, it.GrantID, it.MilestoneID
		descriptions[i], categories[i], currencies[i] = it.Description, it.Category, it.EstimatedCost.Currency
		critical[i], costs[i], expected[i] = it.Critical, numeric(it.EstimatedCost.Value), it.ExpectedDeliveryDate
		subjects := []string{it.donorOrgID, it.recipientOrgID}
		if err := audit.Queue(ctx, events, audit.Entry{EntityType: "procurement_item", EntityID: it.ID, RequestID: requestID,
			Change: createdChange(it), SubjectOrgs: subjects}); err != nil {
			return nil, err
		}
		for j, st := range it.Stages {
			stageItems, seqs, stageNames = append(stageItems, it.ID), append(seqs, int32(j+1)), append(stageNames, st.Stage)
			days, notes = append(days, st.EnteredOn), append(notes, st.Note)
			if j == 0 {
				continue
			}
			if err := audit.Queue(ctx, events, audit.Entry{EntityType: "procurement_item", EntityID: it.ID, RequestID: requestID,
				Change: stageChange{Seq: fmt.Sprint(j + 1), From: it.Stages[j-1].Stage, Stage: st.Stage,
					EnteredOn: st.EnteredOn.Format(time.DateOnly), Note: st.Note, RecordedBy: it.RecordedBy},
				SubjectOrgs: subjects}); err != nil {
				return nil, err
			}
		}
	}
	var recordedAt time.Time
	var written int
	b.Queue(`WITH ins AS (
			INSERT INTO procurement_items (id, grant_id, milestone_id, description, category, critical,
				estimated_cost, currency, expected_delivery_date, recorded_by)
			SELECT id, grant_id, milestone_id, description, category, critical, cost::numeric, currency, expected, $10
			FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[], $9::date[])
				AS x(id, grant_id, milestone_id, description, category, critical, cost, currency, expected)
			RETURNING recorded_at)
		SELECT count(*), coalesce(min(recorded_at), now()) FROM ins`,
		ids, grants, milestones, descriptions, categories, critical, costs, currencies, expected, recordedBy).
		QueryRow(func(r pgx.Row) error { return r.Scan(&written, &recordedAt) })
	b.Queue(`INSERT INTO procurement_stages (item_id, seq, stage, entered_on, note, recorded_by)
		SELECT item_id, seq, stage, entered_on, note, $6
		FROM unnest($1::uuid[], $2::int[], $3::text[], $4::date[], $5::text[]) AS x(item_id, seq, stage, entered_on, note)`,
		stageItems, seqs, stageNames, days, notes, recordedBy)
	b.QueuedQueries = append(b.QueuedQueries, events.QueuedQueries...)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if written != n {
		return nil, fmt.Errorf("%d of %d items written", written, n)
	}
	for i := range items {
		items[i].RecordedAt = recordedAt
	}
	return items, nil
}

// numeric is d as text for a NUMERIC column, keeping its scale (48000.00
// stays 48000.00, as Create writes it through pgx).
func numeric(d decimal.Decimal) string {
	if d.Exponent() < 0 {
		return d.StringFixed(-d.Exponent())
	}
	return d.String()
}
