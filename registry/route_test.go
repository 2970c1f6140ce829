package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/registry"
)

const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseRoute(t *testing.T) {
	type route = registry.Route
	tests := []struct {
		name     string
		path     string
		want     route
		wantCode string // error code when the path is refused
	}{
		{"base", "/v2", route{Kind: registry.KindBase}, ""},
		{"base with slash", "/v2/", route{Kind: registry.KindBase}, ""},
		{"catalog", "/v2/_catalog", route{Kind: registry.KindCatalog}, ""},
		{"tags", "/v2/library/alpine/tags/list", route{registry.KindTags, "library/alpine", ""}, ""},
		{"manifest by tag", "/v2/alpine/manifests/latest", route{registry.KindManifest, "alpine", "latest"}, ""},
		{"manifest by digest", "/v2/a/b/c/manifests/" + dg, route{registry.KindManifest, "a/b/c", dg}, ""},
		{"blob", "/v2/alpine/blobs/" + dg, route{registry.KindBlob, "alpine", dg}, ""},
		{"upload start", "/v2/alpine/blobs/uploads/", route{registry.KindUploadStart, "alpine", ""}, ""},
		{"upload start without slash", "/v2/alpine/blobs/uploads", route{registry.KindUploadStart, "alpine", ""}, ""},
		{"upload", "/v2/alpine/blobs/uploads/0123abcd", route{registry.KindUpload, "alpine", "0123abcd"}, ""},
		{"referrers", "/v2/alpine/referrers/" + dg, route{registry.KindReferrers, "alpine", dg}, ""},

		// Endpoint words as path components of the repository name.
		{"repository named manifests", "/v2/manifests/manifests/latest", route{registry.KindManifest, "manifests", "latest"}, ""},
		{"repository ending in manifests", "/v2/a/manifests/manifests/latest", route{registry.KindManifest, "a/manifests", "latest"}, ""},
		{"tag named manifests", "/v2/a/manifests/manifests", route{registry.KindManifest, "a", "manifests"}, ""},
		{"repository named blobs", "/v2/blobs/blobs/" + dg, route{registry.KindBlob, "blobs", dg}, ""},
		{"repository ending in blobs", "/v2/x/blobs/blobs/uploads/", route{registry.KindUploadStart, "x/blobs", ""}, ""},
		{"repository named uploads", "/v2/uploads/blobs/uploads/abc", route{registry.KindUpload, "uploads", "abc"}, ""},
		{"repository ending in blobs/uploads", "/v2/a/blobs/uploads/blobs/uploads/abc", route{registry.KindUpload, "a/blobs/uploads", "abc"}, ""},
		{"repository named tags", "/v2/tags/tags/list", route{registry.KindTags, "tags", ""}, ""},
		{"repository named v2", "/v2/v2/manifests/x", route{registry.KindManifest, "v2", "x"}, ""},
		{"tag named list", "/v2/a/manifests/list", route{registry.KindManifest, "a", "list"}, ""},
		{"repository with every separator", "/v2/a.b_c__d--e/f/manifests/t", route{registry.KindManifest, "a.b_c__d--e/f", "t"}, ""},

		// Bad repository names.
		{"upper case name", "/v2/Alpine/manifests/latest", route{}, "NAME_INVALID"},
		{"empty name", "/v2//manifests/latest", route{}, "NAME_INVALID"},
		{"empty component", "/v2/a//b/manifests/latest", route{}, "NAME_INVALID"},
		{"leading slash in name", "/v2//a/manifests/latest", route{}, "NAME_INVALID"},
		{"dot dot", "/v2/a/../b/blobs/" + dg, route{}, "NAME_INVALID"},
		{"name too long", "/v2/" + strings.Repeat("a", 256) + "/tags/list", route{}, "NAME_INVALID"},
		{"bad upload repository", "/v2/A/blobs/uploads/", route{}, "NAME_INVALID"},
		{"bad upload-session repository", "/v2/A_/blobs/uploads/x", route{}, "NAME_INVALID"},

		// Not endpoints.
		{"empty", "", route{}, "NOT_FOUND"},
		{"root", "/", route{}, "NOT_FOUND"},
		{"v1", "/v1/alpine/manifests/latest", route{}, "NOT_FOUND"},
		{"v2 prefix of a word", "/v2x", route{}, "NOT_FOUND"},
		{"v2 prefix of a word with path", "/v2alpine/manifests/latest", route{}, "NOT_FOUND"},
		{"catalog with slash", "/v2/_catalog/", route{}, "NOT_FOUND"},
		{"name only", "/v2/alpine", route{}, "NOT_FOUND"},
		{"name with slash", "/v2/alpine/", route{}, "NOT_FOUND"},
		{"manifests without reference", "/v2/alpine/manifests/", route{}, "NOT_FOUND"},
		{"manifests without name", "/v2/manifests/latest", route{}, "NOT_FOUND"},
		{"blobs without digest", "/v2/alpine/blobs/", route{}, "NOT_FOUND"},
		{"referrers without digest", "/v2/alpine/referrers/", route{}, "NOT_FOUND"},
		{"tags without list", "/v2/alpine/tags/", route{}, "NOT_FOUND"},
		{"tags other than list", "/v2/alpine/tags/all", route{}, "NOT_FOUND"},
		{"uploads without blobs", "/v2/alpine/uploads/abc", route{}, "NOT_FOUND"},
		{"uploads without name", "/v2/blobs/uploads/abc", route{}, "NOT_FOUND"},
		{"unknown endpoint", "/v2/alpine/things/x", route{}, "NOT_FOUND"},
		{"trailing slash after reference", "/v2/alpine/manifests/latest/", route{}, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.ParseRoute(tt.path)
			if tt.wantCode != "" {
				var e *errcode.Error
				if !errors.As(err, &e) || e.Code.Value != tt.wantCode {
					t.Fatalf("ParseRoute(%q) = %+v, %v; want %s", tt.path, got, err, tt.wantCode)
				}
				wantStatus := 404
				if tt.wantCode == "NAME_INVALID" {
					wantStatus = 400
				}
				if e.Code.Status != wantStatus {
					t.Errorf("status %d, want %d", e.Code.Status, wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRoute(%q) = %v", tt.path, err)
			}
			if got != tt.want {
				t.Errorf("ParseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
			back := renderRoute(got)
			if again, err := registry.ParseRoute(back); err != nil || again != got {
				t.Errorf("rendered as %q, which parses to %+v, %v", back, again, err)
			}
		})
	}
}

// renderRoute is the canonical path of a route.
func renderRoute(rt registry.Route) string {
	switch rt.Kind {
	case registry.KindBase:
		return "/v2/"
	case registry.KindCatalog:
		return "/v2/_catalog"
	case registry.KindTags:
		return "/v2/" + rt.Repository + "/tags/list"
	case registry.KindManifest:
		return "/v2/" + rt.Repository + "/manifests/" + rt.Reference
	case registry.KindBlob:
		return "/v2/" + rt.Repository + "/blobs/" + rt.Reference
	case registry.KindUploadStart:
		return "/v2/" + rt.Repository + "/blobs/uploads/"
	case registry.KindUpload:
		return "/v2/" + rt.Repository + "/blobs/uploads/" + rt.Reference
	case registry.KindReferrers:
		return "/v2/" + rt.Repository + "/referrers/" + rt.Reference
	}
	return ""
}

func TestKindString(t *testing.T) {
	for k, want := range map[registry.Kind]string{
		registry.KindBase: "base", registry.KindCatalog: "catalog", registry.KindTags: "tags",
		registry.KindManifest: "manifest", registry.KindBlob: "blob", registry.KindUploadStart: "upload-start",
		registry.KindUpload: "upload", registry.KindReferrers: "referrers", 0: "", 200: "unknown",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/a/tags/list", "/v2/a/b/manifests/latest", "/v2/a/blobs/" + dg,
		"/v2/a/blobs/uploads/", "/v2/a/blobs/uploads", "/v2/a/blobs/uploads/abc", "/v2/a/referrers/" + dg,
		"/v2/manifests/manifests/manifests", "/v2/blobs/uploads/blobs/uploads/x", "/v2//manifests/x", "/v2/a//b/tags/list",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := registry.ParseRoute(path)
		if err != nil {
			var e *errcode.Error
			if !errors.As(err, &e) || (e.Code.Value != "NAME_INVALID" && e.Code.Value != "NOT_FOUND") {
				t.Fatalf("ParseRoute(%q) = %v, want NAME_INVALID or NOT_FOUND", path, err)
			}
			if rt != (registry.Route{}) {
				t.Fatalf("ParseRoute(%q) = %+v with an error", path, rt)
			}
			return
		}
		switch rt.Kind {
		case registry.KindBase, registry.KindCatalog:
			if rt.Repository != "" || rt.Reference != "" {
				t.Fatalf("ParseRoute(%q) = %+v", path, rt)
			}
		default:
			if !oci.ValidRepository(rt.Repository) {
				t.Fatalf("ParseRoute(%q) accepted repository %q", path, rt.Repository)
			}
			if strings.Contains(rt.Reference, "/") {
				t.Fatalf("ParseRoute(%q) = reference %q with a slash", path, rt.Reference)
			}
		}
		needsRef := rt.Kind == registry.KindManifest || rt.Kind == registry.KindBlob ||
			rt.Kind == registry.KindUpload || rt.Kind == registry.KindReferrers
		if needsRef != (rt.Reference != "") {
			t.Fatalf("ParseRoute(%q) = %+v: reference presence wrong for %s", path, rt, rt.Kind)
		}
		back := renderRoute(rt)
		again, err := registry.ParseRoute(back)
		if err != nil || again != rt {
			t.Fatalf("ParseRoute(%q) = %+v, rendered as %q, which parses to %+v, %v", path, rt, back, again, err)
		}
	})
}

func BenchmarkParseRoute(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"base", "/v2/"},
		{"manifest", "/v2/library/alpine/manifests/3.20"},
		{"blob", "/v2/team/project/service/blobs/" + dg},
		{"upload", "/v2/team/project/service/blobs/uploads/0123456789abcdef0123456789abcdef"},
		{"not found", "/v2/team/project/service/nothing/here"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = registry.ParseRoute(bc.path)
			}
		})
	}
}
