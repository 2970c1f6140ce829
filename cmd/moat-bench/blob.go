package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// startUpload is POST /v2/<repo>/blobs/uploads/; it returns the upload's
// Location.
func (c *Client) startUpload(ctx context.Context, repo string) (string, error) {
	var req *http.Request
	resp, err := c.Do(ctx, scopePush(repo), func(ctx context.Context) (*http.Request, error) {
		var err error
		req, err = c.request(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", func() io.Reader { return http.NoBody }, 0)
		return req, err
	})
	if err != nil {
		return "", err
	}
	if err := expect(req, resp, http.StatusAccepted); err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("POST %s: 202 without a Location", req.URL.Path)
	}
	return loc, nil
}

func withDigest(loc, dgst string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + url.QueryEscape(dgst)
}

// PushBlob uploads a blob monolithically: POST, then one PUT ?digest=
// with the whole body. body must return a fresh reader on each call.
func (c *Client) PushBlob(ctx context.Context, repo, dgst string, size int64, body func() io.Reader) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	return c.finishUpload(ctx, repo, withDigest(loc, dgst), dgst, size, body)
}

func (c *Client) finishUpload(ctx context.Context, repo, ref, dgst string, size int64, body func() io.Reader) error {
	var req *http.Request
	resp, err := c.Do(ctx, scopePush(repo), func(ctx context.Context) (*http.Request, error) {
		var err error
		if req, err = c.request(ctx, http.MethodPut, ref, body, size); err == nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		return req, err
	})
	if err != nil {
		return err
	}
	if err := expect(req, resp, http.StatusCreated); err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		return &DigestError{What: "PUT " + req.URL.Path + " Docker-Content-Digest", Want: dgst, Got: got}
	}
	return nil
}

// PushBlobChunked uploads a blob with POST, one PATCH per chunk (with
// Content-Range) and a closing PUT ?digest= without a body. part returns
// a reader of [off, off+n).
func (c *Client) PushBlobChunked(ctx context.Context, repo, dgst string, size, chunk int64, part func(off, n int64) io.Reader) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		var req *http.Request
		resp, err := c.Do(ctx, scopePush(repo), func(ctx context.Context) (*http.Request, error) {
			var err error
			if req, err = c.request(ctx, http.MethodPatch, loc, func() io.Reader { return part(off, n) }, n); err == nil {
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("Content-Range", strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10))
			}
			return req, err
		})
		if err != nil {
			return err
		}
		if err := expect(req, resp, http.StatusAccepted); err != nil {
			return err
		}
		if next := resp.Header.Get("Location"); next != "" {
			loc = next
		}
	}
	return c.finishUpload(ctx, repo, withDigest(loc, dgst), dgst, 0, func() io.Reader { return http.NoBody })
}

// copyBufs are the buffers blob bodies are hashed through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// GetBlob streams /v2/<repo>/blobs/<dgst> through sha256 and checks the
// digest and size.
func (c *Client) GetBlob(ctx context.Context, repo, dgst string, size int64) error {
	return c.getVerified(ctx, scopePull(repo), "/v2/"+repo+"/blobs/"+dgst, dgst, size)
}

// getVerified GETs ref and checks that the body has digest want and size.
func (c *Client) getVerified(ctx context.Context, scope, ref, want string, size int64) error {
	var req *http.Request
	resp, err := c.Do(ctx, scope, func(ctx context.Context) (*http.Request, error) {
		var err error
		req, err = c.request(ctx, http.MethodGet, ref, nil, 0)
		return req, err
	})
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return statusError(req, resp)
	}
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(h, resp.Body, *bp)
	copyBufs.Put(bp)
	if err != nil {
		return fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	if got := hexDigest(h); got != want || n != size {
		return &DigestError{What: "GET " + req.URL.Path, Want: want, Got: got, WantN: size, GotN: n}
	}
	return nil
}
