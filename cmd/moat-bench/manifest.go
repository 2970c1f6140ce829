package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// PutManifest is PUT /v2/<repo>/manifests/<ref>; the registry's
// Docker-Content-Digest must be the body's.
func (c *Client) PutManifest(ctx context.Context, repo, ref, mediaType string, body []byte) error {
	var req *http.Request
	resp, err := c.Do(ctx, scopePush(repo), func(ctx context.Context) (*http.Request, error) {
		var err error
		if req, err = c.request(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, func() io.Reader { return bytes.NewReader(body) }, int64(len(body))); err == nil {
			req.Header.Set("Content-Type", mediaType)
		}
		return req, err
	})
	if err != nil {
		return err
	}
	if err := expect(req, resp, http.StatusCreated); err != nil {
		return err
	}
	want := sha256Digest(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != want {
		return &DigestError{What: "PUT " + req.URL.Path + " Docker-Content-Digest", Want: want, Got: got}
	}
	return nil
}

// manifestAccept is what a pulling client accepts.
const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// GetManifest fetches a manifest and checks that its bytes have digest
// want (and the Docker-Content-Digest the registry announced).
func (c *Client) GetManifest(ctx context.Context, repo, ref, want string) ([]byte, error) {
	var req *http.Request
	resp, err := c.Do(ctx, scopePull(repo), func(ctx context.Context) (*http.Request, error) {
		var err error
		if req, err = c.request(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, 0); err == nil {
			req.Header.Set("Accept", manifestAccept)
		}
		return req, err
	})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(req, resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	got := sha256Digest(b)
	if got != want {
		return nil, &DigestError{What: "GET " + req.URL.Path, Want: want, Got: got}
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != want {
		return nil, &DigestError{What: "GET " + req.URL.Path + " Docker-Content-Digest", Want: want, Got: h}
	}
	return b, nil
}

// HeadManifest is HEAD /v2/<repo>/manifests/<ref>; the announced digest
// must be want.
func (c *Client) HeadManifest(ctx context.Context, repo, ref, want string) error {
	var req *http.Request
	resp, err := c.Do(ctx, scopePull(repo), func(ctx context.Context) (*http.Request, error) {
		var err error
		if req, err = c.request(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil, 0); err == nil {
			req.Header.Set("Accept", manifestAccept)
		}
		return req, err
	})
	if err != nil {
		return err
	}
	if err := expect(req, resp, http.StatusOK); err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want {
		return &DigestError{What: "HEAD " + req.URL.Path + " Docker-Content-Digest", Want: want, Got: got}
	}
	return nil
}
