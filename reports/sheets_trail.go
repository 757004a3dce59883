package reports

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gowebpki/jcs"
	"github.com/shopspring/decimal"
)

// The sheets Procurement, Flags and Audit Trail (see the package doc,
// "Procurement, Flags and Audit Trail", for the decisions).

// MaxCellChars is Excel's limit on the text of one cell, in UTF-16 code
// units (excelize silently cuts longer text, which would leave a cell that no
// longer matches the manifest).
const MaxCellChars = 32767

// TruncatedMark ends a text cell that was cut to fit MaxCellChars.
const TruncatedMark = "…[truncated]"

// fitCell returns s, or when it is longer than a cell may hold, its longest
// prefix (whole characters) that fits with TruncatedMark appended. The
// manifest hashes what the cell holds.
func fitCell(s string) string {
	if len(s) <= MaxCellChars || utf16Units(s) <= MaxCellChars { // never more units than bytes
		return s
	}
	return cutCell(s)
}

// cutCell is the cut of fitCell for a text known to be longer than a cell
// (s may be only its head, of at least MaxCellChars characters).
func cutCell(s string) string {
	budget, n := MaxCellChars-utf16Units(TruncatedMark), 0
	for i, r := range s {
		u := 1
		if r >= 0x10000 {
			u = 2
		}
		if n+u > budget {
			return s[:i] + TruncatedMark
		}
		n += u
	}
	return s
}

// utf16Units is the length of s in UTF-16 code units, as Excel counts: a
// character outside the Basic Multilingual Plane takes two.
func utf16Units(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// xmlText replaces what an XML 1.0 document cannot hold (control
// characters other than tab, line feed and carriage return; U+FFFE, U+FFFF;
// invalid UTF-8) with U+FFFD, as excelize does when it writes the cell, so
// that the manifest hashes what a reader gets back.
func xmlText(s string) string {
	ok := func(r rune, size int) bool {
		return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) ||
			(r >= 0xE000 && r <= 0xFFFD && !(r == utf8.RuneError && size == 1)) || (r >= 0x10000 && r <= 0x10FFFF)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !ok(r, size) {
			var b strings.Builder
			b.WriteString(s[:i])
			for j := i; j < len(s); {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !ok(r, size) {
					r = utf8.RuneError
				}
				b.WriteRune(r)
				j += size
			}
			return b.String()
		}
		i += size
	}
	return s
}

func stampOpt(t *time.Time) value {
	if t == nil {
		return value{null: true}
	}
	return stamp(*t)
}

// canonicalJSON is the RFC 8785 form of a JSON text.
func canonicalJSON(s string) (string, error) {
	b, err := jcs.Transform([]byte(s))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// jsonStrings is the canonical JSON array of ss ([] when empty).
func jsonStrings(ss []string) (string, error) {
	if ss == nil {
		ss = []string{}
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return "", err
	}
	return canonicalJSON(string(b))
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// utcDay is t's date in UTC, at midnight.
func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func daysBetween(from, to time.Time) int64 {
	return int64(utcDay(to).Sub(utcDay(from)).Hours() / 24)
}

// procurementRows: one row per stage an item entered, for the items on the
// scope's grants recorded at or before as-of and their stages recorded by
// then, in (item id, stage number) order — the procurement API's order (item
// ids are UUIDv7, creation order). The item's columns repeat on each of its
// stage rows, so a filter on any column keeps whole facts. Dwell days run
// from the day a stage was entered to the day the next one was (Left on), or
// to the as-of day (UTC) for the item's stage as of as-of.
func (p *pack) procurementRows(w *sheetWriter) error {
	s := p.scope
	rows, err := p.tx.Query(p.ctx, `
		SELECT i.id::text, i.grant_id::text, g.reference, i.milestone_id::text, i.description, i.category, i.critical,
			i.estimated_cost, i.currency, i.expected_delivery_date,
			st.seq, st.stage, st.entered_on, st.note, st.recorded_by, st.recorded_at
		FROM procurement_items i
		JOIN grants g ON g.id = i.grant_id
		JOIN procurement_stages st ON st.item_id = i.id AND st.recorded_at <= $2
		WHERE i.grant_id = ANY (ARRAY(SELECT id FROM grants WHERE roadmap_id = $1
				AND ($3::uuid IS NULL OR donor_org_id = $3::uuid) AND ($4::uuid IS NULL OR id = $4::uuid)))
			AND i.recorded_at <= $2
		ORDER BY i.id, st.seq`,
		s.RoadmapID.String(), s.AsOf, optID(s.DonorOrgID), optID(s.GrantID))
	if err != nil {
		return err
	}
	defer rows.Close()
	type stage struct {
		seq                 int64
		name, note, by      string
		entered, recordedAt time.Time
	}
	type item struct {
		id, grant, gref, milestone, desc, cat, cur string
		critical                                   bool
		cost                                       decimal.Decimal
		expected                                   *time.Time
		stages                                     []stage
	}
	asOfDay := utcDay(s.AsOf)
	flush := func(it *item) error {
		if it == nil || len(it.stages) == 0 {
			return nil
		}
		critical := "no"
		if it.critical {
			critical = "yes"
		}
		expected := value{null: true}
		if it.expected != nil {
			expected = day(*it.expected)
		}
		current := it.stages[len(it.stages)-1].name
		for k, st := range it.stages {
			left, until := value{null: true}, asOfDay
			if k+1 < len(it.stages) {
				until = it.stages[k+1].entered
				left = day(until)
			}
			if err := w.row(text(it.id), text(it.grant), text(it.gref), text(it.milestone), text(it.desc),
				text(it.cat), text(critical), amount(it.cost, it.cur), expected, text(current),
				integer(st.seq), text(st.name), day(st.entered), left, integer(daysBetween(st.entered, until)),
				text(st.note), text(st.by), stamp(st.recordedAt)); err != nil {
				return err
			}
		}
		return nil
	}
	var cur *item
	for rows.Next() {
		var it item
		var st stage
		if err := rows.Scan(&it.id, &it.grant, &it.gref, &it.milestone, &it.desc, &it.cat, &it.critical,
			&it.cost, &it.cur, &it.expected, &st.seq, &st.name, &st.entered, &st.note, &st.by, &st.recordedAt); err != nil {
			return err
		}
		if cur == nil || cur.id != it.id {
			if err := flush(cur); err != nil {
				return err
			}
			cur = &it
		}
		cur.stages = append(cur.stages, st)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return flush(cur)
}

// flagScope is the condition (over flags f) of the flags a pack holds, with
// its arguments appended to args: the roadmap's flags; narrowed to a donor,
// those whose donor_org_ids hold it (detect's rule for a donor token); to a
// grant, those whose grant_ids hold it and, with a donor too, only when the
// grant is that donor's.
func (p *pack) flagScope(args *[]any) string {
	arg := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	s := p.scope
	cond := "f.roadmap_id = " + arg(s.RoadmapID.String()) + "::uuid"
	if id := optID(s.DonorOrgID); id != nil {
		cond += " AND f.donor_org_ids @> ARRAY[" + arg(id) + "::uuid]"
	}
	if id := optID(s.GrantID); id != nil {
		g := arg(id)
		cond += " AND f.grant_ids @> ARRAY[" + g + "::uuid]"
		if d := optID(s.DonorOrgID); d != nil {
			cond += " AND EXISTS (SELECT FROM grants sg WHERE sg.id = " + g + "::uuid AND sg.donor_org_id = " + arg(d) + "::uuid)"
		}
	}
	return cond
}

// flagRows: the scope's flags that existed at as-of (a flag_events row by
// then), in id (creation) order as the flags API lists them, each in the
// state its history gives at as-of: status and severity of its last event by
// then, evidence and explanation of its last event carrying them, the last
// review (ACKNOWLEDGE, DISMISS, REOPEN) by then. Subjects and grant ids are
// the flag's current ones (not versioned; see doc.go).
func (p *pack) flagRows(w *sheetWriter) error {
	args := []any{p.scope.AsOf}
	scope := p.flagScope(&args)
	rows, err := p.tx.Query(p.ctx, `
		SELECT f.id::text, f.kind, le.severity, le.status, le.event, le.occurred_at, f.grant_ids::text[], f.subjects::text,
			ev.explanation, ev.evidence::text, f.detected_at, rv.event, rv.actor, rv.occurred_at, rv.note
		FROM flags f
		CROSS JOIN LATERAL (SELECT event, status, severity, occurred_at FROM flag_events
			WHERE flag_id = f.id AND occurred_at <= $1 ORDER BY id DESC LIMIT 1) le
		LEFT JOIN LATERAL (SELECT evidence, explanation FROM flag_events
			WHERE flag_id = f.id AND occurred_at <= $1 AND evidence IS NOT NULL ORDER BY id DESC LIMIT 1) ev ON true
		LEFT JOIN LATERAL (SELECT event, actor, occurred_at, note FROM flag_events
			WHERE flag_id = f.id AND occurred_at <= $1 AND event IN ('ACKNOWLEDGE', 'DISMISS', 'REOPEN')
			ORDER BY id DESC LIMIT 1) rv ON true
		WHERE `+scope+`
		ORDER BY f.id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind, sev, status, event, subjects string
		var at, detected time.Time
		var grants []string
		var explanation, evidence, action, by, note *string
		var reviewedAt *time.Time
		if err := rows.Scan(&id, &kind, &sev, &status, &event, &at, &grants, &subjects, &explanation, &evidence,
			&detected, &action, &by, &reviewedAt, &note); err != nil {
			return err
		}
		gj, err := jsonStrings(grants)
		if err != nil {
			return err
		}
		sj, err := canonicalJSON(subjects)
		if err != nil {
			return fmt.Errorf("flag %s subjects: %w", id, err)
		}
		ej, eBytes, eSum := "", value{null: true}, text("")
		if evidence != nil {
			if ej, err = canonicalJSON(*evidence); err != nil {
				return fmt.Errorf("flag %s evidence: %w", id, err)
			}
			eBytes, eSum = integer(int64(len(ej))), text(sha256Hex(ej))
		}
		if err := w.row(text(id), text(kind), text(sev), text(status), text(event), stamp(at), text(gj),
			text(sj), text(deref(explanation)), text(ej), eBytes, eSum, stamp(detected),
			text(deref(action)), text(deref(by)), stampOpt(reviewedAt), text(deref(note))); err != nil {
			return err
		}
	}
	return rows.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// uuidPattern guards the casts of entity ids: an id that is not a UUID in
// the service's lower-case form names nothing of a roadmap.
const uuidPattern = `'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'`

// auditTrailSQL is the statement of the Audit Trail and its arguments: the
// sealed events that occurred at or before as-of (so of sequence at most the
// head at as-of, which bounds the walk) and are about the scope, walked in
// sequence order along the unique index on seq (streamed, never sorted),
// each tested by one CASE over its entity type whose branches are primary-key
// look-ups (see doc.go for which events a scope holds).
// batchHead tests that a batch event's change starts as the ledger writes
// it ({"batchId":"<uuid>","grantId":"<uuid>",…}, internal/ledger
// canonical.go), and batchGrant is the grant id at its fixed place. A batch
// part's change can be hundreds of kilobytes: parsing it as JSON, or a
// regular expression with a capture over its head, cost most of the Audit
// Trail's time at a million events; fixed substrings of a prefix (all
// PostgreSQL decompresses for substr) cost little.
const (
	batchHead  = `(left(e.change, 12) = '{"batchId":"' AND substr(e.change, 49, 13) = '","grantId":"' AND substr(e.change, 98, 1) = '"')`
	batchGrant = `substr(e.change, 62, 36)`
)

func (p *pack) auditTrailSQL(head int64) (string, []any) {
	s := p.scope
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	asOf, top, rm := arg(s.AsOf), arg(head), arg(s.RoadmapID.String())
	grants := "g.roadmap_id = " + rm + "::uuid"
	donorEvent := "" // events about a grant name its donor first (subject_orgs[1])
	if id := optID(s.DonorOrgID); id != nil {
		d := arg(id)
		grants += " AND g.donor_org_id = " + d + "::uuid"
		donorEvent = "e.subject_orgs[1] = " + d + "::text AND "
	}
	if id := optID(s.GrantID); id != nil {
		grants += " AND g.id = " + arg(id) + "::uuid"
	}
	flags := p.flagScope(&args)
	flagEvent := ""
	if id := optID(s.DonorOrgID); id != nil {
		// A review names each party with its role (internal/detect): the
		// donor's pack holds the reviews naming it as donor.
		flagEvent = "e.subject_orgs @> ARRAY['donor:' || " + arg(id) + "::text] AND "
	}
	wide := ""
	if s.DonorOrgID == uuid.Nil && s.GrantID == uuid.Nil {
		wide = `
			WHEN 'roadmap' THEN e.entity_id = ` + rm + `::text
			WHEN 'milestone' THEN EXISTS (SELECT FROM milestones m WHERE m.id = e.entity_id::uuid AND m.roadmap_id = ` + rm + `::uuid)
			WHEN 'detection_run' THEN EXISTS (SELECT FROM detection_runs r WHERE r.id = e.entity_id::uuid AND r.roadmap_id = ` + rm + `::uuid)`
	}
	sql := `/* reports: audit trail */
		SELECT e.seq, e.id, e.occurred_at, e.actor_token_id, e.actor_name, e.actor_role, e.actor_org_id, e.method,
			e.entity_type, e.entity_id, e.request_id, e.subject_orgs,
			left(e.change, ` + strconv.Itoa(MaxCellChars) + `), char_length(e.change) > ` + strconv.Itoa(MaxCellChars) + `,
			octet_length(e.change), encode(sha256(convert_to(e.change, 'UTF8')), 'hex'), e.prev_hash, e.hash
		FROM audit_events e
		WHERE e.seq IS NOT NULL AND e.seq <= ` + top + ` AND e.occurred_at <= ` + asOf + `
			AND CASE WHEN e.entity_id !~ ` + uuidPattern + ` THEN false ELSE CASE e.entity_type
			WHEN 'grant' THEN ` + donorEvent + `EXISTS (SELECT FROM grants g WHERE g.id = e.entity_id::uuid AND ` + grants + `)
			WHEN 'transaction' THEN ` + donorEvent + `EXISTS (SELECT FROM transactions t JOIN grants g ON g.id = t.grant_id
				WHERE t.id = e.entity_id::uuid AND ` + grants + `)
			WHEN 'transaction_batch' THEN ` + donorEvent + `CASE WHEN ` + batchHead + ` AND ` + batchGrant + ` ~ ` + uuidPattern + `
				THEN EXISTS (SELECT FROM grants g WHERE g.id = (` + batchGrant + `)::uuid AND ` + grants + `)
				ELSE false END
			WHEN 'procurement_item' THEN ` + donorEvent + `EXISTS (SELECT FROM procurement_items i JOIN grants g ON g.id = i.grant_id
				WHERE i.id = e.entity_id::uuid AND ` + grants + `)
			WHEN 'flag' THEN ` + flagEvent + `EXISTS (SELECT FROM flags f WHERE f.id = e.entity_id::uuid AND ` + flags + `)` + wide + `
			ELSE false END END
		ORDER BY e.seq`
	return sql, args
}

// auditRows: the Audit Trail (see auditTrailSQL and doc.go). A change longer
// than a cell holds is cut (TruncatedMark); its length in bytes and SHA-256
// are always given, so it can be matched against the API's full text.
func (p *pack) auditRows(w *sheetWriter) (err error) {
	head := p.headSeq
	if head == 0 {
		return nil // no sealed event by as-of
	}
	// JIT compilation costs this statement about half a second at 100 000
	// events and gains nothing back (its work is index look-ups): off for
	// this statement only, the transaction's setting restored after it.
	var jit string
	if err := p.tx.QueryRow(p.ctx, `SELECT current_setting('jit'), set_config('jit', 'off', true)`).Scan(&jit, nil); err != nil {
		return err
	}
	defer func() {
		if _, rerr := p.tx.Exec(p.ctx, `SELECT set_config('jit', $1, true)`, jit); rerr != nil && err == nil {
			err = rerr
		}
	}()
	sql, args := p.auditTrailSQL(head)
	rows, err := p.tx.Query(p.ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq, id int64
		var at time.Time
		var actor, name, role, org, method, typ, entity, req, change, sum string
		var subjects []string
		var prev, hash []byte
		var longer bool
		var size int64
		// Only the head of a change that a cell can hold comes over the
		// wire, with its size and SHA-256 computed where it is stored: a
		// batch part's change is hundreds of kilobytes.
		if err := rows.Scan(&seq, &id, &at, &actor, &name, &role, &org, &method, &typ, &entity, &req, &subjects,
			&change, &longer, &size, &sum, &prev, &hash); err != nil {
			return err
		}
		if longer {
			change = cutCell(change)
		}
		sj, err := jsonStrings(subjects)
		if err != nil {
			return err
		}
		if err := w.row(integer(seq), integer(id), stamp(at), text(actor), text(name), text(role), text(org),
			text(method), text(typ), text(entity), text(req), text(sj), text(change),
			integer(size), text(sum), text(hex.EncodeToString(prev)),
			text(hex.EncodeToString(hash))); err != nil {
			return err
		}
	}
	return rows.Err()
}
