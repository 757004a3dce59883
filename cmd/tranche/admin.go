package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/token"
)

func cmdMigrate(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("migrate", "migrate [flags]",
		"Applies pending database migrations and exits. With an external database, give the\nschema owner's URL as --migrate-database-url.", stdout)
	cfg, err := parseCommand(fs, registerConfig(fs, false), args, e)
	if err != nil {
		return err
	}
	db, err := cfg.open(ctx, 2)
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

const tokenUsage = `usage: tranche token create --role ROLE [--org ORG_ID] [--name NAME] [--json]
       tranche token list [--json]
       tranche token revoke [--json] TOKEN_ID

Creates, lists and revokes API tokens. A token is printed once, when created.
Roles: admin, coordinator, donor, implementer, auditor; donor and implementer
tokens are bound to an organisation (--org).

Run 'tranche token <command> -h' for a command's flags.
`

func cmdToken(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, tokenUsage)
		return exitError{code: 2, msg: "no token command given (create, list, revoke)"}
	}
	sub, args := args[0], args[1:]
	var synopsis, about string
	switch {
	case isHelp(sub):
		fmt.Fprint(stdout, tokenUsage)
		return nil
	case sub == "create":
		synopsis, about = "token create --role ROLE [--org ORG_ID] [--name NAME] [--json]", "Mints an API token and prints it once; only its SHA-256 is stored."
	case sub == "list":
		synopsis, about = "token list [--json]", "Lists every token, newest first, with when it was revoked."
	case sub == "revoke":
		synopsis, about = "token revoke [--json] TOKEN_ID", "Revokes a token; a running server stops accepting it within --token-cache-ttl."
	default:
		return exitError{code: 2, msg: fmt.Sprintf("unknown token command %q (create, list, revoke)", sub)}
	}
	fs := newFlagSet("token "+sub, synopsis, about, stdout)
	cf := registerConfig(fs, false)
	var role, orgID, name *string
	if sub == "create" {
		role = fs.String("role", "", "admin, coordinator, donor, implementer or auditor")
		orgID = fs.String("org", "", "organisation the token acts for; required for donor and implementer")
		name = fs.String("name", "", "a label for the token")
	}
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := parseCommand(fs, cf, args, e)
	if err != nil {
		return err
	}
	if sub == "revoke" && fs.NArg() != 1 {
		return exitError{code: 2, msg: "usage: tranche token revoke TOKEN_ID"}
	}
	if sub != "revoke" && fs.NArg() != 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q (flags go before it?)", fs.Arg(0))}
	}
	db, err := cfg.open(ctx, 2)
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
		t, revoked, err := store.Revoke(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(struct {
				token.Token
				AlreadyRevoked bool `json:"alreadyRevoked"`
			}{t, !revoked})
		}
		if !revoked {
			fmt.Fprintf(stdout, "%s was already revoked at %s; nothing changed\n", t.ID, t.RevokedAt.Format(time.RFC3339))
			return nil
		}
		fmt.Fprintf(stdout, "revoked %s at %s\n", t.ID, t.RevokedAt.Format(time.RFC3339))
	}
	return nil
}

func cmdVerify(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	fs := newFlagSet("verify", "verify [--json]",
		"Seals pending audit events, then recomputes the audit hash chain. Exit status 2 and\nthe first bad sequence number when it does not verify.", stdout)
	cf := registerConfig(fs, false)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := parseCommand(fs, cf, args, e)
	if err != nil {
		return err
	}
	db, err := cfg.open(ctx, 2)
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
