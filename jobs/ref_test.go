package jobs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

const sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImageRef(t *testing.T) {
	for _, tc := range []struct {
		in          string
		requireHost bool
		want        imageRef
		err         string // part of the error; "" for none
	}{
		{in: "registry.example.com/app:1", requireHost: true, want: imageRef{"registry.example.com", "app", "1"}},
		{in: "registry.example.com/team/sub/app:v1.2_x-y", want: imageRef{"registry.example.com", "team/sub/app", "v1.2_x-y"}},
		{in: "127.0.0.1:5000/app:1", requireHost: true, want: imageRef{"127.0.0.1:5000", "app", "1"}},
		{in: "[::1]:5000/app:1", want: imageRef{"[::1]:5000", "app", "1"}},
		{in: "localhost/app:1", requireHost: true, want: imageRef{"localhost", "app", "1"}},
		{in: "localhost:5000/app@" + sha, want: imageRef{"localhost:5000", "app", sha}},
		{in: "REG.example.com/app:1", want: imageRef{"REG.example.com", "app", "1"}},
		{in: "ghcr.io/org/app:1@" + sha, want: imageRef{"ghcr.io", "org/app", sha}}, // the digest wins, as in Docker
		// No '.', ':' or localhost in the first component: a repository here.
		{in: "app:1", want: imageRef{"", "app", "1"}},
		{in: "team/app:1", want: imageRef{"", "team/app", "1"}},
		{in: "app@" + sha, want: imageRef{"", "app", sha}},
		{in: "app:1", requireHost: true, err: `"app:1" names no registry`},
		{in: "team/app:1", requireHost: true, err: "names no registry"},
		{in: "registry.example.com/app", err: `"registry.example.com/app" names no tag or digest`},
		{in: "localhost/app", err: `"localhost/app" names no tag or digest`},
		{in: "app:", err: "names no tag or digest"},
		{in: "registry.example.com/App:1", err: `"registry.example.com/App:1" is not a reference`},
		{in: "app@sha256:abc", err: "invalid digest"},
		{in: "app:1:2", err: "invalid tag"},
		{in: ":1", err: "is not a reference"},
		{in: "registry.example.com/", err: "is not a reference"},
		{in: "", err: "is not a reference"},
		{in: "app:" + strings.Repeat("t", 129), err: "invalid tag"},
		// The registry host is checked; user info in it is refused
		// without echoing the password.
		{in: "user:hunter2@registry.example.com/app:1", requireHost: true, err: "holds user info"},
		{in: "token@registry.example.com/app:1", err: "holds user info"},
		{in: "exa mple.com/app:1", requireHost: true, err: "names no valid registry host"},
		{in: "registry.example.com:port/app:1", err: "names no valid registry host"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseImageRef(tc.in, tc.requireHost)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseImageRef(%q) = %+v, %v; want an error containing %q", tc.in, got, err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseImageRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			// String gives a reference that parses back to the same.
			again, err := parseImageRef(got.String(), false)
			if err != nil || again != got {
				t.Errorf("round trip of %q: %q → %+v, %v", tc.in, got.String(), again, err)
			}
		})
	}
}

func TestCheckTask(t *testing.T) {
	copyTask := func(src, dst string) auth.Task {
		return auth.Task{Type: auth.TaskCopy, Copy: &auth.CopyTask{Source: src, Target: dst}}
	}
	purgeTask := func(p auth.PurgeTask) auth.Task { return auth.Task{Type: auth.TaskPurge, Purge: &p} }
	scheduled := func(t auth.Task, s string) auth.Task { t.Schedule = s; return t }
	ok := copyTask("app:1", "mirror/app:1")
	for _, tc := range []struct {
		name string
		task auth.Task
		err  string // part of the message; "" for valid
	}{
		{"copy here", ok, ""},
		{"copy to another registry", copyTask("app:1", "127.0.0.3:5000/app:1"), ""},
		{"copy from another registry", copyTask("registry.example.com/app@"+sha, "app:1"), ""},
		{"copy to itself", copyTask("app:1", "app:1"), "copy: source and target are the same"},
		{"copy to the same name elsewhere", copyTask("app:1", "registry.example.com/app:1"), ""},
		{"copy without copy", auth.Task{Type: auth.TaskCopy}, "copy: a copy task needs"},
		{"copy with purge", auth.Task{Type: auth.TaskCopy, Copy: ok.Copy, Purge: &auth.PurgeTask{Repository: "app", OlderThan: "1d"}}, "and no purge"},
		{"copy bad source", copyTask("App:1", "app:2"), "copy.source:"},
		{"copy source without tag", copyTask("registry.example.com/app", "app:2"), "copy.source:"},
		{"copy bad target", copyTask("app:1", "mirror/app"), "copy.target:"},

		{"purge", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "7d"}), ""},
		{"purge everything", purgeTask(auth.PurgeTask{Repository: "team/app", OlderThan: "0", Filter: "v1\\..*|rc-[0-9]+", Keep: 3, Untagged: true}), ""},
		{"purge hours", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "12h"}), ""},
		{"purge minutes", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "90m"}), ""},
		{"purge bad repository", purgeTask(auth.PurgeTask{Repository: "App", OlderThan: "1d"}), "purge.repository:"},
		{"purge no repository", purgeTask(auth.PurgeTask{OlderThan: "1d"}), "purge.repository:"},
		{"purge bad filter", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "1d", Filter: "v1("}), "purge.filter:"},
		{"purge no age", purgeTask(auth.PurgeTask{Repository: "app"}), "purge.olderThan: required"},
		{"purge bad age", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "7x"}), "purge.olderThan:"},
		{"purge days without number", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "d"}), "purge.olderThan:"},
		{"purge negative days", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "-1d"}), "purge.olderThan:"},
		{"purge negative hours", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "-5h"}), "purge.olderThan:"},
		{"purge negative keep", purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "1d", Keep: -1}), "purge.keep:"},
		{"purge without purge", auth.Task{Type: auth.TaskPurge}, "purge: a purge task needs"},
		{"purge with copy", auth.Task{Type: auth.TaskPurge, Purge: &auth.PurgeTask{Repository: "app", OlderThan: "1d"}, Copy: ok.Copy}, "and no copy"},
		{"unknown type", auth.Task{Type: "build"}, `type: "build" is not copy or purge`},
		{"no type", auth.Task{}, "is not copy or purge"},

		{"daily at 3", scheduled(ok, "0 3 * * *"), ""},
		{"every 5 minutes", scheduled(ok, "*/5 * * * *"), ""},
		{"weekdays", scheduled(ok, "30 2 * * MON-FRI"), ""},
		{"@daily", scheduled(ok, "@daily"), ""},
		{"@hourly", scheduled(ok, "@hourly"), ""},
		{"@every", scheduled(ok, "@every 1s"), ""},
		{"time zone", scheduled(ok, "CRON_TZ=Europe/Paris 0 3 * * *"), ""},
		{"minute 61", scheduled(ok, "61 * * * *"), "schedule:"},
		{"four fields", scheduled(ok, "0 3 * *"), "schedule:"},
		{"six fields", scheduled(ok, "0 0 3 * * *"), "schedule:"},
		{"words", scheduled(ok, "every day"), "schedule:"},
		{"@every nonsense", scheduled(ok, "@every soon"), "schedule:"},
		{"bad schedule on a purge", scheduled(purgeTask(auth.PurgeTask{Repository: "app", OlderThan: "1d"}), "@weekly-ish"), "schedule:"},
		{"30 February", scheduled(ok, "0 0 30 2 *"), `schedule: "0 0 30 2 *" never fires`},
		{"31 April in a time zone", scheduled(ok, "CRON_TZ=Europe/Paris 0 0 31 4 *"), "never fires"},
		{"29 February", scheduled(ok, "0 0 29 2 *"), ""},
		{"copy source with user info", copyTask("user:hunter2@registry.example.com/app:1", "app:1"), "copy.source: the registry host holds user info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTask(&tc.task)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("CheckTask: %v", err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("CheckTask = %v; want an InvalidError containing %q", err, tc.err)
			}
		})
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "7x", "-1d", "-1h", "1w", "7 d"} {
		if got, err := parseAge(in); err == nil {
			t.Errorf("parseAge(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{`Bearer realm="http://r/oauth2/token",service="127.0.0.3:5000"`, map[string]string{"realm": "http://r/oauth2/token", "service": "127.0.0.3:5000"}},
		{`bearer Realm="https://r/t", service="svc", scope="repository:a:pull,push"`, map[string]string{"realm": "https://r/t", "service": "svc", "scope": "repository:a:pull,push"}},
		{`Bearer realm=https://r/t,service=svc`, map[string]string{"realm": "https://r/t", "service": "svc"}},
		{`Basic realm="moat"`, map[string]string{}},
		{`Bearer realm="unterminated`, map[string]string{}},
		{``, map[string]string{}},
	} {
		got := parseChallenge(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("parseChallenge(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("parseChallenge(%q)[%s] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}
