package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
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
}

func mustCanonical(t *testing.T, v any) string {
	t.Helper()
	b, err := Canonical(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// canonicalEventGeneric is the envelope built the slow, obviously right way:
// encoding/json plus the RFC 8785 canonicaliser over the whole event.
func canonicalEventGeneric(t *testing.T, e *Event, seq int64, prev []byte) string {
	t.Helper()
	doc := map[string]any{
		"v": "tranche-audit/1", "seq": strconv.FormatInt(seq, 10), "prevHash": hex.EncodeToString(prev),
		"id": strconv.FormatInt(e.ID, 10), "occurredAt": e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"actorTokenId": e.ActorTokenID, "actorName": e.ActorName, "actorRole": e.ActorRole, "actorOrgId": e.ActorOrgID,
		"method": e.Method, "entityType": e.EntityType, "entityId": e.EntityID, "requestId": e.RequestID,
		"subjectOrgs": e.SubjectOrgs, "change": json.RawMessage(e.Change),
	}
	return mustCanonical(t, doc)
}

// The directly written envelope equals the generic canonical form for
// arbitrary field contents (quotes, control characters, non-ASCII, invalid
// UTF-8, empty lists).
func TestCanonicalEventMatchesGeneric(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "𝄞", "\u2028", "\xff", "<", "&", "|"}
	str := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 2000 {
		subjects := []string{}
		for range rng.IntN(3) {
			subjects = append(subjects, str())
		}
		e := &Event{ID: rng.Int64N(1 << 40), OccurredAt: time.Unix(rng.Int64N(1<<32), rng.Int64N(1e9)),
			ActorTokenID: str(), ActorName: str(), ActorRole: str(), ActorOrgID: str(), Method: str(),
			EntityType: str(), EntityID: str(), RequestID: str(), SubjectOrgs: subjects,
			Change: mustCanonical(t, map[string]any{"k": str(), str(): []string{str()}})}
		prev := make([]byte, 32)
		for i := range prev {
			prev[i] = byte(rng.IntN(256))
		}
		seq := rng.Int64N(1 << 50)
		got, err := canonicalEvent(e, seq, prev)
		if err != nil {
			t.Fatal(err)
		}
		if want := canonicalEventGeneric(t, e, seq, prev); string(got) != want {
			t.Fatalf("direct envelope differs:\n got %s\nwant %s", got, want)
		}
	}
}
