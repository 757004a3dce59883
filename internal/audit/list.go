package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/apperr"
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

// Who reads events about what (DESIGN section 4: a caller sees the audit
// events about what it may read). Admins, coordinators and auditors read
// everything. Every role reads organisations, roadmaps, milestones and FX
// rates, so everyone sees their events. Events about a grant, its journal
// entries (one event per entry, or per grant a batch touches) and its
// allocations, and its procurement items, carry the grant's donor and
// recipient as subjectOrgs, in that order (internal/ledger and
// internal/procurement record them so): a donor sees those of the grants it
// gives, as it reads them, an implementer those of the grants it receives.
// A token's events carry the organisation the token acts for, and its own
// tokens are about that organisation. A flag's review is seen as the flag
// is (flagReviews). An entity type not named here is seen
// by the unbound roles only, until its rule is written here.
const (
	publicTypes = `'organization', 'roadmap', 'milestone', 'fx_rates', 'fx_rate'`
	grantTypes  = `'grant', 'transaction', 'transaction_batch', 'procurement_item'`
)

// flagReviews is the condition for the reviews of flags a token sees: a
// review names each party to the flag's grants with its role
// ("donor:ID", "recipient:ID", internal/detect), and a donor token lists
// those naming its organisation as donor, an implementer token those naming
// it as recipient, as with the flags themselves (audit_events_flag_orgs,
// migration 011). Detection runs (entity type detection_run) cover a whole
// roadmap and stay with the unbound roles.
func flagReviews(role, org string) string {
	return `entity_type = 'flag' AND subject_orgs @> ARRAY['` + role + `:' || ` + org + `]::text[]`
}

// query collects a statement's arguments.
type query struct{ args []any }

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// visibility returns the conditions, any of which makes an event visible to
// p; none for the roles that see everything. Each is a branch of the listing
// with an index of its own (migration 006).
func (q *query) visibility(p auth.Principal) []string {
	switch p.Role {
	case auth.Donor:
		org := q.arg(p.OrgID)
		return []string{
			`entity_type IN (` + publicTypes + `)`,
			`entity_type IN (` + grantTypes + `, 'token') AND subject_orgs[1] = ` + org,
			flagReviews("donor", org),
		}
	case auth.Implementer:
		org := q.arg(p.OrgID)
		return []string{
			`entity_type IN (` + publicTypes + `)`,
			`entity_type IN ('token') AND subject_orgs[1] = ` + org,
			`entity_type IN (` + grantTypes + `) AND subject_orgs[2] = ` + org,
			flagReviews("recipient", org),
		}
	}
	return []string{"true"}
}

// List returns events in id order (the order they were written), one page at
// a time, of those the caller may see.
func (s *Store) List(ctx context.Context, f Filter) ([]Event, string, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator, auth.Auditor, auth.Donor, auth.Implementer); err != nil {
		return nil, "", err
	}
	if f.EntityID != "" && f.EntityType == "" {
		// An id names an entity of one type; audit_events_entity leads with it.
		return nil, "", apperr.Invalid("entityType", "required with entityId")
	}
	after, size, err := paging.StartAfter(f.PageToken, f.PageSize, 100, parseID)
	if err != nil {
		return nil, "", err
	}
	// Only the filters given go into the statement, so each combination is a
	// statement of its own whose plan (generic ones too) can use its index.
	var q query
	filters := "id > " + q.arg(after)
	if f.EntityType != "" {
		filters += " AND entity_type = " + q.arg(f.EntityType)
	}
	if f.EntityID != "" {
		// Entities are recorded under their ids as the service writes them:
		// a UUID in lower case, which a client may send in either.
		id := f.EntityID
		if u, err := uuid.Parse(id); err == nil {
			id = u.String()
		}
		filters += " AND entity_id = " + q.arg(id)
	}
	if f.ActorTokenID != "" {
		filters += " AND actor_token_id = " + q.arg(f.ActorTokenID)
	}
	if !f.From.IsZero() {
		filters += " AND occurred_at >= " + q.arg(f.From)
	}
	if !f.To.IsZero() {
		filters += " AND occurred_at < " + q.arg(f.To)
	}
	visible := q.visibility(p)
	limit := q.arg(size + 1)
	// One branch per visibility condition over sealed events, each read in id
	// order from its index and cut at the page size, and one over the few
	// events still pending sealing; the page is the first of their union.
	branch := func(cond string) string {
		return `(SELECT * FROM audit_events WHERE ` + cond + ` AND ` + filters + ` ORDER BY id LIMIT ` + limit + `)`
	}
	var branches []string
	for _, v := range visible {
		branches = append(branches, branch(`seq IS NOT NULL AND `+v))
	}
	branches = append(branches, branch(`seq IS NULL AND ((`+strings.Join(visible, `) OR (`)+`))`))
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM (`+strings.Join(branches, ` UNION ALL `)+
		`) e ORDER BY id LIMIT `+limit, q.args...)
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
