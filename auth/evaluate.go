package auth

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/policy"
)

// EvaluateInput is a what-if question (POST /admin/v1/policy/evaluate).
type EvaluateInput struct {
	ClientIP   string `json:"clientIP"`
	Endpoint   string `json:"endpoint,omitempty"`
	Principal  string `json:"principal,omitempty"`
	Repository string `json:"repository"`
	Action     string `json:"action"`
}

// EvaluateResult is the decision the pipeline would reach.
type EvaluateResult struct {
	Allowed bool   `json:"allowed"`
	Stage   string `json:"stage"`
	Reason  string `json:"reason"`
	Rule    string `json:"rule"`
	Audit   bool   `json:"audit"`
	// ClientIP is the address judged when the question named none.
	ClientIP string `json:"clientIP,omitempty"`
}

// Evaluate answers what the pipeline of SPEC §2 would decide for a request
// from in.ClientIP on in.Endpoint by in.Principal (anonymous when empty,
// authenticated as if its credentials were right) to perform in.Action on
// in.Repository. It uses the same decide function as the data plane.
func (g *Guard) Evaluate(in EvaluateInput) (EvaluateResult, error) {
	client, err := netip.ParseAddr(strings.TrimSpace(in.ClientIP))
	if err != nil {
		return EvaluateResult{}, invalid("clientIP: %q is not an IP address", in.ClientIP)
	}
	client = client.Unmap()
	var need Scope
	switch in.Action {
	case "pull":
		need = Repository(in.Repository, Pull)
	case "push":
		need = Repository(in.Repository, Pull|Push)
	case "delete":
		need = Repository(in.Repository, Delete)
	default:
		return EvaluateResult{}, invalid("action: %q is not pull, push or delete", in.Action)
	}
	if !oci.ValidRepository(in.Repository) {
		return EvaluateResult{}, invalid("repository: %q is not a valid repository name", in.Repository)
	}
	snap := g.dir.Snapshot()
	endpoint := in.Endpoint
	if endpoint == "" {
		endpoint = PublicEndpoint
	}
	if endpoint != PublicEndpoint {
		if _, ok := snap.endpoints[endpoint]; !ok {
			return EvaluateResult{}, invalid("endpoint: no private endpoint named %q", endpoint)
		}
	}
	nd := snap.Policy.Evaluate(snap.endpointState(endpoint), client)
	if !nd.Allowed && !nd.Bypassable {
		return result(verdict{kind: verdictNetworkDeny, decision: nd}), nil
	}
	f := requestFacts{network: nd, need: []Scope{need}, authOK: true}
	if in.Principal != "" {
		p, ok := snap.PrincipalByName(in.Principal)
		f.presented = true
		if !ok || !snap.Valid(p) {
			f.authOK = false
		}
		f.principal = p
	}
	v := decide(snap, f)
	return result(v), nil
}

func result(v verdict) EvaluateResult {
	d := v.decision
	r := EvaluateResult{Allowed: v.kind == verdictAllow, Reason: d.Reason.String(), Rule: d.Rule, Audit: d.Audit}
	if !r.Allowed {
		// The stage names the denial; an allow has none (its reason says
		// whether the bypass or Audit mode let it through).
		r.Stage = d.Stage.String()
	}
	return r
}

// Caller is an authenticated control-plane caller.
type Caller struct {
	Principal Principal
	Level     Level
}

// AuthenticateAdmin authenticates a control-plane request: Basic with an
// identity's secret, a token's password or a refresh token. Access tokens
// are not accepted: they are scoped to repositories, and one handed to a
// pull job must not carry its identity's admin roles. The control plane
// is not subject to the network rules; an anonymous or invalid caller
// gets 401.
func (g *Guard) AuthenticateAdmin(r *http.Request) (Caller, error) {
	snap := g.dir.Snapshot()
	creds := readCredentials(r)
	client := g.ClientAddress(r)
	if creds.kind == credBearer {
		v := verdict{kind: verdictInvalid, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonInvalidCredentials}}
		g.record(snap, v, EndpointOf(r.Context()), client, Principal{}, nil)
		return Caller{}, errcode.Unauthorized.New("the admin API takes Basic credentials (an identity's secret, a token's password or a refresh token), not access tokens").
			SetHeader("WWW-Authenticate", `Basic realm="moat admin"`)
	}
	a, err := g.authenticateFrom(snap, creds, client)
	if err != nil {
		return Caller{}, err
	}
	p := a.p
	if !a.ok || p.Kind == Anonymous {
		v := verdict{kind: verdictInvalid, decision: policy.Decision{Stage: policy.StageAuthn, Reason: policy.ReasonInvalidCredentials}}
		if creds.kind == credNone {
			v.decision.Reason = policy.ReasonNotAuthenticated
		}
		g.record(snap, v, EndpointOf(r.Context()), client, p, nil)
		return Caller{}, errcode.Unauthorized.New("authentication required").SetHeader("WWW-Authenticate", `Basic realm="moat admin"`)
	}
	return Caller{Principal: p, Level: snap.Level(p)}, nil
}
