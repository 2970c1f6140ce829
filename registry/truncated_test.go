package registry_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// rawRequest sends a request whose body is shorter than its
// Content-Length, half-closes the connection and reads the answer.
func rawRequest(t *testing.T, ts *testServer, method, path string, header map[string]string, length int, body string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := method + " " + path + " HTTP/1.1\r\nHost: registry.test\r\nContent-Length: " + strconv.Itoa(length) + "\r\n"
	for k, v := range header {
		req += k + ": " + v + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
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

// A body cut short of its Content-Length is the client's fault: 400
// SIZE_INVALID, not a server error, and a session keeps what arrived.
func TestTruncatedBody(t *testing.T) {
	ts := newTestServer(t)
	var loc string
	ts.run(t, []step{{name: "start", method: http.MethodPost, path: "/v2/short/blobs/uploads/", status: 202,
		check: func(t *testing.T, resp *http.Response, _ []byte) { loc = resp.Header.Get("Location") }}})

	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
	}{
		{"monolithic POST", http.MethodPost, "/v2/short/blobs/uploads/?digest=" + dA.String(), nil},
		{"PATCH", http.MethodPatch, loc, nil},
		{"PATCH with Content-Range", http.MethodPatch, loc, map[string]string{"Content-Range": "10-39"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawRequest(t, ts, tt.method, tt.path, tt.header, 30, "0123456789")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400; body %s", resp.StatusCode, body)
			}
			checkErrorBody(t, tt.method, resp, body, "SIZE_INVALID")
		})
	}
	ts.run(t, []step{
		{name: "the session kept the bytes that arrived", method: http.MethodGet, path: loc, status: 204, headers: map[string]string{"Range": "0-19"}},
		{name: "nothing stored by the short POST", method: http.MethodHead, path: "/v2/short/blobs/" + dA.String(), status: 404},
		{name: "the session finishes", method: http.MethodPut, path: loc + "?digest=" + digestOf("01234567890123456789"), status: 201},
	})
}
