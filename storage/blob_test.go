package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func newTestBlobs(t testing.TB) (*DiskBlobs, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := NewDiskBlobs(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

// regularFiles lists the regular files under dir, relative to it.
func regularFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDiskBlobsPut(t *testing.T) {
	content := []byte("hello, blob")
	good := digest.FromBytes(content)
	errRead := errors.New("connection reset")
	tests := []struct {
		name    string
		d       digest.Digest
		r       func() io.Reader
		size    int64
		wantErr error // nil: stored
	}{
		{"verified", good, func() io.Reader { return bytes.NewReader(content) }, int64(len(content)), nil},
		{"unknown size", good, func() io.Reader { return bytes.NewReader(content) }, -1, nil},
		{"sha512", digest.SHA512.FromBytes(content), func() io.Reader { return bytes.NewReader(content) }, int64(len(content)), nil},
		{"sha384", digest.SHA384.FromBytes(content), func() io.Reader { return bytes.NewReader(content) }, -1, nil},
		{"empty blob", digest.FromBytes(nil), func() io.Reader { return bytes.NewReader(nil) }, 0, nil},
		{"digest mismatch", digest.FromString("other"), func() io.Reader { return bytes.NewReader(content) }, -1, ErrDigestMismatch},
		{"size too small", good, func() io.Reader { return bytes.NewReader(content) }, int64(len(content)) - 1, ErrSizeMismatch},
		{"size too large", good, func() io.Reader { return bytes.NewReader(content) }, int64(len(content)) + 1, ErrSizeMismatch},
		{"read error", good, func() io.Reader { return &failingReader{data: content[:4], err: errRead} }, -1, errRead},
		{"unsupported algorithm", "md5:5d41402abc4b2a76b9719d911017c592", func() io.Reader { return bytes.NewReader(content) }, -1, ErrUnsupportedDigest},
		{"malformed digest", "sha256:../../../etc/passwd", func() io.Reader { return bytes.NewReader(content) }, -1, ErrBlobUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			b, dir := newTestBlobs(t)
			n, err := b.Put(ctx, tt.d, tt.r(), tt.size)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Put() = %v, want %v", err, tt.wantErr)
				}
				if files := regularFiles(t, dir); len(files) != 0 {
					t.Errorf("a failed Put left files behind: %v", files)
				}
				if _, err := b.Stat(ctx, tt.d); err == nil {
					t.Error("a failed Put is visible to Stat")
				}
				return
			}
			if err != nil {
				t.Fatalf("Put() = %v", err)
			}
			want := content
			if tt.size == 0 {
				want = nil
			}
			if n != int64(len(want)) {
				t.Errorf("Put() = %d bytes, want %d", n, len(want))
			}
			size, err := b.Stat(ctx, tt.d)
			if err != nil || size != int64(len(want)) {
				t.Errorf("Stat() = %d, %v", size, err)
			}
			rc, size, err := b.Open(ctx, tt.d)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, _ := io.ReadAll(rc)
			if !bytes.Equal(got, want) || size != int64(len(want)) {
				t.Errorf("Open() = %q (%d), want %q", got, size, want)
			}
			if files := regularFiles(t, filepath.Join(dir, "tmp")); len(files) != 0 {
				t.Errorf("temp files left behind: %v", files)
			}
			enc := tt.d.Encoded()
			if _, err := os.Stat(filepath.Join(dir, "blobs", string(tt.d.Algorithm()), enc[:2], enc)); err != nil {
				t.Errorf("blob not at its documented path: %v", err)
			}
		})
	}
}

func TestDiskBlobsPutTwice(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBlobs(t)
	content := []byte("same bytes")
	d := digest.FromBytes(content)
	for i := range 2 {
		if _, err := b.Put(ctx, d, bytes.NewReader(content), -1); err != nil {
			t.Fatalf("Put #%d: %v", i+1, err)
		}
	}
	if files := regularFiles(t, dir); len(files) != 1 {
		t.Errorf("files after two Puts of one blob: %v", files)
	}
}

func TestDiskBlobsUnknown(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlobs(t)
	d := digest.FromString("absent")
	if _, err := b.Stat(ctx, d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("Stat() = %v, want ErrBlobUnknown", err)
	}
	if _, _, err := b.Open(ctx, d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("Open() = %v, want ErrBlobUnknown", err)
	}
	if err := b.Delete(ctx, d); err != nil {
		t.Errorf("Delete() of a missing blob = %v, want nil", err)
	}
	if _, err := b.Stat(ctx, "sha256:../../x"); err == nil {
		t.Error("Stat() accepted a malformed digest")
	}
}

func TestDiskBlobsDelete(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlobs(t)
	content := []byte("to delete")
	d := digest.FromBytes(content)
	if _, err := b.Put(ctx, d, bytes.NewReader(content), -1); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("Stat() after Delete = %v, want ErrBlobUnknown", err)
	}
}

func TestDiskBlobsWalk(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBlobs(t)
	want := map[digest.Digest]int64{}
	for _, s := range []string{"one", "two", "three"} {
		for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
			d := alg.FromString(s)
			if _, err := b.Put(ctx, d, strings.NewReader(s), -1); err != nil {
				t.Fatal(err)
			}
			want[d] = int64(len(s))
		}
	}
	// Files that are not blobs are left alone.
	for _, p := range []string{"README", "sha256/zz/not-a-digest", "md5/ab/ab00"} {
		full := filepath.Join(dir, "blobs", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := map[digest.Digest]int64{}
	err := b.Walk(ctx, func(d digest.Digest, size int64, modified time.Time) error {
		if modified.IsZero() {
			t.Errorf("%s: zero modification time", d)
		}
		got[d] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("Walk found %d blobs, want %d: %v", len(got), len(want), got)
	}
	for d, size := range want {
		if got[d] != size {
			t.Errorf("%s: size %d, want %d", d, got[d], size)
		}
	}

	t.Run("stops on error", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := b.Walk(ctx, func(digest.Digest, int64, time.Time) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Walk() = %v after %d calls", err, calls)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Walk(cctx, func(digest.Digest, int64, time.Time) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("Walk() = %v, want context.Canceled", err)
		}
	})
}

func TestNewDiskBlobsClearsTemp(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewDiskBlobs(dir, nil); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, "tmp", "0123456789abcdef")
	if err := os.WriteFile(leftover, []byte("half a blob"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDiskBlobs(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("crash leftover still in tmp/: %v", err)
	}
}

func BenchmarkBlobPut(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			blobs, _ := newTestBlobs(b)
			content := bytes.Repeat([]byte("moat"), bc.size/4)
			d := digest.FromBytes(content)
			r := bytes.NewReader(content)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for b.Loop() {
				// A new blob every time: Put writes, verifies, fsyncs and
				// renames; Delete keeps the next Put from finding it stored.
				r.Reset(content)
				if _, err := blobs.Put(ctx, d, r, int64(len(content))); err != nil {
					b.Fatal(err)
				}
				if err := blobs.Delete(ctx, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
