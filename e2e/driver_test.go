package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// registryDriver drives one installed client through the steps the
// login and network-policy tests ask of every client: log in, push an
// image of its own, pull it back. Each has a private home (see client),
// so a login is the driver's alone; make one driver per identity.
type registryDriver interface {
	// cli is the client the driver runs.
	cli() *client
	// loginCmd logs in to host (a registry host:port) as username.
	loginCmd(t testing.TB, host, username, password string) command
	// pushStep prepares a new image with content of its own and returns
	// the step that pushes it to ref (host:port/repo:tag).
	pushStep(t testing.TB, ref string) clientStep
	// pullStep returns the step that pulls ref, blobs included.
	pullStep(t testing.TB, ref string) clientStep
}

// clientStep is a client command and how to read the manifest digest it
// pushed or pulled once it succeeded.
type clientStep struct {
	cmd    command
	digest func(t testing.TB, stdout string) string
}

// clientKinds are the clients the login and network-policy tests run,
// each with the constructor of a fresh driver.
var clientKinds = []struct {
	name      string
	newDriver func(t testing.TB) registryDriver
}{
	{"docker", func(t testing.TB) registryDriver { return engineDriver{client: dockerClient(t)} }},
	{"podman", func(t testing.TB) registryDriver {
		return engineDriver{client: podmanClient(t), registryArgs: []string{"--tls-verify=false"}, digestFile: true}
	}},
	{"oras", func(t testing.TB) registryDriver { return orasDriver{newClient(t, "oras")} }},
	{"crane", func(t testing.TB) registryDriver { return craneDriver{newClient(t, "crane")} }},
	{"regctl", func(t testing.TB) registryDriver { return newRegctlDriver(t) }},
	{"skopeo", func(t testing.TB) registryDriver { return skopeoDriver{skopeoClient(t)} }},
}

// newDriver is a fresh driver of the client called name.
func newDriver(t testing.TB, name string) registryDriver {
	t.Helper()
	for _, k := range clientKinds {
		if k.name == name {
			return k.newDriver(t)
		}
	}
	t.Fatalf("no driver for client %q", name)
	return nil
}

// login logs d in to host; the login must succeed.
func login(t testing.TB, d registryDriver, host, username, password string) {
	t.Helper()
	d.loginCmd(t, host, username, password).run(t)
}

// loginRefused tries to log d in to host and returns the output of the
// login that must fail.
func loginRefused(t testing.TB, d registryDriver, host, username, password string) string {
	t.Helper()
	return d.loginCmd(t, host, username, password).runFail(t)
}

// push pushes a new image to ref with d and returns the digest the
// client reports.
func push(t testing.TB, d registryDriver, ref string) string {
	t.Helper()
	s := d.pushStep(t, ref)
	return s.digest(t, s.cmd.run(t))
}

// pushRefused tries to push a new image to ref with d and returns the
// output of the push that must fail.
func pushRefused(t testing.TB, d registryDriver, ref string) string {
	t.Helper()
	return d.pushStep(t, ref).cmd.runFail(t)
}

// pull pulls ref with d and returns the digest of the manifest it got.
func pull(t testing.TB, d registryDriver, ref string) string {
	t.Helper()
	s := d.pullStep(t, ref)
	return s.digest(t, s.cmd.run(t))
}

// pullRefused tries to pull ref with d and returns the output of the pull
// that must fail.
func pullRefused(t testing.TB, d registryDriver, ref string) string {
	t.Helper()
	return d.pullStep(t, ref).cmd.runFail(t)
}

// splitRef splits host:port/repo:tag into host:port/repo and tag.
func splitRef(ref string) (repo, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < strings.LastIndex(ref, "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

// afterAt is the digest of a host/repo@digest reference.
func afterAt(t testing.TB, ref string) string {
	t.Helper()
	_, d, ok := strings.Cut(strings.TrimSpace(ref), "@")
	if !ok || !strings.HasPrefix(d, "sha256:") {
		t.Fatalf("%q is not a reference by digest", ref)
	}
	return d
}

// newLayout writes an OCI image layout with one image, tagged v1, whose
// file is unique to this call, and returns the directory and the
// image's digest.
func newLayout(t testing.TB, who string) (dir, digest string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{"hello.txt": "hello from " + who + " " + token(t) + "\n"}
	desc := writeOCILayout(t, dir, "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, files)
	return dir, desc.Digest.String()
}

// orasDriver pushes and pulls a one-file artifact.
type orasDriver struct{ *client }

func (d orasDriver) cli() *client { return d.client }

func (d orasDriver) loginCmd(_ testing.TB, host, username, password string) command {
	c := d.cmd("login", "--plain-http", "-u", username, "--password-stdin", host)
	c.stdin = strings.NewReader(password)
	return c
}

func (d orasDriver) pushStep(t testing.TB, ref string) clientStep {
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "hello.txt"), []byte("hello from oras "+token(t)+"\n"))
	c := d.cmd("push", "--plain-http", "--format", "json", ref, "hello.txt:text/plain")
	c.dir = work
	return clientStep{cmd: c, digest: func(t testing.TB, out string) string { return parseORAS(t, out).Digest }}
}

func (d orasDriver) pullStep(t testing.TB, ref string) clientStep {
	c := d.cmd("pull", "--plain-http", "--format", "json", "-o", t.TempDir(), ref)
	return clientStep{cmd: c, digest: func(t testing.TB, out string) string { return afterAt(t, parseORAS(t, out).Reference) }}
}

// craneDriver pushes and pulls an OCI layout. `crane auth login` only
// writes the credentials: it does not check them.
type craneDriver struct{ *client }

func (d craneDriver) cli() *client { return d.client }

func (d craneDriver) loginCmd(_ testing.TB, host, username, password string) command {
	c := d.cmd("auth", "login", host, "-u", username, "--password-stdin")
	c.stdin = strings.NewReader(password)
	return c
}

func (d craneDriver) pushStep(t testing.TB, ref string) clientStep {
	dir, _ := newLayout(t, "crane")
	return clientStep{cmd: d.cmd("push", "--insecure", dir, ref), digest: afterAt}
}

func (d craneDriver) pullStep(t testing.TB, ref string) clientStep {
	dir := filepath.Join(t.TempDir(), "layout")
	return clientStep{
		cmd:    d.cmd("pull", "--insecure", "--format", "oci", ref, dir),
		digest: func(t testing.TB, _ string) string { return layoutDigest(t, dir, "").String() },
	}
}

// regctlDriver copies OCI layouts in and out. regctl needs TLS turned off
// for each registry host, once: `registry set --tls disabled`, with
// --skip-check since its check fails on a registry that wants credentials.
type regctlDriver struct {
	*client
	mu    sync.Mutex
	hosts map[string]bool // hosts with TLS turned off
}

func newRegctlDriver(t testing.TB) *regctlDriver {
	c := newClient(t, "regctl")
	c.env = append(c.env, "REGCTL_CONFIG="+filepath.Join(c.home, ".regctl", "config.json"))
	return &regctlDriver{client: c, hosts: map[string]bool{}}
}

func (d *regctlDriver) cli() *client { return d.client }

// plainHTTP turns TLS off for the host of ref (or for ref, a host), once.
func (d *regctlDriver) plainHTTP(t testing.TB, ref string) {
	t.Helper()
	host, _, _ := strings.Cut(ref, "/")
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.hosts[host] {
		d.run(t, "registry", "set", "--skip-check", "--tls", "disabled", host)
		d.hosts[host] = true
	}
}

func (d *regctlDriver) loginCmd(t testing.TB, host, username, password string) command {
	d.plainHTTP(t, host)
	c := d.cmd("registry", "login", host, "-u", username, "--pass-stdin")
	c.stdin = strings.NewReader(password)
	return c
}

func (d *regctlDriver) pushStep(t testing.TB, ref string) clientStep {
	d.plainHTTP(t, ref)
	dir, digest := newLayout(t, "regctl")
	return clientStep{
		cmd:    d.cmd("image", "copy", "ocidir://"+dir+":v1", ref),
		digest: func(testing.TB, string) string { return digest },
	}
}

func (d *regctlDriver) pullStep(t testing.TB, ref string) clientStep {
	d.plainHTTP(t, ref)
	dir := filepath.Join(t.TempDir(), "layout")
	return clientStep{
		cmd:    d.cmd("image", "copy", ref, "ocidir://"+dir+":v1"),
		digest: func(t testing.TB, _ string) string { return layoutDigest(t, dir, "v1").String() },
	}
}

// skopeoDriver copies OCI layouts in and out.
type skopeoDriver struct{ *client }

func (d skopeoDriver) cli() *client { return d.client }

func (d skopeoDriver) loginCmd(_ testing.TB, host, username, password string) command {
	c := d.cmd("login", "--tls-verify=false", "-u", username, "--password-stdin", host)
	c.stdin = strings.NewReader(password)
	return c
}

func (d skopeoDriver) pushStep(t testing.TB, ref string) clientStep {
	dir, _ := newLayout(t, "skopeo")
	digestFile := filepath.Join(t.TempDir(), "digest")
	return clientStep{
		cmd: d.cmd("copy", "--preserve-digests", "--dest-tls-verify=false", "--digestfile", digestFile,
			"oci:"+dir+":v1", "docker://"+ref),
		digest: func(t testing.TB, _ string) string { return readDigestFile(t, digestFile) },
	}
}

func (d skopeoDriver) pullStep(t testing.TB, ref string) clientStep {
	dir := filepath.Join(t.TempDir(), "layout")
	return clientStep{
		cmd:    d.cmd("copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":v1"),
		digest: func(t testing.TB, _ string) string { return layoutDigest(t, dir, "v1").String() },
	}
}

// engineDriver drives docker or podman: push imports a root filesystem
// first, pull removes the local image first.
type engineDriver struct {
	*client
	// registryArgs are the login, push and pull flags for a plain-HTTP
	// registry (docker needs none: 127.0.0.0/8 is insecure by default).
	registryArgs []string
	// digestFile: push writes the pushed digest with --digestfile.
	digestFile bool
}

func (d engineDriver) cli() *client { return d.client }

func (d engineDriver) loginCmd(_ testing.TB, host, username, password string) command {
	args := append(append([]string{"login"}, d.registryArgs...), "-u", username, "--password-stdin", host)
	c := d.cmd(args...)
	c.stdin = strings.NewReader(password)
	return c
}

func (d engineDriver) pushStep(t testing.TB, ref string) clientStep {
	imp := d.cmd("import", "-", ref)
	imp.stdin = bytes.NewReader(rootfsTar(t, map[string]string{"hello.txt": "hello from " + d.name + " " + token(t) + "\n"}))
	imp.run(t)
	args := append([]string{"push"}, d.registryArgs...)
	if !d.digestFile {
		return clientStep{cmd: d.cmd(append(args, ref)...), digest: func(t testing.TB, out string) string {
			m := pushedDigestRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("%s push printed no digest:\n%s", d.name, out)
			}
			return m[1]
		}}
	}
	digestFile := filepath.Join(t.TempDir(), "digest")
	return clientStep{
		cmd:    d.cmd(append(args, "--digestfile", digestFile, ref)...),
		digest: func(t testing.TB, _ string) string { return readDigestFile(t, digestFile) },
	}
}

func (d engineDriver) pullStep(t testing.TB, ref string) clientStep {
	// Remove a local copy, so the pull fetches the image; there may be none.
	_, _, _ = d.cmd("rmi", ref).output(t.Context())
	args := append(append([]string{"pull"}, d.registryArgs...), ref)
	return clientStep{cmd: d.cmd(args...), digest: func(t testing.TB, _ string) string {
		repo, _ := splitRef(ref)
		for _, r := range repoDigests(t, d.client, ref) {
			if dgst, ok := strings.CutPrefix(r, repo+"@"); ok {
				return dgst
			}
		}
		t.Fatalf("%s has no repo digest of %s after pulling %s", d.name, repo, ref)
		return ""
	}}
}

// readDigestFile reads a digest a client wrote with --digestfile.
func readDigestFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the client wrote no digest file: %v", err)
	}
	return strings.TrimSpace(string(b))
}
