package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/server"
	"github.com/tranche-ledger/tranche/reports"
)

const packAbout = `Writes the Excel audit pack (tranche-audit-pack/1) of a roadmap, optionally
narrowed to a donor, a grant and a value-date period, as of a point in time
(default: now), reading the database directly (DATABASE_URL, else the embedded
cluster in --data-dir). With --signing-key (env TRANCHE_SIGNING_KEY) the
audit-chain head in the Manifest is signed; without, the pack says it is not.

The pack is written to a new partial file beside FILE (.FILE.partial-*,
mode 0600) and renamed to FILE once complete, so a failed or interrupted run
never leaves a partial file under FILE's name. An existing FILE is left alone unless --force. -o - writes the
pack to stdout (refused when stdout is a terminal).

Progress (sheet, rows, elapsed) goes to stderr: a bar redrawn in place on a
terminal, plain lines otherwise. The same scope and --as-of give the same
bytes as GET /v1/audit-packs:download.`

// cmdPackWrite is tranche pack --roadmap … -o FILE.
func cmdPackWrite(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("pack", "pack --roadmap ID [--donor ID] [--grant ID] [--from DATE] [--to DATE] [--as-of TIME] -o FILE [--force]\n       tranche pack verify FILE", packAbout, stdout)
	cf := registerConfig(fs, false).include("signing-key")
	roadmapID := fs.String("roadmap", "", "the roadmap (id) the pack covers (required)")
	donor := fs.String("donor", "", "narrow to this donor organisation (id)")
	grant := fs.String("grant", "", "narrow to this grant (id)")
	from := fs.String("from", "", "first value date of the journal rows, YYYY-MM-DD (inclusive)")
	to := fs.String("to", "", "last value date of the journal rows, YYYY-MM-DD (inclusive)")
	asOf := fs.String("as-of", "", "the point in time, RFC 3339 (2024-07-01T12:00:00Z), not in the future; default: now")
	out := fs.String("o", "", "the file to write (- for stdout)")
	force := fs.Bool("force", false, "replace FILE if it exists")
	cfg, err := parseCommand(fs, cf, args, e)
	if err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *out == "" {
		return exitError{code: 2, msg: "-o FILE is required (- for stdout)"}
	}
	scope, err := server.PackScope(&pb.DownloadAuditPackRequest{RoadmapId: *roadmapID, DonorOrgId: *donor, GrantId: *grant,
		From: *from, To: *to, AsOf: *asOf}, time.Now())
	if err != nil {
		return exitError{code: 2, msg: flagErrors(err)}
	}
	toStdout := *out == "-"
	if toStdout {
		if isTerminal(os.Stdout) {
			return exitError{code: 2, msg: "-o -: stdout is a terminal; redirect it to a file or give -o FILE"}
		}
	} else if !*force {
		if _, err := os.Lstat(*out); err == nil {
			return exitError{code: 2, msg: fmt.Sprintf("%s already exists; --force replaces it", *out)}
		}
	}
	key, err := cfg.signingKey()
	if err != nil {
		return exitError{code: 2, msg: "configuration: --signing-key (env TRANCHE_SIGNING_KEY): " + err.Error()}
	}

	db, err := cfg.open(ctx, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	auditStore := audit.New(db.pool)
	auditStore.SetSigningKey(key)
	octx := operatorContext(ctx, "pack")
	// The operator may read every scope; the check still refuses a grant of
	// another roadmap or donor, as the API does.
	if err := server.AuthorisePack(octx, ledger.New(db.pool), &scope); err != nil {
		return exitError{code: 2, msg: flagErrors(err)}
	}
	progress := newPackProgress(os.Stderr, time.Now())
	src := reports.Source{DB: db.pool, Audit: auditStore, Progress: progress.update}
	if *asOf == "" {
		// Now by the database's clock, which dates the rows, as the server does.
		if scope.AsOf, err = src.Now(octx); err != nil {
			return err
		}
	}

	if toStdout {
		bw := bufio.NewWriterSize(os.Stdout, 256<<10)
		if err := reports.Write(octx, bw, src, scope); err != nil {
			progress.fail()
			return flagError(err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
		progress.finish(fmt.Sprintf("wrote the pack to stdout (%s)", server.PackFileName(scope)))
		return nil
	}
	size, sum, err := writePackFile(octx, *out, *force, func(w io.Writer) error { return reports.Write(octx, w, src, scope) })
	if err != nil {
		progress.fail()
		return flagError(err)
	}
	progress.finish("")
	fmt.Fprintf(stdout, "wrote %s (%d bytes, sha256 %s)\n", *out, size, sum)
	return nil
}

// writePackFile writes through write to a new partial file beside name
// (.NAME.partial-RANDOM), syncs it and only then
// gives it name: replacing name with force, else linking it under name, which
// fails if name appeared meanwhile (no check-then-write race). The partial
// file is removed whatever happens.
func writePackFile(ctx context.Context, name string, force bool, write func(io.Writer) error) (int64, string, error) {
	// A new file of a name of its own (O_EXCL, 0600): never one that is
	// already there, a symbolic link left in its place, or another run's.
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".partial-*")
	if err != nil {
		return 0, "", err
	}
	partial := f.Name()
	defer os.Remove(partial)
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if err := write(bw); err != nil {
		return 0, "", err
	}
	if err := bw.Flush(); err != nil {
		return 0, "", err
	}
	if err := f.Sync(); err != nil {
		return 0, "", err
	}
	if err := f.Close(); err != nil {
		return 0, "", err
	}
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	if force {
		err = os.Rename(partial, name)
	} else if err = os.Link(partial, name); errors.Is(err, fs.ErrExist) {
		err = fmt.Errorf("%s appeared while the pack was written; --force replaces it", name)
	}
	if err != nil {
		return 0, "", err
	}
	return cw.n, hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// packFlags are the flags the server's request fields stand for.
var packFlags = map[string]string{"roadmapId": "--roadmap", "donorOrgId": "--donor", "grantId": "--grant",
	"from": "--from", "to": "--to", "asOf": "--as-of"}

// flagErrors names bad input by the flags the operator typed.
func flagErrors(err error) string {
	err = apperr.Fields(err, func(f string) string {
		if fl, ok := packFlags[f]; ok {
			return fl
		}
		return f
	})
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		var b strings.Builder
		for i, v := range inv.Violations {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", v.Field, v.Description)
		}
		return b.String()
	}
	return err.Error()
}

// flagError keeps a bad-input refusal a usage error (exit status 2) and
// passes anything else on.
func flagError(err error) error {
	var inv *apperr.InvalidError
	if errors.As(err, &inv) || errors.Is(err, apperr.ErrNotFound) {
		return exitError{code: 2, msg: flagErrors(err)}
	}
	return err
}

// isTerminal tells whether f is a character device (a terminal), without a
// dependency: what the progress display and -o - need to know.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// packProgress shows reports.Write's progress on w: on a terminal one line
// redrawn in place (a bar of sheets done, the sheet, its rows, elapsed),
// else a plain line per report.
type packProgress struct {
	w        io.Writer
	tty      bool
	start    time.Time
	last     time.Time
	drawn    bool
	sheetIdx map[string]int
}

func newPackProgress(w *os.File, start time.Time) *packProgress {
	p := &packProgress{w: w, tty: isTerminal(w), start: start, sheetIdx: map[string]int{}}
	for i, s := range reports.Layout {
		p.sheetIdx[s.Name] = i
	}
	return p
}

func (p *packProgress) update(sheet string, rows int64, done bool) {
	now := time.Now()
	elapsed := now.Sub(p.start).Round(100 * time.Millisecond)
	if !p.tty {
		state := "rows so far"
		if done {
			state = "rows, done"
		}
		fmt.Fprintf(p.w, "pack: %s: %d %s (%s)\n", sheet, rows, state, elapsed)
		return
	}
	// Redrawing costs a write: at most ten a second, and every sheet's end.
	if !done && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	n := len(reports.Layout)
	doneSheets := p.sheetIdx[sheet]
	if done {
		doneSheets++
	}
	const width = 22
	fill := doneSheets * width / n
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(p.w, "\r[%s] %2d/%d %-15s %10d rows %8s", bar, doneSheets, n, sheet, rows, elapsed)
	p.drawn = true
}

// finish ends the progress display; note, if any, is printed on its own line.
func (p *packProgress) finish(note string) {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
	if note != "" {
		fmt.Fprintln(p.w, "pack:", note)
	}
}

// fail ends a redrawn line so the error message starts on a line of its own.
func (p *packProgress) fail() { p.finish("") }
