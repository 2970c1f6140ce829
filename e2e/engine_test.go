package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// imageEngine is a container engine CLI with docker's verbs (docker,
// podman) and what differs between them.
type imageEngine struct {
	cli *client
	// registryArgs are the push and pull flags for a plain-HTTP registry
	// (docker needs none: 127.0.0.0/8 is an insecure registry by default).
	registryArgs []string
	// digestFile: push writes the pushed digest with --digestfile; without
	// it the digest is read from push's output.
	digestFile bool
}

// pushedDigestRE finds the digest in docker push's last line
// ("1: digest: sha256:… size: 527").
var pushedDigestRE = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`)

// engineRoundTrip imports a root filesystem as repo:tag, pushes it to m,
// removes the local image, pulls it back by tag and by digest, and checks
// that the pushed digest, the digest moat serves and the engine's repo
// digest after the pull are one.
func engineRoundTrip(t *testing.T, m *moatServer, eng imageEngine, repo, tag string) {
	t.Helper()
	cli := eng.cli
	ref := m.ref(repo + ":" + tag)
	rootfs := rootfsTar(t, map[string]string{
		"hello.txt":            "hello from " + cli.name + " " + token(t) + "\n",
		"etc/moat-e2e/release": "e2e\n",
	})
	imp := cli.cmd("import", "-", ref)
	imp.stdin = bytes.NewReader(rootfs)
	imp.run(t)

	push := append([]string{"push"}, eng.registryArgs...)
	digestFile := filepath.Join(t.TempDir(), "digest")
	if eng.digestFile {
		push = append(push, "--digestfile", digestFile)
	}
	out := cli.run(t, append(push, ref)...)
	var pushed string
	if eng.digestFile {
		b, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatalf("%s push wrote no digest file: %v", cli.name, err)
		}
		pushed = strings.TrimSpace(string(b))
	} else if match := pushedDigestRE.FindStringSubmatch(out); match != nil {
		pushed = match[1]
	} else {
		t.Fatalf("%s push printed no digest:\n%s", cli.name, out)
	}
	served := m.manifestDigest(t, repo, tag)
	if served != pushed {
		t.Fatalf("%s pushed %s, moat serves %s", cli.name, pushed, served)
	}

	cli.run(t, "rmi", ref)
	cli.run(t, append(append([]string{"pull"}, eng.registryArgs...), ref)...)
	if got := repoDigests(t, cli, ref); !slices.Contains(got, m.ref(repo+"@"+served)) {
		t.Errorf("%s image inspect RepoDigests = %q, want %s@%s", cli.name, got, m.ref(repo), served)
	}
	byDigest := m.ref(repo + "@" + served)
	cli.run(t, "rmi", ref)
	cli.run(t, append(append([]string{"pull"}, eng.registryArgs...), byDigest)...)
	if got := repoDigests(t, cli, byDigest); !slices.Contains(got, byDigest) {
		t.Errorf("%s image inspect RepoDigests = %q after pulling %s", cli.name, got, byDigest)
	}
}

// repoDigests is what the engine records as the repo digests of ref.
func repoDigests(t testing.TB, cli *client, ref string) []string {
	t.Helper()
	out := cli.run(t, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	var digests []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &digests); err != nil {
		t.Fatalf("%s image inspect: %v\n%s", cli.name, err, out)
	}
	return digests
}
