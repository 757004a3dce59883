package imports

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

// Store runs imports and exports over one database.
type Store struct {
	pool     *pgxpool.Pool
	ledger   *ledger.Store
	orgs     *org.Store
	proc     *procurement.Store
	roadmaps *roadmap.Store
}

// New returns the imports of the database behind pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, ledger: ledger.New(pool), orgs: org.New(pool), proc: procurement.New(pool), roadmaps: roadmap.New(pool)}
}

// errRollback ends a transaction that must write nothing (a dry run, or an
// import that changes nothing) after it has run every check.
var errRollback = errors.New("rolled back")

// Run imports req's files. The caller must be an admin, a coordinator or
// the operator. It answers the report; when problems refuse the import it
// answers the report too, with an INVALID_ARGUMENT error naming each record
// and field, and writes nothing. Imports run one at a time (lockImports).
func (s *Store) Run(ctx context.Context, req Request) (*Report, error) {
	if err := auth.FromContext(ctx).Require(auth.Coordinator); err != nil {
		return nil, err
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	rep := &Report{Kind: req.Kind, DryRun: req.DryRun, Files: make([]FileReport, len(req.Files)),
		Totals: []Total{}, NotCounted: []Note{}, Skipped: []Problem{}, Problems: []Problem{}, Rounded: []Rounded{},
		Variances: []Variance{}, RepeatedReferences: []RefGroup{}, Inconsistencies: []Problem{}, Notes: []string{}}
	for i, f := range req.Files {
		sum := sha256.Sum256(f.Data)
		rep.Files[i] = FileReport{Name: f.Name, SHA256: hex.EncodeToString(sum[:])}
	}
	var err error
	switch req.Kind {
	case FTS:
		err = s.runFTS(ctx, req, rep)
	case IATI:
		err = s.runIATI(ctx, req, rep)
	case OCDS:
		err = s.runOCDS(ctx, req, rep)
	}
	if err == nil && len(rep.Problems) > 0 {
		err = problemsError(rep.Problems)
	}
	if err != nil {
		rep.RunID = ""
		return rep, fmt.Errorf("importing %s: %w", req.Kind, err)
	}
	return rep, nil
}

// checkRequest refuses a request that names no files or the wrong scope.
func checkRequest(req Request) error {
	var v apperr.Validator
	v.Check(slices.Contains(Kinds, req.Kind), "kind", "unknown source kind %q (want one of %s)", req.Kind, strings.Join(Kinds, ", "))
	v.Check(len(req.Files) > 0, "files", "at least one file")
	for i, f := range req.Files {
		v.Text(fmt.Sprintf("files[%d].name", i), f.Name, true, 300)
		v.Check(len(f.Data) > 0, fmt.Sprintf("files[%d].content", i), "the file is empty")
	}
	if req.Kind == OCDS {
		v.Check(req.GrantID != uuid.Nil, "grantId", "required: the grant the procurement items belong to")
		v.Check(req.RoadmapID == uuid.Nil, "roadmapId", "an OCDS import goes into a grant (grantId)")
	} else {
		v.Check(req.GrantID == uuid.Nil, "grantId", "only OCDS imports go into a grant")
		v.Check(req.MilestoneID == uuid.Nil, "milestoneId", "only OCDS imports take a milestone")
	}
	if req.RoadmapID != uuid.Nil {
		v.Check(req.NewRoadmap == (RoadmapHint{}), "newRoadmap", "only without roadmapId (a roadmap to create)")
	}
	v.Text("newRoadmap.title", req.NewRoadmap.Title, false, 300)
	return v.Err()
}

// problemsError is the INVALID_ARGUMENT error of problems that refuse an
// import: one violation per problem, named record.field (the first 100;
// the report lists them all).
func problemsError(probs []Problem) error {
	var v apperr.Validator
	for i, p := range probs {
		if i == 100 {
			v.Add("", "and %d more problems (see the report)", len(probs)-100)
			break
		}
		field := p.Record
		if p.Field != "" {
			field += "." + p.Field
		}
		v.Add(field, "%s", p.Message)
	}
	return v.Err()
}

// invalid is an INVALID_ARGUMENT naming a record's field.
func invalid(record, field, format string, args ...any) error {
	return apperr.Invalid(record+"."+field, format, args...)
}

// inTx runs fn in one transaction. With write false (a dry run, or nothing to change) it rolls back after
// fn's checks. rep is reset to its state before each attempt.
func (s *Store) inTx(ctx context.Context, rep *Report, fn func(tx pgx.Tx) (write bool, err error)) error {
	base := rep.clone()
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		*rep = base.clone()
		write, err := fn(tx)
		if err != nil {
			return err
		}
		if !write {
			return errRollback
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

// lockImports takes the transaction-scoped lock imports run under, one at
// a time: two imports of one file must not both write it, and two imports
// naming one new organisation must not both register it. Imports are rare
// and each is one transaction; waiting is cheaper than a conflict found at
// commit.
func lockImports(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('tranche-import', 0))`)
	return err
}

// alreadyImported marks the files imported into the scope before.
func alreadyImported(ctx context.Context, tx pgx.Tx, kind string, scope uuid.UUID, rep *Report) error {
	sums := make([]string, len(rep.Files))
	for i, f := range rep.Files {
		sums[i] = f.SHA256
	}
	rows, err := tx.Query(ctx, `SELECT encode(file_sha256, 'hex') FROM import_files
		WHERE source_kind = $1 AND scope_id = $2 AND file_sha256 = ANY (SELECT decode(x, 'hex') FROM unnest($3::text[]) x)`,
		kind, scope, sums)
	if err != nil {
		return err
	}
	seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for i := range rep.Files {
		if slices.Contains(seen, rep.Files[i].SHA256) {
			rep.Files[i].AlreadyImported = true
		}
	}
	return nil
}

// milestoneCodes maps the roadmap's milestone codes (lower case) to ids,
// for sources that name a cluster or sector; read in the import's
// transaction (a second connection could wait on a full pool).
func milestoneCodes(ctx context.Context, tx pgx.Tx, roadmapID uuid.UUID) (map[string]uuid.UUID, error) {
	ms, err := roadmap.MilestonesAt(ctx, tx, roadmapID, time.Now())
	if err != nil {
		return nil, err
	}
	out := map[string]uuid.UUID{}
	for _, m := range ms {
		out[strings.ToLower(strings.TrimSpace(m.Code))] = uuid.MustParse(m.ID)
	}
	return out, nil
}

// scopeRoadmap resolves the roadmap an FTS or IATI import goes into: the one
// named (which must exist) or, with none named, one created from propose.
func (s *Store) scopeRoadmap(ctx context.Context, tx pgx.Tx, req Request, propose func() (roadmap.Input, error), rep *Report) (roadmap.Roadmap, error) {
	if req.RoadmapID != uuid.Nil {
		rm, err := roadmap.Get(ctx, tx, req.RoadmapID.String())
		if errors.Is(err, apperr.ErrNotFound) {
			return rm, apperr.Invalid("roadmapId", "roadmap %s does not exist", req.RoadmapID)
		}
		return rm, err
	}
	in, err := propose()
	if err != nil {
		return roadmap.Roadmap{}, apperr.Invalid("newRoadmap.country", "%v", err)
	}
	rm, err := roadmap.CreateIn(ctx, tx, in)
	if err != nil {
		return rm, apperr.Fields(err, func(f string) string { return "newRoadmap." + f })
	}
	rep.RoadmapCreated = true
	return rm, nil
}

// runFTS imports the pages of one FTS response into a roadmap.
func (s *Store) runFTS(ctx context.Context, req Request, rep *Report) error {
	src, ok := parseFTS(req, rep)
	if !ok {
		return nil
	}
	return s.runPlanned(ctx, req, rep, func() (roadmap.Input, error) { return ftsRoadmap(src, req.NewRoadmap) },
		func(rm roadmap.Roadmap, ms map[string]uuid.UUID) (*plan, error) {
			return planFTS(src, rm.ReportingCurrency, ms, rep)
		}, nil)
}

// runPlanned runs an import that builds a plan (FTS, IATI) in one
// transaction: resolve the roadmap, plan, apply, record the run, check the
// ledger against the source.
func (s *Store) runPlanned(ctx context.Context, req Request, rep *Report, propose func() (roadmap.Input, error),
	build func(roadmap.Roadmap, map[string]uuid.UUID) (*plan, error), expect map[string]decimal.Decimal) error {
	runID := uuid.Must(uuid.NewV7()).String()
	return s.inTx(ctx, rep, func(tx pgx.Tx) (bool, error) {
		if err := lockImports(ctx, tx); err != nil {
			return false, err
		}
		rm, err := s.scopeRoadmap(ctx, tx, req, propose, rep)
		if err != nil {
			return false, err
		}
		rmID := uuid.MustParse(rm.ID)
		rep.RoadmapID = rm.ID
		ms := map[string]uuid.UUID{}
		if !rep.RoadmapCreated {
			if ms, err = milestoneCodes(ctx, tx, rmID); err != nil {
				return false, err
			}
		}
		if err := alreadyImported(ctx, tx, req.Kind, rmID, rep); err != nil {
			return false, err
		}
		pl, err := build(rm, ms)
		if err != nil {
			return false, err
		}
		prov, err := s.applyPlan(ctx, tx, pl, rmID, runID, req, rep)
		if err != nil {
			return false, err
		}
		if err := writeProvenance(ctx, tx, runID, req.Kind, rmID, prov); err != nil {
			return false, err
		}
		if err := ledgerTotals(ctx, tx, req.Kind, rm, expect, rep); err != nil {
			return false, err
		}
		if len(prov) == 0 && !rep.RoadmapCreated {
			rep.Notes = append(rep.Notes, "nothing to change: every record is in the ledger as the source has it")
			return false, nil
		}
		if req.DryRun {
			return false, nil
		}
		rep.RunID = runID
		return true, writeRun(ctx, tx, runID, req.Kind, rmID, rep.Files, rep)
	})
}

// ledgerTotals adds what the ledger now holds from this source in the
// roadmap beside what the source says: for FTS, the live commitments'
// reporting values (USD) against data.incoming.fundingTotal; for IATI, the
// live entries per type and currency against the counted totals (expect,
// by ledger type and currency). An IATI row may differ by commitments
// implied for disbursements (inferred) and by expenditures that cannot be
// told to one grant (in notCounted).
func ledgerTotals(ctx context.Context, tx pgx.Tx, kind string, rm roadmap.Roadmap, expect map[string]decimal.Decimal, rep *Report) error {
	rows, err := tx.Query(ctx, `SELECT t.bucket, t.currency, sum(CASE WHEN t.type = 'REVERSAL' THEN -t.amount ELSE t.amount END)::text,
			sum(t.reporting_amount)::text
		FROM transactions t JOIN provenance p ON p.entity_type = 'transaction' AND p.entity_id = t.id
		WHERE p.scope_id = $1 AND p.source_kind = $2 GROUP BY 1, 2 ORDER BY 1, 2`, rm.ID, kind)
	if err != nil {
		return err
	}
	type sum struct {
		bucket, currency string
		amount, rep      decimal.Decimal
	}
	sums, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sum, error) {
		var x sum
		var a, b string
		if err := r.Scan(&x.bucket, &x.currency, &a, &b); err != nil {
			return x, err
		}
		x.amount, _ = decimal.NewFromString(a)
		x.rep, _ = decimal.NewFromString(b)
		return x, nil
	})
	if err != nil {
		return err
	}
	if kind == FTS {
		if rm.ReportingCurrency != "USD" || len(rep.Totals) == 0 {
			return nil
		}
		committed := decimal.Zero
		for _, x := range sums {
			if x.bucket == ledger.Commitment {
				committed = committed.Add(x.rep)
			}
		}
		src := rep.Totals[0].Source
		rep.Totals = append(rep.Totals, Total{Name: "ledger: committed from FTS flows in this roadmap, reporting USD", Currency: "USD",
			Source: src, Computed: committed, Matches: src.Equal(committed)})
		return nil
	}
	seen := map[string]bool{}
	for _, x := range sums {
		k := x.bucket + " " + x.currency
		seen[k] = true
		rep.Totals = append(rep.Totals, Total{Name: "ledger: " + x.bucket + " from IATI records in this roadmap, against counted",
			Currency: x.currency, Source: expect[k], Computed: x.amount, Matches: expect[k].Equal(x.amount)})
	}
	for k, v := range expect {
		if !seen[k] && !v.IsZero() {
			b, c, _ := strings.Cut(k, " ")
			rep.Totals = append(rep.Totals, Total{Name: "ledger: " + b + " from IATI records in this roadmap, against counted",
				Currency: c, Source: v, Computed: decimal.Zero, Matches: false})
		}
	}
	return nil
}

// runIATI imports IATI activity files into a roadmap.
func (s *Store) runIATI(ctx context.Context, req Request, rep *Report) error {
	src, ok := parseIATI(req, rep)
	if !ok {
		return nil
	}
	return s.runPlanned(ctx, req, rep, func() (roadmap.Input, error) { return iatiRoadmap(src, req.NewRoadmap) },
		func(_ roadmap.Roadmap, ms map[string]uuid.UUID) (*plan, error) { return planIATI(src, ms, rep) }, src.expected())
}
