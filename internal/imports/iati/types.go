package iati

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// SourceKind is the provenance source kind of every record this package parses.
const SourceKind = "iati"

// Provenance says where a parsed record came from, for the provenance tables
// the importer writes beside each grant and journal entry.
type Provenance struct {
	SourceKind string // always "iati"
	FileSHA256 string // hex SHA-256 of the whole file (set once the file is read)
	// RecordID is the activity's iati-identifier; RecordVersion is the
	// activity's @last-updated-datetime when published (IATI has no other
	// record version), else "".
	RecordID      string
	RecordVersion string
	Position      int    // transaction position in its activity, 1-based; 0 for the activity itself
	Line          int    // line of the record's start tag in the file
	Standard      string // IATI standard version read ("1.01", "2.03"); "" when the file declares none
	// Inferred lists the fields that were derived rather than read, each as
	// "field: how" (e.g. "currency: @default-currency of the activity").
	Inferred []string
	// Verbatim keeps source values that were changed on the way in
	// (field → source text), e.g. a value rounded to minor units.
	Verbatim map[string]string
}

func (p *Provenance) infer(field, how string) {
	p.Inferred = append(p.Inferred, field+": "+how)
}

func (p *Provenance) keep(field, source string) {
	if p.Verbatim == nil {
		p.Verbatim = map[string]string{}
	}
	p.Verbatim[field] = source
}

// Org is an organisation as an activity or transaction names it.
type Org struct {
	Ref        string // IATI organisation identifier (@ref), "" if not given
	Name       string // first narrative (2.0x) or element text (1.0x), trimmed
	Role       string // participating-org: Funding, Accountable, Extending, Implementing ("" elsewhere)
	Type       string // @type (organisation type code), as published
	ActivityID string // provider-activity-id / receiver-activity-id (transactions only)
}

// ActivityDate is one activity-date, normalised to the four IATI kinds.
type ActivityDate struct {
	Kind string // start-planned, start-actual, end-planned, end-actual
	Date string // YYYY-MM-DD
}

// Related is one related-activity.
type Related struct {
	Ref  string
	Type int // 1 parent, 2 child, 3 sibling, 4 co-funded, 5 third party
}

// Sector is one sector classification of an activity.
type Sector struct {
	Code       string
	Vocabulary string // as published ("DAC" in 1.0x, "1" in 2.0x; "" means the default DAC 5-digit list)
	Percentage string // as published, "" if absent
}

// Activity is one parsed iati-activity.
type Activity struct {
	Identifier         string
	Standard           string // version of the IATI standard this activity was read under
	Title              string
	ReportingOrg       Org
	Participating      []Org
	DefaultCurrency    string
	Hierarchy          int // @hierarchy; 1 when absent (the standard's default, recorded as inferred)
	Dates              []ActivityDate
	Related            []Related
	Sectors            []Sector
	RecipientCountries []string // @code as published (ISO 3166-1 alpha-2 in IATI)
	Transactions       []Transaction
	Provenance         Provenance
	Warnings           []string // tolerated oddities (repeated elements, code form not matching the version)
}

// Direction tells whether a transaction brings money into the activity or sends it out.
type Direction string

// Directions.
const (
	Incoming Direction = "incoming"
	Outgoing Direction = "outgoing"
)

// Transaction is one parsed transaction of an activity.
type Transaction struct {
	Position  int    // 1-based position within the activity
	Code      string // transaction-type/@code as published ("D", "3")
	Type      int    // the IATI 2.0x numeric code (1.0x letters mapped)
	TypeName  string // IATI name of the type ("Disbursement")
	Direction Direction
	// LedgerType is the Tranche journal type (COMMITMENT, DISBURSEMENT,
	// RECEIPT, EXPENDITURE, PLEDGE), or "" when Journaled is false.
	LedgerType         string
	Journaled          bool
	NotJournaledReason string

	Amount      decimal.Decimal // rounded half-even to the currency's minor units
	Currency    string
	SourceValue string // value text as published (trimmed)
	Rounded     bool   // SourceValue had more decimals than the currency
	// Correction is set on a negative value: a correction of earlier
	// transactions of the same type (see doc.go), kept with its sign.
	Correction bool

	ValueDate     string // YYYY-MM-DD
	ValueDateFrom string // "value/@value-date" or "transaction-date/@iso-date"

	Provider            Org
	Receiver            Org
	Description         string
	FlowType            string
	DisbursementChannel string

	Provenance Provenance
}

// Error is a problem with one field of one record. Activity is the
// iati-identifier ("" if the activity has none yet), Transaction the 1-based
// position (0 for the activity), Line the line of the record in the file.
type Error struct {
	Activity    string
	Transaction int
	Field       string
	Line        int
	Err         error
}

func (e *Error) Error() string {
	s := ""
	if e.Activity != "" {
		s = fmt.Sprintf("activity %s: ", e.Activity)
	} else if e.Line > 0 {
		s = fmt.Sprintf("activity at line %d: ", e.Line)
	}
	if e.Transaction > 0 {
		s += fmt.Sprintf("transaction %d: ", e.Transaction)
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }
