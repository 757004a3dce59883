package detect

// moneyRules find duplicate funding and reconciliation gaps in the journal
// and allocations.
var moneyRules []rule
