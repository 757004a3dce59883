package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/idempotency"
	"github.com/tranche-ledger/tranche/internal/paging"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Flag statuses.
const (
	Open         = "OPEN"
	Acknowledged = "ACKNOWLEDGED"
	Dismissed    = "DISMISSED"
	Resolved     = "RESOLVED"
)

// Statuses lists the flag statuses.
var Statuses = []string{Open, Acknowledged, Dismissed, Resolved}

// Review actions.
const (
	Acknowledge = "ACKNOWLEDGE"
	Dismiss     = "DISMISS"
	Reopen      = "REOPEN"
)

// Actions lists the review actions.
var Actions = []string{Acknowledge, Dismiss, Reopen}

// transitions is what each review action does from each status; an action
// missing here is refused (FAILED_PRECONDITION) with why in refusal. A
// RESOLVED flag takes no review: its finding no longer holds, and a run
// reopens it by itself if the finding comes back.
var transitions = map[string]map[string]string{
	Open:         {Acknowledge: Acknowledged, Dismiss: Dismissed},
	Acknowledged: {Dismiss: Dismissed, Reopen: Open},
	Dismissed:    {Acknowledge: Acknowledged, Reopen: Open},
	Resolved:     {},
}

// refusal says why action does not apply to a flag in status from.
func refusal(from, action string) string {
	switch {
	case from == Resolved:
		return "the flag is RESOLVED: its finding no longer holds, so there is nothing to " + strings.ToLower(action) +
			"; a detection run reopens it if the finding comes back"
	case action == Reopen:
		return "the flag is already OPEN: REOPEN applies to an acknowledged or dismissed flag"
	}
	return "the flag is already " + from
}

// Flag is a finding of the engine under review.
type Flag struct {
	ID          string          `json:"id"`
	RoadmapID   string          `json:"roadmapId"`
	Kind        string          `json:"kind"`
	Severity    string          `json:"severity"`
	Status      string          `json:"status"`
	Fingerprint string          `json:"fingerprint"`
	Subjects    []Subject       `json:"subjects"`
	Evidence    json.RawMessage `json:"evidence"`
	Explanation string          `json:"explanation"`
	// DetectedAt is when a run first found it.
	DetectedAt time.Time `json:"detectedAt"`
	FirstRun   string    `json:"firstRun"`
	// ResolvedByRun is the run that saw the finding go, while RESOLVED.
	ResolvedByRun string     `json:"resolvedByRun,omitempty"`
	ResolvedAt    *time.Time `json:"resolvedAt,omitempty"`
	// The latest review, kept when a run reopens the flag.
	ReviewAction string     `json:"reviewAction,omitempty"`
	ReviewedBy   string     `json:"reviewedBy,omitempty"`
	ReviewedAt   *time.Time `json:"reviewedAt,omitempty"`
	ReviewNote   string     `json:"reviewNote,omitempty"`
	UpdatedAt    time.Time  `json:"updatedAt"`
	// Who the flag involves: its grants, and their donors and recipients.
	GrantIDs        []string `json:"grantIds"`
	DonorOrgIDs     []string `json:"donorOrgIds"`
	RecipientOrgIDs []string `json:"recipientOrgIds"`
}

const flagColumns = `id::text, roadmap_id::text, kind, severity, status, fingerprint, subjects, evidence, explanation,
	detected_at, first_run::text, coalesce(resolved_by_run::text, ''), resolved_at,
	coalesce(review_action, ''), reviewed_by, reviewed_at, review_note, updated_at,
	grant_ids::text[], donor_org_ids::text[], recipient_org_ids::text[]`

func scanFlag(row pgx.Row, f *Flag) error {
	var subjects []byte
	if err := row.Scan(&f.ID, &f.RoadmapID, &f.Kind, &f.Severity, &f.Status, &f.Fingerprint, &subjects, &f.Evidence,
		&f.Explanation, &f.DetectedAt, &f.FirstRun, &f.ResolvedByRun, &f.ResolvedAt, &f.ReviewAction,
		&f.ReviewedBy, &f.ReviewedAt, &f.ReviewNote, &f.UpdatedAt, &f.GrantIDs, &f.DonorOrgIDs, &f.RecipientOrgIDs); err != nil {
		return err
	}
	return json.Unmarshal(subjects, &f.Subjects)
}

// visibility is the condition (over flags, with its arguments appended to
// args) under which p may see a flag. Coordinators, admins and auditors see
// every flag. A donor sees the flags involving a grant its organisation
// gives, an implementer those involving a grant it receives (the issue's
// "flags whose subjects include their own grants"): the token's role
// decides, so an organisation that both gives and receives (a pooled fund)
// sees with its donor token the flags about grants it gives only, and with
// its implementer token those about grants it receives. A flag involving no
// grant (a milestone at risk for its funding gap alone) is seen by the
// unbound roles only. The run keeps the donors and the recipients of a
// flag's grants apart (donor_org_ids, recipient_org_ids), each with its GIN
// index.
func visibility(p auth.Principal, args *[]any) string {
	switch {
	case p.Can(auth.Coordinator, auth.Auditor):
		return "true"
	case p.Role == auth.Donor && p.OrgID != "":
		*args = append(*args, p.OrgID)
		return fmt.Sprintf("donor_org_ids @> ARRAY[$%d::uuid]", len(*args))
	case p.Role == auth.Implementer && p.OrgID != "":
		*args = append(*args, p.OrgID)
		return fmt.Sprintf("recipient_org_ids @> ARRAY[$%d::uuid]", len(*args))
	}
	return "false"
}

// Get returns a flag the caller may see; one it may not is NOT_FOUND, as if
// it did not exist.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Flag, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Auditor, auth.Donor, auth.Implementer); err != nil {
		return Flag{}, err
	}
	args := []any{id}
	var f Flag
	err := scanFlag(s.pool.QueryRow(ctx, `SELECT `+flagColumns+` FROM flags WHERE id = $1 AND `+visibility(p, &args), args...), &f)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, fmt.Errorf("flag %s: %w", id, apperr.ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("reading flag: %w", err)
	}
	return f, nil
}

// ListFilter narrows a listing of flags; zero values do not filter.
type ListFilter struct {
	RoadmapID uuid.UUID
	GrantID   uuid.UUID
	// OrganizationID lists the flags involving an organisation: as donor or
	// recipient of a grant they involve.
	OrganizationID uuid.UUID
	Kind           string
	Severity       string
	Status         string
	PageSize       int
	PageToken      string
}

// List pages through the flags the caller may see, oldest first.
func (s *Store) List(ctx context.Context, f ListFilter) ([]Flag, string, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Auditor, auth.Donor, auth.Implementer); err != nil {
		return nil, "", err
	}
	var v apperr.Validator
	v.Check(f.Kind == "" || slices.Contains(Kinds, f.Kind), "kind", "unknown kind %q (want one of %s)", f.Kind, strings.Join(Kinds, ", "))
	v.Check(f.Severity == "" || slices.Contains(Severities, f.Severity), "severity", "unknown severity %q (want one of %s)", f.Severity, strings.Join(Severities, ", "))
	v.Check(f.Status == "" || slices.Contains(Statuses, f.Status), "status", "unknown status %q (want one of %s)", f.Status, strings.Join(Statuses, ", "))
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	after, size, err := paging.Start(f.PageToken, f.PageSize, 50)
	if err != nil {
		return nil, "", err
	}
	// Only the filters given go into the statement, so each combination
	// plans with its own index.
	args := []any{after}
	where := []string{"id > $1"}
	arg := func(x any) string { args = append(args, x); return "$" + strconv.Itoa(len(args)) }
	if f.RoadmapID != uuid.Nil {
		where = append(where, "roadmap_id = "+arg(f.RoadmapID))
	}
	if f.GrantID != uuid.Nil {
		where = append(where, "grant_ids @> ARRAY["+arg(f.GrantID)+"::uuid]")
	}
	if f.OrganizationID != uuid.Nil {
		o := arg(f.OrganizationID)
		where = append(where, "(donor_org_ids @> ARRAY["+o+"::uuid] OR recipient_org_ids @> ARRAY["+o+"::uuid])")
	}
	for _, c := range []struct{ column, value string }{{"kind", f.Kind}, {"severity", f.Severity}, {"status", f.Status}} {
		if c.value != "" {
			where = append(where, c.column+" = "+arg(c.value))
		}
	}
	where = append(where, visibility(p, &args))
	rows, err := s.pool.Query(ctx, `SELECT `+flagColumns+` FROM flags WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id LIMIT `+arg(size+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing flags: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Flag, error) {
		var x Flag
		return x, scanFlag(r, &x)
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing flags: %w", err)
	}
	out, next := paging.Next(out, size, func(x Flag) string { return x.ID })
	return out, next, nil
}

// reviewChange is a review's audit event.
type reviewChange struct {
	FlagID     string `json:"flagId"`
	Action     string `json:"action"`
	From       string `json:"from"`
	To         string `json:"to"`
	Note       string `json:"note"`
	ReviewedBy string `json:"reviewedBy"`
}

// Review applies a review action to a flag, as transitions allows:
// ACKNOWLEDGE (the finding is real and being dealt with), DISMISS (it is
// not a problem; a note saying why is required) or REOPEN (back to OPEN).
// Coordinators and admins review. A retry with the same requestId answers
// the flag as the first request left it.
func (s *Store) Review(ctx context.Context, id uuid.UUID, action, note, requestID string) (Flag, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return Flag{}, err
	}
	var v apperr.Validator
	v.Check(slices.Contains(Actions, action), "action", "unknown action %q (want one of %s)", action, strings.Join(Actions, ", "))
	note = v.Text("note", note, false, 2000)
	v.Check(action != Dismiss || note != "", "note", "required to dismiss a flag: say why it is not a problem")
	v.Check(requestID != "", "requestId", "required")
	if err := v.Err(); err != nil {
		return Flag{}, err
	}
	var f Flag
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		f = Flag{}
		if replay, err := idempotency.ClaimAnswer(ctx, tx, p.Scope(), "ReviewFlag", requestID, []any{id, action, note}, id.String(), &f); err != nil || replay {
			return err
		}
		err := scanFlag(tx.QueryRow(ctx, `SELECT `+flagColumns+` FROM flags WHERE id = $1 FOR UPDATE`, id), &f)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("flag %s: %w", id, apperr.ErrNotFound)
		}
		if err != nil {
			return err
		}
		from := f.Status
		to, ok := transitions[from][action]
		if !ok {
			return fmt.Errorf("%s flag %s: %s: %w", action, id, refusal(from, action), apperr.ErrFailedPrecondition)
		}
		actor := actorOf(p)
		if err := scanFlag(tx.QueryRow(ctx, `UPDATE flags SET status = $2, review_action = $3, reviewed_by = $4,
			reviewed_at = now(), review_note = $5, updated_at = now() WHERE id = $1 RETURNING `+flagColumns,
			id, to, action, actor, note), &f); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO flag_events (flag_id, event, status, severity, actor, note)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, action, to, f.Severity, actor, note); err != nil {
			return err
		}
		if err := idempotency.SaveAnswer(ctx, tx, p.Scope(), "ReviewFlag", requestID, f); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{EntityType: "flag", EntityID: f.ID, RequestID: requestID,
			Change:      reviewChange{FlagID: f.ID, Action: action, From: from, To: to, Note: note, ReviewedBy: actor},
			SubjectOrgs: involved(f)})
	})
	if err != nil {
		return Flag{}, fmt.Errorf("reviewing flag: %w", err)
	}
	return f, nil
}

// involved names, for the audit event of a flag's review, every party to
// the flag's grants with its role ("donor:ID", "recipient:ID"), so the audit
// listing shows the review to the tokens that see the flag (internal/audit,
// flagReviews).
func involved(f Flag) []string {
	out := make([]string, 0, len(f.DonorOrgIDs)+len(f.RecipientOrgIDs))
	for _, o := range f.DonorOrgIDs {
		out = append(out, "donor:"+o)
	}
	for _, o := range f.RecipientOrgIDs {
		out = append(out, "recipient:"+o)
	}
	return out
}

// Event is one entry of a flag's history.
type Event struct {
	Event       string          `json:"event"`
	RunID       string          `json:"runId,omitempty"`
	Status      string          `json:"status"`
	Severity    string          `json:"severity"`
	Evidence    json.RawMessage `json:"evidence,omitempty"`
	Explanation string          `json:"explanation,omitempty"`
	Actor       string          `json:"actor"`
	Note        string          `json:"note,omitempty"`
	OccurredAt  time.Time       `json:"occurredAt"`
}

// History returns what happened to a flag the caller may see, in order.
func (s *Store) History(ctx context.Context, id uuid.UUID) ([]Event, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT event, coalesce(run_id::text, ''), status, severity, evidence,
		coalesce(explanation, ''), actor, note, occurred_at FROM flag_events WHERE flag_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("reading flag history: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		return e, r.Scan(&e.Event, &e.RunID, &e.Status, &e.Severity, &e.Evidence, &e.Explanation, &e.Actor, &e.Note, &e.OccurredAt)
	})
}
