package auth_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/moat-registry/moat/auth"
)

// TestRefreshTokenRevocation: a refresh token dies with the credential it
// was minted from — an identity's secret, a token's password — and not
// with another one; until then it authenticates on /v2, at the token
// endpoint and on the admin API.
func TestRefreshTokenRevocation(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "Owner", "/")
	f.token("ci", "repositories/app/content/read")

	refreshOf := func(user, pass string) string {
		t.Helper()
		tr := decodeToken(t, f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}, "service": {testService}}))
		if tr.RefreshToken == "" {
			t.Fatalf("no refresh token for %s", user)
		}
		return tr.RefreshToken
	}
	works := func(refresh string) (v2, grant, admin bool) {
		t.Helper()
		c := call{user: auth.RefreshTokenUsername, pass: refresh}
		_, e := f.authorize(c, pull("app"))
		w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {testService}})
		_, err := f.guard.AuthenticateAdmin(c.request(http.MethodGet, "/admin/v1/registry", nil))
		return e == nil, w.Code == http.StatusOK, err == nil
	}
	check := func(what, refresh string, want bool) {
		t.Helper()
		v2, grant, admin := works(refresh)
		if v2 != want || grant != want || admin != want {
			t.Errorf("%s: /v2 %v, grant_type=refresh_token %v, admin %v; want %v", what, v2, grant, admin, want)
		}
	}

	alice := refreshOf("alice", password("alice"))
	check("alice's refresh token", alice, true)
	first := f.dir.Snapshot()
	id, ok := first.Identity("alice")
	if !ok || len(id.Secrets) != 1 {
		t.Fatalf("alice: %+v", id)
	}
	// A second secret (a rotation) leaves the token alone.
	second, err := f.dir.AddSecret(ctx, "alice", auth.SecretOptions{CallerLevel: auth.LevelOwner})
	f.must(err)
	check("after adding a second secret", alice, true)
	f.must(f.dir.DeleteSecret(ctx, "alice", id.Secrets[0].ID))
	check("after deleting the secret it was minted from", alice, false)
	check("a refresh token from the second secret", refreshOf("alice", second.Value), true)

	ci := refreshOf("ci", password("ci"))
	v2, _, _ := works(ci)
	if !v2 {
		t.Fatal("ci's refresh token does not pull app")
	}
	f.must(f.dir.SetTokenPasswordHashForTest(ctx, "ci", "password1", cheapHash(t, "regenerated"), nil))
	if v2, grant, _ := works(ci); v2 || grant {
		t.Errorf("ci's refresh token after password1 was regenerated: /v2 %v, grant %v", v2, grant)
	}
}
