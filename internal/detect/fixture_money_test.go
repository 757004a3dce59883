package detect

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// mday parses a date literal of a money test.
func mday(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // a typo in a test's literal
	}
	return t
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// moneyFixture is a roadmap (USD) into which a test inserts organisations,
// milestones, grants, allocations and journal entries by direct SQL, with
// the dates and converted amounts it needs. Entries keep the journal's
// invariants the rules rely on: a reversal moves its original's bucket with
// the negated amounts, in its grant; ids are UUIDv7 in recording order.
type moneyFixture struct {
	t       *testing.T
	db      *testdb.DB
	roadmap uuid.UUID
	ids     map[string]string // label → id
}

func newMoneyFixture(t *testing.T) *moneyFixture {
	t.Helper()
	f := &moneyFixture{t: t, db: testdb.New(t), roadmap: uuid.New(), ids: map[string]string{}}
	f.exec(`INSERT INTO roadmaps (id, country, title, start_date, end_date, reporting_currency)
		VALUES ($1, 'AFG', 'National Mine Action Strategy', '2024-01-01', '2027-12-31', 'USD')`, f.roadmap)
	return f
}

func (f *moneyFixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Owner.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// id is the id of a labelled record.
func (f *moneyFixture) id(label string) string {
	f.t.Helper()
	id, ok := f.ids[label]
	if !ok {
		f.t.Fatalf("no record labelled %q", label)
	}
	return id
}

func (f *moneyFixture) label(label, id string) string {
	f.t.Helper()
	if _, dup := f.ids[label]; dup {
		f.t.Fatalf("label %q used twice", label)
	}
	f.ids[label] = id
	return id
}

// org adds an organisation of a kind (DONOR, IMPLEMENTER…).
func (f *moneyFixture) org(label, kind string) string {
	id := f.label(label, uuid.NewString())
	f.exec(`INSERT INTO organizations (id, name, kind) VALUES ($1, $2, $3)`, id, label, kind)
	return id
}

// milestone adds a milestone needing requirement USD.
func (f *moneyFixture) milestone(label, region, activity, requirement string) string {
	id := f.label(label, uuid.NewString())
	f.exec(`INSERT INTO milestones (id, roadmap_id, code, title, activity_type, region, funding_requirement)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, f.roadmap, label, "Milestone "+label, activity, region, dec(requirement))
	return id
}

// grant adds a grant between labelled organisations in an agreement
// currency over a period.
func (f *moneyFixture) grant(label, donor, recipient, currency, start, end string) string {
	id := f.label(label, uuid.NewString())
	f.exec(`INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, id, f.roadmap, f.id(donor), f.id(recipient), "AGR-"+label, "Grant "+label,
		currency, mday(start), mday(end))
	f.exec(`INSERT INTO grant_balances (grant_id) VALUES ($1)`, id)
	return id
}

// tx is an entry to record: Amount in Currency (default: the grant's), its
// agreement and reporting effects (default: Amount, i.e. a USD grant).
type tx struct {
	Type, Amount, Currency, Agreement, Reporting, Day, Ref, Milestone string
}

// entry records a labelled journal entry of a labelled grant.
func (f *moneyFixture) entry(label, grant string, e tx) string {
	f.t.Helper()
	id := f.label(label, uuid.Must(uuid.NewV7()).String())
	if e.Currency == "" {
		if err := f.db.Owner.QueryRow(context.Background(), `SELECT currency FROM grants WHERE id = $1`, f.id(grant)).Scan(&e.Currency); err != nil {
			f.t.Fatal(err)
		}
	}
	if e.Agreement == "" {
		e.Agreement = e.Amount
	}
	if e.Reporting == "" {
		e.Reporting = e.Amount
	}
	var m any
	if e.Milestone != "" {
		m = f.id(e.Milestone)
	}
	f.exec(`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		agreement_rate, reporting_rate, value_date, reference, milestone_id, recorded_by, recorded_role)
		VALUES ($1, $2, $3, $3, $4, $5, $6, $7, 1, 1, $8, $9, $10, 'test', 'admin')`,
		id, f.id(grant), e.Type, dec(e.Amount), e.Currency, dec(e.Agreement), dec(e.Reporting), mday(e.Day), e.Ref, m)
	return id
}

// reverse records a labelled reversal of a labelled entry on a day.
func (f *moneyFixture) reverse(label, of, day string) string {
	f.t.Helper()
	id := f.label(label, uuid.Must(uuid.NewV7()).String())
	f.exec(`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		agreement_rate, reporting_rate, value_date, reference, milestone_id, reverses_id, recorded_by, recorded_role)
		SELECT $1, grant_id, 'REVERSAL', type, amount, currency, -agreement_amount, -reporting_amount, agreement_rate,
		       reporting_rate, $3, reference, milestone_id, id, 'test', 'admin'
		FROM transactions WHERE id = $2`, id, f.id(of), mday(day))
	return id
}

// allocate records version of a grant's allocations, created at the given
// time, as agreement and reporting amounts per labelled milestone; the
// version becomes the grant's current set when it is its newest.
func (f *moneyFixture) allocate(grant string, version int, created string, amounts ...[3]string) {
	f.t.Helper()
	for _, a := range amounts {
		f.exec(`INSERT INTO allocations (grant_id, version, milestone_id, amount, reporting_amount, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, f.id(grant), version, f.id(a[0]), dec(a[1]), dec(a[2]), mday(created))
	}
	f.exec(`UPDATE grant_balances SET allocation_version = $2 WHERE grant_id = $1 AND allocation_version < $2`, f.id(grant), version)
}

// run applies one kind's rule as of a day with the configuration cfg
// changes from the defaults, as the service's role.
func (f *moneyFixture) run(kind, asOf string, cfg func(*Config)) []finding {
	f.t.Helper()
	c := DefaultConfig()
	if cfg != nil {
		cfg(&c)
	}
	ctx := context.Background()
	s, err := loadScope(ctx, f.db.App, f.roadmap, mday(asOf), c)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range moneyRules {
		if r.kind != kind {
			continue
		}
		fs, err := r.find(ctx, f.db.App, s)
		if err != nil {
			f.t.Fatalf("%s: %v", kind, err)
		}
		seen := map[string]bool{}
		for _, x := range fs {
			if x.Kind != kind {
				f.t.Fatalf("rule %s found a %s", kind, x.Kind)
			}
			if seen[x.Key] {
				f.t.Fatalf("two %s findings with key %s", kind, x.Key)
			}
			seen[x.Key] = true
			checkShape(f.t, x)
		}
		return fs
	}
	f.t.Fatalf("no money rule %s", kind)
	return nil
}

// checkShape checks what every finding must carry.
func checkShape(t *testing.T, x finding) {
	t.Helper()
	if !slices.Contains(Severities, x.Severity) {
		t.Errorf("%s %s: severity %q", x.Kind, x.Key, x.Severity)
	}
	if x.Explanation == "" || len(x.Evidence) == 0 || len(x.Subjects) == 0 {
		t.Errorf("%s %s: explanation, evidence and subjects are required: %+v", x.Kind, x.Key, x)
	}
	var grants, orgs int
	for _, s := range x.Subjects {
		switch s.Type {
		case SubjectGrant:
			grants++
		case SubjectOrganization:
			orgs++
		}
	}
	if grants == 0 || orgs < 2 {
		t.Errorf("%s %s: subjects name %d grants and %d organisations, want the grants with their donors and recipients", x.Kind, x.Key, grants, orgs)
	}
}

// keys are the sorted keys of findings.
func keys(fs []finding) []string {
	out := make([]string, len(fs))
	for i, x := range fs {
		out[i] = x.Key
	}
	slices.Sort(out)
	return out
}

// idsKey is the key of a finding naming the labelled records, sorted.
func (f *moneyFixture) idsKey(prefix string, labels ...string) string {
	ids := make([]string, len(labels))
	for i, l := range labels {
		ids[i] = f.id(l)
	}
	return sortedKey(prefix, ids)
}

// parties adds a donor per label and one implementer "impl".
func (f *moneyFixture) parties(donors ...string) {
	f.org("impl", "IMPLEMENTER")
	for _, d := range donors {
		f.org(d, "DONOR")
	}
}

func (f *moneyFixture) String() string { return fmt.Sprint(f.ids) }
