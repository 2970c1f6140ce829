package notify

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// filter decides which events an endpoint receives. It is compiled once,
// when the notifier is built.
type filter struct {
	repos   *regexp.Regexp // nil: every repository
	actions []string       // empty: every action
	ignored []string       // media types never sent
}

func newFilter(ep Endpoint) (filter, error) {
	f := filter{ignored: ep.IgnoredMediaTypes}
	for _, a := range ep.Actions {
		if a != ActionPush && a != ActionDelete {
			return f, fmt.Errorf("actions: %q is not push or delete", a)
		}
		f.actions = append(f.actions, a)
	}
	var alts []string
	for _, g := range ep.Repositories {
		if g == "" {
			return f, fmt.Errorf("repositories: an empty pattern matches nothing")
		}
		alts = append(alts, globRegexp(g))
	}
	if ep.RepositoryRegexp != "" {
		if _, err := regexp.Compile(ep.RepositoryRegexp); err != nil {
			return f, fmt.Errorf("repositoryRegexp: %w", err)
		}
		alts = append(alts, "(?:"+ep.RepositoryRegexp+")")
	}
	if len(alts) > 0 {
		re, err := regexp.Compile("^(?:" + strings.Join(alts, "|") + ")$")
		if err != nil {
			return f, fmt.Errorf("repositories: %w", err)
		}
		f.repos = re
	}
	return f, nil
}

// globRegexp translates a repository glob: "*" matches any characters,
// "/" included (so "app/*" is every repository under app/, as in role
// scopes), "?" matches one character, everything else itself.
func globRegexp(g string) string {
	var b strings.Builder
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// match reports whether the endpoint wants e.
func (f *filter) match(e *Event) bool {
	if len(f.actions) > 0 && !slices.Contains(f.actions, e.Action) {
		return false
	}
	if len(f.ignored) > 0 && slices.Contains(f.ignored, e.Target.MediaType) {
		return false
	}
	return f.repos == nil || f.repos.MatchString(e.Target.Repository)
}
