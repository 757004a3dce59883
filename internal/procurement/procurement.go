// Package procurement tracks the purchases a milestone depends on (detectors,
// PPE, vehicles, mechanical assets, mine detection dogs, services) through
// their stages, so that coordinators see what holds clearance back.
//
// An item belongs to one grant and to one milestone of that grant's roadmap.
// It is written once and never edited; its stages are an append-only history
// (procurement_stages, numbered by seq from 1). Stages only move forward
// through REQUISITIONED → TENDERED → EVALUATED → AWARDED → CONTRACTED →
// DELIVERED → ACCEPTED, skipping allowed; CANCELLED ends any open item;
// nothing follows ACCEPTED or CANCELLED. The day a stage is entered never
// goes back and is never in the future, so the stage an item is in on a day D
// is its stage row with the greatest (entered_on, seq) where entered_on <= D,
// and today that is simply its latest row.
//
// Who may do what: implementers manage (create, advance) items on the grants
// they receive, coordinators and admins on every grant; donors read the items
// on their own grants, implementers those on grants they receive, auditors
// every item. An item the caller may not read is NOT_FOUND, as its grant is.
// Imports (ImportIn, for internal/imports) create items with their whole
// history under the same rules, and are run by admins, coordinators and the
// CLI operator only.
//
// Refusals: a stage that does not move forward (going back, staying, or
// moving a closed item) is INVALID_ARGUMENT naming stage; a day before the
// current stage's day, or in the future, is INVALID_ARGUMENT naming
// enteredOn. Two advances racing from the same stage cannot both be written
// (the primary key (item_id, seq)): the loser is ABORTED with nothing
// written, and may re-read the item and retry.
package procurement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Categories of items.
var Categories = []string{"DETECTORS", "PPE", "VEHICLES", "MECHANICAL", "ANIMALS", "SERVICES", "OTHER"}

// Stages.
const (
	Requisitioned = "REQUISITIONED"
	Tendered      = "TENDERED"
	Evaluated     = "EVALUATED"
	Awarded       = "AWARDED"
	Contracted    = "CONTRACTED"
	Delivered     = "DELIVERED"
	Accepted      = "ACCEPTED"
	Cancelled     = "CANCELLED"
)

// Forward is the order stages move in; CANCELLED stands outside it.
var Forward = []string{Requisitioned, Tendered, Evaluated, Awarded, Contracted, Delivered, Accepted}

// Stages lists every stage.
var Stages = append(slices.Clip(Forward), Cancelled)

// Closed tells whether nothing may follow a stage.
func Closed(stage string) bool { return stage == Accepted || stage == Cancelled }

// Arrived tells whether an item in stage can no longer be late: it was
// delivered (or accepted), or it will never be.
func Arrived(stage string) bool { return stage == Delivered || stage == Accepted || stage == Cancelled }

// MaxDescription bounds an item's description, in characters.
const MaxDescription = 2000

// MaxNote bounds the note of a stage, in characters.
const MaxNote = 2000

// Store is the procurement items of one database.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// StageEntry is one stage an item entered, and the day it did.
type StageEntry struct {
	Stage     string    `json:"stage"`
	EnteredOn time.Time `json:"enteredOn"`
	Note      string    `json:"note"`
}

// Item is a purchase a milestone depends on, with its stage history.
type Item struct {
	ID                   string       `json:"id"`
	GrantID              string       `json:"grantId"`
	MilestoneID          string       `json:"milestoneId"`
	RoadmapID            string       `json:"roadmapId"`
	Description          string       `json:"description"`
	Category             string       `json:"category"`
	Critical             bool         `json:"critical"`
	EstimatedCost        money.Amount `json:"estimatedCost"`
	ExpectedDeliveryDate *time.Time   `json:"expectedDeliveryDate,omitempty"`
	// Stage is the current stage: the last of Stages.
	Stage      string       `json:"stage"`
	Stages     []StageEntry `json:"stages"`
	RecordedBy string       `json:"recordedBy"`
	RecordedAt time.Time    `json:"recordedAt"`
	// The grant's parties, for visibility; not part of the item.
	donorOrgID, recipientOrgID string
}

// LateOn tells whether, on day, the item's expected delivery date has passed
// and it has neither arrived nor been cancelled.
func (it Item) LateOn(day time.Time) bool {
	return it.ExpectedDeliveryDate != nil && it.ExpectedDeliveryDate.Before(day) && !Arrived(it.Stage)
}

// Input is an item to create, parsed. Violations name its fields
// (grantId, milestoneId, description, category, estimatedCost.amount,
// estimatedCost.currency, expectedDeliveryDate, requisitionedOn).
type Input struct {
	GrantID, MilestoneID  uuid.UUID
	Description, Category string
	Critical              bool
	EstimatedCost         money.Amount
	ExpectedDeliveryDate  time.Time // zero: none
	RequisitionedOn       time.Time // zero: today
}

// inRange tells whether d lies within the dates the service accepts. A day
// outside them is already refused as such (apperr.Validator.Date), and
// saying it is also in the future would report one mistake twice.
func inRange(d time.Time) bool { return !d.Before(apperr.Earliest) && !d.After(apperr.Latest) }

// today is the current day, UTC: the default day of a stage and the latest
// one may be entered on.
func today() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

// grantParties is what visibility and audit need of a grant.
type grantParties struct {
	RoadmapID, DonorOrgID, RecipientOrgID string
}

// canRead: donors read the items of their own grants, implementers those of
// grants they receive, every other reading role all items.
func canRead(p auth.Principal, donorOrgID, recipientOrgID string) bool {
	switch p.Role {
	case auth.Admin, auth.Operator, auth.Coordinator, auth.Auditor:
		return true
	case auth.Donor:
		return donorOrgID == p.OrgID
	case auth.Implementer:
		return recipientOrgID == p.OrgID
	}
	return false
}

// mayManage refuses roles that never write procurement (donors, auditors)
// with PERMISSION_DENIED. Which grants an implementer manages is settled by
// canRead: exactly those it receives.
func mayManage(p auth.Principal) error { return p.Require(auth.Coordinator, auth.Implementer) }

func mayRead(p auth.Principal) error {
	return p.Require(auth.Coordinator, auth.Auditor, auth.Donor, auth.Implementer)
}

// readableGrant reads the parties of a grant the caller may read; a grant
// that does not exist and one the caller may not read are alike NOT_FOUND.
func readableGrant(ctx context.Context, q postgres.Querier, p auth.Principal, id uuid.UUID) (grantParties, error) {
	var g grantParties
	err := q.QueryRow(ctx, `SELECT roadmap_id::text, donor_org_id::text, recipient_org_id::text FROM grants WHERE id = $1`, id.String()).
		Scan(&g.RoadmapID, &g.DonorOrgID, &g.RecipientOrgID)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !canRead(p, g.DonorOrgID, g.RecipientOrgID) {
		return g, fmt.Errorf("grant %s: %w", id, apperr.ErrNotFound)
	}
	return g, err
}

// checkCost: a known currency, not negative, within its minor units and the
// bound of every entered amount.
func checkCost(v *apperr.Validator, c money.Amount) {
	if _, err := money.Currency(c.Currency); err != nil {
		v.Add("estimatedCost.currency", "unknown ISO 4217 currency %q", c.Currency)
		return
	}
	switch {
	case c.Value.IsNegative():
		v.Add("estimatedCost.amount", "must not be negative")
	case !money.InMinorUnits(c):
		v.Add("estimatedCost.amount", "%s has more decimals than %s allows", c.Value, c.Currency)
	case c.Value.GreaterThanOrEqual(decimal.New(1, money.MaxIntegerDigits)):
		v.Add("estimatedCost.amount", "too large (at most %d integer digits)", money.MaxIntegerDigits)
	}
}

// checkInput checks an item to create (Create, ImportIn), naming the fields
// Input documents; it answers the description trimmed and the day the item
// is requisitioned (now when none is given).
func checkInput(v *apperr.Validator, in Input, now time.Time) (description string, requisitioned time.Time) {
	v.Check(in.GrantID != uuid.Nil, "grantId", "required")
	v.Check(in.MilestoneID != uuid.Nil, "milestoneId", "required")
	description = v.Text("description", in.Description, true, MaxDescription)
	v.Check(slices.Contains(Categories, in.Category), "category", "unknown category %q (want one of %s)", in.Category, strings.Join(Categories, ", "))
	checkCost(v, in.EstimatedCost)
	requisitioned = in.RequisitionedOn
	if v.Date("requisitionedOn", requisitioned, false); requisitioned.IsZero() {
		requisitioned = now
	}
	v.Check(!requisitioned.After(now) || !inRange(requisitioned), "requisitionedOn",
		"%s is in the future: an item is requisitioned on a day that has happened", requisitioned.Format(time.DateOnly))
	v.Date("expectedDeliveryDate", in.ExpectedDeliveryDate, false)
	v.Check(in.ExpectedDeliveryDate.IsZero() || !in.ExpectedDeliveryDate.Before(requisitioned), "expectedDeliveryDate",
		"%s is before the item is requisitioned (%s)", in.ExpectedDeliveryDate.Format(time.DateOnly), requisitioned.Format(time.DateOnly))
	return description, requisitioned
}

// newItem is the item in makes, checked (checkInput), on grant g, before it
// is written: REQUISITIONED on requisitioned, with a new id (a UUIDv7, so
// ids are in creation order).
func newItem(in Input, description string, requisitioned time.Time, g grantParties, recordedBy string) Item {
	it := Item{ID: uuid.Must(uuid.NewV7()).String(), GrantID: in.GrantID.String(), MilestoneID: in.MilestoneID.String(),
		RoadmapID: g.RoadmapID, Description: description, Category: in.Category, Critical: in.Critical,
		EstimatedCost: in.EstimatedCost, Stage: Requisitioned, Stages: []StageEntry{{Stage: Requisitioned, EnteredOn: requisitioned}},
		RecordedBy: recordedBy, donorOrgID: g.DonorOrgID, recipientOrgID: g.RecipientOrgID}
	if !in.ExpectedDeliveryDate.IsZero() {
		d := in.ExpectedDeliveryDate
		it.ExpectedDeliveryDate = &d
	}
	return it
}

// Create records an item on a grant, REQUISITIONED on in.RequisitionedOn
// (default today). Implementers on the grants they receive, coordinators and
// admins on every grant. The milestone must belong to the grant's roadmap.
func (s *Store) Create(ctx context.Context, in Input, requestID string) (Item, error) {
	p := auth.FromContext(ctx)
	if err := mayManage(p); err != nil {
		return Item{}, err
	}
	var v apperr.Validator
	description, requisitioned := checkInput(&v, in, today())
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Item{}, err
	}
	// Authorised before the request id is claimed, so a replay never answers
	// someone who may not make the request.
	g, err := readableGrant(ctx, s.pool, p, in.GrantID)
	if err != nil {
		return Item{}, fmt.Errorf("creating procurement item: %w", err)
	}
	it := newItem(in, description, requisitioned, g, p.TokenID)
	const method = "CreateProcurementItem"
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var first Item
		if replay, err := idempotency.ClaimAnswer(ctx, tx, p.Scope(), method, requestID, in, it.ID, &first); err != nil || replay {
			it = first
			return err
		}
		var milestoneRoadmap string
		err := tx.QueryRow(ctx, `SELECT roadmap_id::text FROM milestones WHERE id = $1`, it.MilestoneID).Scan(&milestoneRoadmap)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return apperr.Invalid("milestoneId", "milestone %s does not exist", it.MilestoneID)
		case err != nil:
			return err
		case milestoneRoadmap != g.RoadmapID:
			return apperr.Invalid("milestoneId", "milestone %s is not in the grant's roadmap %s", it.MilestoneID, g.RoadmapID)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO procurement_items (id, grant_id, milestone_id, description, category, critical,
			estimated_cost, currency, expected_delivery_date, recorded_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING recorded_at`,
			it.ID, it.GrantID, it.MilestoneID, it.Description, it.Category, it.Critical, it.EstimatedCost.Value,
			it.EstimatedCost.Currency, it.ExpectedDeliveryDate, it.RecordedBy).Scan(&it.RecordedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO procurement_stages (item_id, seq, stage, entered_on, note, recorded_by)
			VALUES ($1, 1, $2, $3, '', $4)`, it.ID, Requisitioned, requisitioned, it.RecordedBy); err != nil {
			return err
		}
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), method, requestID, it); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "procurement_item", EntityID: it.ID, RequestID: requestID,
			Change: createdChange(it), SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}})
	})
	if err != nil {
		return Item{}, fmt.Errorf("creating procurement item: %w", err)
	}
	return it, nil
}

// Advance moves an item to stage on enteredOn (default today): a later stage
// than its current one (skipping allowed), or CANCELLED from an open stage.
// Same roles as Create. The answer carries the item's whole history.
func (s *Store) Advance(ctx context.Context, itemID uuid.UUID, stage string, enteredOn time.Time, note, requestID string) (Item, error) {
	p := auth.FromContext(ctx)
	if err := mayManage(p); err != nil {
		return Item{}, err
	}
	var v apperr.Validator
	day, note := checkStage(&v, stage, enteredOn, note, today())
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Item{}, err
	}
	// Authorised before the claim, and before anything of the item is read
	// in the write's transaction.
	if _, err := s.Get(ctx, itemID); err != nil {
		return Item{}, fmt.Errorf("advancing procurement item: %w", err)
	}
	const method = "AdvanceProcurementItem"
	var out Item
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		out = Item{}
		if replay, err := idempotency.ClaimAnswer(ctx, tx, p.Scope(), method, requestID, []any{itemID, stage, enteredOn, note},
			itemID.String(), &out); err != nil || replay {
			return err
		}
		var seq int
		var cur StageEntry
		if err := tx.QueryRow(ctx, `SELECT seq, stage, entered_on FROM procurement_stages WHERE item_id = $1 ORDER BY seq DESC LIMIT 1`,
			itemID.String()).Scan(&seq, &cur.Stage, &cur.EnteredOn); err != nil {
			return err
		}
		var v apperr.Validator
		checkNext(&v, cur, stage, day)
		if err := v.Err(); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO procurement_stages (item_id, seq, stage, entered_on, note, recorded_by)
			VALUES ($1, $2, $3, $4, $5, $6)`, itemID.String(), seq+1, stage, day, note, p.TokenID)
		if _, ok := postgres.IsUniqueViolation(err); ok {
			return fmt.Errorf("item %s moved from %s while this request was being handled; nothing was written: read it again and retry: %w",
				itemID, cur.Stage, apperr.ErrAborted)
		}
		if err != nil {
			return err
		}
		items, err := s.read(ctx, tx, []uuid.UUID{itemID})
		if err != nil {
			return err
		}
		out = items[0]
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), method, requestID, out); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "procurement_item", EntityID: out.ID, RequestID: requestID,
			Change: stageChange{Seq: fmt.Sprint(seq + 1), From: cur.Stage, Stage: stage, EnteredOn: day.Format(time.DateOnly), Note: note,
				RecordedBy: p.TokenID},
			SubjectOrgs: []string{out.donorOrgID, out.recipientOrgID}})
	})
	if err != nil {
		return Item{}, fmt.Errorf("advancing procurement item: %w", err)
	}
	return out, nil
}

// checkStage checks a stage to enter on its own (Advance, ImportIn), naming
// stage, enteredOn and note; it answers the day (now when none is given) and
// the note trimmed. Whether it may follow the item's current stage is
// checkNext's.
func checkStage(v *apperr.Validator, stage string, enteredOn time.Time, note string, now time.Time) (time.Time, string) {
	v.Check(slices.Contains(Stages, stage), "stage", "unknown stage %q (want one of %s)", stage, strings.Join(Stages, ", "))
	day := enteredOn
	if v.Date("enteredOn", day, false); day.IsZero() {
		day = now
	}
	v.Check(!day.After(now) || !inRange(day), "enteredOn", "%s is in the future: a stage is entered on a day that has happened",
		day.Format(time.DateOnly))
	note = v.Text("note", note, false, MaxNote)
	// Items are never edited: a cancellation's note is the only record of
	// why the purchase was given up (a mistaken item, a failed acceptance).
	v.Check(stage != Cancelled || note != "", "note", "required to cancel an item: say why")
	return day, note
}

// checkNext names stage or enteredOn when an item whose current stage is cur
// may not enter stage (checked by checkStage) on day.
func checkNext(v *apperr.Validator, cur StageEntry, stage string, day time.Time) {
	checkMove(v, cur, stage)
	v.Check(!day.Before(cur.EnteredOn), "enteredOn", "%s is before %s, the day the item entered %s",
		day.Format(time.DateOnly), cur.EnteredOn.Format(time.DateOnly), cur.Stage)
}

// checkMove names stage when moving from cur to it is not forward.
func checkMove(v *apperr.Validator, cur StageEntry, stage string) {
	switch {
	case Closed(cur.Stage):
		v.Add("stage", "the item is %s since %s: nothing follows %s", cur.Stage, cur.EnteredOn.Format(time.DateOnly), cur.Stage)
	case stage == Cancelled:
	case slices.Index(Forward, stage) <= slices.Index(Forward, cur.Stage):
		v.Add("stage", "the item is %s: stages only move forward (%s), or to %s", cur.Stage, strings.Join(Forward, " → "), Cancelled)
	}
}

// createdChange is what the audit trail keeps of a new item: dates as days,
// money as the API writes it.
func createdChange(it Item) itemChange {
	c := itemChange{ID: it.ID, GrantID: it.GrantID, MilestoneID: it.MilestoneID, RoadmapID: it.RoadmapID,
		Description: it.Description, Category: it.Category, Critical: it.Critical,
		EstimatedCost: costJSON{Amount: money.Format(it.EstimatedCost.Value, it.EstimatedCost.Currency), Currency: it.EstimatedCost.Currency},
		Stage:         Requisitioned, RequisitionedOn: it.Stages[0].EnteredOn.Format(time.DateOnly), RecordedBy: it.RecordedBy}
	if it.ExpectedDeliveryDate != nil {
		c.ExpectedDeliveryDate = it.ExpectedDeliveryDate.Format(time.DateOnly)
	}
	return c
}

type costJSON struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

type itemChange struct {
	ID                   string   `json:"id"`
	GrantID              string   `json:"grantId"`
	MilestoneID          string   `json:"milestoneId"`
	RoadmapID            string   `json:"roadmapId"`
	Description          string   `json:"description"`
	Category             string   `json:"category"`
	Critical             bool     `json:"critical"`
	EstimatedCost        costJSON `json:"estimatedCost"`
	ExpectedDeliveryDate string   `json:"expectedDeliveryDate,omitempty"`
	Stage                string   `json:"stage"`
	RequisitionedOn      string   `json:"requisitionedOn"`
	RecordedBy           string   `json:"recordedBy"`
}

// stageChange is what the audit trail keeps of an advance.
type stageChange struct {
	Seq        string `json:"seq"`
	From       string `json:"from"`
	Stage      string `json:"stage"`
	EnteredOn  string `json:"enteredOn"`
	Note       string `json:"note"`
	RecordedBy string `json:"recordedBy"`
}

const itemColumns = `i.id::text, i.grant_id::text, i.milestone_id::text, g.roadmap_id::text, g.donor_org_id::text,
	g.recipient_org_id::text, i.description, i.category, i.critical, i.estimated_cost, i.currency, i.expected_delivery_date,
	i.recorded_by, i.recorded_at`

func scanItem(row pgx.Row, it *Item) error {
	return row.Scan(&it.ID, &it.GrantID, &it.MilestoneID, &it.RoadmapID, &it.donorOrgID, &it.recipientOrgID, &it.Description,
		&it.Category, &it.Critical, &it.EstimatedCost.Value, &it.EstimatedCost.Currency, &it.ExpectedDeliveryDate,
		&it.RecordedBy, &it.RecordedAt)
}

// read reads items with their stages, in the order of ids; an id that does
// not exist is NOT_FOUND. It checks no visibility.
func (s *Store) read(ctx context.Context, q postgres.Querier, ids []uuid.UUID) ([]Item, error) {
	text := make([]string, len(ids))
	for i, id := range ids {
		text[i] = id.String()
	}
	rows, err := q.Query(ctx, `SELECT `+itemColumns+` FROM procurement_items i JOIN grants g ON g.id = i.grant_id
		WHERE i.id = ANY ($1::uuid[])`, text)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Item, error) {
		var it Item
		return it, scanItem(r, &it)
	})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]Item, len(found))
	for _, it := range found {
		byID[it.ID] = it
	}
	out := make([]Item, len(ids))
	for i, id := range ids {
		it, ok := byID[id.String()]
		if !ok {
			return nil, fmt.Errorf("procurement item %s: %w", id, apperr.ErrNotFound)
		}
		out[i] = it
	}
	return out, attachStages(ctx, q, out)
}

// attachStages reads the stage histories of items in one query and sets
// their current stage.
func attachStages(ctx context.Context, q postgres.Querier, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	ids := make([]string, len(items))
	at := make(map[string]int, len(items))
	for i, it := range items {
		ids[i], at[it.ID] = it.ID, i
		items[i].Stages = []StageEntry{}
	}
	rows, err := q.Query(ctx, `SELECT item_id::text, stage, entered_on, note FROM procurement_stages
		WHERE item_id = ANY ($1::uuid[]) ORDER BY item_id, seq`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var e StageEntry
		if err := rows.Scan(&id, &e.Stage, &e.EnteredOn, &e.Note); err != nil {
			return err
		}
		it := &items[at[id]]
		it.Stages = append(it.Stages, e)
		it.Stage = e.Stage
	}
	return rows.Err()
}

// Get returns an item the caller may read; others are NOT_FOUND, so a donor
// learns nothing of another donor's procurement.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Item, error) {
	p := auth.FromContext(ctx)
	if err := mayRead(p); err != nil {
		return Item{}, err
	}
	items, err := s.read(ctx, s.pool, []uuid.UUID{id})
	if err != nil {
		return Item{}, err
	}
	if !canRead(p, items[0].donorOrgID, items[0].recipientOrgID) {
		return Item{}, fmt.Errorf("procurement item %s: %w", id, apperr.ErrNotFound)
	}
	return items[0], nil
}

// Filter narrows List. Zero values filter nothing.
type Filter struct {
	RoadmapID, GrantID, MilestoneID uuid.UUID
	// Stage is the current stage.
	Stage string
	// Late keeps only items late today (Item.LateOn).
	Late      bool
	PageSize  int
	PageToken string
}

// List pages through the items the caller may read, in creation order (by
// id, a UUIDv7), so pages are stable while items are added.
func (s *Store) List(ctx context.Context, f Filter) ([]Item, string, error) {
	p := auth.FromContext(ctx)
	if err := mayRead(p); err != nil {
		return nil, "", err
	}
	if f.Stage != "" && !slices.Contains(Stages, f.Stage) {
		return nil, "", apperr.Invalid("stage", "unknown stage %q (want one of %s)", f.Stage, strings.Join(Stages, ", "))
	}
	after, size, err := paging.Start(f.PageToken, f.PageSize, 50)
	if err != nil {
		return nil, "", err
	}
	// Only the filters given go into the statement, so its plan can use
	// their indexes. Filters on the grant (its roadmap; the caller's
	// organisation as donor or recipient) become the list of the grants that
	// match, read first through the grants' own indexes, then the items of
	// those grants through procurement_items_grant: were they conditions on
	// the joined grant, the planner would walk every item in id order,
	// expecting matches to come soon, and read the whole table when few or
	// none do.
	where, args := "i.id > $1", []any{after}
	filter := func(column string, value any) {
		args = append(args, value)
		where += fmt.Sprintf(" AND %s = $%d", column, len(args))
	}
	var ofGrants []string
	grantFilter := func(column, value string) {
		args = append(args, value)
		ofGrants = append(ofGrants, fmt.Sprintf("%s = $%d", column, len(args)))
	}
	if f.RoadmapID != uuid.Nil {
		grantFilter("roadmap_id", f.RoadmapID.String())
	}
	switch p.Role {
	case auth.Donor:
		grantFilter("donor_org_id", p.OrgID)
	case auth.Implementer:
		grantFilter("recipient_org_id", p.OrgID)
	}
	if len(ofGrants) > 0 {
		where += " AND i.grant_id = ANY (ARRAY(SELECT id FROM grants WHERE " + strings.Join(ofGrants, " AND ") + "))"
	}
	if f.GrantID != uuid.Nil {
		filter("i.grant_id", f.GrantID.String())
	}
	if f.MilestoneID != uuid.Nil {
		filter("i.milestone_id", f.MilestoneID.String())
	}
	if f.Stage != "" {
		filter("s.stage", f.Stage)
	}
	if f.Late {
		args = append(args, today())
		where += fmt.Sprintf(" AND i.expected_delivery_date < $%d AND s.stage NOT IN ('DELIVERED', 'ACCEPTED', 'CANCELLED')", len(args))
	}
	args = append(args, size+1)
	// The current stage is the item's last stage row (the primary key's
	// newest entry): stage days never go back and are never in the future.
	rows, err := s.pool.Query(ctx, `SELECT `+itemColumns+` FROM procurement_items i JOIN grants g ON g.id = i.grant_id
		CROSS JOIN LATERAL (SELECT stage FROM procurement_stages WHERE item_id = i.id ORDER BY seq DESC LIMIT 1) s
		WHERE `+where+fmt.Sprintf(` ORDER BY i.id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing procurement items: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Item, error) {
		var it Item
		return it, scanItem(r, &it)
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing procurement items: %w", err)
	}
	out, next := paging.Next(out, size, func(it Item) string { return it.ID })
	if err := attachStages(ctx, s.pool, out); err != nil {
		return nil, "", fmt.Errorf("listing procurement items: %w", err)
	}
	return out, next, nil
}
