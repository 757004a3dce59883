// Package reports writes and verifies the Excel audit pack, format
// tranche-audit-pack/1 (DESIGN section 6): one .xlsx per scope — a roadmap,
// optionally narrowed to a donor, a grant and a value-date period — as of a
// point in time. An auditor opens it in Excel or LibreOffice, re-derives
// every figure from the cells, and checks with `tranche pack verify` that
// the sheets are what the server wrote and that the audit trail behind them
// has not been rewritten since.
//
// Write builds a pack, Verify and VerifyFile check one. Layout (layout.go)
// is the authority on sheets and columns; this comment explains them and
// the decisions behind them.
//
// # Scope and as-of
//
// As-of means recorded at or before the as-of time (truncated to
// microseconds, UTC; zero means now by the database's clock, which dates
// the rows; an as-of after that clock is refused, naming asOf). A donor
// narrows to the grants whose
// donor is that organisation, a grant to that grant alone, a period (from,
// to; inclusive, either open) to journal entries whose value date lies in
// it. Write does not authorise: it reads whatever the scope names, and a
// grant outside the roadmap or of another donor simply gives empty sheets;
// the server and the CLI check the caller and refuse such a scope first
// (see Delivery). An unknown roadmap is apperr.ErrNotFound, and so is an
// unknown donorOrgId (its pack would be empty and read as "nothing
// happened"). A roadmap or grant created after as-of gives an empty pack:
// that is what there was.
//
// A row is dated by its transaction's start, so a write transaction open
// across as-of could commit rows dated before as-of after the pack's
// snapshot. For an as-of within 30 s of the database's clock (a pack of
// "now") the writer therefore notes the transactions of this database that
// hold a transaction id (pg_locks, readable by every role; other databases'
// writers and prepared transactions are not waited for) and waits until
// they have ended, then seals pending audit events, then opens the snapshot (starting over if an event dated by as-of
// is still unsealed in it). A writer open for more than 30 s makes the pack
// fail with ABORTED, which the client may retry. A detection run, which
// reads for seconds before it writes, takes its transaction id first for
// this reason. Residuals: a transaction that began by as-of but had not yet
// written anything, and, for an older as-of, a write transaction open
// longer than 30 s across it. The server takes the as-of of a pack of "now"
// once the pack has a build slot, so a queued pack does not fall outside
// the 30 s.
//
// Every sheet is read in one REPEATABLE READ READ ONLY transaction, so all
// sheets describe the same snapshot. The value-date period narrows
// Transactions (and, through its currencies, FX Rates) only: Grants,
// Summary, Reconciliation and Milestones are whole-life figures as of
// as-of, because a grant's balances do not depend on which entries an
// auditor chose to list.
//
// # Sheets
//
// In this order: Cover, Summary, Grants, Transactions, Reconciliation,
// Milestones, Procurement, Flags, Audit Trail, FX Rates, Manifest. Every
// sheet has a bold header row of the column names, frozen, an autofilter
// over header and data, and the layout's column widths. Column kinds:
//
//   - text: a string cell.
//   - date: a date cell (Excel serial number) formatted yyyy-mm-dd. A date
//     before 1900, which Excel cannot hold as a serial, is written as
//     excelize writes it: an ISO 8601 string.
//   - amount: a numeric cell whose number format has exactly the currency's
//     minor units (#,##0 for JPY, #,##0.00 for EUR, #,##0.000 for KWD), then
//     a text cell "<column> currency" with the ISO 4217 code (width 9). One
//     amount column of the layout is two spreadsheet columns, because a cell
//     cannot carry its currency and one sheet mixes currencies.
//   - integer: a numeric cell.
//   - decimal: a numeric cell in general format (rates, quantities).
//   - timestamp: a TEXT cell, RFC 3339 UTC with six fractional digits
//     (2024-03-01T10:15:00.123456Z). An Excel date-time is a float of days
//     that cannot carry PostgreSQL's microseconds, and the checksum must be
//     re-derivable from the cell alone; the string sorts correctly anyway.
//
// Cover (Field, Value): Format, Generator, Roadmap ID, Roadmap (title),
// Country, Reporting currency, Donor organisation ("all" or the id), Grant
// ("all" or the id), Value dates from, Value dates to ("open" or
// YYYY-MM-DD), As of (recorded at or before).
//
// Summary (Milestone code, Milestone; Funding requirement, Allocated,
// Committed, Disbursed, Spent, Gap as amounts; Donors integer): the
// roadmap's coverage for the scope as of as-of, in the reporting currency
// only — a milestone is funded from grants in several currencies, so
// agreement-currency figures are per grant, in Reconciliation. One row per
// milestone created by as-of, by code; then a row titled "TOTAL: all
// milestones" (the sums; Donors: the scope's donors with grants under the
// roadmap); then "GRANTS: all entries of the scope's grants" (committed,
// disbursed and spent of the scope's grants' whole journal, i.e. the
// Reconciliation sheet's reporting figures summed; requirement, allocated
// and gap empty; it differs from TOTAL by the entries not tagged with a
// milestone). Both have an empty code, which no milestone has, so neither
// can be taken for a milestone. The figures are computed by the API's own
// code inside the snapshot (roadmap.CoverageAt over
// ledger.MilestoneFundingAt): unnarrowed and as of now they equal GET
// /v1/roadmaps/{id}/coverage to the minor unit; for a past as-of or a
// narrowed scope they are what that API answered then, restricted to the
// scope's grants. A native clustered-column chart (anchored at R2) plots
// requirement, committed, disbursed and spent per milestone code from the
// milestone rows, so the picture travels inside the file and follows the
// cells; with no milestones there is no chart.
//
// Grants (Grant ID, Reference, Title, Donor ID, Donor, Recipient ID,
// Recipient, Start date, End date, Created at; Pledged, Committed,
// Disbursed, Received, Spent in the agreement currency): the scope's grants
// created by as-of, by (reference, id). The amounts are the sums of the
// journal's agreement amounts per bucket recorded by as-of: the
// reconciliation API's figures for the same as-of.
//
// Transactions (Transaction ID, Grant ID, Grant reference, Type, Bucket,
// Value date; Amount, Agreement amount, Reporting amount; Agreement rate,
// Reporting rate, Entry FX rate; Reference, Milestone ID, Reverses ID, Note,
// Recorded by, Recorded role, Recorded at, Batch ID): the scope's journal
// recorded by as-of with a value date in the period, by (value date,
// recorded at, id). Amount is as entered in the entry's currency, always
// positive; the agreement and reporting amounts are the signed effect on the
// bucket in the grant's and the roadmap's currency (negative for a
// REVERSAL). Entry FX rate is the entry's own rate, empty when none.
//
// Reconciliation (Grant ID, Grant reference, Donor ID; Pledged, Committed,
// Disbursed, Received, Spent, Undisbursed commitment, Unspent balance in the
// agreement currency; the same seven "(reporting)"; then the counts Matched,
// Amount variance, Missing receipt, Receipt without disbursement): per grant
// of the scope, in Grants' order, what GET
// /v1/grants/{id}/reconciliation?asOf= answers, computed by the same code
// (ledger.ReconcileIn). The counts are the receipt matches of each status
// (ledger reconcile.go; an FX-only difference is Matched); the matches
// themselves are not listed, since Transactions holds the entries and
// references to re-derive them.
//
// Milestones (Milestone ID, Code, Title, Activity type, Region, Target
// quantity, Target unit, Due date, Status, Funding requirement, Allocated,
// Achieved quantity, Progress as of): the roadmap's milestones created by
// as-of, by code, as they stood then (roadmap.MilestonesAt). Status is the
// latest status change recorded by as-of; Allocated is the scope's
// allocations in force at as-of, as in Summary; Achieved quantity and
// Progress as of come from the latest progress report recorded by as-of
// (greatest progress date, then latest recorded; empty when none).
//
// Procurement (Item ID, Grant ID, Grant reference, Milestone ID,
// Description, Category, Critical, Estimated cost, Expected delivery,
// Current stage; Stage no., Stage, Entered on, Left on, Dwell days, Stage
// note, Stage recorded by, Stage recorded at): one row per stage an item
// entered, not a column per stage, because an item may skip stages and
// CANCELLED can follow any of them; a row per stage gives each stage its
// date, the date it was left and its dwell in the same, filterable columns.
// Items are those on the scope's grants recorded by as-of, with their
// stages recorded by then, by (item id, stage no.): item ids are UUIDv7, so
// this is creation order, the procurement API's. The item's columns repeat
// on each of its rows, so a filter on any column keeps whole facts. Current
// stage is the item's last stage by as-of; Critical is yes or no; Stage no.
// 1 is REQUISITIONED. Left on is the next stage's day (empty for the current
// stage); Dwell days is Left on − Entered on or, for the current stage, the
// as-of day (UTC) − Entered on, also when that stage is ACCEPTED or
// CANCELLED, so the column means the same on every row.
//
// Flags (Flag ID, Kind, Severity, Status, Last event, Last event at, Grant
// IDs, Subjects, Explanation, Evidence (canonical JSON), Evidence bytes,
// Evidence SHA-256, Detected at, Review action, Reviewed by, Reviewed at,
// Review note): the roadmap's flags with a flag event by as-of, in id
// (creation) order as the flags API lists them, each in its state at as-of:
// status, severity and last event from its last event by then; explanation
// and evidence from its last event carrying them (runs record them, reviews
// do not); the review columns from its last ACKNOWLEDGE, DISMISS or REOPEN
// by then. Grant IDs, Subjects and Evidence are RFC 8785 (canonical) JSON.
// Who sees which flags: narrowed to a donor, the flags whose donor ids hold
// it (the detection engine's rule for a donor token), so a flag about two
// donors' grants (an overlap) is in both donors' packs, as the API shows it
// to both; narrowed to a grant, the flags whose grant ids hold it (and, with
// a donor too, only when the grant is that donor's).
//
// Audit Trail (Sequence, Event ID, Time, Actor, Actor name, Role,
// Organisation, Method, Entity type, Entity ID, Request ID, Subject
// organisations, Change (canonical JSON), Change bytes, Change SHA-256,
// Previous hash, Hash): the sealed events that occurred by as-of and are
// about the scope, in sequence order, with every hashed field (the change
// byte for byte as hashed, subject organisations as a JSON array, hashes in
// lower-case hex), so a row whose change is whole can be re-hashed as the
// audit package documents. About the scope:
//
//   - roadmap-wide: the roadmap itself, its milestones, its detection runs,
//     its grants (creation, allocations), their journal entries (an entry's
//     event, and the event of each batch part whose grantId is one of them:
//     a batch has one event per grant it touches), their procurement items,
//     and the reviews of its flags;
//   - narrowed to a donor or a grant: only the events about the scope's
//     grants, their entries, batch parts and items, and the reviews of the
//     Flags sheet's flags; for a donor, besides, only events that name it as
//     the grant's donor (the first subject organisation) or, for a review,
//     as "donor:ID" — the rule the audit API applies to a donor token. So a
//     donor's pack never holds an event of another donor's grant, nor the
//     roadmap's and milestones' events (public, but not the donor's); the
//     one event naming another donor is the review of a flag about both
//     donors' grants, which the API shows to both as well.
//
// Events about organisations, tokens and FX rates are about no roadmap and
// are left out (FX Rates holds the rates). The statement walks the unique
// index on seq up to the head at as-of (a bound, never a sort) and tests
// each event with one CASE over its entity type whose branches are
// primary-key look-ups, so the sheet streams at any size
// (TestPackTrailUsesIndexes checks the plan); JIT is off for that statement,
// since compiling it costs more than it gains.
//
// FX Rates (Currency, Quote currency, Date, Rate, Revision, Source, Reason,
// Recorded at): every rate and every revision recorded by as-of whose two
// currencies are both the scope's (its journal rows as narrowed for
// Transactions, its grants, the reporting currency), by (currency, quote
// currency, date, revision): what an auditor re-derives a conversion from.
// The effective rate of a pair and date is its highest revision recorded by
// then; an entry's own rate is in Transactions. Rates are reference data,
// not any donor's, so narrowing only trims the pairs.
//
// Manifest: see "Manifest and canonical form".
//
// # Text cells
//
// A text cell holds exactly what a reader gets back, so that the checksum
// can be recomputed from the file:
//
//   - Characters XML 1.0 cannot hold (control characters other than tab,
//     LF and CR; U+FFFE, U+FFFF; invalid UTF-8) are written as U+FFFD, as
//     excelize would write them.
//   - Text longer than Excel's 32 767 UTF-16 code units per cell
//     (MaxCellChars) is cut to the longest prefix of whole characters that
//     fits with TruncatedMark ("…[truncated]") after it; excelize would cut
//     silently. This applies to every text cell of every sheet; in practice
//     it is reached by a batch event's change (several hundred bytes per
//     entry, so a batch part of a few dozen entries or more) and by long
//     evidence.
//   - Where a long text is expected the sheet adds its length in bytes and
//     the SHA-256 (lower-case hex) of the full text: Evidence bytes and
//     Evidence SHA-256 in Flags, Change bytes and Change SHA-256 in Audit
//     Trail. An auditor can fetch the full text (GET /v1/audit-events, the
//     flags API) and match it; the checksum covers the cell as written.
//   - A literal _xHHHH_ is escaped as _x005F_xHHHH_, so that it reads back
//     as itself and not as the character it names — also for a surrogate
//     such as _xD800_, which excelize leaves unescaped and a reader then
//     drops; an empty string gives no cell at all and reads back as "".
//
// # Numbers
//
// A spreadsheet cell holds a number as a double, which carries any decimal
// of up to 15 significant digits exactly; numeric cells are written with at
// most 15 significant digits, as Excel and excelize write them. The rule
// for longer values is in digits.go.
// A longer value cannot travel in a numeric cell, so:
//
//   - an amount of more than 15 significant digits (10^13 or more in a
//     two-decimal currency) is a text cell holding the exact decimal with
//     the currency's minor units (still with the amount's style);
//   - a decimal of more than 15 significant digits (the ledger's inverse
//     and cross rates carry 24 decimals) is a number when its double reads
//     back as a decimal of at most 15 digits (it is then written, and
//     canonical, as that shorter decimal: a verifier could not tell it from
//     a number re-saved by a spreadsheet application), else a text cell
//     holding the exact decimal.
//
// The writer and the verifier decide with the same rule on the value's
// text, so such a pack verifies and its canonical form stays exact.
//
// # Manifest and canonical form
//
// Manifest has the columns Entry, Rows, SHA-256, Value, and these lines:
//
//   - one per sheet before it, in order: "sheet:<name>", its data-row count
//     and the SHA-256 of its canonical rows (the Manifest sheet itself has
//     no line);
//   - facts in Value: format, generator, canonicalForm, scope.roadmapId,
//     scope.donorOrgId and scope.grantId ("all" or the id), scope.from and
//     scope.to ("open" or YYYY-MM-DD), asOf;
//   - the chain head at as-of: chainHead.sequence, chainHead.hash
//     (lower-case hex), chainHead.signature (base64 ed25519 over
//     audit.HeadMessage, or "unsigned: …"), chainHead.keyId, and
//     chainVerification ("verified: …" or "FAILED at sequence N: PROBLEM:
//     detail"). Without Source.Audit the sequence reads "not included: …"
//     and the verification "not run";
//   - the seal: manifest.sha256, the canonical SHA-256 (below) of every
//     Manifest line above it, each line taken as its four cells;
//     manifest.signature, base64 ed25519 with the server's signing key over
//     ManifestMessage(digest), or "unsigned: …"; manifest.keyId.
//
// ManifestMessage is the RFC 8785 JSON object
// {"sha256":"<lower-case hex>","v":"tranche-audit-pack-manifest/1"}; its
// label differs from the head's (tranche-audit-head/1), so a signature over
// one can never be taken for the other. The head's signature covers only
// the head's sequence and hash; the seal's signature covers the sheet
// checksums, the scope, the as-of and the head, so a sheet edited together
// with its manifest line no longer matches a signature only the server's
// key can make.
//
// The chain head: Write first seals pending audit events (audit
// Store.Head), then, inside the snapshot, takes the sealed event of the
// greatest sequence that occurred by as-of; audit Store.HeadAt reads and
// signs it, and VerifySince recomputes the whole chain and checks that it
// extends that head, so a rewritten event shows as FAILED in the pack.
// Events about the pack's rows were recorded in the same transactions as
// those rows, so the head covers them.
//
// The checksum of a sheet is SHA-256 over its data rows (not the header) in
// order, each row encoded as the number of cells (4-byte big-endian), then
// for each cell its length in bytes (4-byte big-endian) and its canonical
// string in UTF-8. Length-prefixed, never delimiter-joined, so no cell
// content can move a boundary. An amount column gives two cells (amount,
// code). Canonical strings:
//
//   - text, timestamp: the cell's string, as written (see Text cells);
//   - date: YYYY-MM-DD;
//   - amount: the decimal with exactly the currency's minor units, no
//     thousands separator ("1234.50"; JPY "1235");
//   - integer: base-10 digits, "-" when negative;
//   - decimal: the plain decimal without trailing zeros ("0.92", "150"),
//     see Numbers for more than 15 digits;
//   - an empty cell: the empty string.
//
// CanonicalSHA256 computes it from canonical rows.
//
// # The writer
//
// Rows stream from pgx into the file; memory stays flat as rows grow.
// excelize writes each sheet's header row, column widths, frozen pane,
// autofilter, the styles, the Summary chart and the workbook. The data rows
// do not go through excelize: the pack writes them as worksheet XML itself,
// byte for byte what excelize's StreamWriter writes for the same cells
// (inline strings with its escaping, its 15-digit float formatting, its
// date serials; TestCellsAsExcelize compares the bytes), because
// excelize's per-cell work was most of a pack's CPU. Each row's XML and
// canonical bytes are built on the goroutine reading PostgreSQL and handed,
// in batches of 256 KB with at most 4 waiting, to a second goroutine per
// sheet that hashes the canonical bytes (the manifest checksum) and
// deflates the XML into a temporary file (removed when Write returns). So
// a pack uses two cores. NUMERIC columns are scanned from pgx's binary form
// (num, numOpt): a *decimal.Decimal target would go through text and back.
//
// The zip (deterministicZip) is written straight onto the destination with
// flate.BestSpeed, never copied in memory. Each worksheet entry is one
// deflate stream spliced from three parts — excelize's start (sync-flushed),
// the sheet's deflated data rows, excelize's end — with the CRC-32 combined
// from the parts'. The chain verification runs on its own goroutine and
// connection from the moment the head is known, while the sheets are
// written; the Manifest waits for its verdict.
//
// Nothing reaches the destination before every row has been read, so a
// database error leaves it untouched; a failure while the zip is written
// leaves a file without a central directory, which no reader takes for a
// pack. A sheet of more than Excel's 1 048 575 data rows is an error asking
// to narrow the scope.
//
// # Determinism
//
// The same scope and as-of give a byte-identical file: document properties
// (created, modified, creator, title) are fixed and dated as-of; every zip
// entry's time is as-of; rows come in the ORDER BY keys above; number-format
// styles are created in first-use order, which the row order fixes;
// Generator is a constant, not build info; ed25519 signatures are
// deterministic. excelize writes its worksheets in Go map order, so the zip
// writer holds them and writes them sorted by name at the end; the image
// extensions the chart adds to [Content_Types].xml, also in map order, are
// sorted. The deflate output depends on the bytes only.
//
// Caveat (the sealing bound): an event that occurred before as-of in a
// transaction that committed after a later one can be sealed after a pack
// was written, and a pack of the same as-of written after that names a
// later head. Byte-identity therefore holds once as-of is older than the
// longest write transaction plus the sealing bound (audit package: one
// sealing interval plus the backlog) — true for any past as-of an auditor
// asks for twice.
//
// # Verification (tranche pack verify)
//
// Verify re-derives the manifest from the file and checks what it says.
// Problems are findings about the file: every one found is listed (at most
// 20 cell problems per sheet); the command names the first and exits with
// status 2. Verify returns an error only when it cannot read
// (I/O, database, cancelled). The file alone (offline) is checked for:
//
//   - NOT_A_PACK: not a readable .xlsx (a zip that would unzip to more than
//     8 GiB is refused, not spooled out).
//   - SHEETS, HEADER: the sheets must be exactly Layout's, in order, each
//     with Layout's header row.
//   - MANIFEST: the Manifest is missing or malformed (a line without an
//     entry, a duplicate line, sheet lines other than one per sheet in
//     order, another format, a chain-head hash that is not 64 hex digits,
//     more than 1000 lines, a scope that does not parse for re-derivation).
//   - ROW_COUNT, CHECKSUM: every sheet before Manifest is read back row by
//     row (excelize Rows, flat memory) and its row count and checksum
//     recomputed from the RAW cell values, never the formatted text: an
//     amount is re-rendered with the minor units of the currency beside it,
//     a date from its serial (1900 or 1904 system, as the workbook says) or
//     ISO date, an integer as digits, a decimal as the shortest decimal that
//     round-trips its double, so a pack re-saved by a spreadsheet
//     application that writes 17 digits still verifies (the LibreOffice test
//     re-saves one). The checksum is per sheet, so an edited cell that still
//     looks valid is reported for its sheet, not its row.
//   - CELL: a cell no writer of this format writes, named by sheet, row and
//     column: an amount that is not the double nearest to a whole number of
//     minor units (1000.1 in a JPY column is reported, not rounded away), a
//     date that is not a whole day, a non-number in a numeric column, a
//     value beyond the layout's columns (which no checksum covers), an empty
//     row inside the data (a deleted row).
//   - The head's signature, as `tranche verify --since-head` checks it, with
//     a trusted public key only, never one read from the pack: the head's
//     key id, when given, must be that key's and the signature must verify,
//     else HEAD_BAD_SIGNATURE (a forged
//     sequence or hash fails here). HEAD_UNSIGNED, HEAD_MISSING (no head in
//     the pack) and HEAD_NO_TRUSTED_KEY (signed, but no key given) are
//     failures unless AllowUnsigned (--allow-unsigned), which accepts the
//     head on its hash alone and says so.
//   - PACK_CHAIN_FAILED: the pack's own chainVerification is not
//     "verified": the server wrote it over a chain that did not verify.
//   - The seal: MANIFEST_SEAL when the lines above manifest.sha256 no longer
//     hash to it; MANIFEST_BAD_SIGNATURE when the signature is not the
//     trusted key's (manifest.keyId) or does not verify over
//     ManifestMessage; MANIFEST_UNSIGNED when the manifest has no seal or no
//     signature; HEAD_NO_TRUSTED_KEY as for the head. The last two are
//     accepted with AllowUnsigned. With a valid seal the file alone shows
//     that sheets, scope, as-of and head are what the server wrote. After
//     manifest.sha256 only manifest.signature and manifest.keyId may follow
//     (anything else is MANIFEST_SEAL: the seal does not cover it), and a
//     Manifest cell beyond column D is a CELL problem.
//   - STRUCTURE: what changes what a reader sees without changing a cell's
//     value, found by reading the zip itself (worksheets streamed): a cell
//     formula (a reader recomputes it over the cached value the checksums
//     read), a hidden sheet, row or column, a number format that scales
//     (a trailing comma, percent), hides (an empty section) or prints digits
//     of its own, a macro or other binary part, two parts of one name.
//     Number formats are checked for what they do, not against the writer's
//     list, so a pack re-saved by a spreadsheet application still passes:
//     a format that scales, hides, colours, has conditions, prints digits or
//     a sign of its own, or drops the minus sign of negative values. Parts
//     outside the set a pack (or an application saving it again) has are
//     refused: a worksheet moved elsewhere, macros, embedded objects, a
//     calculation chain. Attributes are matched in either quotes, with any
//     white space and namespace prefix; entities in formats are decoded.
//     Not seen offline: a cell pointed at a built-in format (a percent
//     style that LibreOffice's own styles declare anyway), a cell style
//     switched between the pack's own formats; the byte comparison with the
//     database (NOT_IDENTICAL) sees both.
//
// With database access (the CLI uses the database `tranche verify` would,
// unless --offline):
//
//   - Chain: the live chain must extend the head (audit Store.VerifySince:
//     the hash at the head's sequence is the manifest's and the chain
//     verifies to its end); a failure carries the sequence and audit's code
//     (HEAD_MISMATCH, HEAD_BEYOND_END, HASH_MISMATCH, BROKEN_LINK, GAP,
//     REORDERED). Offline the report says the chain was not checked, which
//     is not a failure: an auditor offline checks what the file can show.
//   - Re-derivation (VerifyOptions.Rederive; --no-rederive skips it): the
//     pack is written again for the manifest's scope and as-of and every
//     sheet compared row by row in canonical form, naming the first sheet,
//     row and column that differ (REDERIVED_MISMATCH). It catches a database
//     rewritten after the pack and names the row an edit is in; it costs a
//     full pack write. The sealing-bound caveat of Determinism applies to
//     the sheets built from the audit trail when as-of is that recent.
//   - NOT_IDENTICAL: every value matches, but the file is not the pack
//     written again — compared part by part on content (the zip's own
//     compression aside), the Manifest line by line without its four
//     signature lines and its seal (the verifier need not hold the signing
//     key, so its pack may be unsigned; the seal is checked on its own): its
//     presentation was changed (a cell's style switched, a column narrowed)
//     or another application saved it. Packs are deterministic, so this is
//     the strongest check there is.
//
// Re-derivation writes the pack through Write, which seals pending events
// first: it needs the primary, not a read-only replica.
//
// A pack saved again by LibreOffice (shared strings, its own styles) still
// verifies offline: the checksums depend on cell values only. With the
// database it is NOT_IDENTICAL: it is no longer the file the server wrote.
//
// # Delivery
//
// REST
// GET /v1/audit-packs:download?roadmapId=…[&donorOrgId=…][&grantId=…][&from=…][&to=…][&asOf=…]
// answers with the file (attachment named by
// scope and as-of, Content-Length, Repr-Digest); gRPC
// AuditPackService.DownloadAuditPack streams the same bytes in 64 KiB
// pieces, the first carrying name, size and SHA-256; `tranche pack
// --roadmap … -o FILE` writes it from the database directly, with progress
// on stderr. The server builds the whole pack into a temporary file before
// sending, so any failure is an ordinary error status, never a truncated
// file that looks complete; the temporary file is unlinked as soon as it
// is created, so nothing of it outlives the call, even a killed server. A
// future asOf, or one with a UTC offset beyond ±23:59, is refused. At most
// two packs are built at once and eight more wait (for as long as their
// clients do); more are RESOURCE_EXHAUSTED: a build holds its snapshot's
// connection while it takes more from the pool (sealing, the head, the
// verification alongside), so unbounded builds could hold every
// connection, each waiting for another, and stop the service.
//
// Who may download what (internal/server/pack.go, AuthorisePack):
// auditors, coordinators and admins any scope; a donor only a scope
// narrowed to itself (its organisation as donorOrgId, or a grant it gives;
// the pack is then narrowed to it); an implementer only the pack of a grant
// it receives; anyone else PERMISSION_DENIED. A grant the caller may not
// read is NOT_FOUND; a grant of another roadmap or donor is
// INVALID_ARGUMENT, since its empty pack would read as "nothing happened".
//
// # Limits
//
//   - Excel holds 1 048 575 data rows per sheet; a larger sheet is an error
//     asking to narrow the scope (a donor, a grant, a value-date period).
//   - Milestones as of: milestone_status_history holds status changes, not
//     the status a milestone was created with; before its first change the
//     status is that of its creation audit event, PLANNED when there is none
//     (rows loaded outside the API).
//   - Allocations as of: per grant, the latest allocation set made by
//     as-of, dated by its rows' created_at or, for a set that emptied the
//     allocations, by the grant's audit event in the same transaction;
//     without that event an emptied set is not seen and the set before it
//     stays in force.
//   - Flags: subjects and grant ids are not versioned (a detection run
//     refreshes them in place), so they, and the narrowing by donor or
//     grant, are the flag's current ones, not those at as-of: a donor's
//     pack of a past as-of can miss a flag that involved it then, or show a
//     flag (with its evidence as of then) that involves it only now.
//   - Amounts of more than 15 significant digits (10^13 or more in a
//     two-decimal currency) are exact text cells: a spreadsheet's SUM and
//     the Summary chart skip them.
//   - Byte-identity holds only beyond the sealing bound (see Determinism).
//   - A text cell holds at most 32 767 UTF-16 units; longer text is cut and
//     marked (see Text cells).
//
// # Speed
//
// Target (DESIGN section 10, issue 10): a pack of 1 000 000 journal entries
// plus their audit events in at most 5 × the time of COPY of the same
// journal rows to CSV, at most 150 MB peak RSS. Measured with
//
//	PACK_BENCH_ROWS=N go test -run '^$' -bench BenchmarkPack -benchtime 1x -timeout 30m ./reports/
//
// on a shared 2-core machine, so the figures vary with its load (the load
// average of the minute is beside each; COPY slows with load too, the ratio
// less so). The rows are bulk-loaded in batches of 1000 with one sealed
// audit event per batch and grant, as RecordBatch writes them: at 1M
// entries 1 019 events holding 536 MB of change JSON, all in the chain
// verification; the COPY counts the journal rows only (the same statement
// as the pack's Transactions query, in the same run).
//
// Final figures, 1 000 000 rows, three runs on the quiet machine (load
// 1.5-1.6): pack 12.35, 12.44, 12.55 s; COPY 2.82-2.86 s; ratio 4.32-4.46
// (target ≤ 5: met); peak RSS of the packs 67-68 MB (target ≤ 150 MB: met).
// Where the 12.4 s go (the benchmark logs them through Source.Progress):
// Summary 0.3 s, Grants 0.55 s, Transactions 3.5 s to its first 10 000 rows
// (PostgreSQL's sort, the chain verification running beside it) and 5.8 s
// for the rest, Reconciliation 0.2 s, Audit Trail 1.7 s, FX Rates 0.4 s,
// the zip 0.03 s.
//
// With one audit event per entry instead (PACK_BENCH_BATCH=1: 1 000 018
// one-entry batch events, 645 MB of change JSON): pack 36.0 s, COPY 2.86 s,
// ratio 12.6, 74 MB — not met. The pack then has twice the rows (a million
// in Transactions, a million in Audit Trail), and the Audit Trail's walk
// with a scope test per event takes 21.8 s (it was 34.5 s while a batch's
// grant was found with a regular expression). Recording a grant (or
// roadmap) on each event, indexed with the sequence, would let the sheet be
// read as a range instead (see follow-ups). Later runs of the batched
// shape: 12.61 s, 4.50 ×, 68 MB; and, once Summary and Reconciliation
// shared one reconciliation per grant (Reconciliation 0.2 s → 0.00 s),
// 13.15 s, 4.73 ×, 66 MB and 12.87 s, 4.49 ×, 68 MB.
//
// How it got there. The first writer (every cell through excelize's
// StreamWriter, one core) took 26 s at 1M rows without audit events, 9.2 ×
// COPY, 86 MB. Writing the data rows as XML directly and hashing and
// deflating them on a second goroutine halved it; reading NUMERIC from
// pgx's binary form cut scanning CPU by 60 %. With the Audit Trail sheet
// built, a batch event's 525 KB change made the sheet cost 13.6 s (25 s in
// all, 9 × COPY): PostgreSQL parsed every change as JSON to find its grant,
// and sent all 535 MB to be cut to a cell. Reading the grant from the
// change's head and sending only a cell's worth, with size and SHA-256
// computed in PostgreSQL, brought it to 1.7 s.
//
// Audit Trail statement with one event per entry, measured at 100 000
// journal entries with one sealed event each (EXPLAIN ANALYZE): 0.39 s when the planner hashes the
// roadmap's entry ids, 0.59 s with a primary-key look-up per event (its
// choice once the set outgrows work_mem), 0.87 and 1.07 s with JIT on —
// hence JIT off. A donor's pack walks every event too (0.27 s per 100 000).
// So about 4-6 s at 1M events, linear, in flat memory.
//
// Verification: excelize's row reader (encoding/xml) is the cost, about
// 11 000 Transactions rows a second; a 200 000-row pack verified offline in
// 18 s at 48 MB peak RSS (whole process), so a full 1 048 575-row sheet
// takes about a minute and a half. Re-deriving adds a pack write and a
// second read.
//
// Tried and not kept: work_mem for the Transactions sort (at 1M rows 4 MB
// spills to an external merge in three processes, 2.9 s; 64 MB still
// spills, 2.2 s; 256 MB sorts in memory in one process, 3.2 s and 230 MB of
// server memory). An index on transactions (value_date, recorded_at, id)
// would stream rows without the sort, but costs every journal write and
// speeds the COPY baseline the same way.
//
// # Not done / follow-ups
//
//   - Continuation sheets (Transactions 2, …) for scopes beyond Excel's
//     1 048 575 rows; now an error asking to narrow the scope.
//   - The Audit Trail with one event per entry: 21.8 s at 1M events
//     (Speed). A migration recording an event's roadmap and grant in
//     columns of their own, with (roadmap_id, seq) and (grant_id, seq)
//     indexes, would make the sheet a range scan. JIT probably costs the
//     pack's other large statements about half a second each too.
//   - The Manifest sheet's presentation: compared on values (signature
//     lines aside) with the database, not byte for byte, since the
//     verifier's own pack may be unsigned.
//   - A numeric cell retyped from an exact text cell (a value of more than
//     15 digits) still verifies: the verifier reads values, not cell types.
//   - Chain verification is O(chain) per pack: off the critical path, but
//     2.5 s of CPU at 1M entries, and bounding it to the head saves nothing
//     for an as-of of now. In internal/audit: skip re-running json.Valid on
//     each change (the stored hash already proves the bytes; about −60 %),
//     or verify from a stored verified checkpoint.
//   - klauspost/compress's flate would roughly halve the deflate CPU; a new
//     dependency, not added.
//   - A hand-written SpreadsheetML reader would make verification faster,
//     but it would have to read whatever any spreadsheet application writes.
//   - Versioned flag subjects (on each flag_events row), so Flags narrows
//     by the subjects as of as-of (see Limits).
//   - The head at an old as-of is found by walking the sequence index back
//     from the end (occurred_at has a BRIN index only); a B-tree on
//     (occurred_at, seq) would make a pack of a year ago start at once.
//   - Re-derivation from a read-only replica (Write without sealing).
package reports
