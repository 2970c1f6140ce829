package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

// field checks that a dotted field of the answer's object is want.
func field(path, want string) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		if got := str(r.object(t), path); got != want {
			t.Errorf("%s = %q, want %q; body %s", path, got, want, r.body)
		}
	}
}

// apiError checks the error body's code and that its message contains
// each of parts.
func apiError(code string, parts ...string) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		got, msg, _ := r.errorItem(t)
		if got != code {
			t.Errorf("code %s, want %s (%s)", got, code, msg)
		}
		for _, p := range parts {
			if !strings.Contains(msg, p) {
				t.Errorf("message %q does not mention %q", msg, p)
			}
		}
	}
}

// denied checks a 403 of the authorization stage.
func denied(t *testing.T, r *result) {
	t.Helper()
	code, msg, detail := r.errorItem(t)
	if code != "DENIED" || detail["stage"] != "authz" || detail["reason"] != "NoRole" {
		t.Errorf("got %s %q %v, want DENIED with stage authz, reason NoRole", code, msg, detail)
	}
}

// listed checks the keys of a {"value":[…]} answer, in order.
func listed(key string, want ...string) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		if got := r.names(t, key); !slices.Equal(got, want) {
			t.Errorf("%s of the items: %v, want %v", key, got, want)
		}
	}
}

// remember stores a field of the answer in e.vars.
func (e *env) remember(key, path string) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		v := str(r.object(t), path)
		if v == "" {
			t.Fatalf("no %s in %s", path, r.body)
		}
		e.vars[key] = v
	}
}

// TestAdminAPI walks every operation of the document over HTTP, with its
// happy path and its main errors, and checks every request and answer
// against the document. At the end every documented operation must have
// answered 2xx at least once.
func TestAdminAPI(t *testing.T) {
	e := start(t)
	const (
		GET, PUT, POST, PATCH, DELETE = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete
	)
	wrong := cred{user: "admin", pass: "wrong"}
	hash := cheapHash(t, "ci-password")
	e.run(t, []call{
		// The document and authentication.
		{as: anonymous, method: GET, path: "openapi.json", status: 200},
		{name: "openapi.json POST", as: anonymous, method: POST, path: "openapi.json", status: 405, badRequest: true},
		{name: "anonymous", as: anonymous, method: GET, path: "registry", status: 401, badRequest: true,
			check: func(t *testing.T, r *result) {
				if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic ") {
					t.Errorf("WWW-Authenticate %q", h)
				}
			}},
		{name: "wrong password", as: wrong, method: GET, path: "registry", status: 401, check: apiError("UNAUTHORIZED")},
		{name: "malformed credentials", method: GET, path: "registry", header: map[string]string{"Authorization": "Basic !!!"},
			status: 401, check: apiError("UNAUTHORIZED")},

		// Registry.
		{as: admin, method: GET, path: "registry", status: 200, check: field("properties.publicNetworkAccess", "Enabled")},
		{as: admin, method: PATCH, path: "registry", contentType: "application/merge-patch+json",
			body: `{"properties":{"anonymousPullEnabled":true}}`, status: 200},
		{name: "PATCH registry stale If-Match", as: admin, method: PATCH, path: "registry", header: map[string]string{"If-Match": `"0"`},
			body: `{"properties":{"anonymousPullEnabled":false}}`, status: 412, check: apiError("PRECONDITION_FAILED")},
		{name: "PATCH registry bad value", as: admin, method: PATCH, path: "registry",
			body: `{"properties":{"networkRuleSet":{"defaultAction":"Maybe"}}}`, status: 400, badRequest: true,
			check: apiError("INVALID", "networkRuleSet.defaultAction")},
		{name: "PATCH registry no body", as: admin, method: PATCH, path: "registry", status: 400, badRequest: true},

		// Identities and secrets.
		{as: admin, method: PUT, path: "identities/ci", body: `{"kind":"servicePrincipal"}`, status: 201,
			check: field("kind", "servicePrincipal")},
		{name: "PUT identities/ci again", as: admin, method: PUT, path: "identities/ci", body: `{"name":"ci","kind":"servicePrincipal","enabled":true}`,
			status: 200},
		{name: "PUT identity without a body", as: admin, method: PUT, path: "identities/plain", status: 201, check: field("kind", "user")},
		{as: admin, method: GET, path: "identities", status: 200, check: listed("name", "admin", "ci", "plain")},
		{as: admin, method: GET, path: "identities/ci", status: 200, check: field("name", "ci")},
		{as: admin, method: GET, path: "identities/nope", status: 404, check: apiError("NOT_FOUND", "nope")},
		{name: "identity name mismatch", as: admin, method: PUT, path: "identities/ci", body: `{"name":"other"}`, status: 400,
			check: apiError("INVALID", "name")},
		{name: "identity bad name", as: admin, method: PUT, path: "identities/-x", body: `{}`, status: 400, badRequest: true,
			check: apiError("INVALID", "name")},
		{name: "identity bad kind", as: admin, method: PUT, path: "identities/ci", body: `{"kind":"robot"}`, status: 400,
			badRequest: true, check: apiError("INVALID", "kind")},
		{name: "identity unknown field", as: admin, method: PUT, path: "identities/ci", body: `{"colour":"red"}`, status: 400,
			badRequest: true, check: apiError("INVALID", "colour")},
		{name: "identity read-only field", as: admin, method: PUT, path: "identities/ci", body: `{"principalId":"x"}`, status: 400,
			badRequest: true},
		{name: "identity malformed JSON", as: admin, method: PUT, path: "identities/ci", body: `{"kind":`, status: 400,
			badRequest: true, check: apiError("INVALID", "malformed JSON")},
		// Not JSON, but kin-openapi's decoder stops after the first value.
		{name: "identity trailing data", as: admin, method: PUT, path: "identities/ci", body: `{} {}`, status: 400,
			check: apiError("INVALID", "trailing")},
		// An imported hash (TestIdentityLifecycle generates secrets; each
		// costs a bcrypt hash).
		{as: admin, method: POST, path: "identities/ci/secrets", body: map[string]any{"expiresIn": "30d", "bcryptHash": hash},
			status: 201, check: func(t *testing.T, r *result) {
				e.remember("secret", "id")(t, r)
				if o := r.object(t); o["value"] != "" || o["expiresAt"] == nil || r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("got %s %v", r.body, r.header)
				}
			}},
		{name: "secret bad lifetime", as: admin, method: POST, path: "identities/ci/secrets", body: `{"expiresIn":"soon"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "expiresIn")},
		{name: "secret of nobody", as: admin, method: POST, path: "identities/nope/secrets", body: map[string]any{"bcryptHash": hash},
			status: 404},
		{name: "GET secrets", as: admin, method: GET, path: "identities/ci/secrets", status: 405, badRequest: true,
			check: func(t *testing.T, r *result) {
				if r.header.Get("Allow") != "POST" {
					t.Errorf("Allow %q", r.header.Get("Allow"))
				}
			}},
		{as: admin, method: DELETE, path: "identities/ci/secrets/{{secret}}", status: 204},
		{name: "DELETE secret again", as: admin, method: DELETE, path: "identities/ci/secrets/{{secret}}", status: 404},

		// Federated credentials.
		{as: admin, method: PUT, path: "identities/ci/federated-credentials/gh",
			body:   `{"issuer":"https://token.actions.githubusercontent.com","subject":"repo:org/app:ref:refs/heads/main","audiences":["moat"]}`,
			status: 201, check: field("name", "gh")},
		{name: "PUT federated credential again", as: admin, method: PUT, path: "identities/ci/federated-credentials/gh",
			body:   `{"name":"gh","issuer":"https://token.actions.githubusercontent.com","subject":"repo:org/app:ref:refs/heads/main","audiences":["moat","api://AzureADTokenExchange"]}`,
			status: 200},
		{as: admin, method: GET, path: "identities/ci/federated-credentials", status: 200, check: listed("name", "gh")},
		{as: admin, method: GET, path: "identities/ci/federated-credentials/gh", status: 200, check: field("subject", "repo:org/app:ref:refs/heads/main")},
		{name: "GET a missing federated credential", as: admin, method: GET, path: "identities/ci/federated-credentials/nope", status: 404},
		{name: "federated credentials of nobody", as: admin, method: GET, path: "identities/nope/federated-credentials", status: 404},
		{name: "federated credential over http", as: admin, method: PUT, path: "identities/ci/federated-credentials/bad",
			body: `{"issuer":"http://issuer.example","subject":"s","audiences":["moat"]}`, status: 400, check: apiError("INVALID", "issuer")},
		{name: "federated credential without audiences", as: admin, method: PUT, path: "identities/ci/federated-credentials/bad",
			body: `{"issuer":"https://issuer.example","subject":"s","audiences":[]}`, status: 400, badRequest: true,
			check: apiError("INVALID", "audiences")},
		{name: "federated credential taken", as: admin, method: PUT, path: "identities/plain/federated-credentials/gh",
			body:   `{"issuer":"https://token.actions.githubusercontent.com","subject":"repo:org/app:ref:refs/heads/main","audiences":["moat"]}`,
			status: 409, check: apiError("CONFLICT", "ci")},
		{as: admin, method: DELETE, path: "identities/ci/federated-credentials/gh", status: 204},
		{name: "DELETE federated credential again", as: admin, method: DELETE, path: "identities/ci/federated-credentials/gh", status: 404},

		// Role assignments.
		{as: admin, method: PUT, path: "role-assignments/ci-pull", body: `{"principal":"ci","role":"AcrPull","scope":"repositories/app/*"}`,
			status: 201, check: field("role", "Pull")},
		{name: "PUT role-assignments/ci-pull again", as: admin, method: PUT, path: "role-assignments/ci-pull",
			body: `{"principal":"ci","role":"Pull","scope":"repositories/app/*"}`, status: 200},
		{as: admin, method: GET, path: "role-assignments", status: 200, check: listed("id", "bootstrap-admin-owner", "ci-pull")},
		{name: "GET role-assignments by principal", as: admin, method: GET, path: query("role-assignments", "principal", "ci"),
			status: 200, check: listed("id", "ci-pull")},
		{as: admin, method: GET, path: "role-assignments/ci-pull", status: 200, check: field("principal", "ci")},
		{as: admin, method: GET, path: "role-assignments/nope", status: 404},
		{name: "role of nobody", as: admin, method: PUT, path: "role-assignments/x", body: `{"principal":"ghost","role":"Pull"}`,
			status: 400, check: apiError("INVALID", "principal")},
		{name: "unknown role", as: admin, method: PUT, path: "role-assignments/x", body: `{"principal":"ci","role":"Janitor"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "role")},
		{name: "bad scope", as: admin, method: PUT, path: "role-assignments/x", body: `{"principal":"ci","role":"Pull","scope":"everything"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "scope")},
		{name: "role without principal", as: admin, method: PUT, path: "role-assignments/x", body: `{"role":"Pull"}`,
			status: 400, badRequest: true},
		{as: admin, method: DELETE, path: "role-assignments/ci-pull", status: 204},
		{name: "DELETE role assignment again", as: admin, method: DELETE, path: "role-assignments/ci-pull", status: 404},

		// Scope maps and tokens.
		{as: admin, method: PUT, path: "scope-maps/app-rw", body: `{"actions":["repositories/app/content/read","repositories/app/content/write"]}`,
			status: 201},
		{name: "PUT scope-maps/app-rw again", as: admin, method: PUT, path: "scope-maps/app-rw",
			body:   `{"name":"app-rw","actions":["repositories/app/content/read","repositories/app/content/write","repositories/app/metadata/read"],"description":"CI"}`,
			status: 200},
		{as: admin, method: GET, path: "scope-maps", status: 200, check: listed("name", "app-rw")},
		{as: admin, method: GET, path: "scope-maps/app-rw", status: 200, check: field("description", "CI")},
		{as: admin, method: GET, path: "scope-maps/nope", status: 404},
		{name: "scope map bad action", as: admin, method: PUT, path: "scope-maps/bad", body: `{"actions":["repositories/app/push"]}`,
			status: 400, badRequest: true, check: apiError("INVALID", "actions[0]")},
		{name: "scope map no actions", as: admin, method: PUT, path: "scope-maps/bad", body: `{"actions":[]}`,
			status: 400, badRequest: true, check: apiError("INVALID", "actions")},
		{as: admin, method: PUT, path: "tokens/ci-token", body: `{"scopeMap":"app-rw"}`, status: 201, check: field("status", "enabled")},
		{name: "PUT tokens/ci-token again", as: admin, method: PUT, path: "tokens/ci-token", body: `{"scopeMap":"app-rw","status":"disabled"}`,
			status: 200, check: field("status", "disabled")},
		{name: "token of a missing scope map", as: admin, method: PUT, path: "tokens/t2", body: `{"scopeMap":"nope"}`,
			status: 400, check: apiError("INVALID", "scopeMap")},
		{name: "token named like an identity", as: admin, method: PUT, path: "tokens/ci", body: `{"scopeMap":"app-rw"}`,
			status: 409, check: apiError("CONFLICT", "ci")},
		{name: "token bad status", as: admin, method: PUT, path: "tokens/ci-token", body: `{"scopeMap":"app-rw","status":"on"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "status")},
		{as: admin, method: GET, path: "tokens", status: 200, check: listed("name", "ci-token")},
		{as: admin, method: GET, path: "tokens/ci-token", status: 200, check: field("scopeMap", "app-rw")},
		{as: admin, method: GET, path: "tokens/nope", status: 404},
		{as: admin, method: POST, path: "tokens/ci-token/passwords", body: `{"expiresIn":"30d"}`, status: 201,
			check: func(t *testing.T, r *result) {
				o := r.object(t)
				exp, err := time.Parse(time.RFC3339, str(o, "expiresAt"))
				if o["name"] != "password1" || o["value"] == "" || r.header.Get("Cache-Control") != "no-store" ||
					err != nil || exp.Before(time.Now().Add(29*24*time.Hour)) || exp.After(time.Now().Add(31*24*time.Hour)) {
					t.Errorf("got %s %v, want password1 shown once, expiring in 30 days", r.body, r.header)
				}
			}},
		{name: "password3", as: admin, method: POST, path: "tokens/ci-token/passwords", body: `{"name":"password3"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "name")},
		{name: "password of nobody", as: admin, method: POST, path: "tokens/nope/passwords", status: 404},
		{name: "DELETE a scope map in use", as: admin, method: DELETE, path: "scope-maps/app-rw", status: 409,
			check: apiError("CONFLICT", "ci-token")},
		{as: admin, method: DELETE, path: "tokens/ci-token", status: 204},
		{name: "DELETE token again", as: admin, method: DELETE, path: "tokens/ci-token", status: 404},
		{as: admin, method: DELETE, path: "scope-maps/app-rw", status: 204},
		{name: "DELETE scope map again", as: admin, method: DELETE, path: "scope-maps/app-rw", status: 404},

		// Private endpoints.
		{as: admin, method: PUT, path: "private-endpoints/lab", body: `{"listen":"127.0.0.1:0","description":"lab"}`, status: 201,
			check: field("state", "Approved")},
		{name: "PUT private-endpoints/lab again", as: admin, method: PUT, path: "private-endpoints/lab", body: `{"description":"the lab"}`,
			status: 200, check: field("listen", "127.0.0.1:0")},
		{as: admin, method: GET, path: "private-endpoints", status: 200, check: listed("name", "lab")},
		{as: admin, method: GET, path: "private-endpoints/lab", status: 200, check: field("description", "the lab")},
		{as: admin, method: GET, path: "private-endpoints/nope", status: 404},
		{as: admin, method: POST, path: "private-endpoints/lab/reject", status: 200, check: field("state", "Rejected")},
		{as: admin, method: POST, path: "private-endpoints/lab/approve", status: 200, check: field("state", "Approved")},
		{name: "approve nobody", as: admin, method: POST, path: "private-endpoints/nope/approve", status: 404},
		{name: "wildcard listen", as: admin, method: PUT, path: "private-endpoints/wild", body: `{"listen":"0.0.0.0:0"}`,
			status: 400, check: apiError("INVALID", "listen")},
		{name: "bad state", as: admin, method: PUT, path: "private-endpoints/lab", body: `{"state":"Open"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "state")},
		{as: admin, method: DELETE, path: "private-endpoints/lab", status: 204},
		{name: "DELETE private endpoint again", as: admin, method: DELETE, path: "private-endpoints/lab", status: 404},

		// Trusted services and service instances.
		{as: admin, method: GET, path: "trusted-services", status: 200,
			check: listed("type", "containerInstances", "machineLearning", "registry", "scanner", "tasks")},
		{as: admin, method: PUT, path: "services/nightly", body: `{"type":"tasks","identity":{"type":"SystemAssigned"}}`,
			status: 201, check: field("identity.principalName", "tasks-nightly")},
		{name: "PUT services/nightly again", as: admin, method: PUT, path: "services/nightly", body: `{"name":"nightly","type":"tasks","identity":{"type":"SystemAssigned"}}`,
			status: 200},
		{as: admin, method: GET, path: "services", status: 200, check: listed("name", "nightly")},
		{as: admin, method: GET, path: "services/nightly", status: 200, check: field("type", "tasks")},
		{as: admin, method: GET, path: "services/nope", status: 404},
		{name: "service type change", as: admin, method: PUT, path: "services/nightly", body: `{"type":"scanner"}`,
			status: 400, check: apiError("INVALID", "type")},
		{name: "service bad type", as: admin, method: PUT, path: "services/x", body: `{"type":"cron"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "type")},
		{name: "DELETE a system-assigned identity", as: admin, method: DELETE, path: "identities/tasks-nightly", status: 409,
			check: apiError("CONFLICT", "nightly")},

		// Tasks, imports, operations.
		{as: admin, method: PUT, path: "services/nightly/tasks/purge-old",
			body: `{"type":"purge","schedule":"0 3 * * *","purge":{"repository":"app","olderThan":"7d","keep":3}}`, status: 201,
			check: field("service", "nightly")},
		{name: "PUT task again", as: admin, method: PUT, path: "services/nightly/tasks/purge-old",
			body:   `{"name":"purge-old","service":"nightly","type":"purge","enabled":false,"purge":{"repository":"app","olderThan":"30d","filter":"dev-.*","untagged":true}}`,
			status: 200},
		{as: admin, method: GET, path: "services/nightly/tasks", status: 200, check: listed("name", "purge-old")},
		{as: admin, method: GET, path: "services/nightly/tasks/purge-old", status: 200, check: field("purge.olderThan", "30d")},
		{name: "GET a missing task", as: admin, method: GET, path: "services/nightly/tasks/nope", status: 404},
		{name: "tasks of nobody", as: admin, method: GET, path: "services/nope/tasks", status: 404},
		{name: "task bad type", as: admin, method: PUT, path: "services/nightly/tasks/x", body: `{"type":"sync"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "type")},
		{name: "task bad schedule", as: admin, method: PUT, path: "services/nightly/tasks/x",
			body: `{"type":"purge","schedule":"often","purge":{"repository":"app","olderThan":"7d"}}`, status: 400, check: apiError("INVALID", "schedule")},
		{name: "copy task without copy", as: admin, method: PUT, path: "services/nightly/tasks/x", body: `{"type":"copy"}`,
			status: 400, check: apiError("INVALID", "copy")},
		{as: admin, method: POST, path: "services/nightly/tasks/purge-old/run", status: 202, check: func(t *testing.T, r *result) {
			e.remember("run", "id")(t, r)
			if o := r.object(t); o["kind"] != "purge" || r.header.Get("Location") != "/admin/v1/operations/"+str(o, "id") {
				t.Errorf("got %s, Location %q", r.body, r.header.Get("Location"))
			}
		}},
		{name: "run a missing task", as: admin, method: POST, path: "services/nightly/tasks/nope/run", status: 404},
		{as: admin, method: GET, path: "operations/{{run}}", status: 200, check: field("kind", "purge")},
		{as: admin, method: POST, path: "import", body: `{"source":"127.0.0.1:9/app:1","target":"app:1","plainHTTP":true,"credentials":{"username":"u","password":"p"}}`,
			status: 202, check: func(t *testing.T, r *result) {
				e.remember("import", "id")(t, r)
				if o := r.object(t); o["kind"] != "import" || o["status"] != "Running" {
					t.Errorf("got %s", r.body)
				}
			}},
		{name: "import to another registry", as: admin, method: POST, path: "import", body: `{"source":"127.0.0.1:9/app:1","target":"example.com/app:1"}`,
			status: 400, check: apiError("INVALID", "target")},
		{name: "import without a target", as: admin, method: POST, path: "import", body: `{"source":"127.0.0.1:9/app:1"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "target")},
		{name: "GET a missing operation", as: admin, method: GET, path: "operations/nope", status: 404},
		{as: admin, method: DELETE, path: "services/nightly/tasks/purge-old", status: 204},
		{name: "DELETE task again", as: admin, method: DELETE, path: "services/nightly/tasks/purge-old", status: 404},
		{as: admin, method: DELETE, path: "services/nightly", status: 204},
		{name: "DELETE service again", as: admin, method: DELETE, path: "services/nightly", status: 404},

		// Audit, what-if, keys.
		{as: admin, method: GET, path: "audit", status: 200},
		{name: "audit bad stage", as: admin, method: GET, path: "audit?stage=handler", status: 400, badRequest: true,
			check: apiError("INVALID", "stage")},
		{name: "audit bad allowed", as: admin, method: GET, path: "audit?allowed=maybe", status: 400, badRequest: true},
		{name: "audit bad limit", as: admin, method: GET, path: "audit?limit=0", status: 400, badRequest: true,
			check: apiError("INVALID", "limit")},
		{name: "audit bad since", as: admin, method: GET, path: "audit?since=yesterday", status: 400, check: apiError("INVALID", "since")},
		{as: admin, method: POST, path: "policy/evaluate", body: `{"clientIP":"192.0.2.1","repository":"app","action":"pull"}`,
			status: 200, check: func(t *testing.T, r *result) {
				// anonymousPullEnabled is on (above).
				if r.object(t)["allowed"] != true {
					t.Errorf("anonymous pull with anonymousPullEnabled: %s", r.body)
				}
			}},
		{name: "evaluate bad IP", as: admin, method: POST, path: "policy/evaluate", body: `{"clientIP":"x","repository":"app","action":"pull"}`,
			status: 400, check: apiError("INVALID", "clientIP")},
		{name: "evaluate bad action", as: admin, method: POST, path: "policy/evaluate", body: `{"clientIP":"192.0.2.1","repository":"app","action":"fly"}`,
			status: 400, badRequest: true, check: apiError("INVALID", "action")},
		{name: "evaluate unknown field", as: admin, method: POST, path: "policy/evaluate",
			body: `{"clientIP":"192.0.2.1","repository":"app","action":"pull","user":"x"}`, status: 400, badRequest: true},
		{name: "evaluate GET", as: admin, method: GET, path: "policy/evaluate", status: 405, badRequest: true},
		{as: admin, method: POST, path: "keys/rotate", status: 200},
		{as: admin, method: POST, path: "gc", body: `{"dryRun":true,"untagged":true,"gracePeriod":"0s"}`, status: 200,
			check: func(t *testing.T, r *result) {
				if r.object(t)["dryRun"] != true {
					t.Errorf("got %s", r.body)
				}
			}},
		{name: "gc without a body", as: admin, method: POST, path: "gc", status: 200},
		{name: "gc bad grace period", as: admin, method: POST, path: "gc", body: `{"gracePeriod":"soon"}`, status: 400,
			badRequest: true, check: apiError("INVALID", "gracePeriod")},
		{name: "rotate GET", as: admin, method: GET, path: "keys/rotate", status: 405, badRequest: true},

		// Unknown paths and methods.
		{name: "root", as: admin, method: GET, path: api0(), status: 404, badRequest: true, check: apiError("NOT_FOUND")},
		{name: "unknown", as: admin, method: GET, path: "nope", status: 404, badRequest: true, check: apiError("NOT_FOUND")},
		{name: "unknown below a resource", as: admin, method: GET, path: "identities/ci/keys", status: 404,
			badRequest: true, check: apiError("NOT_FOUND")},
		{name: "trusted-services DELETE", as: admin, method: DELETE, path: "trusted-services", status: 405, badRequest: true,
			check: apiError("METHOD_NOT_ALLOWED")},
		{name: "identities POST", as: admin, method: POST, path: "identities", status: 405, badRequest: true},

		// Clean-up of the identities.
		{as: admin, method: DELETE, path: "identities/ci", status: 204},
		{name: "DELETE identity again", as: admin, method: DELETE, path: "identities/ci", status: 404},
	})

	// The import (from a closed port) and the task run end; wait for them,
	// so that nothing writes to the data directory after the test.
	for _, id := range []string{e.vars["import"], e.vars["run"]} {
		op := e.waitOperation(t, id)
		if op["kind"] == "import" && (op["status"] != "Failed" || op["error"] == "") {
			t.Errorf("import from a closed port: %v", op)
		}
	}

	// Access tokens are scoped to repositories: they do not carry their
	// identity's admin roles. A refresh token (Basic, the null GUID user)
	// does.
	r := e.do(t, call{as: admin, method: GET, path: "/oauth2/token?service=" + e.srv.Service() + "&scope=repository:app:pull", status: 200})
	var tok struct {
		Token string `json:"token"`
	}
	r.json(t, &tok)
	r = e.do(t, call{as: admin, method: POST, path: "/oauth2/token", contentType: "application/x-www-form-urlencoded",
		body: "grant_type=password&service=" + e.srv.Service() + "&username=admin&password=" + adminPassword, status: 200})
	var refresh struct {
		RefreshToken string `json:"refresh_token"`
	}
	r.json(t, &refresh)
	e.run(t, []call{
		{name: "access token", as: cred{bearer: tok.Token}, method: GET, path: "registry", status: 401, badRequest: true},
		{name: "bad bearer", as: cred{bearer: "not-a-jwt"}, method: GET, path: "registry", status: 401, badRequest: true},
		{name: "refresh token", as: cred{user: auth.RefreshTokenUsername, pass: refresh.RefreshToken}, method: GET, path: "registry", status: 200},
	})

	for _, op := range handlerRoutes {
		if !e.covered[op] {
			t.Errorf("no call of %s answered 2xx", op)
		}
	}
}

// api0 is the API's root (no resource).
func api0() string { return "/admin/v1" }

// waitOperation polls an operation until it is no longer Running.
func (e *env) waitOperation(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		op := e.get(t, "operations/"+id)
		if op["status"] != "Running" {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still running after 30s: %v", id, op)
		}
		<-tick.C
	}
}
