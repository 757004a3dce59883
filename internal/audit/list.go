package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/paging"
)

// Filter narrows a listing.
type Filter struct {
	EntityType   string
	EntityID     string
	ActorTokenID string
	From, To     time.Time // zero = unbounded; To is exclusive
	PageSize     int
	PageToken    string
}

// List returns events in id order (the order they were written), one page at
// a time. Donors and implementers see only events that concern their own
// organisation: acted by it, or naming it as a subject.
func (s *Store) List(ctx context.Context, f Filter) ([]Event, string, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Auditor, auth.Donor, auth.Implementer); err != nil {
		return nil, "", err
	}
	org := ""
	if p.Role.BoundToOrg() {
		org = p.OrgID
	}
	after, size, err := paging.StartAfter(f.PageToken, f.PageSize, 100, parseID)
	if err != nil {
		return nil, "", err
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM audit_events
		WHERE id > $1
		  AND ($2 = '' OR entity_type = $2)
		  AND ($3 = '' OR entity_id = $3)
		  AND ($4 = '' OR actor_token_id = $4)
		  AND ($5::timestamptz IS NULL OR occurred_at >= $5)
		  AND ($6::timestamptz IS NULL OR occurred_at < $6)
		  AND ($7 = '' OR actor_org_id = $7 OR $7 = ANY (subject_orgs))
		ORDER BY id LIMIT $8`,
		after, f.EntityType, f.EntityID, f.ActorTokenID, from, to, org, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing audit events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, "", fmt.Errorf("listing audit events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("listing audit events: %w", err)
	}
	out, next := paging.Next(out, size, func(e Event) string { return strconv.FormatInt(e.ID, 10) })
	return out, next, nil
}

// parseID reads the event id a page token carries; the empty key lists from
// the start.
func parseID(key string) (int64, bool) {
	if key == "" {
		return 0, true
	}
	id, err := strconv.ParseInt(key, 10, 64)
	return id, err == nil && id > 0
}
