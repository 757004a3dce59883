package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/money"
)

// Transaction types (IATI / FTS).
const (
	Pledge       = "PLEDGE"
	Commitment   = "COMMITMENT"
	Disbursement = "DISBURSEMENT"
	Receipt      = "RECEIPT"
	Expenditure  = "EXPENDITURE"
	Reversal     = "REVERSAL"
)

var (
	types = []string{Pledge, Commitment, Disbursement, Receipt, Expenditure, Reversal}
	// donorTypes are what a donor records (and may reverse); implementers
	// record the others.
	donorTypes       = []string{Pledge, Commitment, Disbursement}
	implementerTypes = []string{Receipt, Expenditure}
)

// ValueDateSlack is how far outside the grant period a value date may lie:
// pledges and commitments often precede the agreement's start, final
// expenditures and receipts follow its end. Further out is almost certainly
// a typo (a wrong year) and is refused.
const ValueDateSlack = 366 * 24 * time.Hour

// EntryInput is a journal entry to record, parsed. Violations name its
// fields as a Transaction's JSON does (amount.amount, valueDate), prefixed
// with its position in the list recorded ([2].valueDate).
type EntryInput struct {
	GrantID uuid.UUID
	Type    string
	// Amount in any currency; a REVERSAL may leave it empty (no currency):
	// it cancels its entry in full, and an amount given must be that entry's.
	Amount      money.Amount
	ValueDate   time.Time
	Reference   string
	MilestoneID uuid.UUID // uuid.Nil: none
	ReversesID  uuid.UUID // the entry a REVERSAL cancels
	// FxRate is the entry's own rate: units of its currency per unit of the
	// reporting currency (nil: the FX table's).
	FxRate *decimal.Decimal
	Note   string
}

// Transaction is one stored journal entry.
type Transaction struct {
	ID              string           `json:"id"`
	GrantID         string           `json:"grantId"`
	Type            string           `json:"type"`
	Bucket          string           `json:"bucket"`
	Amount          decimal.Decimal  `json:"amount"`
	Currency        string           `json:"currency"`
	AgreementAmount decimal.Decimal  `json:"agreementAmount"`
	AgreementCcy    string           `json:"agreementCurrency"`
	ReportingAmount decimal.Decimal  `json:"reportingAmount"`
	ReportingCcy    string           `json:"reportingCurrency"`
	AgreementRate   decimal.Decimal  `json:"agreementRate"`
	ReportingRate   decimal.Decimal  `json:"reportingRate"`
	FxRate          *decimal.Decimal `json:"fxRate,omitempty"`
	ValueDate       time.Time        `json:"valueDate"`
	Reference       string           `json:"reference"`
	MilestoneID     string           `json:"milestoneId,omitempty"`
	ReversesID      string           `json:"reversesTransactionId,omitempty"`
	Note            string           `json:"note"`
	RecordedBy      string           `json:"recordedBy"`
	RecordedRole    string           `json:"-"`
	RecordedAt      time.Time        `json:"-"`
	BatchID         string           `json:"-"` // the batch's audit event holds it
}

// parsed is one entry of a plan: the input, with its ids as the strings the
// database and caches use, and the text it is stored with.
type parsed struct {
	in                               EntryInput
	item                             int // position in the list recorded, for violations
	grantID, milestoneID, reversesID string
	reference, note                  string
}

// digest is the idempotency digest of entries: what a retry must repeat,
// each field length-prefixed into one buffer hashed once (marshalling a
// batch of typed entries to JSON, or hashing field by field, cost a batch
// import several per cent of its time).
func digest(in []EntryInput) []byte {
	b := make([]byte, 0, 160*len(in))
	field := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, e := range in {
		b = append(b, e.GrantID[:]...)
		b = append(b, e.MilestoneID[:]...)
		b = append(b, e.ReversesID[:]...)
		b = e.ValueDate.AppendFormat(b, time.DateOnly)
		field(e.Type)
		field(e.Amount.Value.String())
		field(e.Amount.Currency)
		field(e.Reference)
		field(e.Note)
		if e.FxRate != nil {
			b = append(b, 1)
			field(e.FxRate.String())
		} else {
			b = append(b, 0)
		}
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

func (e parsed) field(name string) string { return fmt.Sprintf("[%d].%s", e.item, name) }

// plan is what recording entries needs from the database. For a batch,
// gather queues every read into one round trip (with the grants' row locks)
// and apply the writes into a second; a single entry reads only what its
// caches miss (readStatic) and writes in one statement.
type plan struct {
	p                auth.Principal
	entries          []parsed
	grantIDs         []string // sorted: rows are locked in this order, so writers cannot deadlock
	reversed         []string
	milestoneIDs     []string
	grants           map[string]*Grant
	bals             map[string]*balance
	originals        map[string]Transaction
	milestoneRoadmap map[string]string
	rates            *fx.Table
	fxSeq            int64 // the FX table's head, read with the grants' locks
	// importing: an import (RecordIn) records any entry type on any grant;
	// p, who the entries and audit events name, is an importing role.
	importing bool
	// at, when set, names entry item of the plan in a refusal of the
	// balances (RecordIn: its position in the whole import).
	at func(item int) string
}

// newPlan checks the caller's role and the shape of every entry before
// touching the database.
func newPlan(p auth.Principal, in []EntryInput) (*plan, error) {
	if err := p.Require(auth.Donor, auth.Implementer); err != nil {
		return nil, err
	}
	var v apperr.Validator
	entries := make([]parsed, len(in))
	reverses := map[uuid.UUID]int{}
	for i, e := range in {
		pe := parsed{in: e, item: i, grantID: e.GrantID.String()}
		v.Item(i) // field names below are the entry's; formatted only when bad
		if e.GrantID == uuid.Nil {
			v.Add("grantId", "required")
		}
		if !slices.Contains(types, e.Type) {
			v.Add("type", "unknown type %q (want one of PLEDGE, COMMITMENT, DISBURSEMENT, RECEIPT, EXPENDITURE, REVERSAL)", e.Type)
		}
		a := e.Amount.Value
		if e.Type == Reversal {
			if e.ReversesID == uuid.Nil {
				v.Add("reversesTransactionId", "a REVERSAL names the entry it cancels")
			} else if j, ok := reverses[e.ReversesID]; ok {
				v.Add("reversesTransactionId", "entry %s is reversed by entry %d of this request already", e.ReversesID, j)
			} else {
				reverses[e.ReversesID] = i
				pe.reversesID = e.ReversesID.String()
			}
			if e.FxRate != nil {
				v.Add("fxRate", "a REVERSAL converts at the rates of the entry it cancels")
			}
		} else {
			if e.ReversesID != uuid.Nil {
				v.Add("reversesTransactionId", "only a REVERSAL names a reversed entry")
			}
			switch {
			case e.Amount.Currency == "":
				v.Add("amount.currency", "required")
			case !money.InMinorUnits(e.Amount):
				v.Add("amount.amount", "%s has more decimals than %s allows", a, e.Amount.Currency)
			case a.IsZero():
				v.Add("amount.amount", "must not be zero")
			case a.IsNegative() && e.Type != Pledge && e.Type != Commitment:
				v.Add("amount.amount", "must be positive for %s (only pledges and commitments are amended downwards)", e.Type)
			}
		}
		v.Date("valueDate", e.ValueDate, true)
		pe.reference = v.Text("reference", e.Reference, e.Type == Expenditure, 200)
		pe.note = v.Text("note", e.Note, false, 2000)
		if e.MilestoneID != uuid.Nil {
			pe.milestoneID = e.MilestoneID.String()
		}
		if e.FxRate != nil {
			if err := fx.CheckRate(*e.FxRate); err != nil { // the plausibility limits of table rates
				v.Add("fxRate", "%v", err)
			}
		}
		entries[i] = pe
	}
	if err := v.Err(); err != nil {
		return nil, err
	}

	pl := &plan{p: p, entries: entries}
	for _, e := range entries {
		pl.grantIDs = append(pl.grantIDs, e.grantID)
		if e.reversesID != "" {
			pl.reversed = append(pl.reversed, e.reversesID)
		}
		if e.milestoneID != "" {
			pl.milestoneIDs = append(pl.milestoneIDs, e.milestoneID)
		}
	}
	pl.grantIDs = slices.Compact(slices.Sorted(slices.Values(pl.grantIDs)))
	return pl, nil
}

// found reports a grant that does not exist or that the caller may not see.
func (pl *plan) found() error {
	for _, id := range pl.grantIDs {
		if g := pl.grants[id]; g == nil || !canRead(pl.p, g) {
			return notFound(id)
		}
	}
	return nil
}

// prepare checks each entry against what never changes (the grant's period
// and parties, the milestone, the reversed entry, the caller's rights) and
// converts it; the balances are checked by the writer.
func (s *Store) prepare(pl *plan, ids []string) ([]Transaction, error) {
	p := pl.p
	out := make([]Transaction, len(pl.entries))
	for i, e := range pl.entries {
		g := pl.grants[e.grantID]
		f := e.field
		t := Transaction{ID: ids[i], GrantID: g.ID, Type: e.in.Type, Bucket: e.in.Type, Amount: e.in.Amount.Value,
			Currency: e.in.Amount.Currency, AgreementCcy: g.Currency, ReportingCcy: g.ReportingCurrency, FxRate: e.in.FxRate,
			ValueDate: e.in.ValueDate, Reference: e.reference, MilestoneID: e.milestoneID, ReversesID: e.reversesID,
			Note: e.note, RecordedBy: p.TokenID, RecordedRole: string(p.Role)}
		if p.Role == auth.Operator {
			t.RecordedBy = "operator:" + p.Name
		}
		// Who may record what comes first, so that no answer below tells a
		// caller anything about a grant it may not write to.
		if t.Type != Reversal {
			if err := pl.allowed(g, t.Bucket); err != nil {
				return nil, err
			}
		}
		if t.ValueDate.Before(g.StartDate.Add(-ValueDateSlack)) || t.ValueDate.After(g.EndDate.Add(ValueDateSlack)) {
			return nil, apperr.Invalid(f("valueDate"), "%s is more than a year outside the grant period %s to %s",
				t.ValueDate.Format(time.DateOnly), g.StartDate.Format(time.DateOnly), g.EndDate.Format(time.DateOnly))
		}
		if t.MilestoneID != "" && pl.milestoneRoadmap[t.MilestoneID] != g.RoadmapID {
			return nil, apperr.Invalid(f("milestoneId"), "milestone %s is not in the grant's roadmap", t.MilestoneID)
		}
		if t.Type == Reversal {
			// originals holds only entries of the plan's grants, so an entry of
			// another grant reads as absent, whoever's it is.
			orig, ok := pl.originals[t.ReversesID]
			if !ok || orig.GrantID != g.ID {
				return nil, apperr.Invalid(f("reversesTransactionId"), "no entry %s in this grant's journal", t.ReversesID)
			}
			if orig.Type == Reversal {
				return nil, apperr.Invalid(f("reversesTransactionId"), "a reversal cannot be reversed; record the entry again instead")
			}
			// Whoever may record an entry's type may reverse it.
			if err := pl.allowed(g, orig.Bucket); err != nil {
				return nil, err
			}
			switch {
			case e.in.Amount.Currency != "" && (!e.in.Amount.Value.Equal(orig.Amount) || e.in.Amount.Currency != orig.Currency):
				return nil, apperr.Invalid(f("amount"), "a reversal cancels the entry in full: %s %s", money.Format(orig.Amount, orig.Currency), orig.Currency)
			case t.MilestoneID != "" && t.MilestoneID != orig.MilestoneID:
				// Coverage would show +X on one milestone and −X on another.
				return nil, apperr.Invalid(f("milestoneId"), "a reversal takes the milestone of the entry it cancels (%s)", orDash(orig.MilestoneID))
			}
			t.Bucket, t.Amount, t.Currency, t.MilestoneID = orig.Type, orig.Amount, orig.Currency, orig.MilestoneID
			t.AgreementAmount, t.ReportingAmount = orig.AgreementAmount.Neg(), orig.ReportingAmount.Neg()
			t.AgreementRate, t.ReportingRate = orig.AgreementRate, orig.ReportingRate
		} else {
			ar, rr, err := conversionRates(pl.rates, t.Currency, g.Currency, g.ReportingCurrency, t.ValueDate, t.FxRate)
			if err != nil {
				return nil, err
			}
			t.AgreementRate, t.ReportingRate = ar, rr
			t.AgreementAmount = money.Convert(t.Amount, ar, false, g.Currency)
			t.ReportingAmount = money.Convert(t.Amount, rr, false, g.ReportingCurrency)
			// A converted amount is held to the bound of an entered one: an
			// implausible rate must not turn 1.00 into 10^37.
			err = money.CheckConverted(t.AgreementAmount, g.Currency)
			if err == nil {
				err = money.CheckConverted(t.ReportingAmount, g.ReportingCurrency)
			}
			if err != nil {
				return nil, apperr.Invalid(f("amount.amount"), "%v: check the FX rate", err)
			}
		}
		out[i] = t
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// conversionRates returns units of the entry's currency per one unit of the
// agreement and of the reporting currency. The entry's own fxRate (units of
// its currency per reporting-currency unit, as in FTS) wins over the table.
func conversionRates(t *fx.Table, cur, agreement, reporting string, d time.Time, given *decimal.Decimal) (decimal.Decimal, decimal.Decimal, error) {
	var ar, rr decimal.Decimal
	var err error
	switch {
	case cur == agreement:
		ar = decimal.NewFromInt(1)
	case given != nil && agreement == reporting:
		ar = *given
	default:
		if ar, err = t.Rate(cur, agreement, reporting, d); err != nil {
			return ar, rr, err
		}
	}
	switch {
	case cur == reporting:
		rr = decimal.NewFromInt(1)
	case given != nil:
		rr = *given
	default:
		if rr, err = t.Rate(cur, reporting, "", d); err != nil {
			return ar, rr, err
		}
	}
	return ar, rr, nil
}

// allowed is allowed for the plan's caller; an import may record anything.
func (pl *plan) allowed(g *Grant, bucket string) error {
	if pl.importing {
		return nil
	}
	return allowed(pl.p, g, bucket)
}

// allowed: donors record and reverse pledges, commitments and disbursements
// on their own grants; implementers receipts and expenditures on grants they
// receive; admins anything.
func allowed(p auth.Principal, g *Grant, bucket string) error {
	switch p.Role {
	case auth.Admin, auth.Operator:
		return nil
	case auth.Donor:
		if g.DonorOrgID == p.OrgID && slices.Contains(donorTypes, bucket) {
			return nil
		}
	case auth.Implementer:
		if g.RecipientOrgID == p.OrgID && slices.Contains(implementerTypes, bucket) {
			return nil
		}
	}
	return fmt.Errorf("role %s may not record %s entries on this grant: %w", p.Role, bucket, apperr.ErrPermissionDenied)
}
