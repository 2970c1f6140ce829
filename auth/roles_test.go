package auth_test

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

// dataActions are what each built-in role may do on a repository in its
// scope (SPEC §5): p pull, s push, d delete, t tag list.
var roleTable = []struct {
	role, alias string
	actions     string
	level       auth.Level // at scope "/"
	docker      string     // what a token for pull,push,delete is granted
}{
	{"Pull", "AcrPull", "pt", auth.LevelNone, "pull"},
	{"Push", "AcrPush", "pst", auth.LevelNone, "pull,push"},
	{"Delete", "AcrDelete", "d", auth.LevelNone, "delete"},
	{"ImageSigner", "AcrImageSigner", "pst", auth.LevelNone, "pull,push"},
	{"Reader", "Reader", "pt", auth.LevelReader, "pull"},
	{"Contributor", "Contributor", "psdt", auth.LevelContributor, "pull,push,delete"},
	{"Owner", "Owner", "psdt", auth.LevelOwner, "pull,push,delete"},
}

// TestRoleActionScope is the table role (and alias) × action × scope ×
// repository: Basic credentials through Authorize, a token through the
// token endpoint, and the control-plane level.
func TestRoleActionScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("nobody", "", "")
	scopes := []struct {
		scope   string
		inScope map[string]bool // repositories the scope covers
	}{
		{"/", map[string]bool{"app": true, "app/web": true, "other": true}},
		{"repositories/app", map[string]bool{"app": true}},
		{"repositories/app/*", map[string]bool{"app/web": true}},
	}
	repos := []string{"app", "app/web", "other"}
	actions := []struct {
		name  string
		code  byte
		scope func(string) auth.Scope
	}{
		{"pull", 'p', pull},
		{"push", 's', push},
		{"delete", 'd', del},
		{"tag list", 't', tagList},
	}
	type principal struct {
		name, role, scope string
		roleIdx           int
	}
	var principals []principal
	for i, r := range roleTable {
		for k, roleName := range []string{r.role, r.alias} {
			if k == 1 && r.alias == r.role {
				continue // the alias is the name itself
			}
			for j, sc := range scopes {
				name := strings.ToLower(roleName) + "-" + string(rune('a'+j)) + "-" + strings.ToLower(r.role)
				f.user(name, roleName, sc.scope)
				principals = append(principals, principal{name, roleName, sc.scope, i})
			}
		}
	}
	if len(principals) != 3*(7+4) {
		t.Fatalf("%d principals", len(principals))
	}
	for _, p := range principals {
		r := roleTable[p.roleIdx]
		var inScope map[string]bool
		for _, sc := range scopes {
			if sc.scope == p.scope {
				inScope = sc.inScope
			}
		}
		t.Run(p.role+"@"+p.scope, func(t *testing.T) {
			// Every repository: Basic, then a token asking for everything.
			for _, repo := range repos {
				tok := f.accessToken(basic(p.name), "repository:"+repo+":pull,push,delete")
				wantAccess := []string(nil)
				if inScope[repo] {
					wantAccess = []string{"repository:" + repo + ":" + r.docker}
				}
				if got := accessOf(t, tok); !reflect.DeepEqual(got, wantAccess) {
					t.Errorf("%s: token access %v, want %v", repo, got, wantAccess)
				}
				for _, a := range actions {
					want := inScope[repo] && strings.IndexByte(r.actions, a.code) >= 0
					for _, c := range []call{basic(p.name), {bearer: tok}} {
						how := "Basic"
						if c.bearer != "" {
							how = "Bearer"
						}
						grant, e := f.authorize(c, a.scope(repo))
						if want {
							if e != nil {
								t.Errorf("%s %s on %s: %d %s %v, want allowed", how, a.name, repo, e.Code.Status, e.Code.Value, e.Detail)
							}
							continue
						}
						if e == nil {
							t.Errorf("%s %s on %s: allowed, want denied", how, a.name, repo)
							continue
						}
						if e.Code.Status != http.StatusForbidden || e.Code.Value != "DENIED" {
							t.Errorf("%s %s on %s: %d %s, want 403 DENIED", how, a.name, repo, e.Code.Status, e.Code.Value)
						}
						if s, rs := detail(e); s != "authz" || rs != "NoRole" {
							t.Errorf("%s %s on %s: detail %s %s, want authz NoRole", how, a.name, repo, s, rs)
						}
						_ = grant
					}
				}
			}
			// The catalog is open to every authenticated caller (it lists
			// only what the caller may pull).
			if _, e := f.authorize(basic(p.name), auth.Catalog()); e != nil {
				t.Errorf("catalog: %v", e)
			}
			// Control-plane level: only from an assignment at "/".
			snap := f.dir.Snapshot()
			who, ok := snap.PrincipalByName(p.name)
			if !ok {
				t.Fatal("principal not found")
			}
			wantLevel := auth.LevelNone
			if p.scope == "/" {
				wantLevel = r.level
			}
			if got := snap.Level(who); got != wantLevel {
				t.Errorf("Level = %v, want %v", got, wantLevel)
			}
			adminRead, adminWrite, assign := wantLevel >= auth.LevelReader, wantLevel >= auth.LevelContributor, wantLevel >= auth.LevelOwner
			switch r.role {
			case "Reader":
				if p.scope == "/" && (!adminRead || adminWrite) {
					t.Error("Reader at / must read settings only")
				}
			case "Contributor":
				if p.scope == "/" && (!adminWrite || assign) {
					t.Error("Contributor at / must change settings but not role assignments")
				}
			case "Owner":
				if p.scope == "/" && !assign {
					t.Error("Owner at / must assign roles")
				}
			}
		})
	}
	t.Run("no role", func(t *testing.T) {
		for _, a := range actions {
			_, e := f.authorize(basic("nobody"), a.scope("app"))
			wantError(t, e, http.StatusForbidden, "DENIED", "", "authz", "NoRole")
		}
		if _, e := f.authorize(basic("nobody"), auth.Catalog()); e != nil {
			t.Errorf("catalog: %v", e)
		}
		if _, e := f.authorize(basic("nobody")); e != nil {
			t.Errorf("GET /v2/: %v", e)
		}
		if got := accessOf(t, f.accessToken(basic("nobody"), "repository:app:pull")); got != nil {
			t.Errorf("token access %v, want none", got)
		}
	})
}

// TestImageSigner: Sign satisfies a Push need, but the grant says a
// signer cannot push (the registry then accepts only referrers).
func TestImageSigner(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("signer", "AcrImageSigner", "repositories/app")
	f.user("pusher", "AcrPush", "repositories/app")
	for _, c := range []call{basic("signer"), {bearer: f.accessToken(basic("signer"), "repository:app:pull,push")}} {
		grant, e := f.authorize(c, push("app"))
		if e != nil {
			t.Fatalf("push: %v", e)
		}
		if grant.Allows("app", auth.Push) {
			t.Error("Grant.Allows(app, Push) is true for an ImageSigner")
		}
		if !grant.Allows("app", auth.Pull) || !grant.Allows("app", auth.Sign) || !grant.Allows("app", auth.List) {
			t.Error("Grant.Allows(app, Pull|Sign|List) is false for an ImageSigner")
		}
		if grant.Allows("other", auth.Pull) {
			t.Error("Grant.Allows(other, Pull) is true")
		}
		_, e = f.authorize(c, del("app"))
		wantError(t, e, http.StatusForbidden, "DENIED", "", "authz", "NoRole")
	}
	grant, e := f.authorize(basic("pusher"), push("app"))
	if e != nil || !grant.Allows("app", auth.Push) {
		t.Fatalf("pusher: %v, Allows(Push) false", e)
	}
}

func TestRoleLookup(t *testing.T) {
	t.Parallel()
	for _, r := range roleTable {
		for _, name := range []string{r.role, r.alias, strings.ToUpper(r.alias), strings.ToLower(r.role)} {
			got, ok := auth.LookupRole(name)
			if !ok || got.Name != r.role {
				t.Errorf("LookupRole(%q) = %v, %v; want %s", name, got.Name, ok, r.role)
			}
		}
	}
	for _, bad := range []string{"", "AcrOwner", "Admin", "Pull "} {
		if _, ok := auth.LookupRole(bad); ok {
			t.Errorf("LookupRole(%q) accepted", bad)
		}
	}
	f := newFixture(t, fixtureOptions{})
	f.identity("u", auth.KindUser)
	ra, _, err := f.dir.PutRoleAssignment(ctx, auth.RoleAssignment{ID: "x", Principal: "u", Role: "acrpush", Scope: "repositories/app/*"})
	if err != nil || ra.Role != "Push" || ra.PrincipalID == "" {
		t.Fatalf("PutRoleAssignment = %+v, %v; want the canonical role and the principalId", ra, err)
	}
	for _, bad := range []auth.RoleAssignment{
		{ID: "b1", Principal: "u", Role: "Root", Scope: "/"},
		{ID: "b2", Principal: "u", Role: "Pull", Scope: "repos/app"},
		{ID: "b3", Principal: "u", Role: "Pull", Scope: "repositories/App"},
		{ID: "b4", Principal: "ghost", Role: "Pull", Scope: "/"},
		{ID: "b 5", Principal: "u", Role: "Pull", Scope: "/"},
	} {
		if _, _, err := f.dir.PutRoleAssignment(ctx, bad); err == nil {
			t.Errorf("PutRoleAssignment(%+v) accepted", bad)
		}
	}
}

func TestRoleScopeMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scope string
		in    []string
		out   []string
	}{
		{"/", []string{"app", "a/b/c"}, nil},
		{"repositories/app", []string{"app"}, []string{"app/web", "apps", "ap"}},
		{"repositories/app/*", []string{"app/web", "app/web/x"}, []string{"app", "apps/web", "application"}},
		{"repositories/*", []string{"app", "x/y"}, nil},
	}
	for _, tt := range tests {
		s, ok := auth.ParseRoleScope(tt.scope)
		if !ok {
			t.Fatalf("ParseRoleScope(%q) failed", tt.scope)
		}
		for _, r := range tt.in {
			if !s.Matches(r) {
				t.Errorf("%s does not match %s", tt.scope, r)
			}
		}
		for _, r := range tt.out {
			if s.Matches(r) {
				t.Errorf("%s matches %s", tt.scope, r)
			}
		}
	}
	for _, bad := range []string{"repositories/", "repositories/App", "repositories/app/", "repositories//*", "x", "repositories/app/**"} {
		if _, ok := auth.ParseRoleScope(bad); ok {
			t.Errorf("ParseRoleScope(%q) accepted", bad)
		}
	}
}

// TestScopeMapTokens: scope maps grant tokens content/read|write|delete
// and metadata/read, per repository or wildcard, and nothing else.
func TestScopeMapTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.token("rw", "repositories/app/content/read", "repositories/app/content/write", "repositories/app/metadata/read")
	f.token("ro", "repositories/app/content/read")
	f.token("meta", "repositories/app/metadata/read")
	f.token("deleter", "repositories/app/content/delete")
	f.token("team", "repositories/team/*/content/read", "repositories/team/*/metadata/read")
	f.token("all", "repositories/*/content/read")
	f.token("mw", "repositories/app/metadata/write")

	tests := []struct {
		token string
		need  auth.Scope
		ok    bool
	}{
		{"rw", pull("app"), true},
		{"rw", push("app"), true},
		{"rw", tagList("app"), true},
		{"rw", del("app"), false},
		{"rw", pull("other"), false},
		{"rw", push("app/web"), false},
		{"ro", pull("app"), true},
		{"ro", push("app"), false},
		{"ro", tagList("app"), false}, // ACR: listing tags is metadata/read
		{"meta", tagList("app"), true},
		{"meta", pull("app"), false},
		{"deleter", del("app"), true},
		{"deleter", pull("app"), false},
		{"team", pull("team/a"), true},
		{"team", tagList("team/a/b"), true},
		{"team", pull("team"), false},
		{"team", pull("teams/a"), false},
		{"all", pull("anything/at/all"), true},
		{"all", push("app"), false},
		{"mw", pull("app"), false},
		{"mw", push("app"), false},
	}
	for _, tt := range tests {
		_, e := f.authorize(basic(tt.token), tt.need)
		if tt.ok && e != nil {
			t.Errorf("token %s, %s: %v", tt.token, tt.need, e)
		}
		if !tt.ok {
			if e == nil {
				t.Errorf("token %s, %s: allowed", tt.token, tt.need)
			} else if e.Code.Status != http.StatusForbidden {
				t.Errorf("token %s, %s: %d, want 403", tt.token, tt.need, e.Code.Status)
			}
		}
	}
	// A token cannot reach another repository through the token endpoint
	// either.
	tok := f.accessToken(basic("rw"), "repository:app:pull,push,delete", "repository:other:pull")
	if got, want := accessOf(t, tok), []string{"repository:app:pull,push"}; !reflect.DeepEqual(got, want) {
		t.Errorf("token access %v, want %v", got, want)
	}
	if _, e := f.authorize(call{bearer: tok}, pull("other")); e == nil || e.Code.Status != http.StatusForbidden {
		t.Errorf("bearer of token rw on other: %v, want 403", e)
	}
	if _, e := f.authorize(call{bearer: tok}, push("app")); e != nil {
		t.Errorf("bearer of token rw, push app: %v", e)
	}

	t.Run("invalid scope maps", func(t *testing.T) {
		for _, actions := range [][]string{
			nil,
			{"repositories/app/content/execute"},
			{"repositories/app"},
			{"app/content/read"},
			{"repositories/App/content/read"},
			{"repositories//content/read"},
		} {
			if _, _, err := f.dir.PutScopeMap(ctx, auth.ScopeMap{Name: "bad", Actions: actions}); err == nil {
				t.Errorf("PutScopeMap(%q) accepted", actions)
			}
		}
	})

	t.Run("disabled token", func(t *testing.T) {
		tok := f.accessToken(basic("ro"), "repository:app:pull")
		_, _, err := f.dir.PutToken(ctx, auth.Token{Name: "ro", ScopeMap: "ro-map", Status: auth.TokenDisabled})
		f.must(err)
		for _, c := range []call{basic("ro"), {bearer: tok}} {
			_, e := f.authorize(c, pull("app"))
			wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
		}
		w := f.tokenGET(basic("ro"), url.Values{"scope": {"repository:app:pull"}})
		if w.Code != http.StatusUnauthorized {
			t.Errorf("token endpoint for a disabled token: %d", w.Code)
		}
		_, _, err = f.dir.PutToken(ctx, auth.Token{Name: "ro", ScopeMap: "ro-map", Status: auth.TokenEnabled})
		f.must(err)
		if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
			t.Errorf("re-enabled: %v", e)
		}
	})

	t.Run("passwords", func(t *testing.T) {
		f.token("two", "repositories/app/content/read")
		f.must(f.dir.SetTokenPasswordHashForTest(ctx, "two", "password2", cheapHash(t, "second"), nil))
		for _, pw := range []string{password("two"), "second"} {
			if _, e := f.authorize(call{user: "two", pass: pw}, pull("app")); e != nil {
				t.Errorf("password %q: %v", pw, e)
			}
		}
		if _, e := f.authorize(call{user: "two", pass: "third"}, pull("app")); e == nil {
			t.Error("a wrong password works")
		}
		past := time.Now().Add(-time.Hour)
		f.must(f.dir.SetTokenPasswordHashForTest(ctx, "two", "password2", cheapHash(t, "second"), &past))
		_, e := f.authorize(call{user: "two", pass: "second"}, pull("app"))
		wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
		if _, e := f.authorize(call{user: "two", pass: password("two")}, pull("app")); e != nil {
			t.Errorf("password1 after password2 expired: %v", e)
		}
		tok, _ := f.dir.Snapshot().Token("two")
		if names := []string{tok.Passwords[0].Name, tok.Passwords[1].Name}; !slices.Equal(names, []string{"password1", "password2"}) {
			t.Errorf("passwords %v", names)
		}
	})

	t.Run("usernames are unique", func(t *testing.T) {
		if _, _, err := f.dir.PutIdentity(ctx, auth.Identity{Name: "rw", Enabled: true}); err == nil {
			t.Error("an identity took a token's name")
		}
		f.identity("taken", auth.KindUser)
		if _, _, err := f.dir.PutToken(ctx, auth.Token{Name: "taken", ScopeMap: "rw-map"}); err == nil {
			t.Error("a token took an identity's name")
		}
	})
}

// TestGenerateTokenPassword uses the real password generator (bcrypt at
// cost 11): two passwords work side by side, and regenerating password1
// invalidates the old one.
func TestGenerateTokenPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	_, _, err := f.dir.PutScopeMap(ctx, auth.ScopeMap{Name: "m", Actions: []string{"repositories/app/content/read"}})
	f.must(err)
	_, _, err = f.dir.PutToken(ctx, auth.Token{Name: "ci", ScopeMap: "m"})
	f.must(err)
	// password2 is cheap; password1 comes from the generator.
	f.must(f.dir.SetTokenPasswordHashForTest(ctx, "ci", "password2", cheapHash(t, "pw2"), nil))
	old, err := f.dir.GenerateTokenPassword(ctx, "ci", "password1", 0)
	f.must(err)
	if old.Name != "password1" || len(old.Value) < 32 || old.ExpiresAt != nil {
		t.Fatalf("GenerateTokenPassword = %+v", old)
	}
	for _, pw := range []string{old.Value, "pw2"} {
		if _, e := f.authorize(call{user: "ci", pass: pw}, pull("app")); e != nil {
			t.Fatalf("password %q: %v", pw, e)
		}
	}
	fresh, err := f.dir.GenerateTokenPassword(ctx, "ci", "", 0) // password1 by default
	f.must(err)
	if fresh.Name != "password1" || fresh.Value == old.Value {
		t.Fatalf("regenerated %+v", fresh)
	}
	// The old value was verified and cached; it must not survive.
	_, e := f.authorize(call{user: "ci", pass: old.Value}, pull("app"))
	wantError(t, e, http.StatusUnauthorized, "UNAUTHORIZED", "", "authn", "InvalidCredentials")
	if _, e := f.authorize(call{user: "ci", pass: "pw2"}, pull("app")); e != nil {
		t.Errorf("password2 after regenerating password1: %v", e)
	}
	if _, err := f.dir.GenerateTokenPassword(ctx, "ci", "password3", 0); err == nil {
		t.Error("password3 accepted")
	}
	if _, err := f.dir.GenerateTokenPassword(ctx, "ci", "password2", -1); err == nil {
		t.Error("a negative lifetime accepted")
	}
	tok, _ := f.dir.Snapshot().Token("ci")
	if len(tok.Passwords) != 2 {
		t.Errorf("passwords %+v", tok.Passwords)
	}
}
