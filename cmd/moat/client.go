package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// defaultServer is where the admin verbs go when nothing names a server:
// the zero-config `moat serve`.
const defaultServer = "http://127.0.0.1:5000"

// adminPrefix is where the admin API is mounted.
const adminPrefix = "/admin/v1"

// maxResponse bounds what the CLI reads of one answer.
const maxResponse = 64 << 20

// connection is what the admin verbs know about the server they talk to,
// from the global flags. Empty strings were not given.
type connection struct {
	server, username, password string
	insecure                   bool
	caFile                     string
}

// addConnectionFlags registers --server, --username, --password,
// --insecure and --ca-file on an admin command and its children.
func (a *app) addConnectionFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&a.conn.server, "server", "", "registry URL (env MOAT_SERVER, then the moat login file; default "+defaultServer+")")
	f.StringVar(&a.conn.username, "username", "", "admin API username (env MOAT_USERNAME, then the moat login file)")
	f.StringVar(&a.conn.password, "password", "", "admin API password (env MOAT_PASSWORD, then the moat login file)")
	f.BoolVar(&a.conn.insecure, "insecure", false, "skip TLS certificate verification")
	f.StringVar(&a.conn.caFile, "ca-file", "", "PEM file of CA certificates to trust besides the system's")
}

// credentials are a resolved server and login.
type credentials struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// resolve picks the server and credentials: flags, then MOAT_SERVER /
// MOAT_USERNAME / MOAT_PASSWORD, then the file `moat login` wrote. The
// file's username and password are used only for the server they were
// saved for, and its password only with its username, so they never go to
// another server or stand for another user.
func (a *app) resolve() (credentials, error) {
	var c credentials
	c.Server = firstNonEmpty(a.conn.server, a.getenv("MOAT_SERVER"))
	c.Username = firstNonEmpty(a.conn.username, a.getenv("MOAT_USERNAME"))
	c.Password = firstNonEmpty(a.conn.password, a.getenv("MOAT_PASSWORD"))
	saved, err := a.loadLogin()
	if err != nil {
		return c, err
	}
	if saved != nil {
		if c.Server == "" {
			c.Server = saved.Server
		}
		sameServer := false
		if s, err := normalizeServer(c.Server); err == nil {
			sameServer = s == saved.Server
		}
		if sameServer && (c.Username == "" || c.Username == saved.Username) {
			c.Username = saved.Username
			if c.Password == "" {
				c.Password = saved.Password
			}
		}
	}
	if c.Server == "" {
		c.Server = defaultServer
	}
	c.Server, err = normalizeServer(c.Server)
	return c, err
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// normalizeServer turns what a user typed into a base URL: a bare
// host:port gets http:// when it is loopback and https:// otherwise; a
// trailing slash goes. Credentials in the URL are refused so that they
// never end up in an error message or the login file.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		host := s
		if i := strings.IndexByte(host, '/'); i >= 0 {
			host = host[:i]
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if isLoopbackHost(strings.Trim(host, "[]")) {
			s = "http://" + s
		} else {
			s = "https://" + s
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("--server %q is not an http(s) URL", s)
	}
	if u.User != nil {
		return "", errors.New("--server: put credentials in --username/--password, not in the URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--server %q: a query or fragment is not allowed", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// client talks to the admin API of one server.
type client struct {
	base     string
	username string
	password string
	http     *http.Client
}

// client resolves the server and credentials and returns a client for
// them.
func (a *app) client() (*client, error) {
	creds, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return a.clientFor(creds)
}

func (a *app) clientFor(creds credentials) (*client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if a.conn.insecure || a.conn.caFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: a.conn.insecure}
		if a.conn.caFile != "" {
			pem, err := os.ReadFile(a.conn.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-file %s: no PEM certificates in it", a.conn.caFile)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	return &client{
		base:     creds.Server,
		username: creds.Username,
		password: creds.Password,
		http:     &http.Client{Transport: tr, Timeout: 2 * time.Minute},
	}, nil
}

// call is one admin API request. path is relative to /admin/v1.
type call struct {
	method  string
	path    string
	query   url.Values
	body    any // marshalled as JSON when not nil
	ifMatch string
}

// response is an answer with a 2xx status.
type response struct {
	header http.Header
	body   []byte
}

// do sends a request and returns a 2xx answer; any other status is an
// *apiError.
func (c *client) do(ctx context.Context, k call) (*response, error) {
	return c.doURL(ctx, k, c.base+adminPrefix+k.path, true)
}

// doURL is do for any path of the server; admin says whether to send
// credentials.
func (c *client) doURL(ctx context.Context, k call, target string, admin bool) (*response, error) {
	if k.query != nil {
		target += "?" + k.query.Encode()
	}
	var body io.Reader
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "moat-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.ifMatch != "" {
		req.Header.Set("If-Match", k.ifMatch)
	}
	if admin && (c.username != "" || c.password != "") {
		req.SetBasicAuth(c.username, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %v", c.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.statusError(k, resp, b, admin)
	}
	return &response{header: resp.Header, body: b}, nil
}

// get fetches path and decodes it into v (when v is not nil); it returns
// the raw answer for -o json.
func (c *client) get(ctx context.Context, path string, v any) ([]byte, error) {
	return c.send(ctx, call{method: http.MethodGet, path: path}, v)
}

// send performs k and decodes the answer into v (when v is not nil).
func (c *client) send(ctx context.Context, k call, v any) ([]byte, error) {
	resp, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(resp.body, v); err != nil {
			return nil, fmt.Errorf("%s %s: the server answered something that is not the expected JSON: %v", k.method, adminPrefix+k.path, err)
		}
	}
	return resp.body, nil
}

// list fetches a collection ({"value":[…]}), following Link rel="next"
// pages. It returns the items and the collection as the server answered
// it: a single page verbatim, several pages joined into one "value" array.
func list[T any](ctx context.Context, c *client, path string, query url.Values) ([]T, []byte, error) {
	items := []T{}
	raws := []json.RawMessage{}
	var first []byte
	k := call{method: http.MethodGet, path: path, query: query}
	pages := 0
	for {
		resp, err := c.do(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		pages++
		var coll struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(resp.body, &coll); err != nil {
			return nil, nil, fmt.Errorf("GET %s: the server answered something that is not a collection: %v", adminPrefix+path, err)
		}
		for _, raw := range coll.Value {
			var it T
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, nil, fmt.Errorf("GET %s: unexpected item: %v", adminPrefix+path, err)
			}
			items = append(items, it)
		}
		raws = append(raws, coll.Value...)
		if first == nil {
			first = resp.body
		}
		next, ok := nextPage(resp.header.Get("Link"))
		if !ok || pages >= maxPages {
			break
		}
		k = next
	}
	if pages == 1 {
		return items, first, nil
	}
	whole, err := json.Marshal(struct {
		Value []json.RawMessage `json:"value"`
	}{raws})
	return items, whole, err
}

// maxPages bounds how many pages list follows.
const maxPages = 10000

// nextPage turns a Link header's rel="next" target into the next call.
func nextPage(link string) (call, bool) {
	for part := range strings.SplitSeq(link, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, `rel="next"`) {
			continue
		}
		i, j := strings.IndexByte(part, '<'), strings.IndexByte(part, '>')
		if i < 0 || j < i {
			continue
		}
		u, err := url.Parse(part[i+1 : j])
		if err != nil {
			return call{}, false
		}
		p, ok := strings.CutPrefix(u.Path, adminPrefix)
		if !ok {
			return call{}, false
		}
		return call{method: http.MethodGet, path: p, query: u.Query()}, true
	}
	return call{}, false
}

// apiError is a non-2xx answer, rendered as one line:
// "403 DENIED: this needs the Owner role at scope /".
type apiError struct {
	Status  int
	Code    string
	Message string
	// Hint is appended in parentheses (what to do about it).
	Hint string
}

func (e *apiError) Error() string {
	s := strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// isStatus reports whether err is an answer with that HTTP status.
func isStatus(err error, status int) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == status
}

// statusError decodes the OCI-shaped error body
// {"errors":[{"code","message","detail"}]}; an answer that is not in that
// shape (a proxy's page) is summarized by its status and first line.
func (c *client) statusError(k call, resp *http.Response, body []byte, admin bool) error {
	e := &apiError{Status: resp.StatusCode}
	var wire struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &wire) == nil && len(wire.Errors) > 0 {
		var codes, msgs []string
		for _, we := range wire.Errors {
			if we.Code != "" && !slices.Contains(codes, we.Code) {
				codes = append(codes, we.Code)
			}
			if we.Message != "" {
				msgs = append(msgs, we.Message)
			}
		}
		e.Code, e.Message = strings.Join(codes, ","), strings.Join(msgs, "; ")
	} else {
		e.Code = http.StatusText(resp.StatusCode)
		if line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n"); line != "" && len(line) < 200 && !strings.HasPrefix(line, "<") {
			e.Message = line
		}
	}
	e.Message = oneLine(e.Message)
	switch {
	case e.Status == http.StatusUnauthorized && admin && c.username == "" && c.password == "":
		e.Hint = "no credentials: run `moat login`, or give --username/--password or MOAT_USERNAME/MOAT_PASSWORD"
	case e.Status == http.StatusNotFound && (e.Message == "" || e.Message == "resource not found"):
		e.Hint = k.method + " " + adminPrefix + k.path
	case e.Status == http.StatusPreconditionFailed:
		e.Hint = "someone else changed it meanwhile; run the command again"
	}
	return e
}

// transportError says in one line that the server could not be reached
// and why.
func (c *client) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return fmt.Errorf("cannot reach %s: timed out", c.base)
	}
	var reason string
	var se *os.SyscallError
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case errors.As(err, &dnsErr):
		reason = "no such host " + dnsErr.Name
	case errors.As(err, &unknownCA):
		reason = "TLS: certificate signed by an unknown authority (use --ca-file, or --insecure)"
	case errors.As(err, &hostErr):
		reason = "TLS: " + hostErr.Error()
	case errors.As(err, &certErr):
		reason = "TLS: " + certErr.Err.Error()
	case errors.As(err, &se):
		reason = se.Err.Error()
	case errors.As(err, &ue):
		reason = ue.Err.Error()
	default:
		reason = err.Error()
	}
	if strings.Contains(reason, "server gave HTTP response to HTTPS client") {
		reason = "the server speaks plain HTTP: use an http:// URL"
	}
	return fmt.Errorf("cannot reach %s: %s", c.base, oneLine(reason))
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// jsonUnmarshal decodes an answer, saying so when it is not what the CLI
// expects.
func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the server answered something that is not the expected JSON: %v", err)
	}
	return nil
}
