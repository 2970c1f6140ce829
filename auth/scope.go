package auth

import (
	"github.com/moat-registry/moat/oci"
	"strings"
)

// Action is a set of data-plane actions on a repository.
type Action uint8

// The data-plane actions. Docker's token scopes name them "pull", "push"
// and "delete"; "*" is all three.
const (
	Pull Action = 1 << iota
	Push
	Delete

	AllActions = Pull | Push | Delete
)

// Has reports whether a holds every action of b.
func (a Action) Has(b Action) bool { return a&b == b }

// String renders a in Docker's scope syntax ("pull,push").
func (a Action) String() string {
	var parts []string
	if a.Has(Pull) {
		parts = append(parts, "pull")
	}
	if a.Has(Push) {
		parts = append(parts, "push")
	}
	if a.Has(Delete) {
		parts = append(parts, "delete")
	}
	return strings.Join(parts, ",")
}

// Names lists the actions for a token's access claim.
func (a Action) Names() []string {
	if a == 0 {
		return []string{}
	}
	return strings.Split(a.String(), ",")
}

// ParseAction parses one action name; ok is false for an unknown one.
func ParseAction(s string) (Action, bool) {
	switch s {
	case "pull":
		return Pull, true
	case "push":
		return Push, true
	case "delete":
		return Delete, true
	case "*":
		return AllActions, true
	}
	return 0, false
}

// Scope types of Docker's token scopes.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
	// CatalogName is the resource of the "registry:catalog:*" scope.
	CatalogName = "catalog"
)

// Scope is what a request needs, or a token grants, on one resource:
// "repository:<name>:pull,push" or "registry:catalog:*".
type Scope struct {
	Type    string
	Name    string
	Actions Action
	// Optional marks a scope the request can do without (a mount's
	// source): it is asked for in a challenge but never causes a denial.
	Optional bool
}

// Repository is the scope of actions on one repository.
func Repository(name string, a Action) Scope {
	return Scope{Type: TypeRepository, Name: name, Actions: a}
}

// Catalog is the scope of the repository listing.
func Catalog() Scope { return Scope{Type: TypeRegistry, Name: CatalogName, Actions: AllActions} }

// String renders s in Docker's syntax; moat's own actions (List, Sign)
// are named by the Docker action that covers them.
func (s Scope) String() string {
	if s.Type == TypeRegistry {
		return s.Type + ":" + s.Name + ":*"
	}
	return s.Type + ":" + s.Name + ":" + toDocker(s.Actions).String()
}

// ParseScope parses one Docker scope ("repository:app/web:pull,push").
// Unknown actions are dropped; ok is false when s is not a scope at all.
func ParseScope(s string) (Scope, bool) {
	i := strings.IndexByte(s, ':')
	j := strings.LastIndexByte(s, ':')
	if i < 0 || i == j {
		return Scope{}, false
	}
	sc := Scope{Type: s[:i], Name: s[i+1 : j]}
	switch sc.Type {
	case TypeRepository:
		if !oci.ValidRepository(sc.Name) {
			return Scope{}, false
		}
	case TypeRegistry:
		if sc.Name != CatalogName {
			return Scope{}, false
		}
	default:
		return Scope{}, false
	}
	for a := range strings.SplitSeq(s[j+1:], ",") {
		if act, ok := ParseAction(a); ok {
			sc.Actions |= act
		}
	}
	return sc, true
}
