package config

import (
	"strings"
	"testing"
)

func TestNotificationsValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // "" for valid; else a substring of the error
	}{
		{"valid", `
notifications:
  endpoints:
    - name: scanner
      url: https://scanner.example.com/hook
      secret: s3cret
      repositories: ["app/*"]
      actions: [push]
      timeout: 3s
      maxAttempts: 4
      headers: {Authorization: Bearer x}
`, ""},
		{"loopback http", `
notifications:
  endpoints: [{name: ci, url: "http://127.0.0.1:8080/hook", secretFile: /run/secrets/hook}]
`, ""},
		{"plain http elsewhere", `
notifications:
  endpoints: [{name: ci, url: "http://ci.example.com/hook", secret: x}]
`, "notifications.endpoints[0].url: \"http://ci.example.com/hook\": use https (http only on a loopback address)"},
		{"link-local", `
notifications:
  endpoints: [{name: md, url: "https://169.254.169.254/latest", secret: x}]
`, "notifications.endpoints[0].url: \"https://169.254.169.254/latest\": link-local, multicast and unspecified addresses are refused"},
		// The error must not repeat the credentials.
		{"credentials in url", `
notifications:
  endpoints: [{name: a, url: "https://u:hunter2@example.com/hook", secret: x}]
`, "notifications.endpoints[0].url: \"https://xxxxx@example.com/hook\" holds credentials; put them in headers"},
		{"token as user in url", `
notifications:
  endpoints: [{name: a, url: "https://ghp_T0KEN@/hook", secret: x}]
`, "notifications.endpoints[0].url: \"https://xxxxx@/hook\" holds credentials; put them in headers"},
		{"no secret", `
notifications:
  endpoints: [{name: a, url: "https://example.com/"}]
`, "notifications.endpoints[0].secret: must be set"},
		{"both secrets", `
notifications:
  endpoints: [{name: a, url: "https://example.com/", secret: x, secretFile: /f}]
`, "notifications.endpoints[0].secretFile: cannot be combined with secret"},
		{"duplicate name", `
notifications:
  endpoints: [{name: a, url: "https://example.com/", secret: x}, {name: a, url: "https://example.org/", secret: y}]
`, "notifications.endpoints[1].name: \"a\" is used by another endpoint"},
		{"bad action", `
notifications:
  endpoints: [{name: a, url: "https://example.com/", secret: x, actions: [pull]}]
`, "notifications.endpoints[0].actions[0]: \"pull\" is not push or delete"},
		{"bad regexp", `
notifications:
  endpoints: [{name: a, url: "https://example.com/", secret: x, repositoryRegexp: "("}]
`, "notifications.endpoints[0].repositoryRegexp:"},
		{"reserved header", `
notifications:
  endpoints: [{name: a, url: "https://example.com/", secret: x, headers: {x-moat-signature: forged}}]
`, "notifications.endpoints[0].headers: x-moat-signature is set by moat"},
		{"tracing", `
tracing: {endpoint: "http://localhost:4318/v1/traces", sampleRatio: 0.25}
`, ""},
		{"tracing ratio", `
tracing: {endpoint: "http://localhost:4318/v1/traces", sampleRatio: 2}
`, "tracing.sampleRatio: 2 is not between 0 and 1"},
		{"tracing url", `
tracing: {endpoint: "localhost:4318"}
`, "tracing.endpoint:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if err := Parse([]byte(tt.yaml), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestEnvDoesNotSetStructLists(t *testing.T) {
	c := Default()
	if err := ApplyEnv(&c, []string{"MOAT_NOTIFICATIONS_ENDPOINTS=x"}); err == nil {
		t.Error("ApplyEnv set notifications.endpoints from a string")
	}
}
