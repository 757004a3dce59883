package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tourBlock is a shell block of the README that a "<!-- tour -->" line
// introduces.
var tourBlock = regexp.MustCompile("(?s)<!-- tour -->\n```sh\n(.*?)\n```")

// TestReadmeTours runs the README's tours against a fresh `tranche demo`,
// block by block, as a newcomer would in a second terminal: the binary on
// PATH, the demo's shell variables sourced, in a folder whose tranche-data
// is the demo's data directory. Every command must succeed (the blocks
// check their answers with jq -e), so the README cannot drift from what the
// code does.
func TestReadmeTours(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: the README's tours need bash, curl and jq (apt-get install curl jq)", tool)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := tourBlock.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 3 {
		t.Fatalf("the README has %d tour blocks, want the donor's, the coordinator's and the auditor's", len(blocks))
	}
	// The newcomer's folder: tranche-data is the demo's data directory.
	dir := dataDir(t)
	work := filepath.Dir(dir)
	if err := os.Symlink(dir, filepath.Join(work, "tranche-data")); err != nil {
		t.Fatal(err)
	}
	startDemo(t, dir)
	bin := filepath.Dir(binary)
	for i, b := range blocks {
		script := "set -euo pipefail\n. tranche-data/demo.env\n" + b[1] + "\n"
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("tour block %d failed: %v\n%s\n--- output\n%s", i+1, err, b[1], out.String())
			continue
		}
		if strings.TrimSpace(out.String()) == "" {
			t.Errorf("tour block %d printed nothing:\n%s", i+1, b[1])
		}
		t.Logf("tour block %d:\n%s", i+1, out.String())
	}
}
