package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// propagationDeadline bounds the wait for a change to reach a replica.
// The target is one second; the test asserts only this generous
// bound (a loaded CI machine under -race), and logs the figures.
const propagationDeadline = 10 * time.Second

// pollPause is the pause between two polls of a replica waiting for a
// change: it keeps the pollers from hogging the (shared, often two) cores
// the replicas need to apply the change, at the cost of up to that much
// added to a logged delay (the figures are logged, never asserted).
const pollPause = time.Millisecond

// keyRotations is how many key rotations the token step makes.
const keyRotations = 3

// propagationRounds is how many changes of each kind are measured.
const propagationRounds = 20

// replicasPolicyInStep changes settings through A and measures how long
// B and C take to enforce them: public network access (toggled), an
// identity (disabled and enabled again) and a role assignment (removed
// and assigned again).
func replicasPolicyInStep(t *testing.T, rs *replicaSet, _ *roundRobin) {
	A := rs.A()
	pc := newProber()

	// Public network access: Disabled refuses the admin's GET /v2/ from
	// 127.0.0.1 with 403; Enabled lets it through.
	access := []string{"Disabled", "Enabled"}
	m := rs.measure(t, "publicNetworkAccess", propagationRounds, func(t *testing.T, i int) {
		body := fmt.Sprintf(`{"properties":{"publicNetworkAccess":%q}}`, access[i%2])
		a := A.send(t, rs, http.MethodPatch, "/admin/v1/registry", http.Header{"Content-Type": {"application/merge-patch+json"}}, []byte(body))
		if a.status != http.StatusOK {
			t.Fatalf("PATCH /admin/v1/registry %s on A: %s", body, a)
		}
	}, func(r *replica, i int) (bool, error) {
		status, err := pc.status(r.URL+"/v2/", "admin", rs.password)
		if i%2 == 0 {
			return status == http.StatusForbidden, err
		}
		return status == http.StatusOK, err
	})
	m.log(t)
	rs.wantSameSettingsVersion(t)

	// An identity: bob with AcrPull at /, disabled and enabled through A;
	// his Basic login on B and C is refused (401) and accepted again.
	bob := rs.createIdentity(t, "bob")
	for _, r := range rs.replicas {
		if st, err := pc.status(r.URL+"/v2/", "bob", bob); err != nil || st != http.StatusOK {
			t.Fatalf("GET /v2/ as bob on %s: %d %v", r.name, st, err)
		}
	}
	const identityRounds = propagationRounds / 2
	m = rs.measure(t, "identity enabled", identityRounds, func(t *testing.T, i int) {
		body := fmt.Sprintf(`{"enabled":%t}`, i%2 == 1)
		if a := A.send(t, rs, http.MethodPut, "/admin/v1/identities/bob", http.Header{"Content-Type": {"application/json"}}, []byte(body)); a.status != http.StatusOK {
			t.Fatalf("PUT /admin/v1/identities/bob %s on A: %s", body, a)
		}
	}, func(r *replica, i int) (bool, error) {
		status, err := pc.status(r.URL+"/v2/", "bob", bob)
		if i%2 == 0 {
			return status == http.StatusUnauthorized, err
		}
		return status == http.StatusOK, err
	})
	m.log(t)

	// A role assignment: bob's AcrPull removed and assigned again through
	// A; his pull of repl/app on B and C is refused and allowed again.
	m = rs.measure(t, "role assignment", identityRounds, func(t *testing.T, i int) {
		if i%2 == 0 {
			if a := A.send(t, rs, http.MethodDelete, "/admin/v1/role-assignments/bob-pull", nil, nil); a.status != http.StatusNoContent {
				t.Fatalf("DELETE role assignment bob-pull on A: %s", a)
			}
			return
		}
		rs.assignPull(t, "bob")
	}, func(r *replica, i int) (bool, error) {
		status, err := pc.status(r.URL+"/v2/repl/app/tags/list", "bob", bob)
		if i%2 == 0 {
			return status == http.StatusForbidden || status == http.StatusUnauthorized, err
		}
		return status == http.StatusOK, err
	})
	m.log(t)
	rs.wantSameSettingsVersion(t)
}

// prober sends the polls of a measurement, over kept-alive connections.
type prober struct{ hc *http.Client }

func newProber() *prober {
	return &prober{hc: &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8},
		Timeout:   10 * time.Second,
	}}
}

// status is the status of GET url as user (Basic). Safe on any goroutine.
func (p *prober) status(url, user, password string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// measurement is how long B and C took to enforce each of a series of
// changes made through A.
type measurement struct {
	what   string
	delays map[string][]time.Duration // replica name → per change
}

// measure makes rounds changes through A with change(i) and, after each
// answer, polls B and C with enforced(r, i) until it reports the change
// in force, recording the time from A's answer to the first enforcing
// answer. A change not enforced within propagationDeadline fails the test.
// A itself must enforce it at once.
func (rs *replicaSet) measure(t *testing.T, what string, rounds int, change func(*testing.T, int), enforced func(*replica, int) (bool, error)) measurement {
	t.Helper()
	m := measurement{what: what, delays: map[string][]time.Duration{}}
	followers := rs.replicas[1:]
	for i := range rounds {
		change(t, i)
		answered := time.Now()
		if ok, err := enforced(rs.A(), i); err != nil || !ok {
			t.Fatalf("%s change %d: A, which made it, does not enforce it at once (%v)", what, i, err)
		}
		delays := make([]time.Duration, len(followers))
		errs := make([]error, len(followers))
		var wg sync.WaitGroup
		for j, r := range followers {
			wg.Go(func() {
				for {
					ok, err := enforced(r, i)
					if err == nil && ok {
						delays[j] = time.Since(answered)
						return
					}
					if time.Since(answered) > propagationDeadline {
						errs[j] = fmt.Errorf("%s change %d: replica %s does not enforce it %s after A's answer (last error: %v)", what, i, r.name, propagationDeadline, err)
						return
					}
					time.Sleep(pollPause)
				}
			})
		}
		wg.Wait()
		for j, r := range followers {
			if errs[j] != nil {
				t.Fatal(errs[j])
			}
			m.delays[r.name] = append(m.delays[r.name], delays[j])
		}
	}
	return m
}

// log writes the median and maximum delay per replica and overall.
func (m measurement) log(t testing.TB) {
	t.Helper()
	var all []time.Duration
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m.delays)) {
		ds := m.delays[name]
		all = append(all, ds...)
		parts = append(parts, fmt.Sprintf("%s median %s max %s", name, median(ds), slices.Max(ds)))
	}
	t.Logf("propagation of %s (%d changes through A): %s; all: median %s, max %s",
		m.what, len(all)/max(len(m.delays), 1), strings.Join(parts, "; "), median(all), slices.Max(all))
}

// median of ds (rounded to 10 µs).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Microsecond)
}

// wantSameSettingsVersion checks that every replica's /readyz reports the
// same settings version.
func (rs *replicaSet) wantSameSettingsVersion(t testing.TB) {
	t.Helper()
	var versions []string
	for _, r := range rs.replicas {
		a := sendAs(t, r.URL, http.MethodGet, "/readyz", "", "", nil, nil)
		v := a.header.Get("X-Moat-Settings-Version")
		if a.status != http.StatusOK || v == "" {
			t.Fatalf("GET /readyz on %s: %s, settings version %q", r.name, a, v)
		}
		versions = append(versions, r.name+" "+v)
		if v != strings.TrimPrefix(versions[0], rs.replicas[0].name+" ") {
			t.Errorf("settings versions differ: %s", strings.Join(versions, ", "))
		}
	}
	t.Logf("/readyz settings versions: %s", strings.Join(versions, ", "))
}

// createIdentity creates a user identity with AcrPull at / through A and
// returns its secret.
func (rs *replicaSet) createIdentity(t testing.TB, name string) string {
	t.Helper()
	A := rs.A()
	if a := A.send(t, rs, http.MethodPut, "/admin/v1/identities/"+name, http.Header{"Content-Type": {"application/json"}}, []byte(`{}`)); a.status != http.StatusCreated {
		t.Fatalf("PUT /admin/v1/identities/%s on A: %s", name, a)
	}
	a := A.send(t, rs, http.MethodPost, "/admin/v1/identities/"+name+"/secrets", http.Header{"Content-Type": {"application/json"}}, []byte(`{}`))
	var sec struct {
		Value string `json:"value"`
	}
	mustDecode(t, "POST secrets", a, &sec)
	if a.status != http.StatusCreated || sec.Value == "" {
		t.Fatalf("POST /admin/v1/identities/%s/secrets on A: %s", name, a)
	}
	rs.assignPull(t, name)
	return sec.Value
}

// assignPull gives name AcrPull at / through A, as assignment <name>-pull.
func (rs *replicaSet) assignPull(t testing.TB, name string) {
	t.Helper()
	body := fmt.Sprintf(`{"principal":%q,"role":"AcrPull","scope":"/"}`, name)
	a := rs.A().send(t, rs, http.MethodPut, "/admin/v1/role-assignments/"+name+"-pull", http.Header{"Content-Type": {"application/json"}}, []byte(body))
	if a.status != http.StatusCreated && a.status != http.StatusOK {
		t.Fatalf("PUT role assignment %s-pull on A: %s", name, a)
	}
}

// replicasTokens: a token from A verifies on B and C; after each key
// rotation through B, C signs with the new key and A verifies it.
func replicasTokens(t *testing.T, rs *replicaSet, _ *roundRobin) {
	A, B, C := rs.A(), rs.B(), rs.C()
	const scope = "repository:repl/app:pull"
	old := rs.fetchToken(t, A, scope)
	for _, r := range rs.replicas {
		wantBearer(t, r, old, http.StatusOK)
	}

	// Each rotation through B: C signs with the new key as soon as it has
	// reloaded the ring, and A verifies C's token at once, whether or not
	// the change notification has reached it (a key id it does not hold
	// makes it reload the ring).
	cli := (&adminMoat{moatServer: B.moatServer, password: rs.password}).cli(t)
	for round := range keyRotations {
		var rotated struct {
			Kid string `json:"kid"`
		}
		out := cli.run(t, "keys", "rotate", "-o", "json")
		if err := json.Unmarshal([]byte(out), &rotated); err != nil || rotated.Kid == "" {
			t.Fatalf("moat keys rotate through B: %v\n%s", err, out)
		}
		start := time.Now()
		var fresh string
		for {
			fresh = rs.fetchToken(t, C, scope)
			if tokenKid(t, fresh) == rotated.Kid {
				break
			}
			if time.Since(start) > propagationDeadline {
				t.Fatalf("C still signs with key %s %s after the rotation through B (new key %s)", tokenKid(t, fresh), propagationDeadline, rotated.Kid)
			}
			time.Sleep(pollPause)
		}
		t.Logf("rotation %d: C signed with the new key %s %s after B's rotation answered", round+1, rotated.Kid, time.Since(start).Round(10*time.Microsecond))
		wantBearer(t, A, fresh, http.StatusOK)
		wantBearer(t, B, fresh, http.StatusOK)
	}
	// Tokens of retired keys keep verifying until they expire.
	for _, r := range rs.replicas {
		wantBearer(t, r, old, http.StatusOK)
	}
	// A forged signature is refused everywhere.
	forged := old[:len(old)-4] + flip(old[len(old)-4:])
	for _, r := range rs.replicas {
		wantBearer(t, r, forged, http.StatusUnauthorized)
	}
}

// fetchToken gets an access token for scope from r's token endpoint as
// the admin.
func (rs *replicaSet) fetchToken(t testing.TB, r *replica, scope string) string {
	t.Helper()
	a := r.send(t, rs, http.MethodGet, "/oauth2/token?service="+replicaServiceName+"&scope="+scope, nil, nil)
	var tok struct {
		Token string `json:"token"`
	}
	mustDecode(t, "GET /oauth2/token on "+r.name, a, &tok)
	if a.status != http.StatusOK || tok.Token == "" {
		t.Fatalf("GET /oauth2/token on %s: %s", r.name, a)
	}
	return tok.Token
}

// wantBearer GETs repl/app's tags on r with token and wants status.
func wantBearer(t testing.TB, r *replica, token string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/repl/app/tags/list", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("GET tags with a token of key %s on %s: %s %s, want %d", tokenKid(t, token), r.name, resp.Status, body, want)
	}
}

// tokenKid is the kid of a JWT's header.
func tokenKid(t testing.TB, jwt string) string {
	t.Helper()
	head, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h.Kid
}

// flip changes every character of a base64url string to another one.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}
