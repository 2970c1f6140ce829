package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// authorize sets the request's credentials for scope and returns the
// bearer token it used ("" for none).
func (c *Client) authorize(req *http.Request, scope string) string {
	tok := c.token(scope)
	switch {
	case tok != "":
		req.Header.Set("Authorization", "Bearer "+tok)
	case c.basic.Load():
		req.SetBasicAuth(c.user, c.pass)
	}
	return tok
}

func (c *Client) token(scope string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens[scope]
}

// authenticate answers a WWW-Authenticate challenge for scope, which a
// request sent with the bearer token used ("" for none) received. Workers
// that meet the same challenge at once wait for one token fetch.
func (c *Client) authenticate(ctx context.Context, challenge, scope, used string) error {
	scheme, params := ParseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		if c.user == "" {
			return errors.New("the registry asks for Basic credentials; pass --username and --password")
		}
		c.basic.Store(true)
		return nil
	case "bearer":
		realm := params["realm"]
		if realm == "" {
			return errors.New("bearer challenge without a realm")
		}
		want := params["scope"]
		if want == "" {
			want = scope
		}
		c.fetchMu.Lock()
		defer c.fetchMu.Unlock()
		if cur := c.token(scope); cur != "" && cur != used {
			return nil // another worker fetched a new token meanwhile
		}
		tok, err := c.fetchToken(ctx, realm, params["service"], want)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.tokens[scope] = tok
		c.mu.Unlock()
		return nil
	}
	return fmt.Errorf("unsupported challenge %q", challenge)
}

// fetchToken is Docker's token flow: GET realm?service=&scope= with Basic.
func (c *Client) fetchToken(ctx context.Context, realm, service, scope string) (string, error) {
	u, err := c.base.Parse(realm)
	if err != nil {
		return "", fmt.Errorf("token realm %q: %w", realm, err)
	}
	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	for s := range strings.FieldsSeq(scope) {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	c.tokenFetches.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", statusError(req, resp)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	if body.Token == "" {
		return "", errors.New("token response without a token")
	}
	return body.Token, nil
}

// ParseChallenge splits a WWW-Authenticate value into its scheme and
// auth-params (quoted values unquoted; keys lower case).
func ParseChallenge(h string) (scheme string, params map[string]string) {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	params = map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " ,")
		if rest == "" {
			return scheme, params
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return scheme, params
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " ")
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				val.WriteByte(rest[i])
			}
			rest = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val.WriteString(strings.TrimSpace(rest[:end]))
			rest = rest[end:]
		}
		params[key] = val.String()
	}
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
