package registry

import "testing"

func TestIfNoneMatchHits(t *testing.T) {
	const etag = `"sha256:abc"`
	tests := []struct {
		name string
		h    string
		want bool
	}{
		{"same", `"sha256:abc"`, true},
		{"weak", `W/"sha256:abc"`, true},
		{"in a list", `"x", "sha256:abc"`, true},
		{"in a list without spaces", `"x",W/"sha256:abc"`, true},
		{"empty elements", ` , ,"sha256:abc"`, true},
		{"star", `*`, true},
		{"other", `"sha256:abd"`, false},
		{"longer", `"sha256:abcd"`, false},
		{"shorter", `"sha256:ab"`, false},
		{"unquoted", `sha256:abc`, false},
		{"inside another tag", `"x-sha256:abc"`, false},
		{"after a malformed element", `x, "sha256:abc"`, false},
		{"unterminated", `"sha256:abc`, false},
		{"lower-case weak prefix", `w/"sha256:abc"`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ifNoneMatchHits(tt.h, etag); got != tt.want {
				t.Errorf("ifNoneMatchHits(%q, %q) = %v, want %v", tt.h, etag, got, tt.want)
			}
		})
	}
}

func TestIfRangeHolds(t *testing.T) {
	const etag = `"sha256:abc"`
	tests := []struct {
		name string
		h    string
		want bool
	}{
		{"absent", ``, true},
		{"same", `"sha256:abc"`, true},
		{"same with spaces", ` "sha256:abc" `, true},
		{"weak", `W/"sha256:abc"`, false},
		{"other", `"sha256:abd"`, false},
		{"unquoted", `sha256:abc`, false},
		{"date", `Mon, 02 Jan 2006 15:04:05 GMT`, false},
		{"star", `*`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ifRangeHolds(tt.h, etag); got != tt.want {
				t.Errorf("ifRangeHolds(%q, %q) = %v, want %v", tt.h, etag, got, tt.want)
			}
		})
	}
}
