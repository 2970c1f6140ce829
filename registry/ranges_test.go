package registry

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-99", 0, 99, true},
		{"100-199", 100, 199, true},
		{"5-5", 5, 5, true},
		{" 0-9 ", 0, 9, true},
		{"bytes 0-9/10", 0, 9, true},
		{"bytes 10-19/*", 10, 19, true},
		{"bytes=0-9", 0, 9, true},
		{"0-9223372036854775807", 0, 9223372036854775807, true},
		{"", 0, 0, false},
		{"0", 0, 0, false},
		{"-5", 0, 0, false},
		{"5-", 0, 0, false},
		{"9-5", 0, 0, false},
		{"+1-2", 0, 0, false},
		{"1-+2", 0, 0, false},
		{"-1-2", 0, 0, false},
		{"0x1-0x2", 0, 0, false},
		{"1 -2", 0, 0, false},
		{"0-9223372036854775808", 0, 0, false},
		{"0-9/10", 0, 0, false},
		{"bytes */10", 0, 0, false},
		{"a-b", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			start, end, err := parseContentRange(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("parseContentRange(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if start != tt.start || end != tt.end {
				t.Errorf("parseContentRange(%q) = %d-%d, want %d-%d", tt.in, start, end, tt.start, tt.end)
			}
		})
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-99", "bytes 0-9/10", "bytes=5-6", "9-5", "-1", "0-9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseContentRange(s)
		if err != nil {
			if start != 0 || end != 0 {
				t.Fatalf("error with a range %d-%d", start, end)
			}
			return
		}
		if start < 0 || end < start {
			t.Fatalf("parseContentRange(%q) = %d-%d", s, start, end)
		}
	})
}

func TestCheckRange(t *testing.T) {
	const (
		serve  = "serve"  // a valid range for ServeContent
		ignore = "ignore" // the whole blob (RFC 9110 §14.2)
		refuse = "refuse" // 416
	)
	tests := []struct {
		name string
		h    string
		size int64
		want string
	}{
		{"first bytes", "bytes=0-4", 10, serve},
		{"open end", "bytes=5-", 10, serve},
		{"end past size", "bytes=5-100", 10, serve},
		{"suffix", "bytes=-3", 10, serve},
		{"suffix longer than blob", "bytes=-30", 10, serve},
		{"several", "bytes=0-1, 4-5", 10, serve},
		{"one of several satisfiable", "bytes=20-30,0-1", 10, serve},
		{"last byte", "bytes=9-9", 10, serve},
		{"empty part", "bytes=0-1,,2-3", 10, serve},
		{"empty parts around", "bytes=, 0-1 ,", 10, serve},
		{"other unit", "items=0-4", 10, ignore},
		{"unit of other case", "Bytes=0-4", 10, ignore},
		{"other unit, unsatisfiable", "items=100-200", 10, ignore},
		{"start at size", "bytes=10-", 10, refuse},
		{"start past size", "bytes=100-200", 10, refuse},
		{"empty suffix", "bytes=-0", 10, refuse},
		{"suffix of empty blob", "bytes=-5", 0, refuse},
		{"any range of empty blob", "bytes=0-", 0, refuse},
		{"end before start", "bytes=5-4", 10, refuse},
		{"no unit", "0-4", 10, refuse},
		{"no dash", "bytes=4", 10, refuse},
		{"no numbers", "bytes=-", 10, refuse},
		{"empty", "bytes=", 10, refuse},
		{"only empty parts", "bytes=,,", 10, refuse},
		{"sign", "bytes=+1-2", 10, refuse},
		{"negative suffix", "bytes=--1", 10, refuse},
		{"garbage part", "bytes=0-1,x", 10, refuse},
		{"overflow", "bytes=0-99999999999999999999", 10, refuse},
		{"non-ASCII space", "bytes=\u00a00-1", 10, refuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serve
			if ig, err := checkRange(tt.h, tt.size); err != nil {
				got = refuse
			} else if ig {
				got = ignore
			}
			if got != tt.want {
				t.Errorf("checkRange(%q, %d): %s, want %s", tt.h, tt.size, got, tt.want)
			}
		})
	}
}

// FuzzCheckRange checks that a Range header checkRange lets through is one
// http.ServeContent serves (200 or 206), so that every 416 the registry
// answers is its own, with the OCI error body.
func FuzzCheckRange(f *testing.F) {
	for _, s := range []string{"bytes=0-4", "bytes=-3", "bytes=5-", "bytes=0-1,4-5", "bytes=10-", "bytes= 1-2 ", "bytes=-0"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		size %= 64
		if size < 0 {
			size = -size
		}
		if ignore, err := checkRange(h, size); err != nil || ignore {
			return
		}
		content := bytes.Repeat([]byte{'x'}, int(size))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["Range"] = []string{h}
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", zeroTime, bytes.NewReader(content))
		if rec.Code != http.StatusOK && rec.Code != http.StatusPartialContent {
			t.Fatalf("checkRange accepted %q for %d bytes, ServeContent answered %d %s", h, size, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	})
}
