package auth_test

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/moat-registry/moat/auth"
)

// FuzzParseScope: a parsed scope renders to a string that parses back to
// the same resource.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:app:pull", "repository:a/b:pull,push", "repository:app:*", "registry:catalog:*",
		"repository:localhost:5000/app:pull", "repository::pull", "repository:App:pull", "registry:x:*", ":::", "repository:app:pull,,fly"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, ok := auth.ParseScope(s)
		if !ok {
			return
		}
		back, ok := auth.ParseScope(sc.String())
		if !ok || back.Type != sc.Type || back.Name != sc.Name {
			t.Fatalf("ParseScope(%q) = %+v; its String %q parses to %+v, %v", s, sc, sc.String(), back, ok)
		}
		if sc.Type == auth.TypeRepository && back.Actions != sc.Actions {
			t.Fatalf("ParseScope(%q) = %+v; round trip %+v", s, sc, back)
		}
	})
}

// FuzzAuthorizationHeader: whatever the Authorization header holds, the
// guard never panics, answers 401 or 403 unless the header carries the
// real credentials, and never lets an unknown caller push.
func FuzzAuthorizationHeader(f *testing.F) {
	fx := newFixture(f, fixtureOptions{})
	fx.user("alice", "AcrPull", "repositories/app")
	good := map[string]bool{
		"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+password("alice"))): true,
	}
	tok := fx.accessToken(basic("alice"), "repository:app:pull")
	good["Bearer "+tok] = true
	for h := range good {
		f.Add(h)
	}
	f.Add("")
	f.Add("Basic")
	f.Add("Basic YWxpY2U6")
	f.Add("Bearer " + tok[:len(tok)-3])
	f.Add("bearer  " + tok)
	f.Add("Digest username=alice")
	f.Fuzz(func(t *testing.T, h string) {
		r := call{}.request(http.MethodGet, "/v2/app/manifests/latest", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		for _, need := range [][]auth.Scope{{pull("app")}, {push("app")}} {
			grant, err := fx.guard.Authorize(r, need)
			if err == nil {
				if grant == nil || need[0].Actions.Has(auth.Push) || grant.Allows("app", auth.Push) {
					t.Fatalf("header %q: %v granted %v", h, need, grant)
				}
				continue
			}
			e := asErr(t, err)
			if e.Code.Status != 401 && e.Code.Status != 403 {
				t.Fatalf("header %q: %d %s", h, e.Code.Status, e.Code.Value)
			}
		}
	})
}
