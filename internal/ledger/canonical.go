package ledger

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/audit"
)

// CanonicalJSON is the RFC 8785 form of the entry's JSON, written directly:
// the journal's audit events are the hot path of batch imports. A test checks
// it against the generic canonicalisation.
func (t Transaction) CanonicalJSON() []byte {
	str := func(s string) []byte { return audit.AppendString(nil, s) }
	dec := func(d decimal.Decimal) []byte { return audit.AppendString(nil, d.String()) }
	kv := []any{
		"agreementAmount", dec(t.AgreementAmount),
		"agreementCurrency", str(t.AgreementCcy),
		"agreementRate", dec(t.AgreementRate),
		"amount", dec(t.Amount),
		"bucket", str(t.Bucket),
		"currency", str(t.Currency),
	}
	if t.FxRate != nil {
		kv = append(kv, "fxRate", dec(*t.FxRate))
	}
	kv = append(kv, "grantId", str(t.GrantID), "id", str(t.ID))
	if t.MilestoneID != "" {
		kv = append(kv, "milestoneId", str(t.MilestoneID))
	}
	kv = append(kv, "note", str(t.Note), "recordedBy", str(t.RecordedBy), "reference", str(t.Reference),
		"reportingAmount", dec(t.ReportingAmount), "reportingCurrency", str(t.ReportingCcy),
		"reportingRate", dec(t.ReportingRate))
	if t.ReversesID != "" {
		kv = append(kv, "reversesTransactionId", str(t.ReversesID))
	}
	kv = append(kv, "type", str(t.Type), "valueDate", str(t.ValueDate.Format(time.RFC3339Nano)))
	return audit.Fields(nil, kv...)
}

// batchChange is the audit change of a batch's entries on one grant.
type batchChange struct {
	BatchID      string        `json:"batchId"`
	GrantID      string        `json:"grantId"`
	Transactions []Transaction `json:"transactions"`
}

func (c batchChange) CanonicalJSON() []byte {
	list := []byte{'['}
	for i, t := range c.Transactions {
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, t.CanonicalJSON()...)
	}
	list = append(list, ']')
	return audit.Fields(nil, "batchId", audit.AppendString(nil, c.BatchID), "grantId", audit.AppendString(nil, c.GrantID),
		"transactions", list)
}
