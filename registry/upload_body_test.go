package registry_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moat-registry/moat/storage"
)

// startSession opens an upload session and returns its Location.
func startSession(t *testing.T, ts *testServer, repo string) string {
	t.Helper()
	var loc string
	ts.run(t, []step{{name: "start a session", method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/", status: 202,
		check: func(_ *testing.T, resp *http.Response, _ []byte) { loc = resp.Header.Get("Location") }}})
	return loc
}

// A streamed chunk (no Content-Length) must be as long as its
// Content-Range; the session keeps what arrived and says so.
func TestStreamedChunkContentRange(t *testing.T) {
	ts := newTestServer(t)
	const content = "0123456789abcde"
	loc := startSession(t, ts, "streamed")
	ts.run(t, []step{
		{name: "chunk shorter than its range", method: http.MethodPatch, path: loc, chunked: true,
			header: map[string]string{"Content-Range": "0-9"}, body: content[:5],
			status: 400, code: "SIZE_INVALID", headers: map[string]string{"Location": loc, "Range": "0-4"}},
		{name: "status after the short chunk", method: http.MethodGet, path: loc, status: 204, headers: map[string]string{"Range": "0-4"}},
		{name: "chunk longer than its range", method: http.MethodPatch, path: loc, chunked: true,
			header: map[string]string{"Content-Range": "5-9"}, body: content[5:15],
			status: 400, code: "SIZE_INVALID", headers: map[string]string{"Location": loc, "Range": "0-9"}},
		{name: "status after the long chunk", method: http.MethodGet, path: loc, status: 204, headers: map[string]string{"Range": "0-9"}},
		{name: "chunk out of order", method: http.MethodPatch, path: loc, chunked: true,
			header: map[string]string{"Content-Range": "20-24"}, body: content[10:15],
			status: 416, code: "BLOB_UPLOAD_INVALID", headers: map[string]string{"Range": "0-9"}},
		{name: "chunk that fits its range", method: http.MethodPatch, path: loc, chunked: true,
			header: map[string]string{"Content-Range": "10-14"}, body: content[10:15],
			status: 202, headers: map[string]string{"Range": "0-14"}},
		{name: "the session finishes", method: http.MethodPut, path: loc + "?digest=" + digestOf(content), status: 201},
		{name: "the blob", method: http.MethodGet, path: "/v2/streamed/blobs/" + digestOf(content), status: 200, wantBody: ptr(content)},
	})
}

// rawChunked sends a request with Transfer-Encoding: chunked and body as
// the raw chunked encoding, and reads the answer.
func rawChunked(t *testing.T, ts *testServer, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := method + " " + path + " HTTP/1.1\r\nHost: registry.test\r\nTransfer-Encoding: chunked\r\n\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// A malformed chunked body is the client's fault: 400, not 500.
func TestMalformedChunkedBody(t *testing.T) {
	ts := newTestServer(t)
	loc := startSession(t, ts, "broken")
	bodies := []struct {
		name string
		body string
	}{
		{"invalid byte in chunk length", "zz\r\nabc\r\n0\r\n\r\n"},
		{"chunk not followed by CRLF", "3\r\nabcX\r\n0\r\n\r\n"},
		{"chunk line ending in a bare LF", "3\nabc\r\n0\r\n\r\n"},
	}
	requests := []struct {
		name, method, path string
	}{
		{"PATCH", http.MethodPatch, loc},
		{"PUT", http.MethodPut, loc + "?digest=" + dA.String()},
		{"monolithic POST", http.MethodPost, "/v2/broken/blobs/uploads/?digest=" + dA.String()},
	}
	for _, rq := range requests {
		for _, b := range bodies {
			t.Run(rq.name+"/"+b.name, func(t *testing.T) {
				resp, body := rawChunked(t, ts, rq.method, rq.path, b.body)
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("status %d, want 400; body %s", resp.StatusCode, body)
				}
				checkErrorBody(t, rq.method, resp, body, "BLOB_UPLOAD_INVALID")
			})
		}
	}
	// A chunk read before the error stays, as with any body cut short.
	ts.run(t, []step{{name: "the session is still open", method: http.MethodGet, path: loc, status: 204}})
}

// watchedUploads reports each Get on gets (when there is room) and, while
// stale is set, answers Get with the session's size as 0: what a Get that
// ran before other PATCHes appended saw.
type watchedUploads struct {
	storage.Uploads
	gets  chan struct{}
	stale atomic.Bool
}

func (u *watchedUploads) Get(ctx context.Context, repository, id string) (storage.Upload, error) {
	up, err := u.Uploads.Get(ctx, repository, id)
	if u.stale.Load() {
		up.Size = 0
	}
	select {
	case u.gets <- struct{}{}:
	default:
	}
	return up, err
}

// Streamed PATCHes in parallel each see room for a whole blob; together
// they must not make a blob over limits.maxBlobSize.
func TestMaxBlobSizeParallelPatches(t *testing.T) {
	const limit = 10
	wu := &watchedUploads{gets: make(chan struct{}, 16)}
	ts := newTestServerWith(t, func(ts *testServer) {
		ts.opts.MaxBlobSize = limit
		ts.wrapUploads = func(u storage.Uploads) storage.Uploads { wu.Uploads = u; return wu }
	})
	loc := startSession(t, ts, "big")
	for len(wu.gets) > 0 {
		<-wu.gets
	}
	statuses := make(chan int, 2)
	var pipes []*io.PipeWriter
	for range 2 {
		pr, pw := io.Pipe()
		pipes = append(pipes, pw)
		req, err := http.NewRequest(http.MethodPatch, ts.srv.URL+loc, pr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			resp, err := ts.client.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
		<-wu.gets // the PATCH has read the session's size
	}
	for _, pw := range pipes {
		if _, err := io.WriteString(pw, strings.Repeat("x", limit)); err != nil {
			t.Fatal(err)
		}
		pw.Close()
	}
	got := []int{<-statuses, <-statuses}
	slices.Sort(got)
	if !slices.Equal(got, []int{http.StatusAccepted, http.StatusRequestEntityTooLarge}) {
		t.Errorf("parallel PATCHes answered %v, want one 202 and one 413", got)
	}
	over := digestOf(strings.Repeat("x", 2*limit))
	ts.run(t, []step{
		{name: "the session holds both bodies", method: http.MethodGet, path: loc, status: 204, headers: map[string]string{"Range": "0-19"}},
		{name: "PUT of a session over the limit", method: http.MethodPut, path: loc + "?digest=" + over, status: 413, code: "SIZE_INVALID"},
		{name: "the session was not committed", method: http.MethodGet, path: loc, status: 204, headers: map[string]string{"Range": "0-19"}},
		{name: "no blob", method: http.MethodHead, path: "/v2/big/blobs/" + over, status: 404},
	})

	// A PATCH that lands between PUT's check and the commit: the blob
	// made is not linked.
	wu.stale.Store(true)
	ts.run(t, []step{{name: "PUT that checked a stale size", method: http.MethodPut, path: loc + "?digest=" + over, status: 413, code: "SIZE_INVALID"}})
	wu.stale.Store(false)
	ts.run(t, []step{{name: "no blob after the stale check", method: http.MethodHead, path: "/v2/big/blobs/" + over, status: 404}})
}
