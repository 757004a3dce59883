package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/demo"
	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/money"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/server"
	"github.com/tranche-ledger/tranche/reports"
)

const demoAbout = `Runs the service as serve does (same flags; the embedded PostgreSQL in
--data-dir unless a database URL is given) with a sample national mine action
programme in it, and keeps serving until SIGINT or SIGTERM.

On the first start it loads the programme, generated from --seed (donors,
implementing partners, a roadmap, grants in several currencies, three years of
journal entries, FX rates, procurement, and planted cases for every detection
rule), through the same service code as the API, each row with its audit
event; and it imports the real OCHA FTS flows of Afghanistan, 2020, as a
second roadmap. A later start finds both and loads nothing twice.

Every start then runs detection on both roadmaps, writes the sample roadmap's
audit pack to DATA_DIR/demo-audit-pack.xlsx, verifies the audit chain, mints
fresh tokens for each role (earlier ones stay valid) and prints a summary:
addresses, tokens, coverage, open flags, the FTS totals, curl commands.`

// demoPackName is the audit pack demo writes in the data directory.
const demoPackName = "demo-audit-pack.xlsx"

func cmdDemo(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	start := time.Now()
	fs := newFlagSet("demo", "demo [--data-dir DIR] [--seed N] [serve's flags]", demoAbout, stdout)
	cf := registerConfig(fs, true)
	seed := fs.Int64("seed", 1, "the sample programme's seed: the same seed (and day of first start) gives the same programme")
	external := fs.Bool("external-database", false, "load the sample programme into the database of DATABASE_URL (refused without it: the demo writes a fake programme and mints tokens)")
	cfg, err := parseCommand(fs, cf, args, e)
	if err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *seed < 0 {
		return exitError{code: 2, msg: "--seed: must not be negative"}
	}
	if cfg.DatabaseURL != "" && !*external {
		return exitError{code: 2, msg: "a database URL is set: the demo would load a sample programme (and mint tokens) into that database; " +
			"unset DATABASE_URL to use the embedded cluster, or pass --external-database to do it on purpose"}
	}
	svc, err := openService(ctx, cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	sum, err := prepareDemo(ctx, svc, *seed, stdout)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return svc.run(ctx, func(grpcAddr, httpAddr string) {
		sum.print(stdout, grpcAddr, httpAddr)
		if path, err := sum.writeEnv(httpAddr); err != nil {
			fmt.Fprintf(stdout, "\n(could not write the shell variables: %v)\n", err)
		} else {
			fmt.Fprintf(stdout, "\nthe tokens and ids as shell variables ($API, $COORDINATOR, $DONOR, $AUDITOR, $ROADMAP, $GRANT, …): . %s\n", path)
		}
		where := "the data stays in " + cfg.DataDir
		if cfg.DatabaseURL != "" {
			where = "the data stays in the database"
		}
		fmt.Fprintf(stdout, "\nready in %.1f s (Ctrl-C stops it; %s)\n", time.Since(start).Seconds(), where)
	})
}

// demoSummary is what the demo prints once it serves.
type demoSummary struct {
	seed        int64
	loaded      string
	roadmap     roadmap.Roadmap
	ftsRoadmap  string
	ftsLine     []string
	tokens      [][2]string // role, secret
	tokenNotes  map[string]string
	coverage    roadmap.Coverage
	flags       map[string][]detect.Flag
	packPath    string
	packNote    string
	chain       audit.Result
	grantID     string
	dataDir     string
	verifyFlags string // what tranche pack verify needs to reach the database and trust the head
}

// prepareDemo loads the programme once, imports FTS once, runs detection,
// writes the pack, verifies the chain and mints tokens.
func prepareDemo(ctx context.Context, svc *service, seed int64, stdout io.Writer) (*demoSummary, error) {
	st := svc.stores
	octx := operatorContext(ctx, "demo")
	stores := demo.Stores{Orgs: st.Organizations, Roadmaps: st.Roadmaps, Ledger: st.Ledger, FX: st.FX, Procurement: st.Procurement}
	sum := &demoSummary{seed: seed, tokenNotes: map[string]string{}, dataDir: svc.cfg.DataDir}
	switch {
	case svc.cfg.DatabaseURL != "":
		sum.verifyFlags = "--database-url \"$DATABASE_URL\""
	default:
		sum.verifyFlags = "--data-dir " + svc.cfg.DataDir
	}
	if svc.cfg.SigningKey != "" {
		sum.verifyFlags += " --signing-key " + svc.cfg.SigningKey
	} else {
		sum.verifyFlags += " --allow-unsigned"
	}
	progress := func(s string) { fmt.Fprintln(stdout, "  loaded", s) }

	rm, found, err := demo.Find(octx, st.Roadmaps, seed)
	if err != nil {
		return nil, err
	}
	day := demo.Today()
	if found {
		day = demo.Anchor(rm.StartDate)
	}
	prog := demo.Generate(seed, day)
	var loaded *demo.Loaded
	complete := false
	if found {
		complete, err = programmeComplete(octx, st.Procurement, rm, prog)
		if err != nil {
			return nil, err
		}
	}
	if complete {
		fmt.Fprintf(stdout, "tranche demo: the sample programme (seed %d, generated for %s) is already loaded; loading nothing\n",
			seed, day.Format(time.DateOnly))
		loaded, err = demo.Existing(octx, stores, prog, rm)
		sum.loaded = fmt.Sprintf("found, generated for %s; nothing loaded", day.Format(time.DateOnly))
	} else {
		if found {
			fmt.Fprintf(stdout, "tranche demo: resuming the sample programme (seed %d) an earlier start began\n", seed)
		} else {
			fmt.Fprintf(stdout, "tranche demo: loading the sample programme (seed %d) for %s\n", seed, day.Format(time.DateOnly))
		}
		loaded, err = demo.Load(octx, stores, prog, progress)
		if err != nil {
			return nil, err
		}
		sum.loaded = fmt.Sprintf("%d organisations, %d milestones, %d grants, %d journal entries, %d FX rates, %d procurement items",
			len(prog.Orgs), len(prog.Milestones), len(prog.Grants), loaded.Entries, len(prog.Rates), len(prog.Items))
	}
	if err != nil {
		return nil, err
	}
	sum.roadmap = loaded.Roadmap
	rmID := uuid.MustParse(loaded.Roadmap.ID)

	// The real FTS flows, as a second roadmap: imported once; a later start
	// imports the same files into it again, which the importer recognises.
	names, data := demo.FTSFiles()
	req := imports.Request{Kind: imports.FTS}
	for i := range names {
		req.Files = append(req.Files, imports.File{Name: names[i], Data: data[i]})
	}
	ftsRM, ftsFound, err := demo.FindByTitle(octx, st.Roadmaps, demo.FTSRoadmapTitle)
	if err != nil {
		return nil, err
	}
	if ftsFound {
		req.RoadmapID = uuid.MustParse(ftsRM.ID)
	} else {
		req.NewRoadmap = imports.RoadmapHint{Country: "AFG", Title: demo.FTSRoadmapTitle}
	}
	rep, err := imports.New(st.Pool).Run(operatorContext(ctx, "demo import"), req)
	switch {
	case errors.Is(err, apperr.ErrAlreadyExists):
		// The flows are in another roadmap already (imported by hand, or by
		// a demo started at the same moment): an FTS agreement lives in one
		// roadmap. The demo goes on without its own copy.
		sum.ftsLine = append(sum.ftsLine, "not imported: these flows are in another roadmap of this database already ("+err.Error()+")")
		rep = &imports.Report{}
	case err != nil:
		return nil, fmt.Errorf("importing the FTS pages: %w", err)
	default:
		sum.ftsRoadmap = rep.RoadmapID
		sum.ftsLine = append(sum.ftsLine, fmt.Sprintf("%d flows read: %d grants and %d entries created, %d already imported, %d kept out so nothing counts twice",
			rep.Records, rep.GrantsCreated, rep.EntriesCreated, rep.Unchanged, len(rep.NotCounted)))
	}
	for _, t := range rep.Totals {
		verdict := "MATCH"
		if !t.Matches {
			verdict = "DIFFERS"
		}
		sum.ftsLine = append(sum.ftsLine, fmt.Sprintf("%-7s %s: source %s, ledger %s", verdict, t.Name,
			showAmount(t.Source, t.Currency), showAmount(t.Computed, t.Currency)))
	}

	for _, id := range []string{loaded.Roadmap.ID, rep.RoadmapID} {
		if id == "" {
			continue
		}
		if _, err := st.Detect.Run(octx, uuid.MustParse(id), time.Time{}); err != nil {
			return nil, fmt.Errorf("detection on roadmap %s: %w", id, err)
		}
	}
	sum.flags = map[string][]detect.Flag{}
	token := ""
	for {
		list, next, err := st.Detect.List(octx, detect.ListFilter{RoadmapID: rmID, Status: "OPEN", PageSize: 500, PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, f := range list {
			sum.flags[f.Kind] = append(sum.flags[f.Kind], f)
		}
		if token = next; token == "" {
			break
		}
	}
	if sum.coverage, err = st.Roadmaps.Coverage(octx, rmID, st.Ledger); err != nil {
		return nil, err
	}

	// The audit pack of the sample roadmap, as tranche pack writes it.
	sum.packPath, sum.packNote, err = writeDemoPack(octx, svc, loaded.Roadmap.ID)
	if err != nil {
		return nil, fmt.Errorf("writing the audit pack: %w", err)
	}
	if sum.chain, err = st.Audit.Verify(octx); err != nil {
		return nil, fmt.Errorf("verifying the audit chain: %w", err)
	}

	// Fresh tokens on every start: a token is shown once, when minted.
	// The donor and the implementer with the most to look at: the UK's
	// grant has the duplicate disbursement, the missing receipt and the
	// late delivery; HALO the overlap and the stalled tender.
	donorKey, implKey := "gb", "halo"
	for _, t := range []struct {
		role auth.Role
		org  string
	}{{auth.Admin, ""}, {auth.Coordinator, ""}, {auth.Donor, donorKey}, {auth.Implementer, implKey}, {auth.Auditor, ""}} {
		orgID := ""
		if t.org != "" {
			orgID = loaded.Orgs[t.org]
			for _, o := range prog.Orgs {
				if o.Key == t.org {
					sum.tokenNotes[string(t.role)] = o.Name
				}
			}
		}
		_, secret, err := st.Tokens.Create(octx, t.role, orgID, "tranche demo "+string(t.role))
		if err != nil {
			return nil, fmt.Errorf("minting the %s token: %w", t.role, err)
		}
		sum.tokens = append(sum.tokens, [2]string{string(t.role), secret})
	}
	for _, c := range prog.Cases {
		if c.Kind == "DUPLICATE_TRANSACTION" {
			sum.grantID = loaded.Grants[c.Grants[0]]
		}
	}
	return sum, nil
}

// programmeComplete tells whether a load of prog into rm got to its end:
// procurement items and their stages are loaded last, so all of them being
// there, each item advanced through every stage planned, says so (an
// interruption between creating the last item and advancing it is not).
func programmeComplete(ctx context.Context, proc *procurement.Store, rm roadmap.Roadmap, prog *demo.Programme) (bool, error) {
	want := len(prog.Items)
	for _, it := range prog.Items {
		want += len(it.Stages)
	}
	n, token := 0, ""
	for {
		items, next, err := proc.List(ctx, procurement.Filter{RoadmapID: uuid.MustParse(rm.ID), PageSize: 500, PageToken: token})
		if err != nil {
			return false, err
		}
		for _, it := range items {
			n += len(it.Stages)
		}
		if token = next; token == "" {
			return n >= want, nil
		}
	}
}

// writeDemoPack writes the audit pack of roadmap id into the data
// directory, replacing the previous start's, as tranche pack -o does.
func writeDemoPack(ctx context.Context, svc *service, id string) (path, note string, err error) {
	dir := svc.cfg.DataDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	path, err = filepath.Abs(filepath.Join(dir, demoPackName))
	if err != nil {
		return "", "", err
	}
	scope, err := server.PackScope(&pb.DownloadAuditPackRequest{RoadmapId: id}, time.Now())
	if err != nil {
		return "", "", err
	}
	if err := server.AuthorisePack(ctx, svc.stores.Ledger, &scope); err != nil {
		return "", "", err
	}
	src := reports.Source{DB: svc.db.pool, Audit: svc.stores.Audit}
	if scope.AsOf, err = src.Now(ctx); err != nil {
		return "", "", err
	}
	size, sha, err := writePackFile(ctx, path, true, func(w io.Writer) error { return reports.Write(ctx, w, src, scope) })
	if err != nil {
		return "", "", err
	}
	return path, fmt.Sprintf("%d bytes, sha256 %s", size, sha), nil
}

func (s *demoSummary) print(w io.Writer, grpcAddr, httpAddr string) {
	base := "http://" + httpAddr
	fmt.Fprintf(w, "\nTranche demo, seed %d\n", s.seed)
	fmt.Fprintf(w, "  sample programme: %s\n", s.loaded)
	fmt.Fprintf(w, "  sample roadmap:   %s  %s\n", s.roadmap.ID, s.roadmap.Title)
	fmt.Fprintf(w, "  FTS roadmap:      %s  %s\n", s.ftsRoadmap, demo.FTSRoadmapTitle)
	fmt.Fprintf(w, "\nREST API: %s   gRPC: %s\nconsole:  %s/   (sign in with a token below)\n", base, grpcAddr, base)

	fmt.Fprintln(w, "\ntokens (fresh on every start; earlier ones stay valid; use as 'Authorization: Bearer <token>'):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, t := range s.tokens {
		note := ""
		if n := s.tokenNotes[t[0]]; n != "" {
			note = "  (" + n + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", t[0], t[1], note)
	}
	tw.Flush()

	cur := s.coverage.Currency
	fmt.Fprintf(w, "\ncoverage of the sample roadmap (%s; gap = requirement − allocated):\n", cur)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  milestone\trequirement\tallocated\tcommitted\tdisbursed\tgap\t")
	row := func(code string, m roadmap.MilestoneCoverage) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", code, grouped(m.Requirement, cur), grouped(m.Allocated, cur),
			grouped(m.Committed, cur), grouped(m.Disbursed, cur), grouped(m.Gap, cur))
	}
	for _, m := range s.coverage.Milestones {
		row(m.Code, m)
	}
	row("total", s.coverage.Totals)
	tw.Flush()

	fmt.Fprintln(w, "\nopen flags on the sample roadmap, by kind (one example each):")
	kinds := make([]string, 0, len(s.flags))
	for k := range s.flags {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return slices.Index(detect.Kinds, a) - slices.Index(detect.Kinds, b) })
	for _, k := range kinds {
		f := s.flags[k][0]
		fmt.Fprintf(w, "  %-22s %3d  e.g. %s\n", k, len(s.flags[k]), f.Explanation)
	}
	if len(kinds) == 0 {
		fmt.Fprintln(w, "  none")
	}

	fmt.Fprintln(w, "\nFTS Afghanistan 2020 import (source vs ledger):")
	for _, l := range s.ftsLine {
		fmt.Fprintln(w, "  "+l)
	}

	fmt.Fprintf(w, "\naudit pack: %s (%s)\n", s.packPath, s.packNote)
	if s.chain.Verified {
		fmt.Fprintf(w, "audit chain: verified, %d events, head %d %s\n", s.chain.EventsChecked, s.chain.HeadSeq, audit.HexHash(s.chain.HeadHash))
	} else {
		fmt.Fprintf(w, "audit chain: DOES NOT VERIFY: %s at sequence %d: %s\n", s.chain.Problem, s.chain.FirstBadSeq, s.chain.Detail)
	}
	fmt.Fprintf(w, "  check the pack: tranche pack verify %s %s\n", s.verifyFlags, s.packPath)

	tok := map[string]string{}
	for _, t := range s.tokens {
		tok[t[0]] = t[1]
	}
	fmt.Fprintln(w, "\ntry (the coordinator's view of coverage and flags, the donor reconciling its grant):")
	fmt.Fprintf(w, "  export COORDINATOR=%s DONOR=%s\n", tok["coordinator"], tok["donor"])
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $COORDINATOR\" %s/v1/roadmaps/%s/coverage\n", base, s.roadmap.ID)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $COORDINATOR\" '%s/v1/flags?roadmapId=%s&status=OPEN'\n", base, s.roadmap.ID)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $DONOR\" %s/v1/grants/%s/reconciliation\n", base, s.grantID)
}

// grouped formats an amount to its currency's minor units with thin
// groups of thousands, for reading: 1 234 567.89.
func grouped(d decimal.Decimal, cur string) string {
	s := money.Format(d, cur)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// showAmount is an import total: an amount with its currency, or a count.
func showAmount(d decimal.Decimal, cur string) string {
	if cur == "" {
		return d.String()
	}
	return grouped(d, cur) + " " + cur
}

// writeEnv writes the run's tokens and ids as shell variables into the data
// directory (demo.env, readable by its owner only: it holds tokens), so a
// newcomer's commands, and the README's tours, can use them by name.
func (s *demoSummary) writeEnv(httpAddr string) (string, error) {
	tok := map[string]string{}
	for _, t := range s.tokens {
		tok[t[0]] = t[1]
	}
	var b strings.Builder
	fmt.Fprintln(&b, "# Written by tranche demo on every start: this run's tokens and ids.")
	fmt.Fprintf(&b, "export API=http://%s\n", httpAddr)
	for _, role := range []string{"admin", "coordinator", "donor", "implementer", "auditor"} {
		fmt.Fprintf(&b, "export %s=%s\n", strings.ToUpper(role), tok[role])
	}
	fmt.Fprintf(&b, "export ROADMAP=%s\nexport FTS_ROADMAP=%s\nexport GRANT=%s\nexport PACK=%s\n",
		s.roadmap.ID, s.ftsRoadmap, s.grantID, s.packPath)
	path := filepath.Join(s.dataDir, "demo.env")
	if s.dataDir == "" {
		path = "demo.env"
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	// WriteFile sets the mode only when it creates the file: a file made
	// readable to others since must not keep the new tokens so.
	if err := os.Chmod(path, 0o600); err != nil {
		return "", err
	}
	return path, nil
}
