package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireEnv names the variable that turns a missing client from a skip
// into a failure; CI sets it to 1.
const requireEnv = "MOAT_E2E_REQUIRE"

// installHints name the command that installs each external tool.
var installHints = map[string]string{
	"oras":        "make tools (oras.land/oras/cmd/oras@v1.3.6)",
	"crane":       "make tools (github.com/google/go-containerregistry/cmd/crane@v0.22.1)",
	"regctl":      "make tools (github.com/regclient/regclient/cmd/regctl@v0.11.7)",
	"conformance": "make tools (github.com/opencontainers/distribution-spec/conformance)",
	"skopeo":      "apt-get install -y skopeo",
	"podman":      "apt-get install -y podman",
	"docker":      "apt-get install -y docker.io",
	"dockerd":     "apt-get install -y docker.io",
}

// unavailable skips the test because something it needs is missing, or
// fails it when MOAT_E2E_REQUIRE=1.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s (%s=1: every end-to-end client is required)", msg, requireEnv)
	}
	t.Skip(msg)
}

// lookTool finds an external tool: first in the repository's ./bin, where
// `make tools` installs pinned versions, then on $PATH. A missing tool
// ends the test through unavailable.
func lookTool(t testing.TB, name string) string {
	t.Helper()
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	hint := installHints[name]
	if hint == "" {
		hint = "your package manager"
	}
	unavailable(t, "%s is not installed (looked in ./bin and $PATH); install it with: %s", name, hint)
	return ""
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
			return "", errors.New("no go.mod of github.com/moat-registry/moat above the working directory")
		}
		dir = parent
	}
})

// errTimeout marks a command that ran out of time.
var errTimeout = errors.New("timed out")

// defaultCommandTimeout bounds one external command unless it sets its
// own timeout.
const defaultCommandTimeout = 3 * time.Minute

// command is one run of an external program.
type command struct {
	path    string
	args    []string
	env     []string // KEY=VALUE added to the test process's environment; later entries win
	dropEnv string   // a prefix: the test process's variables with it are not passed on
	dir     string   // working directory; empty: the test's
	stdin   io.Reader
	timeout time.Duration // zero: defaultCommandTimeout
}

// String is the command line as a shell would show it.
func (c command) String() string {
	parts := []string{filepath.Base(c.path)}
	for _, a := range c.args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$*?{}[]<>|&;") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// output runs the command and returns its stdout, and its stdout and
// stderr interleaved as they were written. The error tells how it ended
// when that was not exit status 0: a start failure, a non-zero exit or
// the timeout.
func (c command) output(ctx context.Context) (stdout, combined string, err error) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = defaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	cmd.Dir = c.dir
	cmd.Stdin = c.stdin
	cmd.Env = append(environWithout(c.dropEnv), c.env...)
	var out bytes.Buffer
	all := &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&out, all)
	cmd.Stderr = all
	// A grandchild that keeps the output pipes open must not hang the test.
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w after %s: %w", errTimeout, timeout, err)
	}
	return out.String(), all.String(), err
}

// environWithout is the test process's environment without the variables
// whose names start with prefix; an empty prefix drops none.
func environWithout(prefix string) []string {
	environ := os.Environ()
	if prefix == "" {
		return environ
	}
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// lockedBuffer is a buffer that stdout and stderr copiers write to at
// once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// run runs the command and returns its stdout; anything but exit status 0
// fails the test with the command line and the combined output.
func (c command) run(t testing.TB) string {
	t.Helper()
	start := time.Now()
	stdout, combined, err := c.output(t.Context())
	if err != nil {
		t.Fatalf("$ %s\n%s\n%v", c, strings.TrimRight(combined, "\n"), err)
	}
	t.Logf("$ %s  (%s)", c, time.Since(start).Round(time.Millisecond))
	return stdout
}

// runFail runs a command that must fail and returns its combined output;
// exit status 0 or a timeout fails the test.
func (c command) runFail(t testing.TB) string {
	t.Helper()
	_, combined, err := c.output(t.Context())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || errors.Is(err, errTimeout) {
		t.Fatalf("$ %s\nwant a non-zero exit status, got %v\n%s", c, err, combined)
	}
	t.Logf("$ %s  (failed as expected: %v)", c, err)
	return combined
}
