package api_test

import (
	"net/http"
	"testing"
)

func TestRoleAssignments(t *testing.T) {
	e := start(t)
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/bob", status: http.StatusCreated})
	bobID := str(e.get(t, "identities/bob"), "principalId")
	e.run(t, []call{
		{name: "by name keeps the principalId", as: admin, method: http.MethodPut, path: "role-assignments/bob-push",
			body: `{"principal":"bob","role":"AcrPush","scope":"repositories/app/*"}`, status: http.StatusCreated,
			check: func(t *testing.T, r *result) {
				o := r.object(t)
				if o["principalId"] != bobID || o["principal"] != "bob" || o["role"] != "Push" || o["scope"] != "repositories/app/*" {
					t.Errorf("got %s, want bob's principalId %s and role Push", r.body, bobID)
				}
			}},
		{name: "by principalId", as: admin, method: http.MethodPut, path: "role-assignments/bob-reader",
			body: `{"principal":"` + bobID + `","role":"reader"}`, status: http.StatusCreated,
			badRequest: true, // the document lists the canonical spellings; the server matches case-insensitively
			check: func(t *testing.T, r *result) {
				o := r.object(t)
				if o["principalId"] != bobID || o["principal"] != "bob" || o["role"] != "Reader" || o["scope"] != "/" {
					t.Errorf("got %s", r.body)
				}
			}},
		{name: "principalId field", as: admin, method: http.MethodPut, path: "role-assignments/bob-sign",
			body: `{"principalId":"` + bobID + `","role":"AcrImageSigner","scope":"repositories/app"}`, status: http.StatusCreated,
			check: field("principal", "bob")},
		{name: "principal and another's principalId", as: admin, method: http.MethodPut, path: "role-assignments/x",
			body:   `{"principal":"bob","principalId":"00000000-0000-4000-8000-000000000000","role":"Pull"}`,
			status: http.StatusBadRequest, check: apiError("INVALID", "principalId")},
		{name: "id mismatch", as: admin, method: http.MethodPut, path: "role-assignments/x",
			body: `{"id":"y","principal":"bob","role":"Pull"}`, status: http.StatusBadRequest, check: apiError("INVALID", "id")},
		{as: admin, method: http.MethodPost, path: "policy/evaluate", body: `{"clientIP":"192.0.2.1","principal":"bob","repository":"app/web","action":"push"}`,
			status: http.StatusOK, check: decision(true, "", "")},
	})

	// A deleted and re-created identity does not inherit bob's roles.
	e.do(t, call{as: admin, method: http.MethodDelete, path: "identities/bob", status: http.StatusNoContent})
	e.do(t, call{as: admin, method: http.MethodGet, path: "role-assignments/bob-push", status: http.StatusNotFound})
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/bob", status: http.StatusCreated})
	if id := str(e.get(t, "identities/bob"), "principalId"); id == bobID || id == "" {
		t.Errorf("the re-created identity has principalId %q (the old one was %s)", id, bobID)
	}
	e.run(t, []call{
		{name: "no roles", as: admin, method: http.MethodGet, path: query("role-assignments", "principal", "bob"), status: http.StatusOK,
			check: listed("id")},
		{name: "old principalId", as: admin, method: http.MethodGet, path: query("role-assignments", "principal", bobID), status: http.StatusOK,
			check: listed("id")},
		{name: "re-created bob may not push", as: admin, method: http.MethodPost, path: "policy/evaluate",
			body: `{"clientIP":"192.0.2.1","principal":"bob","repository":"app/web","action":"push"}`, status: http.StatusOK,
			check: decision(false, "authz", "NoRole")},
		{name: "assigning the old principalId", as: admin, method: http.MethodPut, path: "role-assignments/stale",
			body: `{"principal":"` + bobID + `","role":"Pull"}`, status: http.StatusBadRequest, check: apiError("INVALID", "principal")},
	})
}

// TestLevels checks what Reader, Contributor and Owner may do.
func TestLevels(t *testing.T) {
	e := start(t)
	reader := e.identityWithRole(t, "reader", "Reader")
	contributor := e.identityWithRole(t, "contrib", "Contributor")
	puller := e.identityWithRole(t, "puller", "AcrPull")
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/ci", status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "private-endpoints/existing", body: `{"listen":"127.0.0.1:0"}`,
		status: http.StatusCreated})
	evaluate := `{"clientIP":"192.0.2.1","principal":"ci","repository":"app","action":"pull"}`
	forbidden := func(as cred, method, path, body string) call {
		return call{name: method + " " + path, as: as, method: method, path: path, body: nilIfEmpty(body), status: http.StatusForbidden, check: denied}
	}
	var calls []call
	// A data-plane role gives no admin access.
	calls = append(calls, forbidden(puller, http.MethodGet, "registry", ""))
	calls = append(calls, forbidden(puller, http.MethodPost, "policy/evaluate", evaluate))
	// Reader reads and asks what-if questions, and changes nothing.
	for _, p := range []string{"registry", "identities", "identities/ci", "role-assignments", "scope-maps", "tokens",
		"private-endpoints", "trusted-services", "services", "audit"} {
		calls = append(calls, call{name: "Reader GET " + p, as: reader, method: http.MethodGet, path: p, status: http.StatusOK})
	}
	calls = append(calls,
		call{name: "Reader evaluates", as: reader, method: http.MethodPost, path: "policy/evaluate", body: evaluate, status: http.StatusOK},
		forbidden(reader, http.MethodPatch, "registry", `{"properties":{"anonymousPullEnabled":true}}`),
		forbidden(reader, http.MethodPut, "identities/new", `{}`),
		forbidden(reader, http.MethodDelete, "identities/ci", ""),
		forbidden(reader, http.MethodPost, "identities/ci/secrets", ""),
		forbidden(reader, http.MethodPut, "scope-maps/s", `{"actions":["repositories/app/content/read"]}`),
		forbidden(reader, http.MethodPut, "tokens/t", `{"scopeMap":"s"}`),
		forbidden(reader, http.MethodPut, "services/s", `{"type":"tasks"}`),
		forbidden(reader, http.MethodPut, "private-endpoints/existing", `{"description":"x"}`),
		forbidden(reader, http.MethodPost, "private-endpoints/existing/reject", ""),
		forbidden(reader, http.MethodPut, "role-assignments/r", `{"principal":"ci","role":"Pull"}`),
		forbidden(reader, http.MethodPost, "keys/rotate", ""),
	)
	// Contributor changes settings, but not role assignments, not the
	// creation of a private endpoint, not the signing keys.
	calls = append(calls,
		call{name: "Contributor PATCH registry", as: contributor, method: http.MethodPatch, path: "registry",
			body: `{"properties":{"anonymousPullEnabled":true}}`, status: http.StatusOK},
		call{name: "Contributor PUT identity", as: contributor, method: http.MethodPut, path: "identities/new", status: http.StatusCreated},
		call{name: "Contributor PUT scope map", as: contributor, method: http.MethodPut, path: "scope-maps/s",
			body: `{"actions":["repositories/app/content/read"]}`, status: http.StatusCreated},
		call{name: "Contributor updates a private endpoint", as: contributor, method: http.MethodPut, path: "private-endpoints/existing",
			body: `{"description":"x"}`, status: http.StatusOK},
		call{name: "Contributor rejects a private endpoint", as: contributor, method: http.MethodPost, path: "private-endpoints/existing/reject",
			status: http.StatusOK},
		call{name: "Contributor GET role assignments", as: contributor, method: http.MethodGet, path: "role-assignments", status: http.StatusOK},
		forbidden(contributor, http.MethodPut, "role-assignments/r", `{"principal":"ci","role":"Pull"}`),
		forbidden(contributor, http.MethodDelete, "role-assignments/contrib-contributor", ""),
		forbidden(contributor, http.MethodDelete, "role-assignments/bootstrap-admin-owner", ""),
		forbidden(contributor, http.MethodPut, "private-endpoints/new", `{"listen":"127.0.0.1:0"}`),
		forbidden(contributor, http.MethodPost, "keys/rotate", ""),
		call{name: "Owner creates a private endpoint", as: admin, method: http.MethodPut, path: "private-endpoints/new",
			body: `{"listen":"127.0.0.1:0"}`, status: http.StatusCreated},
		call{name: "Owner assigns a role", as: admin, method: http.MethodPut, path: "role-assignments/r",
			body: `{"principal":"ci","role":"Pull"}`, status: http.StatusCreated},
	)
	e.run(t, calls)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
