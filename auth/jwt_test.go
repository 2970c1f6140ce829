package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/moat-registry/moat/auth"
)

// signClaims signs claims with key under kid (ES256).
func signClaims(t testing.TB, claims jwt.MapClaims, kid string, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawJWT assembles a token from a header, claims and signature bytes.
func rawJWT(header map[string]any, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

// TestJWTAttacks feeds forged and misused tokens to the data plane and the
// refresh grant: each gets 401 and grants nothing.
func TestJWTAttacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPull", "repositories/app")
	f.user("root", "Owner", "/")
	valid := f.accessToken(basic("alice"), "repository:app:pull")
	if _, e := f.authorize(call{bearer: valid}, pull("app")); e != nil {
		t.Fatalf("the valid token: %v", e)
	}
	base := claimsOf(t, valid)
	kid, key := f.keys.SigningKeyForTest()
	now := time.Now()

	// with returns the valid token's claims with changes (nil deletes).
	with := func(changes map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range base {
			c[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	widened := []any{map[string]any{"type": "repository", "name": "app", "actions": []string{"pull", "push", "delete"}},
		map[string]any{"type": "repository", "name": "other", "actions": []string{"*"}}}
	rootClaims := func() map[string]any {
		snap := f.dir.Snapshot()
		p, _ := snap.PrincipalByName("root")
		return map[string]any{"sub": p.ID, "name": "root", "access": widened}
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.must(err)
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	f.must(err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	parts := strings.Split(valid, ".")
	tampered := func(changes map[string]any) string {
		c, _ := json.Marshal(with(changes))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + parts[2]
	}
	hs256 := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, with(rootClaims()))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(secret)
		f.must(err)
		return s
	}
	refresh := decodeToken(t, f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password("alice")}, "service": {testService}})).RefreshToken
	if refresh == "" {
		t.Fatal("no refresh token")
	}
	workload, err := f.guard.WorkloadToken("tasks", "nightly", testService)
	f.must(err)

	attacks := []struct {
		name string
		tok  string
	}{
		{"alg none", rawJWT(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, with(rootClaims()), nil)},
		{"alg none, signature kept", rawJWT(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, with(nil), []byte(parts[2]))},
		{"alg None (case)", rawJWT(map[string]any{"alg": "None", "typ": "JWT", "kid": kid}, with(nil), nil)},
		{"HS256 keyed with the public key PEM", hs256(pubPEM)},
		{"HS256 keyed with the public key DER", hs256(pubDER)},
		{"ES384 header", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodES384, with(nil))
			tok.Header["kid"] = kid
			k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			s, _ := tok.SignedString(k384)
			return s
		}()},
		{"another ES256 key with the same kid", signClaims(t, with(rootClaims()), kid, otherKey)},
		{"unknown kid", signClaims(t, with(nil), "no-such-key", key)},
		{"no kid", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, with(nil))
			s, _ := tok.SignedString(key)
			return s
		}()},
		{"expired", signClaims(t, with(map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-20 * time.Minute).Unix(), "nbf": now.Add(-20 * time.Minute).Unix()}), kid, key)},
		{"no exp", signClaims(t, with(map[string]any{"exp": nil}), kid, key)},
		{"not yet valid (nbf)", signClaims(t, with(map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}), kid, key)},
		{"issued in the future (iat)", signClaims(t, with(map[string]any{"iat": now.Add(5 * time.Minute).Unix()}), kid, key)},
		{"wrong audience", signClaims(t, with(map[string]any{"aud": []string{"other.registry"}}), kid, key)},
		{"no audience", signClaims(t, with(map[string]any{"aud": nil}), kid, key)},
		{"wrong issuer", signClaims(t, with(map[string]any{"iss": "someone-else"}), kid, key)},
		{"no issuer", signClaims(t, with(map[string]any{"iss": nil}), kid, key)},
		{"unknown principal kind", signClaims(t, with(map[string]any{"pk": "admin"}), kid, key)},
		{"anonymous with a subject", signClaims(t, with(map[string]any{"pk": nil}), kid, key)},
		{"tampered payload: access widened", tampered(map[string]any{"access": widened})},
		{"tampered payload: another principal", tampered(rootClaims())},
		{"signature stripped", parts[0] + "." + parts[1] + "."},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(f.accessToken(basic("alice"), "repository:app:pull"), ".")[2]},
		{"refresh token as access token", refresh},
		{"workload token as access token", workload},
		{"garbage", "not.a.jwt"},
		{"two parts", parts[0] + "." + parts[1]},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			for _, need := range [][]auth.Scope{{pull("app")}, {push("other")}, nil} {
				grant, e := f.authorize(call{bearer: a.tok}, need...)
				if grant != nil {
					t.Fatalf("%v: granted", need)
				}
				wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
				if p := challengeParams(t, e); p["error"] != "invalid_token" {
					t.Errorf("challenge %v, want error=invalid_token", p)
				}
			}
			// Evaluate agrees: nothing authenticates from the token.
			if a.tok == refresh {
				return // a refresh token is a valid refresh grant
			}
			w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.tok}, "service": {testService}, "scope": {"repository:app:pull"}})
			if w.Code != http.StatusUnauthorized {
				t.Errorf("refresh grant: %d %s, want 401", w.Code, w.Body)
			}
			// Nor as the password of the refresh-token username.
			if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: a.tok}, pull("app")); e == nil || e.Code.Status != http.StatusUnauthorized {
				t.Errorf("as a refresh-token password: %v, want 401", e)
			}
		})
	}

	t.Run("within leeway", func(t *testing.T) {
		tok := signClaims(t, with(map[string]any{"nbf": now.Add(10 * time.Second).Unix(), "iat": now.Add(10 * time.Second).Unix()}), kid, key)
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Errorf("a token 10 s early: %v (leeway is 30 s)", e)
		}
	})
	t.Run("re-signed by the real key", func(t *testing.T) {
		// Control: the forgeries fail for what they change, not for how
		// they were built.
		tok := signClaims(t, with(map[string]any{"jti": "another"}), kid, key)
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Errorf("%v", e)
		}
	})
	t.Run("access token as refresh grant", func(t *testing.T) {
		w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {valid}, "service": {testService}})
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%d %s, want 401", w.Code, w.Body)
		}
		if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: valid}, pull("app")); e == nil {
			t.Error("an access token works as the refresh-token password")
		}
	})
	t.Run("refresh token as password", func(t *testing.T) {
		if _, e := f.authorize(call{user: auth.RefreshTokenUsername, pass: refresh}, pull("app")); e != nil {
			t.Errorf("%v", e)
		}
	})
	t.Run("bearer at the token endpoint", func(t *testing.T) {
		w := f.tokenGET(call{bearer: valid}, url.Values{"scope": {"repository:app:pull"}})
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%d, want 401", w.Code)
		}
	})
}

// TestTokenCacheIsNotTrust: the verified-token cache remembers signatures
// only. Expiry, the audience, the principal and its roles are checked on
// every request.
func TestTokenCacheIsNotTrust(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	clk := &clock{now: time.Now()}
	f.guard.SetClockForTest(clk.Now)
	f.user("alice", "AcrPush", "repositories/app")
	f.token("ci", "repositories/app/content/read")

	t.Run("expiry", func(t *testing.T) {
		tok := f.accessToken(basic("alice"), "repository:app:pull")
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Fatal(e)
		}
		clk.advance(auth.AccessTokenTTL + time.Second)
		_, e := f.authorize(call{bearer: tok}, pull("app"))
		wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	})
	t.Run("audience", func(t *testing.T) {
		tok := f.accessToken(basic("alice"), "repository:app:pull")
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Fatal(e)
		}
		f.setService("renamed.test")
		defer f.setService(testService)
		_, e := f.authorize(call{bearer: tok}, pull("app"))
		wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	})
	t.Run("role removed", func(t *testing.T) {
		id := f.assign("alice", "AcrDelete", "repositories/app")
		tok := f.accessToken(basic("alice"), "repository:app:pull,delete")
		if _, e := f.authorize(call{bearer: tok}, del("app")); e != nil {
			t.Fatal(e)
		}
		f.must(f.dir.DeleteRoleAssignment(ctx, id))
		_, e := f.authorize(call{bearer: tok}, del("app"))
		wantError(t, e, http.StatusForbidden, "DENIED", "", "authz", "NoRole")
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Errorf("pull with the remaining role: %v", e)
		}
	})
	t.Run("identity disabled", func(t *testing.T) {
		f.user("bob", "AcrPull", "/")
		tok := f.accessToken(basic("bob"), "repository:app:pull")
		ref := decodeToken(t, f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {password("bob")}})).RefreshToken
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Fatal(e)
		}
		_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "bob", Kind: auth.KindUser, Enabled: false})
		f.must(err)
		for _, c := range []call{{bearer: tok}, basic("bob"), {user: auth.RefreshTokenUsername, pass: ref}} {
			_, e := f.authorize(c, pull("app"))
			wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
		}
		w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref}})
		if w.Code != http.StatusUnauthorized {
			t.Errorf("refresh grant of a disabled identity: %d", w.Code)
		}
	})
	t.Run("identity deleted and re-created", func(t *testing.T) {
		f.user("carol", "AcrPull", "/")
		tok := f.accessToken(basic("carol"), "repository:app:pull")
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Fatal(e)
		}
		f.must(f.dir.DeleteIdentity(ctx, "carol"))
		f.user("carol", "AcrPull", "/")
		_, e := f.authorize(call{bearer: tok}, pull("app"))
		wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	})
	t.Run("token disabled", func(t *testing.T) {
		tok := f.accessToken(basic("ci"), "repository:app:pull")
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Fatal(e)
		}
		_, _, err := f.dir.PutToken(ctx, auth.Token{Name: "ci", ScopeMap: "ci-map", Status: auth.TokenDisabled})
		f.must(err)
		_, e := f.authorize(call{bearer: tok}, pull("app"))
		wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	})
	t.Run("scope map narrowed", func(t *testing.T) {
		f.token("narrow", "repositories/app/content/read", "repositories/app/content/write")
		tok := f.accessToken(basic("narrow"), "repository:app:pull,push")
		if _, e := f.authorize(call{bearer: tok}, push("app")); e != nil {
			t.Fatal(e)
		}
		_, _, err := f.dir.PutScopeMap(ctx, auth.ScopeMap{Name: "narrow-map", Actions: []string{"repositories/app/content/read"}})
		f.must(err)
		_, e := f.authorize(call{bearer: tok}, push("app"))
		wantError(t, e, http.StatusForbidden, "DENIED", "", "authz", "NoRole")
	})
}

// TestInsufficientScope: a bearer token narrower than the caller's roles
// gets 401 insufficient_scope naming every scope the request needs; a
// request the roles would not allow gets 403.
func TestInsufficientScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPush", "repositories/app")
	f.assign("alice", "AcrPull", "repositories/base")
	pullTok := f.accessToken(basic("alice"), "repository:app:pull")
	pushTok := f.accessToken(basic("alice"), "repository:app:pull,push")

	tests := []struct {
		name      string
		tok       string
		need      []auth.Scope
		status    int
		wantScope string // the challenge's scope for a 401
	}{
		{"push with a pull token", pullTok, []auth.Scope{push("app")}, 401, "repository:app:pull,push"},
		{"pull on another repository the roles allow", pullTok, []auth.Scope{pull("base")}, 401, "repository:base:pull"},
		{"mount: source missing from the token", pushTok, []auth.Scope{push("app"), mountFrom("base")}, 401, "repository:app:pull,push repository:base:pull"},
		{"mount: both missing", pullTok, []auth.Scope{push("app"), mountFrom("base")}, 401, "repository:app:pull,push repository:base:pull"},
		{"mount: source the roles do not allow", pushTok, []auth.Scope{push("app"), mountFrom("secret")}, 0, ""},
		{"mount: source the roles do not allow, target short", pullTok, []auth.Scope{push("app"), mountFrom("secret")}, 401, "repository:app:pull,push"},
		{"delete the roles do not allow", pushTok, []auth.Scope{del("app")}, 403, ""},
		{"pull another repository the roles do not allow", pushTok, []auth.Scope{pull("secret")}, 403, ""},
		{"push with a push token", pushTok, []auth.Scope{push("app")}, 0, ""},
		{"tag list with a pull token", pullTok, []auth.Scope{tagList("app")}, 0, ""},
		{"catalog with a repository token", pullTok, []auth.Scope{auth.Catalog()}, 401, "registry:catalog:*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grant, e := f.authorize(call{bearer: tt.tok}, tt.need...)
			switch tt.status {
			case 0:
				if e != nil {
					t.Fatalf("%d %s", e.Code.Status, e.Code.Value)
				}
				if len(tt.need) > 1 && grant.Allows(tt.need[1].Name, auth.Pull) {
					t.Error("the grant allows pulling the mount source")
				}
			case 401:
				wantError(t, e, 401, "UNAUTHORIZED", "", "authz", "InsufficientScope")
				p := challengeParams(t, e)
				if p["error"] != "insufficient_scope" || p["scope"] != tt.wantScope {
					t.Errorf("challenge %v, want error=insufficient_scope scope=%q", p, tt.wantScope)
				}
				if p["realm"] != "http://registry.test:5000/oauth2/token" || p["service"] != testService {
					t.Errorf("challenge %v", p)
				}
			case 403:
				wantError(t, e, 403, "DENIED", "", "authz", "NoRole")
			}
			// The same request with Basic is decided by the roles alone.
			_, be := f.authorize(basic("alice"), tt.need...)
			if (be == nil) != (tt.status != 403) {
				t.Errorf("with Basic: %v", be)
			}
		})
	}
	// A token fetched for the challenge's scopes passes.
	tok := f.accessToken(basic("alice"), strings.Fields("repository:app:pull,push repository:base:pull")...)
	if _, e := f.authorize(call{bearer: tok}, push("app"), mountFrom("base")); e != nil {
		t.Errorf("after the wider token: %v", e)
	}
}

// TestKeyRotation: tokens signed by a retired key keep verifying until
// its retention passes; the JWKS lists every key still verifying.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPull", "/")
	oldKid, _ := f.keys.SigningKeyForTest()
	oldTok := f.accessToken(basic("alice"), "repository:app:pull")
	newKid, err := f.keys.Rotate()
	f.must(err)
	if newKid == oldKid {
		t.Fatal("Rotate kept the key id")
	}
	newTok := f.accessToken(basic("alice"), "repository:app:pull")
	for tok, kid := range map[string]string{oldTok: oldKid, newTok: newKid} {
		hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		var h map[string]any
		f.must(json.Unmarshal(hdr, &h))
		if h["kid"] != kid || h["alg"] != "ES256" {
			t.Errorf("header %v, want kid %s ES256", h, kid)
		}
		// A fresh guard (an empty cache) verifies both.
		if _, e := authorizeWith(f.newGuard(f.keys, auth.GuardOptions{}), call{bearer: tok}, pull("app")); e != nil {
			t.Errorf("token of key %s: %v", kid, e)
		}
	}
	if got := jwksKids(t, f.guard); !reflect.DeepEqual(got, []string{newKid, oldKid}) {
		t.Errorf("JWKS kids %v, want %v", got, []string{newKid, oldKid})
	}

	// Reopened within the retention: both keys stay.
	kept, err := auth.OpenKeyRing(f.keyDir, time.Hour)
	f.must(err)
	if got := jwksKids(t, f.newGuard(kept, auth.GuardOptions{})); len(got) != 2 {
		t.Errorf("within retention: JWKS kids %v", got)
	}
	// Reopened after it: the retired key is gone, its tokens fail.
	pruned, err := auth.OpenKeyRing(f.keyDir, time.Nanosecond)
	f.must(err)
	g := f.newGuard(pruned, auth.GuardOptions{})
	if got := jwksKids(t, g); !reflect.DeepEqual(got, []string{newKid}) {
		t.Errorf("after retention: JWKS kids %v, want %v", got, []string{newKid})
	}
	_, e := authorizeWith(g, call{bearer: oldTok}, pull("app"))
	wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	if _, e := authorizeWith(g, call{bearer: newTok}, pull("app")); e != nil {
		t.Errorf("new token after pruning: %v", e)
	}
	// A retired key never signs again.
	if kid, _ := pruned.SigningKeyForTest(); kid != newKid {
		t.Errorf("signing key %s, want %s", kid, newKid)
	}
}

func jwksKids(t testing.TB, g *auth.Guard) []string {
	t.Helper()
	w := httptest.NewRecorder()
	g.JWKSHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	var body struct {
		Keys []auth.JWK `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range body.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" || k.Use != "sig" || len(k.X) != 43 || len(k.Y) != 43 {
			t.Errorf("JWK %+v", k)
		}
		kids = append(kids, k.Kid)
	}
	return kids
}
