package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"gopkg.in/yaml.v3"
)

// TestReplicas runs moat scaled out: three replicas (A, B, C) on one
// PostgreSQL database and one S3 bucket (versitygw), as docs/scale-out.md
// describes, and checks that they act as one registry:
//
//   - conformance: the OCI conformance suite (1.1 and dev) passes with
//     its requests spread round-robin over the three by a proxy, so that
//     every upload's POST, PATCHes and PUT, and every push's manifest and
//     blobs, land on different replicas;
//   - push and pull: an image crane pushes through A is pulled through B
//     and C with the same digest;
//   - chunks across replicas: an upload opened on A, continued on B and
//     C and finished on A verifies, and every replica serves the blob;
//   - replica killed mid-upload: A is SIGKILLed while a PATCH streams
//     (after S3 took a part of it); B reports the offset of the last
//     chunk A finished, takes the rest and completes the blob;
//   - policy in step (replicas_policy_test.go): a network rule change,
//     an identity disabled and a role assignment removed through A are
//     enforced by B and C, with the delay measured and logged;
//   - tokens: a token from A verifies on B and C; after `moat keys
//     rotate` through B, a token of the new key from C verifies on A;
//   - presigned redirects (replicas_redirect_test.go): a fourth replica
//     with storage.s3.redirect sends blob GETs to presigned URLs of the
//     bucket, except for ranges and while network rules restrict access;
//   - one garbage collector: while the test holds the collectors'
//     PostgreSQL advisory lock, POST /admin/v1/gc on A, B and C at once
//     answers 409 on each; released, a collection runs.
//
// The steps build on each other (the GC collects what the earlier ones
// left unreferenced) and share the replicas, started once.
func TestReplicas(t *testing.T) {
	rs := startReplicaSet(t)
	lb := startRoundRobin(t, rs.replicas)
	t.Logf("round-robin proxy at %s", lb.URL)
	steps := []struct {
		name string
		run  func(*testing.T, *replicaSet, *roundRobin)
	}{
		{"conformance", replicasConformance},
		{"push A pull B and C", replicasPushPull},
		{"chunks across replicas", replicasChunkedUpload},
		{"replica killed mid-upload", replicasKilledMidUpload},
		{"policy in step", replicasPolicyInStep},
		{"tokens verify everywhere", replicasTokens},
		{"presigned redirects", replicasRedirect},
		{"one garbage collector", replicasGC},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, rs, lb) }) {
			return
		}
	}
	t.Logf("proxy spread: %s", lb.spread())
}

// replicasConformance runs the OCI conformance suite through the
// round-robin proxy as the admin, for each spec version, with the
// expectations of TestConformance (the same Disabled lists: the
// version's defaults, and Sparse Manifests, which the profile refuses).
func replicasConformance(t *testing.T, rs *replicaSet, lb *roundRobin) {
	suite := lookTool(t, "conformance")
	tests := []struct {
		version                    string
		disabledAPIs, disabledData []string
	}{
		{"1.1", []string{"Blob upload cancel", "Manifest put with tag params"}, []string{"Sparse Manifests", "Tag Param", "Tag Param sha512"}},
		{"dev", nil, []string{"Sparse Manifests"}},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			results := t.TempDir()
			if dir := os.Getenv(resultsEnv); dir != "" {
				results = filepath.Join(dir, "replicas-"+tc.version)
			}
			run := command{
				path: suite,
				env: []string{
					"OCI_REGISTRY=" + lb.Host,
					"OCI_TLS=disabled",
					"OCI_VERSION=" + tc.version,
					"OCI_RESULTS_DIR=" + results,
					"OCI_USERNAME=admin",
					"OCI_PASSWORD=" + rs.password,
					"OCI_NAMESPACE=replicas/" + strings.ReplaceAll(tc.version, ".", "-"),
				},
				dropEnv: "OCI_",
				dir:     t.TempDir(),
				timeout: 10 * time.Minute,
			}
			start := time.Now()
			stdout, combined, err := run.output(t.Context())
			counts, perr := parseConformanceSummary(stdout)
			if perr != nil {
				t.Fatalf("conformance %s: %v (exit: %v)\n%s", tc.version, perr, err, tail(combined, 80))
			}
			t.Logf("conformance %s through the proxy in %s: %s", tc.version, time.Since(start).Round(time.Millisecond), counts)
			if err != nil || counts.Result != "Pass" || counts.Fail != 0 || counts.Error != 0 || counts.Skip != 0 || counts.Pass == 0 {
				t.Errorf("conformance %s failed (exit: %v); failing and skipped tests:\n%s", tc.version, err, conformanceProblems(stdout))
			}
			b, err := os.ReadFile(filepath.Join(results, "results.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var res conformanceResults
			if err := yaml.Unmarshal(b, &res); err != nil {
				t.Fatalf("results.yaml: %v", err)
			}
			checkStatuses(t, "API", res.APIs, tc.disabledAPIs)
			checkStatuses(t, "data set", res.Data, tc.disabledData)
		})
	}
	t.Logf("proxy spread: %s", lb.spread())
}

// replicasPushPull pushes an image with crane through A and pulls it
// through B and C.
func replicasPushPull(t *testing.T, rs *replicaSet, _ *roundRobin) {
	crane := rs.crane(t)
	pushed := crane.push(t, rs.A(), "repl/app:1")
	for _, r := range rs.replicas[1:] {
		if got := crane.pull(t, r, "repl/app:1"); got != pushed {
			t.Errorf("crane pulled %s through %s, pushed %s through A", got, r.name, pushed)
		}
		if got := r.manifestDigestAs(t, rs, "repl/app", "1"); got != pushed.String() {
			t.Errorf("replica %s serves %s, crane pushed %s", r.name, got, pushed)
		}
	}
}

// replicaCrane is crane logged in to every replica as the admin.
type replicaCrane struct{ *client }

func (rs *replicaSet) crane(t testing.TB) replicaCrane {
	t.Helper()
	c := replicaCrane{newClient(t, "crane")}
	for _, r := range rs.replicas {
		login := c.cmd("auth", "login", r.Host, "-u", "admin", "--password-stdin")
		login.stdin = strings.NewReader(rs.password)
		login.run(t)
	}
	return c
}

// push pushes a new one-layer image to r and returns its digest.
func (c replicaCrane) push(t testing.TB, r *replica, repoTag string) digest.Digest {
	t.Helper()
	dir := t.TempDir()
	desc := writeOCILayout(t, dir, "v1", v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string]string{"hello.txt": "hello from " + r.name + " " + token(t) + "\n"})
	out := strings.TrimSpace(c.run(t, "push", "--insecure", dir, r.ref(repoTag)))
	if _, d, _ := strings.Cut(out, "@"); d != desc.Digest.String() {
		t.Fatalf("crane push to %s printed %q, want the digest %s", r.name, out, desc.Digest)
	}
	return desc.Digest
}

// pull pulls an image from r, blobs included, into an OCI layout and
// returns its digest.
func (c replicaCrane) pull(t testing.TB, r *replica, repoTag string) digest.Digest {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	c.run(t, "pull", "--insecure", "--format", "oci", r.ref(repoTag), dir)
	return layoutDigest(t, dir, "")
}

// replicasChunkedUpload sends one upload's requests to different
// replicas: POST on A, PATCH on B (3 MiB, staged as a segment), PATCH on
// C (6 MiB: with the segment, S3's first part), PUT on A with a last
// chunk and the digest.
func replicasChunkedUpload(t *testing.T, rs *replicaSet, _ *roundRobin) {
	const repo = "repl/chunked"
	blob := randomBytes(t, 9<<20+123)
	d := digest.FromBytes(blob)
	A, B, C := rs.A(), rs.B(), rs.C()
	loc := rs.startUpload(t, A, repo)
	first, second := blob[:3<<20], blob[3<<20:9<<20]
	loc = rs.patchChunk(t, B, loc, 0, first)
	loc = rs.patchChunk(t, C, loc, int64(len(first)), second)
	if a := rs.uploadStatus(t, A, loc); a.header.Get("Range") != rangeOf(9<<20) {
		t.Errorf("GET upload status on A after the PATCHes on B and C: Range %q, want %q", a.header.Get("Range"), rangeOf(9<<20))
	}
	rs.finishUpload(t, A, loc, d, 9<<20, blob[9<<20:])
	for _, r := range rs.replicas {
		r.wantBlobBytes(t, rs, repo, d, blob)
	}
}

// replicasKilledMidUpload kills A while a PATCH streams to it and
// finishes the upload through B.
func replicasKilledMidUpload(t *testing.T, rs *replicaSet, lb *roundRobin) {
	const repo = "repl/killed"
	blob := randomBytes(t, 12<<20)
	d := digest.FromBytes(blob)
	A, B := rs.A(), rs.B()
	loc := rs.startUpload(t, A, repo)
	// 6 MiB on A: a segment, saved with the upload state.
	const done = 6 << 20
	loc = rs.patchChunk(t, A, loc, 0, blob[:done])

	// A PATCH of the next 4 MiB that streams 3 MiB and stalls: by then
	// the segment and the new bytes fill a part, which A sends to S3.
	// A is killed mid-request, its part uploaded but not recorded.
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, A.URL+loc, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 4 << 20
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", done, done+4<<20-1))
	req.SetBasicAuth("admin", rs.password)
	answered := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the stalled PATCH was answered: %s", resp.Status)
		}
		answered <- err
	}()
	if _, err := pw.Write(blob[done : done+3<<20]); err != nil {
		t.Fatalf("streaming the PATCH: %v", err)
	}
	uploadID, parts := rs.waitParts(t, loc, 1)
	A.kill(t)
	_ = pw.CloseWithError(io.ErrClosedPipe)
	if err := <-answered; err == nil || strings.Contains(err.Error(), "answered") {
		t.Fatalf("the PATCH to the killed replica: %v, want a connection error", err)
	}
	t.Logf("A killed mid-PATCH with S3 part %v of upload %s stored but not recorded", parts, uploadID)

	// B knows the upload up to what A recorded, and takes the rest.
	st := rs.uploadStatus(t, B, loc)
	if st.status != http.StatusNoContent || st.header.Get("Range") != rangeOf(done) {
		t.Fatalf("GET upload status on B: %d Range %q, want 204 Range %q", st.status, st.header.Get("Range"), rangeOf(done))
	}
	loc = rs.patchChunk(t, B, st.header.Get("Location"), done, blob[done:10<<20])
	rs.finishUpload(t, B, loc, d, 10<<20, blob[10<<20:])
	rs.C().wantBlobBytes(t, rs, repo, d, blob)

	// A comes back on its data directory and serves the blob too.
	A.restart(t)
	lb.retarget(t, 0, A)
	A.wantBlobBytes(t, rs, repo, d, blob)
}

// startUpload opens an upload session on r and returns its Location.
func (rs *replicaSet) startUpload(t testing.TB, r *replica, repo string) string {
	t.Helper()
	a := r.send(t, rs, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	loc := a.header.Get("Location")
	if a.status != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") {
		t.Fatalf("POST upload on %s: %s, Location %q", r.name, a, loc)
	}
	return loc
}

// patchChunk sends chunk at offset to r and returns the new Location.
func (rs *replicaSet) patchChunk(t testing.TB, r *replica, loc string, offset int64, chunk []byte) string {
	t.Helper()
	h := http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("%d-%d", offset, offset+int64(len(chunk))-1)},
	}
	a := r.send(t, rs, http.MethodPatch, loc, h, chunk)
	want := rangeOf(offset + int64(len(chunk)))
	if a.status != http.StatusAccepted || a.header.Get("Range") != want {
		t.Fatalf("PATCH %d bytes at %d on %s: %s, Range %q, want 202 Range %q", len(chunk), offset, r.name, a, a.header.Get("Range"), want)
	}
	return a.header.Get("Location")
}

// uploadStatus is GET on an upload session.
func (rs *replicaSet) uploadStatus(t testing.TB, r *replica, loc string) replicaAnswer {
	t.Helper()
	return r.send(t, rs, http.MethodGet, loc, nil, nil)
}

// finishUpload PUTs the last chunk (which may be empty) with the digest.
func (rs *replicaSet) finishUpload(t testing.TB, r *replica, loc string, d digest.Digest, offset int64, last []byte) {
	t.Helper()
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	if len(last) > 0 {
		h.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+int64(len(last))-1))
	}
	a := r.send(t, rs, http.MethodPut, loc+sep+"digest="+d.String(), h, last)
	if a.status != http.StatusCreated || a.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT upload with digest on %s: %s, Docker-Content-Digest %q", r.name, a, a.header.Get("Docker-Content-Digest"))
	}
}

// wantBlobBytes GETs blob d from r and compares the bytes.
func (r *replica) wantBlobBytes(t testing.TB, rs *replicaSet, repo string, d digest.Digest, want []byte) {
	t.Helper()
	a := r.send(t, rs, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
	switch {
	case a.status != http.StatusOK:
		t.Errorf("GET blob %s on %s: %d %.200s", d, r.name, a.status, a.body)
	case !bytes.Equal(a.body, want):
		t.Errorf("GET blob %s on %s: %d bytes of digest %s, want %d bytes", d, r.name, len(a.body), digest.FromBytes(a.body), len(want))
	}
}

// manifestDigestAs is the digest of the manifest r serves, as the admin.
func (r *replica) manifestDigestAs(t testing.TB, rs *replicaSet, repo, reference string) string {
	t.Helper()
	a := r.send(t, rs, http.MethodGet, "/v2/"+repo+"/manifests/"+reference, http.Header{"Accept": {manifestAccept}}, nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET manifest %s:%s on %s: %s", repo, reference, r.name, a)
	}
	d := digest.FromBytes(a.body).String()
	if got := a.header.Get("Docker-Content-Digest"); got != d {
		t.Fatalf("GET manifest on %s: Docker-Content-Digest %q, body digest %s", r.name, got, d)
	}
	return d
}

// send sends a request to r as the admin (Basic) and reads the answer.
func (r *replica) send(t testing.TB, rs *replicaSet, method, path string, header http.Header, body []byte) replicaAnswer {
	t.Helper()
	return sendAs(t, r.URL, method, path, "admin", rs.password, header, body)
}

// sendAs sends a request to base+path with Basic credentials (none when
// user is empty) and reads the answer.
func sendAs(t testing.TB, base, method, path, user, password string, header http.Header, body []byte) replicaAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, base+path, err)
	}
	return replicaAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// replicaAnswer is an HTTP answer read whole.
type replicaAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a replicaAnswer) String() string {
	return fmt.Sprintf("%d %.300s", a.status, strings.TrimSpace(string(a.body)))
}

// rangeOf is the Range header of an upload holding n bytes.
func rangeOf(n int64) string { return "0-" + strconv.FormatInt(n-1, 10) }

// randomBytes is n random bytes.
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mustDecode decodes a JSON answer.
func mustDecode(t testing.TB, what string, a replicaAnswer, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, a.body)
	}
}
