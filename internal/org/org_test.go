package org_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func as(role auth.Role) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{TokenID: "t-" + string(role), Role: role})
}

func count(t *testing.T, db *testdb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.Owner.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := org.Organization{Name: "Mines Advisory Group", Kind: "IMPLEMENTER", IATIRef: "GB-CHC-1083657", Country: "GBR"}
	tests := []struct {
		name   string
		mutate func(*org.Organization)
		fields []string
	}{
		{"valid", func(*org.Organization) {}, nil},
		{"no optional fields", func(o *org.Organization) { o.IATIRef, o.Country = "", "" }, nil},
		{"DAC identifier", func(o *org.Organization) { o.IATIRef = "XM-DAC-41301" }, nil},
		{"empty name", func(o *org.Organization) { o.Name = "  " }, []string{"name"}},
		{"long name", func(o *org.Organization) { o.Name = strings.Repeat("x", 301) }, []string{"name"}},
		{"unknown kind", func(o *org.Organization) { o.Kind = "DONER" }, []string{"kind"}},
		{"lowercase kind", func(o *org.Organization) { o.Kind = "donor" }, []string{"kind"}},
		{"malformed IATI", func(o *org.Organization) { o.IATIRef = "GB GOV 1" }, []string{"iatiRef"}},
		{"IATI without identifier", func(o *org.Organization) { o.IATIRef = "GB-GOV-" }, []string{"iatiRef"}},
		{"unknown country", func(o *org.Organization) { o.Country = "XYZ" }, []string{"country"}},
		{"alpha-2 country", func(o *org.Organization) { o.Country = "GB" }, []string{"country"}},
		{"everything wrong", func(o *org.Organization) { *o = org.Organization{Kind: "X", IATIRef: "?", Country: "??"} },
			[]string{"name", "kind", "iatiRef", "country"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tc.mutate(&o)
			err := o.Validate()
			var got []string
			var inv *apperr.InvalidError
			if errors.As(err, &inv) {
				for _, v := range inv.Violations {
					got = append(got, v.Field)
				}
			} else if err != nil {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("violations on %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	ctx := as(auth.Coordinator)
	in := org.Organization{Name: "HALO Trust", Kind: "IMPLEMENTER", Country: "GBR"}

	first, err := s.Create(ctx, in, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Create(ctx, in, "req-1")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("retry returned %+v, want %+v", again, first)
	}
	if n := count(t, db, "organizations"); n != 1 {
		t.Fatalf("%d organisations after a retry, want 1", n)
	}
	if n := count(t, db, "audit_events"); n != 1 {
		t.Fatalf("%d audit events after a retry, want 1", n)
	}

	changed := in
	changed.Name = "HALO Trust (changed)"
	_, err = s.Create(ctx, changed, "req-1")
	if !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Fatalf("same request id, other payload: got %v, want ErrAlreadyExists", err)
	}
	if n := count(t, db, "organizations"); n != 1 {
		t.Fatalf("refused request wrote: %d organisations", n)
	}
	if n := count(t, db, "audit_events"); n != 1 {
		t.Fatalf("refused request wrote an audit event: %d", n)
	}

	other, err := s.Create(ctx, in, "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID {
		t.Fatal("a new request id must create a new organisation")
	}
}

func TestCreateConcurrentRetriesMakeOne(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	ctx := as(auth.Admin)
	in := org.Organization{Name: "Norwegian People's Aid", Kind: "IMPLEMENTER", Country: "NOR"}
	ids := make(chan string, 16)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			o, err := s.Create(ctx, in, "same")
			ids <- o.ID
			errs <- err
		}()
	}
	seen := map[string]bool{}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		seen[<-ids] = true
	}
	if len(seen) != 1 || count(t, db, "organizations") != 1 {
		t.Fatalf("16 concurrent retries made ids %v", seen)
	}
}

func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	in := org.Organization{Name: "Japan", Kind: "DONOR", IATIRef: "JP-JICA-1", Country: "JPN"}
	for _, role := range []auth.Role{auth.Donor, auth.Implementer, auth.Auditor, ""} {
		if _, err := s.Create(as(role), in, "r-"+string(role)); !errors.Is(err, apperr.ErrPermissionDenied) {
			t.Errorf("role %q: got %v, want permission denied", role, err)
		}
	}
	if _, err := s.Create(as(auth.Coordinator), org.Organization{Name: "x", Kind: "DONOR", Country: "XXX"}, "bad"); err == nil {
		t.Error("unknown country accepted")
	}
	if _, err := s.Create(as(auth.Coordinator), in, ""); err == nil {
		t.Error("missing request id accepted")
	}
	if _, err := s.Create(as(auth.Coordinator), in, "a"); err != nil {
		t.Fatal(err)
	}
	dup := in
	dup.Name = "Japan again"
	if _, err := s.Create(as(auth.Coordinator), dup, "b"); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Errorf("duplicate IATI identifier: got %v, want already exists", err)
	}
	if n := count(t, db, "organizations"); n != 1 {
		t.Errorf("refusals wrote: %d organisations, want 1", n)
	}
	// SQL metacharacters are data, not code.
	evil := org.Organization{Name: "Robert'); DROP TABLE organizations;--", Kind: "DONOR"}
	o, err := s.Create(as(auth.Coordinator), evil, "evil")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(context.Background(), o.ID)
	if err != nil || got.Name != evil.Name {
		t.Fatalf("round trip of metacharacters: %v %q", err, got.Name)
	}
}

func TestListPagesAndFilters(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := org.New(db.App)
	ctx := as(auth.Coordinator)
	var donors []string
	for i, kind := range []string{"DONOR", "IMPLEMENTER", "DONOR", "AUDITOR", "DONOR", "DONOR", "IMPLEMENTER"} {
		o, err := s.Create(ctx, org.Organization{Name: kind + string(rune('A'+i)), Kind: kind}, string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		if kind == "DONOR" {
			donors = append(donors, o.ID)
		}
	}
	var got []string
	token := ""
	pages := 0
	for {
		page, next, err := s.List(ctx, "DONOR", 3, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page {
			got = append(got, o.ID)
		}
		if next == "" {
			break
		}
		token = next
	}
	if strings.Join(got, ",") != strings.Join(donors, ",") || pages != 2 {
		t.Fatalf("paged donors %v in %d pages, want %v in 2", got, pages, donors)
	}
	all, _, err := s.List(ctx, "", 0, "")
	if err != nil || len(all) != 7 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	if _, _, err := s.List(ctx, "", 10, "!!"); err == nil {
		t.Fatal("malformed page token accepted")
	}
	if _, err := s.Get(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}
