package notify

import (
	"testing"
	"time"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name  string
		ep    Endpoint
		event Event
		want  bool
	}{
		{"no filter", Endpoint{}, Event{Action: ActionPush, Target: Target{Repository: "x"}}, true},
		{"glob prefix", Endpoint{Repositories: []string{"app/*"}}, Event{Action: ActionPush, Target: Target{Repository: "app/web"}}, true},
		{"glob nested", Endpoint{Repositories: []string{"app/*"}}, Event{Action: ActionPush, Target: Target{Repository: "app/team/web"}}, true},
		{"glob other", Endpoint{Repositories: []string{"app/*"}}, Event{Action: ActionPush, Target: Target{Repository: "apps/web"}}, false},
		{"glob is whole name", Endpoint{Repositories: []string{"app"}}, Event{Action: ActionPush, Target: Target{Repository: "app/web"}}, false},
		{"glob question", Endpoint{Repositories: []string{"team?/web"}}, Event{Action: ActionPush, Target: Target{Repository: "team1/web"}}, true},
		{"glob dot is literal", Endpoint{Repositories: []string{"a.b"}}, Event{Action: ActionPush, Target: Target{Repository: "axb"}}, false},
		{"second glob", Endpoint{Repositories: []string{"a", "b/*"}}, Event{Action: ActionPush, Target: Target{Repository: "b/c"}}, true},
		{"regexp", Endpoint{RepositoryRegexp: "(web|api)/[a-z]+"}, Event{Action: ActionPush, Target: Target{Repository: "api/users"}}, true},
		{"regexp anchored", Endpoint{RepositoryRegexp: "web"}, Event{Action: ActionPush, Target: Target{Repository: "app/web"}}, false},
		{"glob or regexp", Endpoint{Repositories: []string{"a"}, RepositoryRegexp: "b.*"}, Event{Action: ActionPush, Target: Target{Repository: "bc"}}, true},
		{"action", Endpoint{Actions: []string{ActionDelete}}, Event{Action: ActionPush, Target: Target{Repository: "x"}}, false},
		{"ignored media type", Endpoint{IgnoredMediaTypes: []string{"application/octet-stream"}}, Event{Action: ActionPush, Target: Target{Repository: "x", MediaType: "application/octet-stream"}}, false},
		{"other media type", Endpoint{IgnoredMediaTypes: []string{"application/octet-stream"}}, Event{Action: ActionPush, Target: Target{Repository: "x", MediaType: "application/vnd.oci.image.manifest.v1+json"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFilter(tt.ep)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.match(&tt.event); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoffDoublesWithJitterUpToTheCap(t *testing.T) {
	ep := &endpoint{Endpoint: Endpoint{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for attempt, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 100 {
			if d := ep.backoff(attempt); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

func TestSignature(t *testing.T) {
	// echo -n '{"events":[]}' | openssl dgst -sha256 -hmac s3cret
	const want = "sha256=66e558d03919c6fa065e88fe40f06defe8192f6a30d4aa72fa79bdd775efa48c"
	got := Sign([]byte("s3cret"), []byte(`{"events":[]}`))
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if !Verify([]byte("s3cret"), []byte(`{"events":[]}`), got) || Verify([]byte("s3cret"), []byte(`{"events":[1]}`), got) {
		t.Error("Verify disagrees with Sign")
	}
}

func TestNewIDIsUUIDv4(t *testing.T) {
	id := NewID()
	if len(id) != 36 || id[14] != '4' || id[8] != '-' || id == NewID() {
		t.Errorf("NewID() = %q", id)
	}
}
