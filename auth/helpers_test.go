package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/policy"
	"github.com/moat-registry/moat/storage"
	"golang.org/x/crypto/bcrypt"
)

const (
	testService = "registry.test"
	testIssuer  = "moat-test"
)

var ctx = context.Background()

// cheapHashes memoizes bcrypt hashes at the minimum cost: identities get
// their secrets through AddSecret's Hash option (the htpasswd import), so
// the tests do not pay for cost 11 on every identity.
var cheapHashes sync.Map

func cheapHash(t testing.TB, password string) string {
	if h, ok := cheapHashes.Load(password); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cheapHashes.Store(password, string(h))
	return string(h)
}

// password is the password the fixture gives an identity or token.
func password(name string) string { return name + "-secret" }

// decisionLog captures what the Auditor sees: every recorded decision
// (onDecision) and every stored entry (a fake storage.AuditLog).
type decisionLog struct {
	mu        sync.Mutex
	decisions []recorded
	entries   []auth.AuditEntry
}

type recorded struct {
	stage   policy.Stage
	reason  policy.Reason
	allowed bool
}

func (l *decisionLog) onDecision(s policy.Stage, r policy.Reason, allowed bool) {
	l.mu.Lock()
	l.decisions = append(l.decisions, recorded{s, r, allowed})
	l.mu.Unlock()
}

func (l *decisionLog) AppendAudit(_ context.Context, entries [][]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range entries {
		var e auth.AuditEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		l.entries = append(l.entries, e)
	}
	return nil
}

func (l *decisionLog) ScanAudit(_ context.Context, fn func([]byte) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.entries) - 1; i >= 0; i-- {
		b, _ := json.Marshal(l.entries[i])
		if !fn(b) {
			break
		}
	}
	return nil
}

// take returns the decisions and entries recorded since the last take.
func (l *decisionLog) take() ([]recorded, []auth.AuditEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, e := l.decisions, l.entries
	l.decisions, l.entries = nil, nil
	return d, e
}

// fixture is a directory over a real bbolt file, a key ring and a guard.
type fixture struct {
	t       testing.TB
	db      *storage.DB
	dir     *auth.Directory
	keyDir  string
	keys    *auth.KeyRing
	guard   *auth.Guard
	auditor *auth.Auditor
	log     *decisionLog
	service atomic.Pointer[string]
	nextID  int
}

type fixtureOptions struct {
	guard auth.GuardOptions
	// auditToDB stores the audit log in the bbolt file instead of memory.
	auditToDB  bool
	auditLimit uint64
}

func newFixture(t testing.TB, opts fixtureOptions) *fixture {
	t.Helper()
	tmp := t.TempDir()
	db, err := storage.OpenDB(filepath.Join(tmp, "meta.db"), storage.DBOptions{AuditLimit: opts.auditLimit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, db: db, keyDir: filepath.Join(tmp, "keys"), log: &decisionLog{}}
	svc := testService
	f.service.Store(&svc)
	if f.dir, err = auth.OpenDirectory(ctx, db); err != nil {
		t.Fatal(err)
	}
	if f.keys, err = auth.OpenKeyRing(f.keyDir, auth.RefreshTokenTTL+auth.AccessTokenTTL); err != nil {
		t.Fatal(err)
	}
	var log storage.AuditLog = f.log
	if opts.auditToDB {
		log = db
	}
	f.auditor = auth.NewAuditor(log, slog.New(slog.DiscardHandler), f.log.onDecision)
	t.Cleanup(f.auditor.Close)
	f.guard = f.newGuard(f.keys, opts.guard)
	return f
}

// newGuard builds another guard over the fixture's directory.
func (f *fixture) newGuard(keys *auth.KeyRing, o auth.GuardOptions) *auth.Guard {
	o.Service = func() string { return *f.service.Load() }
	o.Auditor = f.auditor
	if o.Issuer == "" {
		o.Issuer = testIssuer
	}
	return auth.NewGuard(f.dir, keys, o)
}

func (f *fixture) setService(s string) { f.service.Store(&s) }

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// identity creates an enabled identity of kind with password(name).
func (f *fixture) identity(name, kind string) auth.Identity {
	f.t.Helper()
	id, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: name, Kind: kind, Enabled: true})
	f.must(err)
	f.secret(name)
	return id
}

// secret gives an existing identity password(name) as a secret.
func (f *fixture) secret(name string) {
	f.t.Helper()
	_, err := f.dir.AddSecret(ctx, name, auth.SecretOptions{Hash: cheapHash(f.t, password(name)), CallerLevel: auth.LevelOwner})
	f.must(err)
}

// assign gives principal (a name) role at scope.
func (f *fixture) assign(principal, role, scope string) string {
	f.t.Helper()
	f.nextID++
	id := fmt.Sprintf("ra-%d", f.nextID)
	_, _, err := f.dir.PutRoleAssignment(ctx, auth.RoleAssignment{ID: id, Principal: principal, Role: role, Scope: scope})
	f.must(err)
	return id
}

// user creates a user identity with role at scope.
func (f *fixture) user(name, role, scope string) {
	f.t.Helper()
	f.identity(name, auth.KindUser)
	if role != "" {
		f.assign(name, role, scope)
	}
}

// token creates a repository-scoped token over a new scope map with
// password(name) as password1.
func (f *fixture) token(name string, actions ...string) {
	f.t.Helper()
	_, _, err := f.dir.PutScopeMap(ctx, auth.ScopeMap{Name: name + "-map", Actions: actions})
	f.must(err)
	_, _, err = f.dir.PutToken(ctx, auth.Token{Name: name, ScopeMap: name + "-map"})
	f.must(err)
	f.must(f.dir.SetTokenPasswordHashForTest(ctx, name, "password1", cheapHash(f.t, password(name)), nil))
}

// trustedService creates a service instance with a system-assigned
// identity (with a secret and role at "/") and returns the identity's name.
func (f *fixture) trustedService(name, typ, role string) string {
	f.t.Helper()
	svc, _, err := f.dir.PutService(ctx, auth.Service{Name: name, Type: typ, Identity: auth.ServiceIdentity{Type: auth.IdentitySystem}})
	f.must(err)
	f.secret(svc.Identity.PrincipalName)
	if role != "" {
		f.assign(svc.Identity.PrincipalName, role, "/")
	}
	return svc.Identity.PrincipalName
}

func (f *fixture) props(fn func(p *auth.Properties)) {
	f.t.Helper()
	_, _, err := f.dir.UpdateProperties(ctx, "", func(p *auth.Properties) error {
		*p = auth.DefaultRegistryProperties()
		fn(p)
		return nil
	})
	f.must(err)
}

func (f *fixture) endpoint(name, state string) {
	f.t.Helper()
	_, _, err := f.dir.PutPrivateEndpoint(ctx, auth.PrivateEndpoint{Name: name, Listen: "127.0.0.1:0", State: state})
	f.must(err)
}

// call describes a request.
type call struct {
	peer     string // "ip" or "ip:port"; default 192.0.2.1
	host     string
	user     string // Basic when set
	pass     string
	bearer   string
	endpoint string // private endpoint name
	header   map[string]string
}

func basic(user string) call { return call{user: user, pass: password(user)} }

func (c call) from(peer string) call { c.peer = peer; return c }

func (c call) on(endpoint string) call { c.endpoint = endpoint; return c }

func (c call) request(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	switch {
	case c.peer == "":
		r.RemoteAddr = "192.0.2.1:40000"
	case strings.Count(c.peer, ":") > 1 && !strings.HasPrefix(c.peer, "["):
		r.RemoteAddr = "[" + c.peer + "]:40000"
	case !strings.Contains(c.peer, ":"):
		r.RemoteAddr = c.peer + ":40000"
	default:
		r.RemoteAddr = c.peer
	}
	if c.host != "" {
		r.Host = c.host
	} else {
		r.Host = "registry.test:5000"
	}
	if c.user != "" {
		r.SetBasicAuth(c.user, c.pass)
	}
	if c.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	if c.endpoint != "" {
		r = r.WithContext(auth.WithEndpoint(r.Context(), c.endpoint))
	}
	return r
}

// authorize runs the guard for c with the scopes need.
func (f *fixture) authorize(c call, need ...auth.Scope) (auth.Grant, *errcode.Error) {
	return authorizeWith(f.guard, c, need...)
}

func authorizeWith(g *auth.Guard, c call, need ...auth.Scope) (auth.Grant, *errcode.Error) {
	grant, err := g.Authorize(c.request(http.MethodGet, "/v2/", nil), need)
	if err == nil {
		if grant == nil {
			panic("Authorize: nil grant without an error")
		}
		return grant, nil
	}
	var e *errcode.Error
	if !errors.As(err, &e) {
		panic(fmt.Sprintf("Authorize returned %T %v, not an *errcode.Error", err, err))
	}
	if grant != nil {
		panic("Authorize: a grant with an error")
	}
	return nil, e
}

// Scopes of the registry's requests (registry/registry.go neededScopes).
func pull(repo string) auth.Scope    { return auth.Repository(repo, auth.Pull) }
func push(repo string) auth.Scope    { return auth.Repository(repo, auth.Pull|auth.Push) }
func del(repo string) auth.Scope     { return auth.Repository(repo, auth.Delete) }
func tagList(repo string) auth.Scope { return auth.Repository(repo, auth.List) }
func mountFrom(repo string) auth.Scope {
	s := auth.Repository(repo, auth.Pull)
	s.Optional = true
	return s
}

// detail returns an error's stage and reason.
func detail(e *errcode.Error) (string, string) {
	m, _ := e.Detail.(map[string]string)
	return m["stage"], m["reason"]
}

// wantDenied checks an error's status, code and, when set, its message
// and detail.
func wantError(t testing.TB, e *errcode.Error, status int, code, message, stage, reason string) {
	t.Helper()
	if e == nil {
		t.Fatalf("allowed, want %d %s", status, code)
	}
	if e.Code.Status != status || e.Code.Value != code {
		t.Fatalf("got %d %s (%q), want %d %s", e.Code.Status, e.Code.Value, e.Message, status, code)
	}
	if message != "" && e.Message != message {
		t.Errorf("message %q, want %q", e.Message, message)
	}
	if stage != "" || reason != "" {
		if s, r := detail(e); s != stage || r != reason {
			t.Errorf("detail stage=%q reason=%q, want %q %q", s, r, stage, reason)
		}
	}
}

func networkMessage(ip string) string {
	return "client with IP '" + ip + "' is not allowed access to this registry"
}

// challengeParams parses a Bearer challenge.
func challengeParams(t testing.TB, e *errcode.Error) map[string]string {
	t.Helper()
	h := e.Header.Get("WWW-Authenticate")
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("WWW-Authenticate %q is not a Bearer challenge", h)
	}
	out := map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("malformed challenge %q", h)
		}
		end := strings.IndexByte(v, '"')
		if end < 0 {
			t.Fatalf("malformed challenge %q", h)
		}
		out[k] = v[:end]
		rest = strings.TrimPrefix(v[end+1:], ",")
	}
	return out
}

// tokenResponse is the JSON of the token endpoint.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token"`
}

// tokenGET calls GET /oauth2/token with the query params.
func (f *fixture) tokenGET(c call, params url.Values) *httptest.ResponseRecorder {
	return tokenGETWith(f.guard, c, params)
}

func tokenGETWith(g *auth.Guard, c call, params url.Values) *httptest.ResponseRecorder {
	r := c.request(http.MethodGet, "/oauth2/token?"+params.Encode(), nil)
	w := httptest.NewRecorder()
	g.TokenHandler().ServeHTTP(w, r)
	return w
}

// tokenPOST calls POST /oauth2/token with a form.
func (f *fixture) tokenPOST(c call, form url.Values) *httptest.ResponseRecorder {
	r := c.request(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	f.guard.TokenHandler().ServeHTTP(w, r)
	return w
}

func decodeToken(t testing.TB, w *httptest.ResponseRecorder) tokenResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Token == "" || tr.Token != tr.AccessToken {
		t.Fatalf("token %q, access_token %q", tr.Token, tr.AccessToken)
	}
	return tr
}

// accessToken fetches a token for c with the scopes.
func (f *fixture) accessToken(c call, scopes ...string) string {
	f.t.Helper()
	return decodeToken(f.t, f.tokenGET(c, url.Values{"service": {testService}, "scope": scopes})).Token
}

// errorBody decodes the OCI error body of a recorder.
func errorBody(t testing.TB, w *httptest.ResponseRecorder) (code, message string, det map[string]string) {
	t.Helper()
	var body struct {
		Errors []struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Detail  map[string]string `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("error body %s: %v", w.Body, err)
	}
	return body.Errors[0].Code, body.Errors[0].Message, body.Errors[0].Detail
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// accessOf renders a token's access claim as "type:name:actions" strings.
func accessOf(t testing.TB, tok string) []string {
	t.Helper()
	var out []string
	acc, _ := claimsOf(t, tok)["access"].([]any)
	for _, a := range acc {
		m := a.(map[string]any)
		var acts []string
		for _, x := range m["actions"].([]any) {
			acts = append(acts, x.(string))
		}
		out = append(out, fmt.Sprintf("%s:%s:%s", m["type"], m["name"], strings.Join(acts, ",")))
	}
	return out
}

// clock is a settable clock for the guard.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// policy10 trusts 10.0.0.0/8 as proxies.
func policy10() policy.Proxies { return policy.Proxies{netip.MustParsePrefix("10.0.0.0/8")} }

// asErr converts a non-nil error of the guard.
func asErr(t testing.TB, err error) *errcode.Error {
	t.Helper()
	var e *errcode.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want an *errcode.Error", err, err)
	}
	return e
}
