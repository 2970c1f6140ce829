package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/api"
	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/server"
)

// fuzzTargets are the admin calls whose JSON bodies FuzzAdminBodies
// sends, as the Owner. Imports are left out: they would reach out to the
// registries the bodies name.
var fuzzTargets = []struct{ method, path, contentType string }{
	{http.MethodPatch, "registry", "application/merge-patch+json"},
	{http.MethodPut, "role-assignments/fuzz-ra", ""},
	{http.MethodPut, "scope-maps/fuzz-sm", ""},
	{http.MethodPut, "tokens/fuzz-token", ""},
	{http.MethodPost, "tokens/fuzz-token/passwords", ""},
	{http.MethodPut, "identities/fuzz-id", ""},
	{http.MethodPost, "identities/fuzz-id/secrets", ""},
	{http.MethodPut, "identities/fuzz-id/federated-credentials/fuzz-fc", ""},
	{http.MethodPut, "services/fuzz-svc", ""},
	{http.MethodPut, "services/fuzz-tasks/tasks/fuzz-task", ""},
	{http.MethodPut, "private-endpoints/fuzz-pe", ""},
	{http.MethodPost, "policy/evaluate", ""},
	{http.MethodPost, "gc", ""},
}

// adminFuzz is one server for every input of a fuzz run, reset to the
// same state after each input.
type adminFuzz struct {
	once    sync.Once
	err     error
	data    string
	srv     *server.Server
	handler http.Handler
	refresh string
	props   auth.Properties
}

// start runs the server on a copy of the template data directory (the
// first input's t builds the template) and logs the admin in once, for
// a refresh token whose signature check is cached.
func (fz *adminFuzz) start(t *testing.T) {
	fz.once.Do(func() {
		tmpl := templateDir(t)
		if fz.data, fz.err = os.MkdirTemp("", "moat-api-fuzz-"); fz.err != nil {
			return
		}
		if fz.err = os.CopyFS(fz.data, os.DirFS(tmpl)); fz.err != nil {
			return
		}
		t.Setenv("MOAT_ADMIN_PASSWORD", "")
		var base string
		if fz.srv, base, fz.err = serve(fz.data); fz.err != nil {
			return
		}
		fz.handler = fz.srv.Handler()
		client := &http.Client{Timeout: time.Minute}
		defer client.CloseIdleConnections()
		if fz.err = waitReady(client, base); fz.err != nil {
			return
		}
		form := url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {adminPassword}}
		resp, err := client.PostForm(base+"/oauth2/token", form)
		if err != nil {
			fz.err = err
			return
		}
		defer resp.Body.Close()
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.RefreshToken == "" {
			fz.err = fmt.Errorf("admin token: %d %v", resp.StatusCode, err)
			return
		}
		fz.refresh = tok.RefreshToken
		fz.props, _ = fz.srv.Directory().Properties()
		if a := fz.call(http.MethodPut, "services/fuzz-tasks", "", []byte(`{"type":"tasks","identity":{"type":"SystemAssigned"}}`)); a.Code != http.StatusCreated {
			fz.err = fmt.Errorf("PUT services/fuzz-tasks: %d %s", a.Code, a.Body)
		}
	})
	if fz.err != nil {
		t.Fatal(fz.err)
	}
}

func (fz *adminFuzz) stop() {
	if fz.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = fz.srv.Shutdown(ctx)
	}
	if fz.data != "" {
		_ = os.RemoveAll(fz.data)
	}
}

// call serves one admin request as the Owner, in process.
func (fz *adminFuzz) call(method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, api.Prefix+"/"+path, bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "127.0.0.1"
	if contentType == "" {
		contentType = "application/json"
	}
	r.Header.Set("Content-Type", contentType)
	r.SetBasicAuth(auth.RefreshTokenUsername, fz.refresh)
	w := httptest.NewRecorder()
	fz.handler.ServeHTTP(w, r)
	return w
}

// reset undoes what an input may have changed.
func (fz *adminFuzz) reset(t *testing.T) {
	for _, path := range []string{"role-assignments/fuzz-ra", "tokens/fuzz-token", "scope-maps/fuzz-sm", "identities/fuzz-id",
		"services/fuzz-svc", "services/fuzz-tasks/tasks/fuzz-task", "private-endpoints/fuzz-pe"} {
		if w := fz.call(http.MethodDelete, path, "", nil); w.Code != http.StatusNoContent && w.Code != http.StatusNotFound {
			t.Fatalf("DELETE %s after the input: %d %s", path, w.Code, w.Body)
		}
	}
	_, _, err := fz.srv.Directory().UpdateProperties(context.Background(), "", func(p *auth.Properties) error {
		*p = fz.props
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzAdminBodies sends any body to the admin API's JSON decoders (merge
// patch of the registry, role assignments, scope maps, tokens, identities,
// secrets, federated credentials, services, tasks, private endpoints, the
// policy what-if and GC) as the Owner: no call panics or answers 5xx,
// every answer is JSON, and an error is in the OCI error shape.
func FuzzAdminBodies(f *testing.F) {
	fz := &adminFuzz{}
	f.Cleanup(fz.stop)
	seeds := [][]string{
		{`{"properties":{"publicNetworkAccess":"Disabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"value":"10.0.0.0/8","action":"Allow"}]}}}`,
			`{"properties":{"anonymousPullEnabled":true,"policies":{"exportPolicy":{"status":"disabled"}}}}`, `{"properties":null}`, `{"properties":{"x":1}}`, `[]`, `{"properties":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`},
		{`{"principal":"admin","role":"AcrPull","scope":"repositories/app/*"}`, `{"principal":"fuzz-id","role":"Owner","scope":"/"}`, `{"role":"NoSuchRole"}`},
		{`{"actions":["repositories/app/content/read","repositories/*/content/write"]}`, `{"actions":[]}`, `{"actions":["repositories/../content/read"]}`},
		{`{"scopeMap":"fuzz-sm","status":"enabled"}`, `{"scopeMap":"missing","status":"maybe"}`},
		{`{"name":"password1","expiresIn":"90d"}`, `{"name":"password3"}`, `{"expiresIn":"200000d"}`, `{"expiresIn":"-1h"}`, ``},
		{`{}`, `{"kind":"user","enabled":false}`, `{"name":"other"}`, `{"kind":"\u0000"}`},
		{`{"expiresIn":"30d"}`, `{"bcryptHash":"$2y$04$` + strings.Repeat("a", 53) + `"}`, `{"bcryptHash":"plain"}`},
		{`{"issuer":"https://token.actions.githubusercontent.com","subject":"repo:o/r:ref:refs/heads/main","audiences":["moat"]}`, `{"issuer":"http://169.254.169.254","subject":"x","audiences":["a"]}`},
		{`{"type":"tasks","identity":{"type":"SystemAssigned"}}`, `{"type":"scanner","identity":{"type":"UserAssigned","userAssignedIdentities":["admin"]}}`, `{"type":"nope"}`},
		{`{"type":"purge","schedule":"0 3 * * *","purge":{"repository":"app","olderThan":"7d","keep":3}}`, `{"type":"purge","schedule":"TZ=UTC","purge":{"repository":"app","olderThan":"7d"}}`,
			`{"type":"purge","purge":{"repository":"app","olderThan":"200000d"}}`, `{"type":"copy","copy":{"source":"app:1","target":"app:2"},"enabled":false}`},
		{`{"listen":"127.0.0.1:0","state":"Approved"}`, `{"listen":"0.0.0.0:0"}`, `{"listen":"10.0.0.1:5000"}`, `{"listen":"127.0.0.1:0","tls":true,"state":"Pending"}`},
		{`{"clientIP":"192.0.2.1","repository":"app","action":"pull"}`, `{"clientIP":"::ffff:10.0.0.1","endpoint":"x","principal":"admin","repository":"app","action":"delete"}`, `{"clientIP":"x"}`},
		{`{"dryRun":true}`, `{"gracePeriod":"200000d"}`, `{"gracePeriod":"-1s","untagged":true,"dryRun":true}`, `{"dryRun":true,"gracePeriod":"0s"}`},
	}
	for i, bodies := range seeds {
		for _, b := range bodies {
			f.Add(uint8(i), []byte(b))
		}
	}
	f.Add(uint8(0), []byte("\xff\xfe{"))
	f.Add(uint8(5), []byte(`{"kind":"user"}{"kind":"user"}`))
	f.Fuzz(func(t *testing.T, target uint8, body []byte) {
		fz.start(t)
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		if tg.path == "gc" && !bytes.Contains(body, []byte(`"dryRun":true`)) {
			return // a real collection per input is slow and proves nothing more
		}
		defer fz.reset(t)
		w := fz.call(tg.method, tg.path, tg.contentType, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", tg.method, tg.path, body, w.Code, w.Body)
		}
		if w.Code == http.StatusNoContent {
			return
		}
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s %q: %d answer is not JSON: %q", tg.method, tg.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
				t.Fatalf("%s %s %q: %d answer not in the OCI error shape: %s", tg.method, tg.path, body, w.Code, w.Body)
			}
		}
		_, _ = io.Copy(io.Discard, w.Body)
	})
}
