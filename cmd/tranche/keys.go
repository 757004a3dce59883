package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tranche-ledger/tranche/internal/audit"
)

const keysUsage = `usage: tranche keys generate --out PREFIX

Writes a new ed25519 key pair for signing audit-chain heads: PREFIX.key, the
private key (PEM PKCS#8, mode 0600), for serve's --signing-key; and PREFIX.pub,
the public key (PEM PKIX), to publish to auditors, who check saved heads with
'tranche verify --since-head HEAD --public-key PREFIX.pub'. Refuses to
overwrite either file.

Run 'tranche keys generate -h' for its flags.
`

func cmdKeys(_ context.Context, args []string, _ map[string]string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, keysUsage)
		return exitError{code: 2, msg: "no keys command given (generate)"}
	}
	sub, args := args[0], args[1:]
	switch {
	case isHelp(sub):
		fmt.Fprint(stdout, keysUsage)
		return nil
	case sub != "generate":
		return exitError{code: 2, msg: fmt.Sprintf("unknown keys command %q (generate)", sub)}
	}
	fs := newFlagSet("keys generate", "keys generate --out PREFIX",
		"Writes PREFIX.key (ed25519 private key, PEM PKCS#8, mode 0600) and PREFIX.pub (public key,\nPEM PKIX), refusing to overwrite either. Needs no database.", stdout)
	out := fs.String("out", "", "path prefix of the two files written (required)")
	if err := fs.Parse(args); err != nil {
		if isFlagHelp(err) {
			return err
		}
		return exitError{code: 2, msg: err.Error()}
	}
	if *out == "" {
		return exitError{code: 2, msg: "keys generate: --out PREFIX is required"}
	}
	if fs.NArg() != 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	priv, pubPath := *out+".key", *out+".pub"
	pub, err := audit.GenerateKeyFiles(priv, pubPath)
	if err != nil {
		return exitError{code: 2, msg: "keys generate: " + err.Error()}
	}
	fmt.Fprintf(stdout, "private key: %s (mode 0600; give it to serve as --signing-key)\npublic key:  %s (publish it to auditors)\nkey id:      %s\n",
		priv, pubPath, audit.KeyID(pub))
	return nil
}
