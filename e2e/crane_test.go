package e2e

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestCrane builds a two-platform image index with crane (append a layer
// tarball, set the platform, index the two images), copies it to a second
// repository, pulls a platform's files back, lists tags and repositories
// and deletes the copy.
func TestCrane(t *testing.T) {
	crane := newClient(t, "crane")
	crane.logVersion(t)
	m := startMoat(t, moatOptions{})
	app, mirror := m.ref("crane/app"), m.ref("crane/mirror")
	// craneRun runs a crane command against the plain-HTTP registry and
	// returns its trimmed output.
	craneRun := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(crane.run(t, append(args, "--insecure")...))
	}

	platforms := []struct {
		os, arch string
		content  string
	}{
		{"linux", "amd64", "amd64 " + token(t) + "\n"},
		{"linux", "arm64", "arm64 " + token(t) + "\n"},
	}
	work := t.TempDir()
	var images []string
	for _, p := range platforms {
		layer := filepath.Join(work, p.arch+".tar")
		writeFile(t, layer, rootfsTar(t, map[string]string{"platform.txt": p.content}))
		craneRun("append", "--oci-empty-base", "-f", layer, "-t", app+":"+p.arch+"-base")
		pushed := craneRun("mutate", "--set-platform", p.os+"/"+p.arch, app+":"+p.arch+"-base", "-t", app+":"+p.arch)
		d := craneRun("digest", app+":"+p.arch)
		if pushed != app+"@"+d {
			t.Errorf("crane mutate pushed %s, crane digest says %s", pushed, d)
		}
		images = append(images, app+"@"+d)
	}

	indexRef := craneRun("index", "append", "-m", images[0], "-m", images[1], "-t", app+":multi")
	_, pushed, _ := strings.Cut(indexRef, "@")
	if got := craneRun("digest", app+":multi"); got != pushed {
		t.Fatalf("crane index append pushed %s, crane digest says %s", pushed, got)
	}
	if got := m.manifestDigest(t, "crane/app", "multi"); got != pushed {
		t.Errorf("moat serves %s, crane pushed %s", got, pushed)
	}
	raw := craneRun("manifest", app+":multi")
	if got := digest.FromString(raw).String(); got != pushed {
		t.Errorf("crane manifest has digest %s, want %s", got, pushed)
	}
	var index v1.Index
	if err := json.Unmarshal([]byte(raw), &index); err != nil {
		t.Fatal(err)
	}
	var gotPlatforms []string
	for _, d := range index.Manifests {
		if d.Platform != nil {
			gotPlatforms = append(gotPlatforms, d.Platform.OS+"/"+d.Platform.Architecture)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(gotPlatforms, want) {
		t.Errorf("index platforms = %q, want %q", gotPlatforms, want)
	}

	craneRun("copy", app+":multi", mirror+":multi")
	if got := craneRun("digest", mirror+":multi"); got != pushed {
		t.Errorf("copied index has digest %s, want %s", got, pushed)
	}
	for _, p := range platforms {
		export := crane.cmd("export", "--insecure", "--platform", p.os+"/"+p.arch, mirror+":multi", "-")
		files := tarFiles(t, []byte(export.run(t)))
		if got := files["platform.txt"]; got != p.content {
			t.Errorf("%s/%s image holds platform.txt %q, want %q", p.os, p.arch, got, p.content)
		}
	}

	if got, want := strings.Fields(craneRun("ls", app)), []string{"amd64", "amd64-base", "arm64", "arm64-base", "multi"}; !slices.Equal(got, want) {
		t.Errorf("crane ls %s = %q, want %q", app, got, want)
	}
	if got, want := strings.Fields(craneRun("catalog", m.Host)), []string{"crane/app", "crane/mirror"}; !slices.Equal(got, want) {
		t.Errorf("crane catalog = %q, want %q", got, want)
	}

	craneRun("delete", mirror+"@"+pushed)
	out := crane.runFail(t, "digest", "--insecure", mirror+":multi")
	if !strings.Contains(out, "MANIFEST_UNKNOWN") {
		t.Errorf("crane digest of the deleted index failed, but not with MANIFEST_UNKNOWN:\n%s", out)
	}
	if got := craneRun("digest", app+":multi"); got != pushed {
		t.Errorf("deleting the copy changed the original: %s, want %s", got, pushed)
	}
}
