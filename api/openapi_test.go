package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/moat-registry/moat/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// handlerRoutes are the (method, path template) pairs the handler serves
// today, as its router (api.go's route and each resource's switch)
// dispatches them. TestOpenAPIRoutes checks this list against the
// document and against the running handler's Allow headers.
var handlerRoutes = []string{
	"GET /audit",
	"POST /gc",
	"GET /identities",
	"GET /identities/{name}",
	"PUT /identities/{name}",
	"DELETE /identities/{name}",
	"POST /identities/{name}/secrets",
	"DELETE /identities/{name}/secrets/{id}",
	"GET /identities/{name}/federated-credentials",
	"GET /identities/{name}/federated-credentials/{fc}",
	"PUT /identities/{name}/federated-credentials/{fc}",
	"DELETE /identities/{name}/federated-credentials/{fc}",
	"POST /import",
	"GET /operations/{id}",
	"POST /keys/rotate",
	"GET /openapi.json",
	"POST /policy/evaluate",
	"GET /private-endpoints",
	"GET /private-endpoints/{name}",
	"PUT /private-endpoints/{name}",
	"DELETE /private-endpoints/{name}",
	"POST /private-endpoints/{name}/approve",
	"POST /private-endpoints/{name}/reject",
	"GET /registry",
	"PATCH /registry",
	"GET /role-assignments",
	"GET /role-assignments/{id}",
	"PUT /role-assignments/{id}",
	"DELETE /role-assignments/{id}",
	"GET /scope-maps",
	"GET /scope-maps/{name}",
	"PUT /scope-maps/{name}",
	"DELETE /scope-maps/{name}",
	"GET /services",
	"GET /services/{name}",
	"PUT /services/{name}",
	"DELETE /services/{name}",
	"GET /services/{name}/tasks",
	"GET /services/{name}/tasks/{task}",
	"PUT /services/{name}/tasks/{task}",
	"DELETE /services/{name}/tasks/{task}",
	"POST /services/{name}/tasks/{task}/run",
	"GET /tokens",
	"GET /tokens/{name}",
	"PUT /tokens/{name}",
	"DELETE /tokens/{name}",
	"POST /tokens/{name}/passwords",
	"GET /trusted-services",
}

// unservedPaths are paths a handler could plausibly grow (SPEC names,
// siblings of served paths). Until the handler serves one and the
// document describes it, each must answer 404: an endpoint added without
// documentation fails here.
var unservedPaths = []string{
	"/operations",
	"/tasks",
	"/services/{name}/tasks/{task}/runs",
	"/identities/{name}/federated-credentials/{fc}/verify",
	"/identities/{name}/secrets/{id}/rotate",
	"/tokens/{name}/passwords/{id}",
	"/private-endpoints/{name}/disconnect",
	"/keys",
	"/policy",
	"/registry/properties",
	"/healthz",
	"/metrics",
}

// routerSegments reads, from the api package's source, the path segments
// its router dispatches on: the string cases of every switch on seg[i] or
// r.seg[i], and every string compared to one with == or !=.
func routerSegments(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	isSeg := func(e ast.Expr) bool {
		ix, ok := e.(*ast.IndexExpr)
		if !ok {
			return false
		}
		switch x := ix.X.(type) {
		case *ast.Ident:
			return x.Name == "seg"
		case *ast.SelectorExpr:
			return x.Sel.Name == "seg"
		}
		return false
	}
	found := map[string]bool{}
	add := func(e ast.Expr) {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if v, err := strconv.Unquote(lit.Value); err == nil {
				found[v] = true
			}
		}
	}
	fset := token.NewFileSet()
	for _, de := range entries {
		name := de.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SwitchStmt:
				if n.Tag != nil && isSeg(n.Tag) {
					for _, c := range n.Body.List {
						for _, e := range c.(*ast.CaseClause).List {
							add(e)
						}
					}
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					if isSeg(n.X) {
						add(n.Y)
					} else if isSeg(n.Y) {
						add(n.X)
					}
				}
			}
			return true
		})
	}
	return slices.Sorted(maps.Keys(found))
}

// docSegments lists the literal (non-parameter) segments of the
// document's paths.
func docSegments(d *openapi3.T) []string {
	found := map[string]bool{}
	for path := range d.Paths.Map() {
		for seg := range strings.SplitSeq(strings.Trim(path, "/"), "/") {
			if !strings.HasPrefix(seg, "{") {
				found[seg] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(found))
}

// docRoutes lists the document's operations as "METHOD /path".
func docRoutes(d *openapi3.T) []string {
	var out []string
	for path, item := range d.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	d, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	if err := d.Validate(context.Background()); err != nil {
		t.Fatalf("validating: %v", err)
	}
	if d.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", d.OpenAPI)
	}
	if len(d.Servers) != 1 || d.Servers[0].URL != api.Prefix {
		t.Errorf("servers = %v, want one with url %s", d.Servers, api.Prefix)
	}
	if d.Components.SecuritySchemes["basicAuth"] == nil {
		t.Error("no security scheme basicAuth")
	}
	if d.Components.SecuritySchemes["bearerAuth"] != nil {
		t.Error("a bearerAuth security scheme: the admin API refuses access tokens")
	}
	for _, s := range []string{"Identity", "Secret", "NewSecret", "RoleAssignment", "ScopeMap", "Token", "TokenPassword",
		"NewTokenPassword", "Service", "ServiceIdentity", "TrustedService", "PrivateEndpoint", "RegistryResource", "Properties",
		"NetworkRuleSet", "IPRule", "Policies", "AuditEntry", "EvaluateInput", "EvaluateResult", "Error",
		"IdentityList", "RoleAssignmentList", "ScopeMapList", "TokenList", "PrivateEndpointList", "TrustedServiceList",
		"ServiceList", "AuditEntryList"} {
		if d.Components.Schemas[s] == nil {
			t.Errorf("no schema %s", s)
		}
	}
	// Every operation but the document's own is authenticated, documents
	// 401 and 403, and has an operationId.
	ids := map[string]string{}
	for path, item := range d.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %s is also %s's", where, op.OperationID, other)
			}
			ids[op.OperationID] = where
			if path == "/openapi.json" {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: must be served without authentication (security: [])", where)
				}
				continue
			}
			if op.Security != nil {
				t.Errorf("%s: overrides the document's security", where)
			}
			for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: does not document %d", where, status)
				}
			}
		}
	}
	// The served document is the embedded one, without authentication.
	e := start(t)
	r := e.do(t, call{as: anonymous, method: http.MethodGet, path: "openapi.json", status: http.StatusOK})
	if string(r.body) != string(api.OpenAPI()) {
		t.Errorf("GET /openapi.json does not serve the embedded document")
	}
	if !json.Valid(r.body) {
		t.Errorf("GET /openapi.json is not JSON")
	}
}

// TestOpenAPIRoutes pins the document's operations (golden file), checks
// them against the handler's routes (the list above, and the path segments
// its router's source dispatches on), and probes the running handler: each
// documented path answers a method it does not serve with 405 and an Allow
// header naming exactly the documented methods, and SPEC paths that are
// not implemented yet answer 404.
func TestOpenAPIRoutes(t *testing.T) {
	d, err := doc()
	if err != nil {
		t.Fatal(err)
	}
	got := docRoutes(d)
	golden := filepath.Join("testdata", "openapi-paths.golden")
	text := strings.Join(got, "\n") + "\n"
	if *update {
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run TestOpenAPIRoutes -update)", err)
	}
	if string(want) != text {
		t.Errorf("the document's operations changed; review and run with -update.\ngot:\n%s\nwant:\n%s", text, want)
	}

	// The router's path segments, read from its source, and the
	// document's: a path segment the handler dispatches on that no
	// documented path has is an undocumented endpoint.
	segs, docSegs := routerSegments(t), docSegments(d)
	if !slices.Equal(segs, docSegs) {
		t.Errorf("the router dispatches on the path segments %v; the document's paths have %v", segs, docSegs)
	}

	served := slices.Sorted(slices.Values(handlerRoutes))
	for _, r := range served {
		if !slices.Contains(got, r) {
			t.Errorf("the handler serves %s; the document does not describe it", r)
		}
	}
	for _, r := range got {
		if !slices.Contains(served, r) {
			t.Errorf("the document describes %s; the handler does not serve it", r)
		}
	}

	// Probe the handler: OPTIONS is served nowhere, so every path answers
	// 405 with the methods it serves.
	methods := map[string][]string{}
	for _, r := range served {
		m, p, _ := strings.Cut(r, " ")
		methods[p] = append(methods[p], m)
	}
	e := start(t)
	// Sub-resources answer 404 while their parent does not exist.
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/probe", status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/probe", body: `{"type":"tasks"}`, status: http.StatusCreated})
	fill := strings.NewReplacer("{name}", "probe", "{id}", "probe", "{task}", "probe", "{fc}", "probe")
	for path, want := range methods {
		t.Run("OPTIONS "+path, func(t *testing.T) {
			r := e.do(t, call{as: admin, method: http.MethodOptions, path: strings.TrimPrefix(fill.Replace(path), "/"),
				status: http.StatusMethodNotAllowed, badRequest: true})
			var allow []string
			for m := range strings.SplitSeq(r.header.Get("Allow"), ",") {
				allow = append(allow, strings.TrimSpace(m))
			}
			slices.Sort(allow)
			slices.Sort(want)
			if !slices.Equal(allow, want) {
				t.Errorf("Allow: %v; the document lists %v", allow, want)
			}
		})
	}
	for _, path := range unservedPaths {
		if d.Paths.Find(path) != nil {
			continue // documented: the checks above cover it
		}
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost} {
			t.Run(m+" "+path, func(t *testing.T) {
				r := e.do(t, call{as: admin, method: m, path: strings.TrimPrefix(fill.Replace(path), "/"),
					status: http.StatusNotFound, badRequest: true})
				if code, _, _ := r.errorItem(t); code != "NOT_FOUND" {
					t.Errorf("code %s, want NOT_FOUND", code)
				}
			})
		}
	}
}
