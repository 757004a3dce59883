// Package fts reads pages of OCHA's Financial Tracking Service public flow API
// (/v1/public/fts/flow) into plain Go values, and classifies them so that no
// money is counted twice and the import reproduces the totals FTS itself
// publishes. It writes nothing: the ledger import wires Flow, Classification,
// GrantKey and Provenance into organisations, grants and journal entries.
//
// # Pages
//
// A response comes in pages ({"status", "data": {"incoming", "outgoing",
// "internal", "flows"}, "meta": {"count", "nextLink"}}). [Parse] takes the
// pages of one response as one import: flows are concatenated; a flow id on
// two pages with byte-identical content (compacted JSON) is kept once, with
// different content it is an error; pages whose envelope totals or meta.count
// differ are not one response and are refused. A flow count short of
// meta.count is noted (a page is missing). Numbers are read as text into
// shopspring decimals (never floats), in plain notation only: an exponent
// (1e400), more than 15 integer digits or more than 40 characters is a
// problem naming the flow and field.
//
// A file that cannot be read as a page (truncated or malformed JSON, a NUL
// byte, invalid UTF-8, no data.flows) is an error naming the file and the
// line and column. A flow that cannot be read is a [Problem] naming the flow
// id (or its index when the id is unreadable) and the field; the flow is left
// out of Flows and [Import.Err] is non-nil, so the import is all or nothing
// per file unless the caller skips invalid records (listing Problems).
//
// # Mapping
//
//	FTS field                         Tranche (Flow field → ledger)
//	--------------------------------  ---------------------------------------------------------------
//	id                                ID; provenance record id; grant key (agreement) when not a child
//	versionId                         Version; provenance version (a newer version → correcting
//	                                  entries, decided by the next session)
//	amountUSD                         AmountUSD: the reported reporting-currency (USD) value, what FTS
//	                                  totals; rounded half-even to cents if it has more decimals
//	originalAmount, originalCurrency  Amount, Currency: the journal entry's amount in the grant's
//	                                  agreement currency; ISO 4217 checked; more decimals than the
//	                                  currency has → rounded half-even, source text in Rounded
//	(no originalCurrency/Amount)      Amount = amountUSD, Currency = USD; Inferred: amount, currency
//	originalCurrency, no amount       as above, plus a Note (one real flow: 207176, JPY)
//	exchangeRate                      ExchangeRate: units of original currency per USD (the
//	                                  transaction's FX rate; quote currency USD); must be > 0
//	(computed)                        ComputedUSD = originalAmount / exchangeRate, half-even to cents,
//	                                  kept beside the reported value; |difference| > 1 USD listed by
//	                                  [Variances]
//	status                            Status; EntryType: pledge → PLEDGE, commitment → COMMITMENT,
//	                                  paid → DISBURSEMENT; anything else is a problem
//	flowType                          FlowType: Standard, Parked, Carryover, Pass through
//	parentFlowId, childFlowIds        ParentFlowID, ChildFlowIDs (decimal text)
//	date                              Date (YYYY-MM-DD as written): the entry's value date
//	decisionDate                      DecisionDate (YYYY-MM-DD or "")
//	description                       Description (≤ 64 KiB, no NUL): grant title / entry note
//	refCode                           RefCode (trimmed): the entry's reference; see repeated codes
//	boundary, onBoundary              Boundary, OnBoundary: counting rules below
//	contributionType, newMoney        ContributionType, NewMoney: kept for the report, not counted
//	                                  differently (FTS totals include in-kind and old money)
//	sourceObjects[]                   Source, by type: Organizations (donor = the first), Locations,
//	                                  UsageYears, Plans, GlobalClusters, Clusters, Emergencies,
//	                                  Projects; unknown types in Other
//	destinationObjects[]              Destination, likewise (recipient = the first Organization);
//	                                  GlobalCluster/Cluster is what a milestone match can use
//	Organization id, name             organisation matched by FTS organisation id, name as given
//	(file)                            Provenance: source kind "fts", file SHA-256, page (1-based in
//	                                  the import), position in data.flows, flow id, version
//
// Skipped, and why: createdAt, updatedAt and firstReportedDate (FTS's own
// bookkeeping; versionId orders versions); budgetYear (the usage year
// objects say which year the money is for); grandBargainEarmarkingType,
// keywords, method, organizationSubTypes (descriptive, no ledger field);
// reportDetails (who reported to FTS, not a party to the money).
//
// Donor and recipient: the first Organization of sourceObjects and of
// destinationObjects. FTS gives at most one per side in practice (every flow
// in the Afghanistan 2020 pages); with several, the first is the party, the
// others stay in Organizations and a Note says so. A child of a parked flow
// whose own side names no organisation takes its parent's (DonorFrom or
// RecipientFrom "parent": inferred). Otherwise the party is unknown (10 real
// flows lack one side, e.g. ECHO's parked allocations have no recipient yet).
//
// # Grants
//
// A [GrantKey] is one donor → recipient agreement: the flow itself, or for a
// child of a parked flow the parked parent, split by the child's recipient
// (a parked allocation is shared out to several recipients; 204322, ECHO's
// 2020 Afghanistan allocation, has 16 children). [Grants] groups flows by key
// and proposes a reference unique per donor: "FTS-" + agreement flow id, plus
// "-" + recipient id when the agreement has several recipients. Flows that
// merely share a refCode (instalments to one recipient, a pooled fund's
// cluster split) are separate FTS agreements and stay separate grants; the
// repeated-refCode report shows them.
//
// # No double counting
//
// [Classify] decides for every flow whether it counts in the incoming totals:
//
//   - boundary internal: not counted. The money was counted when it entered
//     the location (e.g. the Afghanistan Humanitarian Fund passing a donor's
//     contribution to an NGO). 156 flows, 71 958 119 USD.
//   - boundary outgoing: not counted (none in the sample).
//   - onBoundary shared: not counted. The flow spans several locations or
//     usage years (Japan → IFRC for six countries; Denmark → Save the Children
//     over 2018–2020), so only an unknown part of it is this query's; FTS
//     leaves it out of the location's total. 17 flows, 28 526 312 USD.
//   - parked parent (flowType Parked with childFlowIds): counted. Its
//     amountUSD is the remainder not yet split into children, so parent and
//     children are both counted without counting anything twice. The data
//     shows it: 18 of the 23 parked parents stand at 0; UK 220524 stands at 23 M GBP
//     with a 7 M GBP child (a 30 M GBP decision); and 214923, 208329 and
//     210862 are below their own children's sum, which a parent still holding
//     its children's money could not be. Counting the children and dropping
//     the parents, or the reverse, misses the source's total.
//   - child of a parked flow, and every other incoming flow: counted.
//   - status pledge: counted in the pledge total, not the funding total.
//
// # Totals rule
//
// [ComputeTotals] with [Totals.Check] reproduces the envelope's figures:
//
//	data.incoming.fundingTotal = Σ amountUSD (reported, not computed) over flows with
//	    boundary = incoming, onBoundary ≠ shared, status ∈ {commitment, paid}
//	data.incoming.pledgeTotal  = the same sum over status = pledge
//	data.incoming.flowCount    = number of boundary = incoming flows (shared ones included)
//	data.internal.flowCount    = number of boundary = internal flows
//
// Found by experiment on the Afghanistan 2020 pages: all 328 incoming flows
// sum to 754 117 611 USD; the difference from fundingTotal, 28 526 312, is
// exactly the 17 shared flows; without them, 311 flows give 725 591 299 USD
// (paid 428 966 359 + commitment 296 624 940), fundingTotal to the dollar.
// The tests also check that the plausible wrong rules (counting shared or
// internal flows, dropping parked parents, paid only) miss it. Totals per
// status are in reported USD; per currency both in the agreement currency
// (original, or USD where inferred) and in reported USD.
//
// # Repeated reference codes
//
// [RepeatedRefCodes] lists every refCode on more than one flow (61 in the
// sample) with a kind, so detection can tell one agreement from duplicate
// funding:
//
//   - parent-child (21): a parked flow and the flows split from it, or
//     children of one parked flow: one agreement, never a duplicate.
//   - parked family (5): ECHO's codes over its two 2020 parked allocations
//     (204322, 214923) and their children: one decision allocated in parts.
//   - split agreement (27): same donor and recipient, different amounts or
//     dates: instalments, or a pooled fund's allocation split by cluster.
//   - different parties (6): the same code between different donors or
//     recipients (a donor programme code over several recipients, or an
//     implementer's code used by two funders).
//   - same amount (2): two flows that are not parked parents with the same
//     donor, recipient, amount and date (AHF → Islamic Relief, 221955/221956
//     at 249 993 USD and 213767/213768 at 242 296 USD, the second pair
//     siblings under parked 210862): possible duplicates for detection to
//     flag with this evidence; a reviewer may dismiss them (the codes read
//     CPiE-GBV: likely one allocation split over two protection areas).
package fts
