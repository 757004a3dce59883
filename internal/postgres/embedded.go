package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster is a PostgreSQL cluster that tranche runs from the machine's own
// binaries, in a data directory it owns, listening only on a Unix socket.
//
// Several tranche processes may use one data directory at once (two servers,
// or a server and `tranche token create`). None of them owns the server: each
// registers as a user while it runs, and the last one to stop stops the
// server. A user is a file in users/ on which its process holds an flock; the
// kernel drops the lock when the process dies however it dies, so a crashed
// user never keeps the server up and never counts as live, even if its pid is
// reused. Starting, registering, and deregistering-then-maybe-stopping all
// happen under an flock on cluster.lock, so a process joining while the last
// user stops either sees the server stopped (and starts it) or is seen as a
// user (and the server stays up). A server left running after every user died
// is simply joined, and stopped by its new last user.
//
// Layout of the data directory:
//
//	pgdata/       the cluster (initdb output)
//	postgres.log  the server log
//	socket-dir    where the socket lives, when the data directory's path is too long for it
//	cluster.lock  flock serialising start, join and stop
//	users/        one flock-held file per process (per StartCluster) using the server
type Cluster struct {
	DataDir   string // absolute
	SocketDir string
	binDir    string
	cred      *syscall.Credential // non-nil when the server runs as another user
	user      *os.File            // this handle's registration, flock held; nil once stopped
}

// Role names created in every cluster tranche manages. The service logs in as
// ServiceRole, a member of AppRole, which has no UPDATE, DELETE or TRUNCATE on
// the journal and audit tables; SuperUser owns the schema and runs migrations.
const (
	SuperUser   = "postgres"
	ServiceRole = "tranche_service"
	AppRole     = "tranche_app"
	dbName      = "tranche"
	socketLimit = 100 // bytes of a Unix socket path, with some margin below 107
)

// ErrNoBinaries is returned when no PostgreSQL server binaries can be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install them (apt-get install postgresql) or set DATABASE_URL to an existing server")

// FindBinDir locates initdb and pg_ctl: on PATH, from pg_config --bindir, or
// the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if fileExists(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if fileExists(filepath.Join(dir, "initdb")) && fileExists(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if fileExists(filepath.Join(dir, "initdb")) && fileExists(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// StartCluster initialises the cluster in dataDir on first use and starts it,
// or joins it when it already runs (started by another tranche process, or
// left behind by one that died). Either way the caller is registered as a
// user until Stop. A stale lock file is removed.
func StartCluster(ctx context.Context, dataDir string) (*Cluster, error) {
	c, err := newCluster(dataDir)
	if err != nil {
		return nil, err
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if err := c.startAndRegister(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// startAndRegister initialises and starts the server if needed, creates the
// database and roles, and registers this handle as a user, all under
// cluster.lock. On failure it stops the server unless another process uses it.
func (c *Cluster) startAndRegister(ctx context.Context) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if !fileExists(filepath.Join(c.pgdata(), "PG_VERSION")) {
		if err := c.initdb(ctx); err != nil {
			return err
		}
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	err = c.bootstrap(ctx)
	if err == nil {
		err = c.register()
	}
	if err != nil {
		_ = c.stopUnused()
	}
	return err
}

// lock takes the flock on cluster.lock, waiting for another process's start
// or stop to finish.
func (c *Cluster) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(c.DataDir, "cluster.lock"), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the embedded cluster: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the embedded cluster: %w", err)
	}
	c.handOver(f.Name())
	return func() { f.Close() }, nil // closing releases the flock
}

// handOver gives a file tranche created as root in the data directory to the
// server's user, like the rest of the directory, so that a later tranche run
// as that user can use it too.
func (c *Cluster) handOver(p string) {
	if c.cred != nil {
		_ = os.Chown(p, int(c.cred.Uid), int(c.cred.Gid))
	}
}

func (c *Cluster) usersDir() string { return filepath.Join(c.DataDir, "users") }

// register records this handle as a user of the running server: a file that
// stays flock-ed until Stop or the process's death.
func (c *Cluster) register() error {
	if err := os.MkdirAll(c.usersDir(), 0o700); err != nil {
		return fmt.Errorf("registering with the embedded cluster: %w", err)
	}
	c.handOver(c.usersDir())
	f, err := os.CreateTemp(c.usersDir(), strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return fmt.Errorf("registering with the embedded cluster: %w", err)
	}
	// Readable by the cluster's unprivileged user, so that a tranche process
	// run as that user sees this registration (a file it cannot open counts
	// as in use, but it should not have to guess).
	c.handOver(f.Name())
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("registering with the embedded cluster: %w", err)
	}
	c.user = f
	return nil
}

// inUse tells whether any live process is registered, removing the files of
// dead ones. Call it under cluster.lock.
func (c *Cluster) inUse() bool {
	entries, err := os.ReadDir(c.usersDir())
	if err != nil && !os.IsNotExist(err) {
		return true // cannot tell who is registered: stopping would be the harm
	}
	live := false
	for _, e := range entries {
		p := filepath.Join(c.usersDir(), e.Name())
		f, err := os.Open(p)
		if err != nil {
			// Another user's registration this process may not open (run
			// as root beside one run as postgres): in use, not dead.
			live = live || !os.IsNotExist(err)
			continue
		}
		// An flock is per open file: this fails while the user's own
		// descriptor holds it, even when that user is this very process.
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			os.Remove(p) // its process is gone
		} else {
			live = true
		}
		f.Close()
	}
	return live
}

func unprivilegedUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and PostgreSQL refuses to run as root: create a 'postgres' system user (apt-get install postgresql does), run tranche as an unprivileged user, or set DATABASE_URL")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) pgdata() string { return filepath.Join(c.DataDir, "pgdata") }

// prepareDirs creates the data and socket directories, hands them to the
// server's user, and checks up front that this user can reach them.
func (c *Cluster) prepareDirs() error {
	// Parents we create must be traversable by the server's user.
	if err := os.MkdirAll(filepath.Dir(c.DataDir), 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if err := os.Mkdir(c.DataDir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("creating data dir: %w", err)
	}
	c.SocketDir = socketDirFor(c.DataDir)
	if err := os.MkdirAll(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("creating socket dir: %w", err)
	}
	if c.SocketDir != c.DataDir {
		if err := os.WriteFile(filepath.Join(c.DataDir, "socket-dir"), []byte(c.SocketDir+"\n"), 0o600); err != nil {
			return err
		}
	}
	if c.cred == nil {
		return nil
	}
	for _, d := range []string{c.DataDir, c.SocketDir} {
		if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("handing %s to the postgres user: %w", d, err)
		}
	}
	if fileExists(c.pgdata()) {
		// A cluster copied or restored by root must still belong to the server's user.
		_ = exec.Command("chown", "-R", fmt.Sprintf("%d:%d", c.cred.Uid, c.cred.Gid), c.pgdata()).Run()
	}
	return checkReachable(c.DataDir, c.cred)
}

// checkReachable reports a parent directory that the server's user cannot
// traverse, which otherwise surfaces as an obscure initdb failure.
func checkReachable(dir string, cred *syscall.Credential) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		ok := mode&0o001 != 0 ||
			(st.Uid == cred.Uid && mode&0o100 != 0) ||
			(st.Gid == cred.Gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("the postgres user cannot reach the data directory %s: %s has no execute permission for it; choose a --data-dir outside it (e.g. /var/lib/tranche) or run chmod o+x %s", dir, p, p)
		}
		if p == "/" {
			return nil
		}
	}
}

// socketDirFor keeps the socket in the data directory unless its path would be
// too long for a Unix socket; then it uses a short private directory derived
// from the data directory's path, so every tranche process finds the same one.
func socketDirFor(dataDir string) string {
	if len(dataDir)+len("/.s.PGSQL.5432.lock") <= socketLimit {
		return dataDir
	}
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "tranche-"+hex.EncodeToString(sum[:6]))
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Env = []string{"PATH=" + c.binDir + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.DataDir}
	cmd.Dir = c.DataDir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	out, err := c.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	tmp := c.pgdata() + ".init"
	_ = os.RemoveAll(tmp)
	if err := c.run(ctx, "initdb", "-D", tmp, "-U", SuperUser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"); err != nil {
		return fmt.Errorf("initialising the embedded cluster: %w", err)
	}
	// Renamed only when complete, so an interrupted initdb is simply redone.
	return os.Rename(tmp, c.pgdata())
}

// start runs the server unless a live one already serves this data directory.
func (c *Cluster) start(ctx context.Context) error {
	if c.postmasterRunning() {
		return c.waitReady(ctx)
	}
	_ = os.Remove(filepath.Join(c.pgdata(), "postmaster.pid"))
	_ = os.Remove(filepath.Join(c.SocketDir, ".s.PGSQL.5432.lock"))
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c max_connections=200 -c shared_buffers=128MB", c.SocketDir)
	if err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.pgdata(), "-l", filepath.Join(c.DataDir, "postgres.log"), "-o", opts); err != nil {
		return fmt.Errorf("starting the embedded cluster (see %s): %w", filepath.Join(c.DataDir, "postgres.log"), err)
	}
	return c.waitReady(ctx)
}

// postmasterRunning reads postmaster.pid and checks that the process is alive
// and is a postgres server (a reused pid is not).
func (c *Cluster) postmasterRunning() bool {
	b, err := os.ReadFile(filepath.Join(c.pgdata(), "postmaster.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "postgres")
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.run(ctx, "pg_isready", "-q", "-h", c.SocketDir, "-U", SuperUser, "-d", "postgres")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded cluster not ready: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bootstrap creates the database and the roles the service uses.
func (c *Cluster) bootstrap(ctx context.Context) error {
	return Bootstrap(ctx, c.URL(SuperUser, "postgres"), dbName)
}

// URL is a connection string for user to database db over the socket.
func (c *Cluster) URL(user, db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable", user, db, c.SocketDir)
}

// AppURL is how the service connects: as ServiceRole, without ownership.
func (c *Cluster) AppURL() string { return c.URL(ServiceRole, dbName) }

// OwnerURL is how migrations and the operator connect.
func (c *Cluster) OwnerURL() string { return c.URL(SuperUser, dbName) }

// Stop ends this handle's use of the server, and stops the server when no
// other live process uses it. A second Stop does nothing.
func (c *Cluster) Stop() error {
	if c == nil || c.user == nil {
		return nil
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	os.Remove(c.user.Name())
	c.user.Close()
	c.user = nil
	return c.stopUnused()
}

// stopUnused stops the server unless a live process uses it. Call it under
// cluster.lock.
func (c *Cluster) stopUnused() error {
	if c.inUse() || !c.postmasterRunning() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.pgdata())
}

// newCluster finds the PostgreSQL binaries and, when tranche runs as root,
// the unprivileged user the server processes run as.
func newCluster(dataDir string) (*Cluster, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	c := &Cluster{DataDir: abs, binDir: binDir}
	if os.Geteuid() == 0 {
		if c.cred, err = unprivilegedUser(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ReapOrphan stops a cluster in dataDir that no live process uses (a test
// binary that panicked never stops its cluster) and removes the directory. It
// leaves alone a cluster with a live user, and a directory whose owner.pid (a
// marker a test harness writes before it starts the cluster) names a live
// process.
func ReapOrphan(ctx context.Context, dataDir string) error {
	c, err := newCluster(dataDir)
	if err != nil {
		return err
	}
	c.SocketDir = socketDirFor(c.DataDir)
	if markerAlive(filepath.Join(c.DataDir, "owner.pid")) {
		return nil
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if c.inUse() {
		return nil
	}
	if c.postmasterRunning() {
		if err := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "immediate", "-D", c.pgdata()); err != nil {
			return err
		}
	}
	return os.RemoveAll(dataDir)
}

// markerAlive tells whether the pid file at p names a live process.
func markerAlive(p string) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}
