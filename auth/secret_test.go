package auth_test

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

// TestHtpasswdHashes: bcrypt hashes from htpasswd ($2y$, $2a$, $2b$) are
// imported by AddSecret and verified at login.
func TestHtpasswdHashes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	file, err := os.Open("testdata/htpasswd")
	f.must(err)
	defer file.Close()
	passwords := map[string]string{"yuser": "correct horse", "auser": "battery staple", "buser": "tr0ub4dor&3"}
	sc := bufio.NewScanner(file)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		user, hash, _ := strings.Cut(line, ":")
		_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: user, Enabled: true})
		f.must(err)
		s, err := f.dir.AddSecret(ctx, user, auth.SecretOptions{Hash: hash})
		f.must(err)
		if s.Value != "" || s.ID == "" {
			t.Errorf("%s: imported secret %+v shows a value", user, s)
		}
		f.assign(user, "AcrPull", "/")
		if _, e := f.authorize(call{user: user, pass: passwords[user]}, pull("app")); e != nil {
			t.Errorf("%s (%s): %v", user, hash[:4], e)
		}
		_, e := f.authorize(call{user: user, pass: passwords[user] + "x"}, pull("app"))
		wantError(t, e, 401, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
		n++
	}
	f.must(sc.Err())
	if n != 3 {
		t.Fatalf("%d entries in testdata/htpasswd", n)
	}
	f.identity("x", auth.KindUser)
	for _, bad := range []string{
		"$1$abc$0123456789012345678901",     // MD5 crypt
		"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", // SHA1
		"$2x$05$" + strings.Repeat("a", 53), // unknown bcrypt variant
		"$2y$05$short",
		"plaintext",
	} {
		if _, err := f.dir.AddSecret(ctx, "x", auth.SecretOptions{Hash: bad}); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("AddSecret(hash %q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestSecrets: expiry, deletion, the Owner rule and managed-identity
// lifetimes.
func TestSecrets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	clk := &clock{now: time.Now()}
	f.guard.SetClockForTest(clk.Now)
	f.user("alice", "AcrPull", "/")

	t.Run("expired secret", func(t *testing.T) {
		f.identity("temp", auth.KindUser)
		f.assign("temp", "AcrPull", "/")
		_, err := f.dir.AddSecret(ctx, "temp", auth.SecretOptions{Hash: cheapHash(t, "short-lived"), ExpiresIn: time.Hour, CallerLevel: auth.LevelOwner})
		f.must(err)
		if _, e := f.authorize(call{user: "temp", pass: "short-lived"}, pull("app")); e != nil {
			t.Fatal(e)
		}
		clk.advance(2 * time.Hour)
		_, e := f.authorize(call{user: "temp", pass: "short-lived"}, pull("app"))
		wantError(t, e, 401, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
		if _, e := f.authorize(basic("temp"), pull("app")); e != nil {
			t.Errorf("the other secret: %v", e)
		}
	})
	t.Run("deleted secret", func(t *testing.T) {
		s, err := f.dir.AddSecret(ctx, "alice", auth.SecretOptions{Hash: cheapHash(t, "second"), CallerLevel: auth.LevelOwner})
		f.must(err)
		if _, e := f.authorize(call{user: "alice", pass: "second"}, pull("app")); e != nil {
			t.Fatal(e)
		}
		f.must(f.dir.DeleteSecret(ctx, "alice", s.ID))
		_, e := f.authorize(call{user: "alice", pass: "second"}, pull("app"))
		wantError(t, e, 401, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
		if err := f.dir.DeleteSecret(ctx, "alice", s.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("deleting again: %v", err)
		}
	})
	t.Run("a credential for an identity with roles needs Owner", func(t *testing.T) {
		for _, lvl := range []auth.Level{auth.LevelNone, auth.LevelReader, auth.LevelContributor} {
			if _, err := f.dir.AddSecret(ctx, "alice", auth.SecretOptions{Hash: cheapHash(t, "x"), CallerLevel: lvl}); !errors.Is(err, auth.ErrForbidden) {
				t.Errorf("level %v: %v, want ErrForbidden", lvl, err)
			}
		}
		f.must(func() error {
			_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "fresh", Enabled: true})
			return err
		}())
		if _, err := f.dir.AddSecret(ctx, "fresh", auth.SecretOptions{Hash: cheapHash(t, "x"), CallerLevel: auth.LevelContributor}); err != nil {
			t.Errorf("no roles, Contributor: %v", err)
		}
	})
	t.Run("managed identity secrets expire within 90 days", func(t *testing.T) {
		f.must(func() error {
			_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "mi", Kind: auth.KindManagedIdentity, Enabled: true})
			return err
		}())
		s, err := f.dir.AddSecret(ctx, "mi", auth.SecretOptions{Hash: cheapHash(t, "x")})
		f.must(err)
		if s.ExpiresAt == nil || s.ExpiresAt.After(time.Now().Add(auth.MaxManagedSecretLifetime)) || s.ExpiresAt.Before(time.Now().Add(auth.MaxManagedSecretLifetime-time.Minute)) {
			t.Errorf("managed identity secret expires %v, want in 90 days", s.ExpiresAt)
		}
		if _, err := f.dir.AddSecret(ctx, "mi", auth.SecretOptions{Hash: cheapHash(t, "x"), ExpiresIn: 91 * 24 * time.Hour}); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("91 days: %v, want ErrInvalid", err)
		}
		if s, err := f.dir.AddSecret(ctx, "alice", auth.SecretOptions{Hash: cheapHash(t, "x"), CallerLevel: auth.LevelOwner}); err != nil || s.ExpiresAt != nil {
			t.Errorf("user secret: %+v, %v; want no expiry", s, err)
		}
		if _, err := f.dir.AddSecret(ctx, "alice", auth.SecretOptions{Hash: cheapHash(t, "x"), ExpiresIn: -1, CallerLevel: auth.LevelOwner}); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("negative lifetime: %v", err)
		}
	})
	t.Run("disabled identity", func(t *testing.T) {
		f.user("dis", "AcrPull", "/")
		_, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "dis", Kind: auth.KindUser, Enabled: false})
		f.must(err)
		_, e := f.authorize(basic("dis"), pull("app"))
		wantError(t, e, 401, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	})
}

// TestBootstrap: the admin identity with Owner at "/", a generated
// password returned once, MOAT_ADMIN_PASSWORD resetting it and re-creating
// a deleted admin. Bootstrap hashes at cost 11, so the steps share one
// directory and log in only where it proves something.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	admin := func() (auth.Identity, auth.Level) {
		snap := f.dir.Snapshot()
		id, ok := snap.Identity(auth.AdminName)
		if !ok {
			t.Fatal("no admin identity")
		}
		p, _ := snap.PrincipalByName(auth.AdminName)
		return id, snap.Level(p)
	}

	needed, err := f.dir.BootstrapNeeded(ctx)
	f.must(err)
	if !needed {
		t.Fatal("a new directory does not need bootstrapping")
	}
	generated := auth.GeneratePassword()
	if len(generated) < 32 {
		t.Fatalf("generated password %q", generated)
	}
	applied, err := f.dir.Bootstrap(ctx, generated, true)
	f.must(err)
	if !applied {
		t.Fatal("the first bootstrap did not apply")
	}
	id, lvl := admin()
	if lvl != auth.LevelOwner || !id.Enabled || id.Kind != auth.KindUser || len(id.Secrets) != 1 {
		t.Fatalf("admin %+v at level %v", id, lvl)
	}
	ras := f.dir.Snapshot().RoleAssignments()
	if len(ras) != 1 || ras[0].Role != "Owner" || ras[0].Scope != "/" || ras[0].PrincipalID != id.PrincipalID {
		t.Fatalf("role assignments %+v", ras)
	}
	if _, e := f.authorize(call{user: auth.AdminName, pass: generated}, push("anything")); e != nil {
		t.Fatalf("admin with the generated password: %v", e)
	}

	// A second generated password (another replica, or a start after a
	// crash) does not replace the first once bootstrap happened.
	if needed, _ := f.dir.BootstrapNeeded(ctx); needed {
		t.Error("bootstrap still needed after it applied")
	}
	applied, err = f.dir.Bootstrap(ctx, auth.GeneratePassword(), true)
	f.must(err)
	if applied {
		t.Error("a second first-only bootstrap applied")
	}
	if id2, _ := admin(); id2.Secrets[0].CreatedAt != id.Secrets[0].CreatedAt {
		t.Error("second start replaced the secret")
	}

	// MOAT_ADMIN_PASSWORD resets the password.
	if applied, err := f.dir.Bootstrap(ctx, "from-env", false); err != nil || !applied {
		t.Fatalf("Bootstrap(env) = %v, %v", applied, err)
	}
	if _, e := f.authorize(call{user: auth.AdminName, pass: "from-env"}, push("anything")); e != nil {
		t.Errorf("admin with MOAT_ADMIN_PASSWORD: %v", e)
	}
	if id2, _ := admin(); len(id2.Secrets) != 1 || id2.PrincipalID != id.PrincipalID {
		t.Errorf("after the reset: %+v", id2)
	}

	// A deleted admin is re-created, with a new principalId and Owner.
	f.must(f.dir.DeleteIdentity(ctx, auth.AdminName))
	if _, ok := f.dir.Snapshot().Identity(auth.AdminName); ok {
		t.Fatal("admin not deleted")
	}
	if _, err := f.dir.Bootstrap(ctx, "from-env", false); err != nil {
		t.Fatal(err)
	}
	id3, lvl := admin()
	if lvl != auth.LevelOwner || id3.PrincipalID == id.PrincipalID || !id3.Enabled {
		t.Errorf("re-created admin %+v at level %v", id3, lvl)
	}
}
