package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// HeadFormat is the domain label inside every signed head message, so a
// signature over a head can never be taken for a signature over anything
// else the same key might sign, nor for a later format of head.
const HeadFormat = "tranche-audit-head/1"

// Head is the audit chain's state after the event at Seq: that event's hash.
// Anyone holding an earlier head can check that today's chain extends it: the
// chain must still have Hash at Seq. A head is signed by the server's ed25519
// key when it has one; Signature and KeyID are empty otherwise.
type Head struct {
	Seq       int64
	Hash      []byte // SHA-256; the zero hash when Seq is 0 (an empty chain)
	Signature []byte // ed25519 over HeadMessage(Seq, Hash); nil when unsigned
	KeyID     string // KeyID of the signing key's public half; "" when unsigned
}

// Signed reports whether the head carries a signature.
func (h Head) Signed() bool { return len(h.Signature) > 0 }

// HeadMessage is the byte string a head's signature covers: the RFC 8785 JSON
// object {"hash":"<lower-case hex>","seq":"<decimal>","v":"tranche-audit-head/1"},
// keys in sorted order, no white space. The sequence is written as a decimal
// string, as in canonical events, so no JSON number rules are involved.
func HeadMessage(seq int64, hash []byte) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"hash":`...)
	b = AppendString(b, hex.EncodeToString(hash))
	b = append(b, `,"seq":`...)
	b = AppendString(b, strconv.FormatInt(seq, 10))
	b = append(b, `,"v":`...)
	b = AppendString(b, HeadFormat)
	return append(b, '}')
}

// KeyID names a public key: the first 16 hex digits of the SHA-256 of its
// PKIX (SubjectPublicKeyInfo) DER encoding, the bytes inside its PEM file.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an ed25519 key always marshals
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])[:16]
}

// SignHead signs the head at seq with key.
func SignHead(key ed25519.PrivateKey, seq int64, hash []byte) Head {
	return Head{Seq: seq, Hash: bytes.Clone(hash), Signature: ed25519.Sign(key, HeadMessage(seq, hash)),
		KeyID: KeyID(key.Public().(ed25519.PublicKey))}
}

// Errors of head signature checks.
var (
	ErrHeadUnsigned     = errors.New("the head is not signed")
	ErrHeadBadSignature = errors.New("the head's signature does not verify")
)

// VerifySignature checks the head's signature with pub, a key the checker
// trusts (never one that came with the head). A head claiming another key's
// id is refused before its signature is looked at, so the message says which
// key it claims.
func (h Head) VerifySignature(pub ed25519.PublicKey) error {
	if !h.Signed() {
		return ErrHeadUnsigned
	}
	if want := KeyID(pub); h.KeyID != "" && h.KeyID != want {
		return fmt.Errorf("%w: signed by key %s, the trusted key is %s", ErrHeadBadSignature, h.KeyID, want)
	}
	if len(h.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, HeadMessage(h.Seq, h.Hash), h.Signature) {
		return fmt.Errorf("%w with key %s (seq %d, hash %x)", ErrHeadBadSignature, KeyID(pub), h.Seq, h.Hash)
	}
	return nil
}

// EncodeSignature is how a head's signature travels as text: standard
// base64 with padding.
func EncodeSignature(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }

// DecodeSignature reverses EncodeSignature.
func DecodeSignature(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// SetSigningKey makes the store sign the heads it returns with key; nil
// leaves them unsigned.
func (s *Store) SetSigningKey(key ed25519.PrivateKey) { s.key = key }

// Sign signs msg with the store's key, giving the signature and the key's
// id; without a key, nil and "". Every kind of signed message carries a
// label of its own (HeadMessage's "v"), so a signature over one kind can
// never pass for another.
func (s *Store) Sign(msg []byte) ([]byte, string) {
	if s.key == nil {
		return nil, ""
	}
	return ed25519.Sign(s.key, msg), KeyID(s.key.Public().(ed25519.PublicKey))
}

// PublicKey is the public half of the signing key, nil without one.
func (s *Store) PublicKey() ed25519.PublicKey {
	if s.key == nil {
		return nil
	}
	return s.key.Public().(ed25519.PublicKey)
}

// Head seals pending events, then returns the head of the sealed chain,
// signed when the store has a key. An empty chain's head is sequence 0 with
// the zero hash, the prev_hash of the first event to come. The head is read
// as stored: Verify is what checks that the chain up to it is sound.
func (s *Store) Head(ctx context.Context) (Head, error) {
	if _, err := s.sealer.SealPending(ctx); err != nil {
		return Head{}, err
	}
	var seq int64
	var hash []byte
	err := s.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err == pgx.ErrNoRows {
		seq, hash, err = 0, zeroHash, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("reading the audit head: %w", err)
	}
	return s.head(seq, hash), nil
}

// ErrNoSuchSeq is returned by HeadAt for a sequence the chain does not reach.
var ErrNoSuchSeq = errors.New("the audit chain has no event at that sequence")

// HeadAt seals pending events, then returns the head as it was after the
// event at seq (sequence 0: the empty chain), signed when the store has a key.
// Like Head it signs the hash as stored: a caller that vouches for the chain
// behind it (an audit pack) verifies the chain in the same breath.
func (s *Store) HeadAt(ctx context.Context, seq int64) (Head, error) {
	if seq == 0 {
		return s.head(0, zeroHash), nil
	}
	if _, err := s.sealer.SealPending(ctx); err != nil {
		return Head{}, err
	}
	var hash []byte
	err := s.pool.QueryRow(ctx, `SELECT hash FROM audit_events WHERE seq = $1`, seq).Scan(&hash)
	if err == pgx.ErrNoRows {
		return Head{}, fmt.Errorf("sequence %d: %w", seq, ErrNoSuchSeq)
	}
	if err != nil {
		return Head{}, fmt.Errorf("reading the audit head at %d: %w", seq, err)
	}
	return s.head(seq, hash), nil
}

func (s *Store) head(seq int64, hash []byte) Head {
	if s.key == nil {
		return Head{Seq: seq, Hash: hash}
	}
	return SignHead(s.key, seq, hash)
}

// Problems a check against an earlier head can report, besides those of
// Verify.
const (
	HeadMismatch  = "HEAD_MISMATCH"   // the chain has another hash at the head's sequence
	HeadBeyondEnd = "HEAD_BEYOND_END" // the chain ends before the head's sequence
	HeadBadSig    = "HEAD_BAD_SIGNATURE"
	HeadNotSigned = "HEAD_UNSIGNED"
)

// VerifySince seals pending events, recomputes the whole chain as Verify
// does, and checks that it extends h: the recomputed hash at h.Seq is h.Hash,
// and the chain from there to its end verifies. It does not check h's
// signature (Head.VerifySignature does). The Result's FirstBadSeq names the
// sequence at fault: the first bad event of the chain when it breaks at or
// before h.Seq, h.Seq when the hash there differs or the chain ends before it,
// the first bad event after it otherwise.
func (s *Store) VerifySince(ctx context.Context, h Head) (Result, error) {
	if _, err := s.sealer.SealPending(ctx); err != nil {
		return Result{}, err
	}
	r, err := verify(ctx, s.pool, h.Seq)
	if err != nil {
		return Result{}, err
	}
	if !r.Verified && r.FirstBadSeq <= h.Seq {
		return r, nil // broken before the head could be reached
	}
	if h.Seq == 0 {
		if !bytes.Equal(h.Hash, zeroHash) {
			r.Verified, r.FirstBadSeq, r.Problem = false, 0, HeadMismatch
			r.Detail = fmt.Sprintf("a head at sequence 0 has the zero hash, this one has %x", h.Hash)
		}
		return r, nil
	}
	if r.MarkHash == nil {
		r.Verified, r.FirstBadSeq, r.Problem = false, h.Seq, HeadBeyondEnd
		r.Detail = fmt.Sprintf("the head is at sequence %d, the chain ends at %d", h.Seq, r.HeadSeq)
		return r, nil
	}
	if !bytes.Equal(r.MarkHash, h.Hash) {
		r.Verified, r.FirstBadSeq, r.Problem = false, h.Seq, HeadMismatch
		r.Detail = fmt.Sprintf("the chain has %x at sequence %d, the head says %x", r.MarkHash, h.Seq, h.Hash)
		return r, nil
	}
	return r, nil
}

// GenerateKeyFiles writes a new ed25519 key pair: the private key as PEM
// PKCS#8 to privPath with mode 0600, the public key as PEM PKIX to pubPath
// with mode 0644. It refuses to overwrite either file, and writes neither
// when one exists.
func GenerateKeyFiles(privPath, pubPath string) (ed25519.PublicKey, error) {
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s already exists; not overwriting it", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := writeNew(privPath, 0o600, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, 0o644, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})); err != nil {
		os.Remove(privPath)
		return nil, err
	}
	return pub, nil
}

// writeNew creates path (never replacing a file, even one created since the
// check) with mode perm regardless of the umask.
func writeNew(path string, perm os.FileMode, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// LoadPrivateKey reads an ed25519 private key from a PEM PKCS#8 file. It
// refuses a file group or others may read (or write), as ssh does: a signing
// key anyone on the machine can copy signs nothing worth trusting.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" (PKCS#8) file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an ed25519 key", path, k)
	}
	return ek, nil
}

// ParsePublicKey reads an ed25519 public key from PEM PKIX ("PUBLIC KEY").
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM \"PUBLIC KEY\" (PKIX) block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ed25519 key", k)
	}
	return ek, nil
}

// PublicKeyPEM encodes pub as a PEM PKIX block, as its key file holds it.
func PublicKeyPEM(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
