package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/moat-registry/moat/policy"
)

// PrincipalKind tells who a request is.
type PrincipalKind uint8

// The kinds of principal.
const (
	Anonymous PrincipalKind = iota
	IdentityPrincipal
	TokenPrincipal
)

// Principal is an authenticated caller (or the anonymous one).
type Principal struct {
	Kind PrincipalKind
	// Name is the identity's or token's name ("" when anonymous).
	Name string
	// ID is the identity's principalId, or "token:<token id>" — both
	// immutable, so a deleted and re-created principal of the same name
	// is someone else.
	ID string
}

// String names the principal for the audit log.
func (p Principal) String() string {
	if p.Kind == Anonymous {
		return ""
	}
	return p.Name
}

// grantRule is one compiled role assignment or scope-map action.
type grantRule struct {
	scope   RoleScope
	actions Action
}

type compiledToken struct {
	rec   *tokenRecord
	rules []grantRule
}

// trustedInfo describes a managed identity of a trusted-service instance.
type trustedInfo struct {
	service  string // instance name
	typ      string // service type
	readOnly bool   // the bypass covers read actions only (scanner)
}

// Snapshot is an immutable, compiled view of all control-plane state. The
// hot path reads it without locks or disk access; the directory swaps in a
// new one after every change.
type Snapshot struct {
	Version    uint64
	Properties Properties
	Policy     *policy.Policy
	ETag       string

	identities  map[string]*identityRecord // by name
	byPrincipal map[string]*identityRecord // by principalId
	tokens      map[string]*compiledToken  // by name
	scopeMaps   map[string]*ScopeMap
	assignments []RoleAssignment
	rules       map[string][]grantRule // principalId → rules
	levels      map[string]Level       // principalId → control-plane level
	services    map[string]*Service
	trusted     map[string]trustedInfo // principalId → trusted-service instance
	endpoints   map[string]*PrivateEndpoint
	federated   map[federatedKey]string // (issuer, subject, audience) → identity name
}

type federatedKey struct{ issuer, subject, audience string }

// Actions is what p may do on repository right now.
func (s *Snapshot) Actions(p Principal, repository string) Action {
	var a Action
	if s.Properties.AnonymousPullEnabled {
		a = Pull | List
	}
	switch p.Kind {
	case IdentityPrincipal:
		for _, r := range s.rules[p.ID] {
			if r.scope.Matches(repository) {
				a |= r.actions
			}
		}
	case TokenPrincipal:
		if t := s.tokens[p.Name]; t != nil {
			for _, r := range t.rules {
				if r.scope.Matches(repository) {
					a |= r.actions
				}
			}
		}
	}
	return a
}

// Level is p's control-plane level.
func (s *Snapshot) Level(p Principal) Level {
	if p.Kind != IdentityPrincipal {
		return LevelNone
	}
	return s.levels[p.ID]
}

// CanCatalog reports whether p may list repositories.
func (s *Snapshot) CanCatalog(p Principal) bool { return p.Kind != Anonymous }

// Valid reports whether p still exists and is enabled.
func (s *Snapshot) Valid(p Principal) bool {
	switch p.Kind {
	case IdentityPrincipal:
		id := s.byPrincipal[p.ID]
		return id != nil && id.Enabled && id.Name == p.Name
	case TokenPrincipal:
		t := s.tokens[p.Name]
		return t != nil && t.rec.Status == TokenEnabled && t.rec.principalID() == p.ID
	}
	return true
}

// trustedService returns the trusted-service instance whose managed
// identity p is.
func (s *Snapshot) trustedService(p Principal) (trustedInfo, bool) {
	if p.Kind != IdentityPrincipal {
		return trustedInfo{}, false
	}
	t, ok := s.trusted[p.ID]
	return t, ok
}

// Identity returns an identity's admin view.
func (s *Snapshot) Identity(name string) (Identity, bool) {
	r := s.identities[name]
	if r == nil {
		return Identity{}, false
	}
	return r.view(), true
}

// PrincipalByName resolves an identity name or principalId, or a token
// name, to its principal.
func (s *Snapshot) PrincipalByName(name string) (Principal, bool) {
	if r := s.identities[name]; r != nil {
		return Principal{Kind: IdentityPrincipal, Name: r.Name, ID: r.PrincipalID}, true
	}
	if r := s.byPrincipal[name]; r != nil {
		return Principal{Kind: IdentityPrincipal, Name: r.Name, ID: r.PrincipalID}, true
	}
	if t := s.tokens[name]; t != nil {
		return Principal{Kind: TokenPrincipal, Name: t.rec.Name, ID: t.rec.principalID()}, true
	}
	return Principal{}, false
}

// Endpoint returns a private endpoint.
func (s *Snapshot) Endpoint(name string) (PrivateEndpoint, bool) {
	e := s.endpoints[name]
	if e == nil {
		return PrivateEndpoint{}, false
	}
	return *e, true
}

// Endpoints lists the private endpoints.
func (s *Snapshot) Endpoints() []PrivateEndpoint {
	out := make([]PrivateEndpoint, 0, len(s.endpoints))
	for _, e := range s.endpoints {
		out = append(out, *e)
	}
	return out
}

// endpointState is the policy view of where a request arrived.
func (s *Snapshot) endpointState(name string) policy.Endpoint {
	if name == "" || name == PublicEndpoint {
		return policy.Endpoint{}
	}
	e := s.endpoints[name]
	if e == nil {
		// A listener whose endpoint was deleted: refused until it closes.
		return policy.Endpoint{Private: true, State: policy.StateDisconnected}
	}
	st, _ := policy.ParseEndpointState(e.State)
	return policy.Endpoint{Private: true, State: st}
}

// authenticateBasic checks a username and password against identities and
// tokens. It returns ok false for unknown users, disabled principals,
// wrong or expired secrets.
func (s *Snapshot) authenticateBasic(cache *verifyCache, username, password string, now time.Time) (Principal, string, bool) {
	return s.basic(cache.checkAny, true, username, password, now)
}

// authenticateCached is authenticateBasic without bcrypt: only a recent
// successful check counts.
func (s *Snapshot) authenticateCached(cache *verifyCache, username, password string, now time.Time) (Principal, string, bool) {
	return s.basic(cache.cached, false, username, password, now)
}

// basic resolves Basic credentials with check; bcrypt says whether check
// costs a bcrypt comparison, which an unknown username then costs too.
func (s *Snapshot) basic(check func(username, password string, now time.Time, n int, hash func(int) string) (string, bool),
	bcrypt bool, username, password string, now time.Time) (Principal, string, bool) {
	if r := s.identities[username]; r != nil {
		if !r.Enabled {
			return Principal{}, "", false
		}
		live := func(i int) string { return liveHash(r.Secrets[i].Hash, r.Secrets[i].ExpiresAt, now) }
		if h, ok := check(username, password, now, len(r.Secrets), live); ok {
			return Principal{Kind: IdentityPrincipal, Name: r.Name, ID: r.PrincipalID}, secretCredential(h), true
		}
		return Principal{}, "", false
	}
	t := s.tokens[username]
	if t == nil {
		if bcrypt {
			spendBcrypt(password) // an unknown username costs what a known one does
		}
		return Principal{}, "", false
	}
	if t.rec.Status != TokenEnabled {
		return Principal{}, "", false
	}
	live := func(i int) string { return liveHash(t.rec.Passwords[i].Hash, t.rec.Passwords[i].ExpiresAt, now) }
	if h, ok := check(username, password, now, len(t.rec.Passwords), live); ok {
		return Principal{Kind: TokenPrincipal, Name: t.rec.Name, ID: t.rec.principalID()}, secretCredential(h), true
	}
	return Principal{}, "", false
}

// A refresh token names the credential it was minted from — a digest of
// the secret's or password's hash, or of the federated credential — so
// that deleting, regenerating or expiring that credential revokes it.
func secretCredential(hash string) string { return credentialID("secret", hash) }

func federatedCredential(principalID string, f FederatedCredential) string {
	return credentialID("federated", principalID, f.Name, f.Issuer, f.Subject)
}

func credentialID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

// credentialLive reports whether the credential a refresh token of p was
// minted from still authenticates p.
func (s *Snapshot) credentialLive(p Principal, id string, now time.Time) bool {
	if id == "" {
		return false
	}
	switch p.Kind {
	case IdentityPrincipal:
		r := s.byPrincipal[p.ID]
		if r == nil {
			return false
		}
		for _, sec := range r.Secrets {
			if h := liveHash(sec.Hash, sec.ExpiresAt, now); h != "" && secretCredential(h) == id {
				return true
			}
		}
		for _, f := range r.Federated {
			if federatedCredential(r.PrincipalID, f) == id {
				return true
			}
		}
	case TokenPrincipal:
		t := s.tokens[p.Name]
		if t == nil {
			return false
		}
		for _, pw := range t.rec.Passwords {
			if h := liveHash(pw.Hash, pw.ExpiresAt, now); h != "" && secretCredential(h) == id {
				return true
			}
		}
	}
	return false
}

// liveHash is hash, or "" when expiresAt has passed.
func liveHash(hash string, expiresAt *time.Time, now time.Time) string {
	if expiresAt != nil && !now.Before(*expiresAt) {
		return ""
	}
	return hash
}
