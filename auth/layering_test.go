package auth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/moat-registry/moat"

// TestLayering pins SPEC §1's direction of imports for the whole module:
// cmd -> api, registry -> auth, policy, storage. It reads the packages'
// (non-test) imports from `go list -json`.
func TestLayering(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Imports", module+"/...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	imports := map[string][]string{} // package (relative) → project imports (relative)
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		var own []string
		for _, imp := range p.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				own = append(own, strings.TrimPrefix(strings.TrimPrefix(imp, module), "/"))
			}
		}
		imports[rel] = own
	}
	for _, pkg := range []string{"auth", "policy", "registry", "storage"} {
		if _, ok := imports[pkg]; !ok {
			t.Fatalf("go list did not report %s (got %v)", pkg, imports)
		}
	}

	// top is a package's first path element ("cmd/moat" → "cmd").
	top := func(p string) string {
		if i := strings.IndexByte(p, '/'); i >= 0 {
			return p[:i]
		}
		return p
	}
	// leaves may import only these of the project (SPEC §1: storage,
	// policy, oci and errcode import nothing of it but oci and errcode).
	leaves := map[string][]string{
		"policy":  {},
		"errcode": {},
		"oci":     {"errcode"},
		"storage": {"oci", "errcode"},
	}
	// forbidden lists what the middle layers must not import.
	forbidden := map[string][]string{
		"auth":     {"registry", "api", "server"},
		"registry": {"api", "server"},
	}
	for pkg, deps := range imports {
		layer := top(pkg)
		for _, dep := range deps {
			d := top(dep)
			switch {
			case d == layer:
			case d == "cmd":
				t.Errorf("%s imports %s: nothing imports cmd", pkg, dep)
			case d == "server" && layer != "cmd" && layer != "e2e":
				t.Errorf("%s imports %s: only cmd wires the server", pkg, dep)
			case leaves[layer] != nil && !slices.Contains(leaves[layer], d):
				t.Errorf("%s imports %s: SPEC §1 allows %s to import only %v of the project", pkg, dep, layer, leaves[layer])
			case slices.Contains(forbidden[layer], d):
				t.Errorf("%s imports %s: dependencies point one way (cmd -> api, registry -> auth, policy, storage)", pkg, dep)
			}
		}
		if layer == "policy" && len(deps) > 0 {
			t.Errorf("policy imports %v: it imports nothing of the project", deps)
		}
	}
}
