package main

import (
	"net/http"
	"testing"

	"github.com/moat-registry/moat/auth"
)

func TestRoles(t *testing.T) {
	ts := sharedServer(t)
	ts.admin(t, "identity", "create", "ci")

	r := ts.admin(t, "role", "assign", "--assignee", "ci", "--role", "AcrPush", "--scope", "repositories/app/*", "-o", "json")
	ra := decodeOut[auth.RoleAssignment](t, r)
	if ra.Role != "Push" || ra.Principal != "ci" || ra.Scope != "repositories/app/*" || len(ra.ID) != 36 || ra.PrincipalID == "" {
		t.Fatalf("assign: %+v", ra)
	}
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/role-assignments/"+ra.ID, nil))

	// The same role at the same scope again is the same assignment.
	r = ts.admin(t, "role", "assign", "--assignee", "ci", "--role", "push", "--scope", "repositories/app/*")
	if !hasRow(r.stdout, ra.ID, "ci", "Push", "repositories/app/*") {
		t.Errorf("second assign:\n%s", r.stdout)
	}
	ts.admin(t, "role", "assign", "--assignee", "ci", "--role", "Reader", "--id", "ci-reader")

	r = ts.admin(t, "role", "list", "--assignee", "ci")
	if rows := tableRows(r.stdout); len(rows) != 3 || !hasRow(r.stdout, "ID", "PRINCIPAL", "ROLE", "SCOPE") || !hasRow(r.stdout, "ci-reader", "ci", "Reader", "/") {
		t.Errorf("list --assignee ci:\n%s", r.stdout)
	}
	sameJSON(t, []byte(ts.admin(t, "role", "list", "-o", "json").stdout), ts.api(t, http.MethodGet, "/role-assignments", nil))

	ts.admin(t, "role", "remove", "--assignee", "ci", "--role", "AcrPush", "--scope", "repositories/app/*")
	ts.admin(t, "role", "remove", "ci-reader")
	if rows := tableRows(ts.admin(t, "role", "list", "--assignee", "ci").stdout); len(rows) != 1 {
		t.Errorf("roles left after remove: %v", rows)
	}
	ts.adminFails(t, "no role assignment of ci with role Push", "role", "remove", "--assignee", "ci", "--role", "AcrPush")
	ts.adminFails(t, "404 NOT_FOUND", "role", "remove", "ci-reader")
	ts.adminFails(t, "not both", "role", "remove", "x", "--assignee", "ci")
	ts.adminFails(t, `--role "Boss": not a built-in role`, "role", "assign", "--assignee", "ci", "--role", "Boss")
	ts.adminFails(t, `400 INVALID: principal: no identity named or with principalId "ghost"`, "role", "assign", "--assignee", "ghost", "--role", "Pull")

	r = ts.admin(t, "role", "definitions")
	if !hasRow(r.stdout, "Push", "AcrPush") || !hasRow(r.stdout, "Owner", "Owner", "Owner") || len(tableRows(r.stdout)) != len(auth.Roles)+1 {
		t.Errorf("definitions:\n%s", r.stdout)
	}
	if v := decodeOut[map[string][]map[string]string](t, ts.admin(t, "role", "definitions", "-o", "json"))["value"]; len(v) != len(auth.Roles) || v[1]["alias"] != "AcrPush" {
		t.Errorf("definitions -o json: %v", v)
	}
}

// TestContributorCannotAssignRoles runs the CLI as a Contributor.
func TestContributorCannotAssignRoles(t *testing.T) {
	ts := sharedServer(t)
	ts.admin(t, "identity", "create", "ops")
	ts.admin(t, "role", "assign", "--assignee", "ops", "--role", "Contributor")
	secret := decodeOut[map[string]string](t, ts.admin(t, "identity", "secret", "add", "ops", "-o", "json"))["value"]
	env := envWith(ts.adminEnv(t), "MOAT_USERNAME", "ops", "MOAT_PASSWORD", secret)

	// Contributors change things…
	if r := runCLI(t, env, "", "scope-map", "create", "ops-map", "--action", "repositories/ops/content/read"); r.code != 0 {
		t.Errorf("scope-map create as Contributor: %s", r.stderr)
	}
	// …but not role assignments.
	args := []string{"role", "assign", "--assignee", "ops", "--role", "Owner"}
	expectFailure(t, runCLI(t, env, "", args...), "moat: 403 DENIED: this needs the Owner role at scope /\n", args)
	args = []string{"keys", "rotate"}
	expectFailure(t, runCLI(t, env, "", args...), "403 DENIED", args)
}
