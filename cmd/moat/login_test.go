package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoginWritesPrivateFileAndLogoutRemovesIt(t *testing.T) {
	ts := sharedServer(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "conf", "moat", "config.json")
	env := map[string]string{"MOAT_CONFIG": cfgPath, "HOME": dir}

	r := runCLI(t, env, adminPassword+"\n", "login", "--server", ts.url, "--username", "admin", "--password-stdin")
	if r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, adminPassword) {
		t.Errorf("login printed the password: %q %q", r.stdout, r.stderr)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("login file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("login directory mode %v, want 0700", di.Mode().Perm())
	}
	var saved credentials
	b, _ := os.ReadFile(cfgPath)
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if want := (credentials{Server: ts.url, Username: "admin", Password: adminPassword}); saved != want {
		t.Errorf("login file holds %+v, want %+v", saved, want)
	}

	// The other verbs find the server and credentials in the file.
	r = runCLI(t, env, "", "show")
	if r.code != 0 || !hasRow(r.stdout, "publicNetworkAccess", "Enabled") {
		t.Fatalf("show after login: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	if r := runCLI(t, env, "", "logout"); r.code != 0 {
		t.Fatalf("logout: %s", r.stderr)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("login file still there after logout: %v", err)
	}
	// Without the file the default server is asked, without credentials.
	expectFailure(t, runCLI(t, envWith(env, "MOAT_SERVER", ts.url), "", "show"), "401 UNAUTHORIZED", []string{"show"})
	if r := runCLI(t, env, "", "logout"); r.code != 0 || !strings.Contains(r.stdout, "Not logged in") {
		t.Errorf("second logout: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestLoginFailures(t *testing.T) {
	ts := sharedServer(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	env := map[string]string{"MOAT_CONFIG": cfgPath, "HOME": dir}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"wrong password", "", []string{"login", "--server", ts.url, "--username", "admin", "--password", "wrong-password-1234"}, "login to " + ts.url + " failed: 401 UNAUTHORIZED: authentication required"},
		{"no username", "", []string{"login", "--server", ts.url, "--password", "x"}, "a username is required"},
		{"no password", "", []string{"login", "--server", ts.url, "--username", "admin"}, "a password is required"},
		{"both password flags", "x\n", []string{"login", "--server", ts.url, "--username", "admin", "--password", "x", "--password-stdin"}, "mutually exclusive"},
		{"empty stdin", "", []string{"login", "--server", ts.url, "--username", "admin", "--password-stdin"}, "nothing to read on stdin"},
		{"credentials in the URL", "", []string{"login", "--server", "http://admin:leaked-secret@127.0.0.1:1", "--username", "admin", "--password", "x"}, "not in the URL"},
		{"unreachable", "", []string{"login", "--server", "http://127.0.0.1:1", "--username", "admin", "--password", "x"}, "cannot reach http://127.0.0.1:1: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, env, tt.stdin, tt.args...)
			expectFailure(t, r, tt.want, tt.args)
			if strings.Contains(r.stderr, "wrong-password-1234") || strings.Contains(r.stderr, "leaked-secret") {
				t.Errorf("the error shows a password: %q", r.stderr)
			}
			if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
				t.Errorf("a failed login wrote the login file")
			}
		})
	}
}

// TestCredentialPrecedence checks flags > MOAT_* > login file against a
// real server: a wrong password at a higher level wins over a right one
// below it.
func TestCredentialPrecedence(t *testing.T) {
	ts := sharedServer(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	base := map[string]string{"MOAT_CONFIG": cfgPath, "HOME": dir}
	if r := runCLI(t, base, "", "login", "--server", ts.url, "--username", "admin", "--password", adminPassword); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		ok   bool
	}{
		{"file", base, nil, true},
		{"env password beats file", envWith(base, "MOAT_PASSWORD", "wrong"), nil, false},
		{"flag password beats env", envWith(base, "MOAT_PASSWORD", "wrong"), []string{"--password", adminPassword}, true},
		{"env username beats file, file password not used for another user", envWith(base, "MOAT_USERNAME", "someone"), nil, false},
		{"env server beats file", envWith(base, "MOAT_SERVER", "http://127.0.0.1:1"), nil, false},
		{"flag server beats env", envWith(base, "MOAT_SERVER", "http://127.0.0.1:1"), []string{"--server", ts.url}, true},
		{"env credentials without file", envWith(base, "MOAT_CONFIG", filepath.Join(dir, "none.json"), "MOAT_SERVER", ts.url, "MOAT_USERNAME", "admin", "MOAT_PASSWORD", adminPassword), nil, true},
		{"flag credentials without file", envWith(base, "MOAT_CONFIG", filepath.Join(dir, "none.json")), []string{"--server", ts.url, "--username", "admin", "--password", adminPassword}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"show", "-o", "json"}, tt.args...)
			r := runCLI(t, tt.env, "", args...)
			if (r.code == 0) != tt.ok {
				t.Fatalf("moat %v: exit %d (stderr %q), want success %v", args, r.code, r.stderr, tt.ok)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	if err := os.WriteFile(file, []byte(`{"server":"http://127.0.0.1:7000","username":"filer","password":"filepw"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		conn  connection
		env   map[string]string
		want  credentials
		noCfg bool
	}{
		{name: "defaults", noCfg: true, want: credentials{Server: defaultServer}},
		{name: "file", want: credentials{"http://127.0.0.1:7000", "filer", "filepw"}},
		{name: "env over file", env: map[string]string{"MOAT_USERNAME": "filer", "MOAT_PASSWORD": "envpw"}, want: credentials{"http://127.0.0.1:7000", "filer", "envpw"}},
		{name: "flags over env", conn: connection{password: "flagpw"}, env: map[string]string{"MOAT_PASSWORD": "envpw"}, want: credentials{"http://127.0.0.1:7000", "filer", "flagpw"}},
		{name: "another server gets no file credentials", env: map[string]string{"MOAT_SERVER": "registry.example.com"}, want: credentials{Server: "https://registry.example.com"}},
		{name: "same server spelled without scheme", conn: connection{server: "127.0.0.1:7000/"}, want: credentials{"http://127.0.0.1:7000", "filer", "filepw"}},
		{name: "another user gets no file password", conn: connection{username: "other"}, want: credentials{"http://127.0.0.1:7000", "other", ""}},
		{name: "localhost is http", noCfg: true, conn: connection{server: "localhost:5000"}, want: credentials{Server: "http://localhost:5000"}},
		{name: "https kept", noCfg: true, conn: connection{server: "https://r.example.com/moat/"}, want: credentials{Server: "https://r.example.com/moat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"MOAT_CONFIG": file}
			if tt.noCfg {
				env["MOAT_CONFIG"] = filepath.Join(dir, "absent.json")
			}
			for k, v := range tt.env {
				env[k] = v
			}
			a := &app{getenv: func(k string) string { return env[k] }, conn: tt.conn}
			got, err := a.resolve()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoginPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"MOAT_CONFIG", map[string]string{"MOAT_CONFIG": "/x/c.json", "XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}, "/x/c.json"},
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/moat/config.json"},
		{"HOME", map[string]string{"HOME": "/home/u"}, "/home/u/.config/moat/config.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{getenv: func(k string) string { return tt.env[k] }}
			got, err := a.loginPath()
			if err != nil || got != tt.want {
				t.Errorf("loginPath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
