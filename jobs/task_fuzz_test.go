package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/oci"
)

// FuzzParseImageRef: any import source or task reference parses without
// a panic; what parses names a valid repository and a reference, a host
// when one is required, and prints back to a string that parses to the
// same reference.
func FuzzParseImageRef(f *testing.F) {
	for _, s := range []string{
		"registry.example.com/app:1", "localhost:5000/a/b@sha256:" + strings.Repeat("a", 64), "app:1", "app",
		"docker.io/library/alpine:3.20", "host:port/app:tag@sha256:" + strings.Repeat("0", 64), "/app:1", "a//b:1",
		"HOST.example.com/App:1", "127.0.0.1:5000/x:" + strings.Repeat("t", 128), ":1", "@sha256:", "a/b/c/d/e:f",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, requireHost bool) {
		ref, err := parseImageRef(s, requireHost)
		if err != nil {
			return
		}
		if !oci.ValidRepository(ref.Repository) || ref.Reference == "" {
			t.Fatalf("parseImageRef(%q) = %+v: invalid repository or no reference", s, ref)
		}
		if requireHost && ref.Host == "" {
			t.Fatalf("parseImageRef(%q, true) = %+v: no host", s, ref)
		}
		back, err := parseImageRef(ref.String(), requireHost)
		if err != nil || back != ref {
			t.Fatalf("parseImageRef(%q) = %+v, printed %q, parsed back %+v, %v", s, ref, ref.String(), back, err)
		}
	})
}

// FuzzParseChallenge: a remote registry's WWW-Authenticate header parses
// without a panic into lower-case parameter names.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a:pull"`,
		`Bearer realm=https://x,service=y`, `Basic realm="x"`, `Bearer `, `Bearer realm="unterminated`, `Bearer ,,,=,"`,
		`bearer REALM="x", Service="y"`, `Bearer realm="a\"b"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		for k := range parseChallenge(h) {
			if k != strings.ToLower(k) {
				t.Fatalf("parseChallenge(%q): key %q is not lower case", h, k)
			}
		}
	})
}

// FuzzCheckTask: any task definition from the admin API is checked
// without a panic; an accepted schedule computes its next run, and an
// accepted purge never has a negative age (which would put the cutoff in
// the future and purge everything). testdata/fuzz/FuzzCheckTask keeps
// the two crashers it found: "TZ=UTC" (a panic in the cron parser) and
// "200000d" (an age that overflowed to a negative one).
func FuzzCheckTask(f *testing.F) {
	type seed struct {
		typ, schedule, source, target, repo, filter, olderThan string
		keep                                                   int
	}
	for _, s := range []seed{
		{"copy", "0 3 * * *", "registry.example.com/app:1", "app:1", "", "", "", 0},
		{"purge", "@daily", "", "", "app", "v.*", "7d", 3},
		{"purge", "@every 1h", "", "", "app", "", "0", 0},
		{"purge", "TZ=UTC 0 3 * * *", "", "", "app", "", "12h", 0},
		{"purge", "CRON_TZ=Europe/Paris", "", "", "app", "", "12h", 0},
		{"purge", "", "", "", "app", "", "1000000000d", 0},
		{"purge", "", "", "", "app", "", "-1d", 0},
		{"purge", "*/0 * * * *", "", "", "app", ")|(", "1d", -1},
		{"copy", "60 24 32 13 8", "app:1", "app:1", "", "", "", 0},
		{"copy", "@every -1s", "a", "b:1", "", "", "", 0},
	} {
		f.Add(s.typ, s.schedule, s.source, s.target, s.repo, s.filter, s.olderThan, s.keep)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, typ, schedule, source, target, repo, filter, olderThan string, keep int) {
		task := auth.Task{Name: "t", Service: "s", Type: typ, Schedule: schedule, Enabled: true}
		switch typ {
		case auth.TaskCopy:
			task.Copy = &auth.CopyTask{Source: source, Target: target}
		case auth.TaskPurge:
			task.Purge = &auth.PurgeTask{Repository: repo, Filter: filter, OlderThan: olderThan, Keep: keep}
		}
		if err := CheckTask(&task); err != nil {
			return
		}
		if schedule != "" {
			s, err := parseSchedule(schedule)
			if err != nil {
				t.Fatalf("CheckTask accepted schedule %q that parseSchedule refuses: %v", schedule, err)
			}
			if next := s.Next(now); !next.IsZero() && !next.After(now) {
				t.Fatalf("schedule %q: next run %v is not after %v", schedule, next, now)
			}
		}
		if task.Purge != nil {
			plan, err := purgeParams(task.Purge)
			if err != nil {
				t.Fatalf("CheckTask accepted a purge that purgeParams refuses: %v", err)
			}
			if plan.olderThan < 0 {
				t.Fatalf("purge olderThan %q is accepted as %v: the cutoff would be in the future", olderThan, plan.olderThan)
			}
		}
	})
}
