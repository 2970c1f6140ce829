package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// securedMoat is an adminMoat (the dev profile off: anonymous callers
// get only what anonymousPullEnabled gives them; the bootstrap admin, an
// Owner at /, has a password the test chose) that the test drives with
// the moat CLI, as an operator would.
type securedMoat struct {
	*adminMoat
	// ctl runs the moat CLI as the admin.
	ctl adminCLI
	// dataURL is where servedDigest reads manifests; empty: URL. A test
	// that disables public network access points it at a private endpoint.
	dataURL string
}

// startSecuredMoat starts moat with --dev=false on ip (empty: 127.0.0.1)
// and returns once the admin exists: /readyz answers 200.
func startSecuredMoat(t testing.TB, ip string) *securedMoat {
	t.Helper()
	m := &securedMoat{adminMoat: startAdminMoat(t, ip)}
	m.waitReadyz(t)
	m.ctl = m.cli(t)
	return m
}

// moat runs a moat CLI verb that must succeed and returns its stdout.
func (m *securedMoat) moat(t testing.TB, args ...string) string {
	t.Helper()
	c := m.ctl.cmd(args...)
	// A race-built binary sleeps a second before it exits, by default
	// (GORACE atexit_sleep_ms); the CLI is that binary.
	c.env = append(c.env, "GORACE=atexit_sleep_ms=0")
	return c.run(t)
}

// moatJSON runs a moat CLI verb with -o json that must succeed and
// decodes its output into v.
func (m *securedMoat) moatJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := m.moat(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("moat %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addSecret gives identity a new secret (moat identity secret add) and
// returns its value. Under -race a bcrypt hash takes seconds: create few.
func (m *securedMoat) addSecret(t testing.TB, identity string) string {
	t.Helper()
	var s struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	}
	m.moatJSON(t, &s, "identity", "secret", "add", identity)
	if s.Value == "" {
		t.Fatalf("moat identity secret add %s printed no value", identity)
	}
	return s.Value
}

// createUser creates a user identity with a secret and role at scope, and
// returns the secret.
func (m *securedMoat) createUser(t testing.TB, name, role, scope string) string {
	t.Helper()
	m.moat(t, "identity", "create", name)
	secret := m.addSecret(t, name)
	m.moat(t, "role", "assign", "--assignee", name, "--role", role, "--scope", scope)
	return secret
}

// auditEntry is an entry of the audit log (GET /admin/v1/audit).
type auditEntry struct {
	Time       time.Time `json:"time"`
	ClientIP   string    `json:"clientIP"`
	Endpoint   string    `json:"endpoint"`
	Principal  string    `json:"principal"`
	Repository string    `json:"repository"`
	Action     string    `json:"action"`
	Allowed    bool      `json:"allowed"`
	Stage      string    `json:"stage"`
	Reason     string    `json:"reason"`
	Rule       string    `json:"rule"`
	Audit      bool      `json:"audit"`
}

func (e auditEntry) String() string {
	return fmt.Sprintf("%s %s@%s on %s: %s %s allowed=%v %s/%s rule=%q",
		e.Time.Format(time.RFC3339Nano), e.Principal, e.ClientIP, e.Endpoint, e.Action, e.Repository,
		e.Allowed, e.Stage, e.Reason, e.Rule)
}

// audit reads the audit log through the admin API (newest first).
func (m *securedMoat) audit(t testing.TB, query string) []auditEntry {
	t.Helper()
	var page struct {
		Value []auditEntry `json:"value"`
	}
	m.adminGet(t, "/admin/v1/audit?"+query, &page)
	return page.Value
}

// adminGet GETs an admin API path as the admin and decodes the JSON answer.
func (m *securedMoat) adminGet(t testing.TB, path string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", m.password)
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
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// servedDigest is the digest of the manifest moat serves for repo and
// reference, fetched as the admin straight from moat (at dataURL) and
// checked against Docker-Content-Digest: the registry's side of a
// client's digest claims.
func (m *securedMoat) servedDigest(t testing.TB, repo, reference string) string {
	t.Helper()
	base := m.dataURL
	if base == "" {
		base = m.URL
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v2/"+repo+"/manifests/"+reference, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	req.SetBasicAuth("admin", m.password)
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

// waitAudit polls the audit log's denials until one matches: entries are
// written behind the request.
func (m *securedMoat) waitAudit(t testing.TB, what string, match func(auditEntry) bool) auditEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pause := 10 * time.Millisecond
	for {
		entries := m.audit(t, "allowed=false&since=1h&limit=1000")
		if i := slices.IndexFunc(entries, match); i >= 0 {
			t.Logf("audit: %s", entries[i])
			return entries[i]
		}
		select {
		case <-ctx.Done():
			var lines []string
			for _, e := range entries {
				lines = append(lines, e.String())
			}
			t.Fatalf("the audit log has no entry for %s:\n%s", what, strings.Join(lines, "\n"))
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// evaluation is the answer of `moat policy evaluate`.
type evaluation struct {
	Allowed bool   `json:"allowed"`
	Stage   string `json:"stage"`
	Reason  string `json:"reason"`
	Rule    string `json:"rule"`
}

// wantEvaluate asks `moat policy evaluate` about principal doing action
// on repository app from ip on the public endpoint, checks the verdict
// and reason, and returns the whole decision.
func (m *securedMoat) wantEvaluate(t testing.TB, ip, principal, action string, allowed bool, reason string) evaluation {
	t.Helper()
	var d evaluation
	m.moatJSON(t, &d, "policy", "evaluate", "--ip", ip, "--principal", principal, "--repository", "app", "--action", action)
	if d.Allowed != allowed || d.Reason != reason {
		t.Errorf("moat policy evaluate --ip %s --principal %s --action %s = %+v, want allowed %v, reason %s",
			ip, principal, action, d, allowed, reason)
	}
	return d
}

// rawAnswer is an HTTP answer read whole.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// ociError is the first error of an OCI error body, or the zero value.
func (a rawAnswer) ociError() (code, message string) {
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(a.body, &body) != nil || len(body.Errors) == 0 {
		return "", ""
	}
	return body.Errors[0].Code, body.Errors[0].Message
}

func (a rawAnswer) String() string {
	return fmt.Sprintf("%d %s", a.status, strings.TrimSpace(string(a.body)))
}

// get sends GET url, with Basic credentials when username is set and the
// given header lines, and reads the answer.
func get(t testing.TB, url, username, password string, header http.Header) rawAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if username != "" {
		req.SetBasicAuth(username, password)
	}
	// A client of its own: no connection reuse across relays or tests.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}
