package auth

// Grant is what an authorized request may do beyond the scopes it was
// checked for: the catalog lists only repositories the caller may pull, and
// a cross-repository mount links only from one.
type Grant interface {
	// Allows reports whether the caller may perform a on repository.
	Allows(repository string, a Action) bool
}

// AllowAll grants everything (the dev profile's loopback callers).
type AllowAll struct{}

// Allows implements Grant.
func (AllowAll) Allows(string, Action) bool { return true }
