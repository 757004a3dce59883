package reports

// Kind is how a column's values are written and put into canonical form.
type Kind int

const (
	// Text is a string cell; canonical form: the string itself.
	Text Kind = iota
	// Date is a date cell (number format yyyy-mm-dd); canonical: YYYY-MM-DD.
	Date
	// Amount is a numeric cell formatted with the currency's minor units,
	// followed by a text cell with the ISO 4217 code: one Amount column takes
	// two spreadsheet columns, "<Name>" and "<Name> currency". Canonical: the
	// decimal with exactly the currency's minor units, then the code.
	Amount
	// Integer is a numeric cell; canonical: base-10 digits.
	Integer
	// Decimal is a numeric cell (rates, quantities); canonical: the plain
	// decimal string as stored (no exponent, no trailing-zero padding).
	Decimal
	// Timestamp is a text cell holding RFC 3339 UTC with microseconds
	// (2024-01-02T03:04:05.123456Z): an Excel date-time is a float that
	// cannot hold PostgreSQL's microseconds, and a verifier must re-derive
	// the canonical form from the cell alone.
	Timestamp
)

func (k Kind) String() string {
	return [...]string{"text", "date", "amount", "integer", "decimal", "timestamp"}[k]
}

// Column is one column of a sheet. Width is in Excel character units.
type Column struct {
	Name  string
	Kind  Kind
	Width float64
}

// Sheet is one sheet of the pack with its columns, in order.
type Sheet struct {
	Name    string
	Columns []Column
}

// Headers are the header-row cells: an Amount column gives two.
func (s Sheet) Headers() []string {
	var h []string
	for _, c := range s.Columns {
		h = append(h, c.Name)
		if c.Kind == Amount {
			h = append(h, c.Name+" currency")
		}
	}
	return h
}

// Sheet names, in the order of the pack (DESIGN section 6).
const (
	SheetCover          = "Cover"
	SheetSummary        = "Summary"
	SheetGrants         = "Grants"
	SheetTransactions   = "Transactions"
	SheetReconciliation = "Reconciliation"
	SheetMilestones     = "Milestones"
	SheetProcurement    = "Procurement"
	SheetFlags          = "Flags"
	SheetAuditTrail     = "Audit Trail"
	SheetFXRates        = "FX Rates"
	SheetManifest       = "Manifest"
)

// Layout is the tranche-audit-pack/1 layout: every sheet and its columns.
// Changing a column changes the format: bump Format.
var Layout = []Sheet{
	{SheetCover, []Column{{"Field", Text, 28}, {"Value", Text, 60}}},
	{SheetSummary, []Column{
		{"Milestone code", Text, 14}, {"Milestone", Text, 36},
		{"Funding requirement", Amount, 18}, {"Allocated", Amount, 18}, {"Committed", Amount, 18},
		{"Disbursed", Amount, 18}, {"Spent", Amount, 18}, {"Gap", Amount, 18}, {"Donors", Integer, 8},
	}},
	{SheetGrants, []Column{
		{"Grant ID", Text, 38}, {"Reference", Text, 18}, {"Title", Text, 36},
		{"Donor ID", Text, 38}, {"Donor", Text, 28}, {"Recipient ID", Text, 38}, {"Recipient", Text, 28},
		{"Start date", Date, 12}, {"End date", Date, 12}, {"Created at", Timestamp, 28},
		{"Pledged", Amount, 18}, {"Committed", Amount, 18}, {"Disbursed", Amount, 18},
		{"Received", Amount, 18}, {"Spent", Amount, 18},
	}},
	{SheetTransactions, []Column{
		{"Transaction ID", Text, 38}, {"Grant ID", Text, 38}, {"Grant reference", Text, 18},
		{"Type", Text, 14}, {"Bucket", Text, 14}, {"Value date", Date, 12},
		{"Amount", Amount, 18}, {"Agreement amount", Amount, 18}, {"Reporting amount", Amount, 18},
		{"Agreement rate", Decimal, 14}, {"Reporting rate", Decimal, 14}, {"Entry FX rate", Decimal, 14},
		{"Reference", Text, 20}, {"Milestone ID", Text, 38}, {"Reverses ID", Text, 38}, {"Note", Text, 30},
		{"Recorded by", Text, 20}, {"Recorded role", Text, 14}, {"Recorded at", Timestamp, 28}, {"Batch ID", Text, 38},
	}},
	{SheetReconciliation, []Column{
		{"Grant ID", Text, 38}, {"Grant reference", Text, 18}, {"Donor ID", Text, 38},
		{"Pledged", Amount, 18}, {"Committed", Amount, 18}, {"Disbursed", Amount, 18}, {"Received", Amount, 18},
		{"Spent", Amount, 18}, {"Undisbursed commitment", Amount, 18}, {"Unspent balance", Amount, 18},
		{"Pledged (reporting)", Amount, 18}, {"Committed (reporting)", Amount, 18}, {"Disbursed (reporting)", Amount, 18},
		{"Received (reporting)", Amount, 18}, {"Spent (reporting)", Amount, 18},
		{"Undisbursed commitment (reporting)", Amount, 18}, {"Unspent balance (reporting)", Amount, 18},
		{"Matched", Integer, 10}, {"Amount variance", Integer, 10}, {"Missing receipt", Integer, 10},
		{"Receipt without disbursement", Integer, 10},
	}},
	{SheetMilestones, []Column{
		{"Milestone ID", Text, 38}, {"Code", Text, 12}, {"Title", Text, 36}, {"Activity type", Text, 18},
		{"Region", Text, 12}, {"Target quantity", Decimal, 14}, {"Target unit", Text, 10}, {"Due date", Date, 12},
		{"Status", Text, 14}, {"Funding requirement", Amount, 18}, {"Allocated", Amount, 18},
		{"Achieved quantity", Decimal, 14}, {"Progress as of", Date, 12},
	}},
	{SheetProcurement, []Column{
		{"Item ID", Text, 38}, {"Grant ID", Text, 38}, {"Grant reference", Text, 18}, {"Milestone ID", Text, 38},
		{"Description", Text, 36}, {"Category", Text, 14}, {"Critical", Text, 8}, {"Estimated cost", Amount, 18},
		{"Expected delivery", Date, 12}, {"Current stage", Text, 16},
		{"Stage no.", Integer, 8}, {"Stage", Text, 16}, {"Entered on", Date, 12}, {"Left on", Date, 12},
		{"Dwell days", Integer, 10}, {"Stage note", Text, 30}, {"Stage recorded by", Text, 20},
		{"Stage recorded at", Timestamp, 28},
	}},
	{SheetFlags, []Column{
		{"Flag ID", Text, 38}, {"Kind", Text, 24}, {"Severity", Text, 10}, {"Status", Text, 14},
		{"Last event", Text, 12}, {"Last event at", Timestamp, 28}, {"Grant IDs", Text, 40}, {"Subjects", Text, 48},
		{"Explanation", Text, 48}, {"Evidence (canonical JSON)", Text, 60}, {"Evidence bytes", Integer, 10},
		{"Evidence SHA-256", Text, 66}, {"Detected at", Timestamp, 28}, {"Review action", Text, 12},
		{"Reviewed by", Text, 20}, {"Reviewed at", Timestamp, 28}, {"Review note", Text, 36},
	}},
	{SheetAuditTrail, []Column{
		{"Sequence", Integer, 10}, {"Event ID", Integer, 10}, {"Time", Timestamp, 28}, {"Actor", Text, 20},
		{"Actor name", Text, 20}, {"Role", Text, 12}, {"Organisation", Text, 38}, {"Method", Text, 36},
		{"Entity type", Text, 16}, {"Entity ID", Text, 38}, {"Request ID", Text, 20},
		{"Subject organisations", Text, 40}, {"Change (canonical JSON)", Text, 60}, {"Change bytes", Integer, 10},
		{"Change SHA-256", Text, 66}, {"Previous hash", Text, 66}, {"Hash", Text, 66},
	}},
	{SheetFXRates, []Column{
		{"Currency", Text, 10}, {"Quote currency", Text, 10}, {"Date", Date, 12}, {"Rate", Decimal, 14},
		{"Revision", Integer, 8}, {"Source", Text, 20}, {"Reason", Text, 30}, {"Recorded at", Timestamp, 28},
	}},
	{SheetManifest, []Column{{"Entry", Text, 28}, {"Rows", Integer, 10}, {"SHA-256", Text, 66}, {"Value", Text, 60}}},
}
