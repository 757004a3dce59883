package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// secret mints a token of role and returns its secret.
func (h *harness) secret(tb testing.TB, role auth.Role, org string) string {
	tb.Helper()
	op := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("test"))
	_, secret, err := h.tokens.Create(op, role, org, string(role))
	if err != nil {
		tb.Fatal(err)
	}
	return secret
}

// The Authorization scheme is case-insensitive (RFC 7235); anything that is
// not "<scheme> <token>" with the bearer scheme is refused.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	secret := h.secret(t, auth.Auditor, "")
	orgs := pb.NewOrganizationServiceClient(h.conn)
	for _, tc := range []struct {
		header string
		want   codes.Code
	}{
		{"Bearer " + secret, codes.OK},
		{"bearer " + secret, codes.OK},
		{"BEARER " + secret, codes.OK},
		{"bEaReR   " + secret + " ", codes.OK},
		{"Basic " + secret, codes.Unauthenticated},
		{"Bearer", codes.Unauthenticated},
		{"Bearer ", codes.Unauthenticated},
		{"Bearer" + secret, codes.Unauthenticated},
		{secret, codes.Unauthenticated},
		{"Bearer trn_unknown", codes.Unauthenticated},
	} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", tc.header)
		_, err := orgs.ListOrganizations(ctx, &pb.ListOrganizationsRequest{})
		if got := status.Code(err); got != tc.want {
			t.Errorf("Authorization %q: %v, want %v (%v)", tc.header, got, tc.want, err)
		}
	}
}
