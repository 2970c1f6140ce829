package main

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		name, in, scheme string
		params           map[string]string
	}{
		{"bearer with a scope list", `Bearer realm="https://r.example/token",service="r.example",scope="repository:a/b:pull,push"`,
			"Bearer", map[string]string{"realm": "https://r.example/token", "service": "r.example", "scope": "repository:a/b:pull,push"}},
		{"spaces after commas and an error", `Bearer realm="http://127.0.0.1:5000/oauth2/token", service="moat", error="invalid_token"`,
			"Bearer", map[string]string{"realm": "http://127.0.0.1:5000/oauth2/token", "service": "moat", "error": "invalid_token"}},
		{"basic", `Basic realm="moat admin"`, "Basic", map[string]string{"realm": "moat admin"}},
		{"unquoted value and an escaped quote", `Bearer realm=https://x/token,service="a\"b"`,
			"Bearer", map[string]string{"realm": "https://x/token", "service": `a"b`}},
		{"scheme only", "Basic", "Basic", map[string]string{}},
		{"keys are case-insensitive", `Bearer Realm="r"`, "Bearer", map[string]string{"realm": "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme, params := ParseChallenge(tt.in)
			if scheme != tt.scheme || !maps.Equal(params, tt.params) {
				t.Errorf("ParseChallenge(%q) = %q, %v; want %q, %v", tt.in, scheme, params, tt.scheme, tt.params)
			}
		})
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct{ in, want string }{
		{`</v2/a/tags/list?n=100&last=t000099>; rel="next"`, "/v2/a/tags/list?n=100&last=t000099"},
		{`<https://r/v2/a/tags/list?n=2&last=b>;rel="next"`, "https://r/v2/a/tags/list?n=2&last=b"},
		{`</x>; rel="prev", </y>; rel="next"`, "/y"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := nextLink(tt.in); got != tt.want {
			t.Errorf("nextLink(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// tokenRegistry is a registry that wants a bearer token per scope, from a
// token endpoint that wants Basic credentials.
type tokenRegistry struct {
	user, pass string
	fetches    atomic.Int64
	mu         sync.Mutex
	scopes     []string // scopes asked of the token endpoint
	generation atomic.Int64
}

func (tr *tokenRegistry) token(scope string) string {
	return "tok-" + scope + "-" + strings.Repeat("x", int(tr.generation.Load()))
}

func (tr *tokenRegistry) handler(srvURL *string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != tr.user || p != tr.pass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			scope := r.URL.Query().Get("scope")
			if r.URL.Query().Get("service") != "bench-test" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			tr.fetches.Add(1)
			tr.mu.Lock()
			tr.scopes = append(tr.scopes, scope)
			tr.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token":"` + tr.token(scope) + `","expires_in":300}`))
			return
		}
		repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
		scope := "repository:" + repo + ":pull"
		if r.Header.Get("Authorization") != "Bearer "+tr.token(scope) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+*srvURL+`/token",service="bench-test",scope="`+scope+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:abc")
		w.WriteHeader(http.StatusOK)
	})
}

func TestTokenFlow(t *testing.T) {
	tr := &tokenRegistry{user: "alice", pass: "s3cret"}
	var srvURL string
	srv := httptest.NewServer(tr.handler(&srvURL))
	defer srv.Close()
	srvURL = srv.URL
	ctx := context.Background()

	c, err := NewClient(srv.URL, 8, "alice", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("fetches one token per scope and reuses it", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 8 {
			wg.Go(func() {
				for range 8 {
					errs <- c.HeadManifest(ctx, "a/b", "latest", "sha256:abc")
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := tr.fetches.Load(); n != 1 {
			t.Errorf("%d token fetches for 64 requests of one scope, want 1", n)
		}
		if err := c.HeadManifest(ctx, "c", "latest", "sha256:abc"); err != nil {
			t.Fatal(err)
		}
		if n := tr.fetches.Load(); n != 2 {
			t.Errorf("%d token fetches for two scopes, want 2", n)
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if want := []string{"repository:a/b:pull", "repository:c:pull"}; strings.Join(tr.scopes, " ") != strings.Join(want, " ") {
			t.Errorf("scopes asked: %v, want %v", tr.scopes, want)
		}
	})
	t.Run("a rejected token is fetched again", func(t *testing.T) {
		before := tr.fetches.Load()
		tr.generation.Add(1) // every token issued so far is now invalid
		if err := c.HeadManifest(ctx, "a/b", "latest", "sha256:abc"); err != nil {
			t.Fatal(err)
		}
		if n := tr.fetches.Load() - before; n != 1 {
			t.Errorf("%d fetches after the token went stale, want 1", n)
		}
	})
	t.Run("wrong password fails", func(t *testing.T) {
		bad, err := NewClient(srv.URL, 1, "alice", "wrong")
		if err != nil {
			t.Fatal(err)
		}
		err = bad.HeadManifest(ctx, "a/b", "latest", "sha256:abc")
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
			t.Errorf("HeadManifest with a wrong password: %v, want the token endpoint's 401", err)
		}
	})
}

func TestBasicChallenge(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "bob" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		seen.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ctx := context.Background()

	c, err := NewClient(srv.URL, 1, "bob", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if seen.Load() != 3 {
		t.Errorf("%d authenticated requests, want 3", seen.Load())
	}
	anon, err := NewClient(srv.URL, 1, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Ping(ctx); err == nil || !strings.Contains(err.Error(), "--username") {
		t.Errorf("Ping without credentials: %v, want a hint to pass --username", err)
	}
}
