package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// checkFiles opens meta.db read-only and runs bbolt's consistency check,
// and hashes every blob file not hashed before: each must hash to its
// name (a blob is whole or absent).
func (h *crashHarness) checkFiles() {
	t := h.t
	t.Helper()
	checkBolt(t, filepath.Join(h.data, "meta.db"))
	root := filepath.Join(h.data, "blobs")
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || h.checked[p] {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); filepath.Base(p) != got {
			t.Errorf("blob file %s holds %d bytes hashing to %s: a partial or wrong blob was committed", p, len(b), got)
		}
		h.checked[p] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkTmpEmpty: temp files of interrupted uploads are gone once the
// server is back.
func (h *crashHarness) checkTmpEmpty() {
	entries, err := os.ReadDir(filepath.Join(h.data, "tmp"))
	if err != nil {
		h.t.Fatal(err)
	}
	if len(entries) > 0 {
		h.t.Errorf("tmp/ holds %d files after a restart", len(entries))
	}
}

// verify checks the restarted server against the model: everything
// changed since the last verification and a sample of the rest (all of
// it when full is set). It resumes interrupted uploads first.
func (h *crashHarness) verify(proc *moatProc, full bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &ociClient{base: proc.Base, http: &http.Client{}}
	defer c.http.CloseIdleConnections()
	for _, m := range h.repos {
		for _, up := range m.uploads {
			h.resume(ctx, c, m, up)
		}
		m.uploads = nil
		h.verifyRepo(ctx, c, m, full)
	}
}

// resume continues an interrupted session from the offset the server
// reports, or accepts that it is gone with BLOB_UPLOAD_UNKNOWN.
func (h *crashHarness) resume(ctx context.Context, c *ociClient, m *repoModel, up upload) {
	t := h.t
	b := m.blobs[up.blob]
	content := b.content()
	gone := func(a *answer) bool {
		if a.status == http.StatusNotFound && a.errorCode() == "BLOB_UPLOAD_UNKNOWN" {
			h.stats.sessionsGone++
			return true
		}
		return false
	}
	off, ambiguous, a, err := c.uploadOffset(ctx, up.location)
	if err != nil {
		t.Fatalf("upload status of %s: %v", up.location, err)
	}
	if off < 0 {
		if !gone(a) {
			t.Errorf("upload status of an interrupted session: %s, want 204 or 404 BLOB_UPLOAD_UNKNOWN", a)
		}
		return
	}
	if off > int64(len(content)) {
		t.Errorf("interrupted session %s reports %d bytes of a %d-byte blob", up.location, off, len(content))
		return
	}
	if ambiguous {
		off = 0 // try none first, then one
	}
	loc := up.location
	for {
		if off < int64(len(content)) {
			a, err = c.patchChunk(ctx, loc, off, bytes.NewReader(content[off:]), int64(len(content))-off)
			if err != nil {
				t.Fatal(err)
			}
			if a.status == http.StatusRequestedRangeNotSatisfiable && ambiguous {
				ambiguous, off = false, 1 // "0-0": one byte, not none
				continue
			}
			if gone(a) {
				return
			}
			if a.status != http.StatusAccepted {
				t.Errorf("PATCH resuming %s at %d: %s", loc, off, a)
				return
			}
			loc = a.header.Get("Location")
		}
		break
	}
	a, err = c.finishUpload(ctx, loc, up.blob)
	if err != nil {
		t.Fatal(err)
	}
	if gone(a) {
		return
	}
	if a.status != http.StatusCreated {
		t.Errorf("PUT finishing resumed session %s: %s", loc, a)
		return
	}
	if a.header.Get("Docker-Content-Digest") != up.blob.String() {
		t.Errorf("resumed session answered digest %q, want %s", a.header.Get("Docker-Content-Digest"), up.blob)
	}
	b.state, b.dirty = present, true
	h.stats.resumed++
}

func (h *crashHarness) verifyRepo(ctx context.Context, c *ociClient, m *repoModel, full bool) {
	t := h.t
	pick := func(dirty bool) bool { return full || dirty || h.rng.IntN(20) == 0 }
	checkBlob := func(d digest.Digest, b *blobModel, must bool) {
		a, err := c.getBlob(ctx, m.name, d)
		if err != nil && a == nil {
			t.Fatal(err)
		}
		switch {
		case err != nil:
			t.Error(err)
		case a.status == http.StatusOK:
			b.state = present
		case a.status == http.StatusNotFound && !must:
			b.state = absent
		default:
			t.Errorf("blob %s of %s (%s): %s", d, m.name, stateName(b.state), a)
		}
		b.dirty = false
	}
	for _, d := range slices.Sorted(maps.Keys(m.blobs)) {
		if b := m.blobs[d]; b.state != absent && pick(b.dirty) {
			checkBlob(d, b, b.state == present)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(m.manifests)) {
		mm := m.manifests[d]
		if !pick(mm.dirty) {
			continue
		}
		a, err := c.send(ctx, http.MethodGet, "/v2/"+m.name+"/manifests/"+d.String(), nil, 0, map[string]string{"Accept": ocispec.MediaTypeImageManifest})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case a.status == http.StatusOK && mm.state != absent:
			if !bytes.Equal(a.body, mm.raw) {
				t.Errorf("manifest %s of %s reads back different bytes: %q", d, m.name, truncate(string(a.body), 200))
			}
			mm.state = present
			for _, bd := range mm.blobs {
				// A visible manifest's blobs are all there.
				checkBlob(bd, m.blobs[bd], true)
			}
		case a.status == http.StatusNotFound && mm.state != present:
			mm.state = absent
		default:
			t.Errorf("manifest %s of %s (%s): %s", d, m.name, stateName(mm.state), a)
		}
		mm.dirty = false
	}
	for _, tag := range slices.Sorted(maps.Keys(m.tags)) {
		a, err := c.send(ctx, http.MethodGet, "/v2/"+m.name+"/manifests/"+tag, nil, 0, map[string]string{"Accept": ocispec.MediaTypeImageManifest})
		if err != nil {
			t.Fatal(err)
		}
		var got digest.Digest
		switch a.status {
		case http.StatusOK:
			got = digest.FromBytes(a.body)
			if hd := a.header.Get("Docker-Content-Digest"); hd != got.String() {
				t.Errorf("tag %s of %s: body digest %s, header %s", tag, m.name, got, hd)
			}
			if mm := m.manifests[got]; mm == nil || mm.state == absent {
				t.Errorf("tag %s of %s names %s, which the model holds deleted or never pushed", tag, m.name, got)
			} else {
				mm.state = present
			}
		case http.StatusNotFound:
		default:
			t.Errorf("GET tag %s of %s: %s", tag, m.name, a)
			continue
		}
		if !m.tags[tag][got] {
			t.Errorf("tag %s of %s names %q; acknowledged operations allow only %v", tag, m.name, got, slices.Sorted(maps.Keys(m.tags[tag])))
		}
		m.tags[tag] = map[digest.Digest]bool{got: true}
	}
	a, err := c.send(ctx, http.MethodGet, "/v2/"+m.name+"/tags/list", nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.status == http.StatusOK {
		var list struct{ Tags []string }
		if err := json.Unmarshal(a.body, &list); err != nil {
			t.Errorf("tags/list of %s: %v", m.name, err)
		}
		for _, tag := range list.Tags {
			if s := m.tags[tag]; s == nil || s[""] {
				t.Errorf("tags/list of %s lists %s, which the model holds absent", m.name, tag)
			}
		}
	} else if a.status != http.StatusNotFound {
		t.Errorf("tags/list of %s: %s", m.name, a)
	}
}

func stateName(p presence) string {
	return [...]string{"in flight at the kill", "acknowledged", "deleted or never stored"}[p]
}

// checkBolt opens a bbolt file read-only and runs bbolt's consistency
// check of every page.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("%s does not open: %v", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("%s fails bbolt's check: %v", path, err)
	}
}
