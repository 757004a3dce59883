package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/paging"
)

// Balances are a grant's figures in one currency. Every figure is a sum of
// per-entry rounded amounts, so it agrees to the minor unit wherever shown.
type Balances struct {
	Currency                                       string
	Pledged, Committed, Disbursed, Received, Spent decimal.Decimal
	UndisbursedCommitment, UnspentBalance          decimal.Decimal
}

// Receipt match statuses.
const (
	Matched                   = "MATCHED"
	AmountVariance            = "AMOUNT_VARIANCE"
	MissingReceipt            = "MISSING_RECEIPT"
	ReceiptWithoutDisbursment = "RECEIPT_WITHOUT_DISBURSEMENT"
)

// MatchStatuses lists the statuses in the order summaries give them.
var MatchStatuses = []string{Matched, AmountVariance, MissingReceipt, ReceiptWithoutDisbursment}

// ReceiptMatch pairs a disbursement with the receipts citing its reference.
// Amounts are in agreement currency; Variance = FXDifference + RealDifference.
type ReceiptMatch struct {
	Status                        string
	DisbursementID                string
	ReceiptIDs                    []string
	Reference                     string
	Disbursed, Received, Variance decimal.Decimal
	FXDifference, RealDifference  decimal.Decimal
}

// MatchSummary totals the receipt matches of one status over every page.
type MatchSummary struct {
	Status              string
	Count               int64
	Disbursed, Received decimal.Decimal
}

// Receipt matches come a page at a time, so a grant with thousands of
// disbursements still answers quickly and in bounded size.
const (
	DefaultMatchPageSize = 100
	MaxMatchPageSize     = 1000
)

// MatchPage asks for one page of receipt matches: Size ≤ 0 means
// DefaultMatchPageSize, more than MaxMatchPageSize means that; Token is the
// NextPageToken of the page before, empty for the first.
type MatchPage struct {
	Size  int
	Token string
}

// Reconciliation is a grant's figures as of a time: its balances, the
// summary of all its receipt matches, and one page of them.
type Reconciliation struct {
	GrantID              string
	AsOf                 time.Time
	Agreement, Reporting Balances
	// Summary has one entry per status of MatchStatuses, in that order.
	Summary []MatchSummary
	// Matches are ordered by payment reference, then disbursement (in
	// recording order); a reference's receipts without a disbursement come
	// first among its matches.
	Matches       []ReceiptMatch
	NextPageToken string
}

// Reconcile computes a grant's figures from its journal, as recorded up to
// asOf (zero: now), with the first page of its receipt matches (of the
// default size).
func (s *Store) Reconcile(ctx context.Context, grantID uuid.UUID, asOf time.Time) (Reconciliation, error) {
	return s.ReconcilePage(ctx, grantID, asOf, MatchPage{})
}

// ReconcilePage is Reconcile with the given page of receipt matches. Pages
// taken at different times may see entries recorded in between; pass the
// AsOf of the first answer to page through one state of the journal.
func (s *Store) ReconcilePage(ctx context.Context, grantID uuid.UUID, asOf time.Time, page MatchPage) (Reconciliation, error) {
	after, size, err := paging.StartAfter(page.Token, page.Size, DefaultMatchPageSize, parseMatchKey)
	if err != nil {
		return Reconciliation{}, err
	}
	size = min(size, MaxMatchPageSize)
	g, err := s.readableGrant(ctx, grantID.String())
	if err != nil {
		return Reconciliation{}, err
	}
	current := asOf.IsZero()
	rec := Reconciliation{GrantID: g.ID, AsOf: asOf,
		Agreement: Balances{Currency: g.Currency}, Reporting: Balances{Currency: g.ReportingCurrency}}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if current {
			// The running totals kept with every entry; asOf sums the journal
			// instead. "Now" is read in the first statement, after the
			// snapshot is taken: every entry the snapshot holds was recorded
			// (at its transaction's start) before it, so the flows matched
			// below are exactly those the totals count.
			a, r := &rec.Agreement, &rec.Reporting
			if err := tx.QueryRow(ctx, `SELECT clock_timestamp(), pledged, committed, disbursed, received, spent,
				pledged_reporting, committed_reporting, disbursed_reporting, received_reporting, spent_reporting
				FROM grant_balances WHERE grant_id = $1`, g.ID).Scan(&rec.AsOf, &a.Pledged, &a.Committed, &a.Disbursed, &a.Received, &a.Spent,
				&r.Pledged, &r.Committed, &r.Disbursed, &r.Received, &r.Spent); err != nil {
				return err
			}
			asOf = rec.AsOf
		} else if err := sumJournal(ctx, tx, g.ID, asOf, &rec); err != nil {
			return err
		}
		if err := summarise(ctx, tx, *g, asOf, &rec); err != nil {
			return err
		}
		rec.Matches, rec.NextPageToken, err = matchPage(ctx, tx, *g, asOf, after, size)
		return err
	})
	if err != nil {
		return Reconciliation{}, fmt.Errorf("reconciling grant: %w", err)
	}
	return rec, nil
}

// summarise derives a reconciliation's balances and summarises its matches.
func summarise(ctx context.Context, tx pgx.Tx, g Grant, asOf time.Time, rec *Reconciliation) error {
	rec.Agreement.derive()
	rec.Reporting.derive()
	var err error
	rec.Summary, err = summariseMatches(ctx, tx, g, asOf, rec.Agreement.Disbursed, rec.Agreement.Received)
	return err
}

// ReconcileIn is a grant's reconciliation as of asOf (required) read in the
// caller's transaction, with the summary of its receipt matches and no page
// of them: the figures and summary ReconcilePage answers for that as-of,
// computed by the same code. It does not authorise: it serves readers that
// hold a snapshot and have checked the caller's scope (the audit pack). An
// unknown grant is apperr.ErrNotFound.
func ReconcileIn(ctx context.Context, tx pgx.Tx, grantID uuid.UUID, asOf time.Time) (Reconciliation, error) {
	if asOf.IsZero() {
		return Reconciliation{}, fmt.Errorf("reconciling grant %s: no as-of time", grantID)
	}
	g, err := getGrant(ctx, tx, grantID.String(), false)
	if err != nil {
		return Reconciliation{}, err
	}
	rec := Reconciliation{GrantID: g.ID, AsOf: asOf, Matches: []ReceiptMatch{},
		Agreement: Balances{Currency: g.Currency}, Reporting: Balances{Currency: g.ReportingCurrency}}
	if err := sumJournal(ctx, tx, g.ID, asOf, &rec); err != nil {
		return Reconciliation{}, fmt.Errorf("reconciling grant: %w", err)
	}
	if err := summarise(ctx, tx, *g, asOf, &rec); err != nil {
		return Reconciliation{}, fmt.Errorf("reconciling grant: %w", err)
	}
	return rec, nil
}

// sumJournal totals a grant's entries recorded up to asOf, per bucket.
func sumJournal(ctx context.Context, tx pgx.Tx, grantID string, asOf time.Time, rec *Reconciliation) error {
	rows, err := tx.Query(ctx, `SELECT bucket, sum(agreement_amount), sum(reporting_amount) FROM transactions
		WHERE grant_id = $1 AND recorded_at <= $2 GROUP BY bucket`, grantID, asOf)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var bucket string
		var a, r decimal.Decimal
		if err := rows.Scan(&bucket, &a, &r); err != nil {
			return err
		}
		rec.Agreement.set(bucket, a)
		rec.Reporting.set(bucket, r)
	}
	return rows.Err()
}

func (b *Balances) set(bucket string, d decimal.Decimal) {
	switch bucket {
	case Pledge:
		b.Pledged = d
	case Commitment:
		b.Committed = d
	case Disbursement:
		b.Disbursed = d
	case Receipt:
		b.Received = d
	case Expenditure:
		b.Spent = d
	}
}

func (b *Balances) derive() {
	b.UndisbursedCommitment = b.Committed.Sub(b.Disbursed)
	b.UnspentBalance = b.Received.Sub(b.Spent)
}

// How receipts match disbursements: the live (recorded by asOf, not reversed
// by then) disbursements and receipts of a grant fall into groups by payment
// reference. In a group with a non-empty reference, the first disbursement
// (in recording order) takes all the group's receipts, and any later one
// shows as missing its receipt; a group without a disbursement, or with the
// empty reference, shows its receipts as one match without a disbursement.
// Matches are keyed (reference, disbursement id), a group's receipts without
// a disbursement under the nil id, which sorts first.
//
// A page reads flows in that order from transactions_flows (grant_id,
// reference, id), from where the previous page stopped, until it holds its
// matches: about as many flows as it returns, however many the grant holds.
// The summary on every page is one aggregate over the grant's flows, which
// leaves the database as a handful of rows. Neither builds all the matches.

// liveFlow is the condition on transactions t of grant $1 that makes t a live
// disbursement or receipt as of $2.
const liveFlow = `t.grant_id = $1 AND t.bucket IN ('DISBURSEMENT', 'RECEIPT') AND t.type <> 'REVERSAL'
	AND t.recorded_at <= $2
	AND NOT EXISTS (SELECT FROM transactions r WHERE r.reverses_id = t.id AND r.recorded_at <= $2)`

// flow is a live disbursement or receipt.
type flow struct {
	id, typ, reference, currency string
	amount, agreement            decimal.Decimal
	valueDate                    time.Time
}

const flowColumns = `t.id::text, t.type, t.reference, t.currency, t.amount, t.agreement_amount, t.value_date`

func scanFlow(r pgx.CollectableRow) (flow, error) {
	var f flow
	return f, r.Scan(&f.id, &f.typ, &f.reference, &f.currency, &f.amount, &f.agreement, &f.valueDate)
}

// matchKey is where a page of matches starts after: a match's reference and
// disbursement id (uuid.Nil for receipts without a disbursement).
type matchKey struct {
	reference, id string
	set           bool // false: from the start
}

// The page token carries the id first (fixed length), then the reference.
func (k matchKey) token() string { return paging.Token(k.id + k.reference) }

func parseMatchKey(s string) (matchKey, bool) {
	if s == "" {
		return matchKey{}, true
	}
	if len(s) < 36 || uuid.Validate(s[:36]) != nil {
		return matchKey{}, false
	}
	return matchKey{id: s[:36], reference: s[36:], set: true}, true
}

// matchPage returns up to size matches after the key, and the next page's
// token. It reads flows in index order from the start of the key's reference
// (whose earlier flows decide its matches) in chunks, and stops once the page
// is full: it reads about what it returns, whatever the grant holds.
func matchPage(ctx context.Context, tx pgx.Tx, g Grant, asOf time.Time, after matchKey, size int) ([]ReceiptMatch, string, error) {
	chunk := 2*size + 16 // a page of one disbursement and one receipt per reference takes one chunk
	from := matchKey{reference: after.reference, id: uuid.Nil.String()}
	var page []*match
	var pending []flow // flows of a reference not yet read to its end
	for len(page) <= size {
		rows, err := tx.Query(ctx, `SELECT `+flowColumns+` FROM transactions t
			WHERE `+liveFlow+` AND (t.reference, t.id) > ($3, $4::uuid)
			ORDER BY t.reference, t.id LIMIT $5`, g.ID, asOf, from.reference, from.id, chunk)
		if err != nil {
			return nil, "", err
		}
		flows, err := pgx.CollectRows(rows, scanFlow)
		if err != nil {
			return nil, "", err
		}
		last := len(flows) < chunk
		if len(flows) > 0 {
			from = matchKey{reference: flows[len(flows)-1].reference, id: flows[len(flows)-1].id}
		}
		groups := byReference(append(pending, flows...))
		pending = nil
		if !last && len(groups) > 0 { // the last reference may go on in the next chunk
			pending, groups = groups[len(groups)-1], groups[:len(groups)-1]
		}
		for _, group := range groups {
			for _, m := range matchGroup(group) {
				if after.set && m.key.reference == after.reference && m.key.id <= after.id {
					continue // on an earlier page
				}
				page = append(page, m)
			}
		}
		if last {
			break
		}
	}
	next := ""
	if len(page) > size {
		page, next = page[:size], page[size-1].key.token()
	}
	if err := splitFX(ctx, tx, g, page); err != nil {
		return nil, "", err
	}
	out := make([]ReceiptMatch, len(page))
	for i, m := range page {
		out[i] = m.ReceiptMatch
	}
	return out, next, nil
}

// byReference cuts flows ordered by reference into one slice per reference.
func byReference(flows []flow) [][]flow {
	var groups [][]flow
	for len(flows) > 0 {
		n := 1
		for n < len(flows) && flows[n].reference == flows[0].reference {
			n++
		}
		groups, flows = append(groups, flows[:n]), flows[n:]
	}
	return groups
}

// match is a ReceiptMatch being built, with what paging and the FX split
// need.
type match struct {
	ReceiptMatch
	key       matchKey
	valueDate time.Time // the disbursement's
	receipts  []flow    // those it takes
}

// matchGroup returns the matches of one reference's flows (in id order), in
// key order.
func matchGroup(flows []flow) []*match {
	ref := flows[0].reference
	var ds, rs []flow
	received := decimal.Zero
	ids := []string{}
	for _, f := range flows {
		if f.typ == Receipt {
			rs, ids, received = append(rs, f), append(ids, f.id), received.Add(f.agreement)
		} else {
			ds = append(ds, f)
		}
	}
	var out []*match
	if len(rs) > 0 && (len(ds) == 0 || ref == "") {
		out = append(out, &match{key: matchKey{reference: ref, id: uuid.Nil.String(), set: true}, receipts: rs,
			ReceiptMatch: ReceiptMatch{Status: ReceiptWithoutDisbursment, Reference: ref, ReceiptIDs: ids,
				Received: received, Variance: received, RealDifference: received}})
		rs = nil
	}
	for i, d := range ds {
		m := &match{key: matchKey{reference: ref, id: d.id, set: true}, valueDate: d.valueDate,
			ReceiptMatch: ReceiptMatch{Status: MissingReceipt, DisbursementID: d.id, Reference: ref, ReceiptIDs: []string{}, Disbursed: d.agreement}}
		if i == 0 && len(rs) > 0 {
			m.receipts, m.ReceiptIDs, m.Received = rs, ids, received
			m.Status = Matched
			if !received.Equal(d.agreement) {
				m.Status = AmountVariance
			}
		}
		m.Variance = m.Received.Sub(m.Disbursed)
		m.RealDifference = m.Variance
		out = append(out, m)
	}
	return out
}

// foreign tells whether a disbursement's receipts include one in another
// currency than the agreement's: only those can carry an FX difference.
func (m *match) foreign(agreementCurrency string) bool {
	if m.DisbursementID == "" {
		return false
	}
	for _, r := range m.receipts {
		if r.currency != agreementCurrency {
			return true
		}
	}
	return false
}

// splitFX separates, for the matches with receipts in another currency, the
// FX difference from the real one: the receipts valued at the disbursement's
// date against at their own. Such a match is MATCHED when the real difference
// is zero. A receipt without a rate at that date keeps its own value.
func splitFX(ctx context.Context, tx pgx.Tx, g Grant, ms []*match) error {
	currencies := []string{g.Currency, g.ReportingCurrency}
	var foreign []*match
	var maxDate time.Time
	for _, m := range ms {
		if m.foreign(g.Currency) {
			foreign = append(foreign, m)
			if m.valueDate.After(maxDate) {
				maxDate = m.valueDate
			}
			for _, r := range m.receipts {
				currencies = append(currencies, r.currency)
			}
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	rates, err := fx.Load(ctx, tx, currencies, maxDate)
	if err != nil {
		return err
	}
	for _, m := range foreign {
		atDisbursement := decimal.Zero
		for _, r := range m.receipts {
			v := r.agreement
			if r.currency != g.Currency {
				if rate, err := rates.Rate(r.currency, g.Currency, g.ReportingCurrency, m.valueDate); err == nil {
					v = money.Convert(r.amount, rate, false, g.Currency)
				}
			}
			atDisbursement = atDisbursement.Add(v)
		}
		m.FXDifference = m.Received.Sub(atDisbursement)
		m.RealDifference = atDisbursement.Sub(m.Disbursed)
		m.Status = Matched
		if !m.RealDifference.IsZero() {
			m.Status = AmountVariance
		}
	}
	return nil
}

// summarySQL classifies the references of grant $1's flows live as of $2
// (agreement currency $3) by their counts alone, in one pass, and totals each
// class: a reference with one disbursement and one receipt in the agreement
// currency is MATCHED or AMOUNT_VARIANCE by their amounts (d, r); one without
// receipts holds nd matches missing their receipt; one without disbursements
// one match without a disbursement; the empty reference both. Any other
// reference (several disbursements or receipts, or a receipt in another
// currency: which disbursement is first, what the FX split says) is named,
// class DEFER, for Go to match as a page is. Amounts are only summed where
// one row holds them: the rest follow from the grant's totals.
const summarySQL = `
	SELECT k, count(*), coalesce(sum(nd), 0)::bigint, coalesce(sum(nr), 0)::bigint, coalesce(sum(d), 0), coalesce(sum(r), 0),
	       coalesce(array_agg(reference) FILTER (WHERE k = 'DEFER'), '{}')
	FROM (
	  SELECT *, CASE WHEN reference = '' THEN 'EMPTY' WHEN nd = 0 THEN 'RECEIPT_WITHOUT_DISBURSEMENT'
	                 WHEN nr = 0 THEN 'MISSING_RECEIPT' WHEN nd > 1 OR nr > 1 OR other_currency THEN 'DEFER'
	                 WHEN d = r THEN 'MATCHED' ELSE 'AMOUNT_VARIANCE' END AS k
	  FROM (
	    SELECT t.reference, count(*) FILTER (WHERE t.type = 'DISBURSEMENT') AS nd, count(*) FILTER (WHERE t.type = 'RECEIPT') AS nr,
	           max(t.agreement_amount) FILTER (WHERE t.type = 'DISBURSEMENT') AS d,
	           max(t.agreement_amount) FILTER (WHERE t.type = 'RECEIPT') AS r,
	           bool_or(t.type = 'RECEIPT' AND t.currency <> $3) AS other_currency
	    FROM transactions t WHERE ` + liveFlow + `
	    GROUP BY t.reference
	  ) g
	) g
	GROUP BY k`

// summariseMatches counts and totals the matches of every status: summarySQL
// for most references, and those it defers matched in Go as a page is, so the
// summary and the pages agree by construction. Every live disbursement and
// receipt is in exactly one match, so the amounts summarySQL does not sum
// (disbursements missing their receipt, receipts without a disbursement) are
// what the grant's disbursed and received totals leave.
func summariseMatches(ctx context.Context, tx pgx.Tx, g Grant, asOf time.Time, disbursed, received decimal.Decimal) ([]MatchSummary, error) {
	out := make([]MatchSummary, len(MatchStatuses))
	byStatus := map[string]*MatchSummary{}
	for i, st := range MatchStatuses {
		out[i].Status = st
		byStatus[st] = &out[i]
	}
	missing, orphan := byStatus[MissingReceipt], byStatus[ReceiptWithoutDisbursment]
	rows, err := tx.Query(ctx, summarySQL, g.ID, asOf, g.Currency)
	if err != nil {
		return nil, err
	}
	var deferred []string
	for rows.Next() {
		var class string
		var refs int64
		var nd, nr int64
		var d, r decimal.Decimal
		var names []string
		if err := rows.Scan(&class, &refs, &nd, &nr, &d, &r, &names); err != nil {
			rows.Close()
			return nil, err
		}
		switch class {
		case Matched, AmountVariance:
			byStatus[class].Count, byStatus[class].Disbursed, byStatus[class].Received = refs, d, r
		case MissingReceipt:
			missing.Count += nd
		case ReceiptWithoutDisbursment:
			orphan.Count += refs
		case "EMPTY":
			missing.Count += nd
			if nr > 0 {
				orphan.Count++
			}
		case "DEFER":
			deferred = names
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(deferred) > 0 {
		rows, err := tx.Query(ctx, `SELECT `+flowColumns+` FROM transactions t WHERE `+liveFlow+` AND t.reference = ANY ($3)
			ORDER BY t.reference, t.id`, g.ID, asOf, deferred)
		if err != nil {
			return nil, err
		}
		flows, err := pgx.CollectRows(rows, scanFlow)
		if err != nil {
			return nil, err
		}
		var ms []*match
		for _, group := range byReference(flows) {
			ms = append(ms, matchGroup(group)...)
		}
		if err := splitFX(ctx, tx, g, ms); err != nil {
			return nil, err
		}
		for _, m := range ms {
			sum := byStatus[m.Status]
			sum.Count++
			sum.Disbursed, sum.Received = sum.Disbursed.Add(m.Disbursed), sum.Received.Add(m.Received)
		}
	}
	for _, sum := range out {
		disbursed, received = disbursed.Sub(sum.Disbursed), received.Sub(sum.Received)
	}
	missing.Disbursed, orphan.Received = missing.Disbursed.Add(disbursed), orphan.Received.Add(received)
	return out, nil
}
