// Package pgtest starts throwaway PostgreSQL clusters for tests, from the
// server binaries of the distribution's packages (Debian's postgresql
// installs them under /usr/lib/postgresql/<version>/bin).
//
// A cluster lives in a temp directory: initdb creates it, pg_ctl starts it
// on 127.0.0.1 with a free port and its unix socket beside the data, and
// stops it (fast shutdown) at the end. PostgreSQL refuses to run as root,
// so when the tests do, the cluster runs as the postgres user (runuser).
//
// A test package shares one cluster, started by the first test that asks
// for a database, and stops it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.Database(t) // a new, empty database
//		…
//	}
//
// Without the binaries Database skips the test, unless MOAT_E2E_REQUIRE=1
// (CI), which makes it fail.
//
// The shared cluster trades durability for speed (fsync=off,
// synchronous_commit=off) unless MOAT_PG_DURABLE=1, which keeps
// PostgreSQL's defaults: benchmarks that compare with a store that
// fsyncs its commits want it.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables of the shared cluster.
const (
	// RequireEnv=1 turns a missing PostgreSQL from a skipped test into a
	// failed one.
	RequireEnv = "MOAT_E2E_REQUIRE"
	// DurableEnv=1 keeps PostgreSQL's durable defaults (fsync on).
	DurableEnv = "MOAT_PG_DURABLE"
)

// Options shape a cluster.
type Options struct {
	// Durable keeps fsync and synchronous commits on; without it the
	// cluster is faster and loses its data in a crash, which tests do not
	// mind.
	Durable bool
}

// ErrNotInstalled reports that no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH")

// binGlob is where Debian's packages put the server binaries.
const binGlob = "/usr/lib/postgresql/*/bin"

// Cluster is a running PostgreSQL cluster in a temp directory.
type Cluster struct {
	// Dir holds data/ (the cluster), sock/ (its unix socket) and log.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int

	opts  Options
	bin   string // directory of initdb, pg_ctl
	owner *user.User
	dbs   atomic.Int64
}

// FindBin returns the directory of the newest installed initdb and pg_ctl.
func FindBin() (string, error) {
	dirs, _ := filepath.Glob(binGlob)
	// Newest major version first: 17 sorts after 9 only numerically.
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		d := filepath.Dir(p)
		if isExecutable(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start creates and starts a cluster. The caller stops it with Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bin: bin}
	if os.Geteuid() == 0 {
		if c.owner, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
		}
	}
	c.stopOrphans(ctx)
	if c.Dir, err = os.MkdirTemp("", dirPrefix); err != nil {
		return nil, err
	}
	// Whose cluster it is: a test binary killed before Stop (a timeout)
	// leaves it running, and the next Start stops it.
	if err := os.WriteFile(filepath.Join(c.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(c.Dir)
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// The temp directory of a cluster is dirPrefix + random, and ownerFile
// in it holds the process id of the test binary that started it.
const (
	dirPrefix = "moat-pg-"
	ownerFile = "owner.pid"
)

// stopOrphans stops and removes the clusters that test binaries no longer
// running left behind.
func (c *Cluster) stopOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not one of ours, or still being set up
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		orphan := &Cluster{Dir: dir, bin: c.bin, owner: c.owner}
		if _, err := os.Stat(orphan.path("data", "postmaster.pid")); err == nil {
			_ = orphan.run(ctx, "pg_ctl", "-D", orphan.path("data"), "-m", "immediate", "-w", "-t", "30", "stop")
		}
		_ = os.RemoveAll(dir)
	}
}

// processAlive reports whether a process exists (signal 0 probes it).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (c *Cluster) start(ctx context.Context) error {
	// The server, run as the postgres user, writes its log beside data/.
	if err := c.chown(c.Dir); err != nil {
		return err
	}
	for _, d := range []string{"data", "sock"} {
		if err := os.Mkdir(filepath.Join(c.Dir, d), 0o700); err != nil {
			return err
		}
		if err := c.chown(filepath.Join(c.Dir, d)); err != nil {
			return err
		}
	}
	if err := c.run(ctx, "initdb", "-D", c.path("data"), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	// A port that is free now may be taken before the server binds it:
	// try a few.
	var err error
	for range 3 {
		if c.Port, err = freePort(); err != nil {
			return err
		}
		args := []string{
			"-p", strconv.Itoa(c.Port),
			"-k", c.path("sock"),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "max_connections=200",
		}
		if !c.opts.Durable {
			// Tests want speed, not durability across a power cut.
			args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		}
		opts := strings.Join(args, " ")
		// -w: pg_ctl polls until the server accepts connections.
		err = c.run(ctx, "pg_ctl", "-D", c.path("data"), "-l", c.path("log"), "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			return c.waitReady(ctx)
		}
	}
	return fmt.Errorf("%w\n%s", err, c.Log())
}

// waitReady polls until a connection succeeds, within a deadline.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL on port %d not ready: %w\n%s", c.Port, err, c.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Log returns the server's log so far.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.path("log"))
	return string(b)
}

// Stop stops the server (fast shutdown) and removes the directory.
func (c *Cluster) Stop() error {
	var err error
	if _, statErr := os.Stat(c.path("data", "postmaster.pid")); statErr == nil {
		err = c.run(context.Background(), "pg_ctl", "-D", c.path("data"), "-m", "fast", "-w", "-t", "60", "stop")
	}
	if rmErr := os.RemoveAll(c.Dir); err == nil {
		err = rmErr
	}
	return err
}

// DSN is the connection string of a database of the cluster.
func (c *Cluster) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, database)
}

// CreateDatabase creates a new, empty database and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("moat_test_%d", c.dbs.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return c.DSN(name), nil
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

func (c *Cluster) chown(p string) error {
	if c.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.owner.Uid)
	gid, _ := strconv.Atoi(c.owner.Gid)
	return os.Chown(p, uid, gid)
}

// run runs one of the server's programs, as the postgres user when the
// tests run as root.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	name := filepath.Join(c.bin, prog)
	if c.owner != nil {
		args = append([]string{"-u", c.owner.Username, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", prog, err, out.Bytes())
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shared is the cluster of the test binary, started on first use.
var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Shared returns the test binary's cluster, starting it on the first call.
// Main stops it.
func Shared() (*Cluster, error) {
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.cluster, shared.err = Start(ctx, Options{Durable: os.Getenv(DurableEnv) == "1"})
	})
	return shared.cluster, shared.err
}

// Main runs the tests and then stops the shared cluster if one started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.cluster != nil {
		if err := shared.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stopping PostgreSQL:", err)
		}
	}
	return code
}

// Database returns the DSN of a new, empty database on the shared cluster.
// Without PostgreSQL it skips the test, or fails it when MOAT_E2E_REQUIRE=1.
func Database(t testing.TB) string {
	t.Helper()
	c, err := Shared()
	if err != nil {
		if errors.Is(err, ErrNotInstalled) && os.Getenv(RequireEnv) != "1" {
			t.Skipf("%v (apt-get install postgresql; %s=1 turns this skip into a failure)", err, RequireEnv)
		}
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	return dsn
}
