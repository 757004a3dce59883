package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/tranche-ledger/tranche/internal/imports"
	"github.com/tranche-ledger/tranche/internal/server"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
)

const exportAbout = `Writes a roadmap's grants, with their journals, as an IATI 2.03 activity file,
reading the database directly (DATABASE_URL, else the embedded cluster in
--data-dir) as the operator. The same file as GET /v1/roadmaps/{id}/iati.

The file is written to a new partial file beside FILE (.FILE.partial-*,
mode 0600) and renamed to FILE once complete, so a failed or interrupted run
never leaves a partial file under FILE's name. An existing FILE is left alone
unless --force.`

// cmdExport is tranche export iati --roadmap ID -o FILE.
func cmdExport(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("export", "export iati --roadmap ID -o FILE [--force]", exportAbout, stdout)
	cf := registerConfig(fs, false)
	roadmapID := fs.String("roadmap", "", "the roadmap (id) to export (required)")
	out := fs.String("o", "", "the file to write (required)")
	force := fs.Bool("force", false, "replace FILE if it exists")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	cfg, err := cf.resolve(e)
	if err != nil {
		return exitError{code: 2, msg: "configuration: " + err.Error()}
	}
	switch {
	case len(pos) == 0:
		return exitError{code: 2, msg: "the format is required: tranche export iati --roadmap ID -o FILE"}
	case pos[0] != "iati":
		return exitError{code: 2, msg: fmt.Sprintf("unknown export format %q: iati", pos[0])}
	case len(pos) > 1:
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", pos[1])}
	case *out == "":
		return exitError{code: 2, msg: "-o FILE is required"}
	}
	id, err := server.ExportRoadmapID(&pb.ExportIatiRequest{RoadmapId: *roadmapID})
	if err != nil {
		return exitError{code: 2, msg: importFlagErrors(err)}
	}
	if !*force {
		if _, err := os.Lstat(*out); err == nil {
			return exitError{code: 2, msg: fmt.Sprintf("%s already exists; --force replaces it", *out)}
		}
	}
	db, err := cfg.open(ctx, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	octx := operatorContext(ctx, "export")
	store := imports.New(db.pool)
	size, sum, err := writePackFile(octx, *out, *force, func(w io.Writer) error { return store.ExportIATI(octx, w, id) })
	if err != nil {
		return importFlagError(err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, sha256 %s)\n", *out, size, sum)
	return nil
}
