package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

func TestEmbeddedClusterKeepsDataAcrossRestart(t *testing.T) {
	if _, err := postgres.FindBinDir(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := tempDir(t)
	c, err := postgres.StartCluster(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, c.OwnerURL()); err != nil {
		t.Fatal(err)
	}
	exec(t, c.OwnerURL(), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across restarts'); GRANT SELECT ON kept TO tranche_app`)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("server still running after Stop: %v", err)
	}

	// A crashed run leaves a lock file naming a dead process: start anyway.
	pidFile := filepath.Join(dir, "pgdata", "postmaster.pid")
	if err := os.WriteFile(pidFile, []byte("999999\n"+filepath.Join(dir, "pgdata")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := postgres.StartCluster(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	// A second process joins the running server and does not stop it.
	c3, err := postgres.StartCluster(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Stop(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c2.AppURL())
	if err != nil {
		t.Fatalf("joined server was stopped by a non-owner: %v", err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != "across restarts" {
		t.Fatalf("after restart: %q %v", v, err)
	}
	// The service role owns nothing and cannot write what it may only read.
	if _, err := conn.Exec(ctx, `INSERT INTO kept VALUES ('x')`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("service role wrote to a read-only table: %v", err)
	}
}

// Two processes start on one data directory at once; the server keeps serving
// the second after the first stops, whichever of them started it, and stops
// with the last one. A registration left by a process that died does not keep
// it up.
func TestClusterServesUntilItsLastUserStops(t *testing.T) {
	ctx := context.Background()
	dir := tempDir(t)
	var users [2]*postgres.Cluster
	var errs [2]error
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() { users[i], errs[i] = postgres.StartCluster(ctx, dir) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
	}
	first, second := users[0], users[1]
	defer second.Stop()
	conn, err := pgx.Connect(ctx, second.AppURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil { // twice is harmless
		t.Fatal(err)
	}
	var one int
	if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("the survivor lost its connection: %v", err)
	}
	exec(t, second.OwnerURL(), `SELECT 1`) // and can open new ones

	dead := filepath.Join(dir, "users", "999999-dead")
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("server still running after its last user stopped: %v", err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("a dead user's registration was kept: %v", err)
	}
}

// Starting on an existing cluster, or joining a running one, and migrating
// it again leave no error in the server's own log.
func TestRestartsLogNoErrors(t *testing.T) {
	ctx := context.Background()
	dir := tempDir(t)
	start := func() *postgres.Cluster {
		t.Helper()
		c, err := postgres.StartCluster(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := postgres.Migrate(ctx, c.OwnerURL()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := start().Stop(); err != nil { // first start: initdb, roles, database
		t.Fatal(err)
	}
	restarted := start()
	joined := start()
	for _, c := range []*postgres.Cluster{joined, restarted} {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "ERROR:") || strings.Contains(line, "FATAL:") {
			t.Errorf("server log: %s", line)
		}
	}
}

func TestLongDataDirUsesShortSocketDir(t *testing.T) {
	long := filepath.Join(tempDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
	c, err := postgres.StartCluster(context.Background(), long)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if c.SocketDir == c.DataDir || len(c.SocketDir) > 60 {
		t.Fatalf("socket dir %q for a %d-byte data dir", c.SocketDir, len(long))
	}
	exec(t, c.OwnerURL(), `SELECT 1`)
	b, err := os.ReadFile(filepath.Join(long, "socket-dir"))
	if err != nil || strings.TrimSpace(string(b)) != c.SocketDir {
		t.Fatalf("socket dir not recorded: %q %v", b, err)
	}
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// tempDir is a test directory the postgres user can reach when tests run as root.
func tempDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
