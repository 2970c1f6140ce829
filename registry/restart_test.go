package registry_test

import (
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

// An upload session outlives the server: its bytes and running hash are on
// disk and in bbolt, so a client continues after a restart.
func TestUploadSurvivesRestart(t *testing.T) {
	content := "first half / second half / the end"
	d := digest.FromString(content)
	ts := newTestServer(t)

	var loc string
	ts.run(t, []step{
		{name: "start", method: http.MethodPost, path: "/v2/restart/blobs/uploads/", status: 202,
			check: func(t *testing.T, resp *http.Response, _ []byte) { loc = resp.Header.Get("Location") }},
	})
	if loc == "" {
		t.Fatal("no upload location")
	}
	ts.run(t, []step{
		{name: "first chunk", method: http.MethodPatch, path: loc, header: map[string]string{"Content-Range": "0-11"}, body: content[:12],
			status: 202, headers: map[string]string{"Range": "0-11"}},
	})

	ts.stop()
	ts.start(t)

	ts.run(t, []step{
		{name: "status after restart", method: http.MethodGet, path: loc, status: 204, headers: map[string]string{"Range": "0-11", "Location": loc}},
		{name: "chunk that does not continue", method: http.MethodPatch, path: loc, header: map[string]string{"Content-Range": "0-11"}, body: content[:12],
			status: 416, headers: map[string]string{"Range": "0-11"}},
		{name: "second chunk", method: http.MethodPatch, path: loc, header: map[string]string{"Content-Range": "12-25"}, body: content[12:26],
			status: 202, headers: map[string]string{"Range": "0-25"}},
		{name: "wrong digest", method: http.MethodPut, path: loc + "?digest=" + digest.FromString("something else").String(),
			status: 400, code: "DIGEST_INVALID"},
		{name: "finish", method: http.MethodPut, path: loc + "?digest=" + d.String(), header: map[string]string{"Content-Range": "26-33"}, body: content[26:],
			status: 201, headers: map[string]string{"Docker-Content-Digest": d.String()}},
		{name: "the blob", method: http.MethodGet, path: "/v2/restart/blobs/" + d.String(), status: 200, wantBody: ptr(content)},
	})

	ts.stop()
	ts.start(t)
	ts.run(t, []step{
		{name: "the blob after another restart", method: http.MethodGet, path: "/v2/restart/blobs/" + d.String(), status: 200, wantBody: ptr(content)},
		{name: "the session is over", method: http.MethodGet, path: loc, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
	})
}
