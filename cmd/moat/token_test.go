package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/moat-registry/moat/auth"
)

func TestScopeMapsAndTokens(t *testing.T) {
	ts := sharedServer(t)
	r := ts.admin(t, "scope-map", "create", "app-rw", "--repository", "app", "--repository", "lib", "--actions", "content/read,content/write", "-o", "json")
	sm := decodeOut[auth.ScopeMap](t, r)
	want := "repositories/app/content/read repositories/app/content/write repositories/lib/content/read repositories/lib/content/write"
	if strings.Join(sm.Actions, " ") != want {
		t.Errorf("scope map actions %v, want %s", sm.Actions, want)
	}
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/scope-maps/app-rw", nil))
	ts.adminFails(t, "scope map app-rw already exists", "scope-map", "create", "app-rw", "--action", "repositories/x/content/read")
	ts.adminFails(t, "--actions needs --repository", "scope-map", "create", "bad", "--actions", "content/read")
	ts.adminFails(t, `--actions "content/steal"`, "scope-map", "create", "bad", "--repository", "x", "--actions", "content/steal")
	ts.adminFails(t, "400 INVALID: actions[0]", "scope-map", "create", "bad", "--action", "repositories/x/content/steal")

	r = ts.admin(t, "scope-map", "update", "app-rw", "--remove-repository", "lib", "--action", "repositories/app/metadata/read", "--description", "app only", "-o", "json")
	sm = decodeOut[auth.ScopeMap](t, r)
	if strings.Join(sm.Actions, " ") != "repositories/app/content/read repositories/app/content/write repositories/app/metadata/read" || sm.Description != "app only" {
		t.Errorf("after update: %+v", sm)
	}
	if !hasRow(ts.admin(t, "scope-map", "show", "app-rw").stdout, "app-rw") {
		t.Error("scope-map show lacks app-rw")
	}
	sameJSON(t, []byte(ts.admin(t, "scope-map", "list", "-o", "json").stdout), ts.api(t, http.MethodGet, "/scope-maps", nil))

	// token create prints two passwords, both of which log in.
	r = ts.admin(t, "token", "create", "ci-push", "--scope-map", "app-rw", "--expires-in", "30d", "-o", "json")
	type newToken struct {
		Name      string                  `json:"name"`
		ScopeMap  string                  `json:"scopeMap"`
		Status    string                  `json:"status"`
		Passwords []auth.NewTokenPassword `json:"passwords"`
	}
	tok := decodeOut[newToken](t, r)
	if tok.Name != "ci-push" || tok.ScopeMap != "app-rw" || tok.Status != "enabled" || len(tok.Passwords) != 2 ||
		tok.Passwords[0].Name != "password1" || tok.Passwords[1].Name != "password2" || tok.Passwords[0].ExpiresAt == nil {
		t.Fatalf("token create -o json: %s", r.stdout)
	}
	for _, pw := range tok.Passwords {
		if got := ts.basicStatus(t, "ci-push", pw.Value); got != http.StatusOK {
			t.Errorf("GET /v2/ with %s: %d", pw.Name, got)
		}
	}
	ts.adminFails(t, "token ci-push already exists", "token", "create", "ci-push", "--scope-map", "app-rw")
	ts.adminFails(t, `400 INVALID: scopeMap: no scope map named "nope"`, "token", "create", "t2", "--scope-map", "nope")

	r = ts.admin(t, "token", "create", "ro", "--scope-map", "app-rw")
	var values []string
	for _, row := range tableRows(r.stdout) {
		if len(row) == 3 && strings.HasPrefix(row[0], "password") {
			values = append(values, row[1])
		}
	}
	if len(values) != 2 || !strings.Contains(r.stderr, "cannot be shown again") {
		t.Fatalf("token create table:\n%s", r.stdout)
	}
	if got := ts.basicStatus(t, "ro", values[1]); got != http.StatusOK {
		t.Errorf("GET /v2/ as ro with the table's password2: %d", got)
	}

	sameJSON(t, []byte(ts.admin(t, "token", "show", "ci-push", "-o", "json").stdout), ts.api(t, http.MethodGet, "/tokens/ci-push", nil))
	r = ts.admin(t, "token", "list")
	if !hasRow(r.stdout, "ci-push", "app-rw", "enabled") || !hasRow(r.stdout, "ro", "app-rw", "enabled", "password1,", "password2") {
		t.Errorf("token list:\n%s", r.stdout)
	}

	// Disabled: the passwords stop working; the scope map is kept.
	r = ts.admin(t, "token", "update", "ci-push", "--status", "disabled", "-o", "json")
	if got := decodeOut[auth.Token](t, r); got.Status != "disabled" || got.ScopeMap != "app-rw" {
		t.Errorf("after update: %+v", got)
	}
	if got := ts.basicStatus(t, "ci-push", tok.Passwords[0].Value); got == http.StatusOK {
		t.Error("a disabled token logged in")
	}
	ts.admin(t, "token", "update", "ci-push", "--status", "enabled")

	// A new password2 replaces the old one.
	r = ts.admin(t, "token", "password", "ci-push", "--name", "password2", "-o", "json")
	pw := decodeOut[auth.NewTokenPassword](t, r)
	if pw.Name != "password2" || pw.Value == "" {
		t.Fatalf("token password: %s", r.stdout)
	}
	if got := ts.basicStatus(t, "ci-push", pw.Value); got != http.StatusOK {
		t.Errorf("the new password2: %d", got)
	}

	ts.adminFails(t, "409 CONFLICT", "scope-map", "delete", "app-rw")
	ts.admin(t, "token", "delete", "ci-push")
	ts.admin(t, "token", "delete", "ro")
	ts.adminFails(t, `404 NOT_FOUND: token "ci-push" not found`, "token", "show", "ci-push")
	ts.admin(t, "scope-map", "delete", "app-rw")
	if out := ts.admin(t, "scope-map", "list").stdout; hasRow(out, "app-rw") {
		t.Errorf("app-rw still listed after delete:\n%s", out)
	}
}
