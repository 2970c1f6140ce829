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
	tests := []struct {
		name string
		h    string
		size int64
		ok   bool
	}{
		{"first bytes", "bytes=0-4", 10, true},
		{"open end", "bytes=5-", 10, true},
		{"end past size", "bytes=5-100", 10, true},
		{"suffix", "bytes=-3", 10, true},
		{"suffix longer than blob", "bytes=-30", 10, true},
		{"several", "bytes=0-1, 4-5", 10, true},
		{"one of several satisfiable", "bytes=20-30,0-1", 10, true},
		{"last byte", "bytes=9-9", 10, true},
		{"start at size", "bytes=10-", 10, false},
		{"start past size", "bytes=100-200", 10, false},
		{"empty suffix", "bytes=-0", 10, false},
		{"suffix of empty blob", "bytes=-5", 0, false},
		{"any range of empty blob", "bytes=0-", 0, false},
		{"end before start", "bytes=5-4", 10, false},
		{"no unit", "0-4", 10, false},
		{"other unit", "items=0-4", 10, false},
		{"no dash", "bytes=4", 10, false},
		{"no numbers", "bytes=-", 10, false},
		{"empty", "bytes=", 10, false},
		{"empty part", "bytes=0-1,,2-3", 10, false},
		{"sign", "bytes=+1-2", 10, false},
		{"negative suffix", "bytes=--1", 10, false},
		{"garbage part", "bytes=0-1,x", 10, false},
		{"overflow", "bytes=0-99999999999999999999", 10, false},
		{"non-ASCII space", "bytes=\u00a00-1", 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkRange(tt.h, tt.size); (err == nil) != tt.ok {
				t.Errorf("checkRange(%q, %d) = %v, want ok=%v", tt.h, tt.size, err, tt.ok)
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
		if checkRange(h, size) != nil {
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
