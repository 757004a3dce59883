package detect

// procurementRules find procurement that holds milestones back.
var procurementRules []rule
