package token_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/testdb"
	"github.com/tranche-ledger/tranche/internal/token"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func operator() context.Context {
	return auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("test"))
}

func TestCreateAuthenticateRevoke(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := token.New(db.App)
	s.CacheTTL = 0
	ctx := operator()
	donor, err := org.New(db.App).Create(ctx, org.Organization{Name: "Donor", Kind: "DONOR"}, "d")
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := s.Create(ctx, auth.Donor, donor.ID, "finance officer")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.TokenID != tok.ID || p.Role != auth.Donor || p.OrgID != donor.ID {
		t.Fatalf("principal %+v", p)
	}
	// Only the hash is stored.
	var n int
	if err := db.Owner.QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE secret_hash = convert_to($1, 'UTF8')`, secret).Scan(&n); err != nil || n != 0 {
		t.Fatalf("secret stored in clear (%d, %v)", n, err)
	}
	for _, bad := range []string{"", "trn_", "trn_nope", secret + "x", "Bearer " + secret} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, apperr.ErrUnauthenticated) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := s.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secret); !errors.Is(err, apperr.ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].RevokedAt == nil {
		t.Fatalf("list: %+v %v", list, err)
	}
	var events int
	if err := db.Owner.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE entity_type = 'token'`).Scan(&events); err != nil || events != 2 {
		t.Fatalf("token audit events: %d (%v), want create and revoke", events, err)
	}
}

func TestCacheBoundsRevocationDelay(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := token.New(db.App)
	s.CacheTTL = 300 * time.Millisecond
	ctx := operator()
	tok, secret, err := s.Create(ctx, auth.Auditor, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(s.CacheTTL + 50*time.Millisecond)
	if _, err := s.Authenticate(ctx, secret); !errors.Is(err, apperr.ErrUnauthenticated) {
		t.Fatalf("revoked token still accepted after the cache TTL: %v", err)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := token.New(db.App)
	ctx := operator()
	tests := []struct {
		role  auth.Role
		org   string
		field string
	}{
		{"root", "", "role"},
		{auth.Donor, "", "org"},
		{auth.Implementer, "not-a-uuid", "org"},
		{auth.Donor, "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00", "org"}, // no such organisation
		{auth.Admin, "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00", "org"},
	}
	for _, tc := range tests {
		_, _, err := s.Create(ctx, tc.role, tc.org, "")
		var inv *apperr.InvalidError
		if !errors.As(err, &inv) || inv.Violations[0].Field != tc.field {
			t.Errorf("%s/%s: got %v, want a violation on %s", tc.role, tc.org, err, tc.field)
		}
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("refused creates stored %d tokens", len(list))
	}
	if _, err := s.Revoke(ctx, "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00"); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}
