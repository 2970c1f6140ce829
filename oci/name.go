// Package oci holds the grammar of the OCI distribution spec (repository
// names, tags, digests) and the media types moat understands. It imports
// nothing of the project.
//
// The validators are hand-written byte loops because they run on every
// request; fuzz tests check that they accept exactly what the reference
// grammar of github.com/distribution/reference accepts.
package oci

// MaxNameLength bounds a repository name, as Distribution does.
const MaxNameLength = 255

// ValidRepository reports whether name matches the spec's repository grammar:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
func ValidRepository(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLength {
		return false
	}
	i := 0
	for {
		// A path component: alnum runs joined by separators.
		if !alnum(name, i) {
			return false
		}
		for i < len(name) && isAlnum(name[i]) {
			i++
		}
		for i < len(name) && name[i] != '/' {
			switch {
			case name[i] == '.':
				i++
			case name[i] == '_':
				i++
				if i < len(name) && name[i] == '_' {
					i++
				}
			case name[i] == '-':
				for i < len(name) && name[i] == '-' {
					i++
				}
			default:
				return false
			}
			if !alnum(name, i) {
				return false
			}
			for i < len(name) && isAlnum(name[i]) {
				i++
			}
		}
		if i == len(name) {
			return true
		}
		i++ // the '/'
	}
}

func alnum(s string, i int) bool { return i < len(s) && isAlnum(s[i]) }

func isAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }

// ValidTag reports whether tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(tag string) bool {
	if len(tag) == 0 || len(tag) > 128 {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
