package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// External OIDC tokens (federated credentials) are verified against their
// issuer's discovery document and JWKS. Fetches are hardened: https only
// (plain http is accepted for loopback issuers, which tests and local
// setups use), never to link-local addresses (cloud metadata services),
// bounded in size and time, at most three redirects under the same rules.

// federatedMethods is the algorithm allow-list of external tokens (GitHub,
// GitLab and Kubernetes sign with RS256).
var federatedMethods = []string{"RS256", "ES256", "EdDSA"}

// CheckIssuerURL validates an issuer or JWKS URL: https, or http on a
// loopback host; no userinfo, query or fragment.
func CheckIssuerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an issuer URL like https://token.actions.githubusercontent.com", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: issuers must use https (http only on loopback)", s)
		}
	default:
		return fmt.Errorf("%q: issuers must use https", s)
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && forbiddenFetchAddr(a) {
		return fmt.Errorf("%q: link-local and unspecified addresses are not allowed", s)
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// forbiddenFetchAddr refuses link-local (169.254.0.0/16, fe80::/10, where
// cloud metadata services live), multicast and unspecified addresses.
func forbiddenFetchAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	return a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() ||
		awsMetadataV6.Contains(a)
}

// awsMetadataV6 holds AWS's IPv6 instance metadata address
// (fd00:ec2::254), which is not link-local.
var awsMetadataV6 = netip.MustParsePrefix("fd00:ec2::/64")

// newFetchClient is the HTTP client of discovery and JWKS fetches. The dial
// check runs on the resolved address, so DNS cannot smuggle a link-local
// target past the URL check.
func newFetchClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: RefuseLinkLocal}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 5 * time.Second,
			MaxIdleConns:          10,
			IdleConnTimeout:       time.Minute,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return CheckIssuerURL(req.URL.Scheme + "://" + req.URL.Host + req.URL.Path)
		},
	}
}

// RefuseLinkLocal is a net.Dialer Control function for connections moat
// opens on a user's behalf (OIDC discovery, imports, tasks): it refuses
// link-local (cloud metadata services), multicast and unspecified
// addresses, checked on the resolved address so DNS cannot smuggle one in.
func RefuseLinkLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(host)
	if err != nil || forbiddenFetchAddr(a) {
		return fmt.Errorf("refusing to connect to %s", host)
	}
	return nil
}

// oidcKeys caches issuers' discovery documents and keys.
type oidcKeys struct {
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	providers map[string]*oidcProvider
}

type oidcProvider struct {
	mu       sync.Mutex
	jwksURI  string
	keys     map[string]crypto.PublicKey
	fetched  time.Time
	attempts time.Time // last refresh attempt, to bound refreshes on unknown kids
}

const (
	oidcCacheTTL        = time.Hour
	oidcMinRefreshDelay = 30 * time.Second
	oidcMaxBody         = 1 << 20
)

func (o *oidcKeys) provider(issuer string) *oidcProvider {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.providers == nil {
		o.providers = map[string]*oidcProvider{}
	}
	p := o.providers[issuer]
	if p == nil {
		p = &oidcProvider{}
		o.providers[issuer] = p
	}
	return p
}

// key returns issuer's verification key kid, fetching discovery and JWKS
// when the cache is cold or stale, and once more (rate-limited) when the
// kid is unknown — issuers rotate keys. A failed fetch is not retried for
// oidcMinRefreshDelay either, so tokens naming a failing issuer do not
// make moat ask it on every request.
func (o *oidcKeys) key(ctx context.Context, issuer, kid string) (crypto.PublicKey, error) {
	p := o.provider(issuer)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := o.now()
	if p.keys == nil || now.Sub(p.fetched) > oidcCacheTTL {
		// A fetch would have set fetched: the last attempt failed.
		if !p.attempts.IsZero() && now.Sub(p.attempts) <= oidcMinRefreshDelay {
			return nil, fmt.Errorf("issuer %s: fetching its keys failed; next attempt within %s", issuer, oidcMinRefreshDelay)
		}
		if err := o.refresh(ctx, issuer, p); err != nil {
			return nil, err
		}
	}
	if k, ok := p.keys[kid]; ok {
		return k, nil
	}
	if kid == "" && len(p.keys) == 1 {
		for _, k := range p.keys {
			return k, nil
		}
	}
	if now.Sub(p.attempts) > oidcMinRefreshDelay {
		if err := o.refresh(ctx, issuer, p); err != nil {
			return nil, err
		}
		if k, ok := p.keys[kid]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("issuer %s has no key %q", issuer, kid)
}

func (o *oidcKeys) refresh(ctx context.Context, issuer string, p *oidcProvider) error {
	p.attempts = o.now()
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := o.getJSON(ctx, strings.TrimRight(issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if disc.Issuer != issuer {
		return fmt.Errorf("discovery document names issuer %q, not %q", disc.Issuer, issuer)
	}
	if err := CheckIssuerURL(disc.JWKSURI); err != nil {
		return fmt.Errorf("jwks_uri: %w", err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := o.getJSON(ctx, disc.JWKSURI, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, raw := range set.Keys {
		kid, k, err := parseJWK(raw)
		if err == nil {
			keys[kid] = k
		}
	}
	p.jwksURI, p.keys, p.fetched = disc.JWKSURI, keys, o.now()
	return nil
}

func (o *oidcKeys) getJSON(ctx context.Context, u string, v any) error {
	if err := CheckIssuerURL(u); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, oidcMaxBody+1))
	if err != nil {
		return err
	}
	if len(b) > oidcMaxBody {
		return fmt.Errorf("GET %s: answer larger than 1 MiB", u)
	}
	return json.Unmarshal(b, v)
}

// parseJWK reads an RSA, EC (P-256, P-384) or OKP (Ed25519) public key.
func parseJWK(raw []byte) (string, crypto.PublicKey, error) {
	var k struct {
		Kty, Kid, Crv, N, E, X, Y, Use string
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", nil, err
	}
	if k.Use != "" && k.Use != "sig" {
		return "", nil, errors.New("not a signing key")
	}
	dec := base64.RawURLEncoding.DecodeString
	switch k.Kty {
	case "RSA":
		n, err1 := dec(k.N)
		e, err2 := dec(k.E)
		if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return "", nil, errors.New("bad RSA key (at least 2048 bits)")
		}
		return k.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		size := 0
		switch k.Crv {
		case "P-256":
			curve, size = elliptic.P256(), 32
		case "P-384":
			curve, size = elliptic.P384(), 48
		default:
			return "", nil, errors.New("unsupported curve")
		}
		x, err1 := dec(k.X)
		y, err2 := dec(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return "", nil, errors.New("bad EC key")
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return "", nil, errors.New("EC point not on curve")
		}
		return k.Kid, pub, nil
	case "OKP":
		x, err := dec(k.X)
		if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return "", nil, errors.New("bad Ed25519 key")
		}
		return k.Kid, ed25519.PublicKey(x), nil
	}
	return "", nil, errors.New("unsupported key type")
}
