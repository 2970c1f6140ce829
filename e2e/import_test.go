package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// importOperation is the part of an operation `moat import -o json`
// prints that the tests read.
type importOperation struct {
	Status   string `json:"status"`
	Digest   string `json:"digest"`
	Error    string `json:"error"`
	Progress struct {
		Bytes      int64 `json:"bytes"`
		TotalBytes int64 `json:"totalBytes"`
		Blobs      int   `json:"blobs"`
		TotalBlobs int   `json:"totalBlobs"`
	} `json:"progress"`
}

// TestImport imports into a registry whose public network access is
// disabled (moat's built-in importer needs no network rule), with the
// admin CLI as a user would:
//   - a two-platform index with an `oras attach` signature on it, read
//     anonymously from a dev-mode moat: every manifest, blob and the
//     referrer arrive with the source's digests, and the progress reaches
//     its total;
//   - a missing tag: a non-zero exit that names it, and no repository;
//   - from a --dev=false moat: with a puller's credentials it works, with
//     a wrong password it fails and says so;
//   - the source's export policy: disabled, the import is refused with a
//     message naming the policy; enabled again, it works.
func TestImport(t *testing.T) {
	oras := newClient(t, "oras")
	src := startMoat(t, moatOptions{})
	locked := startAdminMoat(t, "127.0.0.5")
	dst := startAdminMoat(t, "127.0.0.4")
	locked.waitReadyz(t)
	dst.waitReadyz(t)
	cli, lockedCLI := dst.cli(t), locked.cli(t)
	cli.run(t, "update", "--public-network-access", "Disabled")

	// The source: an index of two platform images, signed.
	var children []v1.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		p := &v1.Platform{OS: "linux", Architecture: arch}
		children = append(children, src.pushImageAs(t, "app", "", "", "", p, map[string]string{"arch.txt": arch + " " + token(t)}))
	}
	index := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: children})
	indexDigest := src.pushManifest(t, "app", "multi", "", "", v1.MediaTypeImageIndex, index)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "sig.json"), []byte(`{"signature":"`+token(t)+`"}`))
	attach := oras.cmd("attach", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.example.sig",
		src.ref("app@"+indexDigest.String()), "sig.json:application/json")
	attach.dir = work
	sig := digest.Digest(parseORAS(t, attach.run(t)).Digest)
	want := graphOf(t, src, "", "", "app", indexDigest, v1.MediaTypeImageIndex, int64(len(index)))
	if _, ok := want[sig]; !ok {
		t.Fatalf("the source's referrers API does not list the signature %s", sig)
	}

	t.Run("index with referrers", func(t *testing.T) {
		var op importOperation
		out := cli.run(t, "import", "--source", src.ref("app:multi"), "--image", "mirror/app:multi", "--plain-http", "-o", "json")
		if err := json.Unmarshal([]byte(out), &op); err != nil {
			t.Fatalf("moat import -o json: %v\n%s", err, out)
		}
		if op.Status != "Succeeded" || op.Digest != indexDigest.String() {
			t.Fatalf("import: %s %s %q, want Succeeded %s", op.Status, op.Digest, op.Error, indexDigest)
		}
		var wantBytes int64
		for _, size := range want {
			wantBytes += size
		}
		p := op.Progress
		if p.Blobs != len(want) || p.TotalBlobs != len(want) || p.Bytes != wantBytes || p.TotalBytes != wantBytes {
			t.Errorf("progress %+v, want %d/%d blobs and %d/%d bytes", p, len(want), len(want), wantBytes, wantBytes)
		}

		// Public access back on, to read the target as its admin.
		cli.run(t, "update", "--public-network-access", "Enabled")
		defer cli.run(t, "update", "--public-network-access", "Disabled")
		got := graphOf(t, dst.moatServer, "admin", dst.password, "mirror/app", indexDigest, v1.MediaTypeImageIndex, int64(len(index)))
		for d, size := range want {
			if got[d] != size {
				t.Errorf("%s: %d bytes in the target, %d in the source", d, got[d], size)
			}
		}
		if len(got) != len(want) {
			t.Errorf("the target's graph has %d nodes, the source's %d", len(got), len(want))
		}
		if d := dst.manifestDigestAs(t, "mirror/app", "multi"); d != indexDigest {
			t.Errorf("mirror/app:multi is %s, want %s", d, indexDigest)
		}
	})

	t.Run("missing tag", func(t *testing.T) {
		out := cli.runFail(t, "import", "--source", src.ref("app:nope"), "--image", "half/app:nope", "--plain-http")
		t.Logf("%s", out)
		if !strings.Contains(out, "import of "+src.ref("app:nope")+" failed") || !strings.Contains(out, "nope") ||
			!(strings.Contains(out, "not found") || strings.Contains(out, "MANIFEST_UNKNOWN")) {
			t.Errorf("import of a missing tag: want a line naming the tag as not found, got:\n%s", out)
		}
		if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 {
			t.Errorf("want one line of error, got %d:\n%s", n+1, out)
		}
		cli.run(t, "update", "--public-network-access", "Enabled")
		defer cli.run(t, "update", "--public-network-access", "Disabled")
		for _, path := range []string{"/v2/half/app/tags/list", "/v2/half/app/manifests/nope"} {
			if status, body := dst.do(t, http.MethodGet, path, "admin", dst.password, "", nil); status != http.StatusNotFound {
				t.Errorf("GET %s after the failed import: %d, want 404\n%s", path, status, body)
			}
		}
		status, body := dst.do(t, http.MethodGet, "/v2/_catalog", "admin", dst.password, "", nil)
		if status != http.StatusOK || strings.Contains(string(body), "half/app") {
			t.Errorf("catalog after the failed import: %d %s", status, body)
		}
	})

	// The locked source: --dev=false, an image pushed by its admin and a
	// puller with AcrPull (a bcrypt hash imported at the minimum cost).
	image := locked.pushImage(t, "app", "1", map[string]string{"locked.txt": token(t)})
	const puller, pullerPassword = "puller", "puller-password-1"
	hash, err := bcrypt.GenerateFromPassword([]byte(pullerPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := lockedCLI.cmd("identity", "import-htpasswd", "-", "--role", "AcrPull")
	htpasswd.stdin = strings.NewReader(puller + ":" + string(hash) + "\n")
	htpasswd.run(t)
	lockedSource := locked.ref("app:1")
	importLocked := func(image string, extra ...string) command {
		return cli.cmd(append([]string{"import", "--source", lockedSource, "--image", image, "--plain-http"}, extra...)...)
	}

	t.Run("credentials", func(t *testing.T) {
		got := strings.TrimSpace(importLocked("locked/app:1", "--source-username", puller, "--source-password", pullerPassword).run(t))
		if got != image.String() {
			t.Errorf("import with credentials printed %q, want %s", got, image)
		}
		out := importLocked("locked/app:2", "--source-username", puller, "--source-password", "wrong").runFail(t)
		t.Logf("%s", out)
		if !strings.Contains(out, "import of "+lockedSource+" failed") || !strings.Contains(out, "401") {
			t.Errorf("import with a wrong password: want a 401 failure, got:\n%s", out)
		}
		out = importLocked("locked/app:3").runFail(t)
		t.Logf("%s", out)
		if !strings.Contains(out, "failed") || !strings.Contains(out, "401") {
			t.Errorf("anonymous import from a --dev=false source: want a 401 failure, got:\n%s", out)
		}
	})

	t.Run("export policy", func(t *testing.T) {
		lockedCLI.run(t, "update", "--allow-exports", "false")
		out := importLocked("export/app:1", "--source-username", puller, "--source-password", pullerPassword).runFail(t)
		t.Logf("%s", out)
		if !strings.Contains(out, "exports from this registry are disabled") {
			t.Errorf("import with the source's exports disabled: want the policy named, got:\n%s", out)
		}
		lockedCLI.run(t, "update", "--allow-exports", "true")
		got := strings.TrimSpace(importLocked("export/app:1", "--source-username", puller, "--source-password", pullerPassword).run(t))
		if got != image.String() {
			t.Errorf("import with exports enabled again printed %q, want %s", got, image)
		}
	})
}

// graphOf walks a manifest's graph in repo of m — index children, config,
// layers, and the referrers of every manifest — reading as user (anonymous
// when empty), and returns every node's size by digest.
func graphOf(t testing.TB, m *moatServer, user, pass, repo string, root digest.Digest, mediaType string, size int64) map[digest.Digest]int64 {
	t.Helper()
	nodes := map[digest.Digest]int64{}
	var visit func(d digest.Digest, mediaType string, size int64)
	visit = func(d digest.Digest, mediaType string, size int64) {
		if _, seen := nodes[d]; seen {
			return
		}
		nodes[d] = size
		if !isManifest(mediaType) {
			status, body := m.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), user, pass, "", nil)
			if status != http.StatusOK || digest.FromBytes(body) != d || int64(len(body)) != size {
				t.Errorf("%s %s: blob %s: %d, %d bytes (want %d)", m.Host, repo, d, status, len(body), size)
			}
			return
		}
		status, body := m.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), user, pass, "", nil)
		if status != http.StatusOK || digest.FromBytes(body) != d {
			t.Errorf("%s %s: manifest %s: %d %s", m.Host, repo, d, status, body)
			return
		}
		var man struct {
			Config    *v1.Descriptor  `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(body, &man); err != nil {
			t.Fatal(err)
		}
		children := slices.Concat(man.Layers, man.Manifests)
		if man.Config != nil {
			children = append(children, *man.Config)
		}
		for _, c := range children {
			visit(c.Digest, c.MediaType, c.Size)
		}
		status, body = m.do(t, http.MethodGet, "/v2/"+repo+"/referrers/"+d.String(), user, pass, "", nil)
		if status != http.StatusOK {
			t.Errorf("%s %s: referrers of %s: %d %s", m.Host, repo, d, status, body)
			return
		}
		var refs v1.Index
		if err := json.Unmarshal(body, &refs); err != nil {
			t.Fatal(err)
		}
		for _, r := range refs.Manifests {
			visit(r.Digest, r.MediaType, r.Size)
		}
	}
	visit(root, mediaType, size)
	return nodes
}

func isManifest(mediaType string) bool {
	switch mediaType {
	case v1.MediaTypeImageManifest, v1.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}
