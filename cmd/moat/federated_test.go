package main

import (
	"net/http"
	"testing"

	"github.com/moat-registry/moat/auth"
)

func TestFederatedCredentials(t *testing.T) {
	ts := sharedServer(t)
	ts.admin(t, "identity", "create", "ci-fed", "--kind", "servicePrincipal")
	r := ts.admin(t, "identity", "federated-credential", "add", "ci-fed", "github-main",
		"--issuer", "https://token.actions.githubusercontent.com", "--subject", "repo:org/app:ref:refs/heads/main",
		"--audience", "api://AzureADTokenExchange", "--audience", "moat", "-o", "json")
	fc := decodeOut[auth.FederatedCredential](t, r)
	if fc.Name != "github-main" || fc.Subject != "repo:org/app:ref:refs/heads/main" || len(fc.Audiences) != 2 {
		t.Fatalf("added %+v", fc)
	}
	sameJSON(t, []byte(ts.admin(t, "identity", "fc", "list", "ci-fed", "-o", "json").stdout),
		ts.api(t, http.MethodGet, "/identities/ci-fed/federated-credentials", nil))
	if r := ts.admin(t, "identity", "federated-credential", "list", "ci-fed"); !hasRow(r.stdout, "github-main", "https://token.actions.githubusercontent.com") {
		t.Errorf("list:\n%s", r.stdout)
	}
	// The same triple on another identity is a conflict; http off loopback is refused.
	ts.admin(t, "identity", "create", "other-fed", "--kind", "servicePrincipal")
	ts.adminFails(t, "409", "identity", "federated-credential", "add", "other-fed", "dup",
		"--issuer", "https://token.actions.githubusercontent.com", "--subject", "repo:org/app:ref:refs/heads/main", "--audience", "moat")
	ts.adminFails(t, "https", "identity", "federated-credential", "add", "other-fed", "plain",
		"--issuer", "http://issuer.example.com", "--subject", "s", "--audience", "a")
	ts.admin(t, "identity", "federated-credential", "delete", "ci-fed", "github-main")
	if r := ts.admin(t, "identity", "federated-credential", "list", "ci-fed"); hasRow(r.stdout, "github-main") {
		t.Errorf("still listed after delete:\n%s", r.stdout)
	}
}
