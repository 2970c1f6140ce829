package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestTasksAcrossRegistries is the seed's "Example: ACR Tasks" between two
// moat processes. Registry A (127.0.0.2) has a tasks instance `nightly`
// whose system-assigned identity may pull A's `app`; registry B
// (127.0.0.3) has public network access disabled and trusts A's task
// through a tasks instance `a-nightly` of its own, whose identity holds a
// federated credential for A's issuer and subject tasks:nightly, and
// AcrPush. A copy task of `nightly` reaches B by exchanging a workload
// token A signs at B's /oauth2/exchange: the trusted-services bypass lets
// it through. With allow-trusted-services off, B refuses the run at once
// with its `client with IP` denial; on again, the run succeeds.
func TestTasksAcrossRegistries(t *testing.T) {
	a := startAdminMoat(t, "127.0.0.2")
	b := startAdminMoat(t, "127.0.0.3")
	a.waitReadyz(t)
	b.waitReadyz(t)
	ca, cb := a.cli(t), b.cli(t)

	// Registry B: network-restricted, trusted services allowed.
	cb.run(t, "update", "--public-network-access", "Disabled", "--allow-trusted-services", "true")
	cb.run(t, "service", "create", "a-nightly", "--type", "tasks", "--identity", "system")
	cb.run(t, "identity", "federated-credential", "add", "tasks-a-nightly", "registry-a",
		"--issuer", a.URL, "--subject", "tasks:nightly", "--audience", b.Host)
	cb.run(t, "role", "assign", "--assignee", "tasks-a-nightly", "--role", "AcrPush")
	// The API's answers to credentials it must refuse: an issuer on plain
	// http beyond loopback (400), the same (issuer, subject, audience)
	// for another identity (409).
	b.admin(t, http.MethodPut, "/admin/v1/identities/tasks-a-nightly/federated-credentials/plain-http",
		map[string]any{"issuer": "http://issuer.example.com", "subject": "tasks:nightly", "audiences": []string{b.Host}}, http.StatusBadRequest)
	b.admin(t, http.MethodPut, "/admin/v1/identities/impostor", map[string]any{"kind": "managedIdentity", "enabled": true}, http.StatusCreated)
	b.admin(t, http.MethodPut, "/admin/v1/identities/impostor/federated-credentials/registry-a",
		map[string]any{"issuer": a.URL, "subject": "tasks:nightly", "audiences": []string{b.Host}}, http.StatusConflict)

	// Registry A: the task and its identity's role on the source.
	ca.run(t, "service", "create", "nightly", "--type", "tasks", "--identity", "system")
	ca.run(t, "role", "assign", "--assignee", "tasks-nightly", "--role", "AcrPull", "--scope", "repositories/app")
	first := a.pushImage(t, "app", "1", map[string]string{"hello.txt": "first " + token(t)})
	ca.run(t, "task", "create", "nightly", "to-b", "--type", "copy",
		"--source", "app:1", "--target", b.Host+"/app:1", "--plain-http")

	if got := strings.TrimSpace(ca.run(t, "task", "run", "nightly", "to-b")); got != first.String() {
		t.Fatalf("task run printed %q, want the digest %s", got, first)
	}
	wantLastRun(t, ca, "nightly", "to-b", "Succeeded", "")
	// B let the task in through the bypass (not in the audit log, which
	// keeps denials: in the decision counter).
	bypassed := b.bypasses(t)
	if bypassed == 0 {
		t.Errorf("B counted no TrustedServiceBypass decision for the task's requests")
	}

	// Disable the setting on B: the next run fails, refused at once.
	cb.run(t, "update", "--allow-trusted-services", "false")
	out := ca.runFail(t, "task", "run", "nightly", "to-b")
	if !strings.Contains(out, "client with IP") || !strings.Contains(out, "is not allowed access to this registry") {
		t.Errorf("task run with trusted services off: want B's \"client with IP …\" denial, got:\n%s", out)
	}
	wantLastRun(t, ca, "nightly", "to-b", "Failed", "client with IP")
	if n := b.bypasses(t); n != bypassed {
		t.Errorf("B counted %v more bypasses with the setting off", n-bypassed)
	}

	// Re-enable: the run succeeds, and copies what A holds now.
	second := a.pushImage(t, "app", "1", map[string]string{"hello.txt": "second " + token(t)})
	cb.run(t, "update", "--allow-trusted-services", "true")
	if got := strings.TrimSpace(ca.run(t, "task", "run", "nightly", "to-b")); got != second.String() {
		t.Fatalf("task run printed %q, want the digest %s", got, second)
	}
	wantLastRun(t, ca, "nightly", "to-b", "Succeeded", "")

	// Read B back (public access on again, as the admin): the digests of
	// the manifest and of every blob are A's.
	cb.run(t, "update", "--public-network-access", "Enabled")
	if got := b.manifestDigestAs(t, "app", "1"); got != second {
		t.Errorf("B serves app:1 as %s, A's is %s", got, second)
	}
	for _, d := range a.blobsOf(t, "app", second) {
		b.wantBlob(t, "app", d)
	}
}

// wantLastRun checks the last run recorded on a task.
func wantLastRun(t testing.TB, c adminCLI, service, task, status, errPart string) {
	t.Helper()
	var got struct {
		LastRun *struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		} `json:"lastRun"`
	}
	if err := json.Unmarshal([]byte(c.run(t, "task", "show", service, task, "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	switch {
	case got.LastRun == nil:
		t.Errorf("task %s/%s has no last run", service, task)
	case got.LastRun.Status != status || !strings.Contains(got.LastRun.Error, errPart):
		t.Errorf("task %s/%s last run: %s %q, want %s with an error containing %q", service, task, got.LastRun.Status, got.LastRun.Error, status, errPart)
	}
}

// bypasses reads from /metrics how many requests the trusted-services
// bypass let through.
func (m *moatServer) bypasses(t testing.TB) float64 {
	t.Helper()
	status, body := m.do(t, http.MethodGet, "/metrics", "", "", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "moat_policy_decisions_total{") && strings.Contains(line, `reason="TrustedServiceBypass"`) && strings.Contains(line, `allowed="true"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// adminMoat is a moat started with --dev=false and a known admin
// password, on a loopback address of its own.
type adminMoat struct {
	*moatServer
	password string
}

// startAdminMoat starts `moat serve --dev=false` on ip with
// MOAT_ADMIN_PASSWORD set. The admin exists once the server is ready
// (waitReadyz): hashing the password takes a bcrypt's time after the
// listener is up.
func startAdminMoat(t testing.TB, ip string, args ...string) *adminMoat {
	t.Helper()
	pw := "admin-" + token(t)
	m := startMoat(t, moatOptions{IP: ip, Args: append([]string{"--dev=false"}, args...), Env: []string{"MOAT_ADMIN_PASSWORD=" + pw}})
	return &adminMoat{moatServer: m, password: pw}
}

// waitReadyz polls GET /readyz until it answers 200: bootstrap is done.
func (m *moatServer) waitReadyz(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		status, body := m.do(t, http.MethodGet, "/readyz", "", "", "", nil)
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz: %d %s after %s", m.URL, status, body, readyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminCLI runs the moat CLI against one server as its admin, with a
// private HOME so no login file is read or written.
type adminCLI struct {
	bin, server, username, password, home string
}

func (m *adminMoat) cli(t testing.TB) adminCLI {
	t.Helper()
	bin, err := moatBinary()
	if err != nil {
		t.Fatal(err)
	}
	return adminCLI{bin: bin, server: m.URL, username: "admin", password: m.password, home: t.TempDir()}
}

func (c adminCLI) cmd(args ...string) command {
	return command{
		path: c.bin,
		args: append(args, "--server", c.server, "--username", c.username, "--password", c.password),
		env: []string{"HOME=" + c.home, "XDG_CONFIG_HOME=" + filepath.Join(c.home, ".config"),
			// A race-built binary sleeps a second before it exits, for
			// late reports; a CLI command has no goroutines left by then.
			"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")},
		dropEnv: "MOAT_",
		timeout: time.Minute,
	}
}

func (c adminCLI) run(t testing.TB, args ...string) string {
	t.Helper()
	return c.cmd(args...).run(t)
}

func (c adminCLI) runFail(t testing.TB, args ...string) string {
	t.Helper()
	return c.cmd(args...).runFail(t)
}

// admin sends an admin API request with the admin's Basic credentials and
// checks the status.
func (m *adminMoat) admin(t testing.TB, method, path string, body any, want int) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(mustJSON(t, body))
	}
	status, b := m.do(t, method, path, "admin", m.password, "application/json", r)
	if status != want {
		t.Fatalf("%s %s: %d, want %d\n%s", method, path, status, want, b)
	}
	return b
}

// do sends a request with Basic credentials (none when user is empty).
func (m *moatServer) do(t testing.TB, method, path, user, pass, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", manifestAccept+", application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// pushBlob uploads b (POST, then PUT with the digest) as user.
func (m *moatServer) pushBlob(t testing.TB, repo, user, pass string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/v2/"+repo+"/blobs/uploads/", nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v2/%s/blobs/uploads/: %s", repo, resp.Status)
	}
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	status, body := m.do(t, http.MethodPut, loc+sep+"digest="+d.String(), user, pass, "application/octet-stream", bytes.NewReader(b))
	if status != http.StatusCreated {
		t.Fatalf("PUT %s: %d\n%s", loc, status, body)
	}
	return d
}

// pushManifest stores a manifest under reference as user.
func (m *moatServer) pushManifest(t testing.TB, repo, reference, user, pass, mediaType string, b []byte) digest.Digest {
	t.Helper()
	status, body := m.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+reference, user, pass, mediaType, bytes.NewReader(b))
	if status != http.StatusCreated {
		t.Fatalf("PUT /v2/%s/manifests/%s: %d\n%s", repo, reference, status, body)
	}
	return digest.FromBytes(b)
}

// pushImageAs pushes a one-layer image of files for platform (nil:
// linux/amd64, not recorded in the descriptor) as user, tagged tag or by
// digest when tag is empty, and returns its manifest's descriptor.
func (m *moatServer) pushImageAs(t testing.TB, repo, tag, user, pass string, platform *v1.Platform, files map[string]string) v1.Descriptor {
	t.Helper()
	layer := gzipBytes(t, rootfsTar(t, files))
	diffID := digest.FromBytes(rootfsTar(t, files))
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	if platform != nil {
		p = *platform
	}
	config := mustJSON(t, v1.Image{Platform: p, RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}})
	cd := m.pushBlob(t, repo, user, pass, config)
	ld := m.pushBlob(t, repo, user, pass, layer)
	manifest := mustJSON(t, v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: ld, Size: int64(len(layer))}},
	})
	ref := tag
	if ref == "" {
		ref = digest.FromBytes(manifest).String()
	}
	d := m.pushManifest(t, repo, ref, user, pass, v1.MediaTypeImageManifest, manifest)
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: int64(len(manifest))}
	if platform != nil {
		desc.Platform = platform
	}
	return desc
}

// pushImage pushes a one-layer image as the admin.
func (m *adminMoat) pushImage(t testing.TB, repo, tag string, files map[string]string) digest.Digest {
	t.Helper()
	return m.pushImageAs(t, repo, tag, "admin", m.password, nil, files).Digest
}

// manifestDigestAs is manifestDigest with the admin's Basic credentials.
func (m *adminMoat) manifestDigestAs(t testing.TB, repo, reference string) digest.Digest {
	t.Helper()
	status, body := m.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+reference, "admin", m.password, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v2/%s/manifests/%s: %d\n%s", repo, reference, status, body)
	}
	return digest.FromBytes(body)
}

// blobsOf lists the config and layers of an image manifest, read as the
// admin.
func (m *adminMoat) blobsOf(t testing.TB, repo string, d digest.Digest) []digest.Digest {
	t.Helper()
	status, body := m.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), "admin", m.password, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET manifest %s: %d\n%s", d, status, body)
	}
	var man v1.Manifest
	if err := json.Unmarshal(body, &man); err != nil {
		t.Fatal(err)
	}
	out := []digest.Digest{man.Config.Digest}
	for _, l := range man.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// wantBlob checks that repo serves blob d with the bytes of that digest.
func (m *adminMoat) wantBlob(t testing.TB, repo string, d digest.Digest) {
	t.Helper()
	status, body := m.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), "admin", m.password, "", nil)
	if status != http.StatusOK {
		t.Errorf("%s: GET blob %s: %d %s", m.Host, d, status, body)
		return
	}
	if got := digest.FromBytes(body); got != d {
		t.Errorf("%s: blob %s has the bytes of %s", m.Host, d, got)
	}
}
