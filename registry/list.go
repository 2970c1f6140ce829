package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pagination reads n and last of a list request. n < 0 means no limit.
func pagination(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return 0, "", errcode.PaginationNumberInvalid.New("n must be a non-negative integer")
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// writeJSON answers v as JSON with status 200.
func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// nextLink is the RFC 5988 Link header of the next page.
func nextLink(path string, n int, last string) string {
	return "<" + path + "?n=" + strconv.Itoa(n) + "&last=" + url.QueryEscape(last) + `>; rel="next"`
}

// tags answers GET /v2/<name>/tags/list in lexical order, paginated with n
// and last and a Link header when more follow. last need not be a tag: the
// list goes on after it in lexical order, as in Distribution and the
// catalog.
func (reg *Registry) tags(w http.ResponseWriter, r *http.Request, rt Route) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	limit := n
	if n >= 0 {
		limit = n + 1
	}
	tags, err := reg.meta.Tags(r.Context(), rt.Repository, last, limit)
	if err != nil {
		return err
	}
	if n >= 0 && len(tags) > n {
		tags = tags[:n]
		if n > 0 {
			w.Header().Set("Link", nextLink("/v2/"+rt.Repository+"/tags/list", n, tags[n-1]))
		}
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Repository, tags})
}

// catalog answers GET /v2/_catalog with the repositories the caller may
// pull, paginated like tags.
func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request, grant auth.Grant) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	limit := n
	if n >= 0 {
		limit = n + 1
	}
	repos, err := reg.meta.Repositories(r.Context(), last, limit, grant.Lists)
	if err != nil {
		return err
	}
	if n >= 0 && len(repos) > n {
		repos = repos[:n]
		if n > 0 {
			w.Header().Set("Link", nextLink("/v2/_catalog", n, repos[n-1]))
		}
	}
	if repos == nil {
		repos = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// referrers answers GET /v2/<name>/referrers/<digest>: an image index of
// the manifests whose subject is the digest, filtered by artifactType.
func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	descs, err := reg.meta.Referrers(r.Context(), rt.Repository, d, at)
	if err != nil {
		return err
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specsVersioned,
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	})
}

var specsVersioned = specs.Versioned{SchemaVersion: 2}
