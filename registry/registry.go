// Package registry serves the OCI distribution API (/v2/…) over the storage
// interfaces. Every request is parsed into a Route, checked by an
// Authorizer for the scopes it needs, and handled by a method that returns
// an error; one function renders errors in the OCI shape.
package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/storage"
)

// Authorizer decides whether a request may have the scopes it needs. A
// denial is an *errcode.Error carrying its status and challenge.
type Authorizer interface {
	Authorize(r *http.Request, need []auth.Scope) (auth.Grant, error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(r *http.Request, need []auth.Scope) (auth.Grant, error)

// Authorize implements Authorizer.
func (f AuthorizerFunc) Authorize(r *http.Request, need []auth.Scope) (auth.Grant, error) {
	return f(r, need)
}

// Event tells an observer about a change to a repository.
type Event struct {
	Action     string // "push" or "delete"
	Kind       Kind   // KindManifest, KindBlob or KindTags (a tag deleted)
	Repository string
	Digest     string
	Tag        string
	MediaType  string
	Size       int64
	// Actor names who did it (empty for an anonymous caller).
	Actor   string
	Request *http.Request
}

// Options configure a Registry.
type Options struct {
	// RelaxIndexReferences accepts an index whose child manifests are not
	// (yet) in the repository.
	RelaxIndexReferences bool
	// MaxManifestSize bounds a manifest body (default 4 MiB).
	MaxManifestSize int64
	// MaxBlobSize bounds one blob (0: no limit); larger uploads get 413.
	MaxBlobSize int64
	// RedirectTTL, when set and the blob store can presign (an object
	// store), answers blob GETs the Grant allows it for with a redirect to
	// a presigned URL valid this long.
	RedirectTTL time.Duration
	// Logger receives server-side failures (default slog.Default()).
	Logger *slog.Logger
	// OnEvent, when set, is called after every successful push or delete.
	OnEvent func(Event)
}

// Registry is the http.Handler of /v2.
type Registry struct {
	meta    storage.Meta
	blobs   storage.Blobs
	uploads storage.Uploads
	authz   Authorizer
	opts    Options
}

// New returns the /v2 handler over the given stores.
func New(meta storage.Meta, blobs storage.Blobs, uploads storage.Uploads, authz Authorizer, opts Options) *Registry {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Registry{meta: meta, blobs: blobs, uploads: uploads, authz: authz, opts: opts}
}

// APIVersionHeader is on every /v2 answer, as Docker's clients expect.
const APIVersionHeader = "Docker-Distribution-API-Version"

var apiVersion = []string{"registry/2.0"}

// ServeHTTP implements http.Handler.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()[APIVersionHeader] = apiVersion
	if err := reg.serve(w, r); err != nil {
		reg.writeError(w, r, err)
	}
}

func (reg *Registry) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := mapError(err)
	if e.Code.Status >= 500 {
		reg.opts.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	errcode.Write(w, r, e)
}

func (reg *Registry) serve(w http.ResponseWriter, r *http.Request) error {
	if strings.Contains(r.URL.RawPath, "%2F") || strings.Contains(r.URL.RawPath, "%2f") {
		return errcode.NameInvalid.New("repository names cannot hold an escaped '/'")
	}
	rt, err := ParseRoute(r.URL.Path)
	if err != nil {
		return err
	}
	need, err := neededScopes(rt, r)
	if err != nil {
		return err
	}
	grant, err := reg.authz.Authorize(r, need)
	if err != nil {
		return err
	}
	switch rt.Kind {
	case KindBase:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("{}"))
		}
		return nil
	case KindCatalog:
		return reg.catalog(w, r, grant)
	case KindTags:
		return reg.tags(w, r, rt)
	case KindManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return reg.getManifest(w, r, rt)
		case http.MethodPut:
			return reg.putManifest(w, r, rt, grant)
		default:
			return reg.deleteManifest(w, r, rt, grant)
		}
	case KindBlob:
		if r.Method == http.MethodDelete {
			return reg.deleteBlob(w, r, rt, grant)
		}
		return reg.getBlob(w, r, rt, grant)
	case KindUploadStart:
		return reg.startUpload(w, r, rt, grant)
	case KindUpload:
		switch r.Method {
		case http.MethodGet:
			return reg.uploadStatus(w, r, rt)
		case http.MethodPatch:
			return reg.patchUpload(w, r, rt)
		case http.MethodPut:
			return reg.putUpload(w, r, rt, grant)
		default:
			return reg.cancelUpload(w, r, rt)
		}
	case KindReferrers:
		return reg.referrers(w, r, rt)
	}
	return errNotFound
}

// methods lists what each endpoint answers.
var methods = [...]string{
	KindBase:        "GET, HEAD",
	KindCatalog:     "GET",
	KindTags:        "GET",
	KindManifest:    "GET, HEAD, PUT, DELETE",
	KindBlob:        "GET, HEAD, DELETE",
	KindUploadStart: "POST",
	KindUpload:      "GET, PATCH, PUT, DELETE",
	KindReferrers:   "GET",
}

// neededScopes is what a request must be allowed: the action on its
// repository, and for a cross-repository mount, pull on the source.
func neededScopes(rt Route, r *http.Request) ([]auth.Scope, error) {
	allowed := methods[rt.Kind]
	if !methodAllowed(allowed, r.Method) {
		return nil, errcode.Unsupported.New("method "+r.Method+" is not allowed here").SetHeader("Allow", allowed)
	}
	var a auth.Action
	switch rt.Kind {
	case KindBase:
		return nil, nil
	case KindCatalog:
		return []auth.Scope{auth.Catalog()}, nil
	case KindTags:
		a = auth.List // ACR's metadata/read; Docker's "pull" includes it
	case KindReferrers:
		a = auth.Pull
	case KindManifest, KindBlob:
		switch r.Method {
		case http.MethodPut:
			a = auth.Pull | auth.Push
		case http.MethodDelete:
			a = auth.Delete
		default:
			a = auth.Pull
		}
	case KindUploadStart, KindUpload:
		a = auth.Pull | auth.Push
		if rt.Kind == KindUploadStart {
			q := r.URL.Query()
			if from := q.Get("from"); from != "" && q.Get("mount") != "" && from != rt.Repository {
				if !oci.ValidRepository(from) {
					return nil, errcode.NameInvalid.WithDetail(map[string]string{"name": from})
				}
				// The mount is tried only if pull on the source is granted;
				// without it the request falls back to an ordinary upload.
				src := auth.Repository(from, auth.Pull)
				src.Optional = true
				return []auth.Scope{auth.Repository(rt.Repository, a), src}, nil
			}
		}
	}
	return []auth.Scope{auth.Repository(rt.Repository, a)}, nil
}

// methodAllowed reports whether method is one of the comma-separated list
// allowed. It compares whole names: "ELETE" is not "DELETE".
func methodAllowed(allowed, method string) bool {
	for m := range strings.SplitSeq(allowed, ", ") {
		if m == method {
			return true
		}
	}
	return false
}

// mapError turns storage errors into OCI errors; everything else passes
// through errcode.From.
func mapError(err error) *errcode.Error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e
	}
	var missing *storage.MissingError
	switch {
	case errors.As(err, &missing):
		return errcode.ManifestBlobUnknown.WithDetail(map[string]string{"digest": missing.Digest.String()})
	case errors.Is(err, storage.ErrBlobUnknown):
		return errcode.BlobUnknown.Wrap(err)
	case errors.Is(err, storage.ErrManifestUnknown):
		return errcode.ManifestUnknown.Wrap(err)
	case errors.Is(err, storage.ErrRepositoryUnknown):
		return errcode.NameUnknown.Wrap(err)
	case errors.Is(err, storage.ErrUploadUnknown):
		return errcode.BlobUploadUnknown.Wrap(err)
	case errors.Is(err, storage.ErrDigestMismatch):
		return errcode.DigestInvalid.Wrap(err)
	case errors.Is(err, storage.ErrSizeMismatch):
		return errcode.SizeInvalid.Wrap(err)
	case errors.Is(err, storage.ErrUnsupportedDigest):
		return errcode.DigestInvalid.New("unsupported digest algorithm")
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The request body ended before its Content-Length.
		return errcode.SizeInvalid.Wrap(err)
	case errors.Is(err, errBlobTooLarge):
		return errcode.TooLarge.New(errBlobTooLarge.Error())
	case errors.Is(err, context.Canceled):
		return errcode.BlobUploadInvalid.New("request cancelled")
	case errors.As(err, new(bodyReadError)):
		return &errcode.Error{Code: errcode.BlobUploadInvalid, Message: "reading the request body failed", Err: err}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errStorageFull.Wrap(err)
	}
	return errcode.From(err)
}

// errStorageFull answers a write the disk (or a quota) has no room for.
var errStorageFull = errcode.Code{Value: errcode.Unavailable.Value, Status: http.StatusInsufficientStorage, Message: "storage is full"}
