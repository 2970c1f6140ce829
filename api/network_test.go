package api_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

func TestPrivateEndpoints(t *testing.T) {
	e := start(t)
	var addr string
	e.run(t, []call{
		{name: "create on 127.0.0.2:0", as: admin, method: http.MethodPut, path: "private-endpoints/lab",
			body: `{"listen":"127.0.0.2:0"}`, status: http.StatusCreated, check: func(t *testing.T, r *result) {
				o := r.object(t)
				addr = str(o, "address")
				host, port, err := net.SplitHostPort(addr)
				if err != nil || host != "127.0.0.2" || port == "0" || port == "" {
					t.Errorf("address %q, want 127.0.0.2 with the bound port", addr)
				}
				if o["listen"] != "127.0.0.2:0" || o["state"] != "Approved" {
					t.Errorf("got %s", r.body)
				}
			}},
		{name: "outside allowedAddresses", as: admin, method: http.MethodPut, path: "private-endpoints/far",
			body: `{"listen":"192.0.2.1:0"}`, status: http.StatusBadRequest, check: apiError("INVALID", "listen", "allowedAddresses")},
		{name: "IPv4 wildcard", as: admin, method: http.MethodPut, path: "private-endpoints/wild",
			body: `{"listen":"0.0.0.0:0"}`, status: http.StatusBadRequest, check: apiError("INVALID", "listen", "wildcard")},
		{name: "IPv6 wildcard", as: admin, method: http.MethodPut, path: "private-endpoints/wild",
			body: `{"listen":"[::]:0"}`, status: http.StatusBadRequest, check: apiError("INVALID", "listen", "wildcard")},
		{name: "host name", as: admin, method: http.MethodPut, path: "private-endpoints/wild",
			body: `{"listen":"localhost:0"}`, status: http.StatusBadRequest, check: apiError("INVALID", "listen")},
		{name: "no listen", as: admin, method: http.MethodPut, path: "private-endpoints/wild",
			body: `{}`, status: http.StatusBadRequest, check: apiError("INVALID", "listen")},
		{name: "named public", as: admin, method: http.MethodPut, path: "private-endpoints/public",
			body: `{"listen":"127.0.0.1:0"}`, status: http.StatusBadRequest, check: apiError("INVALID", "name")},
	})
	base := "http://" + addr
	if got := e.dataPlane(t, base, http.MethodGet, "/v2/", anonymous); got != http.StatusUnauthorized {
		t.Errorf("anonymous GET /v2/ on the endpoint: %d, want the 401 challenge", got)
	}
	if got := e.dataPlane(t, base, http.MethodGet, "/v2/", admin); got != http.StatusOK {
		t.Errorf("GET /v2/ on the endpoint as admin: %d, want 200", got)
	}

	// Rejected, the endpoint refuses everyone; approved, it serves again.
	e.do(t, call{as: admin, method: http.MethodPost, path: "private-endpoints/lab/reject", status: http.StatusOK, check: field("state", "Rejected")})
	e.do(t, call{as: admin, method: http.MethodGet, path: "private-endpoints/lab", status: http.StatusOK, check: field("state", "Rejected")})
	if got := e.dataPlane(t, base, http.MethodGet, "/v2/", admin); got != http.StatusForbidden {
		t.Errorf("GET /v2/ on a rejected endpoint: %d, want 403", got)
	}
	e.do(t, call{as: admin, method: http.MethodPost, path: "private-endpoints/lab/approve", status: http.StatusOK, check: field("state", "Approved")})
	if got := e.dataPlane(t, base, http.MethodGet, "/v2/", admin); got != http.StatusOK {
		t.Errorf("GET /v2/ on an approved endpoint: %d, want 200", got)
	}
	e.do(t, call{as: admin, method: http.MethodPut, path: "private-endpoints/lab", body: `{"state":"Disconnected"}`, status: http.StatusOK,
		check: func(t *testing.T, r *result) {
			if o := r.object(t); o["state"] != "Disconnected" || o["address"] != addr {
				t.Errorf("got %s, want Disconnected on %s", r.body, addr)
			}
		}})
	if got := e.dataPlane(t, base, http.MethodGet, "/v2/", admin); got != http.StatusForbidden {
		t.Errorf("GET /v2/ on a disconnected endpoint: %d, want 403", got)
	}

	// Pending on creation, when asked.
	e.do(t, call{as: admin, method: http.MethodPut, path: "private-endpoints/later", body: `{"listen":"127.0.0.1:0","state":"Pending"}`,
		status: http.StatusCreated, check: field("state", "Pending")})
	e.do(t, call{as: admin, method: http.MethodGet, path: "private-endpoints", status: http.StatusOK, check: listed("name", "lab", "later")})

	// Deleting closes the listener before answering.
	e.do(t, call{as: admin, method: http.MethodDelete, path: "private-endpoints/lab", status: http.StatusNoContent})
	e.client.CloseIdleConnections()
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after DELETE", addr)
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("dialing %s after DELETE: %v, want connection refused", addr, err)
	}
	e.do(t, call{as: admin, method: http.MethodGet, path: "private-endpoints/lab", status: http.StatusNotFound})
}

func TestServices(t *testing.T) {
	e := start(t)
	contributor := e.identityWithRole(t, "contrib", "Contributor")
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/nightly", body: `{"type":"tasks","identity":{"type":"SystemAssigned"}}`,
		status: http.StatusCreated})
	svc := e.get(t, "services/nightly")
	id := e.get(t, "identities/tasks-nightly")
	if str(svc, "identity.principalName") != "tasks-nightly" || str(svc, "identity.principalId") == "" ||
		str(svc, "identity.principalId") != str(id, "principalId") {
		t.Errorf("service %v, identity %v: principalName/principalId do not name the identity", svc, id)
	}
	if id["kind"] != "managedIdentity" || id["service"] != "nightly" {
		t.Errorf("system-assigned identity %v", id)
	}
	e.do(t, call{as: admin, method: http.MethodGet, path: "identities", status: http.StatusOK, check: listed("name", "admin", "contrib", "tasks-nightly")})

	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/mi", body: `{"kind":"managedIdentity"}`, status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/person", status: http.StatusCreated})
	e.run(t, []call{
		{name: "system-assigned identity kind stays", as: admin, method: http.MethodPut, path: "identities/tasks-nightly",
			body: `{"kind":"user"}`, status: http.StatusBadRequest, check: apiError("INVALID", "kind")},
		{name: "DELETE the system-assigned identity", as: admin, method: http.MethodDelete, path: "identities/tasks-nightly",
			status: http.StatusConflict, check: apiError("CONFLICT")},
		{name: "UserAssigned on tasks", as: admin, method: http.MethodPut, path: "services/t2",
			body: `{"type":"tasks","identity":{"type":"UserAssigned","userAssignedIdentities":["mi"]}}`, status: http.StatusBadRequest,
			check: apiError("INVALID", "containerInstances")},
		{name: "UserAssigned user identity", as: admin, method: http.MethodPut, path: "services/aci",
			body:   `{"type":"containerInstances","identity":{"type":"UserAssigned","userAssignedIdentities":["person"]}}`,
			status: http.StatusBadRequest, check: apiError("INVALID", "userAssignedIdentities[0]")},
		{name: "UserAssigned system identity", as: admin, method: http.MethodPut, path: "services/aci",
			body:   `{"type":"containerInstances","identity":{"type":"UserAssigned","userAssignedIdentities":["tasks-nightly"]}}`,
			status: http.StatusBadRequest, check: apiError("INVALID", "userAssignedIdentities[0]")},
		{name: "UserAssigned unknown identity", as: admin, method: http.MethodPut, path: "services/aci",
			body:   `{"type":"containerInstances","identity":{"type":"UserAssigned","userAssignedIdentities":["ghost"]}}`,
			status: http.StatusBadRequest, check: apiError("INVALID", "ghost")},
		{name: "UserAssigned without identities", as: admin, method: http.MethodPut, path: "services/aci",
			body:   `{"type":"containerInstances","identity":{"type":"UserAssigned"}}`,
			status: http.StatusBadRequest, check: apiError("INVALID", "userAssignedIdentities")},
		{name: "UserAssigned managed identity", as: admin, method: http.MethodPut, path: "services/aci",
			body:   `{"type":"containerInstances","identity":{"type":"UserAssigned,SystemAssigned","userAssignedIdentities":["mi"]}}`,
			status: http.StatusCreated, check: func(t *testing.T, r *result) {
				o := r.object(t)
				if str(o, "identity.type") != "SystemAssigned,UserAssigned" || str(o, "identity.principalName") != "containerInstances-aci" {
					t.Errorf("got %s", r.body)
				}
			}},
		{name: "no identity", as: admin, method: http.MethodPut, path: "services/scan", body: `{"type":"scanner"}`,
			status: http.StatusCreated, check: field("identity.type", "None")},
	})

	// Dropping the system-assigned identity deletes it.
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/aci",
		body: `{"type":"containerInstances","identity":{"type":"UserAssigned","userAssignedIdentities":["mi"]}}`, status: http.StatusOK,
		check: func(t *testing.T, r *result) {
			if str(r.object(t), "identity.principalName") != "" {
				t.Errorf("got %s", r.body)
			}
		}})
	e.do(t, call{as: admin, method: http.MethodGet, path: "identities/containerInstances-aci", status: http.StatusNotFound})

	// A Contributor may not delete a service whose identity holds a role
	// (its role assignments go with it); an Owner may.
	e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/nightly-push", body: `{"principal":"tasks-nightly","role":"AcrPush"}`,
		status: http.StatusCreated})
	e.do(t, call{as: contributor, method: http.MethodDelete, path: "services/nightly", status: http.StatusForbidden, check: denied})
	e.do(t, call{as: contributor, method: http.MethodPut, path: "services/nightly", body: `{"type":"tasks"}`, status: http.StatusForbidden, check: denied})
	e.do(t, call{as: contributor, method: http.MethodPut, path: "services/nightly", body: `{"type":"tasks","identity":{"type":"SystemAssigned"}}`,
		status: http.StatusOK})
	e.do(t, call{as: admin, method: http.MethodDelete, path: "services/nightly", status: http.StatusNoContent})
	e.do(t, call{as: admin, method: http.MethodGet, path: "identities/tasks-nightly", status: http.StatusNotFound})
	e.do(t, call{as: admin, method: http.MethodGet, path: "role-assignments/nightly-push", status: http.StatusNotFound})
	e.do(t, call{as: contributor, method: http.MethodDelete, path: "services/scan", status: http.StatusNoContent})
}

func TestTrustedServices(t *testing.T) {
	e := start(t)
	before := append([]auth.TrustedService(nil), auth.TrustedServices...)
	e.do(t, call{as: admin, method: http.MethodGet, path: "trusted-services", status: http.StatusOK,
		check: listed("type", "containerInstances", "machineLearning", "registry", "scanner", "tasks")})
	for i := range before {
		if auth.TrustedServices[i] != before[i] {
			t.Fatalf("listing the catalog reordered auth.TrustedServices: %v", auth.TrustedServices)
		}
	}
	var cat struct {
		Value []auth.TrustedService `json:"value"`
	}
	e.do(t, call{as: admin, method: http.MethodGet, path: "trusted-services", status: http.StatusOK}).json(t, &cat)
	for _, s := range cat.Value {
		if s.UserAssigned != (s.Type == auth.ServiceContainerInstances) || s.BypassReadOnly != (s.Type == auth.ServiceScanner) || !s.NeedsIdentity {
			t.Errorf("catalog row %+v", s)
		}
	}
}
