package auth_test

import (
	"testing"

	"github.com/moat-registry/moat/auth"
)

// TestUserAssignedIdentityKeepsItsKind: an identity attached to a service
// instance as user-assigned cannot become a user (users never bypass the
// network rules, and their secrets need not expire).
func TestUserAssignedIdentityKeepsItsKind(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "mi", Kind: auth.KindManagedIdentity, Enabled: true})
	f.must(err)
	_, _, err = f.dir.PutService(ctx, auth.Service{Name: "aci", Type: auth.ServiceContainerInstances,
		Identity: auth.ServiceIdentity{Type: auth.IdentityUser, UserAssignedIdentities: []string{"mi"}}})
	f.must(err)
	if _, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "mi", Kind: auth.KindUser, Enabled: true}); err == nil {
		t.Fatal("a user-assigned managed identity became a user")
	}
	f.must(f.dir.DeleteService(ctx, "aci"))
	if _, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "mi", Kind: auth.KindUser, Enabled: true}); err != nil {
		t.Fatalf("detached, the identity may change kind: %v", err)
	}
}
