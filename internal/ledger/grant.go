package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// Grant is one funding agreement from a donor to a recipient.
type Grant struct {
	ID                string          `json:"id"`
	RoadmapID         string          `json:"roadmapId"`
	DonorOrgID        string          `json:"donorOrgId"`
	RecipientOrgID    string          `json:"recipientOrgId"`
	Reference         string          `json:"reference"`
	Title             string          `json:"title"`
	Currency          string          `json:"currency"`
	StartDate         time.Time       `json:"startDate"`
	EndDate           time.Time       `json:"endDate"`
	Pledged           decimal.Decimal `json:"pledged"`
	Allocations       []Allocation    `json:"allocations"`
	CreatedAt         time.Time       `json:"-"`
	ReportingCurrency string          `json:"-"`
}

// Allocation earmarks part of a grant to a milestone, in agreement currency.
type Allocation struct {
	MilestoneID     string          `json:"milestoneId"`
	Amount          decimal.Decimal `json:"amount"`
	ReportingAmount decimal.Decimal `json:"reportingAmount"`
}

// GrantInput is a grant to create, parsed. Violations name its fields as a
// Grant's JSON does (reference, pledged.amount).
type GrantInput struct {
	RoadmapID, DonorOrgID, RecipientOrgID uuid.UUID
	Reference, Title, Currency            string
	Pledged                               money.Amount
	StartDate, EndDate                    time.Time
}

// grantAnswer is a grant as CreateGrant answered it, kept for retries, with
// the fields its plain JSON leaves out.
type grantAnswer struct {
	Grant
	CreatedAt         time.Time `json:"createdAt"`
	ReportingCurrency string    `json:"reportingCurrency"`
}

func (a grantAnswer) grant(id string) Grant {
	g := a.Grant
	g.ID, g.CreatedAt, g.ReportingCurrency = id, a.CreatedAt, a.ReportingCurrency
	if g.Allocations == nil {
		g.Allocations = []Allocation{}
	}
	return g
}

// MaxGrantYears bounds a grant's period: longer is a typo in a year.
const MaxGrantYears = 30

// CreateGrant registers a grant and records its pledge as the first PLEDGE
// entry. A donor creates its own grants; an admin any. The donor must be an
// organisation that funds (org.CanFund), the recipient one that receives
// (org.CanReceive).
func (s *Store) CreateGrant(ctx context.Context, in GrantInput, requestID string) (Grant, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Donor); err != nil {
		return Grant{}, err
	}
	var v apperr.Validator
	g := checkGrant(&v, in)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Grant{}, err
	}
	if p.Role == auth.Donor && p.OrgID != g.DonorOrgID {
		return Grant{}, fmt.Errorf("a donor creates grants of its own organisation only: %w", apperr.ErrPermissionDenied)
	}
	g.ID = uuid.Must(uuid.NewV7()).String()
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id, replay, err := idempotency.Claim(ctx, tx, p.Scope(), "CreateGrant", requestID, in, g.ID)
		if err != nil {
			return err
		}
		if replay {
			// The grant as first answered: its pledge and allocations move later.
			var a grantAnswer
			err := idempotency.LoadAnswer(ctx, tx, p.Scope(), "CreateGrant", requestID, &a)
			g = a.grant(id)
			return err
		}
		rm, err := roadmap.Get(ctx, tx, g.RoadmapID)
		if errors.Is(err, apperr.ErrNotFound) {
			return apperr.Invalid("roadmapId", "roadmap %s does not exist", g.RoadmapID)
		}
		if err != nil {
			return err
		}
		g.ReportingCurrency = rm.ReportingCurrency
		var donorKind, recipientKind string
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT kind FROM organizations WHERE id = $1), ''),
			coalesce((SELECT kind FROM organizations WHERE id = $2), '')`, g.DonorOrgID, g.RecipientOrgID).Scan(&donorKind, &recipientKind); err != nil {
			return err
		}
		var v apperr.Validator
		switch {
		case donorKind == "":
			v.Add("donorOrgId", "organisation %s does not exist", g.DonorOrgID)
		case !org.CanFund(donorKind):
			v.Add("donorOrgId", "a %s organisation does not give grants (donors are %s)", donorKind, strings.Join(org.FundingKinds, ", "))
		}
		switch {
		case recipientKind == "":
			v.Add("recipientOrgId", "organisation %s does not exist", g.RecipientOrgID)
		case !org.CanReceive(recipientKind):
			v.Add("recipientOrgId", "a %s organisation does not receive grants (recipients are %s)", recipientKind, strings.Join(org.ReceivingKinds, ", "))
		}
		if err := v.Err(); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at`,
			g.ID, g.RoadmapID, g.DonorOrgID, g.RecipientOrgID, g.Reference, g.Title, g.Currency, g.StartDate, g.EndDate).Scan(&g.CreatedAt)
		if _, ok := postgres.IsUniqueViolation(err); ok {
			return fmt.Errorf("donor already has a grant with reference %q: %w", g.Reference, apperr.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO grant_balances (grant_id) VALUES ($1)`, g.ID); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, audit.Entry{EntityType: "grant", EntityID: g.ID, Change: g, RequestID: requestID,
			SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}}); err != nil {
			return err
		}
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), "CreateGrant", requestID, grantAnswer{Grant: g, CreatedAt: g.CreatedAt,
			ReportingCurrency: g.ReportingCurrency}); err != nil {
			return err
		}
		if g.Pledged.IsZero() {
			return nil
		}
		pl, err := newPlan(p, []EntryInput{{GrantID: uuid.MustParse(g.ID), Type: Pledge, Amount: in.Pledged,
			ValueDate: in.StartDate, Note: "pledge at grant creation"}})
		if err == nil {
			_, err = s.record(ctx, tx, pl, "", requestID)
		}
		// The pledge entry is the grant's pledged field.
		return apperr.Fields(err, func(f string) string {
			return "pledged." + strings.TrimPrefix(strings.TrimPrefix(f, "[0]."), "amount.")
		})
	})
	if err != nil {
		return Grant{}, fmt.Errorf("creating grant: %w", err)
	}
	return g, nil
}

// checkGrant adds the violations of in's fields to v, in the order of the
// Grant's fields, and returns the grant they describe (texts trimmed). Both
// CreateGrant and CreateGrantsIn check grants with it.
func checkGrant(v *apperr.Validator, in GrantInput) Grant {
	g := Grant{RoadmapID: in.RoadmapID.String(), DonorOrgID: in.DonorOrgID.String(), RecipientOrgID: in.RecipientOrgID.String(),
		Currency: in.Currency, StartDate: in.StartDate, EndDate: in.EndDate, Pledged: in.Pledged.Value}
	v.Check(in.RoadmapID != uuid.Nil, "roadmapId", "required")
	v.Check(in.DonorOrgID != uuid.Nil, "donorOrgId", "required")
	v.Check(in.RecipientOrgID != uuid.Nil, "recipientOrgId", "required")
	v.Check(in.RecipientOrgID == uuid.Nil || in.DonorOrgID != in.RecipientOrgID, "recipientOrgId", "must differ from the donor")
	g.Reference = v.Text("reference", in.Reference, true, 100)
	g.Title = v.Text("title", in.Title, true, 300)
	_, err := money.Currency(in.Currency)
	v.Check(err == nil, "currency", "unknown ISO 4217 currency %q", in.Currency)
	switch {
	case in.Pledged.Currency != in.Currency:
		v.Add("pledged.currency", "must be the agreement currency %s", in.Currency)
	case in.Pledged.Value.IsNegative():
		v.Add("pledged.amount", "must not be negative")
	}
	v.Date("startDate", in.StartDate, true)
	v.Date("endDate", in.EndDate, true)
	switch {
	case in.EndDate.IsZero() || in.StartDate.IsZero(), in.StartDate.Before(apperr.Earliest), in.EndDate.After(apperr.Latest):
		// reported above
	case in.EndDate.Before(in.StartDate):
		v.Add("endDate", "before startDate")
	case in.EndDate.After(in.StartDate.AddDate(MaxGrantYears, 0, 0)):
		v.Add("endDate", "a grant lasts at most %d years", MaxGrantYears)
	}
	return g
}

const grantColumns = `g.id, g.roadmap_id, g.donor_org_id, g.recipient_org_id, g.reference, g.title, g.currency,
	g.start_date, g.end_date, g.created_at, r.reporting_currency, b.pledged, b.allocation_version`

const grantFrom = ` FROM grants g JOIN roadmaps r ON r.id = g.roadmap_id JOIN grant_balances b ON b.grant_id = g.id`

func scanGrant(row pgx.Row, g *Grant, version *int) error {
	return row.Scan(&g.ID, &g.RoadmapID, &g.DonorOrgID, &g.RecipientOrgID, &g.Reference, &g.Title, &g.Currency,
		&g.StartDate, &g.EndDate, &g.CreatedAt, &g.ReportingCurrency, &g.Pledged, version)
}

// getGrant reads a grant with its current allocations; lock takes the
// grant's balance row lock for the rest of the transaction.
func getGrant(ctx context.Context, q postgres.Querier, id string, lock bool) (*Grant, error) {
	g := &Grant{}
	var version int
	sql := `SELECT ` + grantColumns + grantFrom + ` WHERE g.id = $1`
	if lock {
		sql += ` FOR UPDATE OF b`
	}
	if err := scanGrant(q.QueryRow(ctx, sql, id), g, &version); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, notFound(id)
		}
		return nil, err
	}
	one := []Grant{*g}
	if err := attachAllocations(ctx, q, one, map[string]int{id: version}); err != nil {
		return nil, err
	}
	if g.Allocations = one[0].Allocations; g.Allocations == nil {
		g.Allocations = []Allocation{}
	}
	return g, nil
}

// readableGrant returns a grant's unchanging fields (cached) when the caller
// may read it, else NOT_FOUND: what reads of a grant's journal need, without
// GetGrant's balance and allocations.
func (s *Store) readableGrant(ctx context.Context, id string) (*Grant, error) {
	if uuid.Validate(id) != nil {
		return nil, apperr.Invalid("grantId", "not an id: %q", id)
	}
	b := &pgx.Batch{}
	gs := s.queueGrants(b, []string{id})
	if b.Len() > 0 {
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
	}
	g := gs[id]
	if g == nil || !canRead(auth.FromContext(ctx), g) {
		return nil, notFound(id)
	}
	return g, nil
}

// GetGrant returns a grant the caller may read; others are NOT_FOUND, so a
// donor learns nothing of another donor's grants.
func (s *Store) GetGrant(ctx context.Context, id uuid.UUID) (Grant, error) {
	g, err := getGrant(ctx, s.pool, id.String(), false)
	if err != nil {
		return Grant{}, err
	}
	if !canRead(auth.FromContext(ctx), g) {
		return Grant{}, notFound(id.String())
	}
	return *g, nil
}

// GrantFilter narrows ListGrants.
type GrantFilter struct {
	RoadmapID, DonorOrgID, RecipientOrgID uuid.UUID // uuid.Nil: any
	PageSize                              int
	PageToken                             string
}

// ListGrants pages through the grants the caller may read.
func (s *Store) ListGrants(ctx context.Context, f GrantFilter) ([]Grant, string, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Auditor, auth.Donor, auth.Implementer); err != nil {
		return nil, "", err
	}
	after, size, err := paging.Start(f.PageToken, f.PageSize, 50)
	if err != nil {
		return nil, "", err
	}
	// Only the filters given go into the statement, compared as uuids, so
	// every plan of it (generic ones too) can use the filter's index.
	where, args := "g.id > $1", []any{after}
	filter := func(column, id string) {
		if id != "" && id != uuid.Nil.String() {
			args = append(args, id)
			where += fmt.Sprintf(" AND g.%s = $%d", column, len(args))
		}
	}
	filter("roadmap_id", f.RoadmapID.String())
	filter("donor_org_id", f.DonorOrgID.String())
	filter("recipient_org_id", f.RecipientOrgID.String())
	switch p.Role { // a donor lists the grants it gives, an implementer those it receives
	case auth.Donor:
		filter("donor_org_id", p.OrgID)
	case auth.Implementer:
		filter("recipient_org_id", p.OrgID)
	}
	args = append(args, size+1)
	rows, err := s.pool.Query(ctx, `SELECT `+grantColumns+grantFrom+` WHERE `+where+
		fmt.Sprintf(` ORDER BY g.id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing grants: %w", err)
	}
	out, versions, err := collectGrants(rows)
	if err != nil {
		return nil, "", fmt.Errorf("listing grants: %w", err)
	}
	out, next := paging.Next(out, size, func(g Grant) string { return g.ID })
	if err := attachAllocations(ctx, s.pool, out, versions); err != nil {
		return nil, "", fmt.Errorf("listing grants: %w", err)
	}
	return out, next, nil
}

// collectGrants reads rows of grantColumns into grants (allocations to
// attach) and their allocation versions, by id.
func collectGrants(rows pgx.Rows) ([]Grant, map[string]int, error) {
	versions := map[string]int{}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Grant, error) {
		var g Grant
		var version int
		err := scanGrant(r, &g, &version)
		g.Allocations = []Allocation{}
		versions[g.ID] = version
		return g, err
	})
	return out, versions, err
}

// attachAllocations reads the current allocations of a page of grants in one query.
func attachAllocations(ctx context.Context, q postgres.Querier, grants []Grant, versions map[string]int) error {
	if len(grants) == 0 {
		return nil
	}
	ids := make([]string, len(grants))
	vs := make([]int32, len(grants))
	at := make(map[string]int, len(grants))
	for i, g := range grants {
		ids[i], vs[i], at[g.ID] = g.ID, int32(versions[g.ID]), i
	}
	rows, err := q.Query(ctx, `SELECT a.grant_id::text, a.milestone_id, a.amount, a.reporting_amount
		FROM allocations a JOIN unnest($1::uuid[], $2::int[]) AS cur(grant_id, version)
		  ON a.grant_id = cur.grant_id AND a.version = cur.version
		ORDER BY a.grant_id, a.milestone_id`, ids, vs)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a Allocation
		if err := rows.Scan(&id, &a.MilestoneID, &a.Amount, &a.ReportingAmount); err != nil {
			return err
		}
		grants[at[id]].Allocations = append(grants[at[id]].Allocations, a)
	}
	return rows.Err()
}

// AllocationInput is one earmark to set, parsed.
type AllocationInput struct {
	MilestoneID uuid.UUID
	Amount      money.Amount
}

// SetAllocations replaces the grant's allocations. Their sum may not exceed
// what is committed; every milestone must belong to the grant's roadmap.
// Violations name each allocation by its position ([1].amount.amount). A
// retry answers with the allocations as set then, whatever they are now.
func (s *Store) SetAllocations(ctx context.Context, grantID uuid.UUID, in []AllocationInput, requestID string) (Grant, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Donor); err != nil {
		return Grant{}, err
	}
	var v apperr.Validator
	v.Check(requestID != "", "requestId", "required")
	seen := map[uuid.UUID]bool{}
	for i, a := range in {
		f := fmt.Sprintf("[%d].", i)
		v.Check(a.MilestoneID != uuid.Nil, f+"milestoneId", "required")
		v.Check(!seen[a.MilestoneID], f+"milestoneId", "milestone allocated twice")
		seen[a.MilestoneID] = true
		switch {
		case !a.Amount.Value.IsPositive():
			v.Add(f+"amount.amount", "must be positive")
		case a.Amount.Currency != "" && !money.InMinorUnits(a.Amount):
			v.Add(f+"amount.amount", "%s has more decimals than %s allows", a.Amount.Value, a.Amount.Currency)
		}
	}
	if err := v.Err(); err != nil {
		return Grant{}, err
	}
	id := grantID.String()
	// Whether the caller may touch the grant is settled before its row is
	// locked: naming another donor's grant must neither stall its writers
	// nor, by waiting, tell that it exists.
	if _, err := s.readableGrant(ctx, id); err != nil {
		return Grant{}, err
	}
	var out Grant
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		g, err := getGrant(ctx, tx, id, true)
		if err != nil {
			return err
		}
		var a grantAnswer
		if replay, err := idempotency.ClaimAnswer(ctx, tx, p.Scope(), "SetAllocations", requestID, []any{grantID, in}, id, &a); err != nil || replay {
			out = a.grant(id)
			return err
		}
		var v apperr.Validator
		total := decimal.Zero
		ids := make([]string, 0, len(in))
		amounts := make([]decimal.Decimal, 0, len(in))
		for i, a := range in {
			v.Check(a.Amount.Currency == g.Currency, fmt.Sprintf("[%d].amount.currency", i), "must be the agreement currency %s", g.Currency)
			total = total.Add(a.Amount.Value)
			ids, amounts = append(ids, a.MilestoneID.String()), append(amounts, a.Amount.Value)
		}
		if err := v.Err(); err != nil {
			return err
		}
		var inRoadmap int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM milestones WHERE id = ANY ($1::uuid[]) AND roadmap_id = $2`, ids, g.RoadmapID).Scan(&inRoadmap); err != nil {
			return err
		}
		if inRoadmap != len(ids) {
			return apperr.Invalid("", "every milestone must exist in the grant's roadmap")
		}
		var committed decimal.Decimal
		var version int
		if err := tx.QueryRow(ctx, `SELECT committed, allocation_version FROM grant_balances WHERE grant_id = $1`, id).Scan(&committed, &version); err != nil {
			return err
		}
		b := balance{committed: committed, allocated: total}
		if err := b.check(g.Currency); err != nil {
			return err
		}
		today := time.Now().UTC().Truncate(24 * time.Hour)
		rates, err := fx.Load(ctx, tx, []string{g.Currency, g.ReportingCurrency}, today)
		if err != nil {
			return err
		}
		reporting := make([]decimal.Decimal, len(amounts))
		if len(amounts) > 0 {
			r, err := rates.Rate(g.Currency, g.ReportingCurrency, "", today)
			if err != nil {
				return err
			}
			for i, a := range amounts {
				reporting[i] = money.Convert(a, r, false, g.ReportingCurrency)
				if err := money.CheckConverted(reporting[i], g.ReportingCurrency); err != nil {
					return apperr.Invalid(fmt.Sprintf("[%d].amount.amount", i), "%v: check the FX rate", err)
				}
			}
		}
		version++
		if _, err := tx.Exec(ctx, `INSERT INTO allocations (grant_id, version, milestone_id, amount, reporting_amount)
			SELECT $1, $2, * FROM unnest($3::uuid[], $4::numeric[], $5::numeric[])`, id, version, ids, amounts, reporting); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE grant_balances SET allocated = $2, allocation_version = $3 WHERE grant_id = $1`, id, total, version); err != nil {
			return err
		}
		ng, err := getGrant(ctx, tx, id, false)
		if err != nil {
			return err
		}
		out = *ng
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), "SetAllocations", requestID, grantAnswer{Grant: out, CreatedAt: out.CreatedAt,
			ReportingCurrency: out.ReportingCurrency}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "grant", EntityID: id, RequestID: requestID,
			Change:      map[string]any{"allocations": ng.Allocations, "version": version},
			SubjectOrgs: []string{g.DonorOrgID, g.RecipientOrgID}})
	})
	if err != nil {
		return Grant{}, fmt.Errorf("setting allocations: %w", err)
	}
	return out, nil
}
