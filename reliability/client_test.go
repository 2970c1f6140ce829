package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// answer is a whole HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// ociClient sends OCI distribution requests to one registry.
type ociClient struct {
	base   string
	http   *http.Client
	header http.Header // added to every request (Authorization)
}

// send makes one request; body may be nil. size is the Content-Length
// (-1: unknown, sent chunked).
func (c *ociClient) send(ctx context.Context, method, path string, body io.Reader, size int64, header map[string]string) (*answer, error) {
	target := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		target = c.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// errorCode is the first OCI error code of a, or "" when the body is not
// in the OCI error shape.
func (a *answer) errorCode() string {
	var b struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(a.body, &b) != nil || len(b.Errors) == 0 || b.Errors[0].Code == "" || b.Errors[0].Message == "" {
		return ""
	}
	return b.Errors[0].Code
}

func (a *answer) String() string {
	return fmt.Sprintf("%d %s", a.status, truncate(string(a.body), 300))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// checkOCIError fails unless a is a 4xx (or the given status) in the OCI
// error shape, in valid UTF-8.
func checkOCIError(t testing.TB, what string, a *answer, status ...int) {
	t.Helper()
	ok := a.status >= 400 && a.status < 500
	if len(status) > 0 {
		ok = false
		for _, s := range status {
			ok = ok || a.status == s
		}
	}
	if !ok {
		t.Errorf("%s: answered %s, want %v", what, a, statusList(status))
		return
	}
	if a.errorCode() == "" {
		t.Errorf("%s: %d answer not in the OCI error shape: %q", what, a.status, truncate(string(a.body), 300))
	}
	if !utf8.Valid(a.body) {
		t.Errorf("%s: answer body is not valid UTF-8: %q", what, a.body)
	}
}

func statusList(s []int) string {
	if len(s) == 0 {
		return "4xx"
	}
	return fmt.Sprint(s)
}

// pushBlob uploads content in one POST (?digest=) and reports the answer.
func (c *ociClient) pushBlob(ctx context.Context, repo string, content []byte) (*answer, error) {
	d := digest.FromBytes(content)
	return c.send(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(content), int64(len(content)), nil)
}

// startUpload opens an upload session and returns its Location.
func (c *ociClient) startUpload(ctx context.Context, repo string) (string, *answer, error) {
	a, err := c.send(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, 0, nil)
	if err != nil {
		return "", nil, err
	}
	return a.header.Get("Location"), a, nil
}

// patchChunk sends chunk at offset of the session at location.
func (c *ociClient) patchChunk(ctx context.Context, location string, offset int64, chunk io.Reader, size int64) (*answer, error) {
	h := map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+size-1, 10),
	}
	return c.send(ctx, http.MethodPatch, location, chunk, size, h)
}

// finishUpload closes the session at location with digest d.
func (c *ociClient) finishUpload(ctx context.Context, location string, d digest.Digest) (*answer, error) {
	return c.send(ctx, http.MethodPut, withQuery(location, "digest", d.String()), nil, 0, nil)
}

func withQuery(location, key, value string) string {
	sep := "?"
	if strings.Contains(location, "?") {
		sep = "&"
	}
	return location + sep + key + "=" + value
}

// uploadOffset asks a session where it stands: the number of bytes it
// holds, or -1 with the answer when it is gone. A Range of "0-0" means 0
// or 1 bytes; ambiguous is then true.
func (c *ociClient) uploadOffset(ctx context.Context, location string) (offset int64, ambiguous bool, a *answer, err error) {
	a, err = c.send(ctx, http.MethodGet, location, nil, 0, nil)
	if err != nil {
		return 0, false, nil, err
	}
	if a.status != http.StatusNoContent {
		return -1, false, a, nil
	}
	rg := a.header.Get("Range")
	_, end, ok := strings.Cut(rg, "-")
	n, perr := strconv.ParseInt(end, 10, 64)
	if !ok || perr != nil {
		return 0, false, a, fmt.Errorf("upload status with Range %q", rg)
	}
	return n + 1, n == 0, a, nil
}

// chunkedPush uploads content in chunks of chunkSize through a session.
func (c *ociClient) chunkedPush(ctx context.Context, repo string, content []byte, chunkSize int) (*answer, error) {
	loc, a, err := c.startUpload(ctx, repo)
	if err != nil || a.status != http.StatusAccepted {
		return a, err
	}
	for off := 0; off < len(content); off += chunkSize {
		end := min(off+chunkSize, len(content))
		a, err := c.patchChunk(ctx, loc, int64(off), bytes.NewReader(content[off:end]), int64(end-off))
		if err != nil || a.status != http.StatusAccepted {
			return a, err
		}
		loc = a.header.Get("Location")
	}
	return c.finishUpload(ctx, loc, digest.FromBytes(content))
}

// putManifest stores raw under ref.
func (c *ociClient) putManifest(ctx context.Context, repo, ref, mediaType string, raw []byte) (*answer, error) {
	return c.send(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(raw), int64(len(raw)), map[string]string{"Content-Type": mediaType})
}

// imageManifest is an image manifest of config and layers (contents).
func imageManifest(config []byte, layers ...[]byte) []byte {
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{},
	}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(l), Size: int64(len(l))})
	}
	b, _ := json.Marshal(m)
	return b
}

// pushImage pushes config, layers and the manifest under ref, failing the
// test on any error; it returns the manifest's digest.
func (c *ociClient) pushImage(t testing.TB, repo, ref string, config []byte, layers ...[]byte) digest.Digest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, b := range append([][]byte{config}, layers...) {
		a, err := c.pushBlob(ctx, repo, b)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusCreated {
			t.Fatalf("push blob to %s: %s", repo, a)
		}
	}
	raw := imageManifest(config, layers...)
	a, err := c.putManifest(ctx, repo, ref, ocispec.MediaTypeImageManifest, raw)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != http.StatusCreated {
		t.Fatalf("put manifest %s:%s: %s", repo, ref, a)
	}
	return digest.FromBytes(raw)
}

// getBlob reads a blob and checks its bytes against d when it answers 200.
func (c *ociClient) getBlob(ctx context.Context, repo string, d digest.Digest) (*answer, error) {
	a, err := c.send(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, 0, nil)
	if err != nil {
		return nil, err
	}
	if a.status == http.StatusOK && digest.FromBytes(a.body) != d {
		return a, fmt.Errorf("blob %s of %s reads back %d bytes with digest %s", d, repo, len(a.body), digest.FromBytes(a.body))
	}
	return a, nil
}

// rawRequest sends exactly the given request line, header lines and body
// over a new connection to addr (with Host, Content-Length and
// Connection: close added) and reads the answer. The bytes go out as
// they are: no client normalizes the target or checks the headers.
func rawRequest(addr, method, target string, header []string, body []byte) (*answer, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * slowAnswer))
	var b bytes.Buffer
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	if body != nil {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		return nil, err
	}
	req := &http.Request{Method: method}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: rb}, nil
}
