package registry

import (
	"strings"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
)

// Kind is the endpoint family a /v2 path names.
type Kind uint8

// The endpoints of the OCI distribution API.
const (
	KindBase        Kind = iota + 1 // /v2/
	KindCatalog                     // /v2/_catalog
	KindTags                        // /v2/<name>/tags/list
	KindManifest                    // /v2/<name>/manifests/<reference>
	KindBlob                        // /v2/<name>/blobs/<digest>
	KindUploadStart                 // /v2/<name>/blobs/uploads/
	KindUpload                      // /v2/<name>/blobs/uploads/<id>
	KindReferrers                   // /v2/<name>/referrers/<digest>
)

var kindNames = [...]string{"", "base", "catalog", "tags", "manifest", "blob", "upload-start", "upload", "referrers"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Route is a parsed /v2 path. Repository is a valid repository name;
// Reference is the manifest reference, blob digest or upload id as it
// appeared (the handlers validate it for their kind).
type Route struct {
	Kind       Kind
	Repository string
	Reference  string
}

// ParseRoute parses a /v2 path. Repository names contain '/', so the path
// is read from its end: the last one or two segments name the endpoint and
// everything before them is the repository. The error is NAME_INVALID for a
// bad repository name and NOT_FOUND for a path that is no endpoint.
func ParseRoute(path string) (Route, error) {
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok {
		return Route{}, errNotFound
	}
	if rest == "" || rest == "/" {
		return Route{Kind: KindBase}, nil
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return Route{}, errNotFound
	}
	if rest == "_catalog" {
		return Route{Kind: KindCatalog}, nil
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Route{}, errNotFound
	}
	head, last := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return Route{}, errNotFound
	}
	repo, segment := head[:j], head[j+1:]
	var rt Route
	switch segment {
	case "manifests":
		rt = Route{Kind: KindManifest, Repository: repo, Reference: last}
	case "referrers":
		rt = Route{Kind: KindReferrers, Repository: repo, Reference: last}
	case "tags":
		if last != "list" {
			return Route{}, errNotFound
		}
		rt = Route{Kind: KindTags, Repository: repo}
	case "blobs":
		if last == "uploads" {
			rt = Route{Kind: KindUploadStart, Repository: repo}
		} else {
			rt = Route{Kind: KindBlob, Repository: repo, Reference: last}
		}
	case "uploads":
		repo, ok = strings.CutSuffix(head, "/blobs/uploads")
		if !ok {
			return Route{}, errNotFound
		}
		rt = Route{Kind: KindUpload, Repository: repo, Reference: last}
		if last == "" {
			rt.Kind = KindUploadStart
		}
	default:
		return Route{}, errNotFound
	}
	if rt.Reference == "" && (rt.Kind == KindManifest || rt.Kind == KindBlob || rt.Kind == KindReferrers) {
		return Route{}, errNotFound
	}
	if !oci.ValidRepository(rt.Repository) {
		return Route{}, errcode.NameInvalid.WithDetail(map[string]string{"name": rt.Repository})
	}
	return rt, nil
}

var errNotFound = &errcode.Error{Code: errcode.Code{Value: "NOT_FOUND", Status: 404, Message: "no such endpoint"}}
