// Package testdb gives every test its own migrated PostgreSQL database.
//
// One throwaway cluster is started per test binary from the machine's
// PostgreSQL binaries (or TEST_DATABASE_URL names a server whose user may
// create databases and roles). The schema is migrated once into a template
// database; each test gets a copy made with CREATE DATABASE … TEMPLATE, which
// takes milliseconds, and the copy is dropped when the test ends.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/migrations"
)

var (
	once     sync.Once
	adminURL string
	template string
	setupErr error
	cluster  *postgres.Cluster
	tmpDir   string
)

// Main runs the package's tests and then stops the throwaway cluster. Call it
// from TestMain in every package that uses New.
func Main(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		_ = cluster.Stop()
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// DB is one test's database.
type DB struct {
	Name string
	// App connects as the application role (no UPDATE/DELETE on history).
	App *pgxpool.Pool
	// Owner connects as the superuser that owns the schema.
	Owner *pgxpool.Pool
	// AppURL and OwnerURL are the connection strings behind the pools.
	AppURL, OwnerURL string
}

// New creates a fresh migrated database for t.
func New(t testing.TB) *DB {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("test database: %v", setupErr)
	}
	ctx := context.Background()
	name := "t_" + randHex(8)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template))
	admin.Close(ctx)
	if err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	db := &DB{Name: name, OwnerURL: withDB(adminURL, name)}
	db.AppURL = asAppRole(db.OwnerURL)
	if db.Owner, err = postgres.Connect(ctx, db.OwnerURL, 8); err != nil {
		t.Fatal(err)
	}
	if db.App, err = postgres.Connect(ctx, db.AppURL, 40); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.App.Close()
		db.Owner.Close()
		if c, err := pgx.Connect(context.Background(), adminURL); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	return db
}

func setup() error {
	ctx := context.Background()
	adminURL = os.Getenv("TEST_DATABASE_URL")
	if adminURL == "" {
		// Clusters of earlier test binaries that died without cleaning up.
		// Each directory names its owner from the moment it exists; one
		// without an owner file is only reaped once it is clearly abandoned.
		stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "tranche-test-*"))
		for _, dir := range stale {
			_, err := os.Stat(filepath.Join(dir, "owner.pid"))
			if fi, serr := os.Stat(dir); err == nil || (serr == nil && time.Since(fi.ModTime()) > 10*time.Minute) {
				_ = postgres.ReapOrphan(ctx, dir)
			}
		}
		dir, err := os.MkdirTemp("", "tranche-test-")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
		tmpDir = dir
		if cluster, err = postgres.StartCluster(ctx, dir); err != nil {
			return err
		}
		adminURL = cluster.URL(postgres.SuperUser, "postgres")
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if err := postgres.EnsureRoles(ctx, admin); err != nil {
		return err
	}
	template = "tranche_tpl_" + migrationsHash()
	// Test binaries sharing one server build the template once.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7346002)"); err != nil {
		return err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(7346002)")
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_build"
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, withDB(adminURL, building)); err != nil {
		return err
	}
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, template))
	return err
}

// migrationsHash names the template after the migrations it holds, so a
// changed migration gets a new template on a shared server.
func migrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := migrations.FS.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func withDB(u, db string) string {
	pu, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	pu.Path = "/" + db
	return pu.String()
}

// asAppRole connects as the owner's login but acting as the application
// role, so tests see exactly the application's privileges on any server.
func asAppRole(u string) string {
	pu, _ := url.Parse(u)
	q := pu.Query()
	q.Set("options", "-c role="+postgres.AppRole)
	pu.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // libpq does not decode +
	return pu.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
