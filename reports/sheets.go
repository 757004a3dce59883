package reports

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/audit"
)

// optID is a query parameter that narrows when set: NULL when not.
func optID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id.String()
}

func optDay(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.DateOnly)
}

func orAll(id uuid.UUID) string {
	if id == uuid.Nil {
		return "all"
	}
	return id.String()
}

func orOpen(t time.Time) string {
	if t.IsZero() {
		return "open"
	}
	return t.Format(time.DateOnly)
}

func (p *pack) coverRows(w *sheetWriter) error {
	s := p.scope
	for _, kv := range [][2]string{
		{"Format", Format},
		{"Generator", Generator},
		{"Roadmap ID", s.RoadmapID.String()},
		{"Roadmap", p.roadmap.title},
		{"Country", p.roadmap.country},
		{"Reporting currency", p.roadmap.reporting},
		{"Donor organisation", orAll(s.DonorOrgID)},
		{"Grant", orAll(s.GrantID)},
		{"Value dates from", orOpen(s.From)},
		{"Value dates to", orOpen(s.To)},
		{"As of (recorded at or before)", s.AsOf.Format("2006-01-02T15:04:05.000000Z")},
	} {
		if err := w.row(text(kv[0]), text(kv[1])); err != nil {
			return err
		}
	}
	return nil
}

// grantRows: the scope's grants created by the as-of time, with their
// whole-life totals per bucket in agreement currency as of then (the value-
// date period narrows Transactions, not these totals: they are the figures of
// the reconciliation API for the same as-of).
func (p *pack) grantRows(w *sheetWriter) error {
	s := p.scope
	rows, err := p.tx.Query(p.ctx, `
		SELECT g.id::text, g.reference, g.title, g.donor_org_id::text, d.name, g.recipient_org_id::text, rc.name,
			g.start_date, g.end_date, g.created_at, g.currency,
			coalesce(sum(t.agreement_amount) FILTER (WHERE t.bucket = 'PLEDGE'), 0),
			coalesce(sum(t.agreement_amount) FILTER (WHERE t.bucket = 'COMMITMENT'), 0),
			coalesce(sum(t.agreement_amount) FILTER (WHERE t.bucket = 'DISBURSEMENT'), 0),
			coalesce(sum(t.agreement_amount) FILTER (WHERE t.bucket = 'RECEIPT'), 0),
			coalesce(sum(t.agreement_amount) FILTER (WHERE t.bucket = 'EXPENDITURE'), 0)
		FROM grants g
		JOIN organizations d ON d.id = g.donor_org_id
		JOIN organizations rc ON rc.id = g.recipient_org_id
		LEFT JOIN transactions t ON t.grant_id = g.id AND t.recorded_at <= $2
		WHERE g.roadmap_id = $1 AND g.created_at <= $2
			AND ($3::uuid IS NULL OR g.donor_org_id = $3::uuid)
			AND ($4::uuid IS NULL OR g.id = $4::uuid)
		GROUP BY g.id, d.name, rc.name
		ORDER BY g.reference, g.id`,
		s.RoadmapID.String(), s.AsOf, optID(s.DonorOrgID), optID(s.GrantID))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, ref, title, donor, donorName, recip, recipName, cur string
		var start, end, created time.Time
		var pl, cm, db, rc, sp decimal.Decimal
		if err := rows.Scan(&id, &ref, &title, &donor, &donorName, &recip, &recipName, &start, &end, &created, &cur,
			&pl, &cm, &db, &rc, &sp); err != nil {
			return err
		}
		if err := w.row(text(id), text(ref), text(title), text(donor), text(donorName), text(recip), text(recipName),
			day(start), day(end), stamp(created),
			amount(pl, cur), amount(cm, cur), amount(db, cur), amount(rc, cur), amount(sp, cur)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// transactionRows: the journal of the scope recorded by the as-of time with a
// value date in the period, in (value date, recorded at, id) order.
func (p *pack) transactionRows(w *sheetWriter) error {
	s := p.scope
	rows, err := p.tx.Query(p.ctx, `
		SELECT t.id::text, t.grant_id::text, g.reference, t.type, t.bucket, t.value_date,
			t.amount, t.currency, t.agreement_amount, g.currency, t.reporting_amount, r.reporting_currency,
			t.agreement_rate, t.reporting_rate, t.fx_rate, t.reference,
			coalesce(t.milestone_id::text, ''), coalesce(t.reverses_id::text, ''), t.note,
			t.recorded_by, t.recorded_role, t.recorded_at, coalesce(t.batch_id::text, '')
		FROM transactions t
		JOIN grants g ON g.id = t.grant_id
		JOIN roadmaps r ON r.id = g.roadmap_id
		WHERE g.roadmap_id = $1 AND t.recorded_at <= $2
			AND ($3::uuid IS NULL OR g.donor_org_id = $3::uuid)
			AND ($4::uuid IS NULL OR g.id = $4::uuid)
			AND ($5::date IS NULL OR t.value_date >= $5::date)
			AND ($6::date IS NULL OR t.value_date <= $6::date)
		ORDER BY t.value_date, t.recorded_at, t.id`,
		s.RoadmapID.String(), s.AsOf, optID(s.DonorOrgID), optID(s.GrantID), optDay(s.From), optDay(s.To))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, grant, gref, typ, bucket, cur, gcur, rcur, ref, ms, rev, note, by, role, batch string
		var vd, at time.Time
		var am, agr, rep, arate, rrate decimal.Decimal
		var fx decimal.NullDecimal
		if err := rows.Scan(&id, &grant, &gref, &typ, &bucket, &vd, num{&am}, &cur, num{&agr}, &gcur, num{&rep}, &rcur,
			num{&arate}, num{&rrate}, numOpt{&fx}, &ref, &ms, &rev, &note, &by, &role, &at, &batch); err != nil {
			return err
		}
		if err := w.row(text(id), text(grant), text(gref), text(typ), text(bucket), day(vd),
			amount(am, cur), amount(agr, gcur), amount(rep, rcur), dec(arate), dec(rrate), decOpt(fx),
			text(ref), text(ms), text(rev), text(note), text(by), text(role), stamp(at), text(batch)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// fxRows: every rate (every revision) recorded at or before as-of between
// two currencies of the scope — those of its journal rows (as narrowed for
// Transactions), of its grants, and the reporting currency — in (currency,
// quote currency, date, revision) order: the table an auditor re-derives a
// conversion from (the effective rate of a pair and date is its highest
// revision as of then; an entry's own rate is in Transactions).
func (p *pack) fxRows(w *sheetWriter) error {
	s := p.scope
	rows, err := p.tx.Query(p.ctx, `
		WITH scoped AS (
			SELECT r.reporting_currency AS currency FROM roadmaps r WHERE r.id = $1
			UNION
			SELECT g.currency FROM grants g
			WHERE g.roadmap_id = $1 AND g.created_at <= $2
				AND ($3::uuid IS NULL OR g.donor_org_id = $3::uuid)
				AND ($4::uuid IS NULL OR g.id = $4::uuid)
			UNION
			SELECT t.currency FROM transactions t JOIN grants g ON g.id = t.grant_id
			WHERE g.roadmap_id = $1 AND t.recorded_at <= $2
				AND ($3::uuid IS NULL OR g.donor_org_id = $3::uuid)
				AND ($4::uuid IS NULL OR g.id = $4::uuid)
				AND ($5::date IS NULL OR t.value_date >= $5::date)
				AND ($6::date IS NULL OR t.value_date <= $6::date)
		)
		SELECT f.currency, f.quote_currency, f.date, f.rate, f.revision, f.source, f.reason, f.recorded_at
		FROM fx_rates f
		WHERE f.recorded_at <= $2
			AND f.currency IN (SELECT currency FROM scoped)
			AND f.quote_currency IN (SELECT currency FROM scoped)
		ORDER BY f.currency, f.quote_currency, f.date, f.revision`,
		s.RoadmapID.String(), s.AsOf, optID(s.DonorOrgID), optID(s.GrantID), optDay(s.From), optDay(s.To))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var cur, quote, source, reason string
		var date, at time.Time
		var rate decimal.Decimal
		var rev int64
		if err := rows.Scan(&cur, &quote, &date, &rate, &rev, &source, &reason, &at); err != nil {
			return err
		}
		if err := w.row(text(cur), text(quote), day(date), dec(rate), integer(rev), text(source), text(reason), stamp(at)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// manifestRows: one line per sheet (rows, SHA-256 of the canonical rows),
// then the pack's facts, then the manifest's own seal.
func (p *pack) manifestRows(w *sheetWriter) error {
	// seal hashes the canonical form of each line as it is written (the
	// sheet's own hash runs on another goroutine).
	seal := sha256.New()
	line := func(entry string, rows *int64, sum, val string) error {
		n, canonRows := value{null: true}, ""
		if rows != nil {
			n, canonRows = integer(*rows), strconv.FormatInt(*rows, 10)
		}
		writeCanonical(seal, []string{entry, canonRows, sum, val})
		return w.row(text(entry), n, text(sum), text(val))
	}
	for _, m := range p.manifest {
		if err := line("sheet:"+m.name, &m.rows, m.sum, ""); err != nil {
			return err
		}
	}
	s := p.scope
	head := p.head
	if head == nil {
		head = [][2]string{
			{"chainHead.sequence", "not included: no audit store given"},
			{"chainHead.hash", ""},
			{"chainHead.signature", ""},
			{"chainHead.keyId", ""},
			{"chainVerification", "not run"},
		}
	}
	for _, kv := range append([][2]string{
		{"format", Format},
		{"generator", Generator},
		{"canonicalForm", "length-prefixed cells, SHA-256 (reports package doc)"},
		{"scope.roadmapId", s.RoadmapID.String()},
		{"scope.donorOrgId", orAll(s.DonorOrgID)},
		{"scope.grantId", orAll(s.GrantID)},
		{"scope.from", orOpen(s.From)},
		{"scope.to", orOpen(s.To)},
		{"asOf", s.AsOf.Format("2006-01-02T15:04:05.000000Z")},
	}, head...) {
		if err := line(kv[0], nil, "", kv[1]); err != nil {
			return err
		}
	}
	// The seal: the SHA-256 of the canonical form of every line above,
	// signed, so that a sheet edited together with its manifest line, or an
	// edited scope or head, no longer matches a signature only the server's
	// key can make.
	digest := seal.Sum(nil)
	sig, key := "unsigned: the server has no signing key", ""
	if p.signer != nil {
		if b, id := p.signer.Sign(ManifestMessage(digest)); b != nil {
			sig, key = audit.EncodeSignature(b), id
		}
	}
	for _, kv := range [][2]string{
		{"manifest.sha256", hex.EncodeToString(digest)},
		{"manifest.signature", sig},
		{"manifest.keyId", key},
	} {
		if err := line(kv[0], nil, "", kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// ManifestFormat labels the message a manifest signature covers.
const ManifestFormat = "tranche-audit-pack-manifest/1"

// ManifestMessage is the byte string a manifest's signature covers: the RFC
// 8785 JSON object {"sha256":"<lower-case hex>","v":"tranche-audit-pack-manifest/1"},
// where sha256 is the canonical checksum (doc.go) of the Manifest's lines
// above its manifest.sha256 line.
func ManifestMessage(digest []byte) []byte {
	b := append([]byte(nil), `{"sha256":`...)
	b = audit.AppendString(b, hex.EncodeToString(digest))
	b = append(b, `,"v":`...)
	b = audit.AppendString(b, ManifestFormat)
	return append(b, '}')
}
