package iati

// txType describes one IATI transaction type and what Tranche makes of it.
type txType struct {
	code      int
	letter    string // the 1.0x code, "" if the type did not exist in 1.0x
	name      string
	direction Direction
	ledger    string // "" → not journaled
	reason    string // why not journaled
}

// txTypes is the transaction-type table (written out in doc.go).
var txTypes = []txType{
	{1, "IF", "Incoming Funds", Incoming, "RECEIPT", ""},
	{2, "C", "Outgoing Commitment", Outgoing, "COMMITMENT", ""},
	{3, "D", "Disbursement", Outgoing, "DISBURSEMENT", ""},
	{4, "E", "Expenditure", Outgoing, "EXPENDITURE", ""},
	{5, "IR", "Interest Payment", Incoming, "", "interest is not grant money: no journal type"},
	{6, "LR", "Loan Repayment", Incoming, "", "loan repayment: Tranche journals grants, not loans"},
	{7, "R", "Reimbursement", Outgoing, "DISBURSEMENT", ""},
	{8, "QP", "Purchase of Equity", Outgoing, "", "equity purchase: not grant money"},
	{9, "QS", "Sale of Equity", Incoming, "", "equity sale: not grant money"},
	{10, "CG", "Credit Guarantee", Outgoing, "", "credit guarantee: a contingent liability, no money moves"},
	{11, "", "Incoming Commitment", Incoming, "COMMITMENT", ""},
	{12, "", "Outgoing Pledge", Outgoing, "PLEDGE", ""},
	{13, "", "Incoming Pledge", Incoming, "PLEDGE", ""},
}

var (
	byLetter = map[string]*txType{}
	byCode   = map[string]*txType{}
)

func init() {
	for i := range txTypes {
		t := &txTypes[i]
		if t.letter != "" {
			byLetter[t.letter] = t
		}
		byCode[itoa(t.code)] = t
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TypeName gives the IATI name of a 2.0x numeric transaction type.
func TypeName(code int) string {
	if t, ok := byCode[itoa(code)]; ok && code > 0 {
		return t.name
	}
	return ""
}

// roles maps participating-org/@role in either form to its name.
var roles = map[string]string{
	"1": "Funding", "2": "Accountable", "3": "Extending", "4": "Implementing",
	"Funding": "Funding", "Accountable": "Accountable", "Extending": "Extending", "Implementing": "Implementing",
}

// dateKinds maps activity-date/@type in either form to its kind.
var dateKinds = map[string]string{
	"1": "start-planned", "2": "start-actual", "3": "end-planned", "4": "end-actual",
	"start-planned": "start-planned", "start-actual": "start-actual",
	"end-planned": "end-planned", "end-actual": "end-actual",
}

// LedgerType gives the Tranche journal type of a 2.0x numeric transaction
// type, or "" when the type is not journaled.
func LedgerType(code int) string {
	if t, ok := byCode[itoa(code)]; ok && code > 0 {
		return t.ledger
	}
	return ""
}
