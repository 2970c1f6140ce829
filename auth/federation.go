package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/storage"
)

// RefreshTokenUsername is the username under which a refresh token is
// accepted as a password (ACR's convention: docker login -u
// 00000000-0000-0000-0000-000000000000 -p <refresh token>).
const RefreshTokenUsername = "00000000-0000-0000-0000-000000000000"

// WorkloadTokenTTL is the lifetime of the OIDC tokens moat issues for its
// own tasks' system-assigned identities.
const WorkloadTokenTTL = 10 * time.Minute

// FederatedCredentials lists an identity's federated credentials.
func (s *Snapshot) FederatedCredentials(identity string) ([]FederatedCredential, bool) {
	r := s.identities[identity]
	if r == nil {
		return nil, false
	}
	return append([]FederatedCredential{}, r.Federated...), true
}

// PutFederatedCredential adds or replaces a federated credential of an
// identity. An (issuer, subject, audience) triple belongs to one
// credential only (ErrConflict).
func (d *Directory) PutFederatedCredential(ctx context.Context, identity string, fc FederatedCredential, caller Level) (FederatedCredential, bool, error) {
	if !validName(fc.Name) {
		return FederatedCredential{}, false, invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-'", fc.Name)
	}
	if err := CheckIssuerURL(fc.Issuer); err != nil {
		return FederatedCredential{}, false, invalid("issuer: %v", err)
	}
	if fc.Subject == "" || len(fc.Subject) > 512 {
		return FederatedCredential{}, false, invalid("subject: 1–512 characters, e.g. repo:org/app:ref:refs/heads/main")
	}
	if len(fc.Audiences) == 0 || len(fc.Audiences) > 10 {
		return FederatedCredential{}, false, invalid("audiences: 1–10 audiences")
	}
	for i, a := range fc.Audiences {
		if a == "" || len(a) > 512 {
			return FederatedCredential{}, false, invalid("audiences[%d]: 1–512 characters", i)
		}
	}
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		var rec identityRecord
		if err := getJSON(tx, collIdentities, identity, &rec); err != nil {
			return err
		}
		snap := d.Snapshot()
		if caller < LevelOwner && len(snap.rules[rec.PrincipalID]) > 0 {
			return forbidden("adding a credential to an identity that holds roles needs Owner")
		}
		for _, aud := range fc.Audiences {
			if owner, ok := snap.federated[federatedKey{fc.Issuer, fc.Subject, aud}]; ok {
				// The same credential being replaced is not a conflict.
				if owner != identity || !hasFederated(&rec, fc.Name, fc.Issuer, fc.Subject, aud) {
					return conflict("issuer %s, subject %s, audience %s already belongs to identity %q", fc.Issuer, fc.Subject, aud, owner)
				}
			}
		}
		kept := rec.Federated[:0]
		created = true
		for _, f := range rec.Federated {
			if f.Name == fc.Name {
				created = false
				continue
			}
			kept = append(kept, f)
		}
		if len(kept) >= 20 {
			return conflict("identity %q has 20 federated credentials", identity)
		}
		rec.Federated = append(kept, fc)
		return putJSON(tx, collIdentities, identity, rec)
	})
	return fc, created, err
}

func hasFederated(rec *identityRecord, name, issuer, subject, aud string) bool {
	for _, f := range rec.Federated {
		if f.Name == name && f.Issuer == issuer && f.Subject == subject {
			for _, a := range f.Audiences {
				if a == aud {
					return true
				}
			}
		}
	}
	return false
}

// DeleteFederatedCredential removes one federated credential.
func (d *Directory) DeleteFederatedCredential(ctx context.Context, identity, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error {
		var rec identityRecord
		if err := getJSON(tx, collIdentities, identity, &rec); err != nil {
			return err
		}
		for i, f := range rec.Federated {
			if f.Name == name {
				rec.Federated = append(rec.Federated[:i], rec.Federated[i+1:]...)
				return putJSON(tx, collIdentities, identity, rec)
			}
		}
		return ErrNotFound
	})
}

// ExchangeHandler serves POST /oauth2/exchange: grant_type=access_token
// with an OIDC JWT from an issuer some identity trusts, answered with a
// registry refresh token for that identity. The network decision applies
// as at the token endpoint.
func (g *Guard) ExchangeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.exchange(w, r); err != nil {
			errcode.Write(w, r, err)
		}
	})
}

func (g *Guard) exchange(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return errcode.Unsupported.New("method "+r.Method+" is not allowed here").SetHeader("Allow", "POST")
	}
	tc := g.tokenContext(r)
	if !tc.network.Allowed && !tc.network.Bypassable {
		return g.denyToken(tc)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return g.refuse(tc, errcode.Invalid.New("malformed form body"))
	}
	f := r.PostForm
	if f.Get("grant_type") != "access_token" {
		return g.refuse(tc, errcode.Invalid.New("grant_type must be access_token"))
	}
	if err := g.checkService(f.Get("service")); err != nil {
		return g.refuse(tc, err)
	}
	p, cred, err := g.verifyFederated(r.Context(), tc.snap, f.Get("access_token"))
	if err != nil {
		if !tc.network.Allowed {
			return g.denyToken(tc)
		}
		return g.tokenUnauthorized(r, tc, "the token does not match a federated credential: "+err.Error())
	}
	if _, err := g.admit(r, tc, p); err != nil {
		return err
	}
	refresh, err := g.tokens.issueRefresh(p, cred, g.opts.Service())
	if err != nil {
		return err
	}
	b, _ := json.Marshal(map[string]string{"refresh_token": refresh})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
	return nil
}

// verifyFederated finds the identity whose federated credential matches
// the token's issuer, subject and an audience, then verifies the token
// against that issuer's keys. cred names the federated credential.
func (g *Guard) verifyFederated(ctx context.Context, snap *Snapshot, raw string) (p Principal, cred string, err error) {
	if raw == "" {
		return Principal{}, "", errors.New("access_token is missing")
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		return Principal{}, "", errors.New("not a JWT")
	}
	name, aud := "", ""
	for _, a := range c.Audience {
		if n, ok := snap.federated[federatedKey{c.Issuer, c.Subject, a}]; ok {
			name, aud = n, a
			break
		}
	}
	if name == "" {
		return Principal{}, "", errNoFederatedMatch
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(federatedMethods),
		jwt.WithIssuer(c.Issuer),
		jwt.WithSubject(c.Subject),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(time.Minute),
		jwt.WithTimeFunc(g.now),
	)
	var verified jwt.RegisteredClaims
	_, err = parser.ParseWithClaims(raw, &verified, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return g.oidc.key(ctx, c.Issuer, kid)
	})
	if err != nil {
		return Principal{}, "", errNoFederatedMatch
	}
	rec := snap.identities[name]
	if rec == nil || !rec.Enabled {
		return Principal{}, "", errNoFederatedMatch
	}
	for _, f := range rec.Federated {
		if f.Issuer == c.Issuer && f.Subject == c.Subject && slices.Contains(f.Audiences, aud) {
			cred = federatedCredential(rec.PrincipalID, f)
			break
		}
	}
	return Principal{Kind: IdentityPrincipal, Name: rec.Name, ID: rec.PrincipalID}, cred, nil
}

// errNoFederatedMatch is every exchange failure after parsing: an
// unauthenticated caller learns neither which (issuer, subject, audience)
// triples are registered nor whether the identity is enabled.
var errNoFederatedMatch = errors.New("no enabled identity trusts this token, or it does not verify")

// WorkloadToken issues an OIDC token for a service instance's
// system-assigned identity (sub "<type>:<instance>") for another
// registry's audience, signed with this registry's keys and verifiable
// through its discovery document.
func (g *Guard) WorkloadToken(serviceType, instance, audience string) (string, error) {
	now := g.now().Truncate(time.Second)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    g.IssuerURL(),
			Subject:   serviceType + ":" + instance,
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(WorkloadTokenTTL)),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newID(),
		},
		Use: "workload",
	}
	key := g.tokens.keys.current()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = key.KID
	return tok.SignedString(key.priv)
}

// IssuerURL is this registry's OIDC issuer.
func (g *Guard) IssuerURL() string {
	if g.opts.IssuerURL != nil {
		return strings.TrimRight(g.opts.IssuerURL(), "/")
	}
	return "http://" + g.opts.Service()
}

// OpenIDConfigurationHandler serves /.well-known/openid-configuration.
func (g *Guard) OpenIDConfigurationHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss := g.IssuerURL()
		b, _ := json.Marshal(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              iss + "/.well-known/jwks.json",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": verifyMethods,
			"claims_supported":                      []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"},
		})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(b)
	})
}
