package e2e

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// notAllowed is the message of a network denial (SPEC §3).
func notAllowed(ip string) string {
	return "client with IP '" + ip + "' is not allowed access to this registry"
}

// policyFixture is the moat of the network-policy test, two relays that
// give its clients the source addresses 127.0.0.2 and 127.0.0.3, and the
// credentials of a trusted service's identity and of an ordinary user.
type policyFixture struct {
	m            *securedMoat
	from2, from3 *relay
	// taskSecret is the secret of tasks-nightly, the system-assigned
	// identity of the tasks instance "nightly", which holds AcrPush.
	taskSecret string
	// aliceSecret is the secret of alice, a user with AcrPush.
	aliceSecret string
}

// TestNetworkPolicy walks the seed's workflow (allow trusted services to
// access a network-restricted registry) end to end with real clients,
// each connection coming from a source address of the test's choosing
// through a relay, and then the other network settings of SPEC §3:
//
//   - trusted services: with public network access disabled, the
//     managed identity of a tasks instance pushes and pulls from
//     127.0.0.2 while an ordinary user from there is refused with the
//     `client with IP` message; with the bypass off the task is refused
//     too, GET /v2/ answers 403 at once; with it back on the task works;
//   - IP rules: defaultAction Deny and a rule for 127.0.0.3: a user
//     through 127.0.0.3 works, through 127.0.0.2 is refused, the task
//     through 127.0.0.2 works by the bypass; docker login from the blocked
//     address is refused by the token endpoint with the message, and with
//     the bypass off by GET /v2/ with a bare 403; a forged
//     X-Forwarded-For from an untrusted peer changes nothing;
//   - a private endpoint keeps working for a user with a role while
//     public access is disabled, refuses everyone once rejected, and its
//     listener closes when it is deleted;
//   - the audit log lists the denials with stage, reason and the relay's
//     address, and `moat policy evaluate` explains the bypass.
func TestNetworkPolicy(t *testing.T) {
	m := startSecuredMoat(t, "")
	f := &policyFixture{
		m:     m,
		from2: startRelay(t, m.Host, "127.0.0.2"),
		from3: startRelay(t, m.Host, "127.0.0.3"),
	}

	// The seed's workflow, steps 1 and 2: a tasks instance with a
	// system-assigned managed identity, its credentials, and AcrPush.
	var svc struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Identity struct {
			Type          string `json:"type"`
			PrincipalName string `json:"principalName"`
			PrincipalID   string `json:"principalId"`
		} `json:"identity"`
	}
	m.moatJSON(t, &svc, "service", "create", "nightly", "--type", "tasks", "--identity", "system")
	if svc.Identity.PrincipalName != "tasks-nightly" || svc.Identity.PrincipalID == "" {
		t.Fatalf("moat service create: identity %+v, want tasks-nightly with a principalId", svc.Identity)
	}
	f.taskSecret = m.addSecret(t, "tasks-nightly")
	m.moat(t, "role", "assign", "--assignee", "tasks-nightly", "--role", "AcrPush")
	f.aliceSecret = m.createUser(t, "alice", "AcrPush", "/")
	// Basic auth straight on /v2/, through each relay: it pays each
	// secret's bcrypt comparison once, and no denial is recorded yet.
	for _, c := range []struct{ user, password string }{{"tasks-nightly", f.taskSecret}, {"alice", f.aliceSecret}} {
		for _, r := range []*relay{f.from2, f.from3} {
			if a := get(t, r.URL+"/v2/", c.user, c.password, nil); a.status != http.StatusOK {
				t.Fatalf("GET /v2/ as %s from %s: %s", c.user, r.Source, a)
			}
		}
	}

	// The admin reads what the clients pushed through a private endpoint
	// of its own, which the public network settings do not touch.
	var ops privateEndpoint
	m.moatJSON(t, &ops, "private-endpoint", "create", "ops", "--listen", "127.0.0.6:0")
	m.dataURL = "http://" + ops.Address

	steps := []struct {
		name string
		run  func(*testing.T, *policyFixture)
	}{
		{"trusted services", trustedServicesWorkflow},
		{"ip rules", ipRulesWorkflow},
		{"private endpoint", privateEndpointWorkflow},
		{"audit", auditWorkflow},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, f) }) {
			return // the later steps build on this one
		}
	}
}

// trustedServicesWorkflow is the seed's workflow with public network
// access disabled, driven with oras (which prints the error body).
func trustedServicesWorkflow(t *testing.T, f *policyFixture) {
	m := f.m
	task, alice := newDriver(t, "oras"), newDriver(t, "oras")
	task.cli().logVersion(t)
	repo := "app/nightly"

	// Step 3: disable public network access.
	m.moat(t, "update", "--public-network-access", "Disabled")

	// Step 4: the task's identity authenticates and pushes and pulls.
	login(t, task, f.from2.Host, "tasks-nightly", f.taskSecret)
	pushed := push(t, task, f.from2.ref(repo+":1"))
	if served := m.servedDigest(t, repo, "1"); served != pushed {
		t.Fatalf("the task pushed %s, moat serves %s", pushed, served)
	}
	if pulled := pull(t, task, f.from2.ref(repo+":1")); pulled != pushed {
		t.Errorf("the task pulled %s, pushed %s", pulled, pushed)
	}

	// An ordinary user from the same address is refused by the token
	// endpoint, with the message.
	out := loginRefused(t, alice, f.from2.Host, "alice", f.aliceSecret)
	wantMessage(t, "oras login as alice from 127.0.0.2", out, notAllowed("127.0.0.2"))
	m.waitAudit(t, "alice refused from 127.0.0.2 (public access disabled)", func(e auditEntry) bool {
		return e.ClientIP == "127.0.0.2" && e.Principal == "alice" && e.Stage == "network" && e.Reason == "PublicNetworkAccessDisabled"
	})
	// The what-if API agrees: the task by the bypass, alice denied.
	m.wantEvaluate(t, "127.0.0.2", "tasks-nightly", "push", true, "TrustedServiceBypass")
	m.wantEvaluate(t, "127.0.0.2", "alice", "push", false, "PublicNetworkAccessDisabled")

	// Disable trusted services: the task is refused too, and GET /v2/ is
	// refused at once, credentials or not.
	bypassOff := time.Now()
	m.moat(t, "update", "--allow-trusted-services", "false")
	out = pullRefused(t, task, f.from2.ref(repo+":1"))
	wantMessage(t, "oras pull by the task with the bypass off", out, notAllowed("127.0.0.2"))
	wantRefused(t, "a push by the task with the bypass off", pushRefused(t, task, f.from2.ref(repo+":2")))
	for _, who := range []struct{ user, password string }{{"tasks-nightly", f.taskSecret}, {"", ""}} {
		a := get(t, f.from2.URL+"/v2/", who.user, who.password, nil)
		if code, msg := a.ociError(); a.status != http.StatusForbidden || code != "DENIED" || msg != notAllowed("127.0.0.2") {
			t.Errorf("GET /v2/ from 127.0.0.2 as %q with the bypass off: %s, want 403 DENIED %q", who.user, a, notAllowed("127.0.0.2"))
		}
		if c := a.header.Get("WWW-Authenticate"); c != "" {
			t.Errorf("GET /v2/ from 127.0.0.2 with the bypass off: a challenge %q, want none", c)
		}
	}
	// Refused before the credentials are looked at, so the entry names no
	// principal.
	m.waitAudit(t, "the task's pull refused from 127.0.0.2 with the bypass off", func(e auditEntry) bool {
		return e.Time.After(bypassOff) && e.ClientIP == "127.0.0.2" && e.Principal == "" && e.Repository == repo &&
			e.Action == "pull" && e.Stage == "network" && e.Reason == "PublicNetworkAccessDisabled"
	})
	m.wantEvaluate(t, "127.0.0.2", "tasks-nightly", "push", false, "PublicNetworkAccessDisabled")

	// Turn it back on: the task works again.
	m.moat(t, "update", "--allow-trusted-services", "true")
	pushed = push(t, task, f.from2.ref(repo+":2"))
	if pulled := pull(t, task, f.from2.ref(repo+":2")); pulled != pushed {
		t.Errorf("the task pulled %s after the bypass came back, pushed %s", pulled, pushed)
	}
}

// ipRulesWorkflow: public access enabled with defaultAction Deny and an
// IP rule for 127.0.0.3, driven with crane and docker.
func ipRulesWorkflow(t *testing.T, f *policyFixture) {
	m := f.m
	m.moat(t, "update", "--public-network-access", "Enabled", "--default-action", "Deny")
	m.moat(t, "network-rule", "add", "--ip-address", "127.0.0.3")

	// A user inside the rule works.
	alice := newDriver(t, "crane")
	alice.cli().logVersion(t)
	login(t, alice, f.from3.Host, "alice", f.aliceSecret)
	pushed := push(t, alice, f.from3.ref("app/alice:1"))
	if served := m.servedDigest(t, "app/alice", "1"); served != pushed {
		t.Fatalf("alice pushed %s from 127.0.0.3, moat serves %s", pushed, served)
	}
	if pulled := pull(t, alice, f.from3.ref("app/alice:1")); pulled != pushed {
		t.Errorf("alice pulled %s from 127.0.0.3, pushed %s", pulled, pushed)
	}

	// The same user from outside the rule is refused with the message
	// (crane's login writes the credentials only; the pull is the test).
	login(t, alice, f.from2.Host, "alice", f.aliceSecret)
	out := pullRefused(t, alice, f.from2.ref("app/alice:1"))
	wantMessage(t, "crane pull as alice from 127.0.0.2", out, notAllowed("127.0.0.2"))
	m.waitAudit(t, "alice refused from 127.0.0.2 (no IP rule)", func(e auditEntry) bool {
		return e.ClientIP == "127.0.0.2" && e.Principal == "alice" && e.Stage == "network" && e.Reason == "IPNotAllowed"
	})

	// The task's identity from outside the rule works by the bypass.
	task := newDriver(t, "crane")
	login(t, task, f.from2.Host, "tasks-nightly", f.taskSecret)
	pushed = push(t, task, f.from2.ref("app/nightly:3"))
	if pulled := pull(t, task, f.from2.ref("app/nightly:3")); pulled != pushed {
		t.Errorf("the task pulled %s from 127.0.0.2, pushed %s", pulled, pushed)
	}

	// A forged X-Forwarded-For from an untrusted peer changes nothing,
	// either way.
	forged := func(r *relay, claim string) rawAnswer {
		return get(t, r.URL+"/v2/", "alice", f.aliceSecret, http.Header{"X-Forwarded-For": {claim}})
	}
	a := forged(f.from2, "127.0.0.3")
	if code, msg := a.ociError(); a.status != http.StatusForbidden || code != "DENIED" || msg != notAllowed("127.0.0.2") {
		t.Errorf("GET /v2/ from 127.0.0.2 claiming X-Forwarded-For 127.0.0.3: %s, want 403 %q", a, notAllowed("127.0.0.2"))
	}
	if a := forged(f.from3, "127.0.0.2"); a.status != http.StatusOK {
		t.Errorf("GET /v2/ from 127.0.0.3 claiming X-Forwarded-For 127.0.0.2: %s, want 200", a)
	}

	// docker, through the relays: the daemon dials them.
	dockerFrom3 := newDriver(t, "docker")
	dockerFrom3.cli().logVersion(t)
	login(t, dockerFrom3, f.from3.Host, "alice", f.aliceSecret)
	pushed = push(t, dockerFrom3, f.from3.ref("app/docker:1"))
	if pulled := pull(t, dockerFrom3, f.from3.ref("app/docker:1")); pulled != pushed {
		t.Errorf("docker pulled %s from 127.0.0.3, pushed %s", pulled, pushed)
	}
	// From the blocked address, with the bypass on: GET /v2/ challenges
	// (a trusted service could authenticate), the token endpoint refuses
	// alice with the message.
	dockerFrom2 := newDriver(t, "docker")
	out = loginRefused(t, dockerFrom2, f.from2.Host, "alice", f.aliceSecret)
	wantMessage(t, "docker login from 127.0.0.2 with the bypass on", out, notAllowed("127.0.0.2"))
	// With the bypass off GET /v2/ is refused at once: docker shows the
	// status only.
	m.moat(t, "update", "--allow-trusted-services", "false")
	out = loginRefused(t, dockerFrom2, f.from2.Host, "alice", f.aliceSecret)
	wantMessage(t, "docker login from 127.0.0.2 with the bypass off", out, "403 Forbidden")
	if strings.Contains(out, notAllowed("127.0.0.2")) {
		t.Errorf("docker login from 127.0.0.2 with the bypass off shows the body; want the bare status (was GET /v2/ not refused at once?):\n%s", out)
	}
	m.moat(t, "update", "--allow-trusted-services", "true")
}

// auditWorkflow reads the workflow's denials back with the CLI, each
// with its stage, reason and the address the relay gave the client, and
// asks `moat policy evaluate` why the task gets through while public
// network access is disabled.
func auditWorkflow(t *testing.T, f *policyFixture) {
	m := f.m
	var log struct {
		Value []auditEntry `json:"value"`
	}
	m.moatJSON(t, &log, "audit", "--denied", "--since", "1h")
	wants := []struct {
		what                                              string
		clientIP, endpoint, principal, repository, reason string
	}{
		{"alice from 127.0.0.2, public access disabled", "127.0.0.2", "public", "alice", "", "PublicNetworkAccessDisabled"},
		// Refused before the credentials are looked at: no principal.
		{"the task's pull from 127.0.0.2, bypass off", "127.0.0.2", "public", "", "app/nightly", "PublicNetworkAccessDisabled"},
		{"alice from 127.0.0.2, no IP rule", "127.0.0.2", "public", "alice", "", "IPNotAllowed"},
		{"a pull on the rejected pe1", "", "pe1", "", "app/private", "PrivateEndpointNotApproved"},
	}
	for _, w := range wants {
		found := slices.ContainsFunc(log.Value, func(e auditEntry) bool {
			return !e.Allowed && e.Stage == "network" && e.Reason == w.reason && e.Endpoint == w.endpoint &&
				e.Principal == w.principal && (w.clientIP == "" || e.ClientIP == w.clientIP) &&
				(w.repository == "" || e.Repository == w.repository)
		})
		if !found {
			t.Errorf("moat audit --denied lists no network denial of %s", w.what)
		}
	}
	for _, e := range log.Value {
		if e.ClientIP == "127.0.0.3" && e.Stage == "network" {
			t.Errorf("moat audit --denied lists a network denial from 127.0.0.3, which was never refused: %s", e)
		}
		if e.Allowed {
			t.Errorf("moat audit --denied lists an allowed request: %s", e)
		}
	}
	if t.Failed() {
		for _, e := range log.Value {
			t.Log(e)
		}
	}
	m.wantEvaluate(t, "127.0.0.2", "tasks-nightly", "push", true, "TrustedServiceBypass")
	m.wantEvaluate(t, "127.0.0.3", "alice", "pull", false, "PublicNetworkAccessDisabled")
	t.Logf("moat policy evaluate:\n%s", m.moat(t, "policy", "evaluate", "--ip", "127.0.0.2",
		"--principal", "tasks-nightly", "--repository", "app", "--action", "push"))
}

// TestNetworkPolicyIPv6: IP rules match IPv6 clients over a real socket.
// ::1 is the one IPv6 source address a test has, so moat listens on
// [::1] and oras connects straight to it, as the admin (no bcrypt for a
// new secret): with defaultAction Deny a rule ::1/128 lets it push and
// pull; with only a rule for another IPv6 network it is refused with
// `client with IP '::1'`, and the audit log and `moat policy evaluate`
// say why.
func TestNetworkPolicyIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		unavailable(t, "no IPv6 loopback address: %v", err)
	}
	_ = ln.Close()
	m := startSecuredMoat(t, "::1")
	oras := newDriver(t, "oras")
	m.moat(t, "update", "--default-action", "Deny")
	m.moat(t, "network-rule", "add", "--ip-address", "::1/128")

	login(t, oras, m.Host, "admin", m.password)
	pushed := push(t, oras, m.ref("app/v6:1"))
	if served := m.servedDigest(t, "app/v6", "1"); served != pushed {
		t.Fatalf("oras pushed %s over IPv6, moat serves %s", pushed, served)
	}
	if pulled := pull(t, oras, m.ref("app/v6:1")); pulled != pushed {
		t.Errorf("oras pulled %s over IPv6, pushed %s", pulled, pushed)
	}

	m.moat(t, "network-rule", "add", "--ip-address", "2001:db8::/32")
	m.moat(t, "network-rule", "remove", "--ip-address", "::1/128")
	wantMessage(t, "oras pull from ::1 outside the rules", pullRefused(t, oras, m.ref("app/v6:1")), notAllowed("::1"))
	m.waitAudit(t, "the admin refused from ::1", func(e auditEntry) bool {
		return e.ClientIP == "::1" && e.Stage == "network" && e.Reason == "IPNotAllowed"
	})
	m.wantEvaluate(t, "::1", "admin", "pull", false, "IPNotAllowed")
	if d := m.wantEvaluate(t, "2001:db8:1::7", "admin", "pull", true, ""); d.Rule != "2001:db8::/32" {
		t.Errorf("moat policy evaluate --ip 2001:db8:1::7: rule %q, want 2001:db8::/32", d.Rule)
	}
}
