package token_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
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
	if _, revoked, err := s.Revoke(ctx, tok.ID); err != nil || !revoked {
		t.Fatalf("revoke: %v, %v", revoked, err)
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
	if _, _, err := s.Revoke(ctx, tok.ID); err != nil {
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
	if _, _, err := s.Revoke(ctx, "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00"); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}

// Donor tokens bind to funders, implementer tokens to bodies that carry out
// the work; any other organisation is refused and nothing is stored.
func TestCreateBindsRolesToOrganisationKinds(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := token.New(db.App)
	ctx := operator()
	orgs := map[string]string{} // kind → id
	for _, kind := range org.Kinds {
		o, err := org.New(db.App).Create(ctx, org.Organization{Name: "An " + kind, Kind: kind}, "org-"+kind)
		if err != nil {
			t.Fatal(err)
		}
		orgs[kind] = o.ID
	}
	allowed := map[auth.Role][]string{
		auth.Donor:       {"DONOR", "POOLED_FUND"},
		auth.Implementer: {"IMPLEMENTER", "NATIONAL_AUTHORITY", "POOLED_FUND"},
	}
	created := 0
	for _, role := range []auth.Role{auth.Donor, auth.Implementer} {
		for _, kind := range org.Kinds {
			t.Run(string(role)+"/"+kind, func(t *testing.T) {
				_, _, err := s.Create(ctx, role, orgs[kind], "")
				if slices.Contains(allowed[role], kind) {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					created++
					return
				}
				var inv *apperr.InvalidError
				if !errors.As(err, &inv) || inv.Violations[0].Field != "org" || !strings.Contains(err.Error(), kind) {
					t.Fatalf("got %v, want a violation on org naming its kind %s", err, kind)
				}
			})
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != created || created != 5 {
		t.Fatalf("%d tokens stored (%v), want the %d accepted", len(list), err, created)
	}
	var events int
	if err := db.Owner.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE entity_type = 'token'`).Scan(&events); err != nil || events != created {
		t.Fatalf("%d token audit events (%v), want %d", events, err, created)
	}
}

// Revoking a revoked token, again or concurrently, changes nothing and writes
// no second audit event.
func TestRevokeTwiceWritesOneEvent(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s := token.New(db.App)
	ctx := operator()
	tok, _, err := s.Create(ctx, auth.Auditor, "", "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	type result struct {
		t       token.Token
		revoked bool
		err     error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			t, revoked, err := s.Revoke(ctx, tok.ID)
			results <- result{t, revoked, err}
		})
	}
	wg.Wait()
	close(results)
	var first *time.Time
	revocations := 0
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.revoked {
			revocations++
		}
		if r.t.RevokedAt == nil || (first != nil && !r.t.RevokedAt.Equal(*first)) {
			t.Fatalf("revocation times differ: %v, %v", r.t.RevokedAt, first)
		}
		first = r.t.RevokedAt
	}
	again, revoked, err := s.Revoke(ctx, tok.ID)
	if err != nil || revoked || !again.RevokedAt.Equal(*first) {
		t.Fatalf("revoking again: revoked=%v at %v (%v), want unchanged %v", revoked, again.RevokedAt, err, first)
	}
	if revocations != 1 {
		t.Fatalf("%d calls revoked the token, want 1", revocations)
	}
	var events int
	if err := db.Owner.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE entity_type = 'token' AND entity_id = $1`, tok.ID).Scan(&events); err != nil || events != 2 {
		t.Fatalf("%d audit events for the token (%v), want create and one revoke", events, err)
	}
}
