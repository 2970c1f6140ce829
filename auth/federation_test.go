package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/moat-registry/moat/auth"
)

// Workload identity federation (SPEC §4, §6): an identity's federated
// credential trusts (issuer, subject, audience); POST /oauth2/exchange
// takes an OIDC JWT from that issuer, verified against the issuer's
// discovery document and JWKS, and answers a registry refresh token. The
// tests run their own issuer: an httptest server on 127.0.0.1 (http is
// allowed on loopback only) that counts its fetches.

// testKey is a key an issuer signs with.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

// Keys are generated once per test process: RSA-2048 takes a while under
// -race.
var (
	rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
		var out [2]*rsa.PrivateKey
		for i := range out {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			out[i] = k
		}
		return out
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func rsaKey(kid string) testKey      { return testKey{kid, jwt.SigningMethodRS256, rsaKeys()[0]} }
func attackerKey(kid string) testKey { return testKey{kid, jwt.SigningMethodRS256, rsaKeys()[1]} }
func es256Key(kid string) testKey    { return testKey{kid, jwt.SigningMethodES256, ecKey()} }
func eddsaKey(kid string) testKey    { return testKey{kid, jwt.SigningMethodEdDSA, edKey()} }

// jwk is k's public key as a JWK.
func (k testKey) jwk() map[string]string {
	enc := base64.RawURLEncoding.EncodeToString
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": k.kid, "use": "sig", "alg": "RS256",
			"n": enc(pub.N.Bytes()), "e": enc(big.NewInt(int64(pub.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(err)
		}
		return map[string]string{"kty": "EC", "kid": k.kid, "use": "sig", "alg": "ES256", "crv": "P-256",
			"x": enc(b[1:33]), "y": enc(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": k.kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": enc(pub)}
	}
	panic("unknown key type")
}

// sign makes a JWT of claims signed with k, kid in the header.
func (k testKey) sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// oidcIssuer is a local OIDC issuer: discovery at
// /.well-known/openid-configuration, JWKS at /jwks.
type oidcIssuer struct {
	srv *httptest.Server
	URL string

	mu   sync.Mutex
	keys []testKey // published in the JWKS
	// discovery replaces fields of the discovery document.
	discovery map[string]any
	// discoveryStatus, when set, is the status of the discovery answer.
	discoveryStatus int

	discoveryFetches, jwksFetches atomic.Int32
}

func newIssuer(t testing.TB, keys ...testKey) *oidcIssuer {
	t.Helper()
	iss := &oidcIssuer{keys: keys}
	iss.srv = httptest.NewServer(http.HandlerFunc(iss.serve))
	t.Cleanup(iss.srv.Close)
	iss.URL = iss.srv.URL
	return iss
}

func (iss *oidcIssuer) serve(w http.ResponseWriter, r *http.Request) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		iss.discoveryFetches.Add(1)
		if iss.discoveryStatus != 0 {
			w.WriteHeader(iss.discoveryStatus)
			return
		}
		doc := map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
		}
		for k, v := range iss.discovery {
			doc[k] = v
		}
		_ = json.NewEncoder(w).Encode(doc)
	case "/jwks":
		iss.jwksFetches.Add(1)
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for _, k := range iss.keys {
			set.Keys = append(set.Keys, k.jwk())
		}
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// publish replaces the keys of the JWKS (a rotation).
func (iss *oidcIssuer) publish(keys ...testKey) {
	iss.mu.Lock()
	iss.keys = keys
	iss.mu.Unlock()
}

func (iss *oidcIssuer) fetches() (discovery, jwks int32) {
	return iss.discoveryFetches.Load(), iss.jwksFetches.Load()
}

// claims are a token's claims from iss for sub and aud, valid now.
func claims(iss, sub string, aud any, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": iss, "sub": sub, "aud": aud,
		"iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": "id-" + now.Format(time.RFC3339Nano),
	}
}

// exchange posts an OIDC token to /oauth2/exchange.
func exchange(g *auth.Guard, c call, token string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {"access_token"}, "access_token": {token}}
	r := c.request(http.MethodPost, "/oauth2/exchange", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	g.ExchangeHandler().ServeHTTP(w, r)
	return w
}

// refreshTokenOf checks a successful exchange and returns its token.
func refreshTokenOf(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("exchange: %d %s", w.Code, w.Body)
	}
	var out map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out["refresh_token"] == "" {
		t.Fatalf("exchange answered %s (%v)", w.Body, err)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("exchange Cache-Control %q, want no-store", cc)
	}
	return out["refresh_token"]
}

// wantRefused checks that an exchange was refused with 401 and no token.
func wantRefused(t testing.TB, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("exchange: %d %s, want 401", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "refresh_token") {
		t.Fatalf("a refused exchange answered a token: %s", w.Body)
	}
	if code, _, _ := errorBody(t, w); code != "UNAUTHORIZED" {
		t.Errorf("code %s, want UNAUTHORIZED", code)
	}
}

// federated creates an enabled identity of kind with one federated
// credential and, when role is set, that role on repository app.
func (f *fixture) federated(name, kind, issuer, subject string, audiences []string, role string) {
	f.t.Helper()
	_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: name, Kind: kind, Enabled: true})
	f.must(err)
	_, _, err = f.dir.PutFederatedCredential(ctx, name, auth.FederatedCredential{Name: "fc", Issuer: issuer, Subject: subject, Audiences: audiences}, auth.LevelOwner)
	f.must(err)
	if role != "" {
		f.assign(name, role, "repositories/app")
	}
}

const (
	ghSubject  = "repo:org/app:ref:refs/heads/main"
	ghAudience = "api://AzureADTokenExchange"
)

// TestFederatedExchange: a GitHub Actions-shaped token (RS256) exchanges
// for a refresh token that works with grant_type=refresh_token and as the
// password of 00000000-0000-0000-0000-000000000000, with the identity's
// roles and no more; ES256 and EdDSA issuers work too; a Kubernetes
// service-account token and a GitLab CI token match their own shapes.
func TestFederatedExchange(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	clk := &clock{now: time.Now()}
	f.guard.SetClockForTest(clk.Now)
	iss := newIssuer(t, rsaKey("k1"))
	f.federated("gha", auth.KindServicePrincipal, iss.URL, ghSubject, []string{ghAudience}, "AcrPull")

	c := claims(iss.URL, ghSubject, ghAudience, clk.Now())
	// What GitHub adds; none of it matters to the match.
	for k, v := range map[string]any{"repository": "org/app", "ref": "refs/heads/main", "event_name": "push",
		"job_workflow_ref": "org/app/.github/workflows/ci.yml@refs/heads/main", "runner_environment": "github-hosted"} {
		c[k] = v
	}
	refresh := refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))

	// grant_type=refresh_token: an access token with the identity's roles.
	tr := decodeToken(t, f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"service": {testService}, "scope": {"repository:app:pull,push repository:other:pull"}}))
	if got := accessOf(t, tr.Token); len(got) != 1 || got[0] != "repository:app:pull" {
		t.Errorf("access %q, want [repository:app:pull]", got)
	}
	if id, _ := f.dir.Snapshot().PrincipalByName("gha"); claimsOf(t, tr.Token)["sub"] != id.ID {
		t.Errorf("access token sub %v, want gha's principal id %s", claimsOf(t, tr.Token)["sub"], id.ID)
	}
	// As a password: Basic 00000000-…:<refresh token> on /v2.
	asRefresh := call{user: auth.RefreshTokenUsername, pass: refresh}
	if _, e := f.authorize(asRefresh, pull("app")); e != nil {
		t.Errorf("pull app with the refresh token as password: %v", e)
	}
	if _, e := f.authorize(asRefresh, push("app")); e == nil || e.Code.Status != http.StatusForbidden {
		t.Errorf("push app with an AcrPull identity's refresh token: %v, want 403", e)
	}
	// The exchange's own token is not a refresh token.
	if _, e := f.authorize(call{bearer: refresh}, pull("app")); e == nil {
		t.Error("the refresh token works as a bearer access token")
	}

	t.Run("multiple audiences", func(t *testing.T) {
		c := claims(iss.URL, ghSubject, []string{"https://github.com/org", ghAudience}, clk.Now())
		refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))
	})

	for _, tc := range []struct {
		name, subject, audience string
		key                     testKey
	}{
		{"ES256 kubernetes", "system:serviceaccount:builds:pusher", "https://registry.test", es256Key("k8s-1")},
		{"EdDSA gitlab", "project_path:group/app:ref_type:branch:ref:main", "https://gitlab.example.com", eddsaKey("gl-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := newIssuer(t, tc.key)
			name := strings.Fields(tc.name)[1]
			f.federated(name, auth.KindManagedIdentity, iss.URL, tc.subject, []string{tc.audience}, "AcrPush")
			c := claims(iss.URL, tc.subject, tc.audience, clk.Now())
			if name == "kubernetes" {
				c["kubernetes.io"] = map[string]any{"namespace": "builds", "serviceaccount": map[string]string{"name": "pusher", "uid": "6f1c"}}
			}
			refresh := refreshTokenOf(t, exchange(f.guard, call{}, tc.key.sign(t, c)))
			if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: refresh}, push("app")); e != nil {
				t.Errorf("push with the refresh token: %v", e)
			}
			// Another service account of the same cluster is not it.
			c["sub"] = tc.subject + "x"
			wantRefused(t, exchange(f.guard, call{}, tc.key.sign(t, c)))
		})
	}

	// Deleting the federated credential revokes the refresh token.
	f.must(f.dir.DeleteFederatedCredential(ctx, "gha", "fc"))
	if _, e := f.authorize(asRefresh, pull("app")); e == nil || e.Code.Status != http.StatusUnauthorized {
		t.Errorf("the refresh token still pulls after its federated credential was deleted: %v", e)
	}
	w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {testService}})
	if w.Code != http.StatusUnauthorized {
		t.Errorf("grant_type=refresh_token after the credential was deleted: %d %s", w.Code, w.Body)
	}
}

// TestFederatedExchangeRefused: tokens that must not exchange.
func TestFederatedExchangeRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	clk := &clock{now: time.Now()}
	f.guard.SetClockForTest(clk.Now)
	iss := newIssuer(t, rsaKey("k1"), es256Key("ec1"))
	f.federated("gha", auth.KindServicePrincipal, iss.URL, ghSubject, []string{ghAudience}, "AcrPull")
	now := clk.Now()
	good := func() jwt.MapClaims { return claims(iss.URL, ghSubject, ghAudience, now) }
	// The control: the fixture accepts a good token.
	refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, good())))

	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := good(); delete(c, k); return c }
	pub, err := x509.MarshalPKIXPublicKey(rsaKeys()[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	other := newIssuer(t, rsaKey("k1"))

	for _, tc := range []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"wrong issuer", func(t *testing.T) string { return rsaKey("k1").sign(t, with("iss", other.URL)) }},
		{"issuer with a trailing slash", func(t *testing.T) string { return rsaKey("k1").sign(t, with("iss", iss.URL+"/")) }},
		{"wrong subject", func(t *testing.T) string {
			return rsaKey("k1").sign(t, with("sub", "repo:org/app:ref:refs/heads/attacker"))
		}},
		{"pull request subject", func(t *testing.T) string { return rsaKey("k1").sign(t, with("sub", "repo:org/app:pull_request")) }},
		{"wrong audience", func(t *testing.T) string { return rsaKey("k1").sign(t, with("aud", "api://Other")) }},
		{"no audience", func(t *testing.T) string { return rsaKey("k1").sign(t, without("aud")) }},
		{"expired", func(t *testing.T) string {
			c := good()
			c["iat"], c["nbf"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Hour).Unix(), now.Add(-2*time.Minute).Unix()
			return rsaKey("k1").sign(t, c)
		}},
		{"no expiry", func(t *testing.T) string { return rsaKey("k1").sign(t, without("exp")) }},
		{"not yet valid", func(t *testing.T) string { return rsaKey("k1").sign(t, with("nbf", now.Add(2*time.Minute).Unix())) }},
		{"signed by a key not in the JWKS, same kid", func(t *testing.T) string { return attackerKey("k1").sign(t, good()) }},
		{"signed by an EC key not in the JWKS, same kid", func(t *testing.T) string {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return testKey{"ec1", jwt.SigningMethodES256, k}.sign(t, good())
		}},
		{"alg none", func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, good())
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"HS256 with the RSA public key as secret", func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"HS256 with the RSA modulus as secret", func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(pub)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"RS512, not on the allow-list", func(t *testing.T) string {
			return testKey{"k1", jwt.SigningMethodRS512, rsaKeys()[0]}.sign(t, good())
		}},
		{"PS256, not on the allow-list", func(t *testing.T) string {
			return testKey{"k1", jwt.SigningMethodPS256, rsaKeys()[0]}.sign(t, good())
		}},
		{"ES256 header naming the RSA key", func(t *testing.T) string { return es256Key("k1").sign(t, good()) }},
		{"RS256 header naming the EC key", func(t *testing.T) string { return testKey{"ec1", jwt.SigningMethodRS256, rsaKeys()[0]}.sign(t, good()) }},
		{"signature of another token", func(t *testing.T) string {
			a := strings.Split(rsaKey("k1").sign(t, good()), ".")
			b := strings.Split(rsaKey("k1").sign(t, with("sub", "repo:org/app:ref:refs/heads/x")), ".")
			return a[0] + "." + a[1] + "." + b[2]
		}},
		{"claims swapped under a valid signature", func(t *testing.T) string {
			a := strings.Split(rsaKey("k1").sign(t, with("sub", "repo:org/other:ref:refs/heads/main")), ".")
			b, _ := json.Marshal(good())
			return a[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + a[2]
		}},
		{"not a JWT", func(*testing.T) string { return "not-a-jwt" }},
		{"empty", func(*testing.T) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, exchange(f.guard, call{}, tc.token(t)))
		})
	}

	t.Run("disabled identity", func(t *testing.T) {
		f.federated("off", auth.KindServicePrincipal, iss.URL, "repo:org/off:ref:refs/heads/main", []string{ghAudience}, "AcrPull")
		c := claims(iss.URL, "repo:org/off:ref:refs/heads/main", ghAudience, now)
		refresh := refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))
		_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "off", Enabled: false})
		f.must(err)
		wantRefused(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))
		// A refresh token issued before is dead too.
		w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {testService}})
		if w.Code != http.StatusUnauthorized {
			t.Errorf("refresh grant of a disabled identity: %d %s", w.Code, w.Body)
		}
		if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: refresh}, pull("app")); e == nil {
			t.Error("a disabled identity's refresh token still pulls")
		}
	})

	t.Run("deleted credential", func(t *testing.T) {
		f.federated("gone", auth.KindServicePrincipal, iss.URL, "repo:org/gone:ref:refs/heads/main", []string{ghAudience}, "")
		c := claims(iss.URL, "repo:org/gone:ref:refs/heads/main", ghAudience, now)
		refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))
		f.must(f.dir.DeleteFederatedCredential(ctx, "gone", "fc"))
		wantRefused(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))
	})

	t.Run("leeway", func(t *testing.T) {
		// A minute of clock skew is tolerated, on both ends.
		c := good()
		c["exp"] = now.Add(-30 * time.Second).Unix()
		refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, c)))
		refreshTokenOf(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, with("nbf", now.Add(30*time.Second).Unix()))))
	})
}

// TestFederatedDiscoveryRefused: an issuer whose discovery document or
// JWKS location is not to be trusted gets no key fetched and no token.
func TestFederatedDiscoveryRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, tc := range []struct {
		name   string
		adjust func(iss *oidcIssuer)
	}{
		{"discovery names another issuer", func(iss *oidcIssuer) {
			iss.discovery = map[string]any{"issuer": "https://token.actions.githubusercontent.com"}
		}},
		{"discovery names an issuer with a trailing slash", func(iss *oidcIssuer) { iss.discovery = map[string]any{"issuer": iss.URL + "/"} }},
		{"jwks_uri on a link-local address", func(iss *oidcIssuer) {
			iss.discovery = map[string]any{"jwks_uri": "https://169.254.169.254/metadata/identity/keys"}
		}},
		{"jwks_uri on plain http, link-local", func(iss *oidcIssuer) {
			iss.discovery = map[string]any{"jwks_uri": "http://169.254.169.254/latest/meta-data/"}
		}},
		{"jwks_uri on link-local IPv6", func(iss *oidcIssuer) { iss.discovery = map[string]any{"jwks_uri": "https://[fe80::1]/keys"} }},
		{"jwks_uri on plain http, not loopback", func(iss *oidcIssuer) {
			iss.discovery = map[string]any{"jwks_uri": "http://keys.example.com/jwks"}
		}},
		{"jwks_uri with another scheme", func(iss *oidcIssuer) { iss.discovery = map[string]any{"jwks_uri": "file:///etc/passwd"} }},
		{"no jwks_uri", func(iss *oidcIssuer) { iss.discovery = map[string]any{"jwks_uri": ""} }},
		{"discovery fails", func(iss *oidcIssuer) { iss.discoveryStatus = http.StatusInternalServerError }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := newIssuer(t, rsaKey("k1"))
			tc.adjust(iss)
			name := "id" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", ""), ",", "")
			name = name[:min(len(name), 60)]
			f.federated(name, auth.KindServicePrincipal, iss.URL, ghSubject, []string{ghAudience}, "AcrPull")
			wantRefused(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, claims(iss.URL, ghSubject, ghAudience, time.Now()))))
			if _, jwks := iss.fetches(); jwks != 0 {
				t.Errorf("the issuer's own JWKS was fetched %d times", jwks)
			}
		})
	}

	t.Run("discovery redirects to a link-local address", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Redirect(w, r, "http://169.254.169.254/.well-known/openid-configuration", http.StatusFound)
		}))
		defer srv.Close()
		f.federated("redirected", auth.KindServicePrincipal, srv.URL, ghSubject, []string{ghAudience}, "")
		wantRefused(t, exchange(f.guard, call{}, rsaKey("k1").sign(t, claims(srv.URL, ghSubject, ghAudience, time.Now()))))
		if hits.Load() != 1 {
			t.Errorf("the issuer was asked %d times, want 1", hits.Load())
		}
	})
}

// TestFederatedKeyRotation: the JWKS is fetched once and cached; a token
// with an unknown kid makes moat refetch it (an issuer rotated its keys),
// at most once per 30 seconds whatever the number of such tokens; the
// cache expires after an hour.
func TestFederatedKeyRotation(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	clk := &clock{now: time.Now()}
	f.guard.SetClockForTest(clk.Now)
	iss := newIssuer(t, rsaKey("k1"))
	f.federated("gha", auth.KindServicePrincipal, iss.URL, ghSubject, []string{ghAudience}, "")
	token := func(k testKey) string { return k.sign(t, claims(iss.URL, ghSubject, ghAudience, clk.Now())) }
	wantFetches := func(step string, discovery, jwks int32) {
		t.Helper()
		if d, j := iss.fetches(); d != discovery || j != jwks {
			t.Fatalf("%s: %d discovery and %d JWKS fetches, want %d and %d", step, d, j, discovery, jwks)
		}
	}

	for range 5 {
		refreshTokenOf(t, exchange(f.guard, call{}, token(rsaKey("k1"))))
	}
	wantFetches("five exchanges", 1, 1)

	for range 5 {
		wantRefused(t, exchange(f.guard, call{}, token(attackerKey("ghost"))))
	}
	wantFetches("unknown kid right after a fetch", 1, 1)

	// The issuer rotates to an EC key and drops k1.
	iss.publish(es256Key("k2"))
	clk.advance(31 * time.Second)
	refreshTokenOf(t, exchange(f.guard, call{}, token(es256Key("k2"))))
	wantFetches("rotated kid", 2, 2)
	refreshTokenOf(t, exchange(f.guard, call{}, token(es256Key("k2"))))
	wantRefused(t, exchange(f.guard, call{}, token(rsaKey("k1"))))
	wantFetches("after the rotation", 2, 2)

	clk.advance(31 * time.Second)
	for range 10 {
		wantRefused(t, exchange(f.guard, call{}, token(attackerKey("ghost"))))
	}
	wantFetches("ten unknown kids", 3, 3)

	clk.advance(61 * time.Minute)
	refreshTokenOf(t, exchange(f.guard, call{}, token(es256Key("k2"))))
	wantFetches("an hour later", 4, 4)

	t.Run("failing issuer", func(t *testing.T) {
		down := newIssuer(t, rsaKey("k1"))
		down.discoveryStatus = http.StatusServiceUnavailable
		f.federated("down", auth.KindServicePrincipal, down.URL, ghSubject, []string{ghAudience}, "")
		tok := func() string { return rsaKey("k1").sign(t, claims(down.URL, ghSubject, ghAudience, clk.Now())) }
		for range 10 {
			wantRefused(t, exchange(f.guard, call{}, tok()))
		}
		if d, _ := down.fetches(); d != 1 {
			t.Errorf("a failing issuer was asked %d times by ten exchanges, want once per 30 s", d)
		}
		// It recovers: the next attempt after the pause works.
		down.mu.Lock()
		down.discoveryStatus = 0
		down.mu.Unlock()
		clk.advance(31 * time.Second)
		refreshTokenOf(t, exchange(f.guard, call{}, tok()))
	})
}

// TestFederatedCredentialRules: what PUT …/federated-credentials/{fc}
// accepts (the API maps ErrInvalid to 400, ErrConflict to 409,
// ErrForbidden to 403).
func TestFederatedCredentialRules(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, name := range []string{"a", "b", "roled"} {
		_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: name, Kind: auth.KindServicePrincipal, Enabled: true})
		f.must(err)
	}
	put := func(identity, name, issuer string, caller auth.Level, aud ...string) error {
		_, _, err := f.dir.PutFederatedCredential(ctx, identity, auth.FederatedCredential{Name: name, Issuer: issuer, Subject: ghSubject, Audiences: aud}, caller)
		return err
	}
	const gh = "https://token.actions.githubusercontent.com"

	t.Run("issuer URL", func(t *testing.T) {
		for _, issuer := range []string{
			"http://token.actions.githubusercontent.com",
			"http://10.0.0.5:8080",
			"http://169.254.169.254",
			"https://169.254.169.254",
			"https://[fe80::1]",
			"https://0.0.0.0",
			"https://user:pass@issuer.example.com",
			"https://issuer.example.com?x=1",
			"https://issuer.example.com#frag",
			"ftp://issuer.example.com",
			"issuer.example.com",
			"",
		} {
			if err := put("a", "bad", issuer, auth.LevelOwner, "aud"); !errors.Is(err, auth.ErrInvalid) {
				t.Errorf("issuer %q: %v, want ErrInvalid", issuer, err)
			}
		}
		for _, issuer := range []string{gh, "https://gitlab.example.com", "http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:1"} {
			if err := put("a", "ok", issuer, auth.LevelOwner, "aud-"+issuer); err != nil {
				t.Errorf("issuer %q: %v", issuer, err)
			}
		}
		f.must(f.dir.DeleteFederatedCredential(ctx, "a", "ok"))
	})

	t.Run("duplicate triple", func(t *testing.T) {
		f.must(put("a", "main", gh, auth.LevelOwner, ghAudience))
		if err := put("b", "main", gh, auth.LevelOwner, "other", ghAudience); !errors.Is(err, auth.ErrConflict) {
			t.Errorf("another identity, same triple: %v, want ErrConflict", err)
		}
		if err := put("a", "second", gh, auth.LevelOwner, ghAudience); !errors.Is(err, auth.ErrConflict) {
			t.Errorf("the same identity, another credential, same triple: %v, want ErrConflict", err)
		}
		// Replacing the credential itself is no conflict.
		f.must(put("a", "main", gh, auth.LevelOwner, ghAudience, "extra"))
		// Another audience is another triple.
		f.must(put("b", "main", gh, auth.LevelOwner, "other"))
		list, _ := f.dir.Snapshot().FederatedCredentials("a")
		if len(list) != 1 || len(list[0].Audiences) != 2 {
			t.Errorf("identity a's credentials: %+v", list)
		}
	})

	t.Run("owner for an identity with roles", func(t *testing.T) {
		f.assign("roled", "AcrPull", "/")
		if err := put("roled", "x", gh, auth.LevelContributor, "roled-aud"); !errors.Is(err, auth.ErrForbidden) {
			t.Errorf("Contributor adds a credential to an identity with roles: %v, want ErrForbidden", err)
		}
		f.must(put("roled", "x", gh, auth.LevelOwner, "roled-aud"))
		// Without roles, Contributor may.
		f.must(put("b", "y", gh, auth.LevelContributor, "b-aud"))
	})

	t.Run("shape", func(t *testing.T) {
		long := strings.Repeat("s", 513)
		for _, tc := range []struct {
			name string
			fc   auth.FederatedCredential
		}{
			{"no subject", auth.FederatedCredential{Name: "s", Issuer: gh, Audiences: []string{"x"}}},
			{"long subject", auth.FederatedCredential{Name: "s", Issuer: gh, Subject: long, Audiences: []string{"x"}}},
			{"no audience", auth.FederatedCredential{Name: "s", Issuer: gh, Subject: "x"}},
			{"empty audience", auth.FederatedCredential{Name: "s", Issuer: gh, Subject: "x", Audiences: []string{""}}},
			{"bad name", auth.FederatedCredential{Name: "a/b", Issuer: gh, Subject: "x", Audiences: []string{"x"}}},
		} {
			if _, _, err := f.dir.PutFederatedCredential(ctx, "a", tc.fc, auth.LevelOwner); !errors.Is(err, auth.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
			}
		}
		if _, _, err := f.dir.PutFederatedCredential(ctx, "nobody", auth.FederatedCredential{Name: "s", Issuer: gh, Subject: "x", Audiences: []string{"x"}}, auth.LevelOwner); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("unknown identity: %v, want ErrNotFound", err)
		}
	})
}

// TestFederatedExchangeNetwork: /oauth2/exchange applies the network
// decision. With public access disabled, only a trusted service's
// identity exchanges (the bypass); any other gets the 403, and with the
// bypass off everyone gets it, before the token is looked at.
func TestFederatedExchangeNetwork(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	iss := newIssuer(t, rsaKey("k1"))
	f.federated("plain", auth.KindServicePrincipal, iss.URL, "plain", []string{testService}, "AcrPull")
	svc, _, err := f.dir.PutService(ctx, auth.Service{Name: "nightly", Type: auth.ServiceTasks, Identity: auth.ServiceIdentity{Type: auth.IdentitySystem}})
	f.must(err)
	_, _, err = f.dir.PutFederatedCredential(ctx, svc.Identity.PrincipalName,
		auth.FederatedCredential{Name: "fc", Issuer: iss.URL, Subject: "tasks:nightly", Audiences: []string{testService}}, auth.LevelOwner)
	f.must(err)
	f.assign(svc.Identity.PrincipalName, "AcrPush", "/")
	tok := func(sub string) string { return rsaKey("k1").sign(t, claims(iss.URL, sub, testService, time.Now())) }

	f.props(func(p *auth.Properties) { p.PublicNetworkAccess = "Disabled" })
	refresh := refreshTokenOf(t, exchange(f.guard, call{}, tok("tasks:nightly")))
	if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: refresh}, push("app")); e != nil {
		t.Errorf("the trusted service's push through the bypass: %v", e)
	}
	for _, tc := range []struct{ name, token string }{{"plain identity", tok("plain")}, {"garbage", "x.y.z"}} {
		w := exchange(f.guard, call{}, tc.token)
		if w.Code != http.StatusForbidden {
			t.Fatalf("%s with public access disabled: %d %s, want 403", tc.name, w.Code, w.Body)
		}
		if _, msg, _ := errorBody(t, w); msg != networkMessage("192.0.2.1") {
			t.Errorf("%s: message %q", tc.name, msg)
		}
	}

	f.props(func(p *auth.Properties) {
		p.PublicNetworkAccess = "Disabled"
		p.NetworkRuleBypassOptions = "None"
	})
	fetched := iss.discoveryFetches.Load()
	w := exchange(f.guard, call{}, tok("tasks:nightly"))
	if w.Code != http.StatusForbidden {
		t.Fatalf("bypass off: %d %s, want 403", w.Code, w.Body)
	}
	if iss.discoveryFetches.Load() != fetched {
		t.Error("with the bypass off, the exchange still fetched the issuer's keys")
	}
	if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: refresh}, pull("app")); e == nil {
		t.Error("with the bypass off, the earlier refresh token still pulls")
	}
}

// TestWorkloadToken: moat's own tokens for its tasks (sub
// "<type>:<instance>") verify against its discovery document and JWKS, so
// another moat trusting this one's issuer accepts them.
func TestWorkloadToken(t *testing.T) {
	a := newFixture(t, fixtureOptions{})
	var srv *httptest.Server
	ga := a.newGuard(a.keys, auth.GuardOptions{IssuerURL: func() string { return srv.URL }})
	mux := http.NewServeMux()
	mux.Handle("/.well-known/openid-configuration", ga.OpenIDConfigurationHandler())
	mux.Handle("/.well-known/jwks.json", ga.JWKSHandler())
	srv = httptest.NewServer(mux)
	defer srv.Close()

	b := newFixture(t, fixtureOptions{})
	b.setService("registry-b.test")
	b.federated("a-nightly", auth.KindManagedIdentity, srv.URL, "tasks:nightly", []string{"registry-b.test"}, "AcrPush")

	tok, err := ga.WorkloadToken(auth.ServiceTasks, "nightly", "registry-b.test")
	if err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, tok)
	if c["iss"] != srv.URL || c["sub"] != "tasks:nightly" || c["aud"] == nil {
		t.Errorf("workload token claims %v", c)
	}
	refreshTokenOf(t, exchange(b.guard, call{}, tok))

	// For another audience, or another instance, it is no good.
	other, err := ga.WorkloadToken(auth.ServiceTasks, "nightly", "registry-c.test")
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, exchange(b.guard, call{}, other))
	other, err = ga.WorkloadToken(auth.ServiceTasks, "weekly", "registry-b.test")
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, exchange(b.guard, call{}, other))
	// A moat registry token is not a workload token of the issuer.
	access := a.accessToken(call{}, "repository:app:pull")
	wantRefused(t, exchange(b.guard, call{}, access))
}
