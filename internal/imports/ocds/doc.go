// Package ocds parses Open Contracting Data Standard (OCDS) procurement data
// into one procurement timeline per contracting process (ocid), ready to
// become a procurement item (internal/procurement). It is the source layer
// only: no database, no API. Money is shopspring decimal, read from JSON
// numbers as text (json.Decoder.UseNumber), never through a float.
//
// # Input forms
//
// Parse accepts, in one file, any sequence of top-level JSON values (so both
// a single document and line-delimited JSON), each one of:
//
//   - a release package: an object with releases[];
//   - a record package: an object with records[]; a record's compiledRelease
//     is used when present (Provenance.Compiled), else its embedded
//     releases[] (linked releases that carry only a url are skipped);
//   - a JSON array of releases;
//   - a bare release (an object with ocid).
//
// Anything else (a scalar, an object with none of ocid, releases, records),
// malformed or truncated JSON (NUL bytes included) is an error naming the line,
// column and byte; a release that is not an object or has no string ocid is an
// error naming its index. Such errors fail the whole file (all or nothing).
// Trouble inside a release (a wrong type, an unreadable or absurd date, an
// unknown currency, an absurd amount) is a Problem on that process naming the
// ocid and the OCDS field; the field is then treated as absent.
//
// # Supersede rule (several releases of one ocid)
//
// Releases are grouped by ocid (processes in order of first appearance) and
// sorted oldest first by release date (the instant, UTC; a missing or
// unreadable date sorts first and is a Problem), then by position in the
// file. They are merged in that order, a simplified OCDS merge: the latest
// non-empty value of each field wins (null, "" and empty arrays or objects
// never erase an earlier value); objects merge field by field; arrays of
// objects that all carry an id (awards, contracts, items, milestones,
// transactions) merge element by element by id; other arrays are replaced
// whole. So a later release supersedes an earlier one field by field, and a
// later release that omits a field does not erase it. Provenance.Version is
// the id of the latest release (VersionDate its date verbatim, Position its
// index among the file's releases); Provenance.Releases lists all merged.
//
// # Dates
//
// OCDS date-times (RFC 3339; also accepted without zone, read as UTC, or as a
// bare date) are normalised to the UTC day: 2016-06-13T03:00:00+04:00 is
// 2016-06-12. The text is kept verbatim in Date.Source, the OCDS path in
// Date.Field. Days before 1990-01-01 or after 2099-12-31 (year 0001, 9999;
// the range apperr holds every Tranche date to) are absurd: a Problem, and
// the date is not used. Release dates are never
// stage dates (Armenia publishes every release on one day), except to date a
// cancellation (below). durationInDays is ignored: durations come from dates.
//
// # Mapping
//
//	OCDS field                                   → timeline field                       read/inferred
//	ocid                                         → Process.OCID, Provenance.RecordID    read
//	id, date of the latest release               → Provenance.Version, VersionDate      read
//	tender.title                                 → Title; Description (first choice)    read
//	tender.description                           → Description if no title              read
//	tender.items[0].description                  → Description if neither               read
//	planning(.[0]).budget.description            → Description if none of the above     inferred
//	tender.items[].classification (CPV prefix)   → Category: 38546/38295 DETECTORS,     inferred
//	                                               35113/18143/18130 PPE, 341/3433
//	                                               VEHICLES, 43 MECHANICAL, 0332/98380
//	                                               ANIMALS
//	tender.mainProcurementCategory               → Category SERVICES if "services",     inferred
//	                                               else OTHER (goods, works, none)
//	tender.value {amount, currency}              → EstimatedCost (a zero value is a     read
//	                                               placeholder: not used)
//	planning.budget.amount (planning may be an   → EstimatedCost if no tender.value;    read
//	array: amounts in one currency are summed)     Field says which
//	contracts[].period.endDate (latest)          → ExpectedDelivery                     read
//	  else contracts[].implementation.milestones[].dueDate (latest),
//	  else tender.contractPeriod.endDate, else awards[].contractPeriod.endDate
//	tender.datePublished                         → REQUISITIONED                        inferred
//	  (none, or dropped: the first kept stage's day; only a cancellation:              inferred
//	  its day)
//	tender.tenderPeriod.startDate                → TENDERED                             read
//	tender.tenderPeriod.endDate                  → EVALUATED (bids closed)              read
//	  else tender.awardPeriod.startDate                                                 read
//	awards[].date, earliest of status active or none → AWARDED                          read
//	contracts[].dateSigned, earliest of status active, terminated or none → CONTRACTED  read
//	contracts[].implementation (every live contract delivered) → DELIVERED:
//	  all milestones status met: latest dateMet                                         read
//	  all met, no dateMet: latest dueDate                                               inferred
//	  contract status terminated: last transaction date, else period.endDate            inferred
//	  payments alone are NOT delivery (CDMX 063 is paid but its milestones are
//	  only partiallyMet: not delivered)
//	tender.status cancelled or unsuccessful      → CANCELLED, dated by the first        inferred
//	                                               release showing that status
//	(ACCEPTED)                                   → never: OCDS has no acceptance date
//
// Amounts: the JSON number text is read as a decimal; more decimals than the
// currency has (59999999.99999999 DKK, float artefacts) are rounded half to
// even to its minor units, Amount.Source keeps the text and Amount.Rounded is
// set. Negative amounts, amounts given as strings, unknown currencies, more
// than 15 integer digits, or an exponent above 20 or below -40 (1e400) are
// Problems.
//
// Skipped: parties, buyer, bids, documents, lots, qualifications, tenderers,
// award and contract values (the estimate is the tender's or the budget's;
// the award may be in another currency, as CDMX 065 is in USD against a MXN
// tender), exchangeRate and dateexchangeRate (non-standard, CDMX),
// implementation transaction amounts (payments are not stage evidence except
// for a terminated contract), language variants (_hy, _ru) and every other
// non-standard field.
//
// Each stage that is inferred is listed in Process.Inferred ("stages.X"),
// with Stage.Note saying from what; Category is always inferred.
//
// # Inconsistency rule
//
// A timeline never moves backwards. The candidate stages above, in stage
// order, are reduced to the largest subset whose days never decrease (ties:
// the subset keeping later stages); the others go to Process.Dropped. Every
// pair of candidates out of order is an Inconsistency (kind "stage order",
// naming both fields and days, and which stage was dropped). Also reported,
// without changing the timeline: periods that end before they start
// (tenderPeriod, awardPeriod, tender.contractPeriod, contracts[].period; kind
// "negative duration") and a contract signed before the award it implements
// (kind "contract signed before its award"). A CANCELLED day before the last
// kept stage's day is moved to that day and reported ("cancelled before last
// stage"). In Armenia, tenderPeriod.startDate is the time the notice entered
// the system and often falls after bids closed and the award: it is the one
// dropped, keeping EVALUATED, AWARDED and CONTRACTED.
//
// A process with no dated stage (Armenia's 73 planning-only releases) has no
// stages and a Problem on "tender"; the next step decides whether to create
// it REQUISITIONED today or to skip it.
//
// # Towards a procurement item
//
// Process.ItemInput shapes a process for procurement.Store: the Input to
// Create (description cut to procurement.MaxDescription, category, estimated
// cost, expected delivery, REQUISITIONED on the timeline's first day) and the
// stages to Advance through, each with a note naming the OCDS field, its text
// and whether the day was inferred. Stages after the given day, and an
// expected delivery before the requisition, are left out and reported; with
// no estimated cost it answers ok=false (the caller decides).
//
// Figures: cdmx-release-package.json gives 2 processes from 4 releases
// (version 02 of each supersedes 01), no inconsistencies, 065 delivered
// (inferred, 2016-03-10). armenia-releases.json gives 100 processes (27 with
// a tender), 18 inconsistent: 51 stage-order pairs and 21 negative durations;
// 4 negative planning budgets are Problems.
package ocds
