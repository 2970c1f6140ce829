package auth

// Grant is what an authorized request may do beyond the scopes it was
// checked for: the catalog lists only repositories the caller may pull, and
// a cross-repository mount links only from one.
type Grant interface {
	// Allows reports whether the caller may perform a on repository.
	Allows(repository string, a Action) bool
	// Actor names the caller for notifications and logs ("" when
	// anonymous).
	Actor() string
}

// AllowAll grants everything (the dev profile's loopback callers, moat's
// own importer). Name is its Actor.
type AllowAll struct{ Name string }

// Allows implements Grant.
func (AllowAll) Allows(string, Action) bool { return true }

// Actor implements Grant.
func (a AllowAll) Actor() string { return a.Name }
