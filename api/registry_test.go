package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// props reads the registry properties.
func (e *env) props(t *testing.T) (map[string]any, string) {
	t.Helper()
	r := e.do(t, call{as: admin, method: http.MethodGet, path: "registry", status: http.StatusOK})
	return r.object(t)["properties"].(map[string]any), r.header.Get("ETag")
}

// propsJSON is the registry properties as canonical JSON.
func (e *env) propsJSON(t *testing.T) string {
	t.Helper()
	p, _ := e.props(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hasProps checks the properties of a registry answer.
func hasProps(want string) func(*testing.T, *result) {
	return func(t *testing.T, r *result) {
		t.Helper()
		var got, w any
		r.json(t, &struct {
			Properties *any `json:"properties"`
		}{&got})
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Errorf("properties\n got %s\nwant %s", gb, wb)
		}
	}
}

const defaultProps = `{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Allow","ipRules":[],"mode":"Enforce"},
	"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":false,"policies":{"exportPolicy":{"status":"enabled"}}}`

func TestRegistryPatch(t *testing.T) {
	e := start(t)
	patch := func(name, body string, status int, check func(*testing.T, *result)) call {
		return call{name: name, as: admin, method: http.MethodPatch, path: "registry", body: body,
			contentType: "application/merge-patch+json", status: status, check: check}
	}
	e.run(t, []call{
		{name: "defaults", as: admin, method: http.MethodGet, path: "registry", status: http.StatusOK, check: hasProps(defaultProps)},
		patch("nested merge", `{"properties":{"networkRuleSet":{"defaultAction":"Deny"}}}`, http.StatusOK,
			hasProps(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[],"mode":"Enforce"},
				"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":false,"policies":{"exportPolicy":{"status":"enabled"}}}`)),
		patch("ipRules set", `{"properties":{"networkRuleSet":{"ipRules":[{"value":"10.1.2.3/8"},{"action":"Allow","value":"192.0.2.1"},{"value":"::ffff:198.51.100.7"}]}}}`,
			http.StatusOK, hasProps(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny",
				"ipRules":[{"action":"Allow","value":"10.0.0.0/8"},{"action":"Allow","value":"192.0.2.1"},{"action":"Allow","value":"198.51.100.7"}],"mode":"Enforce"},
				"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":false,"policies":{"exportPolicy":{"status":"enabled"}}}`)),
		patch("ipRules replaced", `{"properties":{"networkRuleSet":{"ipRules":[{"value":"2001:db8::/32"}]}}}`, http.StatusOK,
			hasProps(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"2001:db8::/32"}],"mode":"Enforce"},
				"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":false,"policies":{"exportPolicy":{"status":"enabled"}}}`)),
		patch("sibling kept", `{"properties":{"networkRuleSet":{"mode":"Audit"},"networkRuleBypassOptions":"AzureServices","policies":{"exportPolicy":{"status":"disabled"}}}}`,
			http.StatusOK,
			hasProps(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"2001:db8::/32"}],"mode":"Audit"},
				"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":false,"policies":{"exportPolicy":{"status":"disabled"}}}`)),
		patch("null resets one", `{"properties":{"networkRuleSet":{"defaultAction":null},"policies":{"exportPolicy":null}}}`, http.StatusOK,
			hasProps(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Allow","ipRules":[{"action":"Allow","value":"2001:db8::/32"}],"mode":"Audit"},
				"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":false,"policies":{"exportPolicy":{"status":"enabled"}}}`)),
		patch("null resets a block", `{"properties":{"networkRuleSet":null,"anonymousPullEnabled":true}}`, http.StatusOK,
			hasProps(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Allow","ipRules":[],"mode":"Enforce"},
				"networkRuleBypassOptions":"TrustedServices","anonymousPullEnabled":true,"policies":{"exportPolicy":{"status":"enabled"}}}`)),
		{name: "application/json", as: admin, method: http.MethodPatch, path: "registry",
			body: `{"properties":{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}}`, status: http.StatusOK,
			check: field("properties.publicNetworkAccess", "Disabled")},
		patch("null resets all", `{"properties":null}`, http.StatusOK, hasProps(defaultProps)),
		patch("empty patch", `{}`, http.StatusOK, hasProps(defaultProps)),
	})

	// Invalid patches answer 400 naming the field and change nothing.
	before := e.propsJSON(t)
	var rules []string
	for i := range 1001 {
		rules = append(rules, fmt.Sprintf(`{"value":"10.%d.%d.0/24"}`, i/256, i%256))
	}
	bad := []struct {
		name, body, field string
		badRequest        bool
	}{
		{"publicNetworkAccess", `{"properties":{"publicNetworkAccess":"Maybe"}}`, "publicNetworkAccess", true},
		{"defaultAction", `{"properties":{"networkRuleSet":{"defaultAction":"Sometimes"}}}`, "networkRuleSet.defaultAction", true},
		{"mode", `{"properties":{"networkRuleSet":{"mode":"Log"}}}`, "networkRuleSet.mode", true},
		{"bypass", `{"properties":{"networkRuleBypassOptions":"Everyone"}}`, "networkRuleBypassOptions", true},
		{"rule value", `{"properties":{"networkRuleSet":{"ipRules":[{"value":"192.0.2.1"},{"value":"not-an-ip"}]}}}`, "networkRuleSet.ipRules[1].value", false},
		{"rule action", `{"properties":{"networkRuleSet":{"ipRules":[{"action":"Deny","value":"192.0.2.1"}]}}}`, "networkRuleSet.ipRules[0].action", true},
		{"export policy", `{"properties":{"policies":{"exportPolicy":{"status":"off"}}}}`, "policies.exportPolicy.status", true},
		{"type", `{"properties":{"anonymousPullEnabled":"yes"}}`, "anonymousPullEnabled", true},
		{"unknown property", `{"properties":{"colour":"red"}}`, "colour", true},
		{"unknown nested property", `{"properties":{"networkRuleSet":{"ipRule":[]}}}`, "ipRule", true},
		{"unknown top-level field", `{"name":"other"}`, "name", true},
		{"not an object", `[]`, "JSON object", true},
		{"malformed", `{"properties":`, "JSON object", true},
		{"1001 ipRules", `{"properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[` + strings.Join(rules, ",") + `]}}}`, "1000", true},
	}
	for _, c := range bad {
		e.run(t, []call{{name: c.name, as: admin, method: http.MethodPatch, path: "registry", body: c.body,
			contentType: "application/merge-patch+json", status: http.StatusBadRequest, badRequest: c.badRequest,
			check: apiError("INVALID", c.field)}})
	}
	if after := e.propsJSON(t); after != before {
		t.Errorf("refused patches changed the properties:\n%s\n%s", before, after)
	}
	// 1000 rules are fine.
	e.patch(t, map[string]any{"networkRuleSet": map[string]any{"ipRules": json.RawMessage("[" + strings.Join(rules[:1000], ",") + "]")}})
	e.patch(t, map[string]any{"networkRuleSet": nil})
}

func TestRegistryETag(t *testing.T) {
	e := start(t)
	_, etag0 := e.props(t)
	if etag0 == "" {
		t.Fatal("GET /registry without an ETag")
	}
	ifMatch := func(name, etag string, status int) call {
		return call{name: name, as: admin, method: http.MethodPatch, path: "registry", header: map[string]string{"If-Match": etag},
			body: `{"properties":{"anonymousPullEnabled":true}}`, status: status}
	}
	r := e.do(t, ifMatch("current ETag", etag0, http.StatusOK))
	etag1 := r.header.Get("ETag")
	if etag1 == "" || etag1 == etag0 {
		t.Fatalf("ETag after a change: %q (before: %q)", etag1, etag0)
	}
	if _, got := e.props(t); got != etag1 {
		t.Errorf("GET ETag %q, the PATCH answered %q", got, etag1)
	}
	e.run(t, []call{
		ifMatch("stale ETag", etag0, http.StatusPreconditionFailed),
		ifMatch("weak ETag", "W/"+etag1, http.StatusPreconditionFailed),
		ifMatch("any", "*", http.StatusOK),
		{name: "no If-Match", as: admin, method: http.MethodPatch, path: "registry", body: `{"properties":{"anonymousPullEnabled":false}}`,
			status: http.StatusOK},
	})
	if p, _ := e.props(t); p["anonymousPullEnabled"] != false {
		t.Errorf("a refused If-Match changed the properties: %v", p)
	}
}
