package main

import (
	"net/http"
	"testing"

	"github.com/moat-registry/moat/auth"
)

func TestPrivateEndpoints(t *testing.T) {
	ts := sharedServer(t)
	r := ts.admin(t, "private-endpoint", "create", "lan", "--listen", "127.0.0.1:0", "--pending", "--description", "the lab", "-o", "json")
	ep := decodeOut[auth.PrivateEndpoint](t, r)
	if ep.State != "Pending" || ep.Address == "" || ep.Description != "the lab" {
		t.Fatalf("create: %s", r.stdout)
	}
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/private-endpoints/lan", nil))
	ts.adminFails(t, "private endpoint lan already exists", "private-endpoint", "create", "lan", "--listen", "127.0.0.1:0")
	ts.adminFails(t, "--listen is required", "private-endpoint", "create", "lan2")

	for _, step := range []struct {
		args  []string
		state string
	}{
		{[]string{"approve", "lan"}, "Approved"},
		{[]string{"reject", "lan"}, "Rejected"},
		{[]string{"update", "lan", "--state", "disconnected"}, "Disconnected"},
		{[]string{"approve", "lan"}, "Approved"},
	} {
		r := ts.admin(t, append([]string{"private-endpoint"}, step.args...)...)
		if !hasRow(r.stdout, "lan", "127.0.0.1:0", ep.Address, "false", step.state, "the", "lab") {
			t.Errorf("private-endpoint %v:\n%s", step.args, r.stdout)
		}
	}
	// The listener answers, and approved traffic is let through to /v2/.
	resp, err := http.Get("http://" + ep.Address + "/v2/")
	if err != nil {
		t.Fatalf("the endpoint's listener: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ on the approved endpoint anonymously: %d, want the 401 challenge", resp.StatusCode)
	}

	sameJSON(t, []byte(ts.admin(t, "private-endpoint", "list", "-o", "json").stdout), ts.api(t, http.MethodGet, "/private-endpoints", nil))
	if !hasRow(ts.admin(t, "private-endpoint", "show", "lan").stdout, "lan") {
		t.Error("show lacks lan")
	}
	ts.adminFails(t, `"Gone": expected Approved or Pending or Rejected or Disconnected`, "private-endpoint", "update", "lan", "--state", "Gone")
	ts.admin(t, "private-endpoint", "delete", "lan")
	ts.adminFails(t, `404 NOT_FOUND: private endpoint "lan" not found`, "private-endpoint", "show", "lan")
	ts.adminFails(t, "400 INVALID: listen", "private-endpoint", "create", "wide", "--listen", "0.0.0.0:0")
}

func TestServicesAndTrustedServices(t *testing.T) {
	ts := sharedServer(t)
	r := ts.admin(t, "trusted-services", "list")
	if !hasRow(r.stdout, "tasks", "false", "false") || !hasRow(r.stdout, "scanner", "false", "true") || !hasRow(r.stdout, "TYPE") {
		t.Errorf("trusted-services list:\n%s", r.stdout)
	}
	sameJSON(t, []byte(ts.admin(t, "trusted-services", "list", "-o", "json").stdout), ts.api(t, http.MethodGet, "/trusted-services", nil))

	r = ts.admin(t, "service", "create", "nightly", "--type", "tasks", "--identity", "system", "-o", "json")
	svc := decodeOut[auth.Service](t, r)
	if svc.Identity.Type != auth.IdentitySystem || svc.Identity.PrincipalName != "tasks-nightly" || svc.Identity.PrincipalID == "" {
		t.Errorf("service create: %s", r.stdout)
	}
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/services/nightly", nil))

	ts.admin(t, "identity", "create", "web-mi", "--kind", "managedIdentity")
	r = ts.admin(t, "service", "create", "web", "--type", "containerInstances", "--identity", "system", "--identity", "web-mi", "-o", "json")
	svc = decodeOut[auth.Service](t, r)
	if svc.Identity.Type != auth.IdentitySystemUser || len(svc.Identity.UserAssignedIdentities) != 1 || svc.Identity.UserAssignedIdentities[0] != "web-mi" {
		t.Errorf("service create with both identities: %s", r.stdout)
	}
	r = ts.admin(t, "service", "create", "aci", "--type", "containerInstances", "--identity", "web-mi", "-o", "json")
	if svc := decodeOut[auth.Service](t, r); svc.Identity.Type != auth.IdentityUser {
		t.Errorf("user-assigned only: %s", r.stdout)
	}
	ts.adminFails(t, "400 INVALID: identity.type: user-assigned identities are supported for containerInstances only", "service", "create", "t2", "--type", "tasks", "--identity", "web-mi")
	ts.adminFails(t, "service nightly already exists", "service", "create", "nightly", "--type", "tasks")

	r = ts.admin(t, "service", "list")
	if !hasRow(r.stdout, "nightly", "tasks", "SystemAssigned", "tasks-nightly") || !hasRow(r.stdout, "web", "containerInstances", "SystemAssigned,UserAssigned", "containerInstances-web") {
		t.Errorf("service list:\n%s", r.stdout)
	}
	if !hasRow(ts.admin(t, "service", "show", "web").stdout, "web") {
		t.Error("service show lacks web")
	}
	ts.admin(t, "service", "delete", "nightly")
	ts.adminFails(t, "404", "service", "show", "nightly")
	ts.adminFails(t, `404 NOT_FOUND: identity "tasks-nightly" not found`, "identity", "show", "tasks-nightly")
}
