package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/moat-registry/moat/api"
)

var update = flag.Bool("update", false, "rewrite docs/api.md")

const docPath = "../../docs/api.md"

// TestDocIsCurrent fails when docs/api.md does not match the OpenAPI
// document; `go generate ./tools/apidoc` (or -update) rewrites it.
func TestDocIsCurrent(t *testing.T) {
	got, err := Render(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(docPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/api.md is stale: run `go generate ./tools/apidoc`")
	}
}

// TestDocCoversEveryOperation checks the reference against the document
// itself: every path and method, its status codes and the schemas.
func TestDocCoversEveryOperation(t *testing.T) {
	md, err := Render(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	doc := string(md)
	var d struct {
		Paths      map[string]map[string]json.RawMessage
		Components struct{ Schemas map[string]json.RawMessage }
	}
	if err := json.Unmarshal(api.OpenAPI(), &d); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range d.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			n++
			heading := "`" + strings.ToUpper(method) + " " + path + "`\n"
			i := strings.Index(doc, heading)
			if i < 0 {
				t.Errorf("no section for %s %s", method, path)
				continue
			}
			section := doc[i:]
			if j := strings.Index(section[1:], "\n### "); j > 0 {
				section = section[:j]
			}
			var o struct{ Responses map[string]json.RawMessage }
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatal(err)
			}
			for code := range o.Responses {
				if !strings.Contains(section, "\n| "+code+" |") {
					t.Errorf("%s %s: no row for status %s", method, path, code)
				}
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d operations found", n)
	}
	for name := range d.Components.Schemas {
		if !strings.Contains(doc, "\n### "+name+"\n") {
			t.Errorf("no section for schema %s", name)
		}
	}
}

func TestRenderRefusesUnknownRefs(t *testing.T) {
	doc := `{"info":{"title":"t","version":"1"},"tags":[{"name":"a"}],"paths":{"/x":{"get":{"operationId":"x","summary":"s","tags":["a"],
		"responses":{"200":{"$ref":"#/components/responses/Missing"}}}}},"components":{}}`
	if _, err := Render([]byte(doc)); err == nil {
		t.Error("Render accepted a reference to a missing response")
	}
}
