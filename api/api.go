// Package api is moat's admin REST API (/admin/v1/…, SPEC §7) and its
// OpenAPI document. Handlers return errors; one function renders them in
// the OCI error shape. Every call is authenticated and needs Reader (GET),
// Contributor (changes) or Owner (role assignments, private endpoints).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/jobs"
	"github.com/moat-registry/moat/storage"
)

// Prefix is where the API is mounted.
const Prefix = "/admin/v1"

// Listeners opens and closes private endpoint listeners at run time.
type Listeners interface {
	// Open binds a listener for endpoint name and returns the address it
	// bound. Opening a name that is open rebinds it when listen differs.
	Open(name, listen string, tls bool) (string, error)
	// Close closes an endpoint's listener (no error if none is open).
	Close(name string) error
	// Allowed reports whether listen is inside the configured
	// privateEndpoints.allowedAddresses and not a wildcard.
	Allowed(listen string) error
}

// Options configure the API.
type Options struct {
	Guard *auth.Guard
	Audit storage.AuditLog
	// Auditor is synced before audit queries so recent denials show.
	Auditor *auth.Auditor
	// Listeners manages private endpoint listeners.
	Listeners Listeners
	// AllowedSources restricts who may call the API (empty: anyone).
	AllowedSources []netip.Prefix
	// Keys rotates the token signing key.
	Keys *auth.KeyRing
	// Jobs runs imports and tasks.
	Jobs *jobs.Runner
	// GC runs a garbage collection.
	GC func(context.Context, storage.GCOptions) (storage.GCReport, error)
	// GCGracePeriod is the grace period of POST /gc when the call names
	// none (config gc.gracePeriod).
	GCGracePeriod time.Duration
	// Service is the registry's service name.
	Service func() string
	Logger  *slog.Logger
}

// API is the /admin/v1 handler.
type API struct {
	opts  Options
	dir   *auth.Directory
	guard *auth.Guard
}

// New returns the admin API handler (mounted at Prefix).
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{opts: opts, dir: opts.Guard.Directory(), guard: opts.Guard}
}

// request is a parsed admin call.
type request struct {
	*http.Request
	seg    []string // path segments after /admin/v1
	caller auth.Caller
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := a.serve(w, r); err != nil {
		e := mapError(err)
		switch {
		case r.Context().Err() != nil:
			// The client went away; nobody reads the answer.
			a.opts.Logger.InfoContext(r.Context(), "admin request canceled by the client", "method", r.Method, "path", r.URL.Path, "err", err)
		case e.Code.Status >= 500:
			a.opts.Logger.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		errcode.Write(w, r, e)
	}
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) error {
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		return errcode.NotFound.New("no such endpoint")
	}
	if len(a.opts.AllowedSources) > 0 {
		client := a.guard.ClientAddress(r)
		allowed := false
		for _, p := range a.opts.AllowedSources {
			if p.Contains(client) {
				allowed = true
				break
			}
		}
		if !allowed {
			return errcode.Denied.New("client with IP '" + client.String() + "' is not allowed to reach the admin API")
		}
	}
	rest = strings.Trim(rest, "/")
	var seg []string
	if rest != "" {
		seg = strings.Split(rest, "/")
	}
	if len(seg) == 1 && seg[0] == "openapi.json" {
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return serveOpenAPI(w, r)
	}
	caller, err := a.guard.AuthenticateAdmin(r)
	if err != nil {
		return err
	}
	req := &request{Request: r, seg: seg, caller: caller}
	return a.route(w, req)
}

// need checks the caller's control-plane level.
func (r *request) need(l auth.Level) error {
	if r.caller.Level < l {
		return &errcode.Error{Code: errcode.Denied, Message: "this needs the " + l.String() + " role at scope /",
			Detail: map[string]string{"stage": "authz", "reason": "NoRole"}}
	}
	return nil
}

// levelFor is the level a call needs: Reader to read (and to ask a what-if
// question), Contributor to change; handlers ask for Owner where the
// contract says so.
func levelFor(r *request) auth.Level {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return auth.LevelReader
	}
	if len(r.seg) == 2 && r.seg[0] == "policy" && r.seg[1] == "evaluate" {
		return auth.LevelReader
	}
	return auth.LevelContributor
}

func (a *API) route(w http.ResponseWriter, r *request) error {
	if err := r.need(levelFor(r)); err != nil {
		return err
	}
	if len(r.seg) == 0 {
		return errcode.NotFound.New("no such endpoint")
	}
	switch r.seg[0] {
	case "registry":
		return a.registry(w, r)
	case "identities":
		return a.identities(w, r)
	case "role-assignments":
		return a.roleAssignments(w, r)
	case "scope-maps":
		return a.scopeMaps(w, r)
	case "tokens":
		return a.tokens(w, r)
	case "private-endpoints":
		return a.privateEndpoints(w, r)
	case "trusted-services":
		if len(r.seg) != 1 {
			return errcode.NotFound.New("no such endpoint")
		}
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, auth.TrustedServices, func(t auth.TrustedService) string { return t.Type })
	case "services":
		return a.services(w, r)
	case "audit":
		return a.audit(w, r)
	case "import":
		return a.importImage(w, r)
	case "operations":
		return a.operation(w, r)
	case "gc":
		return a.collectGarbage(w, r)
	case "policy":
		if len(r.seg) == 2 && r.seg[1] == "evaluate" {
			return a.evaluate(w, r)
		}
	case "keys":
		if len(r.seg) == 2 && r.seg[1] == "rotate" {
			return a.rotateKeys(w, r)
		}
	}
	return errcode.NotFound.New("no such endpoint")
}

func methodNotAllowed(allowed string) error {
	return errcode.MethodNotAllowed.New("allowed: "+allowed).SetHeader("Allow", allowed)
}

// mapError maps directory errors to admin API codes.
func mapError(err error) *errcode.Error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e
	}
	msg := err.Error()
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return errcode.NotFound.New("")
	case errors.Is(err, auth.ErrInvalid):
		return errcode.Invalid.New(strings.TrimPrefix(msg, auth.ErrInvalid.Error()+": "))
	case errors.Is(err, auth.ErrConflict):
		return errcode.Conflict.New(strings.TrimPrefix(msg, auth.ErrConflict.Error()+": "))
	case errors.Is(err, auth.ErrPrecondition):
		return errcode.PreconditionFailed.New("the resource changed since it was read (If-Match)")
	case errors.Is(err, auth.ErrForbidden):
		return &errcode.Error{Code: errcode.Denied, Message: strings.TrimPrefix(msg, auth.ErrForbidden.Error()+": ")}
	}
	return errcode.From(err)
}

// decode reads a JSON body into v, refusing unknown fields and bodies
// over 1 MiB.
func decode(r *request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errcode.Invalid.New("a JSON body is required")
		}
		return errcode.Invalid.New("malformed JSON: " + err.Error())
	}
	if dec.More() {
		return errcode.Invalid.New("malformed JSON: trailing data")
	}
	return nil
}

// decodeOptional is decode for a body that may be empty.
func decodeOptional(r *request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := decode(r, v)
	if e, ok := err.(*errcode.Error); ok && e.Message == "a JSON body is required" {
		return nil
	}
	return err
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// created answers 201 for a new resource, 200 for a replaced one.
func created(w http.ResponseWriter, isNew bool, v any) error {
	if isNew {
		return writeJSON(w, http.StatusCreated, v)
	}
	return writeJSON(w, http.StatusOK, v)
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// writeList answers a collection as {"value":[…]}, sorted by key and
// paginated with ?n=&last= and a Link header.
// items is not modified (it may be shared, as auth.TrustedServices is).
func writeList[T any](w http.ResponseWriter, r *request, items []T, key func(T) string) error {
	q := r.URL.Query()
	items = slices.Clone(items)
	sort.SliceStable(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	if last := q.Get("last"); last != "" {
		i := sort.Search(len(items), func(i int) bool { return key(items[i]) > last })
		items = items[i:]
	}
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errcode.Invalid.New("n must be a non-negative integer")
		}
		if len(items) > n {
			items = items[:n]
			if n > 0 {
				// The next page keeps the other parameters (filters).
				next := url.Values{}
				for k, v := range q {
					next[k] = v
				}
				next.Set("last", key(items[n-1]))
				w.Header().Set("Link", "<"+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
			}
		}
	}
	if items == nil {
		items = []T{}
	}
	return writeJSON(w, http.StatusOK, struct {
		Value []T `json:"value"`
	}{items})
}

func notFound(kind, name string) error {
	return errcode.NotFound.New(kind + " " + strconv.Quote(name) + " not found")
}
