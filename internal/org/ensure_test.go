package org_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func ensure(ctx context.Context, db *testdb.DB, in []org.Organization) ([]org.Organization, []bool, error) {
	var out []org.Organization
	var created []bool
	err := postgres.InTx(context.Background(), db.App, func(tx pgx.Tx) error {
		var err error
		out, created, err = org.New(db.App).EnsureIn(ctx, tx, in)
		return err
	})
	return out, created, err
}

func violations(err error) []string {
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) {
		return nil
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestFTSOrgIDIsStoredAndUnique(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	ctx := as(auth.Coordinator)
	o, err := s.Create(ctx, org.Organization{Name: "Norway", Kind: "DONOR", FTSOrgID: "2933"}, "n")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, o.ID)
	if err != nil || got.FTSOrgID != "2933" {
		t.Fatalf("read back %+v %v", got, err)
	}
	list, _, err := s.List(ctx, "DONOR", 10, "")
	if err != nil || len(list) != 1 || list[0].FTSOrgID != "2933" {
		t.Fatalf("listed %+v %v", list, err)
	}
	_, err = s.Create(ctx, org.Organization{Name: "Norway again", Kind: "DONOR", FTSOrgID: "2933"}, "n2")
	if !errors.Is(err, apperr.ErrAlreadyExists) || !strings.Contains(err.Error(), "FTS") {
		t.Fatalf("duplicate FTS id: %v", err)
	}
	for _, bad := range []string{"x1", "-1", "1234567890123", " 12", "١٢"} {
		if got := violations((org.Organization{Name: "n", Kind: "DONOR", FTSOrgID: bad}).Validate()); !slices.Equal(got, []string{"ftsOrgId"}) {
			t.Errorf("FTS id %q: violations %v", bad, got)
		}
	}
	if err := (org.Organization{Name: "n", Kind: "DONOR", FTSOrgID: "123456789012"}).Validate(); err != nil {
		t.Errorf("12 digits: %v", err)
	}
}

func TestEnsureInMatchesAndRegisters(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	ctx := as(auth.Coordinator)
	byFTS, _ := s.Create(ctx, org.Organization{Name: "Germany", Kind: "DONOR", FTSOrgID: "2972"}, "1")
	byIATI, _ := s.Create(ctx, org.Organization{Name: "UK FCDO", Kind: "DONOR", IATIRef: "GB-GOV-1"}, "2")
	byName, _ := s.Create(ctx, org.Organization{Name: "HALO Trust", Kind: "IMPLEMENTER"}, "3")
	// A name known with an identifier is not matched by name.
	withID, _ := s.Create(ctx, org.Organization{Name: "Mines Advisory Group", Kind: "IMPLEMENTER", IATIRef: "GB-CHC-1083657"}, "4")
	before := count(t, db, "organizations")
	events := count(t, db, "audit_events")

	in := []org.Organization{
		{Name: "Germany (renamed)", Kind: "POOLED_FUND", FTSOrgID: "2972"},            // 0: by FTS id, stored as is
		{Name: "United Kingdom", Kind: "DONOR", IATIRef: "GB-GOV-1"},                  // 1: by IATI
		{Name: "  HALO Trust ", Kind: "IMPLEMENTER"},                                  // 2: by name
		{Name: "Mines Advisory Group", Kind: "IMPLEMENTER"},                           // 3: new, name-only
		{Name: "Sweden", Kind: "DONOR", FTSOrgID: "2986", Country: "SWE"},             // 4: new
		{Name: "Sweden (Sida)", Kind: "DONOR", FTSOrgID: "2986"},                      // 5: same as 4
		{Name: "DanChurchAid", Kind: "IMPLEMENTER", IATIRef: "DK-CVR-26487013"},       // 6: new
		{Name: "DCA", Kind: "IMPLEMENTER", IATIRef: "DK-CVR-26487013"},                // 7: same as 6
		{Name: "Mines Advisory Group", Kind: "IMPLEMENTER"},                           // 8: same as 3
		{Name: "Robert'); DROP TABLE organizations;--", Kind: "DONOR", FTSOrgID: "1"}, // 9: new
		{Name: "FCDO", Kind: "DONOR", FTSOrgID: "2917", IATIRef: "GB-GOV-1"},          // 10: FTS id unknown, by IATI
		{Name: "Sida", Kind: "DONOR", FTSOrgID: "4444", IATIRef: "DK-CVR-26487013"},   // 11: by IATI, registered by 6
		{Name: "Mines Advisory Group", Kind: "IMPLEMENTER", FTSOrgID: "5555"},         // 12: new: a name is no match for an FTS id
	}
	out, created, err := ensure(ctx, db, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, false, false, true, true, false, true, false, false, true, false, false, true}
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	for i, o := range []org.Organization{byFTS, byIATI, byName} {
		if out[i].ID != o.ID || out[i].Kind != o.Kind || out[i].Name != o.Name {
			t.Errorf("input %d matched %+v, want %+v", i, out[i], o)
		}
	}
	if out[3].ID == withID.ID || out[8].ID != out[3].ID || out[5].ID != out[4].ID || out[7].ID != out[6].ID ||
		out[10].ID != byIATI.ID || out[11].ID != out[6].ID || out[12].ID == out[3].ID {
		t.Fatalf("duplicates not resolved to one: %+v", out)
	}
	if out[5].Name != "Sweden" || out[4].Country != "SWE" {
		t.Fatalf("the first of duplicates registers: %+v", out[5])
	}
	if n := count(t, db, "organizations"); n != before+5 {
		t.Fatalf("%d organisations registered, want 5", n-before)
	}
	if n := count(t, db, "audit_events"); n != events+5 {
		t.Fatalf("%d audit events, want 5", n-events)
	}
	for i, o := range out {
		got, err := s.Get(ctx, o.ID)
		if err != nil || got.Name != o.Name || got.FTSOrgID != o.FTSOrgID || got.IATIRef != o.IATIRef || got.Kind != o.Kind ||
			!got.CreatedAt.Equal(o.CreatedAt) || o.CreatedAt.IsZero() {
			t.Fatalf("output %d %+v reads back %+v (%v)", i, o, got, err)
		}
	}
	var subject, change string
	if err := db.Owner.QueryRow(context.Background(), `SELECT subject_orgs[1], change FROM audit_events
		WHERE entity_type = 'organization' AND entity_id = $1 AND actor_role = 'coordinator'`, out[4].ID).Scan(&subject, &change); err != nil {
		t.Fatal(err)
	}
	if subject != out[4].ID || !strings.Contains(change, `"ftsOrgId":"2986"`) {
		t.Fatalf("event subject %s change %s", subject, change)
	}

	// Again: everything matches, nothing is written.
	again, created, err := ensure(ctx, db, in)
	if err != nil || slices.Contains(created, true) {
		t.Fatalf("second run created %v (%v)", created, err)
	}
	for i := range out {
		if again[i].ID != out[i].ID {
			t.Fatalf("second run: input %d is %s, was %s", i, again[i].ID, out[i].ID)
		}
	}
	if n := count(t, db, "organizations"); n != before+5 {
		t.Fatalf("second run registered %d", n-before-5)
	}
}

func TestEnsureInRefusals(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	ctx := as(auth.Coordinator)
	if _, err := s.Create(ctx, org.Organization{Name: "UK FCDO", Kind: "DONOR", IATIRef: "GB-GOV-1", FTSOrgID: "2917"}, "1"); err != nil {
		t.Fatal(err)
	}
	before := count(t, db, "organizations") + count(t, db, "audit_events")
	good := org.Organization{Name: "New donor", Kind: "DONOR"}
	for _, role := range []auth.Role{auth.Donor, auth.Implementer, auth.Auditor, ""} {
		if _, _, err := ensure(as(role), db, []org.Organization{good}); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Errorf("role %q: %v", role, err)
		}
	}
	_, _, err := ensure(ctx, db, []org.Organization{good, good, {Name: " ", Kind: "DONER", FTSOrgID: "12a"}, good, {Name: "x", Kind: "DONOR", IATIRef: "nope"}})
	if got := violations(err); !slices.Equal(got, []string{"organizations[2].name", "organizations[2].kind", "organizations[2].ftsOrgId", "organizations[4].iatiRef"}) {
		t.Fatalf("violations %v (%v)", got, err)
	}
	if after := count(t, db, "organizations") + count(t, db, "audit_events"); after != before {
		t.Fatalf("refusals wrote %d rows", after-before)
	}
	if out, created, err := ensure(ctx, db, nil); err != nil || len(out) != 0 || len(created) != 0 {
		t.Fatalf("empty input: %v %v %v", out, created, err)
	}
}

// EnsureIn registers 20 000 organisations in one transaction within a few
// seconds, and matches them all when run again.
func TestEnsureInBulk(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	in := make([]org.Organization, 20000)
	for i := range in {
		in[i] = org.Organization{Name: fmt.Sprintf("Organisation %d", i), Kind: "IMPLEMENTER"}
		switch i % 3 {
		case 0:
			in[i].FTSOrgID = fmt.Sprint(100000 + i)
		case 1:
			in[i].IATIRef = fmt.Sprintf("XM-DAC-%d", i)
		}
	}
	ctx := as(auth.Admin)
	t0 := time.Now()
	_, created, err := ensure(ctx, db, in)
	first := time.Since(t0)
	if err != nil || slices.Contains(created, false) {
		t.Fatal(err)
	}
	t0 = time.Now()
	_, created, err = ensure(ctx, db, in)
	second := time.Since(t0)
	if err != nil || slices.Contains(created, true) {
		t.Fatal(err)
	}
	t.Logf("20 000 organisations: registered in %v, matched in %v", first, second)
	if first > 10*time.Second || second > 5*time.Second {
		t.Errorf("too slow: %v, %v", first, second)
	}
}
