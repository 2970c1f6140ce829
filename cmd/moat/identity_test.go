package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-registry/moat/auth"
	"golang.org/x/crypto/bcrypt"
)

func TestIdentityLifecycle(t *testing.T) {
	ts := sharedServer(t)
	r := ts.admin(t, "identity", "create", "bob", "--kind", "servicePrincipal", "-o", "json")
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/identities/bob", nil))
	if id := decodeOut[auth.Identity](t, r); id.Kind != auth.KindServicePrincipal || !id.Enabled {
		t.Errorf("created %+v", id)
	}
	ts.adminFails(t, "identity bob already exists", "identity", "create", "bob")

	r = ts.admin(t, "identity", "show", "bob")
	if !hasRow(r.stdout, "bob", "servicePrincipal", "true") {
		t.Errorf("show:\n%s", r.stdout)
	}
	r = ts.admin(t, "identity", "list")
	if !hasRow(r.stdout, "NAME", "KIND", "ENABLED") || !hasRow(r.stdout, "admin", "user") || !hasRow(r.stdout, "bob", "servicePrincipal") {
		t.Errorf("list:\n%s", r.stdout)
	}
	sameJSON(t, []byte(ts.admin(t, "identity", "list", "-o", "json").stdout), ts.api(t, http.MethodGet, "/identities", nil))

	// A secret printed by `secret add` logs in.
	r = ts.admin(t, "identity", "secret", "add", "bob", "-o", "json")
	sec := decodeOut[map[string]any](t, r)
	value, _ := sec["value"].(string)
	if sec["id"] == "" || value == "" || len(sec) < 2 {
		t.Fatalf("secret add -o json: %s", r.stdout)
	}
	if got := ts.basicStatus(t, "bob", value); got != http.StatusOK {
		t.Errorf("GET /v2/ as bob with the new secret: %d", got)
	}
	r = ts.admin(t, "identity", "secret", "add", "bob", "--expires-in", "1d")
	rows := tableRows(r.stdout)
	if len(rows) != 2 || rows[0][1] != "VALUE" || !strings.Contains(r.stderr, "cannot be shown again") {
		t.Fatalf("secret add table:\n%s\nstderr %q", r.stdout, r.stderr)
	}
	tableID, tableValue := rows[1][0], rows[1][1]
	if got := ts.basicStatus(t, "bob", tableValue); got != http.StatusOK {
		t.Errorf("GET /v2/ as bob with the table's secret: %d", got)
	}
	if rows := tableRows(ts.admin(t, "identity", "secret", "list", "bob").stdout); len(rows) != 3 {
		t.Errorf("secret list: %v", rows)
	}

	// Disabling keeps the kind (PUT replaces both).
	r = ts.admin(t, "identity", "update", "bob", "--enabled", "false", "-o", "json")
	if id := decodeOut[auth.Identity](t, r); id.Enabled || id.Kind != auth.KindServicePrincipal {
		t.Errorf("after update --enabled false: %+v", id)
	}
	if got := ts.basicStatus(t, "bob", value); got == http.StatusOK {
		t.Errorf("a disabled identity logged in")
	}
	ts.admin(t, "identity", "update", "bob", "--enabled", "true")

	ts.admin(t, "identity", "secret", "delete", "bob", tableID)
	if rows := tableRows(ts.admin(t, "identity", "secret", "list", "bob").stdout); len(rows) != 2 || rows[1][0] == tableID {
		t.Errorf("secrets after delete: %v", rows)
	}
	ts.adminFails(t, "404 NOT_FOUND", "identity", "secret", "delete", "bob", tableID)

	ts.admin(t, "identity", "delete", "bob")
	ts.adminFails(t, `404 NOT_FOUND: identity "bob" not found`, "identity", "show", "bob")
	ts.adminFails(t, "404 NOT_FOUND", "identity", "delete", "bob")
	ts.adminFails(t, `--kind "robot": expected user or servicePrincipal or managedIdentity`, "identity", "create", "r2", "--kind", "robot")
	ts.adminFails(t, "nothing to change", "identity", "update", "admin")
	ts.adminFails(t, "expected 1 argument", "identity", "show")
}

func TestImportHtpasswd(t *testing.T) {
	ts := sharedServer(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// htpasswd -B writes $2y$; the hash is the same bcrypt.
	htpasswd := "# users\n\nalice:$2y$" + string(hash[4:]) + "\ncarol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nno-colon-here\ndave:$apr1$abc$def\n"
	file := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(file, []byte(htpasswd), 0o600); err != nil {
		t.Fatal(err)
	}

	r := ts.admin(t, "identity", "import-htpasswd", file, "--role", "AcrPull", "--scope", "repositories/app/*")
	if !hasRow(r.stdout, "alice") || len(tableRows(r.stdout)) != 2 {
		t.Errorf("import table:\n%s", r.stdout)
	}
	for _, w := range []string{`line 4: user "carol": not a bcrypt hash`, "line 5: not user:hash", `line 6: user "dave": not a bcrypt hash`} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks warning %q", r.stderr, w)
		}
	}
	if got := ts.basicStatus(t, "alice", "alice-password"); got != http.StatusOK {
		t.Errorf("GET /v2/ as the imported alice: %d", got)
	}
	if got := ts.basicStatus(t, "alice", "wrong"); got == http.StatusOK {
		t.Errorf("alice logged in with a wrong password")
	}
	r = ts.admin(t, "role", "list", "--assignee", "alice")
	if rows := tableRows(r.stdout); len(rows) != 2 || strings.Join(rows[1][1:4], " ") != "alice Pull repositories/app/*" {
		t.Errorf("alice's roles:\n%s", r.stdout)
	}
	for _, name := range []string{"carol", "dave"} {
		ts.adminFails(t, "404", "identity", "show", name)
	}

	// Again: alice exists and is left alone; stdin works as the file.
	r = runCLI(t, ts.adminEnv(t), htpasswd, "identity", "import-htpasswd", "-", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stderr, `user "alice": an identity of that name exists; skipped`) {
		t.Errorf("re-import: exit %d, stderr %q", r.code, r.stderr)
	}
	if v := decodeOut[map[string][]importedUser](t, r)["value"]; len(v) != 0 {
		t.Errorf("re-import imported %v", v)
	}
	ts.adminFails(t, `--role "Boss": not a built-in role`, "identity", "import-htpasswd", file, "--role", "Boss")
}

func TestParseHtpasswd(t *testing.T) {
	const h = "$2y$05$abcdefghijklmnopqrstuuJ0Q4hJ6eQ5oZ5F9l1D1bS8l9h4m2Y6e"
	tests := []struct {
		name     string
		in       string
		users    []string
		warnings int
	}{
		{"empty", "", nil, 0},
		{"comments and blanks", "# x\n\n   \n", nil, 0},
		{"bcrypt", "a:" + h + "\nb:" + h + "\r\n", []string{"a", "b"}, 0},
		{"md5 and sha skipped", "a:$apr1$x$y\nb:{SHA}abc\n", nil, 2},
		{"no user", ":" + h + "\n", nil, 1},
		{"truncated hash", "a:" + h[:50] + "\n", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, warnings, err := parseHtpasswd(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var users []string
			for _, e := range entries {
				users = append(users, e.user)
			}
			if strings.Join(users, ",") != strings.Join(tt.users, ",") || len(warnings) != tt.warnings {
				t.Errorf("users %v warnings %q; want %v and %d warnings", users, warnings, tt.users, tt.warnings)
			}
		})
	}
}
