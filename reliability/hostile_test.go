package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostileCase is one hostile request and what it must get.
type hostileCase struct {
	name   string
	method string
	target string
	header []string
	body   []byte
	// status lists the acceptable answers; empty: any 4xx. An error
	// answer must be in the OCI error shape unless httpLevel is set (the
	// request is malformed HTTP that net/http refuses before moat sees it).
	status    []int
	httpLevel bool
}

// hostileEnv is an in-process server whose data directory sits beside a
// canary file, with one image pushed.
type hostileEnv struct {
	t       *testing.T
	parent  string // holds canary and data
	data    string
	canary  string
	addr    string
	client  *ociClient
	blob    []byte // a layer of legit/app:v1
	layerD  digest.Digest
	pwned   string // the file name traversal attempts aim to create
	started time.Time
}

func newHostileEnv(t *testing.T, edit func(*config.Config)) *hostileEnv {
	parent := t.TempDir()
	e := &hostileEnv{t: t, parent: parent, data: filepath.Join(parent, "data"), canary: filepath.Join(parent, "canary"),
		pwned: "pwned-" + strconv.FormatInt(time.Now().UnixNano(), 36), started: time.Now()}
	if err := os.WriteFile(e.canary, []byte("canary"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data = e.data
	if edit != nil {
		edit(&cfg)
	}
	srv, base, _ := startServer(t, cfg)
	e.addr = srv.Addr().String()
	e.client = &ociClient{base: base, http: &http.Client{Timeout: time.Minute}}
	t.Cleanup(e.client.http.CloseIdleConnections)
	e.blob = bytes.Repeat([]byte("layer "), 1000)
	e.layerD = digest.FromBytes(e.blob)
	e.client.pushImage(t, "legit/app", "v1", []byte(`{"architecture":"amd64"}`), e.blob)
	return e
}

// run sends the cases and checks each answer.
func (e *hostileEnv) run(cases []hostileCase) {
	for _, c := range cases {
		e.t.Run(c.name, func(t *testing.T) {
			// A hang fails rawRequest with its deadline.
			a, err := rawRequest(e.addr, c.method, c.target, c.header, c.body)
			if err != nil {
				t.Fatalf("%s %q: %v", c.method, c.target, err)
			}
			if c.method == http.MethodHead {
				// No body to carry the error shape.
				if a.status < 400 || a.status >= 500 || len(a.body) > 0 {
					t.Errorf("HEAD %q: %s, want a 4xx without a body", c.target, a)
				}
				return
			}
			if c.httpLevel {
				if a.status < 400 || a.status >= 500 {
					t.Errorf("%s %q: %s, want a 4xx", c.method, c.target, a)
				}
				return
			}
			if a.status < 400 && len(c.status) > 0 {
				for _, s := range c.status {
					if s == a.status {
						return
					}
				}
			}
			checkOCIError(t, c.method+" "+strconv.Quote(c.target), a, c.status...)
		})
	}
}

// blobName matches the files the blob store may hold.
var (
	blobName   = regexp.MustCompile(`^blobs/sha(256/[0-9a-f]{2}/[0-9a-f]{64}|384/[0-9a-f]{2}/[0-9a-f]{96}|512/[0-9a-f]{2}/[0-9a-f]{128})$`)
	uploadName = regexp.MustCompile(`^uploads/[0-9a-f]{32}$`)
	keyName    = regexp.MustCompile(`^keys/([A-Za-z0-9_-]+\.pem|keyring\.json)$`)
)

// checkTree fails if anything but the canary and the data directory is
// beside the data directory, if the canary changed, if the data directory
// holds a file the layout does not name, or if the traversal target
// exists anywhere the requests aimed.
func (e *hostileEnv) checkTree() {
	t := e.t
	t.Helper()
	entries, err := os.ReadDir(e.parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Name() != "canary" && en.Name() != "data" {
			t.Errorf("%s appeared beside the data directory", filepath.Join(e.parent, en.Name()))
		}
	}
	if b, err := os.ReadFile(e.canary); err != nil || string(b) != "canary" {
		t.Errorf("the canary beside the data directory changed: %q, %v", b, err)
	}
	for _, p := range []string{filepath.Join(os.TempDir(), e.pwned), "/" + e.pwned, filepath.Join("/etc", e.pwned)} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a traversal created %s", p)
		}
	}
	err = filepath.WalkDir(e.data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.data, p)
		if strings.Contains(rel, e.pwned) {
			t.Errorf("a traversal created %s", p)
		}
		if d.IsDir() {
			return nil
		}
		switch {
		case rel == "meta.db", rel == "uploads.db", rel == "admin-password",
			blobName.MatchString(rel), uploadName.MatchString(rel), keyName.MatchString(rel):
		default:
			t.Errorf("unexpected file %s in the data directory", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostilePaths sends path traversal in repository names, digests,
// tags and upload ids, plain, percent-encoded, with encoded slashes,
// absolute and with NUL bytes, with every method: each gets a 4xx in the
// OCI error shape, and no file outside the data directory's layout is
// touched.
func TestHostilePaths(t *testing.T) {
	e := newHostileEnv(t, nil)
	p := e.pwned
	ld := e.layerD.String()
	manifest := imageManifest([]byte(`{"architecture":"amd64"}`), e.blob)
	mt := "Content-Type: " + ocispec.MediaTypeImageManifest
	var cases []hostileCase
	add := func(name, method, target string, body []byte, header ...string) {
		cases = append(cases, hostileCase{name: name, method: method, target: target, body: body, header: header})
	}
	// Repository names.
	for i, repo := range []string{
		"../../" + p, "..%2f..%2f" + p, "%2e%2e/%2e%2e/" + p, "%2E%2E%2F%2E%2E%2F" + p, "legit/../../" + p,
		"/" + p, "//" + p, "legit/app/..", "legit%2fapp", "legit/app%00", "%00", "legit/./app", "legit//app",
		"....//....//" + p, "..\\..\\" + p, "%252e%252e%252f" + p, "legit/app/../../../../../../../../tmp/" + p,
	} {
		n := fmt.Sprintf("repo %d %s", i, repo)
		add(n+" GET manifest", http.MethodGet, "/v2/"+repo+"/manifests/v1", nil)
		add(n+" PUT manifest", http.MethodPut, "/v2/"+repo+"/manifests/v1", manifest, mt)
		add(n+" DELETE manifest", http.MethodDelete, "/v2/"+repo+"/manifests/v1", nil)
		add(n+" GET blob", http.MethodGet, "/v2/"+repo+"/blobs/"+ld, nil)
		add(n+" POST blob", http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+ld, e.blob)
		add(n+" POST session", http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
		add(n+" mount from it", http.MethodPost, "/v2/legit/other/blobs/uploads/?mount="+ld+"&from="+repo, nil)
		add(n+" tags", http.MethodGet, "/v2/"+repo+"/tags/list", nil)
		add(n+" referrers", http.MethodGet, "/v2/"+repo+"/referrers/"+ld, nil)
	}
	// Digests.
	for i, d := range []string{
		"sha256:../../../../../../" + p, "sha256:..%2f..%2f..%2fmeta.db", "sha256%3a..%2f..%2f" + p, "sha256:%2e%2e",
		"sha256:" + strings.Repeat("0", 32) + "%00" + strings.Repeat("0", 31), "sha256:" + strings.Repeat("../", 21) + "a",
		"/etc/passwd", "%2fetc%2fpasswd", "sha256:" + strings.Repeat("A", 64), "sha512:" + strings.Repeat("0", 64),
		"md5:" + strings.Repeat("0", 32), "sha256:" + strings.Repeat("0", 63) + "/", "..", "%2e%2e",
	} {
		n := fmt.Sprintf("digest %d %s", i, d)
		add(n+" GET blob", http.MethodGet, "/v2/legit/app/blobs/"+d, nil)
		add(n+" HEAD blob", http.MethodHead, "/v2/legit/app/blobs/"+d, nil)
		add(n+" DELETE blob", http.MethodDelete, "/v2/legit/app/blobs/"+d, nil)
		add(n+" POST ?digest", http.MethodPost, "/v2/legit/app/blobs/uploads/?digest="+d, e.blob)
		add(n+" mount", http.MethodPost, "/v2/legit/other/blobs/uploads/?mount="+d+"&from=legit/app", nil)
		add(n+" PUT manifest", http.MethodPut, "/v2/legit/app/manifests/"+d, manifest, mt)
		add(n+" referrers", http.MethodGet, "/v2/legit/app/referrers/"+d, nil)
	}
	// Tags and upload ids.
	for i, ref := range []string{
		"..", "%2e%2e", "..%2f..%2f" + p, "%2e%2e%2f" + p, "v1%00", "%00", "v1%2f..%2f..", "-" + p, "." + p,
		strings.Repeat("a", 129), "%ff%fe", "v1\\..\\..",
	} {
		n := fmt.Sprintf("ref %d %s", i, ref)
		add(n+" PUT manifest", http.MethodPut, "/v2/legit/app/manifests/"+ref, manifest, mt)
		add(n+" PUT ?tag", http.MethodPut, "/v2/legit/app/manifests/"+digest.FromBytes(manifest).String()+"?tag="+ref, manifest, mt)
		add(n+" DELETE manifest", http.MethodDelete, "/v2/legit/app/manifests/"+ref, nil)
		add(n+" GET upload", http.MethodGet, "/v2/legit/app/blobs/uploads/"+ref, nil)
		add(n+" PATCH upload", http.MethodPatch, "/v2/legit/app/blobs/uploads/"+ref, e.blob)
		add(n+" PUT upload", http.MethodPut, "/v2/legit/app/blobs/uploads/"+ref+"?digest="+ld, e.blob)
		add(n+" DELETE upload", http.MethodDelete, "/v2/legit/app/blobs/uploads/"+ref, nil)
	}
	for i, id := range []string{"../../../meta.db", "..%2f..%2fmeta.db", "%2e%2e%2f%2e%2e%2fkeys", "../../../../canary", strings.Repeat("0", 31) + "%00"} {
		n := fmt.Sprintf("upload id %d %s", i, id)
		add(n+" GET", http.MethodGet, "/v2/legit/app/blobs/uploads/"+id, nil)
		add(n+" PATCH", http.MethodPatch, "/v2/legit/app/blobs/uploads/"+id, e.blob)
		add(n+" PUT", http.MethodPut, "/v2/legit/app/blobs/uploads/"+id+"?digest="+ld, nil)
		add(n+" DELETE", http.MethodDelete, "/v2/legit/app/blobs/uploads/"+id, nil)
	}
	add("catalog last traversal", http.MethodGet, "/v2/_catalog?n=5&last=../../../../etc", nil)
	add("admin identity traversal", http.MethodPut, "/admin/v1/identities/..%2f..%2f"+p, []byte(`{}`), "Content-Type: application/json")
	for i := range cases {
		switch c := &cases[i]; {
		case strings.HasPrefix(c.name, "catalog"):
			c.status = []int{http.StatusOK} // a list, empty past the last name
		case strings.HasSuffix(c.name, "legit%2fapp mount from it"):
			// An encoded slash in a query is an ordinary slash: from names
			// legit/app, which holds the blob.
			c.status = []int{http.StatusCreated}
		}
	}
	// Requests net/http refuses before any handler runs.
	cases = append(cases,
		hostileCase{name: "raw NUL in path", method: http.MethodGet, target: "/v2/legit/app\x00/manifests/v1", httpLevel: true},
		hostileCase{name: "relative target", method: http.MethodGet, target: "../../etc/passwd", httpLevel: true},
		hostileCase{name: "raw NUL in header", method: http.MethodGet, target: "/v2/", header: []string{"X-A: a\x00b"}, httpLevel: true},
	)
	e.run(cases)
	e.checkTree()
	// The repository still holds what it held.
	ctx := context.Background()
	if a, err := e.client.getBlob(ctx, "legit/app", e.layerD); err != nil || a.status != http.StatusOK {
		t.Errorf("the pushed layer after the hostile requests: %v %v", a, err)
	}
	t.Logf("%d hostile requests", len(cases))
}

// TestHostileEncoding sends invalid UTF-8 in repository names, tags,
// headers and JSON bodies: each gets an answer in valid UTF-8, errors in
// the OCI shape, and what is stored reads back byte for byte.
func TestHostileEncoding(t *testing.T) {
	e := newHostileEnv(t, nil)
	manifest := imageManifest([]byte(`{"architecture":"amd64"}`), e.blob)
	md := digest.FromBytes(manifest).String()
	mt := "Content-Type: " + ocispec.MediaTypeImageManifest
	// A manifest whose annotation holds invalid UTF-8 inside a JSON
	// string, stored by digest if accepted.
	bad := bytes.Replace(manifest, []byte(`"schemaVersion":2`), []byte("\"schemaVersion\":2,\"annotations\":{\"k\":\"\xff\xfe\xc0\xaf\"}"), 1)
	badD := digest.FromBytes(bad).String()
	basicBad := "Authorization: Basic " + "/////w==" // "\xff\xff\xff" as user, no colon
	cases := []hostileCase{
		{name: "raw high bytes in repository", method: http.MethodGet, target: "/v2/leg\xffit/app/manifests/v1"},
		{name: "encoded invalid UTF-8 repository", method: http.MethodGet, target: "/v2/leg%ff%feit/manifests/v1"},
		{name: "raw high bytes in tag", method: http.MethodPut, target: "/v2/legit/app/manifests/v\xff1", body: manifest, header: []string{mt}},
		{name: "encoded invalid UTF-8 tag", method: http.MethodPut, target: "/v2/legit/app/manifests/v%c0%af", body: manifest, header: []string{mt}},
		{name: "invalid UTF-8 ?tag", method: http.MethodPut, target: "/v2/legit/app/manifests/" + md + "?tag=%ff", body: manifest, header: []string{mt}},
		{name: "invalid UTF-8 digest", method: http.MethodGet, target: "/v2/legit/app/blobs/sha256:%ff%fe"},
		{name: "invalid UTF-8 Content-Type", method: http.MethodPut, target: "/v2/legit/app/manifests/v2", body: manifest, header: []string{"Content-Type: application/\xff\xfe"}},
		{name: "invalid UTF-8 Content-Range", method: http.MethodPatch, target: "/v2/legit/app/blobs/uploads/" + strings.Repeat("a", 32), body: []byte("x"), header: []string{"Content-Range: \xff-\xfe"}},
		{name: "invalid UTF-8 Basic credentials", method: http.MethodGet, target: "/v2/legit/app/manifests/v1", header: []string{basicBad}, status: []int{http.StatusUnauthorized}},
		{name: "invalid UTF-8 Basic user:password", method: http.MethodGet, target: "/v2/legit/app/manifests/v1", header: []string{"Authorization: Basic //46/v8="}, status: []int{http.StatusUnauthorized}},
		{name: "invalid UTF-8 Bearer", method: http.MethodGet, target: "/v2/legit/app/manifests/v1", header: []string{"Authorization: Bearer \xff\xfe.\xc0.\xaf"}, status: []int{http.StatusUnauthorized}},
		{name: "invalid UTF-8 Accept", method: http.MethodGet, target: "/v2/legit/app/manifests/v1", header: []string{"Accept: \xff\xfe"}, status: []int{http.StatusOK}},
		{name: "invalid UTF-8 token scope", method: http.MethodGet, target: "/oauth2/token?scope=repository:%ff%fe:pull", status: []int{http.StatusOK}},
		{name: "invalid UTF-8 token service", method: http.MethodGet, target: "/oauth2/token?scope=repository:app:pull&service=%c0%ff"},
		{name: "invalid UTF-8 in manifest JSON", method: http.MethodPut, target: "/v2/legit/app/manifests/" + badD, body: bad, header: []string{mt}, status: []int{http.StatusCreated}},
		{name: "invalid UTF-8 admin JSON", method: http.MethodPut, target: "/admin/v1/identities/x", body: []byte("{\"kind\":\"\xff\"}"), header: []string{"Content-Type: application/json"}},
		{name: "UTF-16 manifest", method: http.MethodPut, target: "/v2/legit/app/manifests/v3", body: []byte("\xff\xfe{\x00}\x00"), header: []string{mt}},
	}
	e.run(cases)
	ctx := context.Background()
	a, err := e.client.send(ctx, http.MethodGet, "/v2/legit/app/manifests/"+badD, nil, 0, nil)
	switch {
	case err != nil:
		t.Fatal(err)
	case a.status == http.StatusOK && !bytes.Equal(a.body, bad):
		t.Errorf("the manifest with invalid UTF-8 reads back changed: %q", a.body)
	case a.status != http.StatusOK && a.status != http.StatusNotFound:
		t.Errorf("GET the manifest with invalid UTF-8: %s", a)
	}
	a, err = e.client.send(ctx, http.MethodGet, "/v2/legit/app/tags/list", nil, 0, nil)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("tags/list: %v %v", a, err)
	}
	var list struct{ Tags []string }
	if err := json.Unmarshal(a.body, &list); err != nil || len(list.Tags) != 1 || list.Tags[0] != "v1" {
		t.Errorf("tags/list after the hostile tags: %s (%v), want only v1", a.body, err)
	}
	e.checkTree()
}
