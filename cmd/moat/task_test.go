package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/moat-registry/moat/auth"
)

// newTasksService creates a tasks instance with a system-assigned
// identity through the CLI and gives the identity roles through the API.
func newTasksService(t *testing.T, ts *testServer, name string, roles map[string]string) {
	t.Helper()
	ts.admin(t, "service", "create", name, "--type", "tasks", "--identity", "system")
	t.Cleanup(func() { runCLI(t, ts.adminEnv(t), "", "service", "delete", name) })
	for role, scope := range roles {
		ts.api(t, http.MethodPut, "/role-assignments/"+newUUID(), map[string]string{"principal": "tasks-" + name, "role": role, "scope": scope})
	}
}

// TestPurgeTask creates, lists, shows, runs, updates and deletes a purge
// task and checks which tags the run left.
func TestPurgeTask(t *testing.T) {
	ts := sharedServer(t)
	newTasksService(t, ts, "tpurge", map[string]string{"AcrDelete": "repositories/purge/app"})
	reg := ts.registry(t, true)
	for _, tag := range []string{"v1", "v2", "v3", "v4", "keep-me"} {
		reg.pushImage("purge/app", tag, tag)
	}

	r := ts.admin(t, "task", "create", "tpurge", "prune", "--type", "purge", "--repository", "purge/app",
		"--older-than", "0", "--filter", "v.*", "--keep", "2")
	if !hasRow(r.stdout, "prune", "purge", "-", "true", "purge/app:") {
		t.Errorf("create:\n%s", r.stdout)
	}
	ts.adminFails(t, "already exists", "task", "create", "tpurge", "prune", "--type", "purge", "--repository", "purge/app", "--older-than", "1d")

	r = ts.admin(t, "task", "list", "tpurge", "-o", "json")
	sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/services/tpurge/tasks", nil))
	r = ts.admin(t, "task", "show", "tpurge", "prune", "-o", "json")
	task := decodeOut[auth.Task](t, r)
	want := auth.PurgeTask{Repository: "purge/app", Filter: "v.*", OlderThan: "0", Keep: 2}
	if task.Type != auth.TaskPurge || task.Purge == nil || *task.Purge != want || task.Copy != nil || !task.Enabled {
		t.Errorf("show: %+v", task)
	}

	r = ts.admin(t, "task", "run", "tpurge", "prune")
	if rows := tableRows(r.stdout); len(rows) != 2 || !slices.Equal(rows[1][1:], []string{"purge", "Succeeded", "tpurge/prune", "purge/app", "2/2", "deleted", "-", "-"}) {
		t.Errorf("run:\n%s", r.stdout)
	}
	if got, want := reg.tags("purge/app"), []string{"keep-me", "v3", "v4"}; !slices.Equal(got, want) {
		t.Errorf("tags after the purge: %v, want %v", got, want)
	}

	r = ts.admin(t, "task", "list", "tpurge")
	rows := tableRows(r.stdout)
	if len(rows) != 2 || !slices.Contains(rows[1], "Succeeded") || !slices.Contains(rows[0], "LAST") {
		t.Errorf("list after the run shows no last run:\n%s", r.stdout)
	}

	// update changes only what a flag names.
	ts.admin(t, "task", "update", "tpurge", "prune", "--keep", "1", "--schedule", "0 3 * * *")
	task = decodeOut[auth.Task](t, ts.admin(t, "task", "show", "tpurge", "prune", "-o", "json"))
	want.Keep = 1
	if *task.Purge != want || task.Schedule != "0 3 * * *" || task.LastRun == nil || task.LastRun.Status != "Succeeded" {
		t.Errorf("after update: %+v %+v", task, task.Purge)
	}
	ts.admin(t, "task", "update", "tpurge", "prune", "--schedule", "")
	task = decodeOut[auth.Task](t, ts.admin(t, "task", "show", "tpurge", "prune", "-o", "json"))
	if task.Schedule != "" {
		t.Errorf("--schedule \"\" left %q", task.Schedule)
	}
	ts.admin(t, "task", "run", "tpurge", "prune")
	if got, want := reg.tags("purge/app"), []string{"keep-me", "v4"}; !slices.Equal(got, want) {
		t.Errorf("tags after the second purge: %v, want %v", got, want)
	}

	ts.admin(t, "task", "delete", "tpurge", "prune")
	ts.adminFails(t, "404", "task", "show", "tpurge", "prune")
	ts.adminFails(t, "404", "task", "run", "tpurge", "prune")
}

// TestCopyTask copies an image within the registry as the task's
// identity, and fails with one line when the identity lacks a role.
func TestCopyTask(t *testing.T) {
	ts := sharedServer(t)
	newTasksService(t, ts, "tcopy", map[string]string{"AcrPush": "repositories/taskcopy/*"})
	reg := ts.registry(t, true)
	img := reg.pushImage("taskcopy/app", "1", "copy", layer("x", 5000), layer("y", 9000))

	ts.admin(t, "task", "create", "tcopy", "mirror", "--type", "copy", "--source", "taskcopy/app:1", "--target", "taskcopy/copy:1")
	r := ts.admin(t, "task", "run", "tcopy", "mirror")
	if r.stdout != img.digest.String()+"\n" {
		t.Errorf("run: stdout %q, want the digest", r.stdout)
	}
	if !strings.Contains(r.stderr, "4/4 blobs") {
		t.Errorf("run: no complete progress on stderr: %q", r.stderr)
	}
	if got := reg.manifestDigest("taskcopy/copy", "1"); got != img.digest {
		t.Errorf("taskcopy/copy:1 is %q, want %s", got, img.digest)
	}

	// Outside the identity's scope: the run fails, and the task says why.
	ts.admin(t, "task", "update", "tcopy", "mirror", "--target", "elsewhere/copy:1")
	ts.adminFails(t, "task tcopy/mirror failed: ", "task", "run", "tcopy", "mirror")
	task := decodeOut[auth.Task](t, ts.admin(t, "task", "show", "tcopy", "mirror", "-o", "json"))
	if task.LastRun == nil || task.LastRun.Status != "Failed" || task.LastRun.Error == "" {
		t.Errorf("last run after a failure: %+v", task.LastRun)
	}
	r = ts.admin(t, "task", "show", "tcopy", "mirror")
	if !hasRow(r.stdout, "mirror", "copy", "-", "true", "taskcopy/app:1", "->", "elsewhere/copy:1") || !strings.Contains(r.stdout, "Failed") {
		t.Errorf("show after a failure:\n%s", r.stdout)
	}
	if reg.manifestDigest("elsewhere/copy", "1") != "" {
		t.Error("elsewhere/copy:1 was written without a role")
	}
}

func TestTaskFlags(t *testing.T) {
	ts := sharedServer(t)
	newTasksService(t, ts, "tflags", nil)
	ts.admin(t, "task", "create", "tflags", "c", "--type", "copy", "--source", "a:1", "--target", "b:1")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no type", []string{"task", "create", "tflags", "x", "--source", "a:1"}, "--source applies to copy tasks: give --type copy"},
		{"unknown type", []string{"task", "create", "tflags", "x", "--type", "build"}, `--type "build": expected copy or purge`},
		{"copy without target", []string{"task", "create", "tflags", "x", "--type", "copy", "--source", "a:1"}, "needs --source and --target"},
		{"purge without age", []string{"task", "create", "tflags", "x", "--type", "purge", "--repository", "a"}, "needs --repository and --older-than"},
		{"purge flag on a copy", []string{"task", "create", "tflags", "x", "--type", "copy", "--source", "a:1", "--target", "b:1", "--keep", "1"}, "--keep applies to purge tasks, and this one is a copy task"},
		{"server checks the schedule", []string{"task", "create", "tflags", "x", "--type", "copy", "--source", "a:1", "--target", "b:1", "--schedule", "every day"}, "schedule"},
		{"server checks the age", []string{"task", "create", "tflags", "x", "--type", "purge", "--repository", "a", "--older-than", "old"}, "olderThan"},
		{"update without flags", []string{"task", "update", "tflags", "c"}, "nothing to change"},
		{"update across types", []string{"task", "update", "tflags", "c", "--older-than", "1d"}, "--older-than applies to purge tasks, and this one is a copy task"},
		{"change of type needs the new fields", []string{"task", "update", "tflags", "c", "--type", "purge"}, "needs --repository and --older-than"},
		{"no such service", []string{"task", "list", "no-such-service"}, "404"},
		{"not a tasks instance", []string{"task", "create", "tflags-none", "x", "--type", "copy", "--source", "a:1", "--target", "b:1"}, "404"},
		{"run without identity roles is still a run", []string{"task", "run", "tflags", "c"}, "task tflags/c failed: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.adminFails(t, tt.want, tt.args...)
		})
	}
}
