package reliability

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestHostileHeaders: a header block over MaxHeaderBytes (one huge header
// or very many small ones) gets 431; many headers under the limit are
// served normally (a hang fails on the request's deadline).
func TestHostileHeaders(t *testing.T) {
	e := newHostileEnv(t, nil)
	many := func(n int) []string {
		h := make([]string, n)
		for i := range h {
			h[i] = "X-H" + strconv.Itoa(i) + ": v"
		}
		return h
	}
	cases := []struct {
		name   string
		header []string
		status int
	}{
		{"one 70 KiB header", []string{"X-Big: " + strings.Repeat("a", 70<<10)}, http.StatusRequestHeaderFieldsTooLarge},
		{"one 1 MiB header", []string{"X-Big: " + strings.Repeat("a", 1<<20)}, http.StatusRequestHeaderFieldsTooLarge},
		{"20000 headers", many(20000), http.StatusRequestHeaderFieldsTooLarge},
		{"a 70 KiB Authorization", []string{"Authorization: Bearer " + strings.Repeat("a", 70<<10)}, http.StatusRequestHeaderFieldsTooLarge},
		{"3000 headers under the limit", many(3000), http.StatusOK},
		{"one header repeated 3000 times", slicesRepeat("X-Same: v", 3000), http.StatusOK},
		{"a 40 KiB cookie", []string{"Cookie: a=" + strings.Repeat("b", 40<<10)}, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A hang fails rawRequest with its deadline.
			a, err := rawRequest(e.addr, http.MethodGet, "/v2/", c.header, nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != c.status {
				t.Errorf("answered %s, want %d", a, c.status)
			}
		})
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestHostileRanges: malformed, unsatisfiable and pathological Range
// headers on blob reads and Content-Range headers on upload chunks get a
// 4xx in the OCI error shape (416 with Content-Range for an
// unsatisfiable range) or a correct partial answer, never a 5xx, and a
// rejected chunk leaves the session where it was.
func TestHostileRanges(t *testing.T) {
	e := newHostileEnv(t, nil)
	size := len(e.blob)
	blob := "/v2/legit/app/blobs/" + e.layerD.String()
	ok := []int{http.StatusOK, http.StatusPartialContent}
	ranges := []struct {
		rng    string
		status []int // empty: 416
	}{
		{"bytes=abc", nil},
		{"bytes=5-1", nil},
		{"bytes=-", nil},
		{"bytes=--1", nil},
		{"bytes=-0", nil},
		{"bytes=" + strconv.Itoa(size) + "-", nil},
		{"bytes=99999999999999999999-", nil},
		{"bytes=0-99999999999999999999", nil},
		{"bytes=-99999999999999999999", nil},
		{"bytes=+1-2", nil},
		{"bytes=0x10-0x20", nil},
		{"bytes=1-2,", []int{http.StatusPartialContent}}, // RFC 9110: empty list elements are ignored
		{"bytes=,", nil},
		{"items=0-1", []int{http.StatusOK}}, // RFC 9110 §14.2: an unknown unit is ignored
		{"bytes 0-1", nil},
		{"bytes=\xff-\xfe", nil},
		{"bytes=0-0", []int{http.StatusPartialContent}},
		{"bytes=-1", []int{http.StatusPartialContent}},
		{"bytes=0-1,3-4", []int{http.StatusPartialContent}},
		{"bytes=0-0" + strings.Repeat(",0-0", 5000), ok},
		{"bytes=" + strings.TrimSuffix(strings.Repeat("1-1,", 5000), ","), ok},
		{"bytes=0-", []int{http.StatusOK, http.StatusPartialContent}},
	}
	for _, r := range ranges {
		t.Run("Range "+truncate(r.rng, 40), func(t *testing.T) {
			a, err := rawRequest(e.addr, http.MethodGet, blob, []string{"Range: " + r.rng}, nil)
			if err != nil {
				t.Fatal(err) // a hang ends here, with rawRequest's deadline
			}
			if len(r.status) == 0 {
				checkOCIError(t, "Range "+strconv.Quote(r.rng), a, http.StatusRequestedRangeNotSatisfiable)
				if cr := a.header.Get("Content-Range"); cr != "bytes */"+strconv.Itoa(size) {
					t.Errorf("416 with Content-Range %q, want bytes */%d", cr, size)
				}
				return
			}
			for _, s := range r.status {
				if a.status == s {
					return
				}
			}
			t.Errorf("Range %q: %s, want one of %v", r.rng, a, r.status)
		})
	}

	// Content-Range of upload chunks, against a session holding 10 bytes.
	ctx := context.Background()
	loc, a, err := e.client.startUpload(ctx, "legit/app")
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("POST upload: %v %v", a, err)
	}
	a, err = e.client.patchChunk(ctx, loc, 0, bytes.NewReader([]byte("0123456789")), 10)
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("first chunk: %v %v", a, err)
	}
	loc = a.header.Get("Location")
	chunk := []byte("abcde")
	contentRanges := []struct {
		cr     string
		status int
	}{
		{"5-3", http.StatusBadRequest},
		{"-1-3", http.StatusBadRequest},
		{"10-", http.StatusBadRequest},
		{"-", http.StatusBadRequest},
		{"abc", http.StatusBadRequest},
		{"10-18446744073709551615", http.StatusBadRequest},
		{"10-9223372036854775807", http.StatusBadRequest},
		{"9223372036854775807-9223372036854775807", http.StatusBadRequest},
		{"10-13", http.StatusBadRequest}, // 4 bytes declared, 5 sent
		{"0-4", http.StatusRequestedRangeNotSatisfiable},
		{"11-15", http.StatusRequestedRangeNotSatisfiable},
		{"bytes=5-9", http.StatusRequestedRangeNotSatisfiable},
		{"\xff-\xfe", http.StatusBadRequest},
		{"10-14/\xff", http.StatusBadRequest},
	}
	for _, c := range contentRanges {
		t.Run("Content-Range "+c.cr, func(t *testing.T) {
			a, err := rawRequest(e.addr, http.MethodPatch, loc, []string{"Content-Range: " + c.cr, "Content-Type: application/octet-stream"}, chunk)
			if err != nil {
				t.Fatal(err)
			}
			checkOCIError(t, "Content-Range "+strconv.Quote(c.cr), a, c.status)
			off, _, st, err := e.client.uploadOffset(ctx, loc)
			if err != nil || off != 10 {
				t.Fatalf("after a refused chunk the session holds %d bytes (%v, %v), want 10", off, st, err)
			}
		})
	}
	a, err = e.client.patchChunk(ctx, loc, 10, bytes.NewReader(chunk), 5)
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("the chunk that continues the session: %v %v", a, err)
	}
}
