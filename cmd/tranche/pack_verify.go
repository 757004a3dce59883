package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/reports"
)

const packVerifyAbout = `Checks an audit pack: its sheets and header rows against the format, every
sheet's row count and SHA-256 (recomputed from the cells) against the Manifest,
the chain head's signature, and that the live audit chain still has that head.
Exit status 2 naming the sheet (and row) or the sequence on any mismatch.

Signature: checked with --public-key (the operator's published key), else the
public half of --signing-key; never with a key read from the pack. A head that
is unsigned, missing, or that no trusted key can check is refused unless
--allow-unsigned (the checksums and the chain are then still checked).

Database: used, as by 'tranche verify', when DATABASE_URL is set or the data
directory holds a cluster; otherwise, or with --offline, the chain is not
checked and the report says so (not a failure: the file alone is checked).
The manifest is sealed (a SHA-256 of its lines) and signed with the head's key,
so an edited cell shows even with its checksum edited too. The file is also
read for formulas, hidden sheets, rows or columns, number formats that scale or
hide, macros and duplicate parts (STRUCTURE). With the database, the pack is
also written again for its manifest's scope and as-of, compared row by row
(naming the first cell that differs) and then byte for byte (NOT_IDENTICAL: a
changed presentation, or a file another application saved); --no-rederive
skips that.`

// cmdPackVerify is tranche pack verify FILE.
func cmdPackVerify(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("pack verify", "pack verify [--public-key FILE] [--allow-unsigned] [--offline | --no-rederive] [--json] FILE", packVerifyAbout, stdout)
	cf := registerConfig(fs, false).include("signing-key")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pubFile := fs.String("public-key", "", "the trusted public key (PEM, tranche keys generate's .pub) to check the head's signature with; default: the public half of --signing-key")
	allowUnsigned := fs.Bool("allow-unsigned", false, "accept a head whose signature is not checked (unsigned, missing, or no trusted key)")
	offline := fs.Bool("offline", false, "do not use the database: the live chain is not checked, the pack not re-derived")
	noRederive := fs.Bool("no-rederive", false, "with the database, do not write the pack again to compare it row by row (saves a full pack write)")
	// Flags may follow FILE (tranche pack verify FILE --public-key KEY).
	var files []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return exitError{code: 2, msg: err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	cfg, err := parseCommand(fs, cf, nil, e) // flags parsed above; resolve the configuration
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return exitError{code: 2, msg: "usage: tranche pack verify [flags] FILE (one pack)"}
	}
	file := files[0]

	var pub ed25519.PublicKey
	switch {
	case *pubFile != "":
		data, err := readSmall(*pubFile)
		if err != nil {
			return exitError{code: 2, msg: "--public-key: " + err.Error()}
		}
		if pub, err = audit.ParsePublicKey(data); err != nil {
			return exitError{code: 2, msg: fmt.Sprintf("--public-key %s: %v", *pubFile, err)}
		}
	case cfg.SigningKey != "":
		key, err := cfg.signingKey()
		if err != nil {
			return exitError{code: 2, msg: "--signing-key (env TRANCHE_SIGNING_KEY): " + err.Error()}
		}
		pub = key.Public().(ed25519.PublicKey)
	}
	if fi, err := os.Stat(file); err != nil {
		return exitError{code: 2, msg: err.Error()}
	} else if !fi.Mode().IsRegular() {
		return exitError{code: 2, msg: file + " is not a regular file"}
	}

	opts := reports.VerifyOptions{PublicKey: pub, AllowUnsigned: *allowUnsigned}
	dbNote := ""
	switch {
	case *offline:
		dbNote = "not checked: --offline"
	case cfg.DatabaseURL == "" && !fileExists(filepath.Join(cfg.DataDir, "pgdata", "PG_VERSION")):
		// Starting the embedded cluster here would create an empty one.
		dbNote = fmt.Sprintf("not checked: no database (DATABASE_URL is not set and %s holds no cluster)", cfg.DataDir)
	default:
		db, err := cfg.open(ctx, 2)
		if err != nil {
			return err
		}
		defer db.Close()
		opts.Audit = audit.New(db.pool)
		if !*noRederive {
			opts.Rederive = &reports.Source{DB: db.pool, Audit: opts.Audit}
		}
	}
	rep, err := reports.VerifyFile(ctx, file, opts)
	if err != nil {
		return err
	}
	if dbNote != "" {
		if rep.Head.Included {
			rep.Head.Chain = dbNote
		}
		rep.Head.Rederived = dbNote
	} else if *noRederive {
		rep.Head.Rederived = "not checked: --no-rederive"
	}
	if *asJSON {
		out := struct {
			File string `json:"file"`
			reports.VerifyReport
		}{file, rep}
		if out.Problems == nil {
			out.Problems = []reports.Problem{}
		}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return err
		}
	} else {
		printPackReport(stdout, file, rep)
	}
	if !rep.Verified {
		msg := fmt.Sprintf("%s does not verify: %s", file, rep.First())
		if n := len(rep.Problems); n > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", n-1)
		}
		return exitError{code: 2, msg: msg}
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func printPackReport(w io.Writer, file string, rep reports.VerifyReport) {
	fmt.Fprintf(w, "pack:         %s\nformat:       %s (%s)\n", file, rep.Format, rep.Generator)
	f := rep.Facts
	if f["scope.roadmapId"] != "" {
		fmt.Fprintf(w, "scope:        roadmap %s, donor %s, grant %s, value dates %s to %s\nas of:        %s\n",
			f["scope.roadmapId"], f["scope.donorOrgId"], f["scope.grantId"], f["scope.from"], f["scope.to"], f["asOf"])
	}
	if len(rep.Sheets) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  SHEET\tROWS\tMANIFEST\tSHA-256")
		for _, s := range rep.Sheets {
			state := "ok"
			if !s.OK {
				state = "MISMATCH " + s.ManifestSHA256
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s %s\n", s.Sheet, s.Rows, s.ManifestRows, s.SHA256, state)
		}
		_ = tw.Flush()
	}
	h := rep.Head
	if h.Included {
		fmt.Fprintf(w, "head:         %d %s\n", h.Seq, h.Hash)
	}
	fmt.Fprintf(w, "signature:    %s\nmanifest:     %s\nchain:        %s\nrederived:    %s\nverified:     %v\n", h.Signature, h.Manifest, h.Chain, h.Rederived, rep.Verified)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "problem:      %s\n", p)
	}
}
