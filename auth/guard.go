package auth

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/policy"
)

// GuardOptions configure a Guard.
type GuardOptions struct {
	// Dev grants loopback callers (IsLocalDevRequest) anonymous pull, push,
	// delete and catalog.
	Dev bool
	// TrustedProxies are believed for X-Forwarded-For/-Proto/-Host.
	TrustedProxies policy.Proxies
	// PublicURL is the base of the token realm; empty: the request's own.
	PublicURL string
	// Service returns the service name (token audience).
	Service func() string
	// Auditor records denials; nil records nothing.
	Auditor *Auditor
	// Issuer is the iss of moat's registry tokens.
	Issuer string
	// IssuerURL is the OIDC issuer of the workload tokens moat issues for
	// its tasks (config publicURL, or the public listener's URL).
	IssuerURL func() string
	// AuthFailuresPerMinute throttles password guessing per client address
	// (0: no throttle).
	AuthFailuresPerMinute int
}

// Guard is the data plane's pipeline after routing (SPEC §2): listener,
// client address, network decision, authentication, authorization. It
// implements registry.Authorizer and serves the token endpoints.
type Guard struct {
	dir      *Directory
	tokens   *tokenIssuer
	oidc     oidcKeys
	failures failureCounter
	verify   verifyCache
	opts     GuardOptions
	now      func() time.Time
}

// NewGuard builds the pipeline over the directory and key ring.
func NewGuard(dir *Directory, keys *KeyRing, opts GuardOptions) *Guard {
	if opts.Issuer == "" {
		opts.Issuer = "moat"
	}
	g := &Guard{dir: dir, opts: opts, now: time.Now, failures: failureCounter{max: opts.AuthFailuresPerMinute}}
	g.oidc = oidcKeys{client: newFetchClient(), now: func() time.Time { return g.now() }}
	g.tokens = &tokenIssuer{keys: keys, issuer: opts.Issuer, now: func() time.Time { return g.now() }}
	return g
}

// Directory is the guard's directory.
func (g *Guard) Directory() *Directory { return g.dir }

type endpointKey struct{}

// WithEndpoint marks a connection's context with the private endpoint it
// arrived on (http.Server.ConnContext of the endpoint's listener).
func WithEndpoint(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, endpointKey{}, name)
}

// EndpointOf names the endpoint a request arrived on: "public" or a
// private endpoint's name.
func EndpointOf(ctx context.Context) string {
	if s, ok := ctx.Value(endpointKey{}).(string); ok {
		return s
	}
	return PublicEndpoint
}

// ClientAddress is the address a request is judged by (SPEC §2 step 3).
func (g *Guard) ClientAddress(r *http.Request) netip.Addr {
	peer, _ := PeerAddr(r)
	if len(g.opts.TrustedProxies) == 0 {
		return peer
	}
	return g.opts.TrustedProxies.ClientAddress(peer, r.Header["X-Forwarded-For"])
}

// credentials are what a request presented.
type credentials struct {
	kind       credKind
	user, pass string
	token      string
}

type credKind uint8

const (
	credNone credKind = iota
	credBasic
	credBearer
	credMalformed
)

func readCredentials(r *http.Request) credentials {
	h := r.Header.Get("Authorization")
	if h == "" {
		return credentials{}
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return credentials{kind: credMalformed}
		}
		u, p, ok := strings.Cut(string(b), ":")
		if !ok || u == "" {
			return credentials{kind: credMalformed}
		}
		return credentials{kind: credBasic, user: u, pass: p}
	case strings.EqualFold(scheme, "Bearer") && rest != "":
		return credentials{kind: credBearer, token: rest}
	}
	return credentials{kind: credMalformed}
}

// authn is the result of authentication.
type authn struct {
	p     Principal
	token *tokenInfo // a bearer access token, if one was used
	cred  string     // the credential that authenticated (credentialID)
	ok    bool       // false for invalid credentials
}

// authenticate resolves credentials to a principal. Anonymous requests
// are ok with the anonymous principal.
func (g *Guard) authenticate(snap *Snapshot, c credentials) authn {
	switch c.kind {
	case credNone:
		return authn{ok: true}
	case credBasic:
		if c.user == RefreshTokenUsername {
			ti, ok := g.verifyRefresh(snap, c.pass)
			if !ok {
				return authn{}
			}
			return authn{p: ti.principal, cred: ti.cred, ok: true}
		}
		p, cred, ok := snap.authenticateBasic(&g.verify, c.user, c.pass, g.now())
		return authn{p: p, cred: cred, ok: ok}
	case credBearer:
		ti, err := g.tokens.verify(c.token, g.opts.Service())
		if err != nil || ti.refresh || !snap.Valid(ti.principal) {
			return authn{}
		}
		return authn{p: ti.principal, token: ti, ok: true}
	}
	return authn{}
}

// verifyRefresh checks a refresh token: signature, principal still
// valid, and the credential it was minted from still live.
func (g *Guard) verifyRefresh(snap *Snapshot, raw string) (*tokenInfo, bool) {
	ti, err := g.tokens.verify(raw, g.opts.Service())
	if err != nil || !ti.refresh || ti.principal.Kind == Anonymous || !snap.Valid(ti.principal) ||
		!snap.credentialLive(ti.principal, ti.cred, g.now()) {
		return nil, false
	}
	return ti, true
}

// verdictKind is how the pipeline answers.
type verdictKind uint8

const (
	verdictAllow        verdictKind = iota
	verdictNetworkDeny              // 403 client with IP …
	verdictChallenge                // 401 with a challenge (anonymous)
	verdictInvalid                  // 401 bad credentials
	verdictInsufficient             // 401 insufficient_scope
	verdictNoRole                   // 403 DENIED
)

type verdict struct {
	kind     verdictKind
	decision policy.Decision
	// scopes for the challenge
	scopes []Scope
}

// requestFacts are the inputs of decide after the network and
// authentication steps.
type requestFacts struct {
	network   policy.Decision
	presented bool // credentials were sent
	authOK    bool
	principal Principal
	token     *tokenInfo // a bearer token, if one was used
	need      []Scope
	devLocal  bool
}

// readActions are what the scanner's read-only bypass covers.
const readActions = Pull | List

// decide combines the network verdict, authentication and authorization
// as SPEC §2 and §3 say. It is pure: the HTTP path and the what-if API
// (POST /admin/v1/policy/evaluate) both use it.
func decide(snap *Snapshot, f requestFacts) verdict {
	bypass := false
	if !f.network.Allowed {
		nd := f.network
		switch {
		case !nd.Bypassable:
			// A Pending private endpoint, or bypass None: nobody passes.
			return verdict{kind: verdictNetworkDeny, decision: nd}
		case !f.presented:
			// Anonymous callers never bypass, but get the challenge so
			// that a trusted service can authenticate.
			return verdict{kind: verdictChallenge, decision: nd, scopes: requiredScopes(f.need)}
		case !f.authOK:
			return verdict{kind: verdictNetworkDeny, decision: nd}
		}
		t, ok := snap.trustedService(f.principal)
		if !ok {
			return verdict{kind: verdictNetworkDeny, decision: nd}
		}
		if t.readOnly {
			// Listing the catalog is a read too.
			for _, s := range f.need {
				if s.Type == TypeRepository && !readActions.Has(s.Actions) {
					return verdict{kind: verdictNetworkDeny, decision: nd}
				}
			}
		}
		bypass = true
	} else if !f.authOK {
		return verdict{kind: verdictInvalid, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonInvalidCredentials}}
	}
	allowed := policy.Decision{Allowed: true, Rule: f.network.Rule}
	switch {
	case bypass:
		allowed.Stage, allowed.Reason = policy.StageNetwork, policy.ReasonTrustedServiceBypass
	case f.network.Audit:
		allowed.Stage, allowed.Reason, allowed.Audit = policy.StageNetwork, f.network.Reason, true
	}
	anonymous := f.principal.Kind == Anonymous
	if anonymous && f.devLocal {
		return verdict{kind: verdictAllow, decision: allowed}
	}
	if len(f.need) == 0 {
		if anonymous {
			return verdict{kind: verdictChallenge, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonNotAuthenticated}}
		}
		return verdict{kind: verdictAllow, decision: allowed}
	}
	insufficient := false
	for _, s := range f.need {
		held := snap.held(f.principal, s)
		eff := held
		if f.token != nil {
			eff &= f.token.actions(s.Type, s.Name)
		}
		if satisfies(eff, s.Actions) {
			continue
		}
		if s.Optional {
			if f.token != nil && satisfies(held, s.Actions) {
				insufficient = true
			}
			continue
		}
		if anonymous {
			return verdict{kind: verdictChallenge, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonNotAuthenticated}, scopes: requiredScopes(f.need)}
		}
		if f.token != nil && satisfies(held, s.Actions) {
			insufficient = true
			continue
		}
		return verdict{kind: verdictNoRole, decision: policy.Decision{Stage: policy.StageAuthz, Reason: policy.ReasonNoRole}}
	}
	if insufficient {
		var scopes []Scope
		for _, s := range f.need {
			if !s.Optional || satisfies(snap.held(f.principal, s), s.Actions) {
				scopes = append(scopes, s)
			}
		}
		return verdict{kind: verdictInsufficient, decision: policy.Decision{Stage: policy.StageAuthz, Reason: policy.ReasonInsufficientScope}, scopes: scopes}
	}
	return verdict{kind: verdictAllow, decision: allowed}
}

// requiredScopes drops optional scopes.
func requiredScopes(need []Scope) []Scope {
	for _, s := range need {
		if s.Optional {
			out := make([]Scope, 0, len(need))
			for _, s := range need {
				if !s.Optional {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return need
}

// held is what p may do on a scope's resource, from its roles.
func (s *Snapshot) held(p Principal, sc Scope) Action {
	if sc.Type == TypeRegistry {
		if s.CanCatalog(p) {
			return AllActions | List | Sign
		}
		return 0
	}
	return s.Actions(p, sc.Name)
}

// principalGrant is the Grant of an authorized principal: its live roles,
// limited by the scopes of the bearer token it used, if any.
type principalGrant struct {
	snap     *Snapshot
	p        Principal
	token    *tokenInfo
	redirect bool
}

func (pg principalGrant) Allows(repository string, a Action) bool {
	held := pg.snap.Actions(pg.p, repository)
	if pg.token != nil {
		held &= pg.token.actions(TypeRepository, repository)
	}
	return held.Has(a)
}

func (pg principalGrant) Lists(repository string) bool {
	return pg.snap.Actions(pg.p, repository).Has(Pull)
}

func (pg principalGrant) Actor() string { return pg.p.Name }

func (pg principalGrant) Redirectable() bool { return pg.redirect }

// Authorize implements registry.Authorizer: the whole pipeline for a /v2
// request that needs the given scopes.
func (g *Guard) Authorize(r *http.Request, need []Scope) (Grant, error) {
	snap := g.dir.Snapshot()
	endpoint := EndpointOf(r.Context())
	client := g.ClientAddress(r)
	nd := snap.Policy.Evaluate(snap.endpointState(endpoint), client)
	if !nd.Allowed && !nd.Bypassable {
		// No credential check: no password oracle, no hash work.
		v := verdict{kind: verdictNetworkDeny, decision: nd}
		return nil, g.answer(r, snap, v, endpoint, client, Principal{}, need)
	}
	creds := readCredentials(r)
	a, err := g.authenticateFrom(snap, creds, client)
	if err != nil {
		return nil, err
	}
	p := a.p
	v := decide(snap, requestFacts{
		network:   nd,
		presented: creds.kind != credNone,
		authOK:    a.ok,
		principal: p,
		token:     a.token,
		need:      need,
		devLocal:  g.opts.Dev && IsLocalDevRequest(r),
	})
	if v.kind == verdictAllow && snap.Properties.Policies.ExportPolicy.Status == "disabled" && isExport(r, snap, p, need) {
		v = verdict{kind: verdictNoRole, decision: policy.Decision{Stage: policy.StageAuthz, Reason: policy.ReasonNoRole}}
		g.record(snap, v, endpoint, client, p, need)
		return nil, &errcode.Error{Code: errcode.Denied, Message: "exports from this registry are disabled (policies.exportPolicy.status)",
			Detail: map[string]string{"stage": "authz", "reason": "NoRole"}}
	}
	if v.kind == verdictAllow {
		if v.decision.Audit || v.decision.Reason == policy.ReasonTrustedServiceBypass {
			g.record(snap, v, endpoint, client, p, need)
		}
		redirect := endpoint == PublicEndpoint && !snap.Policy.Restricted()
		if g.opts.Dev && p.Kind == Anonymous && IsLocalDevRequest(r) {
			return AllowAll{Redirect: redirect}, nil
		}
		return principalGrant{snap: snap, p: p, token: a.token, redirect: redirect}, nil
	}
	return nil, g.answer(r, snap, v, endpoint, client, p, need)
}

// answer records a denial and builds its error.
func (g *Guard) answer(r *http.Request, snap *Snapshot, v verdict, endpoint string, client netip.Addr, p Principal, need []Scope) error {
	g.record(snap, v, endpoint, client, p, need)
	return g.denial(r, v, endpoint, client)
}

func (g *Guard) record(_ *Snapshot, v verdict, endpoint string, client netip.Addr, p Principal, need []Scope) {
	if g.opts.Auditor == nil {
		return
	}
	ip := ""
	if client.IsValid() {
		ip = client.String()
	}
	e := AuditEntry{
		Time:      g.now().UTC(),
		ClientIP:  ip,
		Endpoint:  endpoint,
		Principal: p.String(),
		Allowed:   v.kind == verdictAllow,
		Stage:     v.decision.Stage.String(),
		Reason:    v.decision.Reason.String(),
		Rule:      v.decision.Rule,
		Audit:     v.decision.Audit,
	}
	if len(need) > 0 {
		if need[0].Type == TypeRegistry {
			e.Action = "catalog"
		} else {
			e.Repository = need[0].Name
			e.Action = toDocker(need[0].Actions).String()
		}
	}
	g.opts.Auditor.Record(e, v.decision.Stage, v.decision.Reason)
}

// denial is the error a verdict is answered with.
func (g *Guard) denial(r *http.Request, v verdict, endpoint string, client netip.Addr) error {
	detail := map[string]string{"stage": v.decision.Stage.String(), "reason": v.decision.Reason.String()}
	switch v.kind {
	case verdictNetworkDeny:
		return NetworkDenied(v.decision, endpoint, client)
	case verdictChallenge:
		// The detail is not decoration: Docker's client decodes an error
		// without detail whose message is the code's default into a bare
		// code, which its push retries five times (about 50 s) instead of
		// failing at once; CNCF Distribution sends a detail too.
		return (&errcode.Error{Code: errcode.Unauthorized, Message: "authentication required", Detail: challengeDetail}).
			SetHeader("WWW-Authenticate", g.challenge(r, v.scopes, ""))
	case verdictInvalid:
		return (&errcode.Error{Code: errcode.Unauthorized, Message: "authentication failed", Detail: detail}).
			SetHeader("WWW-Authenticate", g.challenge(r, nil, "invalid_token"))
	case verdictInsufficient:
		return (&errcode.Error{Code: errcode.Unauthorized, Message: "the token does not grant the access this request needs", Detail: detail}).
			SetHeader("WWW-Authenticate", g.challenge(r, v.scopes, "insufficient_scope"))
	}
	return &errcode.Error{Code: errcode.Denied, Message: "requested access to the resource is denied", Detail: detail}
}

// challengeDetail is the detail of a 401 challenge: whatever else held,
// the caller did not authenticate.
var challengeDetail = map[string]string{"stage": "authn", "reason": "NotAuthenticated"}

// NetworkDenied is the 403 of SPEC §3.
func NetworkDenied(d policy.Decision, endpoint string, client netip.Addr) *errcode.Error {
	msg := "client with IP '" + client.String() + "' is not allowed access to this registry"
	if d.Reason == policy.ReasonPrivateEndpointNotApproved {
		msg = "private endpoint '" + endpoint + "' is not approved"
	}
	return &errcode.Error{Code: errcode.Denied, Message: msg, Detail: map[string]string{"stage": "network", "reason": d.Reason.String()}}
}

// challenge is the WWW-Authenticate header of a 401.
func (g *Guard) challenge(r *http.Request, scopes []Scope, errParam string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(g.realm(r))
	b.WriteString(`",service="`)
	b.WriteString(g.opts.Service())
	b.WriteByte('"')
	if len(scopes) > 0 {
		b.WriteString(`,scope="`)
		for i, s := range scopes {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(s.String())
		}
		b.WriteByte('"')
	}
	if errParam != "" {
		b.WriteString(`,error="`)
		b.WriteString(errParam)
		b.WriteByte('"')
	}
	return b.String()
}

// realm is the token endpoint URL for the client: config publicURL, or
// the scheme and Host the request used (X-Forwarded-Proto/-Host only
// from trusted proxies), so a client keeps talking to the address it
// chose (crane refuses a realm on another loopback address).
func (g *Guard) realm(r *http.Request) string {
	if g.opts.PublicURL != "" {
		return strings.TrimRight(g.opts.PublicURL, "/") + "/oauth2/token"
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if peer, ok := PeerAddr(r); ok && g.opts.TrustedProxies.Contains(peer) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "" && safeHost(h) {
			host = h
		}
	}
	if !safeHost(host) {
		host = g.opts.Service()
	}
	return scheme + "://" + host + "/oauth2/token"
}

// safeHost accepts host[:port] characters only, so nothing from the
// request can break out of the challenge's quoted string.
func safeHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_':
		default:
			return false
		}
	}
	return true
}

// ImporterUserAgent starts the User-Agent of moat's importer.
const ImporterUserAgent = "moat-importer/"

// isExport reports whether a read is another registry importing from this
// one: moat's importer (by its User-Agent) or the managed identity of a
// `registry` trusted-service instance.
func isExport(r *http.Request, snap *Snapshot, p Principal, need []Scope) bool {
	reads := false
	for _, s := range need {
		if s.Type == TypeRepository && s.Actions&(Pull|List) != 0 {
			reads = true
		}
	}
	if !reads {
		return false
	}
	if strings.HasPrefix(r.UserAgent(), ImporterUserAgent) {
		return true
	}
	t, ok := snap.trustedService(p)
	return ok && t.typ == ServiceRegistry
}
