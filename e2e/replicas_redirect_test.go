package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// replicasRedirect starts a fourth replica, D, on the same database and
// bucket with storage.s3.redirect on, and GETs through it a blob that A
// stored: D answers 307 to a presigned URL of the bucket (expiring
// within the configured 30 s), which serves the bytes without
// credentials; a Range request, and every request while a network rule
// restricts access, get the bytes from D itself.
func replicasRedirect(t *testing.T, rs *replicaSet, _ *roundRobin) {
	const repo = "repl/redirect"
	blob := randomBytes(t, 64<<10)
	d := digest.FromBytes(blob)
	A := rs.A()
	loc := rs.startUpload(t, A, repo)
	rs.finishUpload(t, A, loc, d, 0, blob)

	cfg := strings.Replace(rs.config, "    usePathStyle: true\n", "    usePathStyle: true\n    redirect: true\n    redirectTTL: 30s\n", 1)
	m, err := launchReplica(t, moatOptions{Config: cfg, DataDir: t.TempDir(), Env: []string{"MOAT_ADMIN_PASSWORD=" + rs.password}})
	if err != nil {
		t.Fatal(err)
	}
	D := &replica{moatServer: m, name: "D", owner: t}
	D.waitReadyz(t)

	path := "/v2/" + repo + "/blobs/" + d.String()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: time.Minute}
	get := func(header http.Header) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, D.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.SetBasicAuth("admin", rs.password)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := get(nil)
	target := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(target, rs.s3.Endpoint+"/") {
		t.Fatalf("GET blob on D with redirects on: %s, Location %q, want 307 to %s", resp.Status, target, rs.s3.Endpoint)
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	if exp, err := strconv.Atoi(u.Query().Get("X-Amz-Expires")); err != nil || exp < 1 || exp > 30 {
		t.Errorf("presigned URL expires in %q s, want at most 30", u.Query().Get("X-Amz-Expires"))
	}
	// The presigned URL needs no credentials of moat's.
	s3resp, err := http.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(s3resp.Body)
	s3resp.Body.Close()
	if err != nil || s3resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
		t.Fatalf("GET presigned URL: %s, %d bytes of digest %s (%v), want the blob", s3resp.Status, len(body), digest.FromBytes(body), err)
	}

	// A range is served by moat.
	if resp := get(http.Header{"Range": {"bytes=0-99"}}); resp.StatusCode != http.StatusPartialContent {
		t.Errorf("GET blob range on D: %s, want 206 from moat", resp.Status)
	}

	// While network rules restrict access, a presigned URL (which works
	// from any network) is never handed out.
	restrict := `{"properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.1"}]}}}`
	open := `{"properties":{"networkRuleSet":{"defaultAction":"Allow","ipRules":[]}}}`
	patch := func(body string) {
		t.Helper()
		a := A.send(t, rs, http.MethodPatch, "/admin/v1/registry", http.Header{"Content-Type": {"application/merge-patch+json"}}, []byte(body))
		if a.status != http.StatusOK {
			t.Fatalf("PATCH /admin/v1/registry %s on A: %s", body, a)
		}
	}
	patch(restrict)
	t.Cleanup(func() {
		if t.Failed() { // leave the registry open for the steps after
			_, _ = trySend(A.URL, http.MethodPatch, "/admin/v1/registry", "admin", rs.password, []byte(open))
		}
	})
	awaitStatus := func(what string, want int) *http.Response {
		t.Helper()
		deadline := time.Now().Add(propagationDeadline)
		for {
			resp := get(nil)
			if resp.StatusCode == want {
				return resp
			}
			// Not the answer awaited: free its connection now rather
			// than at the test's end (closing twice is harmless).
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if time.Now().After(deadline) {
				t.Fatalf("GET blob on D %s: %s, want %d within %s", what, resp.Status, want, propagationDeadline)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	resp = awaitStatus("under a network rule", http.StatusOK)
	if body, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(body, blob) {
		t.Fatalf("GET blob on D under a network rule: %d bytes (%v), want the blob", len(body), err)
	}
	patch(open)
	awaitStatus("once the rule is lifted", http.StatusTemporaryRedirect)
}
