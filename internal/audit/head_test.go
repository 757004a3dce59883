package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The signed message is pinned: a verifier in another language rebuilds it
// from this description, so its bytes must not drift.
func TestHeadMessageIsPinned(t *testing.T) {
	t.Parallel()
	hash := bytes.Repeat([]byte{0xab}, 32)
	got := string(audit.HeadMessage(42, hash))
	want := `{"hash":"` + strings.Repeat("ab", 32) + `","seq":"42","v":"tranche-audit-head/1"}`
	if got != want {
		t.Fatalf("message\n got %s\nwant %s", got, want)
	}
}

func TestHeadSignatureRoundTripAndForgeries(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	mutate(t, db, 5, "org")
	key, other := newKey(t), newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	s := audit.New(db.App)
	s.SetSigningKey(key)
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Seq != 5 || len(h.Hash) != 32 || !h.Signed() || h.KeyID != audit.KeyID(pub) || len(h.KeyID) != 16 {
		t.Fatalf("head %+v", h)
	}
	if err := h.VerifySignature(pub); err != nil {
		t.Fatalf("genuine head refused: %v", err)
	}
	at3, err := s.HeadAt(context.Background(), 3)
	if err != nil || at3.Seq != 3 || at3.VerifySignature(pub) != nil {
		t.Fatalf("head at 3: %+v %v", at3, err)
	}
	if _, err := s.HeadAt(context.Background(), 6); !errors.Is(err, audit.ErrNoSuchSeq) {
		t.Fatalf("head at 6: %v, want ErrNoSuchSeq", err)
	}
	sig, err := audit.DecodeSignature(audit.EncodeSignature(h.Signature))
	if err != nil || !bytes.Equal(sig, h.Signature) {
		t.Fatalf("signature text round trip: %v", err)
	}

	forged := func(f func(*audit.Head)) audit.Head {
		c := h
		c.Hash = bytes.Clone(h.Hash)
		f(&c)
		return c
	}
	otherSigned := audit.SignHead(other, h.Seq, h.Hash)
	tests := []struct {
		name string
		head audit.Head
		want error
	}{
		{"hash changed", forged(func(c *audit.Head) { c.Hash[0] ^= 1 }), audit.ErrHeadBadSignature},
		{"seq changed", forged(func(c *audit.Head) { c.Seq = 4 }), audit.ErrHeadBadSignature},
		{"signed by another key", otherSigned, audit.ErrHeadBadSignature},
		{"another key's signature under this key's id", forged(func(c *audit.Head) { c.Signature = otherSigned.Signature }), audit.ErrHeadBadSignature},
		{"truncated signature", forged(func(c *audit.Head) { c.Signature = c.Signature[:10] }), audit.ErrHeadBadSignature},
		{"unsigned", forged(func(c *audit.Head) { c.Signature, c.KeyID = nil, "" }), audit.ErrHeadUnsigned},
	}
	for _, tc := range tests {
		if err := tc.head.VerifySignature(pub); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Without a key, heads are unsigned and say so.
	u, err := audit.New(db.App).Head(context.Background())
	if err != nil || u.Signed() || u.KeyID != "" || !bytes.Equal(u.Hash, h.Hash) {
		t.Fatalf("unsigned head %+v %v", u, err)
	}
}

func TestVerifySince(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		tamper  []string // as the owner with triggers off, after the head at 5 was taken
		reseal  bool     // re-hash the unsealed tail, as an attacker with the code would
		headSeq int64
		badSeq  int64
		problem string
	}{
		{name: "chain extends the head", headSeq: 5},
		{name: "the empty head", headSeq: 0},
		{name: "head at the end", headSeq: 8},
		{name: "tail rewritten and re-hashed", tamper: []string{
			`UPDATE audit_events SET change = replace(change, 'org 2 ', 'org 7 ') WHERE seq = 3`,
			`UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL WHERE seq >= 3`,
		}, reseal: true, headSeq: 5, badSeq: 5, problem: audit.HeadMismatch},
		{name: "chain cut back to before the head", tamper: []string{
			`DELETE FROM audit_events WHERE seq >= 4`,
		}, headSeq: 5, badSeq: 5, problem: audit.HeadBeyondEnd},
		{name: "broken before the head", tamper: []string{
			`UPDATE audit_events SET actor_role = 'admin' WHERE seq = 2`,
		}, headSeq: 5, badSeq: 2, problem: audit.HashMismatch},
		{name: "broken after the head", tamper: []string{
			`UPDATE audit_events SET actor_role = 'admin' WHERE seq = 7`,
		}, headSeq: 5, badSeq: 7, problem: audit.HashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			mutate(t, db, 8, "org")
			s := audit.New(db.App)
			s.SetSigningKey(newKey(t))
			h, err := s.HeadAt(ctx, tc.headSeq)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.tamper) > 0 {
				tamper(t, db, tc.tamper...)
			}
			if tc.reseal {
				// The rewritten chain verifies on its own: only the head
				// kept outside the database shows the rewrite.
				if r := verify(t, db); !r.Verified || r.HeadSeq != 8 {
					t.Fatalf("re-sealed chain: %+v", r)
				}
			}
			r, err := s.VerifySince(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if !r.Verified {
					t.Fatalf("refused: %+v", r)
				}
				return
			}
			if r.Verified || r.FirstBadSeq != tc.badSeq || r.Problem != tc.problem {
				t.Fatalf("got verified=%v %d %s (%s), want %d %s", r.Verified, r.FirstBadSeq, r.Problem, r.Detail, tc.badSeq, tc.problem)
			}
		})
	}
}

func TestGenerateKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv, pubPath := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	pub, err := audit.GenerateKeyFiles(priv, pubPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(priv)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v %v, want 0600", st.Mode(), err)
	}
	k, err := audit.LoadPrivateKey(priv)
	if err != nil || !k.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("load private: %v", err)
	}
	data, _ := os.ReadFile(pubPath)
	p2, err := audit.ParsePublicKey(data)
	if err != nil || !p2.Equal(pub) || audit.PublicKeyPEM(pub) != string(data) {
		t.Fatalf("load public: %v", err)
	}
	before, _ := os.ReadFile(priv)
	if _, err := audit.GenerateKeyFiles(priv, filepath.Join(dir, "new.pub")); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.pub")); err == nil {
		t.Fatal("wrote the public key although the private one exists")
	}
	after, _ := os.ReadFile(priv)
	if !bytes.Equal(before, after) {
		t.Fatal("private key changed")
	}
	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadPrivateKey(priv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	if _, err := audit.ParsePublicKey([]byte("not pem")); err == nil {
		t.Fatal("accepted garbage as a public key")
	}
}
