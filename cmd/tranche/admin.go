package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
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
	fs := newFlagSet("verify", "verify [--json] [--since-head FILE [--public-key FILE] [--allow-unsigned]]",
		"Seals pending audit events, then recomputes the audit hash chain. Exit status 2 and\n"+
			"the first bad sequence number when it does not verify.\n\n"+
			"With --since-head, FILE is a head saved earlier (the JSON answer of GET\n"+
			"/v1/audit-events:head): its signature must verify with --public-key (else the public\n"+
			"half of --signing-key), the chain must have the head's hash at its sequence, and the\n"+
			"chain must verify to its end. An unsigned head is refused unless --allow-unsigned.\n"+
			"Exit status 2 naming the sequence and the reason when today's chain does not extend it.", stdout)
	cf := registerConfig(fs, false).include("signing-key")
	asJSON := fs.Bool("json", false, "print JSON")
	sinceHead := fs.String("since-head", "", "a head saved earlier (JSON, as GET /v1/audit-events:head answers) the chain must extend")
	pubFile := fs.String("public-key", "", "the trusted public key (PEM, tranche keys generate's .pub) to check the head's signature with; default: the public half of --signing-key")
	allowUnsigned := fs.Bool("allow-unsigned", false, "accept a --since-head head without a signature (only its hash is then checked)")
	cfg, err := parseCommand(fs, cf, args, e)
	if err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *sinceHead == "" && (*pubFile != "" || *allowUnsigned) {
		return exitError{code: 2, msg: "--public-key and --allow-unsigned go with --since-head"}
	}
	var head *audit.Head
	sigNote := ""
	if *sinceHead != "" {
		h, note, err := checkSavedHead(cfg, *sinceHead, *pubFile, *allowUnsigned)
		if err != nil {
			return err
		}
		head, sigNote = &h, note
	}
	db, err := cfg.open(ctx, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	store := audit.New(db.pool)
	var r audit.Result
	if head != nil {
		r, err = store.VerifySince(ctx, *head)
	} else {
		r, err = store.Verify(ctx)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{
			"verified": r.Verified, "eventsChecked": r.EventsChecked, "headSeq": r.HeadSeq,
			"headHash": audit.HexHash(r.HeadHash), "unsealed": r.Unsealed, "firstBadSeq": r.FirstBadSeq,
			"problem": r.Problem, "detail": r.Detail,
		}
		if head != nil {
			out["sinceHead"] = map[string]any{"seq": head.Seq, "hash": audit.HexHash(head.Hash), "signature": sigNote, "extended": r.Verified}
		}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "verified:       %v\nevents checked: %d\nhead:           %d %s\nunsealed:       %d\n",
			r.Verified, r.EventsChecked, r.HeadSeq, audit.HexHash(r.HeadHash), r.Unsealed)
		if head != nil {
			fmt.Fprintf(stdout, "since head:     %d %s\nsignature:      %s\nextends it:     %v\n", head.Seq, audit.HexHash(head.Hash), sigNote, r.Verified)
		}
		if !r.Verified {
			fmt.Fprintf(stdout, "first bad seq:  %d\nproblem:        %s\ndetail:         %s\n", r.FirstBadSeq, r.Problem, r.Detail)
		}
	}
	if !r.Verified {
		if head != nil {
			return exitError{code: 2, msg: fmt.Sprintf("audit chain does not extend the head at sequence %d: %s at sequence %d: %s", head.Seq, r.Problem, r.FirstBadSeq, r.Detail)}
		}
		return exitError{code: 2, msg: fmt.Sprintf("audit chain does not verify: %s at sequence %d", r.Problem, r.FirstBadSeq)}
	}
	return nil
}

// readSmall reads a head or a key file, a few hundred bytes: a path naming
// something else (a device, a log) is refused rather than read to its end.
func readSmall(path string) ([]byte, error) {
	const limit = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: larger than %d KiB, not a head or a key", path, limit>>10)
	}
	return data, nil
}

// checkSavedHead reads a head saved from GET /v1/audit-events:head and checks
// its signature with a trusted key: --public-key, else the public half of the
// configured signing key; never the key that came inside the file, which a
// forger would have chosen. It says how the signature was checked.
func checkSavedHead(cfg Config, file, pubFile string, allowUnsigned bool) (audit.Head, string, error) {
	data, err := readSmall(file)
	if err != nil {
		return audit.Head{}, "", exitError{code: 2, msg: "--since-head: " + err.Error()}
	}
	var saved pb.GetAuditHeadResponse
	if err := protojson.Unmarshal(data, &saved); err != nil {
		return audit.Head{}, "", exitError{code: 2, msg: fmt.Sprintf("--since-head %s: not a saved head (JSON of GET /v1/audit-events:head): %v", file, err)}
	}
	if saved.Format != "" && saved.Format != audit.HeadFormat {
		return audit.Head{}, "", exitError{code: 2, msg: fmt.Sprintf("--since-head %s: format %q, this tranche reads %q", file, saved.Format, audit.HeadFormat)}
	}
	hash, err := hex.DecodeString(saved.Hash)
	if err != nil || len(hash) != 32 || saved.Seq < 0 {
		return audit.Head{}, "", exitError{code: 2, msg: fmt.Sprintf("--since-head %s: hash must be 64 hex digits and seq not negative", file)}
	}
	h := audit.Head{Seq: saved.Seq, Hash: hash, KeyID: saved.KeyId}
	fail := func(problem, format string, args ...any) (audit.Head, string, error) {
		return audit.Head{}, "", exitError{code: 2, msg: fmt.Sprintf("head at sequence %d: %s: %s", h.Seq, problem, fmt.Sprintf(format, args...))}
	}
	if saved.Signature == "" {
		if !allowUnsigned {
			return fail(audit.HeadNotSigned, "it has no signature, so anyone could have written it; --allow-unsigned checks its hash alone")
		}
		return h, "none (unsigned head accepted with --allow-unsigned)", nil
	}
	if h.Signature, err = audit.DecodeSignature(saved.Signature); err != nil {
		return fail(audit.HeadBadSig, "signature is not base64: %v", err)
	}
	var pub ed25519.PublicKey
	switch {
	case pubFile != "":
		data, err := readSmall(pubFile)
		if err != nil {
			return audit.Head{}, "", exitError{code: 2, msg: "--public-key: " + err.Error()}
		}
		if pub, err = audit.ParsePublicKey(data); err != nil {
			return audit.Head{}, "", exitError{code: 2, msg: fmt.Sprintf("--public-key %s: %v", pubFile, err)}
		}
	case cfg.SigningKey != "":
		key, err := cfg.signingKey() // verified with the configuration
		if err != nil {
			return audit.Head{}, "", exitError{code: 2, msg: "--signing-key (env TRANCHE_SIGNING_KEY): " + err.Error()}
		}
		pub = key.Public().(ed25519.PublicKey)
	default:
		return audit.Head{}, "", exitError{code: 2, msg: "--since-head: no trusted key to check the signature with: give --public-key FILE (the operator's published key) or --signing-key"}
	}
	if err := h.VerifySignature(pub); err != nil {
		return fail(audit.HeadBadSig, "%v", err)
	}
	return h, "valid, key " + audit.KeyID(pub), nil
}
