package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keys generate writes the private key 0600 and the public key beside it,
// and never overwrites either.
func TestKeysGenerate(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "heads")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keys", "generate", "--out", prefix}, nil, &out); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v, want mode 0600", st.Mode(), err)
	}
	if _, err := os.Stat(prefix + ".pub"); err != nil || !strings.Contains(out.String(), "key id:") {
		t.Fatalf("public key: %v\n%s", err, out.String())
	}
	before, _ := os.ReadFile(prefix + ".key")
	err = run(context.Background(), []string{"keys", "generate", "--out", prefix}, nil, io.Discard)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second generate: %v, want a refusal to overwrite", err)
	}
	if after, _ := os.ReadFile(prefix + ".key"); !bytes.Equal(before, after) {
		t.Fatal("the private key was overwritten")
	}
	// The generated key is accepted as serve's and verify's signing key.
	for _, serve := range []bool{true, false} {
		fs := newTestFlagSet()
		cf := registerConfig(fs, serve)
		if !serve {
			cf.include("signing-key")
		}
		c, err := parseCommand(fs, cf, nil, map[string]string{"TRANCHE_SIGNING_KEY": prefix + ".key"})
		if err != nil || c.SigningKey != prefix+".key" {
			t.Fatalf("serve=%v: %+v %v", serve, c, err)
		}
	}
}

// A signing key that cannot be used stops serve and verify at start, naming
// the flag and the variable.
func TestSigningKeyRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	if err := run(context.Background(), []string{"keys", "generate", "--out", prefix}, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	write := func(name string, mode os.FileMode, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	priv, _ := os.ReadFile(prefix + ".key")
	pub, _ := os.ReadFile(prefix + ".pub")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	tests := []struct {
		name, file string
		want       string
	}{
		{"missing file", filepath.Join(dir, "nonexistent.key"), "no such file"},
		{"readable by others", write("open.key", 0o644, priv), "chmod 600"},
		{"a public key", write("pub-as-priv.key", 0o600, pub), "PRIVATE KEY"},
		{"not an ed25519 key", write("ec.key", 0o600, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), "not an ed25519 key"},
		{"not PEM", write("junk.key", 0o600, []byte("hello")), "PRIVATE KEY"},
	}
	for _, tc := range tests {
		for _, args := range [][]string{{"serve", "--signing-key", tc.file}, {"verify", "--signing-key", tc.file}} {
			err := run(context.Background(), args, []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none"}, io.Discard)
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "--signing-key (env TRANCHE_SIGNING_KEY)") ||
				!strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v: got %v, want exit 2 naming the setting and %q", tc.name, args, err, tc.want)
			}
		}
	}
	// Other commands do not take the setting, so they ignore the variable.
	fs := newTestFlagSet()
	if _, err := parseCommand(fs, registerConfig(fs, false), nil, map[string]string{"TRANCHE_SIGNING_KEY": filepath.Join(dir, "nonexistent.key")}); err != nil {
		t.Fatalf("token/migrate configuration: %v", err)
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// A head or key path naming something large (a device, a log) is refused
// after 64 KiB instead of being read to its end.
func TestReadSmallRefusesLargeFiles(t *testing.T) {
	dir := t.TempDir()
	small, large := dir+"/head.json", dir+"/big"
	if err := os.WriteFile(small, []byte(`{"seq":"1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(large, bytes.Repeat([]byte("a"), 64<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readSmall(small); err != nil || string(b) != `{"seq":"1"}` {
		t.Fatalf("small file: %q, %v", b, err)
	}
	if _, err := readSmall(large); err == nil || !strings.Contains(err.Error(), "larger than 64 KiB") {
		t.Fatalf("file over 64 KiB: %v", err)
	}
	if _, err := readSmall("/dev/zero"); err == nil {
		t.Fatal("/dev/zero was read as a head")
	}
}
