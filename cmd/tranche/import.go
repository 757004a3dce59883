package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/server"
)

const importAbout = `Imports the files of one source kind into the ledger, reading the database
directly (DATABASE_URL, else the embedded cluster in --data-dir) as the
operator:

  fts   OCHA FTS flows (JSON) into a roadmap: --roadmap ID, or none to create
        one (--country and --title override what the source suggests)
  iati  IATI activity files (XML, standard 1.0x or 2.0x) into a roadmap, as fts
  ocds  OCDS releases or records (JSON) as procurement items of a grant:
        --grant ID (required), --milestone ID (required unless the grant is
        allocated to one milestone)

Prints what the import did (or with --dry-run would do): the files with their
SHA-256, records created, matched and unchanged, the source's totals beside
the computed ones (MATCH or DIFFERS), records not counted and why, rounded
values, variances, repeated references and problems; --json prints the report
as JSON instead. Without --skip-invalid a file with invalid records is refused
whole: nothing is written, the problems are listed and the exit status is 1.
A progress bar goes to stderr when it is a terminal. Flags may come before or
after the files.`

// importFlags are the flags the request fields stand for.
var importFlags = map[string]string{"roadmapId": "--roadmap", "grantId": "--grant", "milestoneId": "--milestone",
	"newRoadmapCountry": "--country", "newRoadmapTitle": "--title", "kind": "KIND"}

// cmdImport is tranche import fts|iati|ocds FILE....
func cmdImport(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("import", "import fts|iati|ocds FILE... [--roadmap ID] [--country ISO3] [--title T] [--grant ID] [--milestone ID] [--dry-run] [--skip-invalid] [--json]", importAbout, stdout)
	cf := registerConfig(fs, false)
	roadmapID := fs.String("roadmap", "", "fts, iati: the roadmap (id) to import into; empty: create one")
	country := fs.String("country", "", "fts, iati: ISO 3166-1 alpha-3 country of a roadmap the import creates")
	title := fs.String("title", "", "fts, iati: title of a roadmap the import creates")
	grant := fs.String("grant", "", "ocds: the grant (id) the procurement items belong to (required)")
	milestone := fs.String("milestone", "", "ocds: the milestone (id) the procurement items belong to; default: the grant's one allocation")
	dryRun := fs.Bool("dry-run", false, "report what would change and write nothing")
	skipInvalid := fs.Bool("skip-invalid", false, "leave invalid records out (listed) instead of refusing the file")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	cfg, err := cf.resolve(e)
	if err != nil {
		return exitError{code: 2, msg: "configuration: " + err.Error()}
	}
	if len(pos) == 0 {
		return exitError{code: 2, msg: "the source kind is required: tranche import fts|iati|ocds FILE..."}
	}
	kind := pos[0]
	if kind != imports.FTS && kind != imports.IATI && kind != imports.OCDS {
		return exitError{code: 2, msg: fmt.Sprintf("unknown source kind %q: fts, iati or ocds", kind)}
	}
	if len(pos) == 1 {
		return exitError{code: 2, msg: "no file given: tranche import " + kind + " FILE..."}
	}
	in := &pb.CreateImportRequest{Kind: kind, RoadmapId: *roadmapID, GrantId: *grant, MilestoneId: *milestone,
		NewRoadmapCountry: *country, NewRoadmapTitle: *title, DryRun: *dryRun, SkipInvalid: *skipInvalid}
	// The flags are checked before any file is read.
	probe := proto1(in)
	for _, name := range pos[1:] {
		probe.Files = append(probe.Files, &pb.ImportFile{Name: name, Content: []byte{0}})
	}
	if _, err := server.ImportRequest(probe); err != nil {
		return exitError{code: 2, msg: importFlagErrors(err)}
	}
	total := int64(0)
	for _, name := range pos[1:] {
		b, err := readBounded(name, maxCLIImportBytes-total)
		if err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
		total += int64(len(b))
		in.Files = append(in.Files, &pb.ImportFile{Name: name, Content: b})
	}
	req, err := server.ImportRequest(in)
	if err != nil {
		return exitError{code: 2, msg: importFlagErrors(err)}
	}

	db, err := cfg.open(ctx, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	var bar *progressBar
	if isTerminal(os.Stderr) {
		bar = &progressBar{w: os.Stderr}
		req.Progress = bar.update
	}
	rep, err := imports.New(db.pool).Run(operatorContext(ctx, "import"), req)
	bar.finish()
	if rep != nil {
		if perr := printReport(stdout, rep, *asJSON); perr != nil {
			return perr
		}
	}
	if err != nil {
		if rep != nil && len(rep.Problems) > 0 {
			return exitError{code: 1, msg: fmt.Sprintf("import refused: %d problem(s); nothing was written (--skip-invalid leaves invalid records out)", len(rep.Problems))}
		}
		return importFlagError(err)
	}
	return nil
}

// proto1 is a shallow copy of a request without its files.
func proto1(in *pb.CreateImportRequest) *pb.CreateImportRequest {
	return &pb.CreateImportRequest{Kind: in.Kind, RoadmapId: in.RoadmapId, GrantId: in.GrantId, MilestoneId: in.MilestoneId,
		NewRoadmapCountry: in.NewRoadmapCountry, NewRoadmapTitle: in.NewRoadmapTitle, DryRun: in.DryRun, SkipInvalid: in.SkipInvalid}
}

// parseInterspersed parses flags before, between and after the positional
// arguments (Go's flag package stops at the first of them); "--" ends the
// flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, exitError{code: 2, msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse consumed a "--" if it stopped there: everything after is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// importFlagErrors names bad input by the flags the operator typed.
func importFlagErrors(err error) string {
	err = apperr.Fields(err, func(f string) string {
		if fl, ok := importFlags[f]; ok {
			return fl
		}
		return f
	})
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) {
		return err.Error()
	}
	parts := make([]string, len(inv.Violations))
	for i, v := range inv.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return strings.Join(parts, "; ")
}

// importFlagError keeps a bad-input refusal a usage error (exit status 2)
// and passes anything else on.
func importFlagError(err error) error {
	var inv *apperr.InvalidError
	if errors.As(err, &inv) || errors.Is(err, apperr.ErrNotFound) {
		return exitError{code: 2, msg: importFlagErrors(err)}
	}
	return err
}

func printReport(w io.Writer, rep *imports.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeReport(w, rep)
	return nil
}

// writeReport prints a report for a person to read.
func writeReport(w io.Writer, r *imports.Report) {
	head := "import"
	if r.DryRun {
		head = "dry run (nothing written)"
	}
	fmt.Fprintf(w, "%s of %s", head, r.Kind)
	switch {
	case r.RoadmapID != "" && r.RoadmapCreated:
		fmt.Fprintf(w, " into new roadmap %s", r.RoadmapID)
	case r.RoadmapID != "":
		fmt.Fprintf(w, " into roadmap %s", r.RoadmapID)
	case r.RoadmapCreated:
		fmt.Fprint(w, " into a new roadmap")
	}
	if r.GrantID != "" {
		fmt.Fprintf(w, " for grant %s", r.GrantID)
	}
	if r.RunID != "" {
		fmt.Fprintf(w, " (run %s)", r.RunID)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\nfiles:")
	for _, f := range r.Files {
		note := ""
		if f.AlreadyImported {
			note = " (imported before: compared record by record)"
		}
		fmt.Fprintf(w, "  %s  sha256 %s  %d records%s\n", f.Name, f.SHA256, f.Records, note)
	}

	fmt.Fprintf(w, "\nrecords: %d read, %d unchanged, %d corrected\n", r.Records, r.Unchanged, r.Corrected)
	fmt.Fprintf(w, "  organisations: %d created, %d matched\n", r.OrganizationsCreated, r.OrganizationsMatched)
	fmt.Fprintf(w, "  grants: %d created, %d matched\n", r.GrantsCreated, r.GrantsMatched)
	fmt.Fprintf(w, "  journal entries: %d created, %d reversed\n", r.EntriesCreated, r.EntriesReversed)
	if r.ProcurementItemsCreated > 0 || r.Kind == imports.OCDS {
		fmt.Fprintf(w, "  procurement items: %d created\n", r.ProcurementItemsCreated)
	}

	if len(r.Totals) > 0 {
		fmt.Fprintln(w, "\ntotals (source vs computed):")
		for _, t := range r.Totals {
			verdict := "MATCH"
			if !t.Matches {
				verdict = "DIFFERS"
			}
			fmt.Fprintf(w, "  %-8s %s: source %s %s, computed %s %s\n", verdict, t.Name, t.Source, t.Currency, t.Computed, t.Currency)
		}
	}

	if len(r.NotCounted) > 0 {
		fmt.Fprintln(w, "\nnot counted (so no money is counted twice):")
		type sum struct {
			n       int
			amounts map[string]decimal.Decimal
		}
		by := map[string]*sum{}
		for _, n := range r.NotCounted {
			s := by[n.Reason]
			if s == nil {
				s = &sum{amounts: map[string]decimal.Decimal{}}
				by[n.Reason] = s
			}
			s.n++
			s.amounts[n.Currency] = s.amounts[n.Currency].Add(n.Amount)
		}
		reasons := make([]string, 0, len(by))
		for k := range by {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		for _, reason := range reasons {
			s := by[reason]
			var amounts []string
			for ccy, a := range s.amounts {
				amounts = append(amounts, a.String()+" "+ccy)
			}
			sort.Strings(amounts)
			fmt.Fprintf(w, "  %d record(s), %s: %s\n", s.n, strings.Join(amounts, ", "), reason)
		}
	}

	if len(r.Rounded) > 0 {
		fmt.Fprintf(w, "\nrounded to the currency's minor units (%d):\n", len(r.Rounded))
		for _, x := range r.Rounded {
			fmt.Fprintf(w, "  %s %s: %s stored as %s\n", x.Record, x.Field, x.Source, x.Stored)
		}
	}
	if len(r.Variances) > 0 {
		fmt.Fprintf(w, "\nvariances, reported USD vs computed (%d):\n", len(r.Variances))
		for _, v := range r.Variances {
			fmt.Fprintf(w, "  %s: reported %s, computed %s, difference %s\n", v.Record, v.ReportedUSD, v.ComputedUSD, v.Difference)
		}
	}
	if len(r.RepeatedReferences) > 0 {
		fmt.Fprintf(w, "\nrepeated references (%d):\n", len(r.RepeatedReferences))
		for _, g := range r.RepeatedReferences {
			flag := ""
			if g.Flagged {
				flag = " [detection will flag it]"
			}
			fmt.Fprintf(w, "  %s %q on %s: %s%s\n", g.Kind, g.Code, strings.Join(g.Records, ", "), g.Explanation, flag)
		}
	}
	writeProblems(w, "inconsistent source dates", r.Inconsistencies)
	writeProblems(w, "skipped as invalid", r.Skipped)
	writeProblems(w, "problems (the import is refused)", r.Problems)
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func writeProblems(w io.Writer, title string, list []imports.Problem) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s (%d):\n", title, len(list))
	for _, p := range list {
		where := p.Record
		if p.Field != "" {
			where += "." + p.Field
		}
		fmt.Fprintf(w, "  %s: %s\n", where, p.Message)
	}
}

// progressBar draws Request.Progress on a terminal, redrawn in place at
// most ten times a second. A nil bar draws nothing.
type progressBar struct {
	w     io.Writer
	mu    sync.Mutex
	last  time.Time
	drawn bool
}

func (b *progressBar) update(done, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if done < total && now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d records", strings.Repeat("#", filled), strings.Repeat("-", width-filled), done, total)
	b.drawn = true
}

func (b *progressBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

// maxCLIImportBytes bounds the files of one import from the command line:
// far above the API's 64 MiB (an import runs in memory, about five times
// its files), low enough that a wrong path (/dev/zero) cannot take the
// machine's memory.
const maxCLIImportBytes = 1 << 30

// readBounded reads a file of at most limit bytes.
func readBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: the files of one import are at most %d MiB together", name, maxCLIImportBytes>>20)
	}
	return b, nil
}
