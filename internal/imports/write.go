package imports

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
)

// stored is what provenance says of a record imported into the scope before.
type stored struct {
	version string
	content []byte
	live    []liveEntry // its entries not reversed
}

type liveEntry struct {
	id, grantID, bucket string
	valueDate           time.Time
}

// loadStored reads, for the given records, the version and content last
// imported into the scope and the entries still standing.
func loadStored(ctx context.Context, q pgx.Tx, scopeID uuid.UUID, kind string, ids []string) (map[string]*stored, error) {
	out := map[string]*stored{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT DISTINCT ON (record_id) record_id, record_version, content_sha256
		FROM provenance WHERE scope_id = $1 AND source_kind = $2 AND entity_type IN ('transaction', 'procurement_item')
		  AND record_id = ANY ($3)
		ORDER BY record_id, run_id DESC`, scopeID, kind, ids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		st := &stored{}
		if err := rows.Scan(&id, &st.version, &st.content); err != nil {
			rows.Close()
			return nil, err
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT p.record_id, t.id::text, t.grant_id::text, t.bucket, t.value_date
		FROM provenance p JOIN transactions t ON t.id = p.entity_id
		WHERE p.scope_id = $1 AND p.source_kind = $2 AND p.entity_type = 'transaction' AND p.record_id = ANY ($3)
		  AND t.type <> 'REVERSAL' AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id)
		ORDER BY t.id DESC`, scopeID, kind, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var rid string
		var e liveEntry
		if err := rows.Scan(&rid, &e.id, &e.grantID, &e.bucket, &e.valueDate); err != nil {
			return nil, err
		}
		if st := out[rid]; st != nil {
			st.live = append(st.live, e)
		}
	}
	return out, rows.Err()
}

// olderVersion tells whether version a is older than b: numbers (FTS
// versionId) numerically, times (IATI last-updated-datetime) as times,
// else as text. An unknown version ("") is never older: a file without one
// is applied when its content differs.
func olderVersion(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	if err1 == nil && err2 == nil {
		return x < y
	}
	ta, err1 := parseTime(a)
	tb, err2 := parseTime(b)
	if err1 == nil && err2 == nil {
		return ta.Before(tb)
	}
	return a < b
}

// parseTime reads an ISO 8601 date-time with or without its zone (UTC
// then), or a date.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date-time: %q", s)
}

// reversalOrder sorts the reversals of changed records so that none breaks
// disbursed ≤ committed on the way: money paid, received or spent first,
// then commitments, then pledges; within each, the newest entry first.
func reversalOrder(bucket string) int {
	switch bucket {
	case ledger.Commitment:
		return 1
	case ledger.Pledge:
		return 2
	}
	return 0
}

// provRow is one provenance row to write.
type provRow struct {
	entityType, entityID string
	src                  source
	content              []byte
	inferred             []string
	sourceValues         map[string]string
}

// applyPlan writes a plan inside tx: the organisations, the grants, the
// entries (reversals of changed records first) and their provenance. It
// fills the report's counts; problems found against the stored data (an
// organisation whose kind cannot play its role) are returned as
// INVALID_ARGUMENT naming the record.
func (s *Store) applyPlan(ctx context.Context, tx pgx.Tx, pl *plan, roadmapID uuid.UUID, runID string, req Request, rep *Report) ([]provRow, error) {
	requestID := "import:" + runID
	var prov []provRow

	// Which records change anything.
	var ids []string
	for _, r := range pl.records {
		ids = append(ids, r.RecordID)
	}
	// A roadmap this import creates holds nothing imported before.
	st := map[string]*stored{}
	var err error
	if !rep.RoadmapCreated {
		if st, err = loadStored(ctx, tx, roadmapID, pl.kind, ids); err != nil {
			return nil, fmt.Errorf("reading what was imported before: %w", err)
		}
	}
	var reversals []ledger.EntryInput
	var buckets []string
	var reversalSrc []*planRecord
	var todo []*planRecord
	hashes := map[*planRecord][]byte{}
	for _, r := range pl.records {
		h := pl.contentHash(r)
		hashes[r] = h
		prev := st[r.RecordID]
		switch {
		case prev == nil:
			if len(r.entries) > 0 {
				todo = append(todo, r)
			}
		case bytes.Equal(prev.content, h):
			rep.Unchanged++
		case olderVersion(r.Version, prev.version):
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: version %s is older than version %s imported before; left as it was",
				r.label, r.Version, prev.version))
		default:
			rep.Corrected++
			for _, e := range prev.live {
				buckets = append(buckets, e.bucket)
				reversals = append(reversals, ledger.EntryInput{GrantID: uuid.MustParse(e.grantID), Type: ledger.Reversal,
					ReversesID: uuid.MustParse(e.id), ValueDate: e.valueDate,
					Note: fmt.Sprintf("%s version %s supersedes version %s", r.label, r.Version, prev.version)})
				reversalSrc = append(reversalSrc, r)
			}
			todo = append(todo, r)
		}
	}
	// Reversals in an order that keeps every intermediate balance valid
	// (stable: the newest entry first within a kind, as read).
	idx := make([]int, len(reversals))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return reversalOrder(buckets[idx[i]]) < reversalOrder(buckets[idx[j]]) })
	sortedRev, sortedSrc := make([]ledger.EntryInput, len(idx)), make([]*planRecord, len(idx))
	for k, i := range idx {
		sortedRev[k], sortedSrc[k] = reversals[i], reversalSrc[i]
	}
	reversals, reversalSrc = sortedRev, sortedSrc

	// Organisations and grants the remaining records need.
	needGrant := map[int]bool{}
	for _, r := range todo {
		for _, e := range r.entries {
			needGrant[e.grant] = true
		}
	}
	needOrg := map[int]bool{}
	for gi := range needGrant {
		needOrg[pl.grants[gi].donor], needOrg[pl.grants[gi].recipient] = true, true
	}
	var orgIn []org.Organization
	var orgPos []int
	for i, o := range pl.orgs {
		if needOrg[i] {
			orgIn, orgPos = append(orgIn, o.Organization), append(orgPos, i)
		}
	}
	orgID := map[int]string{}
	if len(orgIn) > 0 {
		got, created, err := s.orgs.EnsureIn(ctx, tx, orgIn)
		if err != nil {
			return nil, fmt.Errorf("registering organisations: %w", err)
		}
		var v apperr.Validator
		for k, o := range got {
			po := pl.orgs[orgPos[k]]
			orgID[orgPos[k]] = o.ID
			if po.funds && !org.CanFund(o.Kind) {
				v.Add(recordLabel(pl.kind, po.rec.RecordID)+".donor", "organisation %q (%s) is registered as %s, which does not give grants", o.Name, o.ID, o.Kind)
			}
			if po.receives && !org.CanReceive(o.Kind) {
				v.Add(recordLabel(pl.kind, po.rec.RecordID)+".recipient", "organisation %q (%s) is registered as %s, which does not receive grants", o.Name, o.ID, o.Kind)
			}
			if created[k] {
				rep.OrganizationsCreated++
				prov = append(prov, provRow{entityType: EntityOrganization, entityID: o.ID, src: po.rec,
					inferred: po.inferred, content: hashOf(o)})
			} else {
				rep.OrganizationsMatched++
			}
		}
		if err := v.Err(); err != nil {
			return nil, err
		}
	}
	grantID := map[int]string{}
	if len(needGrant) > 0 {
		var refs []ledger.DonorReference
		var order []int
		for gi := range pl.grants {
			if needGrant[gi] {
				g := pl.grants[gi]
				refs = append(refs, ledger.DonorReference{DonorOrgID: orgID[g.donor], Reference: g.in.Reference})
				order = append(order, gi)
			}
		}
		found := map[ledger.DonorReference]ledger.Grant{}
		if !rep.RoadmapCreated {
			if found, err = ledger.FindGrants(ctx, tx, roadmapID, refs); err != nil {
				return nil, fmt.Errorf("finding grants imported before: %w", err)
			}
		}
		var create []ledger.GrantInput
		var createPos []int
		var moved []int // positions in order whose stored grant has another recipient
		for k, gi := range order {
			g := pl.grants[gi]
			if have, ok := found[refs[k]]; ok {
				if have.RecipientOrgID != orgID[g.recipient] {
					moved = append(moved, k)
					continue
				}
				grantID[gi] = have.ID
				rep.GrantsMatched++
				continue
			}
			in := g.in
			in.RoadmapID = roadmapID
			in.DonorOrgID, in.RecipientOrgID = uuid.MustParse(orgID[g.donor]), uuid.MustParse(orgID[g.recipient])
			create, createPos = append(create, in), append(createPos, gi)
		}
		// A newer version naming another recipient (FTS gives a parked
		// allocation its recipient later): the agreement with that
		// recipient is a grant of its own, its reference suffixed with the
		// recipient; the old grant keeps the reversed entries.
		if len(moved) > 0 {
			var alt []ledger.DonorReference
			for _, k := range moved {
				g := pl.grants[order[k]]
				alt = append(alt, ledger.DonorReference{DonorOrgID: refs[k].DonorOrgID, Reference: movedReference(g.in.Reference, pl.orgs[g.recipient].Organization, orgID[g.recipient])})
			}
			again, err := ledger.FindGrants(ctx, tx, roadmapID, alt)
			if err != nil {
				return nil, fmt.Errorf("finding grants imported before: %w", err)
			}
			var v apperr.Validator
			for i, k := range moved {
				gi := order[k]
				g := pl.grants[gi]
				if have, ok := again[alt[i]]; ok {
					if have.RecipientOrgID != orgID[g.recipient] {
						v.Add(recordLabel(pl.kind, g.rec.RecordID)+".recipient", "grants %s and %s name other recipients than the source now does",
							refs[k].Reference, alt[i].Reference)
						continue
					}
					grantID[gi] = have.ID
					rep.GrantsMatched++
					continue
				}
				in := g.in
				in.Reference = alt[i].Reference
				in.RoadmapID = roadmapID
				in.DonorOrgID, in.RecipientOrgID = uuid.MustParse(orgID[g.donor]), uuid.MustParse(orgID[g.recipient])
				create, createPos = append(create, in), append(createPos, gi)
			}
			if err := v.Err(); err != nil {
				return nil, err
			}
		}
		if len(create) > 0 {
			// The ledger names a refused grant by its source record.
			made, err := s.ledger.CreateGrantsIn(ctx, tx, create, requestID, func(i int) string {
				return recordLabel(pl.kind, pl.grants[createPos[i]].rec.RecordID) + ".grant"
			})
			if err != nil {
				return nil, fmt.Errorf("creating grants: %w", err)
			}
			for k, g := range made {
				gi := createPos[k]
				grantID[gi] = g.ID
				pg := pl.grants[gi]
				prov = append(prov, provRow{entityType: EntityGrant, entityID: g.ID, src: pg.rec, inferred: pg.inferred,
					sourceValues: pg.sourceValues, content: hashOf(g)})
			}
			rep.GrantsCreated += len(made)
		}
	}
	// Entries: reversals of changed records first, then the new entries in
	// record order (a commitment precedes the disbursement it allows). A
	// correction that reverses an entry of this import waits for that one's
	// id: what comes before it is recorded first.
	var entries []ledger.EntryInput
	var origins []origin
	for i, e := range reversals {
		entries = append(entries, e)
		origins = append(origins, origin{r: reversalSrc[i]})
	}
	total := len(entries)
	for _, r := range todo {
		total += len(r.entries)
	}
	done := 0
	flush := func() error {
		rows, err := s.record(ctx, tx, entries, origins, requestID, hashes, rep, done, total, req.Progress)
		done += len(entries)
		entries, origins = entries[:0], origins[:0]
		prov = append(prov, rows...)
		return err
	}
	for _, r := range todo {
		for k := range r.entries {
			e := &r.entries[k]
			e.in.GrantID = uuid.MustParse(grantID[e.grant])
			if e.reverses != nil {
				if e.reverses.id == "" {
					if err := flush(); err != nil {
						return nil, err
					}
				}
				if e.reverses.id == "" {
					return nil, invalid(origin{r: r, e: e}.label(), "value", "corrects an entry that this import does not write: import the activity whole")
				}
				e.in.ReversesID = uuid.MustParse(e.reverses.id)
			}
			entries = append(entries, e.in)
			origins = append(origins, origin{r: r, e: e})
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return prov, nil
}

// movedReference is the reference of an agreement's grant to a recipient
// other than the one its first import named: the reference and the
// recipient's FTS id, IATI identifier or id, cut to the ledger's 100
// characters.
func movedReference(ref string, o org.Organization, id string) string {
	who := o.FTSOrgID
	if who == "" {
		who = o.IATIRef
	}
	if who == "" {
		who = id
	}
	out := ref + "-" + who
	if r := []rune(out); len(r) > 100 {
		out = string(r[:100])
	}
	return out
}

// writeProvenance inserts the provenance rows of a run (the run's own row
// comes last, once its report is complete: the reference is checked at
// commit).
func writeProvenance(ctx context.Context, tx pgx.Tx, runID string, kind string, scopeID uuid.UUID, prov []provRow) error {
	if len(prov) > 0 {
		cols := make([][]string, 9)
		for _, r := range prov {
			sv := r.sourceValues
			if sv == nil {
				sv = map[string]string{}
			}
			svj, err := jsonText(sv)
			if err != nil {
				return err
			}
			inf, err := jsonText(nonNil(r.inferred))
			if err != nil {
				return err
			}
			for k, v := range []string{r.entityType, r.entityID, r.src.FileSHA256, r.src.RecordID, r.src.Version,
				r.src.Position, hex.EncodeToString(r.content), inf, svj} {
				cols[k] = append(cols[k], v)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO provenance (entity_type, entity_id, run_id, source_kind, scope_id, file_sha256, record_id,
				record_version, position, content_sha256, inferred, source_values)
			SELECT x.et, x.eid, $10, $11, $12, decode(x.fs, 'hex'), x.rid, x.ver, x.pos, decode(x.cs, 'hex'),
				ARRAY(SELECT jsonb_array_elements_text(x.inf::jsonb)), x.sv::jsonb
			FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
				AS x(et, eid, fs, rid, ver, pos, cs, inf, sv)`,
			cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], runID, kind, scopeID)
		if err != nil {
			return fmt.Errorf("recording provenance: %w", err)
		}
	}
	return nil
}

// writeRun inserts the run with its report, its files, and its audit event.
func writeRun(ctx context.Context, tx pgx.Tx, runID string, kind string, scopeID uuid.UUID, files []FileReport, rep *Report) error {
	p := auth.FromContext(ctx)
	b := &pgx.Batch{}
	repJSON, err := jsonText(rep)
	if err != nil {
		return err
	}
	b.Queue(`INSERT INTO import_runs (id, source_kind, scope_id, actor, actor_role, report) VALUES ($1, $2, $3, $4, $5, $6::jsonb)`,
		runID, kind, scopeID, p.TokenID, string(p.Role), repJSON)
	for i, f := range files {
		b.Queue(`INSERT INTO import_files (run_id, position, source_kind, scope_id, file_sha256, file_name)
			VALUES ($1, $2, $3, $4, decode($5, 'hex'), $6) ON CONFLICT (source_kind, scope_id, file_sha256) DO NOTHING`,
			runID, i, kind, scopeID, f.SHA256, f.Name)
	}
	if err := audit.Queue(ctx, b, audit.Entry{EntityType: "import_run", EntityID: runID, RequestID: "import:" + runID,
		Change: runChange{RunID: runID, Kind: kind, ScopeID: scopeID.String(), Files: files, Records: rep.Records,
			Unchanged: rep.Unchanged, Corrected: rep.Corrected, OrganizationsCreated: rep.OrganizationsCreated,
			GrantsCreated: rep.GrantsCreated, EntriesCreated: rep.EntriesCreated, EntriesReversed: rep.EntriesReversed,
			ProcurementItemsCreated: rep.ProcurementItemsCreated}}); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("recording the import's provenance: %w", err)
	}
	return nil
}

// runChange is what the audit trail records of an import run; the entries
// and grants it wrote have their own events.
type runChange struct {
	RunID                   string       `json:"runId"`
	Kind                    string       `json:"kind"`
	ScopeID                 string       `json:"scopeId"`
	Files                   []FileReport `json:"files"`
	Records                 int          `json:"records"`
	Unchanged               int          `json:"unchanged"`
	Corrected               int          `json:"corrected"`
	OrganizationsCreated    int          `json:"organizationsCreated"`
	GrantsCreated           int          `json:"grantsCreated"`
	EntriesCreated          int          `json:"entriesCreated"`
	EntriesReversed         int          `json:"entriesReversed"`
	ProcurementItemsCreated int          `json:"procurementItemsCreated"`
}

// hashOf is the SHA-256 of v's JSON.
func hashOf(v any) []byte {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return h[:]
}

// jsonText is v's JSON as text.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// origin is the record (and planned entry, none for the reversal of a
// changed record's entry) an entry comes from.
type origin struct {
	r *planRecord
	e *planEntry
}

// label names the entry's place in the source.
func (o origin) label() string {
	if o.e != nil && o.e.label != "" {
		return o.e.label
	}
	return o.r.label
}

// record records entries in chunks through the ledger, naming a refused one
// by its source record, and answers their provenance rows.
func (s *Store) record(ctx context.Context, tx pgx.Tx, entries []ledger.EntryInput, origins []origin, requestID string,
	hashes map[*planRecord][]byte, rep *Report, done, total int, progress func(int, int)) ([]provRow, error) {
	var prov []provRow
	if len(entries) == 0 {
		return nil, nil
	}
	const chunk = 10 * ledger.MaxBatch
	for start := 0; start < len(entries); start += chunk {
		end := min(start+chunk, len(entries))
		// The ledger names a refused entry by its place in the source.
		got, err := s.ledger.RecordIn(ctx, tx, entries[start:end], requestID, func(i int) string { return origins[start+i].label() })
		if err != nil {
			return nil, fmt.Errorf("recording entries: %w", err)
		}
		for k, t := range got {
			o := origins[start+k]
			row := provRow{entityType: EntityTransaction, entityID: t.ID, src: o.r.source, content: hashes[o.r]}
			if o.e != nil {
				o.e.id = t.ID
				row.inferred, row.sourceValues = o.e.inferred, o.e.sourceValues
				if o.e.position != "" {
					row.src.Position = o.e.position
				}
			}
			if t.Type == ledger.Reversal {
				rep.EntriesReversed++
			} else {
				rep.EntriesCreated++
			}
			prov = append(prov, row)
		}
		if progress != nil {
			progress(done+end, total)
		}
	}
	return prov, nil
}
