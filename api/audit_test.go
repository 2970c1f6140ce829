package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// decision checks a /policy/evaluate answer.
func decision(allowed bool, stage, reason string) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		o := r.object(t)
		if o["allowed"] != allowed || o["stage"] != stage || o["reason"] != reason {
			t.Errorf("got %s, want allowed %v, stage %q, reason %q", r.body, allowed, stage, reason)
		}
	}
}

// auditEntry is an entry of GET /audit.
type auditEntry struct {
	Time       time.Time `json:"time"`
	ClientIP   string    `json:"clientIP"`
	Endpoint   string    `json:"endpoint"`
	Principal  string    `json:"principal"`
	Repository string    `json:"repository"`
	Action     string    `json:"action"`
	Allowed    bool      `json:"allowed"`
	Stage      string    `json:"stage"`
	Reason     string    `json:"reason"`
	Audit      bool      `json:"audit"`
}

func (e *env) audit(t *testing.T, path string) []auditEntry {
	t.Helper()
	var b struct {
		Value []auditEntry `json:"value"`
	}
	e.do(t, call{as: admin, method: http.MethodGet, path: path, status: http.StatusOK}).json(t, &b)
	return b.Value
}

func TestAudit(t *testing.T) {
	e := start(t)
	nobody := e.identityWithRole(t, "nobody", "")
	if got := e.audit(t, "audit"); len(got) != 0 {
		t.Fatalf("a new registry's audit log: %+v", got)
	}

	// One denial of each stage, then an Audit-mode allow.
	e.do(t, call{as: anonymous, method: http.MethodGet, path: "identities", status: http.StatusUnauthorized, badRequest: true})
	mid := time.Now().UTC()
	time.Sleep(10 * time.Millisecond) // entries carry the time they were recorded; keep them apart from mid
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/app/manifests/latest", nobody); got != http.StatusForbidden {
		t.Fatalf("pull without a role: %d, want 403", got)
	}
	e.patch(t, map[string]any{"networkRuleSet": map[string]any{"defaultAction": "Deny"}, "networkRuleBypassOptions": "None"})
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", anonymous); got != http.StatusForbidden {
		t.Fatalf("GET /v2/ from a denied address: %d, want 403", got)
	}
	e.patch(t, map[string]any{"networkRuleSet": map[string]any{"mode": "Audit"}})
	if got := e.dataPlane(t, e.base, http.MethodGet, "/v2/", nobody); got != http.StatusOK {
		t.Fatalf("GET /v2/ in Audit mode: %d, want 200", got)
	}

	all := e.audit(t, "audit")
	want := []struct {
		stage, reason string
		allowed       bool
	}{
		{"network", "IPNotAllowed", true},
		{"network", "IPNotAllowed", false},
		{"authz", "NoRole", false},
		{"authn", "NotAuthenticated", false},
	}
	if len(all) != len(want) {
		t.Fatalf("audit log: %+v, want %d entries", all, len(want))
	}
	for i, w := range want {
		g := all[i]
		if g.Stage != w.stage || g.Reason != w.reason || g.Allowed != w.allowed || g.Audit != w.allowed {
			t.Errorf("entry %d: %+v, want %+v", i, g, w)
		}
		if i > 0 && g.Time.After(all[i-1].Time) {
			t.Errorf("entry %d is newer than entry %d: not newest first", i, i-1)
		}
		if g.ClientIP != "127.0.0.1" || g.Endpoint != "public" {
			t.Errorf("entry %d: client %s on %s", i, g.ClientIP, g.Endpoint)
		}
	}
	if g := all[2]; g.Principal != "nobody" || g.Repository != "app" || g.Action != "pull" {
		t.Errorf("the authz denial: %+v", g)
	}

	count := func(path string, n int) {
		t.Helper()
		if got := e.audit(t, path); len(got) != n {
			t.Errorf("%s: %d entries (%+v), want %d", path, len(got), got, n)
		}
	}
	count(query("audit", "stage", "network"), 2)
	count(query("audit", "stage", "authz"), 1)
	count(query("audit", "stage", "authn"), 1)
	count(query("audit", "allowed", "true"), 1)
	count(query("audit", "allowed", "false"), 3)
	count(query("audit", "stage", "network", "allowed", "false"), 1)
	count(query("audit", "limit", "2"), 2)
	count(query("audit", "since", mid.Format(time.RFC3339Nano)), 3)
	count(query("audit", "since", "1h"), 4)
	count(query("audit", "since", "1d"), 4)
	count(query("audit", "since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), 0)
	if got := e.audit(t, query("audit", "limit", "1")); len(got) != 1 || !got[0].Allowed {
		t.Errorf("limit=1: %+v, want the newest entry", got)
	}
	e.run(t, []call{
		{name: "future duration", as: admin, method: http.MethodGet, path: query("audit", "since", "-1d"), status: http.StatusBadRequest,
			check: apiError("INVALID", "since")},
		{name: "limit too large", as: admin, method: http.MethodGet, path: query("audit", "limit", "10001"), status: http.StatusBadRequest,
			badRequest: true, check: apiError("INVALID", "limit")},
	})
}

func TestPolicyEvaluate(t *testing.T) {
	e := start(t)
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/dev", status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/stranger", status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/dev-pull", body: `{"principal":"dev","role":"AcrPull","scope":"repositories/app/*"}`,
		status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/runner", body: `{"type":"containerInstances","identity":{"type":"SystemAssigned"}}`,
		status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/runner-pull", body: `{"principal":"containerInstances-runner","role":"AcrPull"}`,
		status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/scan", body: `{"type":"scanner","identity":{"type":"SystemAssigned"}}`,
		status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/scan-push", body: `{"principal":"scanner-scan","role":"AcrPush"}`,
		status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "private-endpoints/lab", body: `{"listen":"127.0.0.1:0","state":"Pending"}`,
		status: http.StatusCreated})

	ask := func(name, body string, check func(*testing.T, *result)) call {
		return call{name: name, as: admin, method: http.MethodPost, path: "policy/evaluate", body: body, status: http.StatusOK, check: check}
	}
	const ip = `"clientIP":"198.51.100.7"`
	e.run(t, []call{
		ask("anonymous", `{`+ip+`,"repository":"app/web","action":"pull"}`, decision(false, "authn", "NotAuthenticated")),
		ask("anonymous empty principal", `{`+ip+`,"principal":"","repository":"app/web","action":"pull"}`, decision(false, "authn", "NotAuthenticated")),
		ask("user with a role", `{`+ip+`,"principal":"dev","repository":"app/web","action":"pull"}`, decision(true, "", "")),
		ask("user with a role, by principalId", `{`+ip+`,"principal":"`+str(e.get(t, "identities/dev"), "principalId")+`","repository":"app/web","action":"pull"}`,
			decision(true, "", "")),
		ask("user pushing with Pull", `{`+ip+`,"principal":"dev","repository":"app/web","action":"push"}`, decision(false, "authz", "NoRole")),
		ask("user outside the role's scope", `{`+ip+`,"principal":"dev","repository":"other","action":"pull"}`, decision(false, "authz", "NoRole")),
		ask("user without a role", `{`+ip+`,"principal":"stranger","repository":"app/web","action":"pull"}`, decision(false, "authz", "NoRole")),
		ask("unknown principal", `{`+ip+`,"principal":"ghost","repository":"app/web","action":"pull"}`, decision(false, "authn", "InvalidCredentials")),
		ask("pending private endpoint", `{`+ip+`,"endpoint":"lab","principal":"dev","repository":"app/web","action":"pull"}`,
			decision(false, "network", "PrivateEndpointNotApproved")),
		{name: "unknown endpoint", as: admin, method: http.MethodPost, path: "policy/evaluate",
			body: `{` + ip + `,"endpoint":"nowhere","repository":"app","action":"pull"}`, status: http.StatusBadRequest, check: apiError("INVALID", "endpoint")},
		{name: "bad repository", as: admin, method: http.MethodPost, path: "policy/evaluate",
			body: `{` + ip + `,"repository":"App","action":"pull"}`, status: http.StatusBadRequest, check: apiError("INVALID", "repository")},
		{name: "no body", as: admin, method: http.MethodPost, path: "policy/evaluate", status: http.StatusBadRequest, badRequest: true},
	})

	// Anonymous pull.
	e.patch(t, map[string]any{"anonymousPullEnabled": true})
	e.run(t, []call{
		ask("anonymous pull", `{`+ip+`,"repository":"app/web","action":"pull"}`, decision(true, "", "")),
		ask("anonymous push", `{`+ip+`,"repository":"app/web","action":"push"}`, decision(false, "authn", "NotAuthenticated")),
	})

	// IP rules.
	e.patch(t, map[string]any{"anonymousPullEnabled": nil, "networkRuleSet": map[string]any{"defaultAction": "Deny",
		"ipRules": []map[string]string{{"value": "198.51.100.0/24"}}}})
	e.run(t, []call{
		ask("inside an ipRule", `{`+ip+`,"principal":"dev","repository":"app/web","action":"pull"}`, func(t *testing.T, r *result) {
			decision(true, "", "")(t, r)
			if r.object(t)["rule"] != "198.51.100.0/24" {
				t.Errorf("rule: %s", r.body)
			}
		}),
		ask("outside the ipRules", `{"clientIP":"203.0.113.9","principal":"dev","repository":"app/web","action":"pull"}`,
			decision(false, "network", "IPNotAllowed")),
		ask("IPv6 outside", `{"clientIP":"2001:db8::1","principal":"dev","repository":"app/web","action":"pull"}`,
			decision(false, "network", "IPNotAllowed")),
	})
	e.patch(t, map[string]any{"networkRuleSet": map[string]any{"mode": "Audit"}})
	e.run(t, []call{
		ask("Audit mode", `{"clientIP":"203.0.113.9","principal":"dev","repository":"app/web","action":"pull"}`, func(t *testing.T, r *result) {
			decision(true, "", "IPNotAllowed")(t, r)
			if r.object(t)["audit"] != true {
				t.Errorf("audit: %s", r.body)
			}
		}),
	})

	// Public access disabled: only an enabled trusted service's identity
	// bypasses, and only while the bypass is on.
	e.patch(t, map[string]any{"networkRuleSet": nil, "publicNetworkAccess": "Disabled"})
	e.run(t, []call{
		ask("trusted service, bypass on", `{`+ip+`,"principal":"containerInstances-runner","repository":"app/web","action":"pull"}`,
			decision(true, "", "TrustedServiceBypass")),
		ask("trusted service without the role", `{`+ip+`,"principal":"containerInstances-runner","repository":"app/web","action":"push"}`,
			decision(false, "authz", "NoRole")),
		ask("scanner reads", `{`+ip+`,"principal":"scanner-scan","repository":"app/web","action":"pull"}`,
			decision(true, "", "TrustedServiceBypass")),
		ask("scanner writes", `{`+ip+`,"principal":"scanner-scan","repository":"app/web","action":"push"}`,
			decision(false, "network", "PublicNetworkAccessDisabled")),
		ask("user, bypass on", `{`+ip+`,"principal":"dev","repository":"app/web","action":"pull"}`,
			decision(false, "network", "PublicNetworkAccessDisabled")),
		ask("anonymous, bypass on", `{`+ip+`,"repository":"app/web","action":"pull"}`,
			decision(false, "network", "PublicNetworkAccessDisabled")),
		ask("pending private endpoint, public disabled", `{`+ip+`,"endpoint":"lab","principal":"dev","repository":"app/web","action":"pull"}`,
			decision(false, "network", "PrivateEndpointNotApproved")),
	})
	e.do(t, call{as: admin, method: http.MethodPost, path: "private-endpoints/lab/approve", status: http.StatusOK})
	e.patch(t, map[string]any{"networkRuleBypassOptions": "None"})
	e.run(t, []call{
		ask("trusted service, bypass off", `{`+ip+`,"principal":"containerInstances-runner","repository":"app/web","action":"pull"}`,
			decision(false, "network", "PublicNetworkAccessDisabled")),
		ask("approved private endpoint, public disabled", `{`+ip+`,"endpoint":"lab","principal":"dev","repository":"app/web","action":"pull"}`,
			decision(true, "", "")),
	})
}

func TestPagination(t *testing.T) {
	e := start(t)
	for _, n := range []string{"id-0", "id-1", "id-2", "id-3", "id-4", "id-5", "id-6"} {
		e.do(t, call{as: admin, method: http.MethodPut, path: "identities/" + n, status: http.StatusCreated})
		e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/" + n, body: `{"principal":"` + n + `","role":"Pull"}`,
			status: http.StatusCreated})
	}
	e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/id-3-b", body: `{"principal":"id-3","role":"Delete"}`,
		status: http.StatusCreated})

	// pages follows the Link headers from path and returns the keys.
	pages := func(path, key string, n int) []string {
		t.Helper()
		var got []string
		for i := 0; path != ""; i++ {
			if i > 10 {
				t.Fatalf("more pages than items")
			}
			r := e.do(t, call{as: admin, method: http.MethodGet, path: path, status: http.StatusOK})
			keys := r.names(t, key)
			if len(keys) > n {
				t.Errorf("page of %d items with n=%d", len(keys), n)
			}
			got = append(got, keys...)
			path = ""
			if link := r.header.Get("Link"); link != "" {
				target, ok := strings.CutPrefix(link, "<")
				target, rest, _ := strings.Cut(target, ">")
				if !ok || rest != `; rel="next"` || !strings.HasPrefix(target, "/admin/v1/") {
					t.Fatalf("Link %q", link)
				}
				path = target
			}
		}
		return got
	}
	want := []string{"admin", "id-0", "id-1", "id-2", "id-3", "id-4", "id-5", "id-6"}
	if got := pages("identities?n=3", "name", 3); !slices.Equal(got, want) {
		t.Errorf("pages of 3: %v, want %v", got, want)
	}
	if got := pages("identities?n=1", "name", 1); !slices.Equal(got, want) {
		t.Errorf("pages of 1: %v, want %v", got, want)
	}
	// The next page keeps the filter.
	if got := pages(query("role-assignments", "principal", "id-3", "n", "1"), "id", 1); !slices.Equal(got, []string{"id-3", "id-3-b"}) {
		t.Errorf("pages of id-3's role assignments: %v", got)
	}
	e.run(t, []call{
		{name: "Link", as: admin, method: http.MethodGet, path: query("role-assignments", "n", "2", "last", "bootstrap-admin-owner"),
			status: http.StatusOK, check: func(t *testing.T, r *result) {
				listed("id", "id-0", "id-1")(t, r)
				want := `</admin/v1/role-assignments?last=id-1&n=2>; rel="next"`
				if l := r.header.Get("Link"); l != want {
					t.Errorf("Link %q, want %q", l, want)
				}
			}},
		{name: "last", as: admin, method: http.MethodGet, path: query("identities", "last", "id-4"), status: http.StatusOK,
			check: listed("name", "id-5", "id-6")},
		{name: "last page", as: admin, method: http.MethodGet, path: query("identities", "n", "2", "last", "id-4"), status: http.StatusOK,
			check: func(t *testing.T, r *result) {
				listed("name", "id-5", "id-6")(t, r)
				if r.header.Get("Link") != "" {
					t.Errorf("Link on the last page: %s", r.header.Get("Link"))
				}
			}},
		{name: "past the end", as: admin, method: http.MethodGet, path: query("identities", "last", "zzz"), status: http.StatusOK,
			check: listed("name")},
		{name: "n=0", as: admin, method: http.MethodGet, path: query("identities", "n", "0"), status: http.StatusOK, check: listed("name")},
		{name: "negative n", as: admin, method: http.MethodGet, path: query("identities", "n", "-1"), status: http.StatusBadRequest,
			badRequest: true, check: apiError("INVALID", "n")},
		{name: "n not a number", as: admin, method: http.MethodGet, path: query("identities", "n", "x"), status: http.StatusBadRequest,
			badRequest: true},
		{name: "trusted services", as: admin, method: http.MethodGet, path: query("trusted-services", "n", "2", "last", "machineLearning"),
			status: http.StatusOK, check: listed("type", "registry", "scanner")},
	})
}
