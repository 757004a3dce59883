package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// The hashed encoding must never change: chains sealed by one version of
// tranche have to verify under every later one. This pins it byte for byte.
func TestCanonicalEncodingIsStable(t *testing.T) {
	t.Parallel()
	e := &Event{
		ID: 42, OccurredAt: time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.FixedZone("x", 3600)),
		ActorTokenID: "tok", ActorName: "Ann <finance> & co", ActorRole: "donor", ActorOrgID: "org-1",
		Method: "/tranche.v1.X/Y", EntityType: "grant", EntityID: "g|1", RequestID: "r\"1",
		SubjectOrgs: []string{"org-1", "org-2"},
		// Stored as Record writes it: already canonical (Canonical sorts the keys).
		Change: mustCanonical(t, map[string]any{"amount": "1500000.00", "b": []int{1, 2}, "a": "é"}),
	}
	prev := make([]byte, 32)
	prev[31] = 1
	got, err := canonicalEvent(e, 7, prev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"actorName":"Ann <finance> & co","actorOrgId":"org-1","actorRole":"donor","actorTokenId":"tok",` +
		`"change":{"a":"é","amount":"1500000.00","b":[1,2]},"entityId":"g|1","entityType":"grant","id":"42",` +
		`"method":"/tranche.v1.X/Y","occurredAt":"2026-03-01T08:30:00.123456Z",` +
		`"prevHash":"0000000000000000000000000000000000000000000000000000000000000001","requestId":"r\"1",` +
		`"seq":"7","subjectOrgs":["org-1","org-2"],"v":"tranche-audit/1"}`
	if string(got) != want {
		t.Fatalf("canonical encoding changed:\n got %s\nwant %s", got, want)
	}
	h, err := chainHash(e, 7, prev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(append([]byte{}, prev...), want...))
	if hex.EncodeToString(h) != hex.EncodeToString(sum[:]) {
		t.Fatal("hash is not SHA-256(prev || canonical)")
	}
	// A field boundary moved by a delimiter must change the bytes.
	e2 := *e
	e2.ActorName, e2.ActorOrgID = "Ann <finance> & co\",\"actorOrgId\":\"org-1", ""
	got2, _ := canonicalEvent(&e2, 7, prev)
	if string(got2) == string(got) {
		t.Fatal("two different events encode alike")
	}
}

func mustCanonical(t *testing.T, v any) string {
	t.Helper()
	b, err := Canonical(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
