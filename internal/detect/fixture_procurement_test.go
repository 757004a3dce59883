package detect

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// procDay parses a date literal of a test.
func procDay(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // a typo in a test's literal
	}
	return t
}

// procFixture is a roadmap (USD) with one donor, one implementer and a
// responsible organisation, into which a test inserts milestones, grants,
// allocations, items and stages by direct SQL, with the dates it needs
// (history rows carry explicit recorded/created times, so a test can place
// them in the past).
type procFixture struct {
	t                    *testing.T
	db                   *testdb.DB
	roadmap              uuid.UUID
	donor, impl, respOrg uuid.UUID
	n                    int
}

func newProcFixture(t *testing.T) *procFixture {
	t.Helper()
	f := &procFixture{t: t, db: testdb.New(t), roadmap: uuid.New(), donor: uuid.New(), impl: uuid.New(), respOrg: uuid.New()}
	f.exec(`INSERT INTO organizations (id, name, kind) VALUES ($1, 'Donor', 'DONOR'), ($2, 'Demining NGO', 'IMPLEMENTER'),
		($3, 'National Mine Action Authority', 'NATIONAL_AUTHORITY')`, f.donor, f.impl, f.respOrg)
	f.exec(`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		VALUES ($1, 'AFG', 'National Mine Action Strategy', '2024-01-01', '2027-12-31', 'USD')`, f.roadmap)
	return f
}

func (f *procFixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Owner.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// milestone adds a milestone due on due ("" for none) needing requirement USD.
func (f *procFixture) milestone(code, due, requirement string) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	var d any
	if due != "" {
		d = procDay(due)
	}
	// Created before every day the tests replay (a milestone created after
	// the day did not exist on it).
	f.exec(`INSERT INTO milestones (id, roadmap_id, code, title, activity_type, region, due_date, funding_requirement, responsible_org_id, created_at)
		VALUES ($1, $2, $3, $4, 'CLEARANCE', 'AF-HEL', $5, $6, $7, '2020-01-01T00:00:00Z')`, id, f.roadmap, code, "Clearance "+code, d, requirement, f.respOrg)
	return id
}

// status records a status change of a milestone at the given time.
func (f *procFixture) status(milestone uuid.UUID, status string, at time.Time) {
	f.t.Helper()
	f.exec(`UPDATE milestones SET status = $2 WHERE id = $1`, milestone, status)
	f.exec(`INSERT INTO milestone_status_history (id, milestone_id, status, recorded_by, recorded_at) VALUES ($1, $2, $3, 'test', $4)`,
		uuid.New(), milestone, status, at)
}

// grant adds a USD grant from the donor to the implementer with committed
// USD committed.
func (f *procFixture) grant(committed string) uuid.UUID {
	f.t.Helper()
	f.n++
	id := uuid.New()
	f.exec(`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		VALUES ($1, $2, $3, $4, $5, 'Clearance grant', 'USD', '2024-01-01', '2027-12-31')`, id, f.roadmap, f.donor, f.impl, fmt.Sprintf("G-%03d", f.n))
	f.exec(`INSERT INTO grant_balances (grant_id, pledged, committed, pledged_reporting, committed_reporting) VALUES ($1, $2, $2, $2, $2)`, id, committed)
	return id
}

// allocate records version of the grant's allocations, created at the given
// time, as amounts per milestone (USD, so reporting = amount); it becomes the
// grant's current set when it is its newest.
func (f *procFixture) allocate(grant uuid.UUID, version int, created time.Time, amounts map[uuid.UUID]string) {
	f.t.Helper()
	for m, a := range amounts {
		f.exec(`INSERT INTO allocations (grant_id, version, milestone_id, amount, reporting_amount, created_at) VALUES ($1, $2, $3, $4, $4, $5)`,
			grant, version, m, a, created)
	}
	f.exec(`UPDATE grant_balances SET allocation_version = $2,
		allocated = (SELECT coalesce(sum(amount), 0) FROM allocations WHERE grant_id = $1 AND version = $2)
		WHERE grant_id = $1 AND allocation_version < $2`, grant, version)
}

// stageAt is one stage of an item's history.
type stageAt struct{ stage, on string }

// item adds a procurement item of the grant for the milestone, expected on
// expected ("" for no date), with its stage history in order.
func (f *procFixture) item(grant, milestone uuid.UUID, desc string, critical bool, expected string, stages ...stageAt) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	var e any
	if expected != "" {
		e = procDay(expected)
	}
	f.exec(`INSERT INTO procurement_items (id, grant_id, milestone_id, description, category, critical, estimated_cost, currency,
		expected_delivery_date, recorded_by) VALUES ($1, $2, $3, $4, 'DETECTORS', $5, 120000.00, 'USD', $6, 'test')`,
		id, grant, milestone, desc, critical, e)
	for _, s := range stages {
		f.advance(id, s.stage, s.on)
	}
	return id
}

// advance appends a stage to an item's history.
func (f *procFixture) advance(item uuid.UUID, stage, on string) {
	f.t.Helper()
	f.exec(`INSERT INTO procurement_stages (item_id, seq, stage, entered_on, recorded_by)
		SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, 'test' FROM procurement_stages WHERE item_id = $1`, item, stage, procDay(on))
}

// run applies the procurement rules as of asOf (as the service's role) and
// answers the findings by kind and key.
func (f *procFixture) run(asOf string, cfg Config) map[string]finding {
	f.t.Helper()
	ctx := context.Background()
	s, err := loadScope(ctx, f.db.App, f.roadmap, procDay(asOf), cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]finding{}
	for _, r := range procurementRules {
		fs, err := r.find(ctx, f.db.App, s)
		if err != nil {
			f.t.Fatalf("%s: %v", r.kind, err)
		}
		for _, x := range fs {
			if x.Kind != r.kind {
				f.t.Fatalf("rule %s found a %s", r.kind, x.Kind)
			}
			k := x.Kind + "|" + x.Key
			if _, dup := out[k]; dup {
				f.t.Fatalf("two findings %s", k)
			}
			out[k] = x
		}
	}
	return out
}

// ofKind returns the findings of one kind, by key.
func ofKind(fs map[string]finding, kind string) map[string]finding {
	out := map[string]finding{}
	for _, x := range fs {
		if x.Kind == kind {
			out[x.Key] = x
		}
	}
	return out
}
