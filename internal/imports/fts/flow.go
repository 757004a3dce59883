package fts

import (
	"github.com/shopspring/decimal"
)

// SourceKind names FTS in provenance records.
const SourceKind = "fts"

// Entry types of the ledger journal an FTS status becomes.
const (
	EntryPledge       = "PLEDGE"
	EntryCommitment   = "COMMITMENT"
	EntryDisbursement = "DISBURSEMENT"
)

// statusEntry maps FTS status to the ledger entry type.
var statusEntry = map[string]string{
	"pledge":     EntryPledge,
	"commitment": EntryCommitment,
	"paid":       EntryDisbursement,
}

// Flow types FTS uses.
const (
	TypeStandard    = "Standard"
	TypeParked      = "Parked"
	TypeCarryover   = "Carryover"
	TypePassThrough = "Pass through"
)

var flowTypes = map[string]bool{TypeStandard: true, TypeParked: true, TypeCarryover: true, TypePassThrough: true}

// Boundaries: where the flow sits relative to the queried location/year.
const (
	BoundaryIncoming = "incoming"
	BoundaryInternal = "internal"
	BoundaryOutgoing = "outgoing"
)

var boundaries = map[string]bool{BoundaryIncoming: true, BoundaryInternal: true, BoundaryOutgoing: true}

// OnBoundary values: single (wholly this location/year) or shared (spans
// several locations or usage years, so only part of it is this query's).
const (
	OnBoundarySingle = "single"
	OnBoundaryShared = "shared"
)

var onBoundaries = map[string]bool{OnBoundarySingle: true, OnBoundaryShared: true}

// Object is one entry of sourceObjects/destinationObjects.
type Object struct {
	Type              string
	ID                string
	Name              string
	Behavior          string // single or shared
	OrganizationTypes []string
}

// Objects are a side's objects grouped by type, in source order.
type Objects struct {
	Organizations  []Object
	Locations      []Object
	UsageYears     []Object
	Plans          []Object
	GlobalClusters []Object
	Clusters       []Object
	Emergencies    []Object
	Projects       []Object
	Other          []Object // types this package does not know, kept verbatim
}

// Organization is the side's first Organization (FTS lists at most one per
// side in practice; when there are several the first is the party and the
// rest stay in Organizations). ok is false when the side names none.
func (o Objects) Organization() (Object, bool) {
	if len(o.Organizations) == 0 {
		return Object{}, false
	}
	return o.Organizations[0], true
}

// Provenance says where a flow came from, for the import's provenance rows.
type Provenance struct {
	SourceKind string // always "fts"
	FileName   string // as given to the parser, for messages only
	FileSHA256 string // hex SHA-256 of the page's bytes
	Page       int    // 1-based position of the page in the import
	Position   int    // 0-based index in data.flows of that page
	FlowID     string
	Version    int // versionId; 0 when absent (HasVersion false)
	HasVersion bool
}

// Rounded records a source value with more decimals than its currency has:
// Value is the half-even rounding, Source the text as the file had it.
type Rounded struct {
	Field    string
	Source   string
	Value    decimal.Decimal
	Currency string
}

// Flow is one FTS flow, parsed and checked.
type Flow struct {
	ID         string
	Version    int
	HasVersion bool

	// AmountUSD is the reported USD value: the flow's reporting value and
	// what FTS totals. AmountUSDSource is its text in the file.
	AmountUSD       decimal.Decimal
	AmountUSDSource string

	// Amount and Currency are the agreement amount: the original amount
	// and currency when the file gives them, else AmountUSD in USD
	// (inferred; see Inferred).
	Amount   decimal.Decimal
	Currency string

	HasOriginal          bool // originalAmount and originalCurrency both read
	OriginalAmount       decimal.Decimal
	OriginalAmountSource string
	OriginalCurrency     string // as read; may be set without an amount

	// ExchangeRate is units of original currency per USD, as FTS gives it.
	HasRate            bool
	ExchangeRate       decimal.Decimal
	ExchangeRateSource string

	// ComputedUSD = OriginalAmount / ExchangeRate rounded half-even to
	// cents; HasComputed is false when either is missing.
	HasComputed bool
	ComputedUSD decimal.Decimal

	Status    string // pledge, commitment, paid
	EntryType string // PLEDGE, COMMITMENT, DISBURSEMENT
	FlowType  string

	ParentFlowID string // "" when none
	ChildFlowIDs []string

	Date         string // YYYY-MM-DD (the flow's value date)
	DecisionDate string // YYYY-MM-DD or ""
	Description  string
	RefCode      string

	Boundary   string
	OnBoundary string // "" when absent

	// ContributionType ("financial", "in kind") and NewMoney are kept for
	// the report; FTS counts both kinds and old money in its totals.
	ContributionType string
	NewMoney         bool
	HasNewMoney      bool

	Source      Objects
	Destination Objects

	// Inferred lists the Tranche fields this flow's values were inferred
	// for rather than read (e.g. "currency" when no original currency).
	Inferred []string
	// Rounded lists source values rounded to their currency's minor units.
	Rounded []Rounded
	// Notes are remarks for the import report that are not errors.
	Notes []string

	Provenance Provenance

	raw []byte // compacted source object, to compare repeats across pages
}

// IsParkedParent tells whether the flow is a parked flow others were split from.
func (f *Flow) IsParkedParent() bool { return f.FlowType == TypeParked && len(f.ChildFlowIDs) > 0 }

// Variance is the reported USD minus the computed one.
func (f *Flow) Variance() decimal.Decimal { return f.AmountUSD.Sub(f.ComputedUSD) }
