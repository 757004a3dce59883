// Package ledger is the fiduciary ledger: roadmaps and milestones, grants
// with their allocations, the append-only journal of each grant, and the
// figures derived from it (reconciliation, coverage).
//
// Every figure of a grant comes from its journal. grant_balances keeps the
// running totals per grant, in agreement and in reporting currency, written
// with each entry: its row lock serialises the writers of a grant, it carries
// the invariants disbursed ≤ committed and allocated ≤ committed, and current
// reconciliations read it (a test replays the journal against it).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/isocodes"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Store is the ledger over one database.
type Store struct {
	pool *pgxpool.Pool
	// What never changes once written (grants and roadmaps are append-only,
	// a milestone never moves to another roadmap) is cached per process, so
	// a journal write reads none of it: grant id → *Grant (without its
	// balances and allocations), milestone id → roadmap id.
	grants, milestoneRoadmaps sync.Map
	// rates caches the FX table; writers check it is current (fx.Cache).
	rates fx.Cache
	// commit groups concurrent single-entry writes.
	commit *committer
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, commit: &committer{pool: pool}} }

// Roadmap is a national mine action strategy.
type Roadmap struct {
	ID                string    `json:"id"`
	Country           string    `json:"country"`
	Title             string    `json:"title"`
	StartDate         time.Time `json:"startDate"`
	EndDate           time.Time `json:"endDate"`
	ReportingCurrency string    `json:"reportingCurrency"`
	CreatedAt         time.Time `json:"-"`
}

// RoadmapInput is a roadmap as a client sends it.
type RoadmapInput struct {
	Country, Title, StartDate, EndDate, ReportingCurrency string
}

func parseDate(v *apperr.Validator, field, s string, required bool) time.Time {
	if s == "" {
		v.Check(!required, field, "required (YYYY-MM-DD)")
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		v.Add(field, "not a date (YYYY-MM-DD): %q", s)
	}
	return d
}

func text(v *apperr.Validator, field, s string, required bool, max int) string {
	s = strings.TrimSpace(s)
	v.Check(!required || s != "", field, "must not be empty")
	v.Check(utf8.RuneCountInString(s) <= max, field, "at most %d characters", max)
	v.Check(utf8.ValidString(s) && !strings.ContainsRune(s, 0), field, "must be valid UTF-8 text")
	return s
}

// CreateRoadmap registers a roadmap. Coordinator and admin only.
func (s *Store) CreateRoadmap(ctx context.Context, in RoadmapInput, requestID string) (Roadmap, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return Roadmap{}, err
	}
	var v apperr.Validator
	r := Roadmap{Country: in.Country, ReportingCurrency: in.ReportingCurrency}
	v.Check(isocodes.Country(in.Country), "roadmap.country", "unknown ISO 3166-1 alpha-3 country code %q", in.Country)
	r.Title = text(&v, "roadmap.title", in.Title, true, 300)
	r.StartDate = parseDate(&v, "roadmap.startDate", in.StartDate, true)
	r.EndDate = parseDate(&v, "roadmap.endDate", in.EndDate, true)
	v.Check(r.EndDate.IsZero() || !r.EndDate.Before(r.StartDate), "roadmap.endDate", "before startDate")
	_, err := money.Currency(in.ReportingCurrency)
	v.Check(err == nil, "roadmap.reportingCurrency", "unknown ISO 4217 currency %q", in.ReportingCurrency)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Roadmap{}, err
	}
	r.ID = uuid.Must(uuid.NewV7()).String()
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id, replay, err := idempotency.Claim(ctx, tx, "CreateRoadmap", requestID, in, r.ID)
		if err != nil {
			return err
		}
		if replay {
			r, err = getRoadmap(ctx, tx, id)
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
			r.ID, r.Country, r.Title, r.StartDate, r.EndDate, r.ReportingCurrency).Scan(&r.CreatedAt); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "roadmap", EntityID: r.ID, Change: r, RequestID: requestID})
	})
	if err != nil {
		return Roadmap{}, fmt.Errorf("creating roadmap: %w", err)
	}
	return r, nil
}

type querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

const roadmapColumns = `id, country, title, start_date, end_date, reporting_currency, created_at`

func scanRoadmap(row pgx.Row, r *Roadmap) error {
	return row.Scan(&r.ID, &r.Country, &r.Title, &r.StartDate, &r.EndDate, &r.ReportingCurrency, &r.CreatedAt)
}

func getRoadmap(ctx context.Context, q querier, id string) (Roadmap, error) {
	var r Roadmap
	err := scanRoadmap(q.QueryRow(ctx, `SELECT `+roadmapColumns+` FROM roadmaps WHERE id = $1`, id), &r)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("roadmap %s: %w", id, apperr.ErrNotFound)
	}
	return r, err
}

// GetRoadmap returns a roadmap; every role may read roadmaps.
func (s *Store) GetRoadmap(ctx context.Context, id string) (Roadmap, error) {
	if uuid.Validate(id) != nil {
		return Roadmap{}, apperr.Invalid("roadmapId", "not an id: %q", id)
	}
	return getRoadmap(ctx, s.pool, id)
}

// ListRoadmaps pages through roadmaps in creation order.
func (s *Store) ListRoadmaps(ctx context.Context, pageSize int, pageToken string) ([]Roadmap, string, error) {
	after, size, err := paging.Start(pageToken, pageSize, 50)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+roadmapColumns+` FROM roadmaps WHERE id > $1 ORDER BY id LIMIT $2`, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing roadmaps: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Roadmap, error) {
		var x Roadmap
		return x, scanRoadmap(r, &x)
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing roadmaps: %w", err)
	}
	out, next := paging.Next(out, size, func(r Roadmap) string { return r.ID })
	return out, next, nil
}

// Activity types of milestones.
var ActivityTypes = []string{"SURVEY", "CLEARANCE", "EORE", "VICTIM_ASSISTANCE", "CAPACITY_BUILDING", "STOCKPILE_DESTRUCTION", "COORDINATION"}

// Milestone statuses.
var Statuses = []string{"PLANNED", "IN_PROGRESS", "COMPLETED", "SUSPENDED", "CANCELLED"}

// Milestone is one outcome of a roadmap with its funding requirement.
type Milestone struct {
	ID                 string          `json:"id"`
	RoadmapID          string          `json:"roadmapId"`
	Code               string          `json:"code"`
	Title              string          `json:"title"`
	ActivityType       string          `json:"activityType"`
	Region             string          `json:"region"`
	TargetQuantity     decimal.Decimal `json:"targetQuantity"`
	TargetUnit         string          `json:"targetUnit"`
	DueDate            *time.Time      `json:"dueDate,omitempty"`
	FundingRequirement money.Amount    `json:"fundingRequirement"`
	ResponsibleOrgID   string          `json:"responsibleOrgId,omitempty"`
	Status             string          `json:"status"`
	// Latest progress report, if any.
	AchievedQuantity *decimal.Decimal `json:"-"`
	ProgressAsOf     *time.Time       `json:"-"`
}

// MilestoneInput is a milestone as a client sends it.
type MilestoneInput struct {
	Code, Title, ActivityType, Region, TargetQuantity, TargetUnit, DueDate string
	FundingRequirement, FundingCurrency                                    string
	ResponsibleOrgID, Status                                               string
}

// CreateMilestone adds a milestone to a roadmap. Coordinator and admin only.
func (s *Store) CreateMilestone(ctx context.Context, roadmapID string, in MilestoneInput, requestID string) (Milestone, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return Milestone{}, err
	}
	var v apperr.Validator
	const p = "milestone."
	m := Milestone{RoadmapID: roadmapID, Region: in.Region, TargetUnit: in.TargetUnit, ResponsibleOrgID: in.ResponsibleOrgID}
	v.Check(uuid.Validate(roadmapID) == nil, "roadmapId", "not an id: %q", roadmapID)
	m.Code = text(&v, p+"code", in.Code, true, 50)
	m.Title = text(&v, p+"title", in.Title, true, 300)
	v.Check(slices.Contains(ActivityTypes, in.ActivityType), p+"activityType", "unknown activity type %q (want one of %s)", in.ActivityType, strings.Join(ActivityTypes, ", "))
	m.ActivityType = in.ActivityType
	m.Region = text(&v, p+"region", in.Region, false, 50)
	m.TargetUnit = text(&v, p+"targetUnit", in.TargetUnit, false, 50)
	if in.TargetQuantity != "" {
		q, err := money.ParseDecimal(in.TargetQuantity)
		if err != nil || q.IsNegative() {
			v.Add(p+"targetQuantity", "not a non-negative decimal: %q", in.TargetQuantity)
		}
		m.TargetQuantity = q
	}
	if d := parseDate(&v, p+"dueDate", in.DueDate, false); !d.IsZero() {
		m.DueDate = &d
	}
	m.Status = in.Status
	if m.Status == "" {
		m.Status = "PLANNED"
	}
	v.Check(slices.Contains(Statuses, m.Status), p+"status", "unknown status %q (want one of %s)", in.Status, strings.Join(Statuses, ", "))
	req, err := money.Parse(in.FundingRequirement, in.FundingCurrency)
	if err != nil {
		v.Add(p+"fundingRequirement", "%v", err)
	} else if req.IsNegative() {
		v.Add(p+"fundingRequirement", "must not be negative")
	}
	m.FundingRequirement = money.Amount{Value: req, Currency: in.FundingCurrency}
	v.Check(in.ResponsibleOrgID == "" || uuid.Validate(in.ResponsibleOrgID) == nil, p+"responsibleOrgId", "not an id")
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Milestone{}, err
	}
	m.ID = uuid.Must(uuid.NewV7()).String()
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id, replay, err := idempotency.Claim(ctx, tx, "CreateMilestone", requestID, []any{roadmapID, in}, m.ID)
		if err != nil {
			return err
		}
		if replay {
			m, err = getMilestone(ctx, tx, id)
			return err
		}
		rm, err := getRoadmap(ctx, tx, roadmapID)
		if err != nil {
			return err
		}
		if in.FundingCurrency != rm.ReportingCurrency {
			return apperr.Invalid(p+"fundingRequirement.currency", "must be the roadmap's reporting currency %s", rm.ReportingCurrency)
		}
		if m.ResponsibleOrgID != "" {
			if err := mustExist(ctx, tx, "organizations", m.ResponsibleOrgID, p+"responsibleOrgId"); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO milestones (id, roadmap_id, code, title, activity_type, region, target_quantity,
			target_unit, due_date, funding_requirement, responsible_org_id, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, '')::uuid, $12)`,
			m.ID, m.RoadmapID, m.Code, m.Title, m.ActivityType, m.Region, m.TargetQuantity, m.TargetUnit, m.DueDate,
			m.FundingRequirement.Value, m.ResponsibleOrgID, m.Status)
		if _, ok := postgres.IsUniqueViolation(err); ok {
			return fmt.Errorf("milestone code %s already exists in this roadmap: %w", m.Code, apperr.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "milestone", EntityID: m.ID, Change: m,
			SubjectOrgs: []string{m.ResponsibleOrgID}, RequestID: requestID})
	})
	if err != nil {
		return Milestone{}, fmt.Errorf("creating milestone: %w", err)
	}
	return m, nil
}

func mustExist(ctx context.Context, q querier, table, id, field string) error {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return apperr.Invalid(field, "%s does not exist", id)
	}
	return nil
}

const milestoneColumns = `m.id, m.roadmap_id, m.code, m.title, m.activity_type, m.region, m.target_quantity, m.target_unit,
	m.due_date, m.funding_requirement, r.reporting_currency, coalesce(m.responsible_org_id::text, ''), m.status,
	p.achieved_quantity, p.as_of`

const milestoneFrom = ` FROM milestones m JOIN roadmaps r ON r.id = m.roadmap_id
	LEFT JOIN LATERAL (SELECT achieved_quantity, as_of FROM milestone_progress
	                   WHERE milestone_id = m.id ORDER BY as_of DESC, recorded_at DESC LIMIT 1) p ON true`

func scanMilestone(row pgx.Row, m *Milestone) error {
	return row.Scan(&m.ID, &m.RoadmapID, &m.Code, &m.Title, &m.ActivityType, &m.Region, &m.TargetQuantity, &m.TargetUnit,
		&m.DueDate, &m.FundingRequirement.Value, &m.FundingRequirement.Currency, &m.ResponsibleOrgID, &m.Status,
		&m.AchievedQuantity, &m.ProgressAsOf)
}

func getMilestone(ctx context.Context, q querier, id string) (Milestone, error) {
	var m Milestone
	err := scanMilestone(q.QueryRow(ctx, `SELECT `+milestoneColumns+milestoneFrom+` WHERE m.id = $1`, id), &m)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("milestone %s: %w", id, apperr.ErrNotFound)
	}
	return m, err
}

// ProgressReport is one report of what a milestone achieved by a date.
type ProgressReport struct {
	AchievedQuantity decimal.Decimal `json:"achievedQuantity"`
	AsOf             time.Time       `json:"asOf"`
	Note             string          `json:"note"`
	RecordedBy       string          `json:"recordedBy"`
	RecordedAt       time.Time       `json:"-"`
}

// StatusChange is one change of a milestone's status.
type StatusChange struct {
	Status     string    `json:"status"`
	Note       string    `json:"note"`
	RecordedBy string    `json:"recordedBy"`
	RecordedAt time.Time `json:"-"`
}

// GetMilestone returns a milestone with its progress and status history.
func (s *Store) GetMilestone(ctx context.Context, id string) (Milestone, []ProgressReport, []StatusChange, error) {
	if uuid.Validate(id) != nil {
		return Milestone{}, nil, nil, apperr.Invalid("milestoneId", "not an id: %q", id)
	}
	m, err := getMilestone(ctx, s.pool, id)
	if err != nil {
		return m, nil, nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT achieved_quantity, as_of, note, recorded_by, recorded_at FROM milestone_progress
		WHERE milestone_id = $1 ORDER BY as_of, recorded_at`, id)
	if err != nil {
		return m, nil, nil, err
	}
	progress, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProgressReport, error) {
		var p ProgressReport
		return p, r.Scan(&p.AchievedQuantity, &p.AsOf, &p.Note, &p.RecordedBy, &p.RecordedAt)
	})
	if err != nil {
		return m, nil, nil, err
	}
	rows, err = s.pool.Query(ctx, `SELECT status, note, recorded_by, recorded_at FROM milestone_status_history
		WHERE milestone_id = $1 ORDER BY recorded_at`, id)
	if err != nil {
		return m, nil, nil, err
	}
	history, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StatusChange, error) {
		var c StatusChange
		return c, r.Scan(&c.Status, &c.Note, &c.RecordedBy, &c.RecordedAt)
	})
	return m, progress, history, err
}

// ListMilestones returns a roadmap's milestones by code.
func (s *Store) ListMilestones(ctx context.Context, roadmapID string) ([]Milestone, error) {
	if uuid.Validate(roadmapID) != nil {
		return nil, apperr.Invalid("roadmapId", "not an id: %q", roadmapID)
	}
	if _, err := getRoadmap(ctx, s.pool, roadmapID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+milestoneColumns+milestoneFrom+` WHERE m.roadmap_id = $1 ORDER BY m.code`, roadmapID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Milestone, error) {
		var m Milestone
		return m, scanMilestone(r, &m)
	})
}

// ReportProgress appends a progress report. The responsible implementer, a
// coordinator or an admin may report.
func (s *Store) ReportProgress(ctx context.Context, milestoneID, achieved, asOf, note, requestID string) (Milestone, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Implementer); err != nil {
		return Milestone{}, err
	}
	var v apperr.Validator
	q, err := money.ParseDecimal(achieved)
	if err != nil || q.IsNegative() {
		v.Add("achievedQuantity", "not a non-negative decimal: %q", achieved)
	}
	d := parseDate(&v, "asOf", asOf, true)
	note = text(&v, "note", note, false, 2000)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Milestone{}, err
	}
	var m Milestone
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		m, err = getMilestone(ctx, tx, milestoneID)
		if err != nil {
			return err
		}
		if p.Role == auth.Implementer && m.ResponsibleOrgID != p.OrgID {
			return fmt.Errorf("only the responsible organisation reports progress on %s: %w", m.Code, apperr.ErrPermissionDenied)
		}
		id := uuid.Must(uuid.NewV7()).String()
		_, replay, err := idempotency.Claim(ctx, tx, "ReportProgress", requestID, []string{milestoneID, achieved, asOf, note}, id)
		if err != nil || replay {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO milestone_progress (id, milestone_id, achieved_quantity, as_of, note, recorded_by)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, milestoneID, q, d, note, p.TokenID); err != nil {
			return err
		}
		m, err = getMilestone(ctx, tx, milestoneID)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "milestone", EntityID: milestoneID, RequestID: requestID,
			Change:      ProgressReport{AchievedQuantity: q, AsOf: d, Note: note, RecordedBy: p.TokenID},
			SubjectOrgs: []string{m.ResponsibleOrgID}})
	})
	if err != nil {
		return Milestone{}, fmt.Errorf("reporting progress: %w", err)
	}
	return m, nil
}

// SetStatus changes a milestone's status and keeps the change. Coordinator and admin.
func (s *Store) SetStatus(ctx context.Context, milestoneID, status, note, requestID string) (Milestone, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return Milestone{}, err
	}
	var v apperr.Validator
	v.Check(slices.Contains(Statuses, status), "status", "unknown status %q (want one of %s)", status, strings.Join(Statuses, ", "))
	note = text(&v, "note", note, false, 2000)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Milestone{}, err
	}
	var m Milestone
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id := uuid.Must(uuid.NewV7()).String()
		_, replay, err := idempotency.Claim(ctx, tx, "SetMilestoneStatus", requestID, []string{milestoneID, status, note}, id)
		if err != nil {
			return err
		}
		if !replay {
			tag, err := tx.Exec(ctx, `UPDATE milestones SET status = $2 WHERE id = $1`, milestoneID, status)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("milestone %s: %w", milestoneID, apperr.ErrNotFound)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO milestone_status_history (id, milestone_id, status, note, recorded_by)
				VALUES ($1, $2, $3, $4, $5)`, id, milestoneID, status, note, p.TokenID); err != nil {
				return err
			}
		}
		m, err = getMilestone(ctx, tx, milestoneID)
		if err != nil || replay {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "milestone", EntityID: milestoneID, RequestID: requestID,
			Change: StatusChange{Status: status, Note: note, RecordedBy: p.TokenID}, SubjectOrgs: []string{m.ResponsibleOrgID}})
	})
	if err != nil {
		return Milestone{}, fmt.Errorf("setting milestone status: %w", err)
	}
	return m, nil
}
