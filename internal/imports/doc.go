// Package imports brings what donors and procurement systems already publish
// (OCHA FTS flows, IATI activities, OCDS contracting processes) into the
// ledger through the domain code, keeping where every record came from, and
// publishes a roadmap back as an IATI 2.03 activity file.
//
// The source packages (fts, iati, ocds) parse files into plain values and
// apply the counting rules; this package maps those values onto
// organisations, grants, journal entries and procurement items and writes
// them through the same code the API uses: org.Store.EnsureIn,
// ledger.Store.CreateGrantsIn and RecordIn (the BatchRecord path: balances,
// FX conversion, disbursed ≤ committed, one audit event per grant per batch)
// and procurement.Store.ImportIn. Every file of one request is imported in
// one transaction: all or nothing, unless SkipInvalid leaves the invalid
// records out (listed in the report). Imports run one at a time (a
// transaction-scoped advisory lock), so two imports of one file never both
// write it and two imports never both register one new organisation.
//
// # Provenance and re-imports
//
// Every organisation, grant, entry and procurement item an import creates
// has a provenance row: source kind, file SHA-256, the record's id (FTS flow
// id; IATI iati-identifier#transaction position; OCDS ocid), its version
// (FTS versionId; IATI @last-updated-datetime; OCDS latest release id),
// its position in the file, the fields inferred rather than read, and the
// source values kept verbatim where the stored value differs (rounded to the
// currency, cut to a field's length). The row also holds the SHA-256 of the
// record's content as the ledger stores it. A re-import compares, record by
// record:
//
//   - same content: unchanged, nothing written (a file imported before is
//     marked alreadyImported; an import that changes nothing writes no run);
//   - different content at a version not older than the one held: a
//     correction, as the ledger corrects: a REVERSAL of each of the record's
//     live entries and the new entries, in one transaction;
//   - an older version than the one held: left as it is, with a note.
//
// OCDS items and their stages are append-only and a stage never moves back,
// so a changed process is reported, not applied.
//
// # FTS (see package fts for the field mapping and the counting rules)
//
//   - Not in the ledger: internal flows (the money was counted when it came
//     in: journaling a pooled fund's allocations as well would count it twice
//     in the roadmap's coverage), flows whose onBoundary is shared (only an
//     unknown part is this roadmap's), outgoing flows, and flows of amount 0
//     (parked parents wholly split into children). Each is listed with its
//     reason in notCounted. Parked parents with a remainder and their
//     children are both journaled: the parent's amountUSD excludes the
//     children.
//   - A pledge flow is a PLEDGE; a commitment a COMMITMENT; a paid flow a
//     COMMITMENT (inferred: FTS counts each paid flow as funding of its own)
//     followed by a DISBURSEMENT, so that disbursed never exceeds committed
//     and the roadmap's committed total is FTS's funding total.
//   - Amounts are the original amount and currency (USD when FTS gives none,
//     inferred). In a USD roadmap each entry carries its own FX rate,
//     originalAmount / amountUSD, so its reporting value is exactly FTS's
//     amountUSD (what FTS totals); the recomputed value from exchangeRate is
//     kept beside it and flows differing by more than a dollar are listed.
//     In a roadmap of another reporting currency the FX table converts.
//   - The report's totals: data.incoming.fundingTotal and pledgeTotal against
//     the import's, the flow counts, and the ledger's committed total from
//     FTS records in the roadmap after the import, in USD.
//   - Reference: the flow's refCode. Flows of a parked family share one by
//     design, so theirs gets the flow id appended and detection does not
//     take one agreement split in parts for a payment entered twice. Other
//     repeated codes stay as they are; the report explains every group.
//   - Organisations by FTS organisation id, names as given; a flow whose side
//     names none gets a placeholder organisation ("Donor not reported to OCHA
//     FTS", "Recipient not reported to OCHA FTS"). Kinds: FTS "Pooled fund"
//     → POOLED_FUND; otherwise by role in the import: funds and receives →
//     POOLED_FUND, funds → DONOR, receives → IMPLEMENTER (inferred). An
//     organisation registered before keeps its kind; one that cannot play its
//     role refuses the import, naming the flow.
//   - Grant: one per donor → recipient agreement (fts.GrantKey), reference
//     "FTS-<agreement flow id>[-<recipient id>]", title the agreement flow's
//     description, currency its first flow's, period from the earliest
//     decision or value date to the end of the last usage year.
//   - Milestone: the roadmap's milestone whose code equals one of the flow's
//     destination clusters (name or id, case ignored), when exactly one does;
//     otherwise unassigned.
//   - A roadmap created for the import: the country of the location most
//     flows go to (by its ISO 3166-1 name), the usage years as its period,
//     USD.
//
// # IATI (see package iati for the field mapping and the counting rules)
//
//   - One grant per activity and provider → receiver pair; reference the
//     iati-identifier and the receiver (cut to 100 characters with a digest).
//     Provider and receiver: as the transaction names them, else the
//     reporting organisation on the side that reports it (outgoing: the
//     provider), else the activity's Funding / Implementing organisation,
//     else a placeholder; each fallback is listed as inferred.
//   - Organisations by IATI identifier when well-formed, else by name.
//   - Journaled types become entries of their ledger type (1 RECEIPT, 2 and
//     11 COMMITMENT, 3 and 7 DISBURSEMENT, 4 EXPENDITURE, 12 and 13 PLEDGE);
//     the others (interest, loan repayment, equity, guarantees) and the
//     transactions the counting rules leave out are listed in notCounted.
//   - A disbursement beyond the activity's commitments gets an implied
//     COMMITMENT of the shortfall first (inferred): IATI publishers often
//     report disbursements alone, and the ledger never lets disbursed exceed
//     committed.
//   - A negative disbursement, receipt or expenditure (IATI's correction)
//     becomes a REVERSAL of the latest earlier entry of the same grant, type
//     and currency at least as large, and a new entry for the remainder. With
//     no such entry the transaction is refused. Negative commitments and
//     pledges are recorded as they are (the ledger allows amendments down).
//   - An expenditure needs a document reference; IATI gives none, so it is
//     the activity and transaction position (inferred).
//   - Milestone: the roadmap's milestone whose code is one of the activity's
//     sector codes, when exactly one.
//   - The report's totals: per IATI type and currency, as published and as
//     counted.
//   - Entries convert to the roadmap's reporting currency by the FX table:
//     IATI files give no rates, so rates must be loaded first (a missing one
//     refuses the import, naming the pair and date).
//
// # OCDS (see package ocds)
//
// Each contracting process (ocid) becomes a procurement item of the grant
// named, with its stage history from the tender period, award, contract and
// implementation. Processes in several files: the later file's account is
// imported. Date inconsistencies are reported per process and never stored
// as a stage moving back. A process with no estimated cost is recorded at 0
// in the grant's currency (inferred), so its timeline still feeds stall and
// lateness detection.
package imports
