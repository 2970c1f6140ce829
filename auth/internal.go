package auth

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/policy"
)

// SystemPrincipal is moat itself acting inside the server (the built-in
// importer).
const SystemPrincipal PrincipalKind = 3

// Importer is moat's built-in importer: the `registry` trusted service of
// SPEC §4 that runs inside the server and needs no identity.
var Importer = Principal{Kind: SystemPrincipal, Name: "moat-importer", ID: "system:importer"}

// InternalEndpoint names in-process traffic in audit entries.
const InternalEndpoint = "internal"

type principalKey struct{}

// WithPrincipal marks an in-process connection's context with the
// principal its requests act as.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// InternalAuthorizer authorizes requests that moat makes to itself over
// an in-process connection (imports, tasks). Those never cross a network,
// so no network rule applies; the principal the connection was opened for
// must hold the roles each request needs, except the built-in importer.
type InternalAuthorizer struct{ g *Guard }

// InternalAuthorizer returns the authorizer of the in-process registry.
func (g *Guard) InternalAuthorizer() InternalAuthorizer { return InternalAuthorizer{g} }

// Authorize implements registry.Authorizer.
func (a InternalAuthorizer) Authorize(r *http.Request, need []Scope) (Grant, error) {
	p, ok := r.Context().Value(principalKey{}).(Principal)
	if !ok {
		return nil, errcode.Unauthorized.New("in-process request without a principal")
	}
	if p.Kind == SystemPrincipal {
		return AllowAll{Name: p.Name}, nil
	}
	snap := a.g.dir.Snapshot()
	if !snap.Valid(p) {
		v := verdict{kind: verdictInvalid, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonInvalidCredentials}}
		a.g.record(snap, v, InternalEndpoint, netip.Addr{}, p, need)
		return nil, errcode.Unauthorized.New("the identity " + p.Name + " is disabled or gone")
	}
	for _, s := range need {
		if !s.Optional && !satisfies(snap.held(p, s), s.Actions) {
			v := verdict{kind: verdictNoRole, decision: policy.Decision{Stage: policy.StageAuthz, Reason: policy.ReasonNoRole}}
			a.g.record(snap, v, InternalEndpoint, netip.Addr{}, p, need)
			return nil, &errcode.Error{Code: errcode.Denied, Message: "identity " + p.Name + " has no role for " + s.String(),
				Detail: map[string]string{"stage": "authz", "reason": "NoRole"}}
		}
	}
	return principalGrant{snap: snap, p: p}, nil
}
