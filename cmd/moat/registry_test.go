package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moat-registry/moat/auth"
)

func TestShowJSONIsTheAPIAnswer(t *testing.T) {
	ts := sharedServer(t)
	r := ts.admin(t, "show", "-o", "json")
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/registry", nil))
	r = ts.admin(t, "show")
	for _, row := range [][]string{
		{"PROPERTY", "VALUE"},
		{"publicNetworkAccess", "Enabled"},
		{"networkRuleSet.defaultAction", "Allow"},
		{"networkRuleBypassOptions", "TrustedServices"},
		{"anonymousPullEnabled", "false"},
		{"policies.exportPolicy.status", "enabled"},
	} {
		if !hasRow(r.stdout, row...) {
			t.Errorf("show lacks row %v:\n%s", row, r.stdout)
		}
	}
}

// TestUpdate runs update flags one after another on one server and
// checks the properties the API then reports: each flag sets its property
// and leaves the others as they were.
func TestUpdate(t *testing.T) {
	ts := sharedServer(t)
	ts.resetProperties(t)
	props := func() auth.Properties {
		var reg registryResource
		if err := json.Unmarshal(ts.api(t, http.MethodGet, "/registry", nil), &reg); err != nil {
			t.Fatal(err)
		}
		return reg.Properties
	}
	tests := []struct {
		name  string
		args  []string
		check func(auth.Properties) string
	}{
		{"public network access", []string{"--public-network-access", "Disabled"}, func(p auth.Properties) string { return p.PublicNetworkAccess + " " + p.NetworkRuleSet.DefaultAction }},
		{"default action, case-insensitive", []string{"--default-action", "deny", "--public-network-access", "enabled"}, func(p auth.Properties) string { return p.PublicNetworkAccess + " " + p.NetworkRuleSet.DefaultAction }},
		{"trusted services off", []string{"--allow-trusted-services", "false"}, func(p auth.Properties) string { return p.NetworkRuleBypassOptions }},
		{"trusted services on", []string{"--allow-trusted-services", "true"}, func(p auth.Properties) string { return p.NetworkRuleBypassOptions }},
		{"network rule mode", []string{"--network-rule-mode", "Audit"}, func(p auth.Properties) string { return p.NetworkRuleSet.Mode + " " + p.NetworkRuleSet.DefaultAction }},
		{"anonymous pull", []string{"--anonymous-pull-enabled", "true"}, func(p auth.Properties) string { return fmt.Sprint(p.AnonymousPullEnabled) }},
		{"exports off", []string{"--allow-exports", "false"}, func(p auth.Properties) string { return p.Policies.ExportPolicy.Status }},
		{"others untouched", []string{"--allow-exports", "true"}, func(p auth.Properties) string {
			return fmt.Sprint(p.Policies.ExportPolicy.Status, " ", p.AnonymousPullEnabled, " ", p.NetworkRuleSet.Mode, " ", p.NetworkRuleSet.DefaultAction, " ", p.PublicNetworkAccess, " ", p.NetworkRuleBypassOptions)
		}},
	}
	want := []string{
		"Disabled Allow",
		"Enabled Deny",
		"None",
		"TrustedServices",
		"Audit Deny",
		"true",
		"disabled",
		"enabled true Audit Deny Enabled TrustedServices",
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.admin(t, append([]string{"update", "-o", "json"}, tt.args...)...)
			sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/registry", nil))
			if got := tt.check(props()); got != want[i] {
				t.Errorf("after update %v: %q, want %q", tt.args, got, want[i])
			}
		})
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"update"}, "nothing to change"},
		{[]string{"update", "--default-action", "Maybe"}, `--default-action "Maybe": expected Allow or Deny`},
		{[]string{"update", "--anonymous-pull-enabled", "yes"}, "expected true or false"},
	} {
		ts.adminFails(t, tt.want, tt.args...)
	}
}

func TestNetworkRules(t *testing.T) {
	ts := sharedServer(t)
	ts.resetProperties(t)
	r := runCLI(t, ts.adminEnv(t), "", "network-rule", "add", "--ip-address", "203.0.113.0/24")
	if r.code != 0 || !strings.Contains(r.stderr, "default action is Allow") {
		t.Errorf("add with defaultAction Allow: exit %d, stderr %q (want a note)", r.code, r.stderr)
	}
	ts.admin(t, "network-rule", "add", "--ip-address", "2001:db8::1/48", "--ip-address", "198.51.100.7")
	// The same network spelled differently is not added twice.
	ts.admin(t, "network-rule", "add", "--ip-address", "203.0.113.9/24")

	r = ts.admin(t, "network-rule", "list")
	rows := tableRows(r.stdout)
	wantRows := [][]string{{"ACTION", "VALUE"}, {"Allow", "203.0.113.0/24"}, {"Allow", "2001:db8::/48"}, {"Allow", "198.51.100.7"}}
	if fmt.Sprint(rows) != fmt.Sprint(wantRows) {
		t.Errorf("list:\n%s\nwant rows %v", r.stdout, wantRows)
	}
	var reg struct {
		Properties struct {
			NetworkRuleSet json.RawMessage `json:"networkRuleSet"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(ts.api(t, http.MethodGet, "/registry", nil), &reg); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, []byte(ts.admin(t, "network-rule", "list", "-o", "json").stdout), reg.Properties.NetworkRuleSet)

	ts.admin(t, "network-rule", "remove", "--ip-address", "203.0.113.0/24")
	ts.admin(t, "network-rule", "remove", "--ip-address", "2001:db8:0::/48")
	r = ts.admin(t, "network-rule", "list", "-o", "json")
	var set struct {
		IPRules []struct{ Value string } `json:"ipRules"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &set); err != nil || len(set.IPRules) != 1 || set.IPRules[0].Value != "198.51.100.7" {
		t.Errorf("after removes: %s (%v)", r.stdout, err)
	}
	ts.adminFails(t, "no IP rule 192.0.2.1", "network-rule", "remove", "--ip-address", "192.0.2.1")
	ts.adminFails(t, `"not-an-ip" is not an IP address or CIDR`, "network-rule", "add", "--ip-address", "not-an-ip")
	ts.adminFails(t, "--ip-address is required", "network-rule", "add")
}

// TestPatchRetriesOncePreconditionFailed checks that a read-modify-write
// sends the ETag it read as If-Match and reads again once after a 412.
func TestPatchRetriesOncePreconditionFailed(t *testing.T) {
	var gets, patches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			n := gets.Add(1)
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, n))
			fmt.Fprint(w, `{"name":"x","properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[],"mode":"Enforce"}}}`)
		case http.MethodPatch:
			patches.Add(1)
			if r.Header.Get("If-Match") != `"v2"` {
				w.WriteHeader(http.StatusPreconditionFailed)
				fmt.Fprint(w, `{"errors":[{"code":"PRECONDITION_FAILED","message":"the resource changed since it was read (If-Match)"}]}`)
				return
			}
			fmt.Fprint(w, `{"name":"x","properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"192.0.2.0/24"}],"mode":"Enforce"}}}`)
		}
	}))
	defer srv.Close()
	env := map[string]string{"MOAT_SERVER": srv.URL, "MOAT_USERNAME": "u", "MOAT_PASSWORD": "p", "MOAT_CONFIG": t.TempDir() + "/none.json"}
	r := runCLI(t, env, "", "network-rule", "add", "--ip-address", "192.0.2.0/24")
	if r.code != 0 || !hasRow(r.stdout, "Allow", "192.0.2.0/24") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if gets.Load() != 2 || patches.Load() != 2 {
		t.Errorf("%d GETs and %d PATCHes, want 2 and 2", gets.Load(), patches.Load())
	}
	// A second 412 in a row is reported.
	gets.Store(10)
	r = runCLI(t, env, "", "update", "--default-action", "Deny")
	expectFailure(t, r, "412 PRECONDITION_FAILED", []string{"update"})
}

func TestKeysRotateAndCheckHealth(t *testing.T) {
	ts := sharedServer(t)
	r := ts.admin(t, "keys", "rotate", "-o", "json")
	if kid := decodeOut[map[string]string](t, r)["kid"]; kid == "" {
		t.Errorf("keys rotate -o json: %s", r.stdout)
	}
	r = ts.admin(t, "keys", "rotate")
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[0][0] != "KID" {
		t.Errorf("keys rotate:\n%s", r.stdout)
	}
	r = ts.admin(t, "check-health")
	for _, check := range []string{"dns", "connect", "ready", "v2", "token", "push-pull", "network"} {
		if !hasRow(r.stdout, check, "ok") {
			t.Errorf("check-health lacks a passing %s:\n%s", check, r.stdout)
		}
	}
	r = runCLI(t, envWith(ts.adminEnv(t), "MOAT_USERNAME", "nobody"), "", "check-health")
	expectFailure(t, r, "is not healthy", []string{"check-health"})
	if !hasRow(r.stdout, "token", "fail") {
		t.Errorf("check-health with a wrong password:\n%s", r.stdout)
	}

	// A network that refuses this machine: v2 and the network verdict fail
	// with the server's message and a fix.
	ts.admin(t, "update", "--public-network-access", "Enabled", "--default-action", "Deny", "--allow-trusted-services", "false")
	t.Cleanup(func() { ts.resetProperties(t) })
	r = runCLI(t, ts.adminEnv(t), "", "check-health")
	expectFailure(t, r, "is not healthy", []string{"check-health"})
	if !hasRow(r.stdout, "v2", "fail", "DENIED:", "client", "with", "IP") || !hasRow(r.stdout, "network", "fail") || !strings.Contains(r.stdout, "moat network-rule add --ip-address") {
		t.Errorf("check-health from a refused network:\n%s", r.stdout)
	}
}
