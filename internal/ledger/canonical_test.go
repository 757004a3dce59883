package ledger

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/shopspring/decimal"
)

// The direct RFC 8785 writer must produce exactly what the generic path
// (encoding/json, then jcs.Transform) produces, or audit hashes would depend
// on which path wrote an event.
func FuzzTransactionCanonicalJSON(f *testing.F) {
	f.Add("INV-1", "note", "1500000.00", "0.88", true, "")
	f.Add("<&>\u2028\u2029", "\"quoted\" \\ back\tslash\n\x01\x1f", "-0.5", "", false, "m")
	f.Add("\xff\xfe invalid", "é 日本 🚀", "0", "151.3", true, "x")
	f.Fuzz(func(t *testing.T, ref, note, amount, rate string, reversal bool, milestone string) {
		d, err := decimal.NewFromString(amount)
		if err != nil {
			d = decimal.NewFromInt(int64(len(amount)))
		}
		tx := Transaction{ID: "01a2195f-dc3c-70c2-82d7-4f0ad8a83b00", GrantID: "g", Type: "DISBURSEMENT", Bucket: "DISBURSEMENT",
			Amount: d, Currency: "EUR", AgreementAmount: d.Neg(), AgreementCcy: "EUR", ReportingAmount: d.Mul(decimal.NewFromInt(3)),
			ReportingCcy: "USD", AgreementRate: decimal.NewFromInt(1), ReportingRate: decimal.RequireFromString("0.88"),
			ValueDate: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Reference: ref, Note: note, RecordedBy: note + ref, MilestoneID: milestone}
		if r, err := decimal.NewFromString(rate); err == nil {
			tx.FxRate = &r
		}
		if reversal {
			tx.Type, tx.ReversesID = "REVERSAL", ref
		}
		check := func(v interface{ CanonicalJSON() []byte }) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := jcs.Transform(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.CanonicalJSON(); string(got) != string(want) {
				t.Fatalf("direct RFC 8785 form differs:\n got %s\nwant %s", got, want)
			}
		}
		check(tx)
		check(batchChange{BatchID: ref, GrantID: note, Transactions: []Transaction{tx, tx}})
	})
}

func TestCanonicalJSONRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		tx := Transaction{Note: string(b), Reference: string(b[len(b)/2:]), ValueDate: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}
		raw, _ := json.Marshal(tx)
		want, err := jcs.Transform(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := tx.CanonicalJSON(); string(got) != string(want) {
			t.Fatalf("%q:\n got %s\nwant %s", b, got, want)
		}
	}
}
