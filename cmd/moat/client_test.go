package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorLines checks the one-line errors of answers in and out of the
// OCI error shape, against a fake server.
func TestErrorLines(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"OCI shape", 403, `{"errors":[{"code":"DENIED","message":"this needs the Owner role at scope /","detail":{"stage":"authz"}}]}`, "moat: 403 DENIED: this needs the Owner role at scope /\n"},
		{"several errors", 400, `{"errors":[{"code":"INVALID","message":"a"},{"code":"INVALID","message":"b"}]}`, "moat: 400 INVALID: a; b\n"},
		{"generic not found names the request", 404, `{"errors":[{"code":"NOT_FOUND","message":"resource not found"}]}`, "moat: 404 NOT_FOUND: resource not found (GET /admin/v1/identities/x)\n"},
		{"proxy text", 502, "upstream down\nmore\n", "moat: 502 Bad Gateway: upstream down\n"},
		{"proxy html", 503, "<html><body>busy</body></html>", "moat: 503 Service Unavailable\n"},
		{"newlines folded", 400, `{"errors":[{"code":"INVALID","message":"line one\nline two"}]}`, "moat: 400 INVALID: line one line two\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			env := map[string]string{"MOAT_SERVER": srv.URL, "MOAT_USERNAME": "u", "MOAT_PASSWORD": "p", "MOAT_CONFIG": t.TempDir() + "/none.json"}
			r := runCLI(t, env, "", "identity", "show", "x")
			if r.code != 1 || r.stderr != tt.want || r.stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want stderr %q", r.code, r.stderr, r.stdout, tt.want)
			}
		})
	}
}

func TestUsageErrorsAreOneLine(t *testing.T) {
	env := map[string]string{"MOAT_CONFIG": t.TempDir() + "/none.json", "MOAT_SERVER": "http://127.0.0.1:1"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show", "-o", "yaml"}, `-o "yaml": expected table or json`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"show", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"identity", "show", "a/b"}, `"a/b" is not a valid name`},
		{[]string{"identity", "secret", "delete", "a"}, "expected 2 arguments (NAME ID), got 1"},
		{[]string{"show"}, "moat: cannot reach http://127.0.0.1:1: connection refused"},
		{[]string{"show", "--server", "ftp://x"}, `--server "ftp://x" is not an http(s) URL`},
		{[]string{"show", "--server", "http://u:secret-in-url@127.0.0.1:1"}, "not in the URL"},
		{[]string{"show", "--ca-file", "/nonexistent/ca.pem"}, "--ca-file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, env, "", tt.args...)
			expectFailure(t, r, tt.want, tt.args)
			if strings.Contains(r.stderr, "secret-in-url") {
				t.Errorf("the error shows a password: %q", r.stderr)
			}
		})
	}
}

// TestListFollowsPages checks that a paginated collection is fetched
// whole and printed as one {"value":[…]}.
func TestListFollowsPages(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("last") {
		case "":
			w.Header().Set("Link", `</admin/v1/scope-maps?n=1&last=a>; rel="next"`)
			fmt.Fprint(w, `{"value":[{"name":"a","actions":["repositories/a/content/read"]}]}`)
		case "a":
			w.Header().Set("Link", `</admin/v1/scope-maps?n=1&last=b>; rel="next"`)
			fmt.Fprint(w, `{"value":[{"name":"b","actions":["repositories/b/content/read"]}]}`)
		default:
			fmt.Fprint(w, `{"value":[]}`)
		}
	}))
	defer srv.Close()
	env := map[string]string{"MOAT_SERVER": srv.URL, "MOAT_CONFIG": t.TempDir() + "/none.json"}
	r := runCLI(t, env, "", "scope-map", "list", "-o", "json")
	sameJSON(t, []byte(r.stdout), []byte(`{"value":[{"name":"a","actions":["repositories/a/content/read"]},{"name":"b","actions":["repositories/b/content/read"]}]}`))
	r = runCLI(t, env, "", "scope-map", "list")
	if rows := tableRows(r.stdout); len(rows) != 3 || rows[1][0] != "a" || rows[2][0] != "b" {
		t.Errorf("table:\n%s", r.stdout)
	}
}

func TestTableCells(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "-"},
		{"plain text", "plain text"},
		{"tab\there", "tab here"},
		{"new\nline", "new line"},
		{"\x1b[31mred", "?[31mred"},
		{"ünïcode", "ünïcode"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTLSVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"name":"r","properties":{"publicNetworkAccess":"Enabled"}}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MOAT_SERVER": srv.URL, "MOAT_USERNAME": "u", "MOAT_PASSWORD": "p", "MOAT_CONFIG": filepath.Join(dir, "none.json")}
	args := []string{"show"}
	expectFailure(t, runCLI(t, env, "", args...), "certificate signed by an unknown authority (use --ca-file, or --insecure)", args)
	for _, extra := range [][]string{{"--insecure"}, {"--ca-file", ca}} {
		if r := runCLI(t, env, "", append(args, extra...)...); r.code != 0 || !hasRow(r.stdout, "publicNetworkAccess", "Enabled") {
			t.Errorf("show %v: exit %d, stderr %q", extra, r.code, r.stderr)
		}
	}
}
