package auth

// Grant is what an authorized request may do beyond the scopes it was
// checked for: the catalog lists only repositories the caller may pull, and
// a cross-repository mount links only from one.
type Grant interface {
	// Allows reports whether the caller may perform a on repository with
	// the credentials of this request: its roles, and a bearer token's
	// scopes too (a token for one repository mounts from no other).
	Allows(repository string, a Action) bool
	// Lists reports whether the catalog shows repository: the caller may
	// pull it by its roles (a catalog token names no repositories).
	Lists(repository string) bool
	// Actor names the caller for notifications and logs ("" when
	// anonymous).
	Actor() string
	// Redirectable reports whether the caller may be sent to a presigned
	// object-store URL: only over the public endpoint of a registry whose
	// network rules restrict nobody, since such a URL works from any
	// network.
	Redirectable() bool
}

// AllowAll grants everything (the dev profile's loopback callers, moat's
// own importer). Name is its Actor; Redirect says whether it may be sent
// to presigned URLs.
type AllowAll struct {
	Name     string
	Redirect bool
}

// Allows implements Grant.
func (AllowAll) Allows(string, Action) bool { return true }

// Lists implements Grant.
func (AllowAll) Lists(string) bool { return true }

// Actor implements Grant.
func (a AllowAll) Actor() string { return a.Name }

// Redirectable implements Grant.
func (a AllowAll) Redirectable() bool { return a.Redirect }
