package roadmap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Activity types of milestones.
var ActivityTypes = []string{"SURVEY", "CLEARANCE", "EORE", "VICTIM_ASSISTANCE", "CAPACITY_BUILDING", "STOCKPILE_DESTRUCTION", "COORDINATION"}

// Milestone statuses.
const (
	Planned    = "PLANNED"
	InProgress = "IN_PROGRESS"
	Completed  = "COMPLETED"
	Suspended  = "SUSPENDED"
	Cancelled  = "CANCELLED"
)

// Statuses lists the milestone statuses.
var Statuses = []string{Planned, InProgress, Completed, Suspended, Cancelled}

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

// MilestoneInput is a milestone to create, parsed. Violations name its
// fields (code, title, activityType, …, fundingRequirement.amount).
type MilestoneInput struct {
	Code, Title, ActivityType, Region string
	TargetQuantity                    decimal.Decimal
	TargetUnit                        string
	DueDate                           time.Time // zero: none
	FundingRequirement                money.Amount
	ResponsibleOrgID                  uuid.UUID // uuid.Nil: none
	Status                            string
}

// CreateMilestone adds a milestone to a roadmap. Coordinator and admin only.
func (s *Store) CreateMilestone(ctx context.Context, roadmapID uuid.UUID, in MilestoneInput, requestID string) (Milestone, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return Milestone{}, err
	}
	var v apperr.Validator
	m := Milestone{RoadmapID: roadmapID.String(), ActivityType: in.ActivityType, TargetQuantity: in.TargetQuantity,
		FundingRequirement: in.FundingRequirement, Status: in.Status}
	m.Code = v.Text("code", in.Code, true, 50)
	m.Title = v.Text("title", in.Title, true, 300)
	v.Check(slices.Contains(ActivityTypes, in.ActivityType), "activityType", "unknown activity type %q (want one of %s)", in.ActivityType, strings.Join(ActivityTypes, ", "))
	m.Region = v.Text("region", in.Region, false, 50)
	v.Check(!in.TargetQuantity.IsNegative(), "targetQuantity", "must not be negative")
	m.TargetUnit = v.Text("targetUnit", in.TargetUnit, false, 50)
	if v.Date("dueDate", in.DueDate, false); !in.DueDate.IsZero() {
		m.DueDate = &in.DueDate
	}
	v.Check(!in.FundingRequirement.Value.IsNegative(), "fundingRequirement.amount", "must not be negative")
	if in.ResponsibleOrgID != uuid.Nil {
		m.ResponsibleOrgID = in.ResponsibleOrgID.String()
	}
	if m.Status == "" {
		m.Status = Planned
	}
	v.Check(slices.Contains(Statuses, m.Status), "status", "unknown status %q (want one of %s)", in.Status, strings.Join(Statuses, ", "))
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Milestone{}, err
	}
	m.ID = uuid.Must(uuid.NewV7()).String()
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if replayed, err := claim(ctx, tx, p, "CreateMilestone", requestID, []any{roadmapID, in}, m.ID, &m); err != nil || replayed {
			return err
		}
		rm, err := Get(ctx, tx, m.RoadmapID)
		if err != nil {
			return err
		}
		if in.FundingRequirement.Currency != rm.ReportingCurrency {
			return apperr.Invalid("fundingRequirement.currency", "must be the roadmap's reporting currency %s", rm.ReportingCurrency)
		}
		if m.ResponsibleOrgID != "" {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM organizations WHERE id = $1)`, m.ResponsibleOrgID).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return apperr.Invalid("responsibleOrgId", "%s does not exist", m.ResponsibleOrgID)
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
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), "CreateMilestone", requestID, answer(m)); err != nil {
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

func getMilestone(ctx context.Context, q postgres.Querier, id string) (Milestone, error) {
	var m Milestone
	err := scanMilestone(q.QueryRow(ctx, `SELECT `+milestoneColumns+milestoneFrom+` WHERE m.id = $1`, id), &m)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("milestone %s: %w", id, apperr.ErrNotFound)
	}
	return m, err
}

// QueueMilestoneRoadmaps queues, on a batch the caller sends, the read of
// which roadmap each milestone belongs to; found ones are put in into when
// the batch runs. Domains that tag records with milestones read it with
// their own reads in one round trip.
func QueueMilestoneRoadmaps(b *pgx.Batch, ids []string, into map[string]string) {
	if len(ids) == 0 {
		return
	}
	b.Queue(`SELECT id::text, roadmap_id::text FROM milestones WHERE id = ANY ($1::uuid[])`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id, rm string
			if err := rows.Scan(&id, &rm); err != nil {
				return err
			}
			into[id] = rm
		}
		return rows.Err()
	})
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
func (s *Store) GetMilestone(ctx context.Context, id uuid.UUID) (Milestone, []ProgressReport, []StatusChange, error) {
	m, err := getMilestone(ctx, s.pool, id.String())
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
func (s *Store) ListMilestones(ctx context.Context, roadmapID uuid.UUID) ([]Milestone, error) {
	if _, err := Get(ctx, s.pool, roadmapID.String()); err != nil {
		return nil, err
	}
	return listMilestones(ctx, s.pool, roadmapID.String())
}

func listMilestones(ctx context.Context, q postgres.Querier, roadmapID string) ([]Milestone, error) {
	rows, err := q.Query(ctx, `SELECT `+milestoneColumns+milestoneFrom+` WHERE m.roadmap_id = $1 ORDER BY m.code`, roadmapID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Milestone, error) {
		var m Milestone
		return m, scanMilestone(r, &m)
	})
}

// ReportProgress appends a progress report. The responsible implementer, a
// coordinator or an admin may report; a report is as of a day that has
// happened.
func (s *Store) ReportProgress(ctx context.Context, milestoneID uuid.UUID, achieved decimal.Decimal, asOf time.Time, note, requestID string) (Milestone, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Implementer); err != nil {
		return Milestone{}, err
	}
	var v apperr.Validator
	v.Check(!achieved.IsNegative(), "achievedQuantity", "must not be negative")
	v.Date("asOf", asOf, true)
	v.Check(!asOf.After(today()), "asOf", "%s is in the future: progress is reported for what has been achieved", asOf.Format(time.DateOnly))
	note = v.Text("note", note, false, 2000)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Milestone{}, err
	}
	var m Milestone
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		m, err = getMilestone(ctx, tx, milestoneID.String())
		if err != nil {
			return err
		}
		if p.Role == auth.Implementer && m.ResponsibleOrgID != p.OrgID {
			return fmt.Errorf("only the responsible organisation reports progress on %s: %w", m.Code, apperr.ErrPermissionDenied)
		}
		id := uuid.Must(uuid.NewV7()).String()
		if replayed, err := claim(ctx, tx, p, "ReportProgress", requestID, []any{milestoneID, achieved, asOf, note}, id, &m); err != nil || replayed {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO milestone_progress (id, milestone_id, achieved_quantity, as_of, note, recorded_by)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, milestoneID, achieved, asOf, note, p.TokenID); err != nil {
			return err
		}
		if m, err = getMilestone(ctx, tx, milestoneID.String()); err != nil {
			return err
		}
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), "ReportProgress", requestID, answer(m)); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "milestone", EntityID: m.ID, RequestID: requestID,
			Change:      ProgressReport{AchievedQuantity: achieved, AsOf: asOf, Note: note, RecordedBy: p.TokenID},
			SubjectOrgs: []string{m.ResponsibleOrgID}})
	})
	if err != nil {
		return Milestone{}, fmt.Errorf("reporting progress: %w", err)
	}
	return m, nil
}

// milestoneAnswer is a milestone as answered, kept for retries: with the
// latest progress its plain JSON leaves out.
type milestoneAnswer struct {
	Milestone
	AchievedQuantity *decimal.Decimal `json:"achievedQuantity,omitempty"`
	ProgressAsOf     *time.Time       `json:"progressAsOf,omitempty"`
}

func answer(m Milestone) milestoneAnswer {
	return milestoneAnswer{Milestone: m, AchievedQuantity: m.AchievedQuantity, ProgressAsOf: m.ProgressAsOf}
}

func (a milestoneAnswer) milestone() Milestone {
	m := a.Milestone
	m.AchievedQuantity, m.ProgressAsOf = a.AchievedQuantity, a.ProgressAsOf
	return m
}

// claim claims a request id for a milestone write; on a retry it puts the
// milestone as first answered in m (its status and progress move later) and
// says so.
func claim(ctx context.Context, tx pgx.Tx, p auth.Principal, method, requestID string, payload any, id string, m *Milestone) (bool, error) {
	var a milestoneAnswer
	replay, err := idempotency.ClaimAnswer(ctx, tx, p.Scope(), method, requestID, payload, id, &a)
	if replay {
		*m = a.milestone()
	}
	return replay, err
}

func today() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

// reopens tells whether moving from one status to another takes back what
// was settled (a milestone completed or cancelled becomes open again, or
// started work is declared not started): such a move needs a reason.
func reopens(from, to string) bool {
	switch {
	case from == to:
		return false
	case from == Completed || from == Cancelled:
		return true
	case to == Planned:
		return from != Planned
	}
	return false
}

// SetStatus changes a milestone's status and keeps the change. Coordinator
// and admin. Reopening a completed or cancelled milestone, or moving one
// back to PLANNED, needs a note saying why.
func (s *Store) SetStatus(ctx context.Context, milestoneID uuid.UUID, status, note, requestID string) (Milestone, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return Milestone{}, err
	}
	var v apperr.Validator
	v.Check(slices.Contains(Statuses, status), "status", "unknown status %q (want one of %s)", status, strings.Join(Statuses, ", "))
	note = v.Text("note", note, false, 2000)
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Milestone{}, err
	}
	var m Milestone
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		id := uuid.Must(uuid.NewV7()).String()
		if replayed, err := claim(ctx, tx, p, "SetMilestoneStatus", requestID, []any{milestoneID, status, note}, id, &m); err != nil || replayed {
			return err
		}
		var from string
		err := tx.QueryRow(ctx, `SELECT status FROM milestones WHERE id = $1 FOR UPDATE`, milestoneID).Scan(&from)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("milestone %s: %w", milestoneID, apperr.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if reopens(from, status) && note == "" {
			return apperr.Invalid("note", "required to move a milestone from %s to %s: say why", from, status)
		}
		if _, err := tx.Exec(ctx, `UPDATE milestones SET status = $2 WHERE id = $1`, milestoneID, status); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO milestone_status_history (id, milestone_id, status, note, recorded_by)
			VALUES ($1, $2, $3, $4, $5)`, id, milestoneID, status, note, p.TokenID); err != nil {
			return err
		}
		if m, err = getMilestone(ctx, tx, milestoneID.String()); err != nil {
			return err
		}
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), "SetMilestoneStatus", requestID, answer(m)); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "milestone", EntityID: m.ID, RequestID: requestID,
			Change: StatusChange{Status: status, Note: note, RecordedBy: p.TokenID}, SubjectOrgs: []string{m.ResponsibleOrgID}})
	})
	if err != nil {
		return Milestone{}, fmt.Errorf("setting milestone status: %w", err)
	}
	return m, nil
}
