package e2e

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// refusedRE matches what the clients print when the registry refuses a
// request: the error code, the status or its text.
var refusedRE = regexp.MustCompile(`(?i)denied|unauthori[sz]ed|forbidden|\b40[13]\b|authentication required`)

// wantRefused fails the test unless out reads as a refusal by the
// registry (and not, say, a connection error).
func wantRefused(t testing.TB, what, out string) {
	t.Helper()
	if !refusedRE.MatchString(out) {
		t.Errorf("%s failed, but not with a refusal by the registry:\n%s", what, out)
		return
	}
	t.Logf("%s: refused: %s", what, lastLine(out))
}

// wantMessage fails the test unless the output of a failed command
// contains msg, and logs the line that does.
func wantMessage(t testing.TB, what, out, msg string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	if i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, msg) }); i >= 0 {
		t.Logf("%s: %s", what, strings.TrimSpace(lines[i]))
		return
	}
	t.Errorf("%s failed without %q:\n%s", what, msg, out)
}

// lastLine is the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestLogin logs every client in to a moat whose dev profile is off, and
// pushes and pulls with each kind of credential:
//
//   - a user identity with a secret and AcrPush on repositories/app/*:
//     the pushed, served and pulled digests are one;
//   - a repository-scoped token whose scope map allows team/* (content
//     read and write, metadata read): it pushes and pulls in team/…, and
//     may neither push to nor pull from app/…;
//   - no credentials: a pull is refused while anonymousPullEnabled is
//     false; after `moat update --anonymous-pull-enabled true` the same
//     pull works, and a push is still refused.
//
// A wrong password fails `docker login` (and `oras login`) with the
// registry's message. crane's login does not check the password, so for
// crane the push and pull after it are the proof.
func TestLogin(t *testing.T) {
	m := startSecuredMoat(t, "")
	aliceSecret := m.createUser(t, "alice", "AcrPush", "repositories/app/*")
	m.moat(t, "scope-map", "create", "team-rw", "--repository", "team/*",
		"--actions", "content/read,content/write,metadata/read")
	var tok struct {
		Name      string `json:"name"`
		Passwords []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"passwords"`
	}
	m.moatJSON(t, &tok, "token", "create", "teamtok", "--scope-map", "team-rw")
	if len(tok.Passwords) != 2 || tok.Passwords[0].Value == "" {
		t.Fatalf("moat token create printed %+v, want two passwords", tok)
	}
	tokenPassword := tok.Passwords[1].Value // either works; take the second
	// Basic auth straight on /v2/. It also pays, once each, the bcrypt
	// comparison that every client's first request would otherwise pay at
	// the same moment (seconds each under -race).
	for _, c := range []struct{ user, password string }{{"alice", aliceSecret}, {"teamtok", tokenPassword}} {
		if a := get(t, m.URL+"/v2/", c.user, c.password, nil); a.status != http.StatusOK {
			t.Fatalf("GET /v2/ with Basic auth as %s: %s", c.user, a)
		}
	}

	t.Run("credentials", func(t *testing.T) {
		for _, k := range clientKinds {
			t.Run(k.name, func(t *testing.T) {
				t.Parallel()
				appRepo, teamRepo := "app/"+k.name, "team/"+k.name

				user := k.newDriver(t)
				user.cli().logVersion(t)
				login(t, user, m.Host, "alice", aliceSecret)
				pushed := push(t, user, m.ref(appRepo+":1"))
				if served := m.servedDigest(t, appRepo, "1"); served != pushed {
					t.Fatalf("%s pushed %s as alice, moat serves %s", k.name, pushed, served)
				}
				if pulled := pull(t, user, m.ref(appRepo+":1")); pulled != pushed {
					t.Errorf("%s pulled %s as alice, pushed %s", k.name, pulled, pushed)
				}

				team := k.newDriver(t)
				login(t, team, m.Host, "teamtok", tokenPassword)
				pushed = push(t, team, m.ref(teamRepo+":1"))
				if served := m.servedDigest(t, teamRepo, "1"); served != pushed {
					t.Fatalf("%s pushed %s with the token, moat serves %s", k.name, pushed, served)
				}
				if pulled := pull(t, team, m.ref(teamRepo+":1")); pulled != pushed {
					t.Errorf("%s pulled %s with the token, pushed %s", k.name, pulled, pushed)
				}
				wantRefused(t, "a push to app/ with the team token", pushRefused(t, team, m.ref(appRepo+":token")))
				wantRefused(t, "a pull from app/ with the team token", pullRefused(t, team, m.ref(appRepo+":1")))

				anonymous := k.newDriver(t)
				wantRefused(t, "an anonymous pull", pullRefused(t, anonymous, m.ref(appRepo+":1")))

				if k.name == "docker" || k.name == "oras" {
					out := loginRefused(t, k.newDriver(t), m.Host, "alice", "not-"+aliceSecret)
					wantMessage(t, k.name+" login with a wrong password", out, "invalid username or password")
				}
			})
		}
	})
	if t.Failed() {
		return
	}

	m.moat(t, "update", "--anonymous-pull-enabled", "true")
	t.Run("anonymous pull enabled", func(t *testing.T) {
		for _, k := range clientKinds {
			t.Run(k.name, func(t *testing.T) {
				t.Parallel()
				appRepo := "app/" + k.name
				anonymous := k.newDriver(t) // a missing client skips first
				served := m.servedDigest(t, appRepo, "1")
				if pulled := pull(t, anonymous, m.ref(appRepo+":1")); pulled != served {
					t.Errorf("%s pulled %s anonymously, moat serves %s", k.name, pulled, served)
				}
				wantRefused(t, "an anonymous push", pushRefused(t, anonymous, m.ref(appRepo+":anonymous")))
			})
		}
	})
}
