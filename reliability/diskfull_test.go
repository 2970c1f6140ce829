package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestDiskFull runs moat on a small tmpfs, fills it and pushes: every
// write fails with an OCI error (507 "storage is full", never a hang past
// the client's deadline or a crash), no partial blob becomes visible, tmp/ stays empty and
// uploads/ holds only what live sessions own; once space is freed the
// same server accepts pushes again and an interrupted session resumes.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	unmount, err := mountTmpfs(mnt, "8m")
	if err != nil {
		if required() {
			t.Fatalf("mount a tmpfs on %s: %v (MOAT_E2E_REQUIRE is set)", mnt, err)
		}
		t.Skipf("mount a tmpfs on %s: %v (needs root; MOAT_E2E_REQUIRE=1 turns this into a failure)", mnt, err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	data := filepath.Join(mnt, "data")
	cfg := config.Default()
	cfg.Data = data
	_, base, stop := startServer(t, cfg)
	c := &ociClient{base: base, http: &http.Client{Timeout: time.Minute}}
	defer c.http.CloseIdleConnections()
	ctx := context.Background()
	c.pushImage(t, "full/app", "before", []byte(`{"n":0}`), []byte("small layer"))

	// An upload session with some bytes, to resume after the disk is
	// freed.
	content := make([]byte, 3<<20)
	_, _ = rand.Read(content)
	d := digest.FromBytes(content)
	loc, a, err := c.startUpload(ctx, "full/app")
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("POST upload: %v %v", a, err)
	}
	a, err = c.patchChunk(ctx, loc, 0, bytes.NewReader(content[:1<<20]), 1<<20)
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("first chunk: %v %v", a, err)
	}
	loc = a.header.Get("Location")

	filler := fill(t, filepath.Join(mnt, "filler"))

	full := func(what string, a *answer, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s on a full disk: %v", what, err)
		}
		if a.status < 400 {
			t.Errorf("%s on a full disk answered %s", what, a)
			return
		}
		checkOCIError(t, what, a, http.StatusInsufficientStorage)
	}
	// A hang fails the request with the client's deadline (a minute),
	// which fails the test: no elapsed time is compared.
	a, err = c.pushBlob(ctx, "full/app", content)
	full("a monolithic push", a, err)
	a, err = c.patchChunk(ctx, loc, 1<<20, bytes.NewReader(content[1<<20:]), int64(len(content)-1<<20))
	full("a chunk", a, err)
	a, err = c.chunkedPush(ctx, "full/app", content, 1<<20)
	full("a new chunked push", a, err)
	// Metadata writes may still fit in meta.db's free pages; if not,
	// they fail the same way.
	for i := range 50 {
		raw := imageManifest([]byte(`{"n":0}`), []byte("small layer"))
		raw = append(raw[:len(raw)-1], []byte(`,"annotations":{"i":"`+string(rune('a'+i%26))+string(bytes.Repeat([]byte("x"), 20000))+`"}}`)...)
		a, err := c.putManifest(ctx, "full/app", "many", ocispec.MediaTypeImageManifest, raw)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusCreated {
			full("a manifest", a, err)
			break
		}
	}
	if a, err := c.getBlob(ctx, "full/app", d); err != nil || a.status != http.StatusNotFound {
		t.Errorf("GET the blob whose pushes failed: %v %v, want 404", a, err)
	}
	checkNoTemp(t, data)
	checkBlobFiles(t, data)
	// Each file in uploads/ belongs to a live session.
	entries, err := os.ReadDir(filepath.Join(data, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		a, err := c.send(ctx, http.MethodGet, "/v2/full/app/blobs/uploads/"+en.Name(), nil, 0, nil)
		if err != nil || a.status != http.StatusNoContent {
			t.Errorf("uploads/%s belongs to no session: %v %v", en.Name(), a, err)
		}
	}

	// Free the space: the same server works again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	off, _, a, err := c.uploadOffset(ctx, loc)
	if err != nil || off < 1<<20 || off > int64(len(content)) {
		t.Fatalf("the session after the disk was freed: offset %d (%v, %v)", off, a, err)
	}
	a, err = c.patchChunk(ctx, loc, off, bytes.NewReader(content[off:]), int64(len(content))-off)
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("resuming the session: %v %v", a, err)
	}
	a, err = c.finishUpload(ctx, a.header.Get("Location"), d)
	if err != nil || a.status != http.StatusCreated {
		t.Fatalf("finishing the session: %v %v", a, err)
	}
	if a, err := c.getBlob(ctx, "full/app", d); err != nil || a.status != http.StatusOK {
		t.Errorf("GET the resumed blob: %v %v", a, err)
	}
	c.pushImage(t, "full/app", "after", []byte(`{"n":1}`), content[:2<<20])
	a, err = c.send(ctx, http.MethodGet, "/v2/full/app/manifests/before", nil, 0, map[string]string{"Accept": ocispec.MediaTypeImageManifest})
	if err != nil || a.status != http.StatusOK {
		t.Errorf("the image pushed before the disk filled: %v %v", a, err)
	}
	checkNoTemp(t, data)
	checkBlobFiles(t, data)
	stop()
	checkBolt(t, filepath.Join(data, "meta.db"))
}

// fill writes path until the filesystem is full and returns it.
func fill(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// Whatever a smaller write still fits goes too.
	for n := len(buf) / 2; n > 0; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return path
}
