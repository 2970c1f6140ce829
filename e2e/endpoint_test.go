package e2e

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// privateEndpoint is the private-endpoint resource as the CLI prints it.
type privateEndpoint struct {
	Name    string `json:"name"`
	Listen  string `json:"listen"`
	Address string `json:"address"`
	State   string `json:"state"`
}

// privateEndpointWorkflow: with public network access disabled, a private
// endpoint on another loopback address (127.0.0.5) carries the traffic
// of anyone with a role; rejected, it refuses everyone with the
// `private endpoint 'pe1' is not approved` message, the trusted task's
// identity included; approved again it works; deleted, its listener is
// gone. Clients talk to the endpoint's own address: Location headers
// are path-absolute and the token realm follows the Host, so they stay
// on it.
func privateEndpointWorkflow(t *testing.T, f *policyFixture) {
	m := f.m
	m.moat(t, "update", "--public-network-access", "Disabled", "--default-action", "Allow")
	var pe privateEndpoint
	m.moatJSON(t, &pe, "private-endpoint", "create", "pe1", "--listen", "127.0.0.5:0")
	host, port, err := net.SplitHostPort(pe.Address)
	if err != nil || host != "127.0.0.5" || port == "0" || pe.State != "Approved" {
		t.Fatalf("moat private-endpoint create: %+v (%v), want Approved with an address on 127.0.0.5", pe, err)
	}
	ref := func(repoAndReference string) string { return pe.Address + "/" + repoAndReference }

	// The public endpoint refuses alice; the private one serves her.
	if a := get(t, m.URL+"/v2/", "alice", f.aliceSecret, nil); a.status != http.StatusForbidden {
		t.Errorf("GET /v2/ on the public endpoint as alice with public access disabled: %s, want 403", a)
	}
	alice := newDriver(t, "oras")
	login(t, alice, pe.Address, "alice", f.aliceSecret)
	pushed := push(t, alice, ref("app/private:1"))
	if served := m.servedDigest(t, "app/private", "1"); served != pushed {
		t.Fatalf("alice pushed %s through pe1, moat serves %s", pushed, served)
	}
	if pulled := pull(t, alice, ref("app/private:1")); pulled != pushed {
		t.Errorf("alice pulled %s through pe1, pushed %s", pulled, pushed)
	}
	task := newDriver(t, "crane")
	login(t, task, pe.Address, "tasks-nightly", f.taskSecret)
	if pulled := pull(t, task, ref("app/private:1")); pulled != pushed {
		t.Errorf("the task pulled %s through pe1, pushed %s", pulled, pushed)
	}

	// Rejected: refused whoever sends it, the trusted service included.
	m.moatJSON(t, &pe, "private-endpoint", "reject", "pe1")
	if pe.State != "Rejected" {
		t.Fatalf("moat private-endpoint reject: state %s", pe.State)
	}
	const notApproved = "private endpoint 'pe1' is not approved"
	for _, who := range []struct{ user, password string }{{"alice", f.aliceSecret}, {"tasks-nightly", f.taskSecret}, {"", ""}} {
		a := get(t, "http://"+pe.Address+"/v2/", who.user, who.password, nil)
		if code, msg := a.ociError(); a.status != http.StatusForbidden || code != "DENIED" || msg != notApproved {
			t.Errorf("GET /v2/ on the rejected pe1 as %q: %s, want 403 DENIED %q", who.user, a, notApproved)
		}
	}
	out := pullRefused(t, alice, ref("app/private:1"))
	wantMessage(t, "oras pull through the rejected pe1", out, notApproved)
	out = pullRefused(t, task, ref("app/private:1"))
	wantMessage(t, "crane pull by the task through the rejected pe1", out, notApproved)
	// Refused before the credentials are looked at: no principal.
	m.waitAudit(t, "a pull refused on the rejected pe1", func(e auditEntry) bool {
		return e.Endpoint == "pe1" && e.Principal == "" && e.Repository == "app/private" && e.Action == "pull" &&
			e.Stage == "network" && e.Reason == "PrivateEndpointNotApproved"
	})

	// Approved again: it works again.
	m.moatJSON(t, &pe, "private-endpoint", "approve", "pe1")
	if pulled := pull(t, alice, ref("app/private:1")); pulled != pushed {
		t.Errorf("alice pulled %s through the approved pe1, pushed %s", pulled, pushed)
	}

	// Deleted: the listener is closed.
	m.moat(t, "private-endpoint", "delete", "pe1")
	conn, err := net.DialTimeout("tcp", pe.Address, 10*time.Second)
	if err == nil {
		_ = conn.Close()
		t.Fatalf("%s accepts connections after moat private-endpoint delete", pe.Address)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialing %s after moat private-endpoint delete: %v, want connection refused", pe.Address, err)
	}
}
