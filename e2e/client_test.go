package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// client is an installed registry client with a private home: its own
// configuration and credential files, so that a test neither reads nor
// changes the user's, and a login stays inside the test. Every client gets
// the variables the common clients read:
//
//	HOME                   oras, crane, regctl (~/.regctl), docker
//	DOCKER_CONFIG          docker, crane, oras credentials
//	REGISTRY_AUTH_FILE     skopeo, podman credentials (holds {} at first)
//	XDG_CONFIG_HOME, XDG_RUNTIME_DIR, TMPDIR
type client struct {
	name string
	path string
	// home is the private home directory.
	home string
	// authFile is REGISTRY_AUTH_FILE.
	authFile string
	// env are the KEY=VALUE settings every command of the client gets.
	env []string
	// globalArgs come before every subcommand (docker -H, podman storage).
	globalArgs []string
	// timeout bounds one command; zero: defaultCommandTimeout.
	timeout time.Duration
}

// versionArgs print each client's version, for the test log.
var versionArgs = map[string][]string{
	"oras":   {"version"},
	"crane":  {"version"},
	"regctl": {"version", "--format", "{{.VCSTag}}"},
	"skopeo": {"--version"},
	"docker": {"version", "--format", "client {{.Client.Version}}, server {{.Server.Version}}"},
	"podman": {"--version"},
}

// newClient finds the client called name (see lookTool) and gives it a
// private home under the test's temporary directory.
func newClient(t testing.TB, name string) *client {
	t.Helper()
	c := &client{name: name, path: lookTool(t, name), home: t.TempDir()}
	c.authFile = filepath.Join(c.home, "auth.json")
	writeFile(t, c.authFile, []byte("{}\n"))
	for _, d := range []string{".docker", ".config", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(c.home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	c.env = []string{
		"HOME=" + c.home,
		"DOCKER_CONFIG=" + filepath.Join(c.home, ".docker"),
		"REGISTRY_AUTH_FILE=" + c.authFile,
		"XDG_CONFIG_HOME=" + filepath.Join(c.home, ".config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(c.home, "run"),
		"TMPDIR=" + filepath.Join(c.home, "tmp"),
	}
	return c
}

// logVersion writes the client's version to the test log.
func (c *client) logVersion(t testing.TB) {
	t.Helper()
	if args, ok := versionArgs[c.name]; ok {
		out := c.run(t, args...)
		t.Logf("%s: %s (%s)", c.name, strings.TrimSpace(out), c.path)
	}
}

// cmd is a command of this client; set its stdin or dir before running.
func (c *client) cmd(args ...string) command {
	return command{
		path:    c.path,
		args:    append(append([]string(nil), c.globalArgs...), args...),
		env:     c.env,
		timeout: c.timeout,
	}
}

// run runs a client command that must succeed and returns its output.
func (c *client) run(t testing.TB, args ...string) string {
	t.Helper()
	return c.cmd(args...).run(t)
}

// runFail runs a client command that must fail and returns its output.
func (c *client) runFail(t testing.TB, args ...string) string {
	t.Helper()
	return c.cmd(args...).runFail(t)
}
