// Package reports writes the Excel audit pack, format tranche-audit-pack/1
// (DESIGN section 6): one .xlsx per scope (a roadmap, optionally narrowed to a
// donor, a grant and a value-date period) as of a point in time, that an
// auditor opens in Excel or LibreOffice and can re-derive and check.
//
// # Sheets and columns
//
// Layout (layout.go) is the authority: the sheets in order — Cover, Summary,
// Grants, Transactions, Reconciliation, Milestones, Procurement, Flags,
// Audit Trail, FX Rates, Manifest — and each sheet's columns with their kind
// and width. Kinds:
//
//   - text: a string cell.
//   - date: a date cell (an Excel serial number) with number format yyyy-mm-dd.
//   - amount: a numeric cell whose number format has exactly the currency's
//     minor units (#,##0 for JPY, #,##0.00 for EUR, #,##0.000 for KWD),
//     followed by a text cell "<column> currency" with the ISO 4217 code. One
//     amount column of the layout is two spreadsheet columns.
//   - integer: a numeric cell.
//   - decimal: a numeric cell (FX rates, quantities), general format.
//   - timestamp: a TEXT cell, RFC 3339 in UTC with microseconds
//     (2024-03-01T10:15:00.123456Z). Decision: an Excel date-time is a float
//     of days that cannot carry PostgreSQL's microseconds, and the manifest
//     must be re-derivable from the cells alone; the exact instant beats
//     sortable-as-a-date here (the string sorts correctly anyway).
//
// Every sheet has a bold header row (the column names; an amount's currency
// column is "<name> currency"), frozen below the header, an autofilter over
// header and data, and the layout's column widths (currency columns 9).
//
// What the sheets built so far hold:
//
//   - Cover: Field/Value lines — format, generator, roadmap id, title,
//     country, reporting currency, donor filter ("all" or the org id), grant
//     filter, value dates from/to ("open" or YYYY-MM-DD), as-of.
//   - Grants: the scope's grants created at or before as-of, ordered by
//     (reference, id), with donor and recipient names, dates, creation time,
//     and pledged, committed, disbursed, received, spent in agreement
//     currency: the sums of the journal's agreement amounts per bucket
//     recorded at or before as-of — the reconciliation API's figures for the
//     same as-of (a test compares them). Decision: the value-date period
//     narrows Transactions, not these whole-life totals.
//   - Transactions: the journal of the scope recorded at or before as-of with
//     a value date in the period, ordered by (value date, recorded at, id):
//     amount in entry currency, agreement amount in grant currency, reporting
//     amount in the roadmap's reporting currency (the amount as entered, always
//     positive; the agreement and reporting amounts are the signed effect on
//     the bucket, negative for a REVERSAL), the rates used, the entry's own FX rate (empty
//     when none), references, recorder, recorded-at, batch id.
//   - FX Rates: every rate, every revision, recorded at or before as-of
//     whose two currencies are both currencies of the scope (its journal rows
//     as narrowed for Transactions, its grants, the reporting currency), in
//     (currency, quote currency, date, revision) order, with source, reason
//     and recorded-at: what an auditor re-derives a conversion from (the
//     effective rate of a pair and date is its highest revision recorded by
//     then; an entry's own rate is in Transactions). Decision: rates are
//     reference data, not any donor's, so narrowing only trims pairs.
//   - Summary: the roadmap's coverage for the scope as of as-of, in the
//     reporting currency — columns Milestone code, Milestone, Funding
//     requirement, Allocated, Committed, Disbursed, Spent, Gap (requirement −
//     allocated), Donors — one row per milestone created by as-of (by code),
//     then a line with an empty code (a milestone's code never is) titled
//     "TOTAL: all milestones" (the sums; Donors: the donors with grants in
//     scope), then one titled "GRANTS: all entries of the scope's grants"
//     (committed, disbursed, spent of the scope's grants' whole journal: the
//     Reconciliation sheet's reporting figures summed; the difference from
//     TOTAL is the entries not tagged with a milestone; requirement,
//     allocated and gap empty). The figures are computed by the
//     coverage code itself inside the pack's snapshot (roadmap.CoverageAt over
//     ledger.MilestoneFundingAt): allocations of the scope's grants in force
//     at as-of and milestone-tagged entries recorded by then. Unnarrowed and
//     as of now they are GET /v1/roadmaps/{id}/coverage to the minor unit (a
//     test compares); for a past as-of or a narrowed scope they are what that
//     API answered then restricted to the scope's grants (the ledger tests
//     compare with answers captured at the time). Donors counts donors of
//     the scope only. A native clustered-column chart (excelize AddChart,
//     anchored at R2) plots requirement, committed, disbursed and spent per
//     milestone code from the milestone rows' cells; no milestones, no chart.
//     Decision: Summary is in reporting currency only: a milestone is funded
//     from grants in several currencies, so agreement-currency figures are
//     per grant, in Reconciliation.
//   - Reconciliation: per grant of the scope (Grants' order), what GET
//     /v1/grants/{id}/reconciliation?asOf= answers, computed by the same code
//     (ledger.ReconcileIn, which shares ReconcilePage's journal sums and
//     receipt matching): Grant ID, Grant reference, Donor ID; Pledged,
//     Committed, Disbursed, Received, Spent, Undisbursed commitment
//     (committed − disbursed), Unspent balance (received − spent) in the
//     agreement currency; the same seven "(reporting)" in the reporting
//     currency; then the number of receipt matches of each of the ledger's
//     statuses: Matched, Amount variance, Missing receipt (a disbursement
//     without its receipt), Receipt without disbursement (ledger reconcile.go
//     defines them; an FX-only difference is Matched). The individual matches
//     are not listed (the API pages them; Transactions holds the entries and
//     references to re-derive them).
//   - Milestones: the roadmap's milestones as they stood at as-of
//     (roadmap.MilestonesAt), by code: Milestone ID, Code, Title, Activity
//     type, Region, Target quantity, Target unit, Due date, Status (as of),
//     Funding requirement, Allocated (the scope's allocations in force at
//     as-of, as in Summary), Achieved quantity and Progress as of (the
//     latest progress report recorded by as-of: greatest progress date, then
//     latest recorded; empty when none).
//   - Procurement, Flags, Audit Trail: see "Procurement, Flags and Audit
//     Trail" below.
//   - Manifest: see below.
//
// Summary, Reconciliation and Milestones are whole-life figures as of as-of:
// like Grants, the value-date period does not narrow them.
//
// As-of decisions for the money sheets. A milestone is in the pack when
// created by as-of; only its status and progress change afterwards. Status
// as of: the latest milestone_status_history row recorded by as-of; before a
// milestone's first change, the status it was created with, which the
// history does not hold: it is taken from the milestone's creation audit
// event ("status" of its first event), PLANNED when there is none (rows
// loaded outside the API). Allocations as of: per grant, the latest
// allocation set made by as-of; a set is dated by its rows' created_at or,
// for a set that emptied the allocations (no rows), by the grant's
// SetAllocations audit event (same transaction, same time); without that
// event an emptied set is not seen and the set before it stays in force.
//
// # Procurement, Flags and Audit Trail
//
// Procurement: one row per stage an item entered — decision: rows, not a
// column per stage, because an item may skip stages and CANCELLED can follow
// any of them; a row per stage gives each stage its date, the date it was
// left and its dwell in the same columns, sortable and filterable. Items are
// those on the scope's grants recorded at or before as-of, with their stage
// rows recorded by then, in (item id, stage no.) order: item ids are UUIDv7,
// so this is creation order, the order of the procurement API. Each row
// repeats the item (grant and its reference, milestone, description,
// category, critical yes/no, estimated cost as an amount, expected delivery)
// and its current stage as of as-of (its last stage row by then), then stage
// no. (1 = REQUISITIONED), stage, entered on, left on (the next stage's
// day; empty for the current stage), dwell days (left on − entered on; for
// the current stage, the as-of day in UTC − entered on, also when that stage
// is ACCEPTED or CANCELLED, so the column means the same on every row), the
// stage's note, recorder and recorded-at.
//
// Flags: the roadmap's flags that had a flag_events row at or before as-of,
// in id (creation) order as the flags API lists them. Narrowed to a donor:
// the flags whose donor_org_ids hold it (detect's rule for a donor token,
// so a flag about two donors' grants — an overlap — is in both donors'
// packs, as the API shows it to both); to a grant: those whose grant_ids
// hold it (and, with a donor too, only when the grant is that donor's).
// State as of as-of from the flag's history (flag_events): status, severity,
// last event and its time from its last event by then; explanation and
// evidence from its last event carrying them (runs record them; reviews do
// not); review action, reviewer, time and note from its last ACKNOWLEDGE,
// DISMISS or REOPEN by then. Detected at is the flag's. Caveat: subjects
// and grant ids are not versioned (a run refreshes them in place), so they
// and the narrowing are the flag's current ones. Subjects, grant ids and
// evidence are RFC 8785 (canonical) JSON text; evidence also gets its
// length in bytes and SHA-256 (see long text below).
//
// Audit Trail: the sealed events (seq not null) that occurred at or before
// as-of and are about the scope, in sequence order, with every field that
// is hashed (event id, actor token, name, role, organisation, method,
// entity type and id, request id, subject organisations as a JSON array,
// the change as stored: canonical JSON, byte for byte as hashed) and the
// previous hash and hash in hex, so a row can be re-hashed (audit package
// doc) when its change is whole. About the scope:
//
//   - roadmap-wide: the roadmap itself, its milestones, its detection runs,
//     its grants (creation, allocations), their journal entries (an entry's
//     event, and the event of each batch part whose grantId is one of them:
//     a batch has one event per grant it touches), their procurement items,
//     and the reviews of its flags;
//   - narrowed to a donor or a grant: only events about the scope's grants,
//     their entries, batch parts and items, and the reviews of the flags of
//     the Flags sheet; for a donor additionally only events that name it as
//     the grant's donor (subject_orgs[1]) or, for a review, as "donor:ID" —
//     the rule internal/audit.List applies to a donor token. So a donor's
//     pack never holds an event of another donor's grant, nor the roadmap
//     and milestone events (public, but not the donor's); the one event
//     naming another donor is the review of a flag about both donors'
//     grants, which the API shows to both as well.
//
// Events about organisations, tokens and FX rates are not about a roadmap
// and are left out (FX Rates holds the rates themselves). The statement
// walks the unique index on seq from the start up to the head at as-of (the
// greatest seq that occurred by then: a bound on the walk, never a sort) and
// tests each event with one CASE over its entity type whose branches are
// primary-key look-ups (the planner may hash a small set instead), so the
// sheet streams at any size (TestPackTrailUsesIndexes checks the plan on
// 50 000 events).
//
// Long text: a cell holds at most 32 767 UTF-16 code units (Excel's limit;
// excelize would cut silently). A longer change (a batch part of more than
// about 70 entries), evidence or other free text is cut to the longest
// prefix of whole characters that fits with "…[truncated]" after it; the
// change and the evidence always have two more columns, their full length
// in bytes and the SHA-256 of the full text (lower-case hex), so an auditor
// can fetch the event from the API (GET /v1/audit-events) and match it.
// Characters XML 1.0 cannot hold (control characters but tab, LF, CR;
// U+FFFE, U+FFFF) are written as U+FFFD, which is what excelize would
// write. The manifest hashes the cells as written.
//
// # Scope and as-of
//
// As-of means recorded_at <= as-of (truncated to microseconds, UTC; zero:
// now). Donor: grants whose donor_org_id is the donor. Grant: that grant
// only (a grant outside the roadmap or of another donor gives empty sheets,
// not an error). Period: value_date between from and to, inclusive. Write
// does not authorise: the caller (server, CLI) checks that the principal may
// read the scope before calling it. An unknown roadmap is apperr.ErrNotFound.
//
// All rows are read in one REPEATABLE READ READ ONLY transaction, so every
// sheet describes the same snapshot, and streamed row by row from pgx into
// one excelize StreamWriter per sheet (excelize spools big sheets to
// temporary files, not memory).
//
// # Determinism
//
// The same scope and as-of give a byte-identical file: document properties
// (created, modified, creator, title) are fixed and dated as-of; every zip
// entry's modification time is as-of; rows come in the ORDER BY keys above;
// number-format styles are created in first-use order, which the row order
// fixes; Generator is a constant, not build info. excelize writes its
// streamed worksheets in Go map order, so the zip writer handed to it
// (deterministicZip) spools xl/worksheets/* to temporary files and writes
// them sorted by name when it is closed; excelize writes its other parts
// sorted already. The Summary chart makes excelize add image extensions to
// [Content_Types].xml in Go map order; the pack sorts those it appended. The zip goes straight onto the destination writer with
// flate.BestSpeed (SetZipWriter; DESIGN section 6: no in-memory copy of the
// file, half the CPU of the default level).
//
// # Manifest and the canonical form of a sheet
//
// Manifest has columns Entry, Rows, SHA-256, Value. One line per sheet
// before it ("sheet:Grants", row count, checksum), then facts in Value:
// format, generator, canonicalForm, scope.roadmapId, scope.donorOrgId,
// scope.grantId, scope.from, scope.to, asOf, chainHead.sequence,
// chainHead.hash (lower-case hex), chainHead.signature (base64 ed25519 over
// audit.HeadMessage, or "unsigned: …"), chainHead.keyId, chainVerification
// ("verified: …" or "FAILED at sequence N: PROBLEM: detail").
//
// The chain head at as-of: Write first seals pending events (audit
// Store.Head), then, inside the snapshot, takes the sealed event of the
// greatest sequence that occurred at or before as-of; audit Store.HeadAt
// reads and signs it and VerifySince recomputes the whole chain and checks
// that it extends that head (a rewritten event shows as FAILED in the pack).
// Events about the rows of the pack occurred in the same transaction as
// those rows, so the head covers them. Caveat: an event that occurred before
// as-of in a transaction that committed after a later one can be sealed
// after the pack was written; a pack of the same as-of written after that
// names a later head. So byte-identity holds once as-of is older than the
// longest write transaction plus the sealing bound (audit package) — true
// for any as-of in the past that an auditor asks for twice. Without
// Source.Audit the manifest says the head is "not included".
//
// The checksum of a sheet is SHA-256 over its data rows (not the header) in
// order, each row encoded as: the number of cells as a 4-byte big-endian
// unsigned integer, then for each cell its length in bytes (4-byte
// big-endian) and its canonical string in UTF-8. Length-prefixed, never
// delimiter-joined, so no cell content can move a boundary. An amount column
// contributes two cells (amount, currency code). Canonical strings:
//
//   - text, timestamp: the cell's string;
//   - date: YYYY-MM-DD;
//   - amount: the decimal with exactly the currency's minor units, no
//     thousands separator ("1234.50"; JPY "1235"), then the code;
//   - integer: base-10 digits, leading "-" when negative;
//   - decimal: the plain decimal without trailing zeros ("0.92", "150");
//   - an empty cell: the empty string.
//
// CanonicalSHA256 computes it from canonical rows; the tests recompute every
// sheet's checksum from the cells read back with excelize, as `tranche pack
// verify` will.
//
// # Still to do (next slices)
//
//   - Text cells of the other sheets (Transactions note and reference, FX
//     reason, Grants title…) go to excelize as they are: longer than 32 767
//     UTF-16 units, excelize cuts them silently, and a control character
//     comes back as U+FFFD; either way the manifest no longer recomputes.
//     Procurement, Flags and Audit Trail pass their free text through
//     fitCell(xmlText(…)) (sheets_trail.go); sheetWriter.row should do it
//     for every Text cell.
//   - Audit Trail at 1M events is not measured (no 1M-event fixture here).
//     Measured once at 100 000 journal entries with one sealed event each
//     (EXPLAIN ANALYZE of the statement, 2 shared cores): 0.39 s when the
//     planner hashes the roadmap's entry ids, 0.59 s with a primary-key
//     look-up per event (what it picks once the set outgrows work_mem;
//     forced with work_mem 64kB), 0.87 and 1.07 s with JIT on — hence JIT
//     off for that statement. So about 4–6 s at 1M, linear, flat memory: a
//     walk of the whole chain up to the head, the order of the whole-chain
//     verification the pack already does. A donor's pack walks every event
//     too (0.27 s per 100 000, the others rejected on subject_orgs[1]). If
//     that is too slow, a later migration can record the grant (or
//     roadmap) of an event in a column of its own with a (grant_id, seq)
//     index. JIT likely costs the other big statements of the pack the same
//     half second each (the detection engine turns it off for its runs).
//   - Verification runs over the whole chain for every pack (O(events));
//     measure at 1M events and consider verifying only up to the head plus
//     a cached verdict.
//   - Delivery: GET /v1/audit-packs:download, the server-streaming gRPC
//     method, `tranche pack` with progress, authorisation per role; `tranche
//     pack verify`.
//   - Amounts and decimals go to Excel as float64 (Excel holds nothing
//     else): exact for up to 15 significant digits; a verifier reading back a
//     longer value (an amount near 10^15, a rate like 0.333333333333333333)
//     would not reproduce the canonical string — decide (refuse, round the
//     canonical form, or a text cell beside it).
//   - Errors: rows are read into excelize's per-sheet spools first, so a
//     database error leaves w untouched; only the final zip goes onto w, and
//     a failure while writing it leaves a file with no central directory,
//     which no reader takes for a pack. The HTTP handler still has to decide
//     how a failure after the first byte reaches the client (trailer, or a
//     temporary file first — the issue allows one). The download starts when
//     the last row has been read.
//   - A sheet over Excel's 1 048 575 data rows is an error now; continuation
//     sheets (Transactions 2, …) are to be designed.
//   - The LibreOffice check, and an index for the Transactions order at
//     scale (EXPLAIN at 1M rows).
//
// # Speed (BenchmarkPack, 2 cores, excelize v2.11.1)
//
// Target (DESIGN section 10): a pack of 1 000 000 journal entries plus
// their audit events in at most 5 × the time of COPY of the same journal
// rows to CSV, peak RSS at most 150 MB. How the pack gets there:
//
//   - Data rows do not go through excelize. excelize writes each sheet's
//     header row, columns, panes, autofilter, styles and the workbook;
//     sheetWriter appends the data rows as the XML excelize's StreamWriter
//     would write for the same cells (inline strings with its escaping,
//     xml:space and 32 767-unit truncation, its 15-digit float formatting,
//     its date serials): TestCellsAsExcelize compares the bytes for hostile
//     strings, dates before 1900 and long decimals. Amounts and decimals of
//     at most 15 digits are written without allocating: the canonical string
//     from the coefficient, the cell's double as coefficient / 10^scale (the
//     nearest double, as before).
//   - Two cores: rows are read and turned into XML and canonical bytes on the
//     writing goroutine; a goroutine per sheet hashes the canonical bytes
//     (the manifest checksum) and deflates the XML (BestSpeed) into a
//     temporary file as the rows come (batches of 256 KB, at most 4 waiting:
//     memory stays flat). The zip writer puts each worksheet together as
//     one deflate stream — excelize's start (sync-flushed), the data's
//     stream, excelize's end — through zip.Writer.CreateRaw with the CRC-32
//     combined from the parts'. Bytes stay deterministic: the deflate output
//     depends on the bytes only. Nothing reaches w before every row has been
//     read, as before.
//   - The whole-chain verification (VerifySince) runs on its own goroutine
//     and connection from the moment the head is known, while the sheets are
//     written (the Transactions sort leaves the writing goroutine idle for
//     seconds at 1M rows); the Manifest waits for its verdict.
//   - NUMERIC columns are scanned with num/numOpt: a *decimal.Decimal target
//     goes through database/sql's Scanner (pgx prefers it to the registered
//     pgx-shopspring-decimal type), i.e. binary → text → parse, 13 % of the
//     CPU before.
//
// Figures, `PACK_BENCH_ROWS=N go test -run '^$' -bench BenchmarkPack
// -benchtime 1x -timeout 30m ./reports/` on the shared 2-core machine (load
// average of the minute beside each; COPY slows down with load too, the
// ratio less so). The rows are bulk-loaded in batches of 1000 with one
// sealed audit event per batch and grant, as RecordBatch writes them: at 1M
// entries 1 019 events holding 536 MB of change JSON, all in the chain
// verification; the COPY counts the journal rows only.
//
//	                    before (main)          after
//	100 000 rows        2.34 s, 9.4 × COPY,    1.09 s, 3.6 × COPY, 55 MB (load 3.5)
//	                    86 MB (no events)      1.14 s, 4.4 ×, 47 MB without events
//	1 000 000 rows      26 s, 9.2 × COPY,      13.0 s, 4.4 ×, 54 MB (load 2.5)
//	                    86 MB (no events)      14.3 s, 3.7 ×, 56 MB (load 2.4)
//	                                           19.3 s, 3.1 ×, 58 MB (load 3-5)
//	                                           25.2 s, 4.8 ×, 57 MB (load 4.7)
//
// Where the 13 s go (the benchmark logs them, through Source.Progress):
// Grants 0.6 s, Transactions 3.8 s to its first 10 000 rows (PostgreSQL's
// sort, with the verification running beside it) and 8 s for the rest, FX
// Rates 0.5 s, the zip 0.04 s. LibreOffice opens the spliced worksheets
// (converted to CSV, every sheet), unzip -t finds no error.
//
// At 1M rows the CPU of a pack (profile, Go side) is about: Transactions
// rows 6.5 s (pgx scanning half, cells half; less since num), deflate 2.8 s,
// chain verification 2.5 s (json.Valid of every change 1.6 s), and
// PostgreSQL sorts the journal for 2-3 s before the first row.
//
// Tried and not kept: work_mem for the Transactions sort (EXPLAIN ANALYZE at
// 1M rows: 4 MB, external merge in three processes, 2.9 s; 64 MB still
// spills, 2.2 s; 256 MB sorts in memory in one process, 3.2 s and 230 MB of
// server memory). An index on transactions (value_date, recorded_at, id)
// would stream rows without the sort, but costs every journal write and
// speeds the COPY baseline the same way; not added.
//
// Open:
//   - Verification is O(chain) per pack, off the critical path now but 2.5 s
//     of CPU at 1M entries. Bounding it to the head saves nothing for an
//     as-of of now (the head is the end of the chain). In internal/audit:
//     verification need not re-run json.Valid on each change (the stored
//     hash already proves the bytes are those validated when sealed; −60 %),
//     and a stored verified checkpoint would let packs verify from there.
//   - A text cell over 32 767 UTF-16 units is truncated in the cell (as
//     excelize does) while the checksum covers the whole string, so a
//     verifier cannot re-derive it: a batch event's change (about 700 bytes
//     per entry, 530 KB for 1000) is far beyond it — the Audit Trail sheet
//     must decide (refuse, hash, or split).
//   - klauspost/compress's flate would roughly halve the deflate CPU; a new
//     dependency, not added.
package reports
