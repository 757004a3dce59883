package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/token"
)

func cmdMigrate(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var d dbFlags
	d.register(fs, e)
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := d.open(ctx, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// operatorContext marks CLI mutations in the audit trail.
func operatorContext(ctx context.Context, command string) context.Context {
	ctx = auth.WithPrincipal(ctx, auth.OperatorPrincipal(command))
	return audit.WithCall(ctx, audit.Call{Method: "cli:" + command})
}

func cmdToken(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	if len(args) == 0 {
		return exitError{code: 2, msg: "usage: tranche token create|list|revoke"}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var d dbFlags
	d.register(fs, e)
	role := fs.String("role", "", "admin, coordinator, donor, implementer or auditor (create)")
	orgID := fs.String("org", "", "organisation the token acts for; required for donor and implementer (create)")
	name := fs.String("name", "", "a label for the token (create)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch sub {
	case "create", "list", "revoke":
	default:
		return exitError{code: 2, msg: fmt.Sprintf("unknown token command %q (create, list, revoke)", sub)}
	}
	db, err := d.open(ctx, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	store := token.New(db.pool)
	ctx = operatorContext(ctx, "token "+sub)
	switch sub {
	case "create":
		t, secret, err := store.Create(ctx, auth.Role(*role), *orgID, *name)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(struct {
				token.Token
				Secret string `json:"token"`
			}{t, secret})
		}
		fmt.Fprintf(stdout, "id:    %s\nrole:  %s\n", t.ID, t.Role)
		if t.OrgID != "" {
			fmt.Fprintf(stdout, "org:   %s\n", t.OrgID)
		}
		fmt.Fprintf(stdout, "token: %s\n(shown once: store it now; use it as 'Authorization: Bearer <token>')\n", secret)
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tORG\tNAME\tCREATED\tREVOKED")
		for _, t := range list {
			revoked := ""
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.OrgID, t.Name, t.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return exitError{code: 2, msg: "usage: tranche token revoke TOKEN_ID"}
		}
		t, err := store.Revoke(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s at %s\n", t.ID, t.RevokedAt.Format(time.RFC3339))
	}
	return nil
}

func cmdVerify(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var d dbFlags
	d.register(fs, e)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := d.open(ctx, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := audit.New(db.pool).Verify(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(map[string]any{
			"verified": r.Verified, "eventsChecked": r.EventsChecked, "headSeq": r.HeadSeq,
			"headHash": audit.HexHash(r.HeadHash), "unsealed": r.Unsealed, "firstBadSeq": r.FirstBadSeq,
			"problem": r.Problem, "detail": r.Detail,
		}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "verified:       %v\nevents checked: %d\nhead:           %d %s\nunsealed:       %d\n",
			r.Verified, r.EventsChecked, r.HeadSeq, audit.HexHash(r.HeadHash), r.Unsealed)
		if !r.Verified {
			fmt.Fprintf(stdout, "first bad seq:  %d\nproblem:        %s\ndetail:         %s\n", r.FirstBadSeq, r.Problem, r.Detail)
		}
	}
	if !r.Verified {
		return exitError{code: 2, msg: fmt.Sprintf("audit chain does not verify: %s at sequence %d", r.Problem, r.FirstBadSeq)}
	}
	return nil
}
