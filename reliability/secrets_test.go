package reliability

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestSecretsAtRest: the data directory, meta.db, the signing keys and
// the generated bootstrap password are readable by moat's user only
// (directories 0700, files 0600), and the password file holds a password
// that works.
func TestSecretsAtRest(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // created by moat
	p := startMoat(t, data, procOptions{})
	// The file is written before the hash is stored; the password works
	// once /readyz says the admin exists.
	p.waitReady(t)
	pwFile := filepath.Join(data, "admin-password")
	var password string
	deadline := time.Now().Add(30 * time.Second)
	for password == "" {
		if b, err := os.ReadFile(pwFile); err == nil {
			password = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s: %v", pwFile, err)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	rec := &recorder{t: t}
	c := &ociClient{base: p.Base, http: &http.Client{Transport: rec}}
	a, err := c.send(context.Background(), http.MethodGet, "/admin/v1/identities", nil, 0, map[string]string{"Authorization": basicAuth("admin", password)})
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("the generated admin password does not log in: %v %v", a, err)
	}
	if err := p.terminate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkModes(t, data)
	for _, want := range []string{"meta.db", "admin-password", "keys"} {
		if _, err := os.Stat(filepath.Join(data, want)); err != nil {
			t.Errorf("%s: %v", want, err)
		}
	}
	secrets := []secret{{"the generated admin password", password, "admin"}}
	checkNoSecrets(t, "moat's log", p.log(), secrets)
	rec.check(secrets)
	checkMetaDB(t, data, secrets)
}

// checkModes fails for any directory under root that is not 0700 and any
// file that is not 0600.
func checkModes(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkMetaDB fails if meta.db holds any secret in clear.
func checkMetaDB(t *testing.T, data string, secrets []secret) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, "meta.db", string(b), secrets)
}

// secret is a value that must never be shown back; user is the user
// name it was sent with in Basic credentials, if any.
type secret struct{ name, value, user string }

// forms are the ways a secret could leak: as is, base64-encoded, and as
// the Basic credentials that carried it.
func (s secret) forms() []string {
	f := []string{s.value, base64.StdEncoding.EncodeToString([]byte(s.value))}
	if s.user != "" {
		f = append(f, base64.StdEncoding.EncodeToString([]byte(s.user+":"+s.value)))
	}
	return f
}

func checkNoSecrets(t *testing.T, where, text string, secrets []secret) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range s.forms() {
			if strings.Contains(text, f) {
				line := text[strings.LastIndexByte(text[:strings.Index(text, f)], '\n')+1:]
				line, _, _ = strings.Cut(line, "\n")
				t.Errorf("%s shows %s (%q): %s", where, s.name, f, truncate(line, 400))
			}
		}
	}
}

// recorder keeps every answer the test sees, headers and body.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	answers []recorded
}

type recorded struct {
	what string // method and path
	text string // status line, headers and body
	// allowed are values this answer hands out by design (a new secret,
	// password or token), which it may show.
	allowed []string
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var text strings.Builder
	text.WriteString(resp.Status + "\n")
	_ = resp.Header.Write(&text)
	text.Write(b)
	rec.mu.Lock()
	rec.answers = append(rec.answers, recorded{what: r.Method + " " + r.URL.Path, text: text.String()})
	rec.mu.Unlock()
	return resp, nil
}

// allowLast marks values the last answer hands out by design.
func (rec *recorder) allowLast(values ...string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := &rec.answers[len(rec.answers)-1]
	last.allowed = append(last.allowed, values...)
}

// check fails for any answer that shows a secret it did not hand out.
func (rec *recorder) check(secrets []secret) {
	rec.t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, a := range rec.answers {
		var others []secret
		for _, s := range secrets {
			allowed := false
			for _, v := range a.allowed {
				allowed = allowed || v == s.value
			}
			if !allowed {
				others = append(others, s)
			}
		}
		checkNoSecrets(rec.t, "the answer to "+a.what, a.text, others)
	}
}

// refreshUser is the user name of Basic credentials that carry a refresh
// token (ACR's convention).
const refreshUser = "00000000-0000-0000-0000-000000000000"

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestSecretsNotLogged runs moat with a known admin password and debug
// logs in JSON, creates an identity secret, a repository token password,
// access and refresh tokens, pushes and pulls with each, fails logins
// with known wrong passwords and forged tokens, then searches every log
// line, every answer (status, headers, body) and meta.db for every one of
// those values: none may appear, except in the one answer that creates
// it.
func TestSecretsNotLogged(t *testing.T) {
	const adminPassword = "Adm1n-known-password-4-reliability"
	data := filepath.Join(t.TempDir(), "data")
	p := startMoat(t, data, procOptions{
		Env:  []string{"MOAT_ADMIN_PASSWORD=" + adminPassword, "MOAT_LOG_LEVEL=debug"},
		Args: []string{"--dev=false"},
	})
	p.waitReady(t)
	rec := &recorder{t: t}
	hc := &http.Client{Transport: rec, Timeout: time.Minute}
	ctx := context.Background()
	secrets := []secret{{"the admin password", adminPassword, "admin"}}
	add := func(name, value, user string) {
		if value == "" {
			t.Fatalf("no %s", name)
		}
		secrets = append(secrets, secret{name, value, user})
	}
	as := func(auth string) *ociClient {
		return &ociClient{base: p.Base, http: hc, header: http.Header{"Authorization": {auth}}}
	}
	admin := as(basicAuth("admin", adminPassword))
	must := func(want int) func(*answer, error) *answer {
		return func(a *answer, err error) *answer {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			if a.status != want {
				t.Fatalf("answered %s, want %d", a, want)
			}
			return a
		}
	}
	value := func(a *answer, key string) string {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(a.body, &m); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		s, _ := m[key].(string)
		return s
	}
	adminCall := func(method, path, body string, want int) *answer {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		return must(want)(admin.send(ctx, method, "/admin/v1/"+path, r, int64(len(body)), map[string]string{"Content-Type": "application/json"}))
	}

	// Credentials: an identity secret and a token password, each shown
	// once by the answer that creates it.
	adminCall(http.MethodPut, "identities/ci-bot", "{}", http.StatusCreated)
	a := adminCall(http.MethodPost, "identities/ci-bot/secrets", "{}", http.StatusCreated)
	botSecret := value(a, "value")
	add("the identity secret", botSecret, "ci-bot")
	rec.allowLast(botSecret)
	adminCall(http.MethodPut, "role-assignments/ci-bot-push", `{"principal":"ci-bot","role":"AcrPush","scope":"/"}`, http.StatusCreated)
	adminCall(http.MethodPut, "scope-maps/app-rw", `{"actions":["repositories/app/content/read","repositories/app/content/write","repositories/app/metadata/read"]}`, http.StatusCreated)
	adminCall(http.MethodPut, "tokens/app-token", `{"scopeMap":"app-rw","status":"enabled"}`, http.StatusCreated)
	a = adminCall(http.MethodPost, "tokens/app-token/passwords", `{"name":"password1"}`, http.StatusCreated)
	tokenPassword := value(a, "value")
	add("the token password", tokenPassword, "app-token")
	rec.allowLast(tokenPassword)

	// Tokens: Docker's GET flow, the password grant (with a refresh
	// token) and the refresh grant.
	service := url.QueryEscape(p.Addr)
	a = must(http.StatusOK)(as(basicAuth("ci-bot", botSecret)).send(ctx, http.MethodGet, "/oauth2/token?service="+service+"&scope=repository:app:pull,push", nil, 0, nil))
	getToken := value(a, "token")
	add("an access token from GET /oauth2/token", getToken, "")
	rec.allowLast(getToken)
	form := func(kv ...string) (io.Reader, int64, map[string]string) {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		s := v.Encode()
		return strings.NewReader(s), int64(len(s)), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	}
	anon := &ociClient{base: p.Base, http: hc}
	body, n, h := form("grant_type", "password", "username", "ci-bot", "password", botSecret, "service", p.Addr, "scope", "repository:app:pull,push")
	a = must(http.StatusOK)(anon.send(ctx, http.MethodPost, "/oauth2/token", body, n, h))
	passwordToken, refreshToken := value(a, "access_token"), value(a, "refresh_token")
	add("an access token from the password grant", passwordToken, "")
	add("a refresh token", refreshToken, refreshUser)
	rec.allowLast(passwordToken, refreshToken)
	body, n, h = form("grant_type", "refresh_token", "refresh_token", refreshToken, "service", p.Addr, "scope", "repository:app:pull")
	a = must(http.StatusOK)(anon.send(ctx, http.MethodPost, "/oauth2/token", body, n, h))
	refreshedToken := value(a, "access_token")
	add("an access token from the refresh grant", refreshedToken, "")
	rec.allowLast(refreshedToken)

	// Push and pull with each credential.
	for i, auth := range []string{
		basicAuth("ci-bot", botSecret),
		basicAuth("app-token", tokenPassword),
		basicAuth(refreshUser, refreshToken),
		"Bearer " + getToken,
		"Bearer " + passwordToken,
	} {
		c := as(auth)
		d := c.pushImage(t, "app", "v"+string(rune('0'+i)), []byte(`{"n":`+string(rune('0'+i))+`}`), bytes.Repeat([]byte{byte(i)}, 1000))
		must(http.StatusOK)(c.send(ctx, http.MethodGet, "/v2/app/manifests/"+d.String(), nil, 0, map[string]string{"Accept": ocispec.MediaTypeImageManifest}))
	}
	pull := as("Bearer " + refreshedToken)
	must(http.StatusOK)(pull.send(ctx, http.MethodGet, "/v2/app/manifests/v0", nil, 0, nil))
	must(http.StatusOK)(pull.getBlob(ctx, "app", digest.FromBytes(bytes.Repeat([]byte{0}, 1000))))

	// Failures with known wrong values, each of which must not be shown
	// either: a mistyped password is often a real one.
	wrong := []secret{
		{"a wrong identity password", "Wr0ng-identity-password-1", "ci-bot"},
		{"a wrong admin password", "Wr0ng-admin-password-2", "admin"},
		{"a wrong token password", "Wr0ng-token-password-3", "app-token"},
		{"a forged bearer token", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmb3JnZWQifQ.Zm9yZ2VkLXNpZ25hdHVyZQ", ""},
		{"a forged refresh token", "eyJhbGciOiJFUzI1NiJ9.eyJ1c2UiOiJyZWZyZXNoIn0.cmVmcmVzaC1mb3JnZWQ", refreshUser},
	}
	secrets = append(secrets, wrong...)
	failures := []struct {
		c            *ociClient
		method, path string
		form         []string
	}{
		{as(basicAuth("ci-bot", wrong[0].value)), http.MethodGet, "/v2/app/manifests/v0", nil},
		{as(basicAuth("ci-bot", wrong[0].value)), http.MethodGet, "/oauth2/token?service=" + service + "&scope=repository:app:pull", nil},
		{as(basicAuth("admin", wrong[1].value)), http.MethodGet, "/admin/v1/identities", nil},
		{as(basicAuth("app-token", wrong[2].value)), http.MethodPut, "/v2/app/manifests/x", nil},
		{as("Bearer " + wrong[3].value), http.MethodGet, "/v2/app/tags/list", nil},
		{as("Bearer " + wrong[3].value), http.MethodGet, "/admin/v1/identities", nil},
		{as(basicAuth(refreshUser, wrong[4].value)), http.MethodGet, "/v2/app/manifests/v0", nil},
		{anon, http.MethodPost, "/oauth2/token", []string{"grant_type", "password", "username", "admin", "password", wrong[1].value}},
		{anon, http.MethodPost, "/oauth2/token", []string{"grant_type", "refresh_token", "refresh_token", wrong[4].value}},
		{anon, http.MethodPost, "/oauth2/exchange", []string{"grant_type", "access_token", "access_token", wrong[3].value}},
	}
	for _, f := range failures {
		var body io.Reader
		var n int64
		var h map[string]string
		if f.form != nil {
			body, n, h = form(f.form...)
		}
		a, err := f.c.send(ctx, f.method, f.path, body, n, h)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusUnauthorized && a.status != http.StatusForbidden && a.status != http.StatusBadRequest {
			t.Errorf("%s %s with a wrong credential answered %s", f.method, f.path, a)
		}
	}
	// The audit log and the metrics are answers too.
	adminCall(http.MethodGet, "audit?limit=1000", "", http.StatusOK)
	must(http.StatusOK)(anon.send(ctx, http.MethodGet, "/metrics", nil, 0, nil))

	if err := p.terminate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	log := p.log()
	if !strings.Contains(log, `"level":"DEBUG"`) && !strings.Contains(log, `"msg":"request"`) {
		t.Fatalf("the log holds no request lines; was it written at debug level?\n%s", tail(log, 20))
	}
	checkNoSecrets(t, "moat's log", log, secrets)
	rec.check(secrets)
	checkMetaDB(t, data, secrets)
	checkModes(t, data)
	t.Logf("searched %d log bytes and %d answers for %d secrets", len(log), len(rec.answers), len(secrets))
}
