package imports

import (
	"slices"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// Source kinds, as the API and provenance name them.
const (
	FTS  = "fts"
	IATI = "iati"
	OCDS = "ocds"
)

// Kinds are the source kinds an import takes.
var Kinds = []string{FTS, IATI, OCDS}

// File is one file's bytes and the name to report it by.
type File struct {
	Name string
	Data []byte
}

// Request is one import: the files of one source kind into one scope.
type Request struct {
	Kind  string
	Files []File
	// RoadmapID is the roadmap FTS and IATI records go into; uuid.Nil creates
	// one from the source (NewRoadmap overrides what is inferred).
	RoadmapID  uuid.UUID
	NewRoadmap RoadmapHint
	// GrantID and MilestoneID are the grant (required) and milestone
	// (optional) OCDS procurement items belong to.
	GrantID, MilestoneID uuid.UUID
	// DryRun reports what would change and writes nothing.
	DryRun bool
	// SkipInvalid leaves invalid records out (listed in the report) instead
	// of refusing the file.
	SkipInvalid bool
	// Progress, when set, is told how many records of how many are done.
	Progress func(done, total int) `json:"-"`
}

// RoadmapHint overrides what a created roadmap infers from the source.
type RoadmapHint struct {
	Country, Title string
}

// Report is what an import did, or with DryRun would do.
type Report struct {
	RunID          string `json:"runId,omitempty"` // empty when nothing was written
	Kind           string `json:"kind"`
	DryRun         bool   `json:"dryRun"`
	RoadmapID      string `json:"roadmapId,omitempty"`
	RoadmapCreated bool   `json:"roadmapCreated"`
	GrantID        string `json:"grantId,omitempty"`

	Files []FileReport `json:"files"`

	// Records read from the files, and what became of them.
	Records   int `json:"records"`
	Unchanged int `json:"unchanged"` // already imported at this version
	Corrected int `json:"corrected"` // a newer version, applied as reversal and new entries

	OrganizationsCreated    int `json:"organizationsCreated"`
	OrganizationsMatched    int `json:"organizationsMatched"`
	GrantsCreated           int `json:"grantsCreated"`
	GrantsMatched           int `json:"grantsMatched"`
	EntriesCreated          int `json:"entriesCreated"`
	EntriesReversed         int `json:"entriesReversed"`
	ProcurementItemsCreated int `json:"procurementItemsCreated"`

	// Totals the source publishes or that its records add up to, beside
	// what the import computed; Matches tells whether they agree.
	Totals []Total `json:"totals"`
	// NotCounted are records kept out of the ledger so no money is counted
	// twice, each with the rule.
	NotCounted []Note `json:"notCounted"`
	// Skipped are invalid records left out under SkipInvalid.
	Skipped []Problem `json:"skipped"`
	// Problems refuse the import (without SkipInvalid) and name the record
	// and field.
	Problems  []Problem  `json:"problems"`
	Rounded   []Rounded  `json:"rounded"`
	Variances []Variance `json:"variances"`
	// RepeatedReferences explains reference codes on several records.
	RepeatedReferences []RefGroup `json:"repeatedReferences"`
	// Inconsistencies are source dates contradicting each other (OCDS).
	Inconsistencies []Problem `json:"inconsistencies"`
	Notes           []string  `json:"notes"`
}

// FileReport is one file of an import.
type FileReport struct {
	Name            string `json:"name"`
	SHA256          string `json:"sha256"`
	Records         int    `json:"records"`
	AlreadyImported bool   `json:"alreadyImported"`
}

// Total is one figure of the source beside the import's.
type Total struct {
	Name     string          `json:"name"` // e.g. "incoming funding (commitment + paid)", "3 Disbursement"
	Currency string          `json:"currency"`
	Source   decimal.Decimal `json:"source"` // what the source publishes (or its records add up to)
	Computed decimal.Decimal `json:"computed"`
	Matches  bool            `json:"matches"`
}

// Note is a record with a remark (why it is not counted, ...).
type Note struct {
	Record   string          `json:"record"`
	Type     string          `json:"type,omitempty"` // the ledger type it would have been`
	Reason   string          `json:"reason"`
	Amount   decimal.Decimal `json:"amount"`
	Currency string          `json:"currency"`
}

// Problem names a record and field and says what is wrong.
type Problem struct {
	Record  string `json:"record"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Rounded is a source value rounded to its currency's minor units.
type Rounded struct {
	Record string `json:"record"`
	Field  string `json:"field"`
	Source string `json:"source"`
	Stored string `json:"stored"`
}

// Variance is an FTS flow whose reported USD differs from the USD computed
// from its original amount and rate by more than one dollar.
type Variance struct {
	Record      string          `json:"record"`
	ReportedUSD decimal.Decimal `json:"reportedUsd"`
	ComputedUSD decimal.Decimal `json:"computedUsd"`
	Difference  decimal.Decimal `json:"difference"`
}

// RefGroup is a reference code on several records, with what it means.
type RefGroup struct {
	Code        string   `json:"code"`
	Kind        string   `json:"kind"`
	Records     []string `json:"records"`
	Explanation string   `json:"explanation"`
	Flagged     bool     `json:"flagged"` // detection is expected to flag it
}

// clone copies the report with its lists, so an attempt of a transaction
// that is retried starts from the report as it was, not with lists that
// the failed attempt appended to.
func (r Report) clone() Report {
	r.Files, r.Totals, r.NotCounted = slices.Clone(r.Files), slices.Clone(r.Totals), slices.Clone(r.NotCounted)
	r.Skipped, r.Problems, r.Rounded = slices.Clone(r.Skipped), slices.Clone(r.Problems), slices.Clone(r.Rounded)
	r.Variances, r.RepeatedReferences = slices.Clone(r.Variances), slices.Clone(r.RepeatedReferences)
	r.Inconsistencies, r.Notes = slices.Clone(r.Inconsistencies), slices.Clone(r.Notes)
	return r
}
