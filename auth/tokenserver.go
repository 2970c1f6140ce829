package auth

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/policy"
)

// tokenResponse is the answer of the token endpoint (Docker's token spec,
// plus access_token for OAuth2 clients).
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// TokenHandler serves /oauth2/token (GET: Docker's token flow with Basic;
// POST: grant_type=password|refresh_token).
func (g *Guard) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.Method {
		case http.MethodGet:
			err = g.tokenGet(w, r)
		case http.MethodPost:
			err = g.tokenPost(w, r)
		default:
			err = errcode.Unsupported.New("method "+r.Method+" is not allowed here").SetHeader("Allow", "GET, POST")
		}
		if err != nil {
			errcode.Write(w, r, err)
		}
	})
}

// tokenContext is the network view of a token request.
type tokenContext struct {
	snap     *Snapshot
	endpoint string
	client   netip.Addr
	network  policy.Decision
}

func (g *Guard) tokenContext(r *http.Request) tokenContext {
	snap := g.dir.Snapshot()
	tc := tokenContext{snap: snap, endpoint: EndpointOf(r.Context()), client: g.ClientAddress(r)}
	tc.network = snap.Policy.Evaluate(snap.endpointState(tc.endpoint), tc.client)
	return tc
}

// admit applies the network decision to a token request for principal p
// (authenticated unless anonymous). From a denied network only an
// enabled trusted-service identity gets a token, and what it may do is
// cut to what the bypass covers.
func (g *Guard) admit(r *http.Request, tc tokenContext, p Principal) (Action, error) {
	deny := func() error {
		g.record(tc.snap, verdict{kind: verdictNetworkDeny, decision: tc.network}, tc.endpoint, tc.client, p, nil)
		return NetworkDenied(tc.network, tc.endpoint, tc.client)
	}
	if tc.network.Allowed {
		if tc.network.Audit {
			// Audit mode: the allow the rules would have denied is logged.
			d := policy.Decision{Allowed: true, Stage: policy.StageNetwork, Reason: tc.network.Reason, Rule: tc.network.Rule, Audit: true}
			g.record(tc.snap, verdict{kind: verdictAllow, decision: d}, tc.endpoint, tc.client, p, nil)
		}
		return ^Action(0), nil
	}
	if !tc.network.Bypassable || p.Kind == Anonymous {
		return 0, deny()
	}
	t, ok := tc.snap.trustedService(p)
	if !ok {
		return 0, deny()
	}
	d := policy.Decision{Allowed: true, Stage: policy.StageNetwork, Reason: policy.ReasonTrustedServiceBypass, Rule: tc.network.Rule}
	g.record(tc.snap, verdict{kind: verdictAllow, decision: d}, tc.endpoint, tc.client, p, nil)
	if t.readOnly {
		return readActions, nil
	}
	return ^Action(0), nil
}

func (g *Guard) tokenGet(w http.ResponseWriter, r *http.Request) error {
	tc := g.tokenContext(r)
	if !tc.network.Allowed && !tc.network.Bypassable {
		return g.denyToken(tc)
	}
	q := r.URL.Query()
	if err := g.checkService(q.Get("service")); err != nil {
		return g.refuse(tc, err)
	}
	creds := readCredentials(r)
	if creds.kind == credBearer || creds.kind == credMalformed {
		if !tc.network.Allowed {
			return g.denyToken(tc)
		}
		return g.tokenUnauthorized(r, tc, "use Basic authentication or no credentials")
	}
	a, err := g.authenticateFrom(tc.snap, creds, tc.client)
	if err != nil {
		return g.refuse(tc, err)
	}
	if !a.ok {
		if !tc.network.Allowed {
			return g.denyToken(tc)
		}
		return g.tokenUnauthorized(r, tc, "invalid username or password")
	}
	return g.grantToken(w, r, tc, a, q["scope"], false)
}

func (g *Guard) tokenPost(w http.ResponseWriter, r *http.Request) error {
	tc := g.tokenContext(r)
	if !tc.network.Allowed && !tc.network.Bypassable {
		return g.denyToken(tc)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return g.refuse(tc, errcode.Invalid.New("malformed form body"))
	}
	f := r.PostForm
	if err := g.checkService(f.Get("service")); err != nil {
		return g.refuse(tc, err)
	}
	var a authn
	switch f.Get("grant_type") {
	case "password":
		var err error
		a, err = g.authenticateFrom(tc.snap, credentials{kind: credBasic, user: f.Get("username"), pass: f.Get("password")}, tc.client)
		if err != nil {
			return g.refuse(tc, err)
		}
		if !a.ok || f.Get("username") == "" {
			if !tc.network.Allowed {
				return g.denyToken(tc)
			}
			return g.tokenUnauthorized(r, tc, "invalid username or password")
		}
	case "refresh_token":
		ti, ok := g.verifyRefresh(tc.snap, f.Get("refresh_token"))
		if !ok {
			if !tc.network.Allowed {
				return g.denyToken(tc)
			}
			return g.tokenUnauthorized(r, tc, "invalid refresh token")
		}
		a = authn{p: ti.principal, cred: ti.cred, ok: true}
	default:
		return g.refuse(tc, errcode.Invalid.New("grant_type must be password or refresh_token"))
	}
	var scopes []string
	if s := f.Get("scope"); s != "" {
		scopes = []string{s}
	}
	return g.grantToken(w, r, tc, a, scopes, f.Get("grant_type") == "password")
}

func (g *Guard) checkService(s string) error {
	if s != "" && s != g.opts.Service() {
		return errcode.Invalid.New("unknown service " + strconv.Quote(s) + "; this registry is " + strconv.Quote(g.opts.Service()))
	}
	return nil
}

// refuse is err for a client the network allows; every other client gets
// the network's 403, as SPEC §3 says for whoever is not an enabled
// trusted-service identity — a malformed request included.
func (g *Guard) refuse(tc tokenContext, err error) error {
	if !tc.network.Allowed {
		return g.denyToken(tc)
	}
	return err
}

func (g *Guard) denyToken(tc tokenContext) error {
	g.record(tc.snap, verdict{kind: verdictNetworkDeny, decision: tc.network}, tc.endpoint, tc.client, Principal{}, nil)
	return NetworkDenied(tc.network, tc.endpoint, tc.client)
}

func (g *Guard) tokenUnauthorized(r *http.Request, tc tokenContext, msg string) error {
	v := verdict{kind: verdictInvalid, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonInvalidCredentials}}
	g.record(tc.snap, v, tc.endpoint, tc.client, Principal{}, nil)
	return (&errcode.Error{Code: errcode.Unauthorized, Message: msg}).SetHeader("WWW-Authenticate", g.challenge(r, nil, "invalid_token"))
}

// grantToken issues an access token for the requested scopes intersected
// with what p may do (a partial grant is not an error), and a refresh
// token when asked.
func (g *Guard) grantToken(w http.ResponseWriter, r *http.Request, tc tokenContext, a authn, scopeParams []string, refresh bool) error {
	p := a.p
	limit, err := g.admit(r, tc, p)
	if err != nil {
		return err
	}
	devLocal := g.opts.Dev && p.Kind == Anonymous && IsLocalDevRequest(r)
	var access []Scope
	for _, param := range scopeParams {
		for s := range strings.FieldsSeq(param) {
			sc, ok := ParseScope(s)
			if !ok {
				continue
			}
			held := tc.snap.held(p, sc)
			if devLocal {
				held = AllActions | List | Sign
			}
			granted := toDocker(dockerActions(sc.Actions) & held & limit)
			if sc.Type == TypeRegistry {
				if held == 0 {
					continue
				}
				granted = AllActions
			}
			if granted == 0 {
				continue
			}
			access = mergeScope(access, Scope{Type: sc.Type, Name: sc.Name, Actions: granted})
		}
	}
	svc := g.opts.Service()
	tok, issued, err := g.tokens.issue(p, access, svc, AccessTokenTTL)
	if err != nil {
		return err
	}
	resp := tokenResponse{Token: tok, AccessToken: tok, ExpiresIn: int(AccessTokenTTL / time.Second), IssuedAt: issued.UTC().Format(time.RFC3339)}
	if refresh && p.Kind != Anonymous {
		if resp.RefreshToken, err = g.tokens.issueRefresh(p, a.cred, svc); err != nil {
			return err
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
	return nil
}

func mergeScope(list []Scope, s Scope) []Scope {
	for i := range list {
		if list[i].Type == s.Type && list[i].Name == s.Name {
			list[i].Actions |= s.Actions
			return list
		}
	}
	return append(list, s)
}

// JWKSHandler serves /.well-known/jwks.json.
func (g *Guard) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(struct {
			Keys []JWK `json:"keys"`
		}{g.tokens.keys.JWKS()})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(b)
	})
}
