package s3

import (
	"testing"
)

func TestSplitRanges(t *testing.T) {
	for _, size := range []int64{1, MinPartSize, maxCopySize - 1, maxCopySize, maxCopySize + 1, 2*maxCopySize + MinPartSize, 5 << 40} {
		ranges := splitRanges(size)
		next := int64(0)
		for i, r := range ranges {
			n := r[1] - r[0] + 1
			if r[0] != next || n <= 0 || n > maxCopySize {
				t.Fatalf("splitRanges(%d)[%d] = %v after %d", size, i, r, next)
			}
			if size > maxCopySize && n < MinPartSize {
				t.Fatalf("splitRanges(%d)[%d] = %v: a part under 5 MiB", size, i, r)
			}
			next = r[1] + 1
		}
		if next != size {
			t.Fatalf("splitRanges(%d) covers %d bytes", size, next)
		}
		if want := (size + maxCopySize - 1) / maxCopySize; int64(len(ranges)) != want {
			t.Fatalf("splitRanges(%d) = %d ranges, want %d", size, len(ranges), want)
		}
	}
	if got := splitRanges(0); len(got) != 0 {
		t.Fatalf("splitRanges(0) = %v", got)
	}
}

func TestPartSize(t *testing.T) {
	s := &Store{part: DefaultPartSize}
	var total int64
	for n := 1; n <= maxParts; n++ {
		p := s.partSize(n)
		if p < MinPartSize || p > maxCopySize {
			t.Fatalf("partSize(%d) = %d", n, p)
		}
		if n > 1 && p < s.partSize(n-1) {
			t.Fatalf("partSize(%d) = %d shrinks", n, p)
		}
		total += p
	}
	if total < 400<<30 {
		t.Fatalf("10,000 parts hold %d bytes, want 400 GiB or more", total)
	}
	if s.partSize(1) != DefaultPartSize || s.partSize(1000) != DefaultPartSize || s.partSize(1001) != 2*DefaultPartSize {
		t.Fatalf("partSize: %d, %d, %d", s.partSize(1), s.partSize(1000), s.partSize(1001))
	}
}

func TestParseBlobKey(t *testing.T) {
	const hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct {
		rel string
		ok  bool
	}{
		{"sha256/e3/" + hex, true},
		{"sha256/e4/" + hex, false},
		{"sha256/" + hex, false},
		{"sha256/e3/" + hex[:60], false},
		{"md5/e3/" + hex, false},
		{"sha256/e3/" + hex + "/x", false},
		{"", false},
	}
	for _, tc := range tests {
		d, ok := parseBlobKey(tc.rel)
		if ok != tc.ok || (ok && d.String() != "sha256:"+hex) {
			t.Errorf("parseBlobKey(%q) = %q, %v; want ok=%v", tc.rel, d, ok, tc.ok)
		}
	}
}
