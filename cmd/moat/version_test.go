package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/moat-registry/moat/server"
)

// No server is involved: MOAT_SERVER points nowhere.
var offline = map[string]string{"MOAT_SERVER": "http://127.0.0.1:1"}

func TestVersion(t *testing.T) {
	r := runCLI(t, offline, "", "version")
	if r.code != 0 {
		t.Fatalf("version: exit %d, %s", r.code, r.stderr)
	}
	for _, row := range [][]string{{"version:", server.VersionString()}, {"go:", runtime.Version()}, {"revision:"}, {"platform:", runtime.GOOS + "/" + runtime.GOARCH}} {
		if !hasRow(r.stdout, row...) {
			t.Errorf("version output lacks %v:\n%s", row, r.stdout)
		}
	}
	v := decodeOut[versionInfo](t, runCLI(t, offline, "", "version", "-o", "json"))
	if v.Version != server.VersionString() || v.GoVersion != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH {
		t.Errorf("version -o json: %+v", v)
	}
	if r := runCLI(t, offline, "", "version", "--short"); r.stdout != server.VersionString()+"\n" {
		t.Errorf("version --short: %q", r.stdout)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run(shell, func(t *testing.T) {
			r := runCLI(t, offline, "", "completion", shell)
			if r.code != 0 || len(r.stdout) < 1000 || !strings.Contains(r.stdout, "moat") {
				t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, r.code, len(r.stdout), r.stderr)
			}
		})
	}
	// The completions the script asks for at run time.
	r := runCLI(t, offline, "", "__complete", "task", "create", "svc", "t", "--type", "")
	if !strings.HasPrefix(r.stdout, "copy\npurge\n") {
		t.Errorf("completion of --type: %q", r.stdout)
	}
	r = runCLI(t, offline, "", "__complete", "-o", "")
	if !strings.HasPrefix(r.stdout, "table\njson\n") {
		t.Errorf("completion of -o: %q", r.stdout)
	}
	r = runCLI(t, offline, "", "__complete", "")
	for _, verb := range []string{"import", "task", "gc", "version", "config", "operation"} {
		if !strings.Contains(r.stdout, "\n"+verb+"\t") {
			t.Errorf("completion of verbs lacks %s:\n%s", verb, r.stdout)
		}
	}
}
