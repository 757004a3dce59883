package detect

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// duplicateTransactionSQL finds pairs of live entries that look like one
// payment recorded twice. Entries are compared only within one partition:
// the same donor→recipient pair, agreement currency, type and sign (a
// pledge or a commitment only within its own grant: two grants of one pair
// pledging equal sums are two agreements, not a duplicate). So equal amounts
// from different donors never meet.
//
// By amount: agreement amounts within $5 (a share of the larger) and value
// dates at most $4 days apart, unless both normalised references are
// non-empty and differ (the instalments of a schedule). Candidates come from
// a grid, not from all pairs: each entry falls into a bucket of width $3 on
// the log of its amount (2.5 × ln(1 + tolerance), so two amounts within the
// tolerance share a bucket in at least one of two griddings offset by half a
// bucket; h is the half-bucket index, h >> 1 and (h + 1) >> 1 the buckets of
// the two griddings, one logarithm per entry), and each entry is compared,
// in value-date order, with the K = 3 entries before it in its bucket (lag
// 1..3). One would not do: an unrelated entry between two copies (another
// instalment with its own reference, a payment of a close amount) hid the
// duplicate. Three let two unrelated entries of one pair, bucket and window
// sit between copies, which covers a pair's ordinary traffic within a few
// days; each further one costs one more comparison per entry and gridding.
// Every entry yields at most K candidates per gridding: a hot key (many
// equal amounts of one pair) costs a sort, never a square. The float
// logarithm only chooses buckets; the tolerance itself is checked on the
// NUMERIC amounts. With a zero tolerance the bucket is the
// amount itself (the second gridding then only adds comparisons of equal
// amounts). Expenditures always carry a document reference, so for them
// the amount rule adds nothing to the reference rule unless the reference
// normalises to nothing: the amount rule sorts the other entries only, the
// reference rule its own, and no entry is sorted three times. Partition
// keys are uuids, numbers and text compared bytewise (COLLATE "C": equality
// is all they need).
//
// By reference: disbursements or expenditures of one partition whose
// normalised references are equal, value dates at most $6 days apart, again
// each with the one before it. Receipts are left out: several receipts may
// cite one disbursement's reference (partial receipts, which reconciliation
// sums), and a receipt in excess shows as a RECEIPT_MISMATCH.
//
// A reversal and its original are never candidates: live drops both.
var duplicateTransactionSQL = `WITH ` + liveCTE("PLEDGE", "COMMITMENT", "DISBURSEMENT", "RECEIPT", "EXPENDITURE") + `,
	c AS MATERIALIZED (
	  SELECT id, type COLLATE "C" AS type, value_date, agreement_amount AS a, nref COLLATE "C" AS nref,
	         CASE WHEN type IN ('PLEDGE', 'COMMITMENT') THEN grant_id ELSE donor_org_id END AS k1,
	         CASE WHEN type IN ('PLEDGE', 'COMMITMENT') THEN NULL ELSE recipient_org_id END AS k2,
	         agreement_currency COLLATE "C" AS cur, agreement_amount < 0 AS sg,
	         CASE WHEN $3::float8 > 0 THEN floor(2 * ln(greatest(abs(agreement_amount)::float8, 1e-9)) / $3::float8)::bigint END AS h,
	         CASE WHEN $3::float8 = 0 THEN abs(agreement_amount) END AS exact
	  FROM live
	), wa AS (
	  SELECT id, value_date, a, nref,
	         lag(id, 1) OVER w0 AS id01, lag(value_date, 1) OVER w0 AS d01, lag(a, 1) OVER w0 AS a01, lag(nref, 1) OVER w0 AS r01,
	         lag(id, 2) OVER w0 AS id02, lag(value_date, 2) OVER w0 AS d02, lag(a, 2) OVER w0 AS a02, lag(nref, 2) OVER w0 AS r02,
	         lag(id, 3) OVER w0 AS id03, lag(value_date, 3) OVER w0 AS d03, lag(a, 3) OVER w0 AS a03, lag(nref, 3) OVER w0 AS r03,
	         lag(id, 1) OVER w1 AS id11, lag(value_date, 1) OVER w1 AS d11, lag(a, 1) OVER w1 AS a11, lag(nref, 1) OVER w1 AS r11,
	         lag(id, 2) OVER w1 AS id12, lag(value_date, 2) OVER w1 AS d12, lag(a, 2) OVER w1 AS a12, lag(nref, 2) OVER w1 AS r12,
	         lag(id, 3) OVER w1 AS id13, lag(value_date, 3) OVER w1 AS d13, lag(a, 3) OVER w1 AS a13, lag(nref, 3) OVER w1 AS r13
	  FROM c WHERE type <> 'EXPENDITURE' OR nref = ''
	  WINDOW w0 AS (PARTITION BY k1, k2, cur, type, sg, h >> 1, exact ORDER BY value_date, id),
	         w1 AS (PARTITION BY k1, k2, cur, type, sg, (h + 1) >> 1 ORDER BY value_date, id)
	), wr AS (
	  SELECT id, value_date, lag(id) OVER wr AS idr, lag(value_date) OVER wr AS dr
	  FROM c WHERE nref <> '' AND type IN ('DISBURSEMENT', 'EXPENDITURE')
	  WINDOW wr AS (PARTITION BY k1, k2, cur, type, sg, nref ORDER BY value_date, id)
	)
	SELECT v.p::text, wa.id::text, 'amount'
	FROM wa, LATERAL (VALUES (id01, d01, a01, r01), (id02, d02, a02, r02), (id03, d03, a03, r03),
	                         (id11, d11, a11, r11), (id12, d12, a12, r12), (id13, d13, a13, r13)) AS v(p, d, pa, r)
	WHERE v.p IS NOT NULL AND wa.value_date - v.d <= $4 AND abs(wa.a - v.pa) <= $5::numeric * greatest(abs(wa.a), abs(v.pa))
	  AND (wa.nref = '' OR v.r = '' OR wa.nref = v.r)
	UNION
	SELECT idr::text, id::text, 'reference' FROM wr WHERE idr IS NOT NULL AND value_date - dr <= $6`

// bucketWidth is the log-amount bucket width for a tolerance (see
// duplicateTransactionSQL); zero means exact amounts.
func bucketWidth(tol decimal.Decimal) float64 {
	if !tol.IsPositive() {
		return 0
	}
	return 2.5 * math.Log1p(tol.InexactFloat64())
}

func duplicateTransactionArgs(s scope) []any {
	c := s.Config
	return []any{s.RoadmapID, s.AsOf, bucketWidth(c.DuplicateAmountTolerance), c.DuplicateWindowDays, c.DuplicateAmountTolerance,
		c.DuplicateReferenceWindowDays}
}

// findDuplicateTransactions: DUPLICATE_TRANSACTION. The pairs SQL finds are
// joined into groups (three copies of one payment are one finding, keyed by
// the sorted ids of the group's entries). So a new member (a third copy
// recorded after two were flagged) makes a new finding and the old flag
// resolves: its review does not carry over. That is deliberate: a review
// covers the entries it saw, and a dismissal of two distinct payments says
// nothing about a third. Severity: HIGH for disbursements
// and expenditures (money may have moved or been claimed twice), MEDIUM for
// receipts, LOW for pledges and commitments (figures, not payments).
func findDuplicateTransactions(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := q.Query(ctx, duplicateTransactionSQL, duplicateTransactionArgs(s)...)
	if err != nil {
		return nil, err
	}
	type pair struct{ a, b, why string }
	pairs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pair, error) {
		var p pair
		return p, r.Scan(&p.a, &p.b, &p.why)
	})
	if err != nil {
		return nil, err
	}
	// Union-find over the pairs found.
	parent := map[string]string{}
	var root func(string) string
	root = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := root(p)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	for _, p := range pairs {
		ra, rb := root(p.a), root(p.b)
		if ra != rb {
			parent[max(ra, rb)] = min(ra, rb)
		}
	}
	groups := map[string][]string{}
	why := map[string]map[string]bool{}
	var ids []string
	for id := range parent {
		r := root(id)
		groups[r] = append(groups[r], id)
		ids = append(ids, id)
	}
	for _, p := range pairs {
		r := root(p.a)
		if why[r] == nil {
			why[r] = map[string]bool{}
		}
		why[r][p.why] = true
	}
	entries, err := loadEntries(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	c := s.Config
	var out []finding
	for r, members := range groups {
		slices.Sort(members)
		var subj subjects
		var ev []map[string]any
		for _, id := range members {
			e := entries[id]
			subj.entry(e)
			ev = append(ev, e.evidence(s.ReportingCurrency))
		}
		slices.SortFunc(ev, func(a, b map[string]any) int {
			if c := strings.Compare(a["valueDate"].(string), b["valueDate"].(string)); c != 0 {
				return c
			}
			return strings.Compare(a["transactionId"].(string), b["transactionId"].(string))
		})
		matched := slices.Sorted(maps.Keys(why[r]))
		first := entries[members[0]]
		sev := Low
		switch first.Type {
		case "DISBURSEMENT", "EXPENDITURE":
			sev = High
		case "RECEIPT":
			sev = Medium
		}
		out = append(out, finding{
			Kind: DuplicateTransaction, Severity: sev, Key: sortedKey("", members), Subjects: subj.sorted(),
			Evidence: map[string]any{
				"type": first.Type, "entries": ev, "matchedBy": matched,
				"thresholds": map[string]any{
					"duplicateWindowDays":          c.DuplicateWindowDays,
					"duplicateAmountTolerance":     c.DuplicateAmountTolerance.String(),
					"duplicateReferenceWindowDays": c.DuplicateReferenceWindowDays,
				},
			},
			Explanation: fmt.Sprintf("%d %s entries %s look like one entry recorded %d times (matching by %s); reverse the extra entries, or dismiss this flag with a note if they are distinct.",
				len(members), strings.ToLower(first.Type), whose(first.Type), len(members), strings.Join(matched, " and ")),
		})
	}
	slices.SortFunc(out, func(a, b finding) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// duplicateExpenditureSQL finds live expenditures whose normalised document
// reference the same recipient has claimed against two or more grants: the
// group is (recipient, normalised reference), and it counts when its
// entries span more than one grant. Two implementers may well both hold an
// invoice numbered 1; one implementer claiming one invoice twice is double
// dipping. Expenditures always carry a reference (the ledger requires one).
var duplicateExpenditureSQL = `WITH ` + liveCTE("EXPENDITURE") + `,
	e AS (
	  SELECT id, grant_id, recipient_org_id, nref COLLATE "C" AS nref FROM live
	), x AS (
	  SELECT e.*, min(grant_id::text COLLATE "C") OVER p AS g1, max(grant_id::text COLLATE "C") OVER p AS g2
	  FROM e WHERE nref <> ''
	  WINDOW p AS (PARTITION BY recipient_org_id, nref)
	)
	SELECT recipient_org_id::text, nref, id::text FROM x WHERE g1 <> g2 ORDER BY recipient_org_id, nref, id`

// findDuplicateExpenditures: DUPLICATE_EXPENDITURE, one finding per
// (recipient, reference) group, keyed by the sorted ids of its entries (a
// further claim is a new finding: a review covers the claims it saw).
// Severity HIGH: the same cost is charged to two donors.
func findDuplicateExpenditures(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := q.Query(ctx, duplicateExpenditureSQL, s.RoadmapID, s.AsOf)
	if err != nil {
		return nil, err
	}
	type claim struct{ recipient, ref, id string }
	claims, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim, error) {
		var c claim
		return c, r.Scan(&c.recipient, &c.ref, &c.id)
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(claims))
	for i, c := range claims {
		ids[i] = c.id
	}
	entries, err := loadEntries(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	var out []finding
	for len(claims) > 0 {
		n := 1
		for n < len(claims) && claims[n].recipient == claims[0].recipient && claims[n].ref == claims[0].ref {
			n++
		}
		group := claims[:n]
		claims = claims[n:]
		var subj subjects
		var ev []map[string]any
		var members []string
		perGrant := map[string]decimal.Decimal{}
		var grantOrder []string
		total := decimal.Zero
		for _, c := range group {
			e := entries[c.id]
			subj.entry(e)
			ev = append(ev, e.evidence(s.ReportingCurrency))
			members = append(members, c.id)
			if _, ok := perGrant[e.GrantID]; !ok {
				grantOrder = append(grantOrder, e.GrantID)
			}
			perGrant[e.GrantID] = perGrant[e.GrantID].Add(e.Reporting)
			total = total.Add(e.Reporting)
		}
		slices.Sort(grantOrder)
		var grants []map[string]any
		for _, g := range grantOrder {
			grants = append(grants, map[string]any{"grantId": g, "claimedReporting": moneyJSON(perGrant[g], s.ReportingCurrency)})
		}
		first := entries[group[0].id]
		out = append(out, finding{
			Kind: DuplicateExpenditure, Severity: High, Key: sortedKey("", members), Subjects: subj.sorted(),
			Evidence: map[string]any{
				"normalizedReference": group[0].ref, "recipientOrgId": group[0].recipient, "entries": ev, "grants": grants,
				"totalClaimedReporting": moneyJSON(total, s.ReportingCurrency), "threshold": "the same document on 2 or more grants",
			},
			Explanation: fmt.Sprintf("Document %q is claimed as an expenditure against %d grants by the same recipient; ask the recipient which grant it belongs to and have the other claims reversed.",
				first.Reference, len(grantOrder)),
		})
	}
	return out, nil
}

// whose says, for an explanation, which entries a duplicate's partition
// compares (see duplicateTransactionSQL).
func whose(entryType string) string {
	switch entryType {
	case "PLEDGE", "COMMITMENT":
		return "of one grant"
	case "EXPENDITURE":
		return "recorded by one recipient on grants from one donor"
	case "RECEIPT":
		return "confirmed by one recipient for money from one donor"
	}
	return "from one donor to one recipient"
}
