// Package iati parses IATI activity XML (standard 1.0x and 2.0x) into plain
// Go values for the importer: activities, their transactions with
// provenance, and a report of totals per transaction type and currency, raw
// and after the rules that keep money from being counted twice. It writes
// nothing; the importer maps the values onto organisations, grants and
// journal entries.
//
// # Reading
//
// [Reader] streams the file with encoding/xml: one iati-activity is decoded
// at a time, so memory is flat for big files; [Parse] reads a whole file and
// builds the [Report]. The file's SHA-256 is computed while reading. Only
// UTF-8 is accepted. The standard version is iati-activities/@version, or the
// activity's own @version (in any namespace: d-portal writes
// iati-activities:version); a file that declares none (a bare iati-activity,
// as in the Bond sample) is read with transaction codes in either form, and
// the provenance says so. Codes in the other version's form (a letter in a 2.0x
// file) are read, with a warning on the activity.
//
// # Mapping: activity
//
//	IATI (1.0x | 2.0x)                          Tranche field                         notes
//	iati-identifier                             Activity.Identifier, Provenance.RecordID   required; the grant's source record id
//	@last-updated-datetime                      Provenance.RecordVersion              "" when absent; IATI has no other version
//	@version / iati-activities/@version         Activity.Standard                     inferred from the root when the activity has none
//	title (text | first narrative)              Activity.Title                        grant title
//	reporting-org/@ref, text|narrative, @type   Activity.ReportingOrg                 organisation by IATI identifier
//	participating-org/@role                     Org.Role                              1.0x Funding/Accountable/Extending/Implementing;
//	                                                                                  2.0x 1/2/3/4 → the same names
//	participating-org/@ref, name, @type         Org.Ref, Org.Name, Org.Type           donor = Funding, recipient = Implementing
//	@default-currency                           Activity.DefaultCurrency              must be ISO 4217
//	@hierarchy                                  Activity.Hierarchy                    absent → 1 (the standard's default), inferred
//	activity-date/@type                         ActivityDate.Kind                     1.0x start-planned, start-actual, end-planned,
//	                                                                                  end-actual; 2.0x 1/2/3/4 → the same kinds
//	activity-date/@iso-date (1.01: text)        ActivityDate.Date                     grant period
//	related-activity/@ref, @type                Related{Ref, Type}                    1 parent, 2 child, 3 sibling, 4 co-funded, 5 third party
//	sector/@code, @vocabulary, @percentage      Sector                                as published; milestone hint (next slice)
//	recipient-country/@code                     Activity.RecipientCountries           ISO 3166-1 alpha-2, as published
//
// # Mapping: transaction
//
//	IATI                                        Tranche field                         notes
//	position of transaction in the activity     Transaction.Position, Provenance.Position  1-based; record id = (iati-identifier, position)
//	transaction-type/@code                      Code (as published), Type (2.0x code), LedgerType  table below
//	value (text)                                Amount, SourceValue                   decimal string, never a float; rounded half-even
//	                                                                                  to minor units, the source kept (Verbatim["value"])
//	value/@currency                             Currency                              over the activity's @default-currency (inferred);
//	                                                                                  neither → error
//	value/@value-date                           ValueDate, ValueDateFrom              absent → transaction-date/@iso-date (inferred);
//	                                                                                  neither → error
//	provider-org/@ref, @provider-activity-id, name   Provider                         who pays; activity link (counting rule 2)
//	receiver-org/@ref, @receiver-activity-id, name   Receiver                         who receives
//	description (text | first narrative)        Description                           journal entry reference text
//	flow-type/@code                             FlowType                              as published
//	disbursement-channel/@code                  DisbursementChannel                   as published, when present
//
// Skipped (not needed by the ledger): budgets, planned disbursements,
// results, locations, document links, contact info, other-identifier,
// policy markers, aid/finance/tied-status, transaction sector/country and
// humanitarian flags, and the d-portal dstore attributes. A transaction
// that repeats a single element (the Bond sample has two transaction-type and
// two value elements in one transaction) is read from the first, with a
// warning on the activity.
//
// # Transaction types
//
//	2.0x  1.0x  IATI name              direction  ledger type    journaled
//	1     IF    Incoming Funds         incoming   RECEIPT        yes
//	2     C     Outgoing Commitment    outgoing   COMMITMENT     yes
//	3     D     Disbursement           outgoing   DISBURSEMENT   yes
//	4     E     Expenditure            outgoing   EXPENDITURE    yes
//	5     IR    Interest Payment       incoming   -              no: interest is not grant money
//	6     LR    Loan Repayment         incoming   -              no: Tranche journals grants, not loans
//	7     R     Reimbursement          outgoing   DISBURSEMENT   yes (IATI: a disbursement covering funds already spent)
//	8     QP    Purchase of Equity     outgoing   -              no: not grant money
//	9     QS    Sale of Equity         incoming   -              no: not grant money
//	10    CG    Credit Guarantee       outgoing   -              no: contingent liability, no money moves
//	11    -     Incoming Commitment    incoming   COMMITMENT     yes (the funder's commitment, seen by the recipient)
//	12    -     Outgoing Pledge        outgoing   PLEDGE         yes
//	13    -     Incoming Pledge        incoming   PLEDGE         yes
//
// Types not journaled are still parsed, totalled and listed in
// Report.NotJournaled with the reason. Any other code is an error.
//
// # Untidy values
//
//   - Negative values keep their sign and are listed in Report.Corrections.
//     A negative disbursement or expenditure is a correction of earlier ones
//     of the same activity (money returned, an overstatement withdrawn); a
//     negative commitment is a reduction (DESIGN: amendments are further
//     commitments, negative allowed). The importer turns a negative
//     disbursement into a correcting entry, never an edit. -0 is zero.
//   - A value with more decimals than its currency (59999999.99999999 DKK) is
//     rounded half-even to minor units (60000000.00), the source string kept in
//     Provenance.Verbatim and the transaction listed in Report.Rounded. This is
//     for float artefacts: a value with more than 17 significant digits (more
//     than a float64 prints) is refused as "too many decimals". Trailing
//     zeros (100.000) change nothing and are not listed.
//   - Values with spaces, commas, apostrophes or underscores inside (1,000 or
//     1 000) are refused: a comma may separate thousands or decimals and
//     guessing could be off by a factor of 1000. Exponents (1e400), a leading
//     '+', leading zeros (0100) and more than 15 integer digits are refused
//     (money.ParseDecimal).
//     Surrounding white space is trimmed.
//   - Dates must be ISO 8601 calendar dates; a time and zone after the date
//     (2020-01-01T00:00:00Z) are dropped. Other formats (01/02/2020) are
//     refused: day and month order cannot be told.
//
// # Errors
//
// A file that is not XML, not an IATI activity file, truncated, not UTF-8 or
// holding NUL bytes stops with a *SyntaxError naming the line and the last
// activity read whole. A bad field makes an *Error naming the activity
// identifier, the transaction position and the field, e.g.
// `activity XX-1-A: transaction 2: transaction-type: unknown code "Z"`; all
// errors of one activity are gathered in an *ActivityError, the activity
// leaves the report's totals, and reading goes on, so the importer can refuse
// the whole file (the default) or skip the listed activities.
//
// # No double counting
//
// Raw totals (Report.Raw) sum every transaction of the activities without
// errors, per IATI type and currency, each value as rounded to minor units.
// Counted totals (Report.Counted) leave out, in this order:
//
//  1. duplicate-activity: an iati-identifier that appears more than once in
//     the import counts once, from the copy with the latest
//     @last-updated-datetime (the first copy on a tie); the other copies'
//     transactions are left out. (The importer applies a newer version of an
//     activity as correcting entries.)
//
//  2. parent-component: a parent and a component are both in the import and
//     linked by related-activity (type 2 on the parent or type 1 on the
//     component; both directions are listed in Report.Pairs). When a
//     component reports transactions of a type, the parent's transactions of
//     that type are left out: they repeat, at the higher level, money the
//     components report (IATI asks publishers to report each transaction at
//     one level). A parent's transactions of types no component reports are
//     counted.
//
//  3. provider-link: an incoming transaction (1, 11, 13) whose
//     provider-org/@provider-activity-id names another activity in the same
//     import is left out: the same money is counted once, as that provider
//     activity's outgoing commitment or disbursement. A link to an activity
//     outside the import, or to the activity itself, changes nothing.
//
// Every left-out transaction is in Report.Excluded with its rule and reason;
// every activity link is in Report.Links (with whether it stays inside the
// import). In the four real files in testdata no parent carries transactions
// and no provider-activity-id names another activity of the same file, so
// counted equals raw there; the rules are tested on a linked sample.
package iati
