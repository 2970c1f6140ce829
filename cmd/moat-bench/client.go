package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client speaks the OCI distribution API to one registry over keep-alive
// connections. With a username it answers a Bearer challenge with
// Docker's token flow (Basic to the realm, one token cached per scope) and
// a Basic challenge with Basic; without one it asks the realm for an
// anonymous token.
type Client struct {
	base       *url.URL
	hc         *http.Client
	user, pass string

	mu      sync.Mutex
	tokens  map[string]string // scope → bearer token
	basic   atomic.Bool       // the registry asked for Basic
	fetchMu sync.Mutex        // one token fetch at a time

	tokenFetches atomic.Int64
}

// NewClient returns a client of the registry at base (scheme://host[:port])
// sized for conc concurrent requests.
func NewClient(base string, conc int, user, pass string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) base URL", base)
	}
	return &Client{
		base:   u,
		hc:     &http.Client{Transport: newTransport(conc)},
		user:   user,
		pass:   pass,
		tokens: map[string]string{},
	}, nil
}

// newTransport keeps one idle connection per worker (and then some), so
// no request pays for a new connection in steady state.
func newTransport(conc int) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          4 * max(conc, 16),
		MaxIdleConnsPerHost:   2 * max(conc, 16),
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
	}
}

// Close drops the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// URL resolves a path (or a Location header) against the base URL.
func (c *Client) URL(ref string) (*url.URL, error) { return c.base.Parse(ref) }

// StatusError is an unexpected HTTP answer.
type StatusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Body)
}

// DigestError is content that does not match its digest (or size).
type DigestError struct {
	What        string
	Want, Got   string
	WantN, GotN int64
}

func (e *DigestError) Error() string {
	if e.Want != e.Got {
		return fmt.Sprintf("%s: digest %s, want %s", e.What, e.Got, e.Want)
	}
	return fmt.Sprintf("%s: %d bytes, want %d", e.What, e.GotN, e.WantN)
}

func scopePull(repo string) string { return "repository:" + repo + ":pull" }
func scopePush(repo string) string { return "repository:" + repo + ":pull,push" }

// Do sends the request mk builds, authorized for scope. On a 401 it
// authenticates as the challenge asks and sends a fresh request from mk
// once more; mk must therefore build a new body each time.
func (c *Client) Do(ctx context.Context, scope string, mk func(context.Context) (*http.Request, error)) (*http.Response, error) {
	req, err := mk(ctx)
	if err != nil {
		return nil, err
	}
	used := c.authorize(req, scope)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return resp, nil
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	drain(resp)
	if err := c.authenticate(ctx, challenge, scope, used); err != nil {
		return nil, fmt.Errorf("%s %s: 401: %w", req.Method, req.URL.Path, err)
	}
	if req, err = mk(ctx); err != nil {
		return nil, err
	}
	c.authorize(req, scope)
	return c.hc.Do(req)
}

// drain reads what is left of a small answer so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 256<<10))
	_ = resp.Body.Close()
}

func statusError(req *http.Request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &StatusError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
}

// expect drains resp and fails unless its status is want.
func expect(req *http.Request, resp *http.Response, want int) error {
	defer drain(resp)
	if resp.StatusCode != want {
		return statusError(req, resp)
	}
	return nil
}

func (c *Client) request(ctx context.Context, method, ref string, body func() io.Reader, size int64) (*http.Request, error) {
	u, err := c.base.Parse(ref)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		r = body()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	return req, nil
}

// Ping is GET /v2/.
func (c *Client) Ping(ctx context.Context) error {
	var req *http.Request
	resp, err := c.Do(ctx, "", func(ctx context.Context) (*http.Request, error) {
		var err error
		req, err = c.request(ctx, http.MethodGet, "/v2/", nil, 0)
		return req, err
	})
	if err != nil {
		return err
	}
	return expect(req, resp, http.StatusOK)
}

// TagsPage is one answer of /tags/list.
type TagsPage struct {
	Tags []string
	Next string // the Link rel="next" target, or ""
}

// Tags is GET /v2/<repo>/tags/list, with ?n= when n > 0 and &last= when
// last is set; ref, when set, is a Link target to follow instead.
func (c *Client) Tags(ctx context.Context, repo string, n int, last, ref string) (TagsPage, error) {
	if ref == "" {
		ref = "/v2/" + repo + "/tags/list"
		if n > 0 {
			ref += "?n=" + strconv.Itoa(n)
			if last != "" {
				ref += "&last=" + url.QueryEscape(last)
			}
		}
	}
	var req *http.Request
	resp, err := c.Do(ctx, scopePull(repo), func(ctx context.Context) (*http.Request, error) {
		var err error
		req, err = c.request(ctx, http.MethodGet, ref, nil, 0)
		return req, err
	})
	if err != nil {
		return TagsPage{}, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return TagsPage{}, statusError(req, resp)
	}
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return TagsPage{}, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	return TagsPage{Tags: body.Tags, Next: nextLink(resp.Header.Get("Link"))}, nil
}

// nextLink is the target of a Link header's rel="next", or "".
func nextLink(h string) string {
	for part := range strings.SplitSeq(h, ",") {
		target, params, ok := strings.Cut(part, ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.TrimSpace(target)
		if strings.HasPrefix(target, "<") && strings.HasSuffix(target, ">") {
			return target[1 : len(target)-1]
		}
	}
	return ""
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func hexDigest(h hash.Hash) string {
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
