package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// regctlClient is regctl with its configuration in the private home
// (~/.regctl/config.json) and TLS off for m.
func regctlClient(t testing.TB, m *moatServer) *client {
	t.Helper()
	c := newClient(t, "regctl")
	c.env = append(c.env, "REGCTL_CONFIG="+filepath.Join(c.home, ".regctl", "config.json"))
	c.run(t, "registry", "set", "--tls", "disabled", m.Host)
	return c
}

// TestRegctl copies an OCI layout into moat, copies the image to a second
// repository (a cross-repository mount) and back out into a layout, and
// checks digests, the raw manifest and the tag lists.
func TestRegctl(t *testing.T) {
	m := startMoat(t, moatOptions{})
	regctl := regctlClient(t, m)
	regctl.logVersion(t)

	src := t.TempDir()
	files := map[string]string{"hello.txt": "hello from regctl " + token(t) + "\n"}
	want := writeOCILayout(t, src, "v1", v1.Platform{OS: "linux", Architecture: "arm64"}, files).Digest.String()

	app, mirror := m.ref("regctl/app"), m.ref("regctl/mirror")
	regctl.run(t, "image", "copy", "ocidir://"+src+":v1", app+":v1")
	if got := strings.TrimSpace(regctl.run(t, "image", "digest", app+":v1")); got != want {
		t.Errorf("regctl image digest = %s, the layout holds %s", got, want)
	}
	if got := m.manifestDigest(t, "regctl/app", "v1"); got != want {
		t.Errorf("moat serves %s, regctl pushed %s", got, want)
	}
	raw := regctl.run(t, "manifest", "get", "--format", "raw-body", app+":v1")
	if got := digest.FromString(raw).String(); got != want {
		t.Errorf("regctl manifest get gave a manifest with digest %s, want %s", got, want)
	}

	regctl.run(t, "image", "copy", app+":v1", mirror+":v2")
	if got := strings.TrimSpace(regctl.run(t, "image", "digest", mirror+":v2")); got != want {
		t.Errorf("copied image has digest %s, want %s", got, want)
	}
	for _, tc := range []struct {
		repo string
		want []string
	}{
		{app, []string{"v1"}},
		{mirror, []string{"v2"}},
	} {
		if got := strings.Fields(regctl.run(t, "tag", "ls", tc.repo)); !slices.Equal(got, tc.want) {
			t.Errorf("regctl tag ls %s = %q, want %q", tc.repo, got, tc.want)
		}
	}

	dst := filepath.Join(t.TempDir(), "layout")
	regctl.run(t, "image", "copy", mirror+":v2", "ocidir://"+dst+":v2")
	if got := layoutDigest(t, dst, "v2").String(); got != want {
		t.Errorf("pulled layout holds %s, want %s", got, want)
	}
}
