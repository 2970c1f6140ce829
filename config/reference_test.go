package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/config/internal/configdoc"
)

// TestGeneratedFilesAreUpToDate regenerates the reference in memory and
// compares it with the files in the tree.
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	out, err := configdoc.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{configdoc.GoFile: out.Go, configdoc.DocsFile: out.Markdown} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the Config type: run `go generate ./config` and commit the result", filepath.Clean(path))
		}
	}
}

// TestReferenceCoversEveryKey checks the generated table against the
// Config type by reflection.
func TestReferenceCoversEveryKey(t *testing.T) {
	byPath := map[string]config.Key{}
	for _, k := range config.Reference {
		if k.Doc == "" || k.Type == "" || k.Default == "" || k.FileDefault == "" {
			t.Errorf("%s: incomplete entry %+v", k.Path, k)
		}
		byPath[k.Path] = k
	}
	for _, f := range config.Fields() {
		k, ok := byPath[f.Path]
		if !ok {
			t.Errorf("%s is not in config.Reference", f.Path)
			continue
		}
		if k.Env != "" && k.Env != config.EnvName(f.Path) {
			t.Errorf("%s: Env %s, want %s", f.Path, k.Env, config.EnvName(f.Path))
		}
	}
}

// TestReferenceEnvIsWhatApplyEnvAccepts: a key with a variable in the
// reference can be set from the environment, one without cannot.
func TestReferenceEnvIsWhatApplyEnvAccepts(t *testing.T) {
	for _, k := range config.Reference {
		if strings.Contains(k.Path, "[]") {
			continue
		}
		c := config.Default()
		err := config.ApplyEnv(&c, []string{config.EnvName(k.Path) + "=" + sampleValue(k.Type)})
		if k.Env != "" && err != nil {
			t.Errorf("%s: the reference names %s, but ApplyEnv refuses it: %v", k.Path, k.Env, err)
		}
		if k.Env == "" && err == nil {
			t.Errorf("%s: the reference names no variable, but ApplyEnv accepts %s", k.Path, config.EnvName(k.Path))
		}
	}
}

func sampleValue(goType string) string {
	switch goType {
	case "bool":
		return "true"
	case "int", "int64", "float64":
		return "1"
	case "Duration":
		return "1h"
	}
	return "x"
}

// TestExampleRoundTrips: the example parses, validates and sets every key
// to the value a file starts from.
func TestExampleRoundTrips(t *testing.T) {
	c := config.FileDefaults()
	if err := config.Parse(config.Example(), &c); err != nil {
		t.Fatalf("Parse(Example()) = %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	got, want := normalize(c), normalize(config.FileDefaults())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the example is not the file defaults:\n got %+v\nwant %+v", got, want)
	}
	if _, problems := config.Check(config.Example(), nil); len(problems) > 0 {
		t.Errorf("Check(Example()) = %v", problems)
	}
	// Every key is in the example, with its documentation.
	for _, k := range config.Reference {
		if strings.Contains(k.Path, "[]") {
			continue
		}
		key := k.Path[strings.LastIndexByte(k.Path, '.')+1:]
		if !bytes.Contains(config.Example(), []byte(key+":")) {
			t.Errorf("the example lacks %s", k.Path)
		}
		if k.Env != "" && !bytes.Contains(config.Example(), []byte(k.Env)) {
			t.Errorf("the example does not name %s", k.Env)
		}
	}
}

// normalize makes empty and nil lists and maps equal.
func normalize(c config.Config) map[string]any {
	out := map[string]any{}
	for _, f := range fieldsOf(c) {
		v := reflect.ValueOf(f.Default)
		if (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0 {
			out[f.Path] = nil
			continue
		}
		out[f.Path] = f.Default
	}
	return out
}

// fieldsOf lists the leaves of c as config.Fields lists the defaults'.
func fieldsOf(c config.Config) []config.Field {
	var out []config.Field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			if v.Field(i).Kind() == reflect.Struct {
				walk(v.Field(i), path)
				continue
			}
			out = append(out, config.Field{Path: path, Type: v.Field(i).Type(), Default: v.Field(i).Interface()})
		}
	}
	walk(reflect.ValueOf(c), "")
	return out
}

// TestFileDefaultsIsWhatLoadStartsFrom pins FileDefaults to Load of an
// empty file.
func TestFileDefaultsIsWhatLoadStartsFrom(t *testing.T) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MOAT_") {
			name, _, _ := strings.Cut(kv, "=")
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, config.FileDefaults()) {
		t.Errorf("Load(empty file) = %+v\nFileDefaults() = %+v", c, config.FileDefaults())
	}
}
