package policy_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports pins SPEC §1 and STYLE.md: policy is pure — no net/http and
// nothing of the project.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case path == "net/http" || strings.HasPrefix(path, "net/http/"):
				t.Errorf("%s imports %s: policy must not depend on HTTP", name, path)
			case path == "github.com/moat-registry/moat" || strings.HasPrefix(path, "github.com/moat-registry/moat/"):
				t.Errorf("%s imports %s: policy imports nothing of the project", name, path)
			case path == "unsafe" || path == "os" || path == "net" || path == "io/fs":
				t.Errorf("%s imports %s: policy performs no I/O", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no non-test files found")
	}
}
