package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

// healthCheck is one line of `moat check-health`.
type healthCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn, fail, skip
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// newCheckHealthCommand is `moat check-health`, after `az acr
// check-health`: it walks what a client goes through — name resolution,
// connection and TLS, the /v2/ challenge, the token endpoint, a push and
// pull of a tiny artifact — and asks the server for the network verdict
// on this machine's address, one line per check with a fix when one fails.
func (a *app) newCheckHealthCommand() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:   "check-health [--repository moat-health/check]",
		Short: "Check the way to the registry: DNS, TLS, auth, a push and pull, the network verdict",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			h := &healthRun{c: c, ctx: cmd.Context(), repo: repo}
			h.run()
			if a.jsonOutput() {
				if err := a.printValue(map[string]any{"server": c.base, "checks": h.checks}); err != nil {
					return err
				}
			} else {
				t := newTable(a.stdout, "CHECK", "STATUS", "DETAIL", "FIX")
				for _, ch := range h.checks {
					t.row(ch.Name, ch.Status, ch.Detail, ch.Fix)
				}
				if err := t.flush(); err != nil {
					return err
				}
			}
			if h.failed > 0 {
				return fmt.Errorf("%s is not healthy: %d check(s) failed", c.base, h.failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repository", "moat-health/check", "where the test artifact is pushed (the credentials need push and delete there)")
	return cmd
}

type healthRun struct {
	c      *client
	ctx    context.Context
	repo   string
	checks []healthCheck
	failed int
	token  string // a bearer token for repo, once the token check passed
	anon   bool   // the registry lets this caller in anonymously (dev mode)
}

func (h *healthRun) add(name, status, detail, fix string) {
	if status == "fail" {
		h.failed++
	}
	h.checks = append(h.checks, healthCheck{Name: name, Status: status, Detail: detail, Fix: fix})
}

func (h *healthRun) run() {
	u, err := url.Parse(h.c.base)
	if err != nil {
		h.add("server", "fail", err.Error(), "give --server as http(s)://host[:port]")
		return
	}
	if !h.dns(u) || !h.connect(u) || !h.tls(u) {
		return
	}
	if !h.ready() {
		return
	}
	if h.challenge() {
		h.tokenCheck()
	}
	h.pushPull()
	h.network()
}

func (h *healthRun) dns(u *url.URL) bool {
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		h.add("dns", "ok", host+" is an address", "")
		return true
	}
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		h.add("dns", "fail", err.Error(), "check the server name, or the DNS settings of this machine")
		return false
	}
	h.add("dns", "ok", host+" → "+strings.Join(addrs, ", "), "")
	return true
}

func (h *healthRun) connect(u *url.URL) bool {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(h.ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		h.add("connect", "fail", err.Error(), "is moat running and listening there? a firewall in between?")
		return false
	}
	conn.Close()
	h.add("connect", "ok", "TCP to "+net.JoinHostPort(u.Hostname(), port), "")
	return true
}

func (h *healthRun) tls(u *url.URL) bool {
	if u.Scheme != "https" {
		h.add("tls", "skip", "plain HTTP", "")
		return true
	}
	req, _ := http.NewRequestWithContext(h.ctx, http.MethodGet, h.c.base+"/healthz", nil)
	resp, err := h.c.http.Do(req)
	if err != nil {
		fix := "check the server's certificate"
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			fix = "trust the server's CA with --ca-file (or --insecure for a test server)"
		}
		h.add("tls", "fail", err.Error(), fix)
		return false
	}
	resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		h.add("tls", "ok", "TLS", "")
		return true
	}
	cert := resp.TLS.PeerCertificates[0]
	left := time.Until(cert.NotAfter)
	detail := fmt.Sprintf("%s, certificate valid until %s", tlsVersion(resp.TLS.Version), cert.NotAfter.UTC().Format(time.DateOnly))
	if left < 14*24*time.Hour {
		h.add("tls", "warn", detail, "renew the certificate (moat reloads tls.cert and tls.key when they change)")
		return true
	}
	h.add("tls", "ok", detail, "")
	return true
}

func tlsVersion(v uint16) string {
	switch v {
	case 0x0304:
		return "TLS 1.3"
	case 0x0303:
		return "TLS 1.2"
	}
	return "TLS"
}

func (h *healthRun) ready() bool {
	resp, body, err := h.raw(http.MethodGet, "/readyz", nil, "", nil)
	if err != nil {
		h.add("ready", "fail", err.Error(), "is moat running?")
		return false
	}
	if resp.StatusCode == http.StatusForbidden {
		// admin.allowedSources guards /readyz too: unknown, not unhealthy.
		h.add("ready", "warn", errorMessage(body), "admin.allowedSources excludes this machine; check /readyz from an allowed address")
		return true
	}
	if resp.StatusCode != http.StatusOK {
		h.add("ready", "fail", strings.TrimSpace(string(body)), "see the server's log; /readyz names what is missing")
		return false
	}
	h.add("ready", "ok", "settings version "+resp.Header.Get("X-Moat-Settings-Version"), "")
	return true
}

// challenge is GET /v2/ without credentials: a Bearer challenge (token
// auth), 200 (anonymous access for this caller) or a network denial.
func (h *healthRun) challenge() bool {
	resp, body, err := h.raw(http.MethodGet, "/v2/", nil, "", nil)
	if err != nil {
		h.add("v2", "fail", err.Error(), "")
		return false
	}
	switch resp.StatusCode {
	case http.StatusOK:
		h.anon = true
		h.add("v2", "ok", "anonymous access for this caller (dev profile)", "")
		return false
	case http.StatusUnauthorized:
		ch := resp.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(ch, "Bearer ") {
			h.add("v2", "fail", "401 without a Bearer challenge: "+ch, "is this a moat server?")
			return false
		}
		h.add("v2", "ok", "token auth: "+ch, "")
		return true
	case http.StatusForbidden:
		h.add("v2", "fail", errorMessage(body), "this machine's address is refused by the network rules: see the network check, `moat policy evaluate`, `moat network-rule add`, or use a private endpoint")
		return false
	}
	h.add("v2", "fail", resp.Status+": "+errorMessage(body), "")
	return false
}

// tokenCheck fetches a token for the test repository from the realm the
// challenge named, with the credentials — only when the realm is on the
// server they were given for (realmOnServer).
func (h *healthRun) tokenCheck() {
	if h.c.username == "" {
		h.add("token", "skip", "no credentials given", "pass --username and --password (or moat login)")
		return
	}
	resp, _, err := h.raw(http.MethodGet, "/v2/", nil, "", nil)
	if err != nil {
		return
	}
	params := challengeParams(resp.Header.Get("WWW-Authenticate"))
	q := url.Values{"service": {params["service"]}, "scope": {"repository:" + h.repo + ":pull,push,delete"}}
	realm := params["realm"]
	if err := realmOnServer(h.c.base, realm); err != nil {
		h.add("token", "fail", err.Error()+"; the credentials were not sent there",
			"set the server's publicURL to the address clients use, or give that address as --server if you trust it")
		return
	}
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, realm+"?"+q.Encode(), nil)
	if err != nil {
		h.add("token", "fail", err.Error(), "")
		return
	}
	req.SetBasicAuth(h.c.username, h.c.password)
	tr, err := h.c.http.Do(req)
	if err != nil {
		h.add("token", "fail", err.Error(), "the realm "+realm+" must be reachable from here (publicURL, trustedProxies)")
		return
	}
	defer tr.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(tr.Body, 1<<20))
	switch tr.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		h.add("token", "fail", errorMessage(b), "check the username and password (moat identity secret add)")
		return
	case http.StatusForbidden:
		h.add("token", "fail", errorMessage(b), "this machine's address is refused by the network rules")
		return
	default:
		h.add("token", "fail", tr.Status+": "+errorMessage(b), "")
		return
	}
	var tok struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(b, &tok) != nil || tok.Token == "" {
		h.add("token", "fail", "no token in the answer", "")
		return
	}
	h.token = tok.Token
	h.add("token", "ok", "token for "+h.c.username+" from "+realm, "")
}

// realmOnServer refuses a token realm the credentials must not go to: one
// on another host than base (the --server the user trusts with them), or
// plain HTTP when base is HTTPS. A challenge is the server's answer to an
// unauthenticated request, so anything between could have written it.
func realmOnServer(base, realm string) error {
	b, err := url.Parse(base)
	if err != nil {
		return err
	}
	r, err := url.Parse(realm)
	if err != nil || (r.Scheme != "http" && r.Scheme != "https") || r.Host == "" {
		return fmt.Errorf("the token realm %q is not an http(s) URL", realm)
	}
	if !strings.EqualFold(r.Hostname(), b.Hostname()) {
		return fmt.Errorf("the token realm %s is on %s, not on %s", realm, r.Hostname(), b.Hostname())
	}
	if b.Scheme == "https" && r.Scheme != "https" {
		return fmt.Errorf("the token realm %s is plain HTTP while %s is HTTPS", realm, base)
	}
	return nil
}

// pushPull pushes a tiny artifact, pulls it back, compares digests and
// deletes it.
func (h *healthRun) pushPull() {
	if h.token == "" && !h.anon {
		h.add("push-pull", "skip", "no token", "")
		return
	}
	auth := ""
	if h.token != "" {
		auth = "Bearer " + h.token
	}
	content := []byte("moat check-health " + time.Now().UTC().Format(time.RFC3339Nano))
	empty := []byte("{}")
	for _, blob := range [][]byte{content, empty} {
		d := sha256Of(blob)
		resp, body, err := h.raw(http.MethodPost, "/v2/"+h.repo+"/blobs/uploads/?digest="+d, blob, auth, map[string]string{"Content-Type": "application/octet-stream"})
		if err != nil || resp.StatusCode != http.StatusCreated {
			h.add("push-pull", "fail", "blob upload: "+statusOr(resp, err)+errorMessage(body), "the credentials need push on repositories/"+h.repo+" (e.g. moat role assign --role AcrPush)")
			return
		}
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  "application/vnd.moat.check-health",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256Of(empty), "size": len(empty)},
		"layers":        []any{map[string]any{"mediaType": "text/plain", "digest": sha256Of(content), "size": len(content)}},
	})
	md := sha256Of(manifest)
	resp, body, err := h.raw(http.MethodPut, "/v2/"+h.repo+"/manifests/check-health", manifest, auth, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	if err != nil || resp.StatusCode != http.StatusCreated {
		h.add("push-pull", "fail", "manifest push: "+statusOr(resp, err)+errorMessage(body), "the credentials need push on repositories/"+h.repo)
		return
	}
	resp, body, err = h.raw(http.MethodGet, "/v2/"+h.repo+"/blobs/"+sha256Of(content), nil, auth, nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		h.add("push-pull", "fail", "pull: "+statusOr(resp, err), "the credentials need pull on repositories/"+h.repo)
		return
	}
	resp, _, err = h.raw(http.MethodDelete, "/v2/"+h.repo+"/manifests/"+md, nil, auth, nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		h.add("push-pull", "warn", "pushed and pulled "+md+"; could not delete it: "+statusOr(resp, err), "give the credentials Delete on repositories/"+h.repo+", or delete the tag check-health by hand")
		return
	}
	h.add("push-pull", "ok", "pushed, pulled and deleted "+md+" in "+h.repo, "")
}

// network asks the server what it decides for this machine's address.
func (h *healthRun) network() {
	if h.c.username == "" {
		h.add("network", "skip", "no credentials to ask the admin API with", "")
		return
	}
	var res struct {
		Allowed  bool   `json:"allowed"`
		Stage    string `json:"stage"`
		Reason   string `json:"reason"`
		Rule     string `json:"rule"`
		ClientIP string `json:"clientIP"`
	}
	_, err := h.c.send(h.ctx, call{method: http.MethodPost, path: "/policy/evaluate",
		body: map[string]string{"principal": h.c.username, "repository": h.repo, "action": "pull"}}, &res)
	if err != nil {
		if isStatus(err, http.StatusForbidden) || isStatus(err, http.StatusUnauthorized) {
			h.add("network", "skip", "asking needs the Reader role at /", "")
			return
		}
		h.add("network", "warn", err.Error(), "")
		return
	}
	who := "your address " + res.ClientIP
	switch {
	case res.Allowed && res.Rule != "":
		h.add("network", "ok", who+" is allowed by ip rule "+res.Rule, "")
	case res.Allowed && res.Reason != "":
		h.add("network", "ok", who+" is allowed: "+res.Reason, "")
	case res.Allowed:
		h.add("network", "ok", who+" is allowed", "")
	case res.Stage == "network":
		h.add("network", "fail", who+" is refused: "+res.Reason, "moat network-rule add --ip-address "+res.ClientIP+", or use a private endpoint")
	default:
		h.add("network", "ok", who+" passes the network; "+h.c.username+" is refused at "+res.Stage+": "+res.Reason, "")
	}
}

// raw sends a data-plane request (no admin credentials) and reads the
// answer.
func (h *healthRun) raw(method, path string, body []byte, authorization string, headers map[string]string) (*http.Response, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(h.ctx, method, h.c.base+path, r)
	if err != nil {
		return nil, nil, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := h.c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

func statusOr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error() + " "
	}
	return resp.Status + " "
}

// errorMessage is the message of an OCI error body, or the body.
func errorMessage(b []byte) string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
		return e.Errors[0].Code + ": " + e.Errors[0].Message
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func challengeParams(h string) map[string]string {
	out := map[string]string{}
	_, rest, _ := strings.Cut(h, " ")
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			out[k] = v[1 : end+1]
			rest = v[end+2:]
		} else {
			val, after, _ := strings.Cut(v, ",")
			out[k] = val
			rest = after
		}
	}
	return out
}

func sha256Of(b []byte) string { return digest.FromBytes(b).String() }
