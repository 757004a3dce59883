package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Kinds of finding (DESIGN section 5).
const (
	DuplicateTransaction = "DUPLICATE_TRANSACTION"
	DuplicateExpenditure = "DUPLICATE_EXPENDITURE"
	OverfundedMilestone  = "OVERFUNDED_MILESTONE"
	OverlappingGrants    = "OVERLAPPING_GRANTS"
	ReceiptMismatch      = "RECEIPT_MISMATCH"
	ProcurementStalled   = "PROCUREMENT_STALLED"
	ProcurementLate      = "PROCUREMENT_LATE"
	MilestoneAtRisk      = "MILESTONE_AT_RISK"
	IdleFunds            = "IDLE_FUNDS"
)

// Kinds lists every kind a run looks for, in the order runs report them.
var Kinds = []string{DuplicateTransaction, DuplicateExpenditure, OverfundedMilestone, OverlappingGrants,
	ReceiptMismatch, ProcurementStalled, ProcurementLate, MilestoneAtRisk, IdleFunds}

// Severities, most urgent first.
const (
	High   = "HIGH"
	Medium = "MEDIUM"
	Low    = "LOW"
)

// Severities lists the severities.
var Severities = []string{High, Medium, Low}

// Subject types: what a flag is about.
const (
	SubjectGrant        = "grant"
	SubjectTransaction  = "transaction"
	SubjectMilestone    = "milestone"
	SubjectItem         = "procurement_item"
	SubjectOrganization = "organization"
)

// Subject is one record a flag is about.
type Subject struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// finding is what a rule found in one run. Its fingerprint (kind and key)
// is what makes the next run find the same flag again: the key must depend
// only on the identity of what was found (sorted ids), never on amounts,
// dates or the as-of day, so a finding whose figures change stays one flag.
type finding struct {
	Kind     string
	Severity string
	// Key identifies the finding within its kind, e.g. the sorted ids of
	// the two entries of a duplicate pair.
	Key      string
	Subjects []Subject
	// Evidence is a JSON object a person can follow: ids, amounts (as
	// moneyJSON), dates ("2006-01-02"), and the threshold crossed.
	Evidence    map[string]any
	Explanation string
}

// fingerprint is the stable identity of a finding: SHA-256 of kind, a zero
// byte, and key, in hex.
func (f finding) fingerprint() string {
	h := sha256.New()
	h.Write([]byte(f.Kind))
	h.Write([]byte{0})
	h.Write([]byte(f.Key))
	return hex.EncodeToString(h.Sum(nil))
}

// scope is what one run looks at: one roadmap as of one day.
//
// As of day D means: journal entries with value_date <= D, less those
// reversed by a reversal with value_date <= D (and those reversals); for
// each grant the latest set of allocations created on or before D; for each
// procurement item the latest stage entered on or before D (items whose
// first stage is after D do not exist yet). Entries recorded after D about
// earlier days count: a replay shows what is known now about that day.
type scope struct {
	RoadmapID         uuid.UUID
	AsOf              time.Time // a day, UTC midnight
	ReportingCurrency string
	Config            Config
}

// rule finds one kind of finding with set-based SQL over indexed reads,
// never a loop over pairs in Go.
type rule struct {
	kind string
	find func(ctx context.Context, q postgres.Querier, s scope) ([]finding, error)
}

// moneyJSON is an amount as the API writes money: a decimal string and its
// currency, rounded to the currency's minor units.
func moneyJSON(amount decimal.Decimal, currency string) map[string]string {
	return map[string]string{"amount": money.Format(amount, currency), "currency": currency}
}

// dayJSON is a date as the API writes one.
func dayJSON(t time.Time) string { return t.Format(time.DateOnly) }
