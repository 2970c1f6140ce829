package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// skopeoClient is skopeo with a private registries.conf and no signature
// policy (the registry here is a test fixture, not a trust decision).
func skopeoClient(t testing.TB) *client {
	t.Helper()
	c := newClient(t, "skopeo")
	registriesConf := filepath.Join(c.home, "registries.conf")
	writeFile(t, registriesConf, []byte("unqualified-search-registries = []\n"))
	c.env = append(c.env, "CONTAINERS_REGISTRIES_CONF="+registriesConf)
	c.globalArgs = []string{"--insecure-policy"}
	return c
}

// TestSkopeo copies an OCI layout into moat and back out into another
// layout, and checks the digest at every step: the layout's, the pushed
// one, the served manifest's and the copy's. Then it lists and deletes.
func TestSkopeo(t *testing.T) {
	skopeo := skopeoClient(t)
	skopeo.logVersion(t)
	m := startMoat(t, moatOptions{})
	remote := "docker://" + m.ref("skopeo/app")

	src := t.TempDir()
	files := map[string]string{"hello.txt": "hello from skopeo " + token(t) + "\n"}
	want := writeOCILayout(t, src, "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, files).Digest.String()

	digestFile := filepath.Join(t.TempDir(), "digest")
	skopeo.run(t, "copy", "--preserve-digests", "--dest-tls-verify=false", "--digestfile", digestFile,
		"oci:"+src+":v1", remote+":v1")
	if b, err := os.ReadFile(digestFile); err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("skopeo copy pushed %q (%v), the layout holds %s", b, err, want)
	}
	if got := m.manifestDigest(t, "skopeo/app", "v1"); got != want {
		t.Errorf("moat serves %s, skopeo pushed %s", got, want)
	}

	raw := skopeo.run(t, "inspect", "--tls-verify=false", "--raw", remote+":v1")
	if got := digest.FromString(raw).String(); got != want {
		t.Errorf("skopeo inspect --raw gave a manifest with digest %s, want %s", got, want)
	}
	rawFile := filepath.Join(t.TempDir(), "manifest.json")
	writeFile(t, rawFile, []byte(raw))
	if got := strings.TrimSpace(skopeo.run(t, "manifest-digest", rawFile)); got != want {
		t.Errorf("skopeo manifest-digest = %s, want %s", got, want)
	}

	dst := filepath.Join(t.TempDir(), "layout")
	skopeo.run(t, "copy", "--preserve-digests", "--src-tls-verify=false", remote+":v1", "oci:"+dst+":v1")
	if got := layoutDigest(t, dst, "v1").String(); got != want {
		t.Errorf("pulled layout holds %s, want %s", got, want)
	}

	var tags struct{ Tags []string }
	if err := json.Unmarshal([]byte(skopeo.run(t, "list-tags", "--tls-verify=false", remote)), &tags); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags.Tags, []string{"v1"}) {
		t.Errorf("skopeo list-tags = %q, want [v1]", tags.Tags)
	}

	skopeo.run(t, "delete", "--tls-verify=false", remote+"@"+want)
	out := skopeo.runFail(t, "inspect", "--tls-verify=false", "--raw", remote+"@"+want)
	if !strings.Contains(strings.ToLower(out), "manifest unknown") {
		t.Errorf("inspecting the deleted manifest failed, but not with MANIFEST_UNKNOWN:\n%s", out)
	}
}
