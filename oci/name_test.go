package oci_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/moat-registry/moat/oci"
)

// The reference grammar of the distribution spec, as the oracle the
// hand-written validators must agree with exactly.
var (
	repositoryGrammar = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagGrammar        = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
)

func referenceRepository(name string) bool {
	return len(name) <= oci.MaxNameLength && repositoryGrammar.MatchString(name)
}

func referenceTag(tag string) bool { return tagGrammar.MatchString(tag) }

func TestValidRepository(t *testing.T) {
	longest := strings.Repeat("a", oci.MaxNameLength)
	tests := []struct {
		name string
		repo string
		want bool
	}{
		{"single component", "alpine", true},
		{"digits", "0123", true},
		{"two components", "library/alpine", true},
		{"deep path", "a/b/c/d/e", true},
		{"period separator", "a.b", true},
		{"underscore separator", "a_b", true},
		{"double underscore separator", "a__b", true},
		{"dash run separator", "a---b", true},
		{"mixed separators", "a.b_c__d-e--f/g", true},
		{"endpoint words as components", "manifests/blobs/uploads/tags", true},
		{"at the length bound", longest, true},
		{"past the length bound", longest + "a", false},
		{"long path past the bound", strings.Repeat("ab/", 85) + "a", false},
		{"empty", "", false},
		{"upper case", "Alpine", false},
		{"leading slash", "/a", false},
		{"trailing slash", "a/", false},
		{"empty component", "a//b", false},
		{"leading separator", ".a", false},
		{"trailing separator", "a.", false},
		{"trailing dash", "a-", false},
		{"triple underscore", "a___b", false},
		{"two periods", "a..b", false},
		{"period then dash", "a.-b", false},
		{"dash then underscore", "a-_b", false},
		{"component starting with separator", "a/-b", false},
		{"colon", "a:b", false},
		{"at sign", "a@b", false},
		{"space", "a b", false},
		{"dot dot component", "a/../b", false},
		{"escaped slash", "a%2Fb", false},
		{"non-ASCII", "caf\u00e9", false},
		{"NUL byte", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oci.ValidRepository(tt.repo); got != tt.want {
				t.Errorf("ValidRepository(%q) = %v, want %v", tt.repo, got, tt.want)
			}
			if ref := referenceRepository(tt.repo); ref != tt.want {
				t.Errorf("reference grammar says %v for %q; the table is wrong", ref, tt.repo)
			}
		})
	}
}

func TestValidTag(t *testing.T) {
	longest := "a" + strings.Repeat("b", 127)
	tests := []struct {
		name string
		tag  string
		want bool
	}{
		{"word", "latest", true},
		{"version", "v1.2.3", true},
		{"upper case", "LATEST", true},
		{"leading underscore", "_x", true},
		{"leading digit", "1", true},
		{"dashes and dots inside", "a-b.c_d", true},
		{"trailing dash", "a-", true},
		{"at the length bound", longest, true},
		{"past the length bound", longest + "c", false},
		{"empty", "", false},
		{"leading dash", "-a", false},
		{"leading period", ".a", false},
		{"colon", "a:b", false},
		{"slash", "a/b", false},
		{"plus", "a+b", false},
		{"space", "a b", false},
		{"digest", "sha256:abc", false},
		{"non-ASCII", "\u00e9", false},
		{"non-ASCII letter inside", "a\u00e9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oci.ValidTag(tt.tag); got != tt.want {
				t.Errorf("ValidTag(%q) = %v, want %v", tt.tag, got, tt.want)
			}
			if ref := referenceTag(tt.tag); ref != tt.want {
				t.Errorf("reference grammar says %v for %q; the table is wrong", ref, tt.tag)
			}
		})
	}
}

func FuzzValidRepository(f *testing.F) {
	for _, s := range []string{
		"", "a", "library/alpine", "a__b", "a___b", "a-b", "a--b", "a.b", "a..b",
		"a/b/c", "a//b", "a/", "/a", "A", "a.-b", "a_-b", strings.Repeat("a", 255), strings.Repeat("a", 256),
		strings.Repeat("a/", 127) + "a", strings.Repeat("a/", 128) + "a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, want := oci.ValidRepository(name), referenceRepository(name)
		if got != want {
			t.Fatalf("ValidRepository(%q) = %v, reference grammar says %v", name, got, want)
		}
	})
}

func FuzzValidTag(f *testing.F) {
	for _, s := range []string{
		"", "a", "latest", "v1.0", "-a", ".a", "_a", "a-", "A.B-C_D", "a:b",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "\u00e9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		got, want := oci.ValidTag(tag), referenceTag(tag)
		if got != want {
			t.Fatalf("ValidTag(%q) = %v, reference grammar says %v", tag, got, want)
		}
	})
}

func BenchmarkValidRepository(b *testing.B) {
	for _, bc := range []struct{ name, repo string }{
		{"short", "alpine"},
		{"typical", "team/project/service-api"},
		{"long", strings.Repeat("abc.def/", 31) + "xyz"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !oci.ValidRepository(bc.repo) {
					b.Fatal("rejected")
				}
			}
		})
	}
}

func BenchmarkValidTag(b *testing.B) {
	for _, bc := range []struct{ name, tag string }{
		{"short", "latest"},
		{"typical", "v1.27.3-alpine3.20"},
		{"longest", strings.Repeat("a", 128)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !oci.ValidTag(bc.tag) {
					b.Fatal("rejected")
				}
			}
		})
	}
}
