package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moat-registry/moat/policy"
)

// Errors of the directory; the admin API maps them to its codes.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
	// ErrPrecondition is a failed If-Match.
	ErrPrecondition = errors.New("precondition failed")
	// ErrForbidden is a change the caller's level does not allow.
	ErrForbidden = errors.New("forbidden")
)

// invalid returns an error matching ErrInvalid with a message naming the
// field.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Identity kinds.
const (
	KindUser             = "user"
	KindServicePrincipal = "servicePrincipal"
	KindManagedIdentity  = "managedIdentity"
)

// Identity is a principal that logs in with secrets or federated
// credentials (admin API view: never a hash).
type Identity struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Enabled     bool      `json:"enabled"`
	PrincipalID string    `json:"principalId"`
	Service     string    `json:"service,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	Secrets     []Secret  `json:"secrets"`
}

// Secret is a secret's metadata (admin API view).
type Secret struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// NewSecret is a secret as it is shown once, when it is created.
type NewSecret struct {
	ID        string     `json:"id"`
	Value     string     `json:"value"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// FederatedCredential lets an external OIDC token stand for an identity.
type FederatedCredential struct {
	Name      string   `json:"name"`
	Issuer    string   `json:"issuer"`
	Subject   string   `json:"subject"`
	Audiences []string `json:"audiences"`
}

// identityRecord is an identity as stored.
type identityRecord struct {
	V           int                   `json:"v"`
	Name        string                `json:"name"`
	Kind        string                `json:"kind"`
	Enabled     bool                  `json:"enabled"`
	PrincipalID string                `json:"principalId"`
	Service     string                `json:"service,omitempty"`
	CreatedAt   time.Time             `json:"createdAt"`
	Secrets     []secretRecord        `json:"secrets,omitempty"`
	Federated   []FederatedCredential `json:"federatedCredentials,omitempty"`
}

type secretRecord struct {
	ID        string     `json:"id"`
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

func (r *identityRecord) view() Identity {
	id := Identity{Name: r.Name, Kind: r.Kind, Enabled: r.Enabled, PrincipalID: r.PrincipalID, Service: r.Service, CreatedAt: r.CreatedAt, Secrets: []Secret{}}
	for _, s := range r.Secrets {
		id.Secrets = append(id.Secrets, Secret{ID: s.ID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt})
	}
	return id
}

// RoleAssignment gives a principal a role at a scope.
type RoleAssignment struct {
	ID          string `json:"id"`
	Principal   string `json:"principal"`
	PrincipalID string `json:"principalId"`
	Role        string `json:"role"`
	Scope       string `json:"scope"`
}

// ScopeMap is a named set of repository actions for tokens.
type ScopeMap struct {
	Name        string   `json:"name"`
	Actions     []string `json:"actions"`
	Description string   `json:"description,omitempty"`
}

// Token statuses.
const (
	TokenEnabled  = "enabled"
	TokenDisabled = "disabled"
)

// Token is a repository-scoped token (admin API view).
type Token struct {
	Name      string          `json:"name"`
	ScopeMap  string          `json:"scopeMap"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"createdAt"`
	Passwords []TokenPassword `json:"passwords"`
}

// TokenPassword is a token password's metadata (admin API view).
type TokenPassword struct {
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// NewTokenPassword is a token password as shown once.
type NewTokenPassword struct {
	Name      string     `json:"name"`
	Value     string     `json:"value"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

type tokenRecord struct {
	V         int              `json:"v"`
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	ScopeMap  string           `json:"scopeMap"`
	Status    string           `json:"status"`
	CreatedAt time.Time        `json:"createdAt"`
	Passwords []passwordRecord `json:"passwords,omitempty"`
}

type passwordRecord struct {
	Name      string     `json:"name"` // password1 or password2
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// principalID is the token's immutable principal id. Tokens stored before
// ids existed fall back to their name.
func (r *tokenRecord) principalID() string {
	if r.ID == "" {
		return "token:" + r.Name
	}
	return "token:" + r.ID
}

func (r *tokenRecord) view() Token {
	t := Token{Name: r.Name, ScopeMap: r.ScopeMap, Status: r.Status, CreatedAt: r.CreatedAt, Passwords: []TokenPassword{}}
	for _, p := range r.Passwords {
		t.Passwords = append(t.Passwords, TokenPassword{Name: p.Name, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt})
	}
	return t
}

// Trusted-service types (SPEC §4).
const (
	ServiceContainerInstances = "containerInstances"
	ServiceTasks              = "tasks"
	ServiceMachineLearning    = "machineLearning"
	ServiceScanner            = "scanner"
	ServiceRegistry           = "registry"
)

// TrustedService is one row of the built-in catalog.
type TrustedService struct {
	Type                string `json:"type"`
	StandsFor           string `json:"standsFor"`
	NeedsIdentity       bool   `json:"needsManagedIdentity"`
	UserAssigned        bool   `json:"userAssignedIdentitySupported"`
	BypassReadOnly      bool   `json:"bypassReadOnly"`
	ManagedIdentityNote string `json:"note"`
}

// TrustedServices is the catalog (GET /admin/v1/trusted-services).
var TrustedServices = []TrustedService{
	{ServiceContainerInstances, "a runtime that deploys containers from the registry", true, true, false, "system- or user-assigned identity, with a role"},
	{ServiceTasks, "build / automation tasks, incl. moat's own tasks", true, false, false, "system-assigned identity, with a role"},
	{ServiceMachineLearning, "training / inference workspaces using custom images", true, false, false, "system-assigned identity, with a role"},
	{ServiceScanner, "vulnerability scanning of pushed images", true, false, true, "system-assigned identity, with a role; the bypass covers read actions only"},
	{ServiceRegistry, "another registry importing from / to this one", true, false, false, "system-assigned identity, with a role; moat's own importer runs inside the server and needs none"},
}

func lookupServiceType(t string) (TrustedService, bool) {
	for _, s := range TrustedServices {
		if s.Type == t {
			return s, true
		}
	}
	return TrustedService{}, false
}

// reservedName reports whether name is reserved for system-assigned
// identities ("<service type>-…").
func reservedName(name string) bool {
	for _, s := range TrustedServices {
		if strings.HasPrefix(name, s.Type+"-") {
			return true
		}
	}
	return false
}

// Managed-identity types of a service instance.
const (
	IdentitySystem     = "SystemAssigned"
	IdentityUser       = "UserAssigned"
	IdentitySystemUser = "SystemAssigned,UserAssigned"
	IdentityNone       = "None"
)

// ServiceIdentity is a service instance's managed identity block.
type ServiceIdentity struct {
	Type                   string   `json:"type"`
	UserAssignedIdentities []string `json:"userAssignedIdentities,omitempty"`
	PrincipalName          string   `json:"principalName,omitempty"`
	PrincipalID            string   `json:"principalId,omitempty"`
}

// Service is a trusted-service instance.
type Service struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Identity ServiceIdentity `json:"identity"`
}

// PrivateEndpoint is a named extra listener whose traffic is private.
type PrivateEndpoint struct {
	Name        string `json:"name"`
	Listen      string `json:"listen"`
	Address     string `json:"address,omitempty"`
	TLS         bool   `json:"tls"`
	State       string `json:"state"`
	Description string `json:"description,omitempty"`
}

// ExportPolicy is policies.exportPolicy.
type ExportPolicy struct {
	Status string `json:"status"`
}

// Policies is the policies block of the registry properties.
type Policies struct {
	ExportPolicy ExportPolicy `json:"exportPolicy"`
}

// Properties are the registry properties of GET/PATCH /admin/v1/registry.
type Properties struct {
	policy.Properties
	AnonymousPullEnabled bool     `json:"anonymousPullEnabled"`
	Policies             Policies `json:"policies"`
}

// DefaultRegistryProperties are a new registry's.
func DefaultRegistryProperties() Properties {
	return Properties{Properties: policy.DefaultProperties(), Policies: Policies{ExportPolicy{Status: "enabled"}}}
}

// Normalize checks p and fills defaults.
func (p *Properties) Normalize() error {
	if err := p.Properties.Normalize(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch st := strings.ToLower(p.Policies.ExportPolicy.Status); st {
	case "":
		p.Policies.ExportPolicy.Status = "enabled"
	case "enabled", "disabled":
		p.Policies.ExportPolicy.Status = st
	default:
		return invalid("policies.exportPolicy.status: %q is not enabled or disabled", p.Policies.ExportPolicy.Status)
	}
	return nil
}

func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

func forbidden(msg string) error {
	return fmt.Errorf("%w: %s", ErrForbidden, msg)
}

// newID returns a random UUID (version 4) string.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// validName checks the names of identities, tokens, scope maps, services
// and private endpoints: 1–64 of [A-Za-z0-9._-], starting alphanumeric.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
