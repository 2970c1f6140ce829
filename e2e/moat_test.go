package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// moatOptions configure a server started by startMoat. The zero value is
// the zero-config dev profile: anonymous pull, push and delete for
// loopback callers whose Host is localhost, 127.0.0.1 or [::1].
type moatOptions struct {
	// Config is the YAML of a configuration file passed with --config.
	// A config file turns the dev profile off unless it sets `dev: true`.
	// Empty: no file.
	Config string
	// Args are further `moat serve` flags.
	Args []string
	// Env are KEY=VALUE variables for the server, e.g.
	// MOAT_ADMIN_PASSWORD. MOAT_* variables of the test process are not
	// passed on, so a developer's settings do not leak into the tests.
	Env []string
	// DataDir is the data directory. Empty: a fresh temporary one. Pass
	// the DataDir of a stopped server to restart it on the same data.
	DataDir string
	// IP is the loopback address to listen on, e.g. 127.0.0.2 for a
	// second registry with an address of its own (Linux routes all of
	// 127.0.0.0/8 to lo). Empty: 127.0.0.1.
	IP string
}

// moatServer is a moat process listening on a loopback port.
type moatServer struct {
	// Host is IP:PORT (127.0.0.1:PORT unless moatOptions.IP says
	// otherwise), the registry part of image references.
	Host string
	// URL is http://Host.
	URL string
	// DataDir is the server's data directory.
	DataDir string

	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has ended
	waitErr error         // how it ended; read after exited is closed
	stopped atomic.Bool
}

const (
	// readyTimeout bounds the wait for a new server's first answer.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds a graceful shutdown before SIGKILL.
	stopTimeout = 30 * time.Second
)

// errPortTaken reports that the chosen port was taken before moat bound
// it; startMoat then tries another one.
var errPortTaken = errors.New("port taken")

// startMoat builds moat (once per test process), starts `moat serve` as a
// process of its own on a free loopback port and returns once GET /v2/
// answers. The server is stopped when the test ends; if it reported a
// data race or the test failed, its log is shown.
func startMoat(t testing.TB, opts moatOptions) *moatServer {
	t.Helper()
	bin, err := moatBinary()
	if err != nil {
		t.Fatal(err)
	}
	data := opts.DataDir
	if data == "" {
		data = t.TempDir()
	}
	var args []string
	if opts.Config != "" {
		path := filepath.Join(t.TempDir(), "moat.yaml")
		if err := os.WriteFile(path, []byte(opts.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	args = append(args, opts.Args...)
	const attempts = 3
	for attempt := 1; ; attempt++ {
		m, err := launchMoat(t, bin, opts.IP, data, args, opts.Env)
		if err == nil {
			t.Cleanup(func() { m.stop(t) })
			t.Logf("moat serving at %s (data %s)", m.URL, m.DataDir)
			return m
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; trying another port", attempt, err)
	}
}

// launchMoat starts one moat process and waits until it answers.
func launchMoat(t testing.TB, bin, ip, data string, args, env []string) (*moatServer, error) {
	if ip == "" {
		ip = "127.0.0.1"
	}
	port, err := freePort(ip)
	if err != nil {
		return nil, err
	}
	host := net.JoinHostPort(ip, port)
	m := &moatServer{
		Host:    host,
		URL:     "http://" + host,
		DataDir: data,
		logPath: filepath.Join(t.TempDir(), "moat.log"),
		exited:  make(chan struct{}),
	}
	logFile, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	m.cmd = exec.Command(bin, append([]string{"serve", "--listen", host, "--data", data}, args...)...)
	// A race-built moat pauses a second at exit (GORACE atexit_sleep_ms);
	// every stop would pay it.
	m.cmd.Env = append(append(environWithout("MOAT_"), "GORACE=atexit_sleep_ms=0"), env...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	m.cmd.SysProcAttr = childProcAttr()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moat: %w", err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	if err := m.waitReady(readyTimeout); err != nil {
		m.kill()
		if strings.Contains(m.log(), "address already in use") {
			return nil, fmt.Errorf("%s: %w", host, errPortTaken)
		}
		return nil, fmt.Errorf("%w\nmoat log:\n%s", err, m.log())
	}
	return m, nil
}

// freePort picks a port of the loopback address ip that is free now. moat
// does not report the port it bound for --listen :0, so the port is chosen
// here; another process may take it first, which launchMoat detects.
func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// waitReady polls GET /v2/ with a growing pause until any HTTP answer
// below 500 arrives, the process exits or the timeout passes.
func (m *moatServer) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	pause := 5 * time.Millisecond
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-m.exited:
			return fmt.Errorf("moat exited before it answered: %v", m.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("moat did not answer GET /v2/ within %s: %v", timeout, last)
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// stop ends the server with SIGTERM (SIGKILL after stopTimeout) and
// reports a data race the race-built server logged, an exit before the
// test ended, or, when the test failed, the end of the log. It may be
// called more than once.
func (m *moatServer) stop(t testing.TB) {
	t.Helper()
	if !m.stopped.CompareAndSwap(false, true) {
		return
	}
	select {
	case <-m.exited:
		if !t.Failed() {
			t.Errorf("moat exited before the test ended: %v", m.waitErr)
		}
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(stopTimeout):
			m.kill()
			t.Errorf("moat did not stop within %s of SIGTERM", stopTimeout)
		}
	}
	log := m.log()
	switch {
	case strings.Contains(log, "WARNING: DATA RACE"):
		t.Errorf("moat reported a data race:\n%s", log)
	case t.Failed():
		t.Logf("moat log (%s), last lines:\n%s", m.logPath, tail(log, 80))
	}
}

// kill ends the process at once and waits for it.
func (m *moatServer) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// log is what the server wrote to stdout and stderr so far.
func (m *moatServer) log() string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ref is an image reference in this registry: ref("app:1") is
// "127.0.0.1:PORT/app:1".
func (m *moatServer) ref(repoAndReference string) string {
	return m.Host + "/" + repoAndReference
}

// manifestAccept is the Accept header of a client that takes every
// manifest type moat stores.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// manifestDigest fetches repo's manifest for reference straight from moat
// and returns its digest, checking that Docker-Content-Digest names the
// bytes served. It is the registry's side of a client's digest claims.
func (m *moatServer) manifestDigest(t testing.TB, repo, reference string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.URL+"/v2/"+repo+"/manifests/"+reference, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", req.URL, resp.Status, body)
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		t.Fatalf("GET %s: Docker-Content-Digest %q, body digest %s", req.URL, got, digest)
	}
	return digest
}
