package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/moat-registry/moat/auth"
)

func TestAudit(t *testing.T) {
	ts := sharedServer(t)
	if got := ts.basicStatus(t, "admin", "not-the-password"); got != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ with a wrong password: %d", got)
	}
	r := ts.admin(t, "audit", "--denied", "--stage", "authn", "--since", "1h", "--limit", "10")
	rows := tableRows(r.stdout)
	header := "TIME CLIENT ENDPOINT PRINCIPAL REPOSITORY ACTION ALLOWED STAGE REASON RULE"
	if len(rows) < 2 || strings.Join(rows[0], " ") != header {
		t.Fatalf("audit:\n%s", r.stdout)
	}
	if row := rows[1]; row[1] != "127.0.0.1" || row[2] != "public" || !slices.Contains(row, "authn") || !slices.Contains(row, "InvalidCredentials") {
		t.Errorf("audit row %v", row)
	}

	r = ts.admin(t, "audit", "--denied", "-o", "json")
	entries := decodeOut[struct {
		Value []auth.AuditEntry `json:"value"`
	}](t, r).Value
	if len(entries) == 0 || entries[0].Allowed || entries[0].Stage == "" {
		t.Errorf("audit -o json: %s", r.stdout)
	}
	for _, row := range tableRows(ts.admin(t, "audit", "--stage", "network").stdout)[1:] {
		if !slices.Contains(row, "network") {
			t.Errorf("audit --stage network shows %v", row)
		}
	}
	ts.adminFails(t, `--stage "dns": expected network or authn or authz`, "audit", "--stage", "dns")
	ts.adminFails(t, "400 INVALID: since must be RFC 3339 or a duration", "audit", "--since", "yesterday")
}

func TestPolicyEvaluate(t *testing.T) {
	ts := sharedServer(t)
	ts.resetProperties(t)
	ts.admin(t, "update", "--default-action", "Deny")
	in := map[string]string{"clientIP": "198.51.100.7", "repository": "app", "action": "pull"}

	// Denied: the table, the API's JSON, and exit 0.
	r := ts.admin(t, "policy", "evaluate", "--ip", "198.51.100.7", "--repository", "app", "--action", "pull")
	if !hasRow(r.stdout, "ALLOWED", "STAGE", "REASON", "RULE", "AUDIT") || !hasRow(r.stdout, "false", "network", "IPNotAllowed") {
		t.Errorf("evaluate (denied):\n%s", r.stdout)
	}
	r = ts.admin(t, "policy", "evaluate", "--ip", "198.51.100.7", "--repository", "app", "--action", "pull", "-o", "json")
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodPost, "/policy/evaluate", in))

	// Allowed by a rule, for the admin.
	ts.admin(t, "network-rule", "add", "--ip-address", "198.51.100.0/24")
	r = ts.admin(t, "policy", "evaluate", "--ip", "198.51.100.7", "--principal", "admin", "--repository", "app", "--action", "PUSH", "-o", "json")
	res := decodeOut[auth.EvaluateResult](t, r)
	if !res.Allowed || res.Rule != "198.51.100.0/24" {
		t.Errorf("evaluate (allowed): %s", r.stdout)
	}
	in["principal"], in["action"] = "admin", "push"
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodPost, "/policy/evaluate", in))
	// Anonymous from inside the rule: the authz stage says no.
	r = ts.admin(t, "policy", "evaluate", "--ip", "198.51.100.7", "--repository", "app", "--action", "delete")
	if !hasRow(r.stdout, "false", "authn", "NotAuthenticated") {
		t.Errorf("evaluate (anonymous delete):\n%s", r.stdout)
	}

	ts.adminFails(t, "--ip, --repository and --action are required", "policy", "evaluate", "--ip", "198.51.100.7")
	ts.adminFails(t, `--action "copy": expected pull or push or delete`, "policy", "evaluate", "--ip", "198.51.100.7", "--repository", "app", "--action", "copy")
	ts.adminFails(t, "400 INVALID: clientIP", "policy", "evaluate", "--ip", "nowhere", "--repository", "app", "--action", "pull")
}
