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
//   - Manifest: see below.
//
// The other sheets are written with their header row and no data yet (their
// manifest lines say 0 rows) — see "Still to do".
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
// sorted already. The zip goes straight onto the destination writer with
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
//   - Summary: per milestone funding requirement against committed,
//     disbursed, spent, in agreement and reporting currencies, equal to the
//     API's reconciliation and coverage figures (internal/ledger
//     reconcile.go, internal/roadmap coverage.go), plus a native chart.
//     Note: roadmap.Store.Coverage answers for now only (no as-of) and reads
//     current allocations from grant_balances; the pack needs an as-of
//     variant, or its Summary can equal the API only for as-of = now.
//   - Reconciliation, Milestones, Procurement (stage dates, dwell days;
//     internal/procurement), Flags (with review state; internal/detect),
//     Audit Trail (events the scope may see). Their columns in Layout are a
//     first proposal.
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
//   - Milestones was left out on purpose: only a milestone's status is
//     mutable and milestone_status_history does not hold the initial status
//     of a milestone created other than PLANNED, and allocations as of a past
//     time need the allocation version current then (an emptied allocation
//     set has no rows): both need a decision before the sheet can be exact.
//   - Reconciliation should call the ledger's reconciliation (receipt
//     matching lives unexported in internal/ledger) rather than re-derive it.
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
