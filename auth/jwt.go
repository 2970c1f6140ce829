package auth

import (
	"errors"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token lifetimes.
const (
	AccessTokenTTL  = 15 * time.Minute
	RefreshTokenTTL = 24 * time.Hour
)

// verifyMethods is the algorithm allow-list of registry tokens: only the
// algorithms moat signs with. "none" and HMAC are never accepted.
var verifyMethods = []string{"ES256"}

// AccessEntry is one entry of a token's access claim, in Docker's format.
type AccessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// claims are the claims of moat's tokens.
type claims struct {
	jwt.RegisteredClaims
	Access []AccessEntry `json:"access,omitempty"`
	// Kind is the principal kind: "identity", "token" or "" (anonymous).
	Kind string `json:"pk,omitempty"`
	// Name is the principal's name when the token was issued.
	Name string `json:"name,omitempty"`
	// Use is "refresh" for refresh tokens, empty for access tokens.
	Use string `json:"use,omitempty"`
	// Cred names the credential a refresh token was minted from
	// (credentialID); the token dies with it.
	Cred string `json:"cred,omitempty"`
}

// tokenInfo is a verified token, as the cache keeps it.
type tokenInfo struct {
	principal Principal
	scopes    []Scope // moat actions per resource
	refresh   bool
	cred      string // a refresh token's credential
	expires   time.Time
	audience  string // the audience it was verified for
}

// tokenIssuer signs and verifies moat's JWTs. Verified tokens are cached
// by their exact text so the hot path does not repeat the signature check;
// only the signature check is cached: who the principal is and what it may
// do are read live from the snapshot on every request.
type tokenIssuer struct {
	keys   *KeyRing
	issuer string
	now    func() time.Time

	mu    sync.RWMutex
	cache map[string]*tokenInfo
}

const tokenCacheMax = 20_000

var errInvalidToken = errors.New("invalid token")

func principalKind(p Principal) string {
	switch p.Kind {
	case IdentityPrincipal:
		return "identity"
	case TokenPrincipal:
		return "token"
	}
	return ""
}

// issue signs an access token for p with access (Docker actions) for
// audience.
func (t *tokenIssuer) issue(p Principal, access []Scope, audience string, ttl time.Duration) (string, time.Time, error) {
	return t.sign(p, access, audience, "", "", ttl)
}

// issueRefresh signs a refresh token for p minted from the credential
// cred.
func (t *tokenIssuer) issueRefresh(p Principal, cred, audience string) (string, error) {
	s, _, err := t.sign(p, nil, audience, "refresh", cred, RefreshTokenTTL)
	return s, err
}

func (t *tokenIssuer) sign(p Principal, access []Scope, audience, use, cred string, ttl time.Duration) (string, time.Time, error) {
	now := t.now().Truncate(time.Second)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   p.ID,
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newID(),
		},
		Kind: principalKind(p),
		Name: p.Name,
		Use:  use,
		Cred: cred,
	}
	for _, s := range access {
		names := s.Actions.Names()
		if s.Type == TypeRegistry {
			names = []string{"*"}
		}
		c.Access = append(c.Access, AccessEntry{Type: s.Type, Name: s.Name, Actions: names})
	}
	key := t.keys.current()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = key.KID
	s, err := tok.SignedString(key.priv)
	return s, now, err
}

// verify checks a token's signature, algorithm, issuer, audience and
// times, using the cache for tokens already verified.
func (t *tokenIssuer) verify(raw, audience string) (*tokenInfo, error) {
	now := t.now()
	t.mu.RLock()
	info := t.cache[raw]
	t.mu.RUnlock()
	if info != nil && info.audience == audience {
		if !now.Before(info.expires) {
			return nil, errInvalidToken
		}
		return info, nil
	}
	var c claims
	parser := jwt.NewParser(
		jwt.WithValidMethods(verifyMethods),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(t.now),
	)
	_, err := parser.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		key := t.keys.lookup(kid)
		if key == nil {
			return nil, errors.New("unknown key id")
		}
		return key.pub, nil
	})
	if err != nil {
		return nil, errInvalidToken
	}
	if c.Use != "" && c.Use != "refresh" {
		return nil, errInvalidToken // a workload token is no registry token
	}
	info = &tokenInfo{refresh: c.Use == "refresh", cred: c.Cred, expires: c.ExpiresAt.Time, audience: audience}
	switch c.Kind {
	case "identity":
		info.principal = Principal{Kind: IdentityPrincipal, Name: c.Name, ID: c.Subject}
	case "token":
		info.principal = Principal{Kind: TokenPrincipal, Name: c.Name, ID: c.Subject}
	case "":
		if c.Subject != "" {
			return nil, errInvalidToken
		}
	default:
		return nil, errInvalidToken
	}
	for _, a := range c.Access {
		var act Action
		for _, name := range a.Actions {
			if x, ok := ParseAction(name); ok {
				act |= x
			}
		}
		info.scopes = append(info.scopes, Scope{Type: a.Type, Name: a.Name, Actions: dockerActions(act)})
	}
	t.mu.Lock()
	if t.cache == nil || len(t.cache) >= tokenCacheMax {
		t.cache = make(map[string]*tokenInfo)
	}
	t.cache[raw] = info
	t.mu.Unlock()
	return info, nil
}

// tokenActions is what a token grants on a resource (moat actions).
func (ti *tokenInfo) actions(typ, name string) Action {
	var a Action
	for _, s := range ti.scopes {
		if s.Type == typ && s.Name == name {
			a |= s.Actions
		}
	}
	return a
}
