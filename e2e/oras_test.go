package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// orasDescriptor is the part of oras's --format json output the test reads.
type orasDescriptor struct {
	Reference    string           `json:"reference"`
	MediaType    string           `json:"mediaType"`
	Digest       string           `json:"digest"`
	ArtifactType string           `json:"artifactType"`
	Referrers    []orasDescriptor `json:"referrers"`
	Files        []struct {
		Path   string `json:"path"`
		Digest string `json:"digest"`
	} `json:"files"`
}

func parseORAS(t testing.TB, out string) orasDescriptor {
	t.Helper()
	var d orasDescriptor
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("oras output is not JSON: %v\n%s", err, out)
	}
	return d
}

// TestORAS pushes an artifact, pulls it back, attaches a signature-like
// referrer and discovers it through the referrers API.
func TestORAS(t *testing.T) {
	oras := newClient(t, "oras")
	oras.logVersion(t)
	m := startMoat(t, moatOptions{})
	ref := m.ref("oras/artifact:v1")

	work := t.TempDir()
	content := "hello from oras " + token(t) + "\n"
	writeFile(t, filepath.Join(work, "hello.txt"), []byte(content))
	push := oras.cmd("push", "--plain-http", "--format", "json",
		"--artifact-type", "application/vnd.example.thing", ref, "hello.txt:text/plain")
	push.dir = work
	pushed := parseORAS(t, push.run(t)).Digest
	if !strings.HasPrefix(pushed, "sha256:") {
		t.Fatalf("oras push reported digest %q", pushed)
	}
	if got := strings.TrimSpace(oras.run(t, "resolve", "--plain-http", ref)); got != pushed {
		t.Errorf("oras resolve = %s, pushed %s", got, pushed)
	}
	if got := m.manifestDigest(t, "oras/artifact", "v1"); got != pushed {
		t.Errorf("moat serves %s, oras pushed %s", got, pushed)
	}

	out := filepath.Join(work, "pulled")
	pulled := parseORAS(t, oras.run(t, "pull", "--plain-http", "--format", "json", "-o", out, ref))
	if want := m.Host + "/oras/artifact@" + pushed; pulled.Reference != want {
		t.Errorf("oras pull reference = %s, want %s", pulled.Reference, want)
	}
	if b, err := os.ReadFile(filepath.Join(out, "hello.txt")); err != nil || string(b) != content {
		t.Errorf("pulled hello.txt = %q, %v; want %q", b, err, content)
	}

	writeFile(t, filepath.Join(work, "sig.json"), []byte(`{"signature":"`+token(t)+`"}`))
	attach := oras.cmd("attach", "--plain-http", "--format", "json",
		"--artifact-type", "application/vnd.example.sig", ref, "sig.json:application/json")
	attach.dir = work
	sig := parseORAS(t, attach.run(t))

	tree := parseORAS(t, oras.run(t, "discover", "--plain-http", "--format", "json", ref))
	if tree.Digest != pushed {
		t.Errorf("oras discover subject = %s, want %s", tree.Digest, pushed)
	}
	found := slices.ContainsFunc(tree.Referrers, func(r orasDescriptor) bool {
		return r.Digest == sig.Digest && r.ArtifactType == "application/vnd.example.sig"
	})
	if !found {
		t.Errorf("oras discover does not list the signature %s:\n%+v", sig.Digest, tree.Referrers)
	}

	// The referrers API answered: oras did not fall back to the
	// sha256-<digest> tag schema.
	tags := strings.Fields(oras.run(t, "repo", "tags", "--plain-http", m.ref("oras/artifact")))
	if !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("oras repo tags = %q, want [v1] (a sha256-… tag means the referrers API was not used)", tags)
	}
}
