package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// Asking any command for help prints its usage to stdout and succeeds, without
// touching a database or minding a malformed setting.
func TestHelpSucceedsOnEveryCommand(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "TRANCHE_LOG_LEVEL=chatty"}
	tests := []struct {
		args []string
		want []string // in the usage printed
	}{
		{[]string{"help"}, []string{"usage: tranche <command>", "serve", "token"}},
		{[]string{"-h"}, []string{"usage: tranche <command>"}},
		{[]string{"--help"}, []string{"usage: tranche <command>"}},
		{[]string{"help", "serve"}, []string{"usage: tranche serve", "-grpc-addr", "TRANCHE_MAX_CONNS"}},
		{[]string{"help", "token", "create"}, []string{"usage: tranche token create", "-role"}},
		{[]string{"serve", "-h"}, []string{"usage: tranche serve", "-http-addr", "TRANCHE_TOKEN_CACHE_TTL"}},
		{[]string{"serve", "--help"}, []string{"usage: tranche serve", "-max-conns"}},
		{[]string{"serve", "--grpc-addr", "127.0.0.1:0", "-help"}, []string{"usage: tranche serve"}},
		{[]string{"migrate", "-h"}, []string{"usage: tranche migrate", "-migrate-database-url"}},
		{[]string{"migrate", "--help"}, []string{"usage: tranche migrate"}},
		{[]string{"token", "-h"}, []string{"usage: tranche token create", "tranche token revoke"}},
		{[]string{"token", "--help"}, []string{"usage: tranche token create"}},
		{[]string{"token", "help"}, []string{"usage: tranche token create"}},
		{[]string{"token", "create", "-h"}, []string{"usage: tranche token create", "-role", "-org", "-name"}},
		{[]string{"token", "create", "--help"}, []string{"usage: tranche token create"}},
		{[]string{"token", "list", "-h"}, []string{"usage: tranche token list", "-json"}},
		{[]string{"token", "list", "--help"}, []string{"usage: tranche token list"}},
		{[]string{"token", "revoke", "-h"}, []string{"usage: tranche token revoke", "TOKEN_ID"}},
		{[]string{"token", "revoke", "--help"}, []string{"usage: tranche token revoke"}},
		{[]string{"verify", "-h"}, []string{"usage: tranche verify", "-json"}},
		{[]string{"verify", "--help"}, []string{"usage: tranche verify"}},
		{[]string{"verify", "-h"}, []string{"-since-head", "-public-key", "-allow-unsigned", "TRANCHE_SIGNING_KEY"}},
		{[]string{"serve", "-h"}, []string{"-signing-key", "TRANCHE_SIGNING_KEY"}},
		{[]string{"keys", "-h"}, []string{"usage: tranche keys generate", "PREFIX.pub"}},
		{[]string{"keys", "--help"}, []string{"usage: tranche keys generate"}},
		{[]string{"keys", "help"}, []string{"usage: tranche keys generate"}},
		{[]string{"keys", "generate", "-h"}, []string{"usage: tranche keys generate", "-out"}},
		{[]string{"keys", "generate", "--help"}, []string{"usage: tranche keys generate"}},
		{[]string{"help", "keys", "generate"}, []string{"usage: tranche keys generate", "-out"}},
		{[]string{"help"}, []string{"keys", "verify"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := run(context.Background(), tc.args, env, &out); err != nil {
				t.Fatalf("exit with %v, want success\n%s", err, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("usage does not mention %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// Misuse still fails with exit status 2 (and usage where it helps).
func TestMisuseIsAUsageError(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{}, {"nonsense"}, {"help", "nonsense"}, {"token"}, {"token", "rotate"},
		{"serve", "--no-such-flag"}, {"token", "list", "--role", "admin"}, {"token", "revoke"},
		{"keys"}, {"keys", "rotate"}, {"keys", "generate"}, {"keys", "generate", "--out", "x", "extra"},
		{"verify", "--public-key", "k.pub"}, {"verify", "--allow-unsigned"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, nil, &out)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: got %v, want exit status 2", args, err)
		}
	}
}
