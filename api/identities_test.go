package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestIdentityLifecycle(t *testing.T) {
	e := start(t)
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/alice", body: `{"kind":"user"}`, status: http.StatusCreated})
	var sec struct {
		ID        string     `json:"id"`
		Value     string     `json:"value"`
		ExpiresAt *time.Time `json:"expiresAt"`
	}
	e.do(t, call{as: admin, method: http.MethodPost, path: "identities/alice/secrets", status: http.StatusCreated}).json(t, &sec)
	if sec.Value == "" || sec.ID == "" {
		t.Fatalf("secret %+v", sec)
	}
	if sec.ExpiresAt != nil {
		t.Errorf("a user's secret expires by default: %v", sec.ExpiresAt)
	}
	alice := cred{user: "alice", pass: sec.Value}

	// Shown once: the identity lists the secret's metadata, never its value.
	r := e.do(t, call{as: admin, method: http.MethodGet, path: "identities/alice", status: http.StatusOK})
	if strings.Contains(string(r.body), sec.Value) {
		t.Errorf("GET shows the secret: %s", r.body)
	}
	var id struct {
		Secrets []struct {
			ID string `json:"id"`
		} `json:"secrets"`
	}
	r.json(t, &id)
	if len(id.Secrets) != 1 || id.Secrets[0].ID != sec.ID {
		t.Errorf("secrets %+v, want one with id %s", id.Secrets, sec.ID)
	}

	// The name and the secret log in (Basic on /v2/). (A wrong secret
	// would cost a cost-11 bcrypt comparison; TestAdminAPI checks a wrong
	// password.)
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", alice); got != http.StatusOK {
		t.Errorf("GET /v2/ with the new secret: %d, want 200", got)
	}
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", cred{user: "alice"}); got != http.StatusUnauthorized {
		t.Errorf("GET /v2/ without the secret: %d, want 401", got)
	}

	// Disabled, it does not log in; enabled again, it does.
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/alice", body: `{"enabled":false}`, status: http.StatusOK,
		check: func(t *testing.T, r *result) {
			if r.object(t)["enabled"] != false {
				t.Errorf("enabled: %s", r.body)
			}
		}})
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", alice); got != http.StatusUnauthorized {
		t.Errorf("GET /v2/ as a disabled identity: %d, want 401", got)
	}
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/alice", status: http.StatusOK})
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", alice); got != http.StatusOK {
		t.Errorf("GET /v2/ enabled again: %d, want 200", got)
	}

	// A deleted secret no longer logs in.
	e.do(t, call{as: admin, method: http.MethodDelete, path: "identities/alice/secrets/" + sec.ID, status: http.StatusNoContent})
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", alice); got != http.StatusUnauthorized {
		t.Errorf("GET /v2/ with a deleted secret: %d, want 401", got)
	}
	e.do(t, call{as: admin, method: http.MethodDelete, path: "identities/alice", status: http.StatusNoContent})
	e.do(t, call{as: admin, method: http.MethodGet, path: "identities/alice", status: http.StatusNotFound})
}

func TestIdentityNames(t *testing.T) {
	e := start(t)
	e.run(t, []call{
		{name: "reserved tasks-", as: admin, method: http.MethodPut, path: "identities/tasks-x", status: http.StatusBadRequest,
			check: apiError("INVALID", "reserved")},
		{name: "reserved containerInstances-", as: admin, method: http.MethodPut, path: "identities/containerInstances-x",
			status: http.StatusBadRequest, check: apiError("INVALID", "reserved")},
		{name: "not reserved", as: admin, method: http.MethodPut, path: "identities/tasks", status: http.StatusCreated},
		{name: "too long", as: admin, method: http.MethodPut, path: "identities/" + strings.Repeat("a", 65),
			status: http.StatusBadRequest, badRequest: true},

		// Usernames are unique across identities and tokens.
		{as: admin, method: http.MethodPut, path: "identities/shared", status: http.StatusCreated},
		{as: admin, method: http.MethodPut, path: "scope-maps/read", body: `{"actions":["repositories/app/content/read"]}`,
			status: http.StatusCreated},
		{name: "token named like an identity", as: admin, method: http.MethodPut, path: "tokens/shared", body: `{"scopeMap":"read"}`,
			status: http.StatusConflict, check: apiError("CONFLICT", "shared")},
		{as: admin, method: http.MethodPut, path: "tokens/robot", body: `{"scopeMap":"read"}`, status: http.StatusCreated},
		{name: "identity named like a token", as: admin, method: http.MethodPut, path: "identities/robot",
			status: http.StatusConflict, check: apiError("CONFLICT", "robot")},
		{as: admin, method: http.MethodPut, path: "tokens/tasks-b", body: `{"scopeMap":"read"}`, status: http.StatusCreated},
		{name: "system-assigned identity named like a token", as: admin, method: http.MethodPut, path: "services/b",
			body: `{"type":"tasks","identity":{"type":"SystemAssigned"}}`, status: http.StatusConflict,
			check: apiError("CONFLICT", "tasks-b")},
	})
}

func TestIdentitySecrets(t *testing.T) {
	e := start(t)
	contributor := e.identityWithRole(t, "contrib", "Contributor")
	// Imported hashes follow the same lifetime rules as generated secrets
	// and cost no bcrypt work.
	secret := func(expiresIn string) map[string]any {
		b := map[string]any{"bcryptHash": cheapHash(t, "mi-password")}
		if expiresIn != "" {
			b["expiresIn"] = expiresIn
		}
		return b
	}
	e.run(t, []call{
		{as: admin, method: http.MethodPut, path: "identities/mi", body: `{"kind":"managedIdentity"}`, status: http.StatusCreated},
		{name: "managed identity 91d", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: secret("91d"),
			status: http.StatusBadRequest, check: apiError("INVALID", "expiresIn", "90 days")},
		{name: "managed identity default", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: secret(""),
			status: http.StatusCreated, check: expiresWithin(90 * 24 * time.Hour)},
		{name: "managed identity 90d", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: secret("90d"),
			status: http.StatusCreated, check: expiresWithin(90 * 24 * time.Hour)},
		{name: "managed identity 1h", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: secret("1h"),
			status: http.StatusCreated, check: expiresWithin(time.Hour)},
		{name: "overflowing days", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: `{"expiresIn":"2000000d"}`,
			status: http.StatusBadRequest, check: apiError("INVALID", "expiresIn")},
		{name: "negative days", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: `{"expiresIn":"-1d"}`,
			status: http.StatusBadRequest, badRequest: true, check: apiError("INVALID", "expiresIn")},
		{name: "not a bcrypt hash", as: admin, method: http.MethodPost, path: "identities/mi/secrets", body: `{"bcryptHash":"md5"}`,
			status: http.StatusBadRequest, badRequest: true},

		// Adding a credential to an identity that holds a role needs Owner.
		{as: admin, method: http.MethodPut, path: "identities/ci", status: http.StatusCreated},
		{name: "Contributor, no role yet", as: contributor, method: http.MethodPost, path: "identities/ci/secrets", status: http.StatusCreated},
		{name: "Contributor imports a hash", as: contributor, method: http.MethodPost, path: "identities/ci/secrets",
			body: `{"bcryptHash":"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}`, status: http.StatusForbidden, check: denied},
		{as: admin, method: http.MethodPut, path: "role-assignments/ci-push", body: `{"principal":"ci","role":"AcrPush"}`,
			status: http.StatusCreated},
		{name: "Contributor, with a role", as: contributor, method: http.MethodPost, path: "identities/ci/secrets",
			status: http.StatusForbidden, check: func(t *testing.T, r *result) {
				code, msg, _ := r.errorItem(t)
				if code != "DENIED" || !strings.Contains(msg, "Owner") {
					t.Errorf("%s %q", code, msg)
				}
			}},
		{name: "Owner, with a role", as: admin, method: http.MethodPost, path: "identities/ci/secrets", body: secret(""),
			status: http.StatusCreated},
		{name: "user default", as: admin, method: http.MethodPost, path: "identities/contrib/secrets", body: secret(""),
			status: http.StatusCreated, check: func(t *testing.T, r *result) {
				if _, ok := r.object(t)["expiresAt"]; ok {
					t.Errorf("a user's secret expires by default: %s", r.body)
				}
			}},

		// Nor may a Contributor change or delete an identity that holds a
		// role (deleting it deletes its role assignments).
		{name: "Contributor disables an Owner", as: contributor, method: http.MethodPut, path: "identities/admin",
			body: `{"enabled":false}`, status: http.StatusForbidden, check: denied},
		{name: "Contributor deletes an Owner", as: contributor, method: http.MethodDelete, path: "identities/admin",
			status: http.StatusForbidden, check: denied},
		{name: "Contributor deletes ci", as: contributor, method: http.MethodDelete, path: "identities/ci",
			status: http.StatusForbidden, check: denied},
		{name: "Contributor deletes mi (no role)", as: contributor, method: http.MethodDelete, path: "identities/mi",
			status: http.StatusNoContent},
	})
}

// expiresWithin checks that a new secret expires after about d.
func expiresWithin(d time.Duration) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		exp, err := time.Parse(time.RFC3339, str(r.object(t), "expiresAt"))
		if err != nil {
			t.Fatalf("expiresAt: %v in %s", err, r.body)
		}
		if left := time.Until(exp); left > d || left < d-time.Minute {
			t.Errorf("expires in %v, want %v", left, d)
		}
	}
}

// TestIdentityCredentialDeletes: deleting a secret or a federated
// credential of an identity that holds a role needs Owner, as adding one
// does; without a role a Contributor may.
func TestIdentityCredentialDeletes(t *testing.T) {
	e := start(t)
	contributor := e.identityWithRole(t, "contrib", "Contributor")
	fc := map[string]any{"issuer": "https://token.actions.githubusercontent.com", "subject": "repo:org/app:ref:refs/heads/main",
		"audiences": []string{"api://AzureADTokenExchange"}}
	secrets := map[string]string{}
	for _, name := range []string{"ci", "plain"} {
		e.do(t, call{as: admin, method: http.MethodPut, path: "identities/" + name, status: http.StatusCreated})
		var sec struct {
			ID string `json:"id"`
		}
		e.do(t, call{as: admin, method: http.MethodPost, path: "identities/" + name + "/secrets",
			body: map[string]any{"bcryptHash": cheapHash(t, name+"-password")}, status: http.StatusCreated}).json(t, &sec)
		secrets[name] = sec.ID
		e.do(t, call{as: admin, method: http.MethodPut, path: "identities/" + name + "/federated-credentials/gh", body: fc, status: http.StatusCreated})
		fc["subject"] = fc["subject"].(string) + "-" + name // (issuer, subject, audience) is one identity's
	}
	e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/ci-push", body: `{"principal":"ci","role":"AcrPush"}`,
		status: http.StatusCreated})
	e.run(t, []call{
		{name: "Contributor deletes a secret of an identity with a role", as: contributor, method: http.MethodDelete,
			path: "identities/ci/secrets/" + secrets["ci"], status: http.StatusForbidden, check: denied},
		{name: "Contributor deletes a federated credential of an identity with a role", as: contributor, method: http.MethodDelete,
			path: "identities/ci/federated-credentials/gh", status: http.StatusForbidden, check: denied},
		{name: "both are still there", as: admin, method: http.MethodGet, path: "identities/ci/federated-credentials/gh", status: http.StatusOK},
		{name: "Contributor deletes a secret of an identity without a role", as: contributor, method: http.MethodDelete,
			path: "identities/plain/secrets/" + secrets["plain"], status: http.StatusNoContent},
		{name: "Contributor deletes a federated credential of an identity without a role", as: contributor, method: http.MethodDelete,
			path: "identities/plain/federated-credentials/gh", status: http.StatusNoContent},
		{name: "Owner deletes a secret of an identity with a role", as: admin, method: http.MethodDelete,
			path: "identities/ci/secrets/" + secrets["ci"], status: http.StatusNoContent},
		{name: "Owner deletes a federated credential of an identity with a role", as: admin, method: http.MethodDelete,
			path: "identities/ci/federated-credentials/gh", status: http.StatusNoContent},
	})
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", cred{user: "plain", pass: "plain-password"}); got != http.StatusUnauthorized {
		t.Errorf("GET /v2/ with the deleted secret: %d, want 401", got)
	}
}
