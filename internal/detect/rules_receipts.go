package detect

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// receiptMismatchSQL applies reconciliation's matching (internal/ledger,
// reconcile.go: the comment "How receipts match disbursements", liveFlow and
// matchGroup) to the live flows of the roadmap as of $2: a grant's
// disbursements and receipts fall into groups by payment reference, as
// entered (reconciliation does not normalise it). In a group with a
// non-empty reference the first disbursement (in recording order, which is
// id order: ids are UUIDv7) takes all the group's receipts and any later one
// is missing its receipt; a group without a disbursement, or the empty
// reference, leaves its receipts without a disbursement (and the empty
// reference's disbursements without receipts). So what the reconciliation
// page shows as MISSING_RECEIPT, AMOUNT_VARIANCE and
// RECEIPT_WITHOUT_DISBURSEMENT is what this rule flags, with two
// thresholds on top: a disbursement is only missing its receipt once its
// value date is $3 (ReceiptWindowDays before the as-of day) or earlier, and
// a matched pair only differs when its reporting-currency amounts differ by
// more than $4 (a share of the disbursement), which absorbs FX movement
// between the two value dates.
//
// One pass: window aggregates over each (grant, reference) group give every
// flow its group's counts and receipts' total, and its rank among the
// group's flows of its type; no join between groups and flows.
var receiptMismatchSQL = `WITH ` + liveCTE("DISBURSEMENT", "RECEIPT") + `,
	x AS (
	  SELECT id, type, reference, reporting_amount, value_date,
	         count(*) FILTER (WHERE type = 'DISBURSEMENT') OVER g AS nd,
	         count(*) FILTER (WHERE type = 'RECEIPT') OVER g AS nr,
	         sum(reporting_amount) FILTER (WHERE type = 'RECEIPT') OVER g AS rsum,
	         row_number() OVER (PARTITION BY grant_id, reference COLLATE "C", type ORDER BY id) AS rn
	  FROM live
	  WINDOW g AS (PARTITION BY grant_id, reference COLLATE "C")
	), y AS (
	  SELECT id, CASE
	           WHEN type = 'RECEIPT' THEN CASE WHEN nd = 0 OR reference = '' THEN 'RECEIPT_WITHOUT_DISBURSEMENT' END
	           WHEN rn > 1 OR reference = '' OR nr = 0 THEN CASE WHEN value_date <= $3::date THEN 'MISSING_RECEIPT' END
	           WHEN abs(rsum - reporting_amount) > $4::numeric * abs(reporting_amount) THEN 'AMOUNT_VARIANCE'
	         END AS status
	  FROM x
	)
	SELECT status, id::text FROM y WHERE status IS NOT NULL`

// receiptsOfSQL reads the live receipts (as of $4) that a matched
// disbursement $3 takes: those of its grant $1 citing its reference $2, by
// transactions_flows, for the few disbursements whose amounts differ.
const receiptsOfSQL = `SELECT k.did, t.id::text
	FROM unnest($1::uuid[], $2::text[], $3::text[]) AS k(grant_id, reference, did)
	JOIN transactions t ON t.grant_id = k.grant_id AND t.reference = k.reference AND t.bucket IN ('DISBURSEMENT', 'RECEIPT')
	WHERE t.type = 'RECEIPT' AND t.value_date <= $4::date
	  AND NOT EXISTS (SELECT FROM transactions r WHERE r.reverses_id = t.id AND r.value_date <= $4::date)
	ORDER BY k.did, t.id`

func receiptMismatchArgs(s scope) []any {
	return []any{s.RoadmapID, s.AsOf, s.AsOf.AddDate(0, 0, -s.Config.ReceiptWindowDays), s.Config.ReceiptTolerance}
}

// findReceiptMismatches: RECEIPT_MISMATCH, one finding per disbursement
// missing its receipt (key "missing:" and its id), per matched disbursement
// whose receipts differ (key "variance:" and its id), and per receipt
// without a disbursement (key "orphan:" and its id). Severity: HIGH for a
// missing receipt (money left the donor and nobody confirms it arrived),
// MEDIUM for an amount difference and for a receipt without a disbursement
// (usually a disbursement not recorded, or a reference typed differently).
func findReceiptMismatches(ctx context.Context, q postgres.Querier, s scope) ([]finding, error) {
	rows, err := q.Query(ctx, receiptMismatchSQL, receiptMismatchArgs(s)...)
	if err != nil {
		return nil, err
	}
	type hit struct{ status, id string }
	hits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hit, error) {
		var h hit
		return h, r.Scan(&h.status, &h.id)
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.id)
	}
	entries, err := loadEntries(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	// The receipts of the disbursements whose amounts differ.
	var grants, refs, dids []string
	for _, h := range hits {
		if h.status == "AMOUNT_VARIANCE" {
			e := entries[h.id]
			grants, refs, dids = append(grants, e.GrantID), append(refs, e.Reference), append(dids, e.ID)
		}
	}
	receipts := map[string][]string{}
	if len(dids) > 0 {
		rows, err := q.Query(ctx, receiptsOfSQL, grants, refs, dids, s.AsOf)
		if err != nil {
			return nil, err
		}
		var rids []string
		for rows.Next() {
			var did, rid string
			if err := rows.Scan(&did, &rid); err != nil {
				rows.Close()
				return nil, err
			}
			receipts[did] = append(receipts[did], rid)
			rids = append(rids, rid)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		more, err := loadEntries(ctx, q, rids)
		if err != nil {
			return nil, err
		}
		for k, v := range more {
			entries[k] = v
		}
	}
	c := s.Config
	out := make([]finding, 0, len(hits))
	for _, h := range hits {
		e := entries[h.id]
		var subj subjects
		subj.entry(e)
		f := finding{Kind: ReceiptMismatch}
		ev := map[string]any{"status": h.status, "reference": e.Reference}
		switch h.status {
		case "MISSING_RECEIPT":
			days := int(s.AsOf.Sub(e.ValueDate).Hours() / 24)
			f.Severity, f.Key = High, "missing:"+h.id
			ev["disbursement"] = e.evidence(s.ReportingCurrency)
			ev["daysWithoutReceipt"] = days
			ev["threshold"] = map[string]any{"receiptWindowDays": c.ReceiptWindowDays}
			f.Explanation = fmt.Sprintf("The disbursement of %s %s on %s has no receipt after %d days (window %d); ask the recipient to confirm the money arrived, citing reference %q.",
				moneyJSON(e.Amount, e.Currency)["amount"], e.Currency, dayJSON(e.ValueDate), days, c.ReceiptWindowDays, e.Reference)
		case "AMOUNT_VARIANCE":
			f.Severity, f.Key = Medium, "variance:"+h.id
			received := decimal.Zero
			var rs []map[string]any
			for _, r := range receipts[h.id] {
				re := entries[r]
				subj.entry(re)
				received = received.Add(re.Reporting)
				rs = append(rs, re.evidence(s.ReportingCurrency))
			}
			diff := received.Sub(e.Reporting)
			ev["disbursement"] = e.evidence(s.ReportingCurrency)
			ev["receipts"] = rs
			ev["disbursedReporting"] = moneyJSON(e.Reporting, s.ReportingCurrency)
			ev["receivedReporting"] = moneyJSON(received, s.ReportingCurrency)
			ev["differenceReporting"] = moneyJSON(diff, s.ReportingCurrency)
			if !e.Reporting.IsZero() {
				ev["differenceShare"] = diff.Div(e.Reporting).Round(4).String()
			}
			ev["threshold"] = map[string]any{"receiptTolerance": c.ReceiptTolerance.String()}
			f.Explanation = fmt.Sprintf("Receipts for reference %q total %s %s against a disbursement of %s %s, more than %s%% apart; check for a missing or mistyped receipt or bank charges and record the correction.",
				e.Reference, money2(received, s.ReportingCurrency), s.ReportingCurrency, money2(e.Reporting, s.ReportingCurrency), s.ReportingCurrency,
				c.ReceiptTolerance.Mul(decimal.NewFromInt(100)).String())
		default:
			f.Severity, f.Key = Medium, "orphan:"+h.id
			ev["receipt"] = e.evidence(s.ReportingCurrency)
			f.Explanation = fmt.Sprintf("A receipt of %s %s on %s cites no recorded disbursement of its grant; ask the donor to record the disbursement or the recipient to correct the reference %q.",
				money2(e.Amount, e.Currency), e.Currency, dayJSON(e.ValueDate), e.Reference)
		}
		f.Evidence, f.Subjects = ev, subj.sorted()
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b finding) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return out, nil
}

// money2 is an amount as text in its currency's minor units.
func money2(d decimal.Decimal, currency string) string { return moneyJSON(d, currency)["amount"] }
