// Package policy is moat's network policy: the registry's network
// properties compiled into a snapshot, and a pure evaluator that decides,
// with a reason, whether the network a request came from may reach the
// data plane. It performs no I/O and imports nothing of the project and no
// net/http; the auth package feeds it and combines its verdict with
// authentication and authorization.
//
// Evaluation allocates nothing and costs O(log n) in the number of rules.
package policy

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Property values (ACR's ARM names).
const (
	Enabled  = "Enabled"
	Disabled = "Disabled"

	ActionAllow = "Allow"
	ActionDeny  = "Deny"

	ModeEnforce = "Enforce"
	ModeAudit   = "Audit"

	BypassTrustedServices = "TrustedServices"
	BypassAzureServices   = "AzureServices" // ACR's name, accepted as an alias
	BypassNone            = "None"
)

// MaxIPRules bounds networkRuleSet.ipRules.
const MaxIPRules = 1000

// IPRule is one entry of networkRuleSet.ipRules.
type IPRule struct {
	Action string `json:"action"`
	Value  string `json:"value"`
}

// NetworkRuleSet is networkRuleSet.
type NetworkRuleSet struct {
	DefaultAction string   `json:"defaultAction"`
	IPRules       []IPRule `json:"ipRules"`
	Mode          string   `json:"mode"`
}

// Properties are the network properties of the registry.
type Properties struct {
	PublicNetworkAccess      string         `json:"publicNetworkAccess"`
	NetworkRuleSet           NetworkRuleSet `json:"networkRuleSet"`
	NetworkRuleBypassOptions string         `json:"networkRuleBypassOptions"`
}

// DefaultProperties are the properties of a new registry: everything open,
// trusted services allowed.
func DefaultProperties() Properties {
	return Properties{
		PublicNetworkAccess:      Enabled,
		NetworkRuleSet:           NetworkRuleSet{DefaultAction: ActionAllow, IPRules: []IPRule{}, Mode: ModeEnforce},
		NetworkRuleBypassOptions: BypassTrustedServices,
	}
}

// Normalize fills empty properties with their defaults and maps aliases
// to canonical names (AzureServices → TrustedServices) and rule values to
// their canonical form. It reports the first invalid value, naming the
// property.
func (p *Properties) Normalize() error {
	var ok bool
	if p.PublicNetworkAccess, ok = canonical(p.PublicNetworkAccess, Enabled, Enabled, Disabled); !ok {
		return fmt.Errorf("publicNetworkAccess: %q is not Enabled or Disabled", p.PublicNetworkAccess)
	}
	rs := &p.NetworkRuleSet
	if rs.DefaultAction, ok = canonical(rs.DefaultAction, ActionAllow, ActionAllow, ActionDeny); !ok {
		return fmt.Errorf("networkRuleSet.defaultAction: %q is not Allow or Deny", rs.DefaultAction)
	}
	if rs.Mode, ok = canonical(rs.Mode, ModeEnforce, ModeEnforce, ModeAudit); !ok {
		return fmt.Errorf("networkRuleSet.mode: %q is not Enforce or Audit", rs.Mode)
	}
	bypass, ok := canonical(p.NetworkRuleBypassOptions, BypassTrustedServices, BypassTrustedServices, BypassAzureServices, BypassNone)
	if !ok {
		return fmt.Errorf("networkRuleBypassOptions: %q is not TrustedServices, AzureServices or None", p.NetworkRuleBypassOptions)
	}
	if bypass == BypassAzureServices {
		bypass = BypassTrustedServices
	}
	p.NetworkRuleBypassOptions = bypass
	if len(rs.IPRules) > MaxIPRules {
		return fmt.Errorf("networkRuleSet.ipRules: %d rules, at most %d", len(rs.IPRules), MaxIPRules)
	}
	if rs.IPRules == nil {
		rs.IPRules = []IPRule{}
	}
	seen := make(map[string]bool, len(rs.IPRules))
	out := rs.IPRules[:0:0]
	for i, r := range rs.IPRules {
		action, ok := canonical(r.Action, ActionAllow, ActionAllow)
		if !ok {
			return fmt.Errorf("networkRuleSet.ipRules[%d].action: %q is not Allow", i, r.Action)
		}
		r.Action = action
		pfx, err := ParseRuleValue(r.Value)
		if err != nil {
			return fmt.Errorf("networkRuleSet.ipRules[%d].value: %w", i, err)
		}
		r.Value = FormatRuleValue(pfx)
		if seen[r.Value] {
			continue
		}
		seen[r.Value] = true
		out = append(out, r)
	}
	rs.IPRules = out
	return nil
}

// canonical matches s case-insensitively (as ARM and az do) against the
// allowed values and returns the canonical spelling; empty is def.
func canonical(s, def string, allowed ...string) (string, bool) {
	if s == "" {
		return def, true
	}
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a, true
		}
	}
	return s, false
}

// ParseRuleValue parses an ipRule value: an IPv4 or IPv6 address or CIDR.
// Host bits of a CIDR are cleared; an IPv4-mapped IPv6 address counts as
// IPv4.
func ParseRuleValue(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty; expected an IP address or CIDR")
	}
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// FormatRuleValue is the canonical form of a rule value: a bare address for
// a single host, CIDR notation otherwise.
func FormatRuleValue(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Stage is the pipeline stage that reached a decision.
type Stage uint8

// The stages of SPEC §2.
const (
	StageNone Stage = iota
	StageNetwork
	StageAuthn
	StageAuthz
)

var stageNames = [...]string{"", "network", "authn", "authz"}

func (s Stage) String() string { return stageNames[s] }

// ParseStage parses a stage name ("" is StageNone).
func ParseStage(s string) (Stage, bool) {
	for i, n := range stageNames {
		if n == s {
			return Stage(i), true
		}
	}
	return 0, false
}

// Reason says why a decision was reached.
type Reason uint8

// The reasons of SPEC §2.
const (
	ReasonNone Reason = iota
	ReasonPublicNetworkAccessDisabled
	ReasonIPNotAllowed
	ReasonPrivateEndpointNotApproved
	ReasonTrustedServiceBypass
	ReasonNotAuthenticated
	ReasonInvalidCredentials
	ReasonNoRole
	ReasonInsufficientScope
)

var reasonNames = [...]string{"", "PublicNetworkAccessDisabled", "IPNotAllowed", "PrivateEndpointNotApproved",
	"TrustedServiceBypass", "NotAuthenticated", "InvalidCredentials", "NoRole", "InsufficientScope"}

func (r Reason) String() string { return reasonNames[r] }

// Reasons lists every reason, for metrics that are initialised up front.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonNames)-1)
	for i := 1; i < len(reasonNames); i++ {
		out = append(out, Reason(i))
	}
	return out
}

// Decision is the verdict of a stage. The zero value denies.
type Decision struct {
	Allowed bool
	Stage   Stage
	Reason  Reason
	// Rule is the ipRule value that allowed the request, if one did.
	Rule string
	// Audit marks a request that Audit mode allowed though the IP rules
	// would deny it.
	Audit bool
	// Bypassable marks a network denial that the trusted-services bypass
	// may lift (public endpoint, bypass on).
	Bypassable bool
}

// EndpointState is a private endpoint's connection state.
type EndpointState uint8

// The private endpoint states.
const (
	StateApproved EndpointState = iota + 1
	StatePending
	StateRejected
	StateDisconnected
)

var stateNames = [...]string{"", "Approved", "Pending", "Rejected", "Disconnected"}

func (s EndpointState) String() string { return stateNames[s] }

// ParseEndpointState parses a connection state name.
func ParseEndpointState(s string) (EndpointState, bool) {
	for i := 1; i < len(stateNames); i++ {
		if stateNames[i] == s {
			return EndpointState(i), true
		}
	}
	return 0, false
}

// Endpoint is where a request arrived: the public listener (zero value) or
// a private endpoint in some state.
type Endpoint struct {
	Private bool
	State   EndpointState
}

// Policy is compiled network properties. It is immutable; rebuild it with
// Compile when the properties change and swap it in atomically.
type Policy struct {
	props          Properties
	publicDisabled bool
	defaultDeny    bool
	audit          bool
	bypass         bool
	v4             ranges[uint32]
	v6             ranges[uint128]
}

// Compile checks and compiles properties.
func Compile(p Properties) (*Policy, error) {
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	c := &Policy{
		props:          p,
		publicDisabled: p.PublicNetworkAccess == Disabled,
		defaultDeny:    p.NetworkRuleSet.DefaultAction == ActionDeny,
		audit:          p.NetworkRuleSet.Mode == ModeAudit,
		bypass:         p.NetworkRuleBypassOptions == BypassTrustedServices,
	}
	var r4 []span[uint32]
	var r6 []span[uint128]
	for _, r := range p.NetworkRuleSet.IPRules {
		pfx, _ := ParseRuleValue(r.Value) // Normalize checked it
		if pfx.Addr().Is4() {
			lo, hi := bounds4(pfx)
			r4 = append(r4, span[uint32]{lo, hi, r.Value})
		} else {
			lo, hi := bounds6(pfx)
			r6 = append(r6, span[uint128]{lo, hi, r.Value})
		}
	}
	c.v4 = newRanges(r4, func(a, b uint32) int { return cmp.Compare(a, b) })
	c.v6 = newRanges(r6, uint128.cmp)
	return c, nil
}

// Properties returns the (normalized) properties p was compiled from.
func (p *Policy) Properties() Properties { return p.props }

// BypassEnabled reports whether trusted services may bypass the rules.
func (p *Policy) BypassEnabled() bool { return p.bypass }

// Restricted reports whether the public endpoint is restricted at all
// (public access disabled or a default action of Deny).
func (p *Policy) Restricted() bool { return p.publicDisabled || p.defaultDeny }

// Evaluate is the network verdict of SPEC §3 for a request from client
// arriving on ep.
func (p *Policy) Evaluate(ep Endpoint, client netip.Addr) Decision {
	if ep.Private {
		if ep.State == StateApproved {
			return Decision{Allowed: true}
		}
		return Decision{Stage: StageNetwork, Reason: ReasonPrivateEndpointNotApproved}
	}
	if p.publicDisabled {
		return Decision{Stage: StageNetwork, Reason: ReasonPublicNetworkAccessDisabled, Bypassable: p.bypass}
	}
	if !p.defaultDeny {
		return Decision{Allowed: true}
	}
	if rule, ok := p.match(client); ok {
		return Decision{Allowed: true, Rule: rule}
	}
	if p.audit {
		return Decision{Allowed: true, Stage: StageNetwork, Reason: ReasonIPNotAllowed, Audit: true}
	}
	return Decision{Stage: StageNetwork, Reason: ReasonIPNotAllowed, Bypassable: p.bypass}
}

// Match returns the value of an ipRule that contains client.
func (p *Policy) match(client netip.Addr) (string, bool) {
	client = client.Unmap()
	switch {
	case client.Is4():
		b := client.As4()
		return p.v4.find(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	case client.Is6():
		return p.v6.find(u128(client.As16()))
	}
	return "", false
}

// span is one rule as an inclusive address range.
type span[T any] struct {
	lo, hi T
	rule   string
}

// ranges answers "which span contains x" in O(log n) without allocating:
// spans sorted by lo, and for each position the span with the highest hi
// among it and those before it. The last span starting at or below x
// bounds the candidates; if the widest of them reaches x, it contains x.
type ranges[T any] struct {
	lo    []T
	maxHi []T
	rule  []string
	cmp   func(a, b T) int
}

func newRanges[T any](spans []span[T], cmpFn func(a, b T) int) ranges[T] {
	slices.SortFunc(spans, func(a, b span[T]) int { return cmpFn(a.lo, b.lo) })
	r := ranges[T]{lo: make([]T, len(spans)), maxHi: make([]T, len(spans)), rule: make([]string, len(spans)), cmp: cmpFn}
	for i, s := range spans {
		r.lo[i] = s.lo
		r.maxHi[i], r.rule[i] = s.hi, s.rule
		if i > 0 && cmpFn(r.maxHi[i-1], s.hi) >= 0 {
			r.maxHi[i], r.rule[i] = r.maxHi[i-1], r.rule[i-1]
		}
	}
	return r
}

func (r *ranges[T]) find(x T) (string, bool) {
	// i = number of spans with lo <= x.
	i, j := 0, len(r.lo)
	for i < j {
		h := int(uint(i+j) >> 1)
		if r.cmp(r.lo[h], x) <= 0 {
			i = h + 1
		} else {
			j = h
		}
	}
	if i == 0 || r.cmp(r.maxHi[i-1], x) < 0 {
		return "", false
	}
	return r.rule[i-1], true
}

func bounds4(p netip.Prefix) (uint32, uint32) {
	b := p.Addr().As4()
	lo := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if p.Bits() == 0 {
		return 0, ^uint32(0)
	}
	return lo, lo | (^uint32(0) >> p.Bits())
}

// uint128 is an IPv6 address as a number.
type uint128 struct{ hi, lo uint64 }

func u128(b [16]byte) uint128 {
	var v uint128
	for i := range 8 {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[i+8])
	}
	return v
}

func (a uint128) cmp(b uint128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func bounds6(p netip.Prefix) (uint128, uint128) {
	lo := u128(p.Addr().As16())
	hi := lo
	bits := p.Bits()
	switch {
	case bits == 0:
		hi = uint128{^uint64(0), ^uint64(0)}
	case bits < 64:
		hi.hi |= ^uint64(0) >> bits
		hi.lo = ^uint64(0)
	case bits < 128:
		hi.lo |= ^uint64(0) >> (bits - 64)
	}
	return lo, hi
}
