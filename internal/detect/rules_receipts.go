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
var receiptMismatchSQL = `WITH ` + liveCTE("DISBURSEMENT", "RECEIPT") + `,
	f AS (
	  SELECT id, grant_id, type, reference, reporting_amount, value_date FROM live
	), grp AS (
	  SELECT grant_id, reference,
	         count(*) FILTER (WHERE type = 'DISBURSEMENT') AS nd, count(*) FILTER (WHERE type = 'RECEIPT') AS nr,
	         sum(reporting_amount) FILTER (WHERE type = 'RECEIPT') AS rsum,
	         array_agg(id::text ORDER BY id) FILTER (WHERE type = 'RECEIPT') AS rids
	  FROM f GROUP BY grant_id, reference
	), d AS (
	  SELECT f.*, row_number() OVER (PARTITION BY grant_id, reference ORDER BY id) AS rn FROM f WHERE type = 'DISBURSEMENT'
	)
	SELECT 'MISSING_RECEIPT', d.id::text, '{}'::text[] FROM d JOIN grp USING (grant_id, reference)
	WHERE (d.rn > 1 OR d.reference = '' OR grp.nr = 0) AND d.value_date <= $3::date
	UNION ALL
	SELECT 'AMOUNT_VARIANCE', d.id::text, grp.rids FROM d JOIN grp USING (grant_id, reference)
	WHERE d.rn = 1 AND d.reference <> '' AND grp.nr > 0 AND abs(grp.rsum - d.reporting_amount) > $4::numeric * abs(d.reporting_amount)
	UNION ALL
	SELECT 'RECEIPT_WITHOUT_DISBURSEMENT', f.id::text, '{}'::text[] FROM f JOIN grp USING (grant_id, reference)
	WHERE f.type = 'RECEIPT' AND (grp.nd = 0 OR f.reference = '')`

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
	type hit struct {
		status, id string
		receipts   []string
	}
	hits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hit, error) {
		var h hit
		return h, r.Scan(&h.status, &h.id, &h.receipts)
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.id)
		ids = append(ids, h.receipts...)
	}
	entries, err := loadEntries(ctx, q, ids)
	if err != nil {
		return nil, err
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
			for _, r := range h.receipts {
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
