package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Store runs detection and keeps its flags.
type Store struct {
	pool *pgxpool.Pool
	cfg  Config
	// rules, when set, replace allRules: the engine's tests run it on rules
	// whose findings they control.
	rules []rule
}

// New returns the detection store over pool with thresholds cfg (verified
// by the caller: LoadConfig or DefaultConfig).
func New(pool *pgxpool.Pool, cfg Config) *Store { return &Store{pool: pool, cfg: cfg} }

// Config is the thresholds the store's runs apply.
func (s *Store) Config() Config { return s.cfg }

// KindCounts is what one run did to the flags of one kind.
type KindCounts struct {
	Kind string `json:"kind"`
	// New flags: findings no flag had before.
	New int `json:"new"`
	// Reopened: RESOLVED flags whose finding holds again.
	Reopened int `json:"reopened"`
	// StillOpen: unresolved flags (open, acknowledged or dismissed) found again.
	StillOpen int `json:"stillOpen"`
	// Resolved: unresolved flags this run no longer found.
	Resolved int `json:"resolved"`
}

// RunResult is what a run answers.
type RunResult struct {
	RunID     string       `json:"runId"`
	RoadmapID string       `json:"roadmapId"`
	AsOf      time.Time    `json:"asOf"`
	Counts    []KindCounts `json:"counts"` // one per kind, in Kinds order
	// Skipped is set by RunAll for a roadmap another server had just run.
	Skipped bool `json:"-"`
}

// today is the current UTC day, the default as-of day of a run.
func today() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

// Run applies every rule to a roadmap as of asOf (zero: today, UTC) and
// brings the roadmap's flags in line with what was found, in one transaction:
// a new finding opens a flag; a flag found again keeps its status and review
// and gets the run's evidence; a RESOLVED flag found again is OPEN again (its
// last review stays on it as history); an unresolved flag not found is
// RESOLVED by this run. Coordinators and admins run detection (and the
// operator, for background runs).
//
// Runs of one roadmap are serialised by a transaction-scoped advisory lock
// on the roadmap, so two servers running detection at once apply their runs
// one after the other and never raise one finding twice; the unique
// (roadmap, fingerprint) key makes that a guarantee of the schema too.
// Runs of different roadmaps touch different flags and do not wait for
// each other.
func (s *Store) Run(ctx context.Context, roadmapID uuid.UUID, asOf time.Time) (RunResult, error) {
	return s.run(ctx, roadmapID, asOf, 0)
}

// RunAll runs detection as of today for every roadmap, skipping those run
// as of today within fresh (by another server of a deployment, or a
// coordinator). It goes on after a roadmap fails and returns every failure.
func (s *Store) RunAll(ctx context.Context, fresh time.Duration) ([]RunResult, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM roadmaps ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing roadmaps to detect: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("listing roadmaps to detect: %w", err)
	}
	var out []RunResult
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		r, err := s.run(ctx, id, time.Time{}, fresh)
		if err != nil {
			errs = append(errs, fmt.Errorf("roadmap %s: %w", id, err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func (s *Store) run(ctx context.Context, roadmapID uuid.UUID, asOf time.Time, fresh time.Duration) (RunResult, error) {
	p := auth.FromContext(ctx)
	if err := p.Require(auth.Coordinator); err != nil {
		return RunResult{}, err
	}
	if asOf.IsZero() {
		asOf = today()
	}
	asOf = time.Date(asOf.Year(), asOf.Month(), asOf.Day(), 0, 0, 0, 0, time.UTC)
	var v apperr.Validator
	v.Date("asOf", asOf, false)
	// A day past 2099 is reported once, as out of range, not also as future.
	v.Check(v.Err() != nil || !asOf.After(today()), "asOf", "%s is in the future: detection looks at what has happened", asOf.Format(time.DateOnly))
	if err := v.Err(); err != nil {
		return RunResult{}, err
	}
	res := RunResult{RunID: uuid.Must(uuid.NewV7()).String(), RoadmapID: roadmapID.String(), AsOf: asOf}
	started := time.Now()
	// Runs of one roadmap take turns on a session-level advisory lock taken
	// before the run's transaction begins, so that transaction's snapshot
	// (REPEATABLE READ: every rule sees one state of the data) starts after
	// the previous run committed.
	conn, err := s.lockRoadmap(ctx, roadmapID)
	if err != nil {
		return RunResult{}, fmt.Errorf("waiting for other runs of the roadmap: %w", err)
	}
	defer conn.Release()
	defer func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1, hashtext($2))`, runLockClass, roadmapID.String()); err != nil {
			conn.Conn().Close(context.Background()) // closing the session releases its locks
		}
	}()
	// A review committed during the run on a flag the run then updates is a
	// serialization failure: InTxWith runs the whole run again.
	err = postgres.InTxWith(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		res.Skipped, res.Counts = false, nil
		if fresh > 0 {
			var recent bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM detection_runs WHERE roadmap_id = $1 AND as_of = $2
				AND finished_at > clock_timestamp() - $3::interval)`, roadmapID, asOf, fresh).Scan(&recent); err != nil {
				return err
			}
			if recent {
				res.Skipped = true
				return nil
			}
		}
		// Take a transaction id now, not at the first write seconds later:
		// the run's rows are dated by its start (now()), and an audit pack
		// of "now" waits for the transactions that hold one (reports settle).
		if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			return err
		}
		if err := tuneForRules(ctx, tx); err != nil {
			return err
		}
		sc, err := loadScope(ctx, tx, roadmapID, asOf, s.cfg)
		if err != nil {
			return err
		}
		found, err := s.find(ctx, tx, sc)
		if err != nil {
			return err
		}
		res.Counts, err = apply(ctx, tx, p, res, found, started)
		return err
	})
	if err != nil {
		return RunResult{}, fmt.Errorf("running detection: %w", err)
	}
	return res, nil
}

// lockRoadmap returns a connection holding the run lock of a roadmap. While
// another run holds it, it waits without holding a connection: callers
// queued behind a long run (a coordinator clicking twice, the background
// loop of every replica) must not drain the pool the API needs. It tries
// again after a pause that doubles up to a second.
func (s *Store) lockRoadmap(ctx context.Context, roadmapID uuid.UUID) (*pgxpool.Conn, error) {
	pause := 20 * time.Millisecond
	for {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		var locked bool
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, runLockClass, roadmapID.String()).Scan(&locked)
		if err != nil {
			conn.Conn().Close(context.Background()) // the lock may yet have been granted: drop the session
			conn.Release()
			return nil, err
		}
		if locked {
			return conn, nil
		}
		conn.Release()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// tuneForRules sets, for the transaction, what the rules' statements need:
// they sort and hash the whole roadmap's journal, so with the default
// work_mem their sorts spill to disk, and their plans cost enough to cross
// the JIT thresholds, whose compilation took longer than the queries it was
// meant to speed up (about 1 s at 1M entries).
func tuneForRules(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT set_config('jit', 'off', true), set_config('work_mem', '256MB', true)`)
	return err
}

// runLockClass is the first key of the advisory lock a run holds on its
// roadmap (the second is a hash of the roadmap id), apart from the audit
// sealer's single-key lock.
const runLockClass = 7346009

// ruleHelpers is how many connections besides the run's own may apply its
// rules at once. Each imports the run's snapshot, so every rule sees the
// same state of the data whichever connection applies it. Helpers are taken
// only from spare connections: a run never waits for one (runs waiting for
// each other's locks hold connections; waiting for more could deadlock), and
// with none spare the run's own transaction applies every rule. One: on a
// 2-core database server a second helper only made the three statements
// contend (BenchmarkDetect at 1 000 000 entries, rerun 12.2 s with two
// helpers, 8.7 s with one).
const ruleHelpers = 1

// find applies the store's rules (every rule, or those a test injected) in
// the run's transaction tx and in up to ruleHelpers helper transactions on
// tx's snapshot, taking rules from one queue in order (the costliest first),
// and returns the findings in rule order.
func (s *Store) find(ctx context.Context, tx pgx.Tx, sc scope) ([]finding, error) {
	rules := s.rules
	if rules == nil {
		rules = allRules()
	}
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("sharing the run's snapshot: %w", err)
	}
	queue := make(chan int, len(rules))
	for i := range rules {
		queue <- i
	}
	close(queue)
	found := make([][]finding, len(rules))
	work := func(q postgres.Querier) error {
		for i := range queue {
			fs, err := rules[i].find(ctx, q, sc)
			if err != nil {
				return fmt.Errorf("detecting %s: %w", rules[i].kind, err)
			}
			found[i] = fs
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, ruleHelpers+1)
	for h := 1; h <= ruleHelpers && h < len(rules) && s.spareConns(); h++ {
		conn, err := s.idleConn(ctx)
		if err != nil || conn == nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Release()
			errs[h] = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(htx pgx.Tx) error {
				// The snapshot id comes from the server; SET takes no parameters.
				if _, err := htx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+strings.ReplaceAll(snapshot, "'", "")+`'`); err != nil {
					return fmt.Errorf("importing the run's snapshot: %w", err)
				}
				if err := tuneForRules(ctx, htx); err != nil {
					return err
				}
				return work(htx)
			})
		}()
	}
	errs[0] = work(tx)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []finding
	seen := map[string]bool{}
	for i, fs := range found {
		for _, f := range fs {
			if fp := f.fingerprint(); seen[fp] {
				return nil, fmt.Errorf("detecting %s: two findings with key %q", rules[i].kind, f.Key)
			} else {
				seen[fp] = true
			}
		}
		out = append(out, fs...)
	}
	return out, nil
}

// spareConns tells whether the pool has a connection idle or room to open one.
func (s *Store) spareConns() bool {
	st := s.pool.Stat()
	return st.IdleConns() > 0 || st.TotalConns() < st.MaxConns()
}

// idleConn acquires a connection only if one is at hand: it gives up after
// a moment rather than wait for one (see ruleHelpers). nil when none.
func (s *Store) idleConn(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	conn, err := s.pool.Acquire(actx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	return conn, nil
}

// uuidSubjects are the subject types whose ids are uuids of rows the
// engine can follow to grants (and so to who may see the flag).
var uuidSubjects = []string{SubjectGrant, SubjectTransaction, SubjectMilestone, SubjectItem, SubjectOrganization}

// check refuses a finding the flags table could not hold faithfully: it is a
// rule's defect, reported as an internal error rather than stored half-right.
func (f finding) check() error {
	switch {
	case !slices.Contains(Kinds, f.Kind):
		return fmt.Errorf("finding of unknown kind %q", f.Kind)
	case !slices.Contains(Severities, f.Severity):
		return fmt.Errorf("%s finding %q: unknown severity %q", f.Kind, f.Key, f.Severity)
	case f.Key == "":
		return fmt.Errorf("%s finding without a key", f.Kind)
	case len(f.Subjects) == 0:
		return fmt.Errorf("%s finding %q names no subject", f.Kind, f.Key)
	case f.Explanation == "":
		return fmt.Errorf("%s finding %q has no explanation", f.Kind, f.Key)
	}
	for _, sub := range f.Subjects {
		if !slices.Contains(uuidSubjects, sub.Type) {
			return fmt.Errorf("%s finding %q: unknown subject type %q", f.Kind, f.Key, sub.Type)
		}
		if uuid.Validate(sub.ID) != nil {
			return fmt.Errorf("%s finding %q: subject %s id %q is not a uuid", f.Kind, f.Key, sub.Type, sub.ID)
		}
	}
	return nil
}

// upsertSQL writes every finding of a run in one statement. It derives who
// may see each flag from its subjects (the grants named directly or through
// their journal entries and procurement items, and their donors and
// recipients), inserts new fingerprints as OPEN flags and
// updates existing ones only where something changed: a RESOLVED flag is
// unresolved again (OPEN, or DISMISSED or ACKNOWLEDGED if that was its last
// review), an unresolved one keeps its status and review and takes the
// new severity, subjects, evidence and explanation. A flag found again
// unchanged is not written at all: a rerun costs its reads, not a new
// version of every flag with all its index entries (BenchmarkRunWrites).
// prev is read
// from the statement's snapshot, before the upsert, so each finding's
// outcome is known; flag_events gets a row for every flag opened, reopened
// or changed.
const upsertSQL = `
WITH input AS (
  SELECT new_id, fingerprint, kind, severity, subjects::jsonb AS subjects, evidence::jsonb AS evidence, explanation
  FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
    AS x(new_id, fingerprint, kind, severity, subjects, evidence, explanation)
), subj AS (
  SELECT i.fingerprint, s->>'type' AS type, (s->>'id')::uuid AS id
  FROM input i CROSS JOIN LATERAL jsonb_array_elements(i.subjects) s
), fgrants AS (
  SELECT fingerprint, id AS grant_id FROM subj WHERE type = 'grant'
  -- A probe of the primary key per subject (scalar subqueries): a join let
  -- the planner hash the whole journal for a few thousand entries.
  UNION SELECT s.fingerprint, (SELECT t.grant_id FROM transactions t WHERE t.id = s.id) FROM subj s WHERE s.type = 'transaction'
  UNION SELECT s.fingerprint, (SELECT pi.grant_id FROM procurement_items pi WHERE pi.id = s.id) FROM subj s WHERE s.type = 'procurement_item'
), vis AS (
  SELECT fingerprint, array_agg(DISTINCT g.id) AS grant_ids, array_agg(DISTINCT g.donor_org_id) AS donors,
         array_agg(DISTINCT g.recipient_org_id) AS recipients
  FROM fgrants fg JOIN grants g ON g.id = fg.grant_id GROUP BY fingerprint
), candidates AS (
  -- Who sees a flag follows from its grants only (array_agg DISTINCT sorts):
  -- an organisation named as a subject (a milestone's responsible one) is
  -- not a party to the other organisations' grants the flag is about.
  SELECT i.*, coalesce(v.grant_ids, '{}') AS grant_ids, coalesce(v.donors, '{}') AS donors,
         coalesce(v.recipients, '{}') AS recipients
  FROM input i LEFT JOIN vis v USING (fingerprint)
), prev AS (
  SELECT f.id, f.fingerprint, f.status,
         f.status = 'RESOLVED'
           OR (f.severity, f.subjects, f.evidence, f.explanation, f.grant_ids, f.donor_org_ids, f.recipient_org_ids)
              IS DISTINCT FROM (c.severity, c.subjects, c.evidence, c.explanation, c.grant_ids, c.donors, c.recipients)
           AS changed
  FROM flags f JOIN candidates c ON f.roadmap_id = $1::uuid AND f.fingerprint = c.fingerprint
), up AS (
  INSERT INTO flags AS f (id, roadmap_id, kind, fingerprint, severity, status, subjects, grant_ids, donor_org_ids,
                          recipient_org_ids, evidence, explanation, detected_at, first_run, updated_at)
  SELECT new_id, $1::uuid, kind, fingerprint, severity, 'OPEN', subjects, grant_ids, donors, recipients, evidence, explanation,
         now(), $2::uuid, now()
  FROM candidates c
  -- Only new and changed findings reach the insert: ON CONFLICT locks the
  -- row it meets even when its WHERE then skips it, which for a rerun
  -- would dirty every unchanged flag.
  WHERE NOT EXISTS (SELECT FROM prev WHERE prev.fingerprint = c.fingerprint AND NOT prev.changed)
  ORDER BY fingerprint
  ON CONFLICT (roadmap_id, fingerprint) DO UPDATE SET
    severity = excluded.severity, subjects = excluded.subjects, grant_ids = excluded.grant_ids,
    donor_org_ids = excluded.donor_org_ids, recipient_org_ids = excluded.recipient_org_ids,
    evidence = excluded.evidence, explanation = excluded.explanation,
    -- A finding that holds again returns to what its last review made of
    -- it: a dismissal or an acknowledgement is about the finding, and a
    -- replay of a past day must not undo the reviews of today's flags.
    status = CASE WHEN f.status <> 'RESOLVED' THEN f.status
                  WHEN f.review_action = 'DISMISS' THEN 'DISMISSED'
                  WHEN f.review_action = 'ACKNOWLEDGE' THEN 'ACKNOWLEDGED'
                  ELSE 'OPEN' END,
    resolved_by_run = NULL, resolved_at = NULL, updated_at = now()
  WHERE f.status = 'RESOLVED'
     OR (f.severity, f.subjects, f.evidence, f.explanation, f.grant_ids, f.donor_org_ids, f.recipient_org_ids)
        IS DISTINCT FROM (excluded.severity, excluded.subjects, excluded.evidence, excluded.explanation,
                          excluded.grant_ids, excluded.donor_org_ids, excluded.recipient_org_ids)
  RETURNING f.id, f.fingerprint, f.status, f.severity, f.evidence, f.explanation
), outcome AS (
  SELECT coalesce(up.id, prev.id) AS id, i.kind, up.status, up.severity, up.evidence, up.explanation,
         CASE WHEN prev.id IS NULL THEN 'OPENED'
              WHEN prev.status = 'RESOLVED' THEN 'REOPENED'
              WHEN up.id IS NOT NULL THEN 'UPDATED'
         END AS event
  FROM input i LEFT JOIN prev USING (fingerprint) LEFT JOIN up USING (fingerprint)
), ev AS (
  INSERT INTO flag_events (flag_id, run_id, event, status, severity, evidence, explanation, actor)
  SELECT id, $2::uuid, event, status, severity, evidence, explanation, $10::text FROM outcome WHERE event IS NOT NULL ORDER BY id
)
SELECT id::text, kind, coalesce(event, '') FROM outcome`

// resolveSQL resolves the roadmap's unresolved flags whose fingerprint the
// run did not find ($3, every fingerprint found).
const resolveSQL = `
WITH res AS (
  UPDATE flags f SET status = 'RESOLVED', resolved_by_run = $2::uuid, resolved_at = now(), updated_at = now()
  WHERE f.roadmap_id = $1::uuid AND f.status <> 'RESOLVED'
    AND NOT EXISTS (SELECT FROM unnest($3::text[]) found (fingerprint) WHERE found.fingerprint = f.fingerprint)
  RETURNING f.id, f.kind, f.severity
), ev AS (
  INSERT INTO flag_events (flag_id, run_id, event, status, severity, actor)
  SELECT id, $2::uuid, 'RESOLVED', 'RESOLVED', severity, $4::text FROM res ORDER BY id
)
SELECT id::text, kind FROM res`

// apply writes a run's findings, resolves what it no longer found, records
// the run and its audit event, and returns the counts per kind.
func apply(ctx context.Context, tx pgx.Tx, p auth.Principal, res RunResult, found []finding, started time.Time) ([]KindCounts, error) {
	// JIT is off for the whole run (Store.run): the planner cannot size
	// these statements' CTEs over arrays and overestimates them by orders of
	// magnitude, which made JIT compile them, a second of compiling for
	// 20 000 findings against a few hundred milliseconds of work.
	n := len(found)
	ids, fps, kinds, sevs := make([]uuid.UUID, n), make([]string, n), make([]string, n), make([]string, n)
	subjects, evidence, expl := make([]string, n), make([]string, n), make([]string, n)
	for i, f := range found {
		if err := f.check(); err != nil {
			return nil, err
		}
		ids[i], fps[i], kinds[i], sevs[i], expl[i] = uuid.Must(uuid.NewV7()), f.fingerprint(), f.Kind, f.Severity, f.Explanation
		b, err := json.Marshal(f.Subjects)
		if err != nil {
			return nil, err
		}
		subjects[i] = string(b)
		if f.Evidence == nil {
			f.Evidence = map[string]any{}
		}
		if b, err = json.Marshal(f.Evidence); err != nil {
			return nil, fmt.Errorf("%s finding %q: evidence: %w", f.Kind, f.Key, err)
		}
		evidence[i] = string(b)
	}
	counts := map[string]*KindCounts{}
	count := func(kind string) *KindCounts {
		if counts[kind] == nil {
			counts[kind] = &KindCounts{Kind: kind}
		}
		return counts[kind]
	}
	actor := actorOf(p)
	change := runChange{RunID: res.RunID, RoadmapID: res.RoadmapID, AsOf: res.AsOf.Format(time.DateOnly),
		Opened: []string{}, Reopened: []string{}, Resolved: []string{}}
	rows, err := tx.Query(ctx, upsertSQL, res.RoadmapID, res.RunID, ids, fps, kinds, sevs, subjects, evidence, expl, actor)
	if err != nil {
		return nil, fmt.Errorf("writing flags: %w", err)
	}
	var id, kind, event string
	_, err = pgx.ForEachRow(rows, []any{&id, &kind, &event}, func() error {
		c := count(kind)
		switch event {
		case "OPENED":
			c.New++
			change.Opened = append(change.Opened, id)
		case "REOPENED":
			c.Reopened++
			change.Reopened = append(change.Reopened, id)
		default:
			c.StillOpen++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("writing flags: %w", err)
	}
	rows, err = tx.Query(ctx, resolveSQL, res.RoadmapID, res.RunID, fps, actor)
	if err != nil {
		return nil, fmt.Errorf("resolving flags: %w", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&id, &kind}, func() error {
		count(kind).Resolved++
		change.Resolved = append(change.Resolved, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolving flags: %w", err)
	}
	out := make([]KindCounts, 0, len(Kinds))
	for _, k := range Kinds {
		out = append(out, *count(k))
	}
	slices.Sort(change.Opened)
	slices.Sort(change.Reopened)
	slices.Sort(change.Resolved)
	change.Counts = out
	cb, err := json.Marshal(countsByKind(out))
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO detection_runs (id, roadmap_id, as_of, started_at, actor, actor_role, counts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, res.RunID, res.RoadmapID, res.AsOf, started, actor, string(p.Role), string(cb)); err != nil {
		return nil, fmt.Errorf("recording the run: %w", err)
	}
	if err := audit.Record(ctx, tx, audit.Entry{EntityType: "detection_run", EntityID: res.RunID, Change: change}); err != nil {
		return nil, err
	}
	return out, nil
}

// runChange is a run's audit event: what it found and which flags it
// opened, reopened and resolved (flags found again with new evidence are in
// flag_events).
type runChange struct {
	RunID     string       `json:"runId"`
	RoadmapID string       `json:"roadmapId"`
	AsOf      string       `json:"asOf"`
	Counts    []KindCounts `json:"counts"`
	Opened    []string     `json:"opened"`
	Reopened  []string     `json:"reopened"`
	Resolved  []string     `json:"resolved"`
}

func countsByKind(cs []KindCounts) map[string]KindCounts {
	out := make(map[string]KindCounts, len(cs))
	for _, c := range cs {
		out[c.Kind] = c
	}
	return out
}

// actorOf is who a run or review is recorded as: the token, or for the
// operator (background runs, CLI) its name.
func actorOf(p auth.Principal) string {
	if p.TokenID != "" {
		return p.TokenID
	}
	return string(p.Role) + ":" + p.Name
}
