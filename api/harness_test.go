package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/moat-registry/moat/api"
	"github.com/moat-registry/moat/server"
)

// adminPassword is the bootstrap admin's password in every test server.
const adminPassword = "admin-secret-for-tests"

// cred is who a call is made as: Basic credentials, a bearer token, or
// nobody (the zero value).
type cred struct {
	user, pass string
	bearer     string
}

var (
	anonymous = cred{}
	admin     = cred{user: "admin", pass: adminPassword}
)

func (c cred) apply(r *http.Request) {
	switch {
	case c.bearer != "":
		r.Header.Set("Authorization", "Bearer "+c.bearer)
	case c.user != "":
		r.SetBasicAuth(c.user, c.pass)
	}
}

// doc is the OpenAPI document, loaded and validated once.
var doc = sync.OnceValues(func() (*openapi3.T, error) {
	d, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, err
	}
	if err := d.Validate(context.Background()); err != nil {
		return nil, err
	}
	return d, nil
})

// env is a moat server started in-process for one test, and a client that
// checks every admin call against the OpenAPI document.
type env struct {
	srv    *server.Server
	base   string // http://host:port
	doc    *openapi3.T
	router routers.Router
	client *http.Client
	// covered records the operations ("GET /identities/{name}") that
	// answered 2xx, for TestAdminAPI's coverage check.
	covered map[string]bool
	// vars are values learnt from answers; "{{key}}" in a call's path
	// stands for vars[key].
	vars map[string]string
}

// call is one admin API request and what it must answer.
type call struct {
	name   string
	as     cred
	method string
	// path is relative to /admin/v1 unless it starts with "/" and is not
	// under it ("/v2/", "/oauth2/token"): those are sent unchecked by the
	// document.
	path string
	// body is sent as is when a string, else as JSON.
	body        any
	contentType string
	header      map[string]string
	status      int
	// badRequest says the request breaks the document (schema, security,
	// unknown path or method): the validator must refuse it, and accept
	// every other request.
	badRequest bool
	check      func(t *testing.T, r *result)
}

// result is an answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v.
func (r *result) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// object decodes the body as a JSON object.
func (r *result) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// errorItem is the first error of an error body.
func (r *result) errorItem(t *testing.T) (code, message string, detail map[string]any) {
	t.Helper()
	var b struct {
		Errors []struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Detail  map[string]any `json:"detail"`
		} `json:"errors"`
	}
	r.json(t, &b)
	if len(b.Errors) == 0 {
		t.Fatalf("no errors in %s", r.body)
	}
	return b.Errors[0].Code, b.Errors[0].Message, b.Errors[0].Detail
}

// names lists the "name" (or another key) of each item of {"value":[…]}.
func (r *result) names(t *testing.T, key string) []string {
	t.Helper()
	var b struct {
		Value []map[string]any `json:"value"`
	}
	r.json(t, &b)
	out := []string{}
	for _, v := range b.Value {
		s, _ := v[key].(string)
		out = append(out, s)
	}
	return out
}

// run runs calls in order as subtests; a failed call stops the rest,
// which depend on it.
func (e *env) run(t *testing.T, calls []call) {
	t.Helper()
	for _, c := range calls {
		name := c.name
		if name == "" {
			name = c.method + " " + c.path
		}
		if !t.Run(name, func(t *testing.T) { e.do(t, c) }) {
			t.FailNow()
		}
	}
}

// do sends c, checks its status, checks the request and the answer against
// the OpenAPI document and runs c.check.
func (e *env) do(t *testing.T, c call) *result {
	t.Helper()
	var raw []byte
	switch b := c.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range e.vars {
		c.path = strings.ReplaceAll(c.path, "{{"+k+"}}", v)
	}
	checked := !strings.HasPrefix(c.path, "/") || strings.HasPrefix(c.path, api.Prefix)
	target := c.path
	if !strings.HasPrefix(target, "/") {
		target = api.Prefix + "/" + target
	}
	req, err := http.NewRequest(c.method, e.base+target, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if raw != nil {
		ct := c.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	c.as.apply(req)

	var in *openapi3filter.RequestValidationInput
	if checked {
		vreq := req.Clone(context.Background())
		vreq.Body = io.NopCloser(bytes.NewReader(raw))
		var docErr error
		in, docErr = e.validateRequest(vreq)
		switch {
		case c.badRequest && docErr == nil:
			t.Errorf("the document accepts the request, the test says it breaks it")
		case !c.badRequest && docErr != nil:
			t.Errorf("the document refuses the request: %v", docErr)
		}
	}

	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := &result{status: resp.StatusCode, header: resp.Header, body: body}
	if c.status != 0 && r.status != c.status {
		t.Fatalf("%s %s: status %d, want %d; body %s", c.method, target, r.status, c.status, body)
	}
	if checked {
		e.validateResponse(t, req, in, r)
	}
	if c.check != nil {
		c.check(t, r)
	}
	return r
}

// authenticate is the validator's check of a security scheme: the request
// carries credentials of that scheme (whether they are right is the
// server's business).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, _, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, in.SecurityScheme.Scheme) {
		return errors.New("no " + in.SecurityScheme.Scheme + " credentials")
	}
	return nil
}

// validateRequest finds r's operation and checks r against it. in is nil
// when the document has no such operation.
func (e *env) validateRequest(r *http.Request) (*openapi3filter.RequestValidationInput, error) {
	route, params, err := e.router.FindRoute(r)
	if err != nil {
		return nil, err
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticate, SkipSettingDefaults: true, MultiError: true},
	}
	return in, openapi3filter.ValidateRequest(context.Background(), in)
}

// validateResponse checks an admin answer: against its operation when the
// document has one, else (an unknown path or method) against the shared
// error responses.
func (e *env) validateResponse(t *testing.T, req *http.Request, in *openapi3filter.RequestValidationInput, r *result) {
	t.Helper()
	if in == nil {
		route, params, err := e.router.FindRoute(req)
		switch {
		case err == nil:
			in = &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
		case errors.Is(err, routers.ErrMethodNotAllowed) && r.status == http.StatusMethodNotAllowed:
			e.checkShared(t, "MethodNotAllowed", r)
			return
		case errors.Is(err, routers.ErrPathNotFound) && r.status == http.StatusNotFound:
			e.checkShared(t, "NotFound", r)
			return
		case r.status == http.StatusUnauthorized:
			e.checkShared(t, "Unauthorized", r)
			return
		case r.status == http.StatusForbidden:
			e.checkShared(t, "Forbidden", r)
			return
		default:
			t.Fatalf("no operation in the document for %s %s (%v) answered %d", req.Method, req.URL.Path, err, r.status)
		}
	}
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 r.status,
		Header:                 r.header,
		Body:                   io.NopCloser(bytes.NewReader(r.body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Fatalf("the answer to %s %s does not match the document: %v\nbody: %s", req.Method, req.URL.Path, err, r.body)
	}
	if r.status < 300 {
		e.covered[req.Method+" "+in.Route.Path] = true
	}
}

// checkShared checks an answer against a response of components.responses:
// its required headers and its body schema.
func (e *env) checkShared(t *testing.T, name string, r *result) {
	t.Helper()
	ref := e.doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		t.Fatalf("no response %s in components", name)
	}
	for h, hr := range ref.Value.Headers {
		if hr.Value.Required && r.header.Get(h) == "" {
			t.Errorf("%s answer without the %s header", name, h)
		}
	}
	mt := ref.Value.Content.Get(r.header.Get("Content-Type"))
	if mt == nil {
		t.Fatalf("%s answer with Content-Type %q", name, r.header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%s answer is not JSON: %s", name, r.body)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		t.Fatalf("%s answer does not match the document: %v\nbody: %s", name, err, r.body)
	}
}

// get is a GET by admin that must answer 200; it returns the decoded
// object.
func (e *env) get(t *testing.T, path string) map[string]any {
	t.Helper()
	return e.do(t, call{as: admin, method: http.MethodGet, path: path, status: http.StatusOK}).object(t)
}

// identityWithRole creates an identity with a secret (imported as a cheap
// hash) and, unless role is empty, that role at scope "/"; it returns its
// credentials.
func (e *env) identityWithRole(t *testing.T, name, role string) cred {
	t.Helper()
	password := name + "-password"
	e.do(t, call{as: admin, method: http.MethodPut, path: "identities/" + name, body: map[string]any{}, status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPost, path: "identities/" + name + "/secrets",
		body: map[string]any{"bcryptHash": cheapHash(t, password)}, status: http.StatusCreated})
	if role != "" {
		e.do(t, call{as: admin, method: http.MethodPut, path: "role-assignments/" + name + "-" + strings.ToLower(role),
			body: map[string]any{"principal": name, "role": role}, status: http.StatusCreated})
	}
	return cred{user: name, pass: password}
}

// patch changes registry properties as admin.
func (e *env) patch(t *testing.T, props map[string]any) {
	t.Helper()
	e.do(t, call{as: admin, method: http.MethodPatch, path: "registry", body: map[string]any{"properties": props},
		contentType: "application/merge-patch+json", status: http.StatusOK})
}

// dataPlane sends an unchecked request to the data plane (or any root
// path) and returns the status.
func (e *env) dataPlane(t *testing.T, base, method, path string, as cred) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	as.apply(req)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// query builds a relative path with a query.
func query(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return path + "?" + v.Encode()
}

// str reads a string field of a decoded object by a dotted path.
func str(m map[string]any, path string) string {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = o[k]
	}
	s, _ := cur.(string)
	return s
}
