package ledger

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/audit"
)

// CanonicalJSON is the RFC 8785 form of the entry's JSON, written directly:
// the journal's audit events are the hot path of batch imports. A fuzz test
// checks it against the generic canonicalisation.
func (t Transaction) CanonicalJSON() []byte { return t.appendCanonical(make([]byte, 0, 768)) }

// appendCanonical writes the fields in RFC 8785 key order (ASCII, so byte order).
func (t Transaction) appendCanonical(b []byte) []byte {
	str := func(key, v string) { b = audit.AppendString(append(b, key...), v) }
	dec := func(key string, d decimal.Decimal) { str(key, d.String()) }
	dec(`{"agreementAmount":`, t.AgreementAmount)
	str(`,"agreementCurrency":`, t.AgreementCcy)
	dec(`,"agreementRate":`, t.AgreementRate)
	dec(`,"amount":`, t.Amount)
	str(`,"bucket":`, t.Bucket)
	str(`,"currency":`, t.Currency)
	if t.FxRate != nil {
		dec(`,"fxRate":`, *t.FxRate)
	}
	str(`,"grantId":`, t.GrantID)
	str(`,"id":`, t.ID)
	if t.MilestoneID != "" {
		str(`,"milestoneId":`, t.MilestoneID)
	}
	str(`,"note":`, t.Note)
	str(`,"recordedBy":`, t.RecordedBy)
	str(`,"reference":`, t.Reference)
	dec(`,"reportingAmount":`, t.ReportingAmount)
	str(`,"reportingCurrency":`, t.ReportingCcy)
	dec(`,"reportingRate":`, t.ReportingRate)
	if t.ReversesID != "" {
		str(`,"reversesTransactionId":`, t.ReversesID)
	}
	str(`,"type":`, t.Type)
	str(`,"valueDate":`, t.ValueDate.Format(time.RFC3339Nano))
	return append(b, '}')
}

// batchChange is the audit change of a batch's entries on one grant.
type batchChange struct {
	BatchID      string        `json:"batchId"`
	GrantID      string        `json:"grantId"`
	Transactions []Transaction `json:"transactions"`
}

func (c batchChange) CanonicalJSON() []byte {
	b := make([]byte, 0, 100+700*len(c.Transactions))
	b = audit.AppendString(append(b, `{"batchId":`...), c.BatchID)
	b = audit.AppendString(append(b, `,"grantId":`...), c.GrantID)
	b = append(b, `,"transactions":[`...)
	for i, t := range c.Transactions {
		if i > 0 {
			b = append(b, ',')
		}
		b = t.appendCanonical(b)
	}
	return append(b, ']', '}')
}
