// Package detect is the detection engine: rules over one roadmap as of a day
// that find duplicate funding, overlap, reconciliation gaps and procurement
// bottlenecks, and the flags that record what they found for review.
//
// # Runs
//
// Store.Run applies every rule (allRules, set-based SQL each) to one roadmap
// as of a day, default today (UTC); a day after today is refused, an
// earlier day replays what is known now about that day. The whole run is
// one transaction holding a transaction-scoped advisory lock on the roadmap
// (class 7346009, key hashtext(roadmap id)): the rules read, then one
// statement writes every finding (unnest arrays into INSERT … ON CONFLICT
// (roadmap_id, fingerprint) DO UPDATE … WHERE something changed: a flag
// found again unchanged is not rewritten), one statement resolves what was
// not found (an anti-join on the fingerprints found), and the run row and
// its audit event are written. So:
//
//   - a new fingerprint opens a flag (OPEN);
//   - a flag found again keeps its id, status and review, and takes the
//     run's severity, subjects, evidence and explanation;
//   - a RESOLVED flag found again returns to what its last review made of
//     it: DISMISSED or ACKNOWLEDGED, else OPEN (a review is about the
//     finding, and replaying a past day must not undo today's reviews); its
//     resolution is in its history (flag_events);
//   - an unresolved flag (OPEN, ACKNOWLEDGED, DISMISSED) this run did not
//     find becomes RESOLVED, with resolvedByRun naming the run.
//
// The flags of a roadmap are therefore the findings of its latest run:
// replaying an earlier day moves them to that day, and the next run as of
// today moves them back (resolving and reopening what differs). Two runs of
// one roadmap at once (two servers, or a coordinator and the background
// loop) take turns on the lock and raise each flag once; the unique key
// guarantees it in the schema too. Runs of different roadmaps do not wait
// for each other and never touch each other's flags.
//
// A run answers, per kind, how many flags it opened (new), reopened, found
// still unresolved (stillOpen) and resolved. Its audit event (entity type
// "detection_run") carries the run id, roadmap, as-of day, the counts and
// the ids of the flags it opened, reopened and resolved; flag_events keeps,
// per flag, every change with the state after it (evidence included), so no
// earlier evidence is lost when a run refreshes a flag (Store.History, and
// GET /v1/flags/{flagId} answers it).
//
// RunAll runs every roadmap as of today; the server calls it in the
// background every --detect-interval as the operator, skipping a roadmap
// already run as of today within half an interval.
//
// # Review
//
// Coordinators and admins review flags with a request id (AIP-155: a retry
// answers the first result, another payload under the same id is refused).
// The transitions (anything else is FAILED_PRECONDITION saying why):
//
//	from \ action   ACKNOWLEDGE    DISMISS (note required)   REOPEN
//	OPEN            ACKNOWLEDGED   DISMISSED                 refused: already open
//	ACKNOWLEDGED    refused        DISMISSED                 OPEN
//	DISMISSED       ACKNOWLEDGED   refused                   OPEN
//	RESOLVED        refused        refused                   refused: a run reopens it when the finding returns
//
// Each review is one audit event (entity type "flag": flag id, action, from,
// to, note, reviewer) whose subject organisations are every donor and
// recipient the flag involves.
//
// # Who sees which flag
//
// A run derives, from a flag's subjects, the grants it involves (grants
// named, and the grants of journal entries and procurement items named) and
// keeps them with the grants' donors and recipients, apart (a grant's
// parties never change). Admins, coordinators and auditors see every flag;
// a donor token the flags involving a grant its organisation gives, an
// implementer token those involving a grant it receives. Being named as a
// subject (a milestone's responsible organisation) shows nothing: a flag
// about no grant is for the unbound roles only. A flag a caller may not see
// is NOT_FOUND; the audit events of its reviews likewise (they name each
// party with its role).
//
// # Thresholds
//
// Config holds the thresholds; DefaultConfig the defaults; a deployment
// overrides any of them with a JSON file of the same names (LoadConfig:
// unknown fields refused, the result verified, refusals naming the field).
//
//	field                         default   meaning
//	duplicateWindowDays           7         DUPLICATE_TRANSACTION: most days between the value dates of two entries of one grant (or one donor→recipient) of the same type and amount
//	duplicateAmountTolerance      0.005     DUPLICATE_TRANSACTION: largest difference of the two amounts, as a share of the larger, in agreement currency (0.5 %: the same payment entered once converted)
//	duplicateReferenceWindowDays  90        DUPLICATE_TRANSACTION: most days between two entries whose normalised payment references are equal
//	receiptWindowDays             30        RECEIPT_MISMATCH: days after its value date a disbursement may wait for its receipt
//	receiptTolerance              0.02      RECEIPT_MISMATCH: largest difference between a disbursement and its receipts in the reporting currency, as a share of the disbursement
//	overfundedTolerance           0         OVERFUNDED_MILESTONE: how far allocations may exceed a milestone's requirement, as a share of the requirement
//	stageDwellDays                see below PROCUREMENT_STALLED: days an item may stay in each open stage
//	  .REQUISITIONED              30
//	  .TENDERED                   60
//	  .EVALUATED                  30
//	  .AWARDED                    30
//	  .CONTRACTED                 120
//	  .DELIVERED                  30        (delivered, not yet accepted)
//	atRiskDays                    90        MILESTONE_AT_RISK: a milestone due within this many days (or overdue and not completed)…
//	atRiskGapShare                0.10      MILESTONE_AT_RISK: …with undelivered critical procurement, or a funding gap above this share of its requirement
//	idleMonths                    6         IDLE_FUNDS: months since money was received
//	idleShare                     0.80      IDLE_FUNDS: share of it still unspent
//
// Days are 0 to 3650, shares 0 to 1 (decimal strings or numbers in the
// file), idleMonths 1 to 120. A file names only what it changes; a
// stageDwellDays object replaces only the stages it names:
//
//	{"duplicateWindowDays": 10, "receiptTolerance": "0.01", "stageDwellDays": {"TENDERED": 90}}
package detect
