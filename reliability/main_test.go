// Package reliability holds moat's end-to-end reliability and security
// tests: crash consistency under SIGKILL, hostile input over real
// sockets, a full disk, secrets at rest and in logs, TLS, and graceful
// shutdown. Each test states the property it proves; each fails when the
// property is broken.
//
// Tests that need a separate moat process build ./cmd/moat once per test
// process (without the race detector: the kill points must be fast) and
// start it on a loopback port it chooses itself. Tests that need root
// (a tmpfs for the disk-full test) are skipped with the reason unless
// MOAT_E2E_REQUIRE is set, which turns the skip into a failure (CI sets
// it).
//
// The package has no code outside its tests.
package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
)

func TestMain(m *testing.M) {
	// The mode checks must see the modes moat asks for, not what the
	// caller's umask leaves of them: under umask 077 a file created 0644
	// would pass as 0600.
	clearUmask()
	code := m.Run()
	for _, dir := range []string{build.dir, template.dir} {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// build is the moat binary, built once per test process.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// moatBinary builds ./cmd/moat on first use.
func moatBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		build.dir, build.err = os.MkdirTemp("", "moat-reliability-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "moat")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", build.path, "./cmd/moat")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/moat: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// slowAnswer scales the deadline of a hostile raw request (rawRequest
// allows five times it): a request still unanswered then fails with the
// deadline error, as the server is stuck, not merely busy (CI machines are
// shared and the tests run under the race detector). No test compares an
// elapsed time with it.
const slowAnswer = 20 * time.Second

// required reports whether a missing prerequisite must fail the test
// rather than skip it.
func required() bool { return os.Getenv("MOAT_E2E_REQUIRE") != "" }

// moatProc is a `moat serve` process on a loopback port.
type moatProc struct {
	Base    string // http(s)://127.0.0.1:PORT
	Addr    string // 127.0.0.1:PORT
	Data    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// procOptions configure startMoat.
type procOptions struct {
	// Env are extra KEY=VALUE variables. MOAT_* variables of the test
	// process are not passed on; MOAT_LOG_FORMAT is json unless set here.
	Env []string
	// Args are extra `moat serve` flags.
	Args []string
}

// startMoat starts `moat serve --listen 127.0.0.1:0 --data data` and
// returns once it logged its address and GET /v2/ answers below 500.
// The process is killed when the test ends if it still runs.
func startMoat(t testing.TB, data string, opts procOptions) *moatProc {
	t.Helper()
	bin := moatBinary(t)
	logFile, err := os.CreateTemp(t.TempDir(), "moat-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	p := &moatProc{Data: data, logPath: logFile.Name(), exited: make(chan struct{})}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data}, opts.Args...)
	p.cmd = exec.Command(bin, args...)
	env := []string{"MOAT_LOG_FORMAT=json"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOAT_") {
			env = append(env, kv)
		}
	}
	p.cmd.Env = append(env, opts.Env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = childProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	if err := p.waitServing(30 * time.Second); err != nil {
		p.kill()
		t.Fatalf("%v\nmoat log:\n%s", err, p.log())
	}
	return p
}

// waitServing reads the log until the "moat is serving" line names the
// address, then polls GET /v2/ until it answers below 500.
func (p *moatProc) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for p.Addr == "" {
		for _, line := range p.logLines() {
			if line["msg"] == "moat is serving" {
				p.Addr, _ = line["listen"].(string)
				scheme := "http"
				if tlsOn, _ := line["tls"].(bool); tlsOn {
					scheme = "https"
				}
				p.Base = scheme + "://" + p.Addr
			}
		}
		if p.Addr != "" {
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("moat exited before serving: %v", p.waitErr)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moat did not log its address within %s", timeout)
		}
	}
	client := insecureClient()
	defer client.CloseIdleConnections()
	for {
		resp, err := client.Get(p.Base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("moat exited: %v", p.waitErr)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /v2/ did not answer within %s: %v", timeout, err)
		}
	}
}

// waitReady polls /readyz until it answers 200 (the bootstrap admin
// exists).
func (p *moatProc) waitReady(t testing.TB) {
	t.Helper()
	client := insecureClient()
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.Base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer 200 within 30s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to end. It may be called
// more than once.
func (p *moatProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// terminate sends SIGTERM and returns how the process ended, or an error
// if it did not end within timeout (it is then killed).
func (p *moatProc) terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("moat did not exit within %s of SIGTERM", timeout)
	}
}

// log is everything the process wrote.
func (p *moatProc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// logLines decodes the JSON lines of the log (others are skipped).
func (p *moatProc) logLines() []map[string]any {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return nil
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// insecureClient talks to moat over HTTP or HTTPS (any certificate).
func insecureClient() *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		},
	}
}

// template is a data directory bootstrapped once per test process by
// the moat binary: in-process servers start on copies of it, with the
// admin identity in place, so that none of them hashes a bootstrap
// password (bcrypt takes seconds under the race detector).
var template struct {
	once sync.Once
	dir  string
	err  error
}

// templateDir returns the bootstrapped template data directory.
func templateDir(t testing.TB) string {
	t.Helper()
	template.once.Do(func() {
		template.dir, template.err = os.MkdirTemp("", "moat-reliability-template-")
		if template.err != nil {
			return
		}
		data := filepath.Join(template.dir, "data")
		p := startMoat(t, data, procOptions{})
		// The password file is written once the admin identity is stored.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(data, "admin-password")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				template.err = fmt.Errorf("the template's bootstrap did not finish within 30s:\n%s", p.log())
				p.kill()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		template.err = p.terminate(30 * time.Second)
	})
	if template.err != nil {
		t.Fatalf("preparing the template data directory: %v", template.err)
	}
	return filepath.Join(template.dir, "data")
}

// copyTree copies the directory src to dst (which must not exist),
// keeping permissions.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Mkdir(target, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}

// startServer runs an in-process server with cfg (Listen and, when
// empty, Data are set here; Data must not exist and starts as a copy of
// the template), waits until GET /v2/ answers 200 and shuts
// it down when the test ends, or earlier when stop is called. It returns
// the base URL.
func startServer(t testing.TB, cfg config.Config) (srv *server.Server, base string, stop func()) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Data == "" {
		cfg.Data = filepath.Join(t.TempDir(), "data")
	}
	if err := copyTree(templateDir(t), cfg.Data); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	base = "http://" + srv.Addr().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, base, stop
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v2/ did not answer 200: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
