// Package s3test runs a real S3 server for tests: the Versity S3 Gateway
// (versitygw) with its POSIX backend in a temp directory, on 127.0.0.1 at
// a free port, with fixed root credentials.
//
// A test package shares one gateway, started by the first test that asks
// for a bucket, and stops it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		opts := s3test.Bucket(t) // s3.Options of a new, empty bucket
//		…
//	}
//
// New starts a gateway of the test's own, stopped when the test ends.
//
// The binary is looked up in the repository's ./bin (where `make tools`
// installs it), then on $PATH, then in $GOBIN and $GOPATH/bin. Without it
// the tests skip, unless MOAT_E2E_REQUIRE=1 (CI), which makes them fail.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	moats3 "github.com/moat-registry/moat/storage/s3"
)

// RequireEnv names the variable that turns a missing gateway from a
// skipped test into a failed one.
const RequireEnv = "MOAT_E2E_REQUIRE"

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// InstallHint is the command that installs the gateway.
const InstallHint = "make tools (go install github.com/versity/versitygw/cmd/versitygw@" + Version + ")"

// The gateway's fixed root credentials and region.
const (
	AccessKey = "moat-test-access"
	SecretKey = "moat-test-secret-key-0123456789"
	Region    = "us-east-1"
)

// ErrNotInstalled reports that no versitygw binary was found.
var ErrNotInstalled = errors.New("versitygw not found in ./bin, $PATH, $GOBIN or $GOPATH/bin")

// Server is a running gateway.
type Server struct {
	// Endpoint is the gateway's URL, http://127.0.0.1:<port>.
	Endpoint string
	// Dir holds root/ (one directory per bucket) and log.
	Dir string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has ended
	waitErr error
	client  *awss3.Client
	buckets atomic.Int64
}

// Binary returns the path of the versitygw executable.
func Binary() (string, error) {
	if root, err := repoRoot(); err == nil {
		if p := filepath.Join(root, "bin", "versitygw"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	dirs := filepath.SplitList(build.Default.GOPATH)
	for i, d := range dirs {
		dirs[i] = filepath.Join(d, "bin")
	}
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append([]string{gobin}, dirs...)
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "versitygw"); isExecutable(p) {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// repoRoot is the directory of moat's go.mod, found upwards from the
// package directory the test runs in.
var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/moat-registry/moat\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("moat's go.mod not found")
		}
		dir = parent
	}
})

// Start starts a gateway in a new temp directory and waits until it
// answers signed requests. The caller stops it with Stop.
func Start(ctx context.Context) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "moat-s3-")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A port that is free now may be taken before the gateway binds it:
	// try a few.
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), Dir: dir}
		if err = s.start(ctx, bin, port, root); err == nil {
			return s, nil
		}
		_ = s.stop()
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

func (s *Server) start(ctx context.Context, bin string, port int, root string) error {
	log, err := os.Create(filepath.Join(s.Dir, "log"))
	if err != nil {
		return err
	}
	defer log.Close()
	s.cmd = exec.Command(bin,
		"--port", "127.0.0.1:"+strconv.Itoa(port),
		"--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--quiet",
		"posix", root)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	s.client = awss3.New(awss3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	return s.waitReady(ctx)
}

// waitReady polls with ListBuckets until the gateway answers, it exits,
// or 30 seconds pass.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := s.client.ListBuckets(ctx, &awss3.ListBucketsInput{})
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("versitygw exited: %v\n%s", s.waitErr, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("versitygw at %s not ready: %w\n%s", s.Endpoint, err, s.Log())
		case <-tick.C:
		}
	}
}

// Log returns the gateway's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	return string(b)
}

// Stop ends the gateway (SIGTERM, then SIGKILL after ten seconds) and
// removes its directory.
func (s *Server) Stop() error {
	err := s.stop()
	if rmErr := os.RemoveAll(s.Dir); err == nil {
		err = rmErr
	}
	return err
}

func (s *Server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return nil
}

// CreateBucket creates a new, empty bucket and returns its name.
func (s *Server) CreateBucket(ctx context.Context) (string, error) {
	name := fmt.Sprintf("moat-test-%d", s.buckets.Add(1))
	if _, err := s.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &name}); err != nil {
		return "", err
	}
	return name, nil
}

// Options returns store options for a bucket of the gateway.
func (s *Server) Options(bucket string) moats3.Options {
	return moats3.Options{
		Endpoint:     s.Endpoint,
		Region:       Region,
		Bucket:       bucket,
		AccessKey:    AccessKey,
		SecretKey:    SecretKey,
		UsePathStyle: true,
	}
}

// Client returns an S3 client of the gateway's root user, for tests that
// look at the bucket directly.
func (s *Server) Client() *awss3.Client { return s.client }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shared is the gateway of the test binary, started on first use.
var shared struct {
	once   sync.Once
	server *Server
	err    error
}

// Shared returns the test binary's gateway, starting it on the first call.
// Main stops it.
func Shared() (*Server, error) {
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.server, shared.err = Start(ctx)
	})
	return shared.server, shared.err
}

// Main runs the tests and then stops the shared gateway if one started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "s3test: stopping versitygw:", err)
		}
	}
	return code
}

// unavailable skips the test for a missing gateway, or fails it when
// MOAT_E2E_REQUIRE=1.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv(RequireEnv) != "1" {
		t.Skipf("%v; install it with: %s (%s=1 turns this skip into a failure)", err, InstallHint, RequireEnv)
	}
	t.Fatalf("starting versitygw: %v", err)
}

// Bucket creates a new, empty bucket on the shared gateway and returns
// store options for it.
func Bucket(t testing.TB) moats3.Options {
	t.Helper()
	s, err := Shared()
	if err != nil {
		unavailable(t, err)
	}
	return s.bucket(t)
}

// New starts a gateway of the test's own, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background())
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping versitygw: %v", err)
		}
	})
	return s
}

// NewBucket creates a new, empty bucket and returns store options for it.
func (s *Server) NewBucket(t testing.TB) moats3.Options {
	t.Helper()
	return s.bucket(t)
}

func (s *Server) bucket(t testing.TB) moats3.Options {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := s.CreateBucket(ctx)
	if err != nil {
		t.Fatalf("creating a bucket: %v", err)
	}
	return s.Options(name)
}
