package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/moat-registry/moat/auth"
)

// tokenFuzz is a guard with one user, alice (AcrPush on app), whose
// password and tokens are the only credentials that may grant anything.
type tokenFuzz struct {
	fx      *fixture
	secrets []string // the texts whose presence in an input may explain a grant
}

func newTokenFuzz(f *testing.F) *tokenFuzz {
	fx := newFixture(f, fixtureOptions{})
	fx.user("alice", "AcrPush", "repositories/app")
	_, _, err := fx.dir.PutFederatedCredential(ctx, "alice", auth.FederatedCredential{
		Name: "ci", Issuer: "http://127.0.0.1:1", Subject: "repo:app", Audiences: []string{"moat"},
	}, auth.LevelOwner)
	fx.must(err)
	access := fx.accessToken(basic("alice"), "repository:app:pull,push")
	w := fx.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password("alice")}, "service": {testService}})
	refresh := decodeToken(f, w).RefreshToken
	tf := &tokenFuzz{fx: fx, secrets: []string{
		password("alice"), base64.StdEncoding.EncodeToString([]byte("alice:" + password("alice"))), access, refresh,
	}}
	return tf
}

// holdsSecret reports whether an input carries alice's password or one
// of her tokens (base64 or percent-encoded forms included).
func (tf *tokenFuzz) holdsSecret(parts ...string) bool {
	for _, p := range parts {
		forms := []string{p}
		if u, err := url.QueryUnescape(p); err == nil {
			forms = append(forms, u)
		}
		if _, b64, ok := strings.Cut(p, " "); ok {
			if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64)); err == nil {
				forms = append(forms, string(b))
			}
		}
		for _, f := range forms {
			for _, s := range tf.secrets {
				if strings.Contains(f, s) {
					return true
				}
			}
		}
	}
	return false
}

// forged are JWTs an attacker can make: no signature, an HMAC keyed with
// public data, a foreign key's signature, a real token re-signed.
func forged(t testing.TB, fx *fixture) []string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	claims := map[string]any{"iss": testIssuer, "sub": "alice", "aud": testService, "exp": 4102444800, "nbf": 0, "iat": 0,
		"pk": "identity", "name": "alice", "access": []map[string]any{{"type": "repository", "name": "app", "actions": []string{"pull", "push"}}}}
	refresh := map[string]any{"iss": testIssuer, "sub": "alice", "aud": testService, "exp": 4102444800, "pk": "identity", "name": "alice", "use": "refresh"}
	none := enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
	hsInput := enc(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
	mac := hmac.New(sha256.New, []byte(testService))
	mac.Write([]byte(hsInput))
	hs := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	// A token issued by a guard of another key ring: valid in form, signed
	// by a key this registry never had.
	other, err := auth.OpenKeyRing(filepath.Join(t.TempDir(), "other-keys"), auth.RefreshTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	foreign := decodeToken(t, tokenGETWith(fx.newGuard(other, auth.GuardOptions{}), basic("alice"),
		url.Values{"service": {testService}, "scope": {"repository:app:pull,push"}})).Token
	return []string{none, hs, foreign, enc(map[string]any{"alg": "ES256"}) + "." + enc(refresh) + ".AAAA"}
}

// FuzzTokenEndpoint: whatever query, form and Authorization header reach
// /oauth2/token, the handler never panics, answers 200 or a 4xx in the
// OCI error shape, and a token it issues for an input that carries none
// of alice's credentials grants nothing on her repository.
func FuzzTokenEndpoint(f *testing.F) {
	tf := newTokenFuzz(f)
	fx := tf.fx
	svc := url.QueryEscape(testService)
	for _, s := range tf.secrets[2:] {
		f.Add(true, "grant_type=refresh_token&refresh_token="+url.QueryEscape(s)+"&service="+svc, "")
		f.Add(false, "service="+svc+"&scope=repository:app:pull", "Basic "+base64.StdEncoding.EncodeToString([]byte(auth.RefreshTokenUsername+":"+s)))
		f.Add(false, "scope=repository:app:push", "Bearer "+s)
	}
	for _, s := range forged(f, fx) {
		f.Add(true, "grant_type=refresh_token&refresh_token="+url.QueryEscape(s), "")
		f.Add(false, "service="+svc+"&scope=repository:app:pull,push", "Basic "+base64.StdEncoding.EncodeToString([]byte(auth.RefreshTokenUsername+":"+s)))
	}
	f.Add(false, "service="+svc+"&scope=repository:app:pull,push", "Basic "+tf.secrets[1])
	f.Add(false, "scope=repository:app:pull,push+registry:catalog:*&scope=repository:x:*", "")
	f.Add(true, "grant_type=password&username=alice&password=wrong&scope=repository:app:push", "")
	f.Add(true, "grant_type=password&username=&password=", "Basic "+tf.secrets[1])
	f.Add(true, "grant_type=client_credentials", "")
	f.Add(true, "%zz=%zz&grant_type", "")
	f.Add(false, "service=other&scope=repository:app:pull", "Basic YWxpY2U6")
	f.Fuzz(func(t *testing.T, post bool, params, authorization string) {
		var r *http.Request
		if post {
			r = call{}.request(http.MethodPost, "/oauth2/token", strings.NewReader(params))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(http.MethodGet, "/oauth2/token", nil)
			r.URL.RawQuery = params
			r.RemoteAddr = "192.0.2.1:40000"
		}
		if authorization != "" {
			r.Header["Authorization"] = []string{authorization}
		}
		w := httptest.NewRecorder()
		fx.guard.TokenHandler().ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
			if code, _, _ := errorBody(t, w); code == "" {
				t.Fatalf("%d answer without a code: %s", w.Code, w.Body)
			}
			return
		default:
			t.Fatalf("token endpoint answered %d %s", w.Code, w.Body)
		}
		var tr tokenResponse
		if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil || tr.Token == "" {
			t.Fatalf("200 without a token: %s", w.Body)
		}
		if tf.holdsSecret(params, authorization) {
			return
		}
		if tr.RefreshToken != "" {
			t.Fatalf("a refresh token for an input without alice's credentials: %q %q", params, authorization)
		}
		for _, need := range []auth.Scope{pull("app"), push("app")} {
			if _, e := fx.authorize(call{bearer: tr.Token}, need); e == nil {
				t.Fatalf("input %q %q without alice's credentials got a token allowing %v", params, authorization, need)
			}
		}
	})
}

// FuzzExchange: any access_token sent to /oauth2/exchange (the federated
// OIDC path: unverified parse, credential lookup, verification against
// the issuer's keys) is refused without a panic; none of them is signed
// by the trusted issuer, so none gets a refresh token.
func FuzzExchange(f *testing.F) {
	tf := newTokenFuzz(f)
	fx := tf.fx
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	trusted := map[string]any{"iss": "http://127.0.0.1:1", "sub": "repo:app", "aud": "moat", "exp": 4102444800}
	for _, alg := range []string{"RS256", "ES256", "EdDSA", "none", "HS256", "PS256"} {
		f.Add(enc(map[string]any{"alg": alg, "kid": "k"}) + "." + enc(trusted) + ".c2ln")
	}
	f.Add(enc(map[string]any{"alg": "RS256"}) + "." + enc(map[string]any{"iss": "http://127.0.0.1:1", "sub": "repo:app", "aud": []string{"x", "moat"}}) + ".")
	for _, s := range append(forged(f, fx), tf.secrets[2:]...) {
		f.Add(s)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("....")
	f.Fuzz(func(t *testing.T, token string) {
		form := url.Values{"grant_type": {"access_token"}, "access_token": {token}, "service": {testService}}
		r := call{}.request(http.MethodPost, "/oauth2/exchange", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		fx.guard.ExchangeHandler().ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			t.Fatalf("exchange of %q answered %s", token, w.Body)
		}
		if w.Code >= 500 {
			t.Fatalf("exchange of %q answered %d %s", token, w.Code, w.Body)
		}
		if code, _, _ := errorBody(t, w); code == "" {
			t.Fatalf("%d answer without a code: %s", w.Code, w.Body)
		}
	})
}

// FuzzOIDCKeys: whatever JWKS an issuer serves, verifying a federated
// token against it never panics, and succeeds only when the set holds
// the key that signed the token.
func FuzzOIDCKeys(f *testing.F) {
	tf := newTokenFuzz(f)
	fx := tf.fx
	var jwks atomic.Value
	jwks.Store([]byte(`{"keys":[]}`))
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, issuer, issuer+"/jwks")
		case "/jwks":
			_, _ = w.Write(jwks.Load().([]byte))
		default:
			http.NotFound(w, r)
		}
	}))
	f.Cleanup(srv.Close)
	issuer = srv.URL
	_, _, err := fx.dir.PutFederatedCredential(ctx, "alice", auth.FederatedCredential{
		Name: "fuzz", Issuer: issuer, Subject: "repo:app", Audiences: []string{"moat"},
	}, auth.LevelOwner)
	fx.must(err)

	claims := jwt.RegisteredClaims{Issuer: issuer, Subject: "repo:app", Audience: jwt.ClaimStrings{"moat"},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
	b64 := base64.RawURLEncoding.EncodeToString
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	fx.must(err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fx.must(err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	fx.must(err)
	ecPoint, err := ecKey.PublicKey.Bytes()
	fx.must(err)
	type signed struct {
		token string
		proof string // what a JWKS must hold to verify it
	}
	var tokens []signed
	for _, s := range []struct {
		method jwt.SigningMethod
		kid    string
		key    any
		jwk    string
		proof  string
	}{
		{jwt.SigningMethodRS256, "rsa", rsaKey, `{"kty":"RSA","kid":"rsa","n":"` + b64(rsaKey.N.Bytes()) + `","e":"AQAB"}`, b64(rsaKey.N.Bytes())},
		{jwt.SigningMethodES256, "ec", ecKey, `{"kty":"EC","kid":"ec","crv":"P-256","x":"` + b64(ecPoint[1:33]) + `","y":"` + b64(ecPoint[33:]) + `"}`, b64(ecPoint[1:33])},
		{jwt.SigningMethodEdDSA, "ed", edKey, `{"kty":"OKP","kid":"ed","crv":"Ed25519","x":"` + b64(edPub) + `"}`, b64(edPub)},
	} {
		tok := jwt.NewWithClaims(s.method, claims)
		tok.Header["kid"] = s.kid
		raw, err := tok.SignedString(s.key)
		fx.must(err)
		tokens = append(tokens, signed{raw, s.proof})
		f.Add(uint8(len(tokens)-1), []byte(`{"keys":[`+s.jwk+`]}`))
		f.Add(uint8(len(tokens)-1), []byte(`{"keys":[`+strings.Replace(s.jwk, `"kid":"`, `"kid":"x`, 1)+`]}`))
	}
	even := make([]byte, 256)
	even[0], even[255] = 0xc0, 0x02
	f.Add(uint8(0), []byte(`{"keys":[{"kty":"RSA","kid":"rsa","n":"`+b64(even)+`","e":"AQAB"}]}`))
	f.Add(uint8(0), []byte(`{"keys":[{"kty":"RSA","kid":"rsa","n":"`+b64(rsaKey.N.Bytes())+`","e":"AAAAAA"}]}`))
	f.Add(uint8(0), []byte(`{"keys":[{"kty":"RSA","kid":"rsa","n":"`+b64(make([]byte, 256))+`","e":"AQAB"}]}`))
	f.Add(uint8(1), []byte(`{"keys":[{"kty":"EC","kid":"ec","crv":"P-256","x":"`+b64(make([]byte, 32))+`","y":"`+b64(make([]byte, 32))+`"}]}`))
	f.Add(uint8(1), []byte(`{"keys":[{"kty":"EC","kid":"ec","crv":"P-384","x":"`+b64(ecPoint[1:33])+`","y":"`+b64(ecPoint[33:])+`"}]}`))
	f.Add(uint8(2), []byte(`{"keys":[{"kty":"OKP","kid":"ed","crv":"Ed25519","x":""}],"extra":[`+strings.Repeat("1,", 1000)+`1]}`))
	f.Add(uint8(2), []byte(`{"keys":null}`))
	f.Add(uint8(2), []byte(`not json`))
	f.Fuzz(func(t *testing.T, which uint8, set []byte) {
		tok := tokens[int(which)%len(tokens)]
		jwks.Store(set)
		g := fx.newGuard(fx.keys, auth.GuardOptions{}) // a cold key cache
		form := url.Values{"grant_type": {"access_token"}, "access_token": {tok.token}, "service": {testService}}
		r := call{}.request(http.MethodPost, "/oauth2/exchange", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		g.ExchangeHandler().ServeHTTP(w, r)
		switch {
		case w.Code == http.StatusOK && !bytes.Contains(set, []byte(tok.proof)):
			t.Fatalf("a token verified against a JWKS without its key: %s", set)
		case w.Code >= 500:
			t.Fatalf("exchange answered %d %s", w.Code, w.Body)
		}
	})
}
