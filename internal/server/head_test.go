package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
)

// The head endpoint over gRPC and REST: those who may verify the chain get a
// head whose signature checks with the server's key and whose hash is the
// chain's; donors and implementers are refused.
func TestAuditHeadRolesAndSignature(t *testing.T) {
	t.Parallel()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	h := newHarnessWith(t, func(s *Stores) { s.Audit.SetSigningKey(key) })
	admin := h.as(t, auth.Admin, "")
	donor, ngo := h.org(t, admin, "DONOR"), h.org(t, admin, "IMPLEMENTER")
	events := pb.NewAuditServiceClient(h.conn)

	for _, tc := range []struct {
		role    auth.Role
		org     string
		allowed bool
	}{
		{auth.Admin, "", true}, {auth.Coordinator, "", true}, {auth.Auditor, "", true},
		{auth.Donor, donor, false}, {auth.Implementer, ngo, false},
	} {
		t.Run(string(tc.role), func(t *testing.T) {
			resp, err := events.GetAuditHead(h.as(t, tc.role, tc.org), &pb.GetAuditHeadRequest{})
			rest := h.rest(t, "GET", "/v1/audit-events:head", "Bearer "+h.secret(t, tc.role, tc.org), nil)
			if !tc.allowed {
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("gRPC: %v, want PERMISSION_DENIED", err)
				}
				if rest.code != 403 || rest.grpcCode() != int(codes.PermissionDenied) {
					t.Fatalf("REST: %d %s, want 403 PERMISSION_DENIED", rest.code, rest.raw)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The organisations and tokens made above are sealed events.
			if resp.Seq < 2 || !resp.Signed || resp.Format != audit.HeadFormat || resp.KeyId != audit.KeyID(pub) {
				t.Fatalf("head %+v", resp)
			}
			got, err := audit.ParsePublicKey([]byte(resp.PublicKey))
			if err != nil || !got.Equal(pub) {
				t.Fatalf("public key %q: %v", resp.PublicKey, err)
			}
			hash, _ := hex.DecodeString(resp.Hash)
			sig, err := audit.DecodeSignature(resp.Signature)
			if err != nil {
				t.Fatal(err)
			}
			head := audit.Head{Seq: resp.Seq, Hash: hash, Signature: sig, KeyID: resp.KeyId}
			if err := head.VerifySignature(pub); err != nil {
				t.Fatal(err)
			}
			v, err := events.VerifyAuditChain(admin, &pb.VerifyAuditChainRequest{})
			if err != nil || v.HeadSeq < resp.Seq {
				t.Fatalf("verify %+v %v", v, err)
			}
			if rest.code != 200 || rest.body["signed"] != true || rest.body["keyId"] != resp.KeyId || rest.body["hash"] == "" {
				t.Fatalf("REST: %d %s", rest.code, rest.raw)
			}
		})
	}
}

// Without a key, the head is unsigned and says so.
func TestAuditHeadUnsigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := pb.NewAuditServiceClient(h.conn).GetAuditHead(h.as(t, auth.Auditor, ""), &pb.GetAuditHeadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Signed || resp.Signature != "" || resp.KeyId != "" || resp.PublicKey != "" || len(resp.Hash) != 64 {
		t.Fatalf("unsigned head %+v", resp)
	}
}
