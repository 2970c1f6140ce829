package auth

import (
	"strings"

	"github.com/moat-registry/moat/oci"
)

// Data-plane actions beyond Docker's three, used by roles and scope maps:
// List reads tags and the catalog (ACR's metadata/read) and Sign pushes
// referrers only (ImageSigner).
const (
	List Action = 1 << (iota + 3)
	Sign
)

// dockerActions maps the actions a Docker token scope names to moat's:
// "pull" covers reading content and tags, "push" covers signing.
func dockerActions(a Action) Action {
	var out Action
	if a.Has(Pull) {
		out |= Pull | List
	}
	if a.Has(Push) {
		out |= Push | Sign
	}
	if a.Has(Delete) {
		out |= Delete
	}
	return out
}

// toDocker names moat actions by the Docker actions that cover them (for a
// token's access claim, a challenge's scope, an audit entry): reading
// content or tags is "pull", writing or signing is "push".
func toDocker(a Action) Action {
	var out Action
	if a&(Pull|List) != 0 {
		out |= Pull
	}
	if a&(Push|Sign) != 0 {
		out |= Push
	}
	if a.Has(Delete) {
		out |= Delete
	}
	return out
}

// satisfies reports whether held actions cover needed ones. Sign stands in
// for Push: a signer may upload blobs and push manifests, and the registry
// then refuses a manifest without a subject (Grant.Allows(repo, Push) is
// false for a signer).
func satisfies(held, needed Action) bool {
	if held.Has(needed) {
		return true
	}
	return needed.Has(Push) && held.Has(Sign) && held.Has(needed&^Push)
}

// Level is a control-plane permission level (admin API).
type Level uint8

// Control-plane levels, each including the ones before it.
const (
	LevelNone Level = iota
	LevelReader
	LevelContributor
	LevelOwner
)

var levelNames = [...]string{"none", "Reader", "Contributor", "Owner"}

func (l Level) String() string { return levelNames[l] }

// Role is a built-in role.
type Role struct {
	Name    string
	Alias   string
	Actions Action // data-plane actions
	Level   Level  // control-plane level (from assignments at scope "/")
	Grants  string // what it grants, for the docs and `moat role list`
}

// Roles are the built-in roles of SPEC §5.
var Roles = []Role{
	{"Pull", "AcrPull", Pull | List, LevelNone, "read content + tags"},
	{"Push", "AcrPush", Pull | List | Push | Sign, LevelNone, "Pull + write content"},
	{"Delete", "AcrDelete", Delete, LevelNone, "delete manifests, tags, blobs"},
	{"ImageSigner", "AcrImageSigner", Pull | List | Sign, LevelNone, "write signatures / referrers"},
	{"Reader", "Reader", Pull | List, LevelReader, "read registry settings (admin API GET), and Pull"},
	{"Contributor", "Contributor", Pull | List | Push | Sign | Delete, LevelContributor, "change settings except role assignments, and Push + Delete"},
	{"Owner", "Owner", Pull | List | Push | Sign | Delete, LevelOwner, "everything, incl. role assignments"},
}

// LookupRole finds a role by name or ACR alias, case-insensitively.
func LookupRole(name string) (Role, bool) {
	for _, r := range Roles {
		if strings.EqualFold(r.Name, name) || strings.EqualFold(r.Alias, name) {
			return r, true
		}
	}
	return Role{}, false
}

// RoleScope is where a role assignment applies: the whole registry, one
// repository, or every repository under a prefix ("repositories/app/*").
type RoleScope struct {
	All    bool
	Name   string // exact repository
	Prefix string // "app/" for "repositories/app/*"; "" with Wildcard for "repositories/*"
	Wild   bool
}

// ParseRoleScope parses "/", "repositories/<name>", "repositories/<prefix>/*"
// or "repositories/*".
func ParseRoleScope(s string) (RoleScope, bool) {
	if s == "/" || s == "" {
		return RoleScope{All: true}, true
	}
	rest, ok := strings.CutPrefix(s, "repositories/")
	if !ok {
		return RoleScope{}, false
	}
	if rest == "*" {
		return RoleScope{Wild: true}, true
	}
	if p, ok := strings.CutSuffix(rest, "/*"); ok {
		if !oci.ValidRepository(p) {
			return RoleScope{}, false
		}
		return RoleScope{Prefix: p + "/", Wild: true}, true
	}
	if !oci.ValidRepository(rest) {
		return RoleScope{}, false
	}
	return RoleScope{Name: rest}, true
}

// Matches reports whether repository is within the scope.
func (s RoleScope) Matches(repository string) bool {
	switch {
	case s.All:
		return true
	case s.Wild:
		return strings.HasPrefix(repository, s.Prefix)
	default:
		return repository == s.Name
	}
}

// ScopeMapActions maps ACR scope-map actions to moat actions.
var scopeMapActions = map[string]Action{
	"content/read":   Pull,
	"content/write":  Push | Sign,
	"content/delete": Delete,
	"metadata/read":  List,
	"metadata/write": 0, // accepted for ACR compatibility; moat keeps no writable metadata beyond tags
}

// ParseScopeMapAction parses "repositories/<repo>/<content|metadata>/<op>";
// <repo> may end in "/*" or be "*".
func ParseScopeMapAction(s string) (RoleScope, Action, bool) {
	rest, ok := strings.CutPrefix(s, "repositories/")
	if !ok {
		return RoleScope{}, 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return RoleScope{}, 0, false
	}
	j := strings.LastIndexByte(rest[:i], '/')
	if j < 0 {
		return RoleScope{}, 0, false
	}
	a, ok := scopeMapActions[rest[j+1:]]
	if !ok {
		return RoleScope{}, 0, false
	}
	scope, ok := ParseRoleScope("repositories/" + rest[:j])
	if !ok || scope.All {
		return RoleScope{}, 0, false
	}
	return scope, a, true
}
