package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-registry/moat/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update accepts it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// transcript is a run as a golden file shows it.
func transcript(args []string, r result) string {
	return "$ moat " + strings.Join(args, " ") + "\nexit " + strconv.Itoa(r.code) +
		"\n--- stdout\n" + r.stdout + "--- stderr\n" + r.stderr
}

// TestConfigValidate runs `config validate` on every file of
// testdata/config and compares the transcript with its golden file.
func TestConfigValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("testdata/config: %v, %d files", err, len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			args := []string{"config", "validate", filepath.ToSlash(file)}
			r := runCLI(t, offline, "", args...)
			golden(t, "config/"+name, transcript(args, r))
			if (r.code == 0) != (name == "valid") {
				t.Errorf("exit %d", r.code)
			}
		})
	}
	t.Run("environment overrides", func(t *testing.T) {
		args := []string{"config", "validate", "testdata/config/valid.yaml"}
		env := envWith(offline, "MOAT_LOG_LEVEL", "loud", "MOAT_GC_INTERVAL", "daily", "MOAT_LISTEN", "127.0.0.1:5000")
		golden(t, "config/valid+env", transcript(args, runCLI(t, env, "", args...)))
	})
	t.Run("several files as json", func(t *testing.T) {
		args := []string{"config", "validate", "testdata/config/valid.yaml", "testdata/config/cert_without_key.yaml", "-o", "json"}
		golden(t, "config/several_files_json", transcript(args, runCLI(t, offline, "", args...)))
	})
	t.Run("missing file", func(t *testing.T) {
		expectFailure(t, runCLI(t, offline, "", "config", "validate", "testdata/config/nope.yaml"), "no such file", nil)
	})
}

// TestConfigExample: the example is the one in the generated reference
// (docs/configuration.md), parses back, validates, and every key is in it.
func TestConfigExample(t *testing.T) {
	r := runCLI(t, offline, "", "config", "example")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("config example: exit %d, stderr %q", r.code, r.stderr)
	}
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := bytes.Cut(docs, []byte("```yaml\n"))
	block, _, ok2 := bytes.Cut(block, []byte("```\n"))
	if !ok || !ok2 || string(block) != r.stdout {
		t.Errorf("config example differs from the example of docs/configuration.md (go generate ./config)")
	}
	c := config.FileDefaults()
	if err := config.Parse([]byte(r.stdout), &c); err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the example does not validate: %v", err)
	}
	for _, k := range config.Reference {
		key := k.Path[strings.LastIndexByte(k.Path, '.')+1:]
		if !strings.Contains(r.stdout, key+":") {
			t.Errorf("the example lacks %s", k.Path)
		}
	}
	path := filepath.Join(t.TempDir(), "moat.yaml")
	if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, offline, "", "config", "validate", path); r.code != 0 || r.stdout != path+": ok\n" {
		t.Errorf("config validate of the example: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}
