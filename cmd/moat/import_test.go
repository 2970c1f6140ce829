package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/moat-registry/moat/jobs"
)

// TestImport imports an image from a second server (dev mode, plain
// HTTP) into the shared one and checks the digest, the progress and the
// content.
func TestImport(t *testing.T) {
	ts, src := sharedServer(t), sourceServer(t)
	img := src.registry(t, false).pushImage("lib/app", "1", "import", layer("a", 3000), layer("b", 70000))
	reg := ts.registry(t, true)

	t.Run("waits and prints the digest", func(t *testing.T) {
		r := ts.admin(t, "import", "--source", src.host()+"/lib/app:1", "--image", "imported/app:1", "--plain-http")
		if r.stdout != img.digest.String()+"\n" {
			t.Errorf("stdout %q, want the digest %s", r.stdout, img.digest)
		}
		// stderr is not a terminal: progress lines, the last one complete.
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1]
		want := fmt.Sprintf("%s / %s  %d/%d blobs", humanBytes(img.bytes), humanBytes(img.bytes), img.blobs, img.blobs)
		if !strings.HasPrefix(last, "[==============================] ") || !strings.HasSuffix(last, want) {
			t.Errorf("last progress line %q, want a full bar and %q", last, want)
		}
		if strings.Contains(r.stderr, "\r") {
			t.Errorf("progress redrawn with \\r on a non-terminal: %q", r.stderr)
		}
		if got := reg.manifestDigest("imported/app", "1"); got != img.digest {
			t.Errorf("imported/app:1 is %q, want %s", got, img.digest)
		}
	})

	t.Run("json is the finished operation", func(t *testing.T) {
		r := ts.admin(t, "import", "--source", src.host()+"/lib/app:1", "--image", "imported/app:json", "--plain-http", "-o", "json")
		op := decodeOut[jobs.Operation](t, r)
		if op.Status != jobs.StatusSucceeded || op.Digest != img.digest.String() {
			t.Errorf("operation %+v", op)
		}
		want := jobs.Progress{Bytes: img.bytes, TotalBytes: img.bytes, Blobs: img.blobs, TotalBlobs: img.blobs}
		if op.Progress != want {
			t.Errorf("progress %+v, want %+v", op.Progress, want)
		}
		sameJSON(t, []byte(r.stdout), ts.api(t, http.MethodGet, "/operations/"+op.ID, nil))
	})

	t.Run("default image is the source's repository and tag", func(t *testing.T) {
		src.registry(t, false).pushImage("imports/default", "v2", "default")
		ts.admin(t, "import", "--source", src.host()+"/imports/default:v2", "--plain-http")
		if reg.manifestDigest("imports/default", "v2") == "" {
			t.Error("imports/default:v2 was not created")
		}
	})

	t.Run("no-wait, then operation show --wait", func(t *testing.T) {
		r := ts.admin(t, "import", "--source", src.host()+"/lib/app:1", "--image", "imported/app:later", "--plain-http", "--no-wait", "-o", "json")
		op := decodeOut[jobs.Operation](t, r)
		if op.ID == "" || r.stderr != "" {
			t.Fatalf("--no-wait: operation %+v, stderr %q", op, r.stderr)
		}
		r = ts.admin(t, "operation", "show", op.ID, "--wait")
		if !hasRow(r.stdout, op.ID, "import", "Succeeded") {
			t.Errorf("operation show --wait:\n%s", r.stdout)
		}
		if reg.manifestDigest("imported/app", "later") != img.digest {
			t.Error("imported/app:later was not created")
		}
	})

	t.Run("source credentials", func(t *testing.T) {
		// The shared server itself is a source that needs a login.
		own := reg.pushImage("creds/app", "1", "creds", layer("c", 1000))
		env := ts.adminEnv(t)
		args := []string{"import", "--source", ts.host() + "/creds/app:1", "--image", "creds/copy:1", "--plain-http"}
		r := runCLI(t, env, adminPassword+"\n", append(args, "--source-username", "admin", "--source-password-stdin")...)
		if r.code != 0 || r.stdout != own.digest.String()+"\n" {
			t.Errorf("with the right password: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		expectFailure(t, runCLI(t, env, "wrong\n", append(args, "--source-username", "admin", "--source-password-stdin")...), "invalid username or password", args)
		expectFailure(t, runCLI(t, env, "", args...), "401", args)
	})
}

// TestImportOfAMissingTag fails with one line and creates nothing.
func TestImportOfAMissingTag(t *testing.T) {
	ts, src := sharedServer(t), sourceServer(t)
	src.registry(t, false).pushImage("lib/present", "1", "present")
	args := []string{"import", "--source", src.host() + "/lib/present:nope", "--image", "imported/missing:1", "--plain-http"}
	ts.adminFails(t, "import of "+src.host()+"/lib/present:nope failed: ", args...)
	r := runCLI(t, ts.adminEnv(t), "", args...)
	if !strings.Contains(strings.ToLower(r.stderr), "not found") {
		t.Errorf("stderr %q does not say the tag was not found", r.stderr)
	}
	reg := ts.registry(t, true)
	if d := reg.manifestDigest("imported/missing", "1"); d != "" {
		t.Errorf("imported/missing:1 exists (%s) after a failed import", d)
	}
	if tags := reg.tags("imported/missing"); len(tags) > 0 {
		t.Errorf("imported/missing has tags %v after a failed import", tags)
	}
}

func TestImportFlags(t *testing.T) {
	ts := sharedServer(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no source", []string{"import", "--image", "x:1"}, "--source REGISTRY/REPOSITORY:TAG is required"},
		{"no registry in the source", []string{"import", "--source", "app:1"}, "expected REGISTRY/REPOSITORY:TAG"},
		{"digest source without image", []string{"import", "--source", "r.example.com/app@sha256:" + strings.Repeat("0", 64)}, "give --image"},
		{"password without username", []string{"import", "--source", "r.example.com/app:1", "--source-password", "p"}, "go together"},
		{"both passwords", []string{"import", "--source", "r.example.com/app:1", "--source-username", "u", "--source-password", "p", "--source-password-stdin"}, "not both"},
		{"server refuses a digest target", []string{"import", "--source", "r.example.com/app:1", "--image", "app@sha256:" + strings.Repeat("0", 64)}, "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.adminFails(t, tt.want, tt.args...)
		})
	}
}
