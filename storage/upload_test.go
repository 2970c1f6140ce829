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
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

type uploadsFixture struct {
	dir     string
	db      *DB
	blobs   *DiskBlobs
	uploads *DiskUploads
}

func newUploadsFixture(t *testing.T) *uploadsFixture {
	t.Helper()
	f := &uploadsFixture{dir: t.TempDir()}
	f.open(t)
	t.Cleanup(func() { f.db.Close() })
	return f
}

// open (re)opens the stores over f.dir, as a restart does.
func (f *uploadsFixture) open(t *testing.T) {
	t.Helper()
	var err error
	if f.db, err = OpenDB(filepath.Join(f.dir, "meta.db"), DBOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.blobs, err = NewDiskBlobs(f.dir, f.db); err != nil {
		t.Fatal(err)
	}
	if f.uploads, err = NewDiskUploads(f.dir, f.blobs, f.db); err != nil {
		t.Fatal(err)
	}
}

func (f *uploadsFixture) blob(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	rc, _, err := f.blobs.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *uploadsFixture) start(t *testing.T, repo string) Upload {
	t.Helper()
	up, err := f.uploads.Start(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

func (f *uploadsFixture) append(t *testing.T, up Upload, offset int64, s string) Upload {
	t.Helper()
	got, err := f.uploads.Append(context.Background(), up.Repository, up.ID, offset, strings.NewReader(s))
	if err != nil {
		t.Fatalf("Append(%d, %q) = %v", offset, s, err)
	}
	return got
}

func TestUploadsAppend(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	if len(up.ID) != 32 || up.Size != 0 || up.Repository != "app" || up.Started.IsZero() {
		t.Fatalf("Start() = %+v", up)
	}

	tests := []struct {
		name     string
		offset   int64
		chunk    string
		wantSize int64
		wantErr  error
	}{
		{"first chunk", 0, "hello", 5, nil},
		{"next chunk", 5, ", ", 7, nil},
		{"offset behind", 5, "again", 7, ErrOffsetMismatch},
		{"offset ahead", 9, "gap", 7, ErrOffsetMismatch},
		{"append without offset", -1, "world", 12, nil},
		{"empty chunk", 12, "", 12, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.uploads.Append(ctx, "app", up.ID, tt.offset, strings.NewReader(tt.chunk))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Append() = %v, want %v", err, tt.wantErr)
			}
			if got.Size != tt.wantSize || got.ID != up.ID {
				t.Errorf("Append() = %+v, want size %d", got, tt.wantSize)
			}
			if st, _ := f.uploads.Get(ctx, "app", up.ID); st.Size != tt.wantSize {
				t.Errorf("Get().Size = %d, want %d", st.Size, tt.wantSize)
			}
		})
	}
	d := digest.FromString("hello, world")
	n, err := f.uploads.Finish(ctx, "app", up.ID, d)
	if err != nil || n != 12 {
		t.Fatalf("Finish() = %d, %v", n, err)
	}
	if got := f.blob(t, d); string(got) != "hello, world" {
		t.Errorf("blob = %q", got)
	}
}

func TestUploadsUnknown(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	tests := []struct{ name, repo, id string }{
		{"other repository", "other", up.ID},
		{"never started", "app", strings.Repeat("0", 32)},
		{"path traversal", "app", "../../meta.db"},
		{"upper-case id", "app", strings.ToUpper(up.ID)},
		{"empty id", "app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.uploads.Get(ctx, tt.repo, tt.id); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("Get() = %v", err)
			}
			if _, err := f.uploads.Append(ctx, tt.repo, tt.id, -1, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("Append() = %v", err)
			}
			if _, err := f.uploads.Finish(ctx, tt.repo, tt.id, digest.FromString("x")); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("Finish() = %v", err)
			}
			if err := f.uploads.Cancel(ctx, tt.repo, tt.id); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("Cancel() = %v", err)
			}
		})
	}
	if _, err := f.uploads.Get(ctx, "app", up.ID); err != nil {
		t.Errorf("the real session is gone: %v", err)
	}
}

// A write cut off after its bytes reached the file but before the state
// was saved leaves trailing bytes that the next Append and Finish drop.
func TestUploadsTruncatesCutOffWrite(t *testing.T) {
	for _, next := range []string{"append", "finish"} {
		t.Run(next, func(t *testing.T) {
			ctx := context.Background()
			f := newUploadsFixture(t)
			up := f.start(t, "app")
			up = f.append(t, up, 0, "hello")
			file, err := os.OpenFile(filepath.Join(f.dir, "uploads", up.ID), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := file.WriteString("GARBAGE"); err != nil {
				t.Fatal(err)
			}
			file.Close()
			want := "hello"
			if next == "append" {
				up = f.append(t, up, 5, " world")
				want = "hello world"
			}
			d := digest.FromString(want)
			if _, err := f.uploads.Finish(ctx, "app", up.ID, d); err != nil {
				t.Fatalf("Finish() = %v", err)
			}
			if got := f.blob(t, d); string(got) != want {
				t.Errorf("blob = %q, want %q", got, want)
			}
		})
	}
}

func TestUploadsLostBytes(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	up = f.append(t, up, 0, "hello")
	if err := os.Truncate(filepath.Join(f.dir, "uploads", up.ID), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.uploads.Append(ctx, "app", up.ID, 5, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("Append() over a short file = %v, want ErrUploadUnknown", err)
	}
	if _, err := f.uploads.Finish(ctx, "app", up.ID, digest.FromString("hello")); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("Finish() over a short file = %v, want ErrUploadUnknown", err)
	}
}

func TestUploadsKeepBytesBeforeReadError(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	errRead := errors.New("client went away")
	got, err := f.uploads.Append(ctx, "app", up.ID, 0, &failingReader{data: []byte("hel"), err: errRead})
	if !errors.Is(err, errRead) || got.Size != 3 {
		t.Fatalf("Append() = %+v, %v", got, err)
	}
	up = f.append(t, got, 3, "lo")
	d := digest.FromString("hello")
	if _, err := f.uploads.Finish(ctx, "app", up.ID, d); err != nil {
		t.Fatal(err)
	}
}

func TestUploadsFinish(t *testing.T) {
	content := "some layer bytes"
	tests := []struct {
		name   string
		chunks []string
		d      digest.Digest
	}{
		{"sha256 from saved hash state", []string{"some ", "layer ", "bytes"}, digest.SHA256.FromString(content)},
		{"sha512 by rehashing", []string{"some ", "layer ", "bytes"}, digest.SHA512.FromString(content)},
		{"sha384 by rehashing", []string{content}, digest.SHA384.FromString(content)},
		{"empty upload", nil, digest.FromBytes(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newUploadsFixture(t)
			up := f.start(t, "app")
			for _, c := range tt.chunks {
				up = f.append(t, up, up.Size, c)
			}
			if len(tt.chunks) > 0 {
				st, err := f.db.GetUpload(ctx, up.ID)
				if err != nil || st.Algorithm != "sha256" || len(st.HashState) == 0 {
					t.Fatalf("saved state = %+v, %v; want a sha256 hash state", st, err)
				}
			}
			want := strings.Join(tt.chunks, "")
			n, err := f.uploads.Finish(ctx, "app", up.ID, tt.d)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("Finish() = %d, %v", n, err)
			}
			if got := f.blob(t, tt.d); string(got) != want {
				t.Errorf("blob = %q, want %q", got, want)
			}
			if _, err := f.uploads.Get(ctx, "app", up.ID); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("session still there after Finish: %v", err)
			}
			if files := regularFiles(t, filepath.Join(f.dir, "uploads")); len(files) != 0 {
				t.Errorf("upload files left: %v", files)
			}
		})
	}
}

func TestUploadsFinishMismatchKeepsSession(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	up = f.append(t, up, 0, "abc")
	for _, d := range []digest.Digest{digest.FromString("abd"), digest.SHA512.FromString("abd")} {
		if _, err := f.uploads.Finish(ctx, "app", up.ID, d); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("Finish(%s) = %v, want ErrDigestMismatch", d.Algorithm(), err)
		}
	}
	if _, err := f.blobs.Stat(ctx, digest.FromString("abd")); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("a mismatched blob was stored: %v", err)
	}
	up = f.append(t, up, 3, "d")
	if _, err := f.uploads.Finish(ctx, "app", up.ID, digest.FromString("abcd")); err != nil {
		t.Fatalf("Finish() after the mismatch = %v", err)
	}
	if _, err := f.uploads.Finish(ctx, "app", up.ID, "sha256:bad"); err == nil {
		t.Error("Finish() with a malformed digest succeeded")
	}
}

func TestUploadsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	up = f.append(t, up, 0, "before restart, ")
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	got, err := f.uploads.Get(ctx, "app", up.ID)
	if err != nil || got.Size != up.Size {
		t.Fatalf("Get() after restart = %+v, %v", got, err)
	}
	up = f.append(t, got, got.Size, "after restart")
	d := digest.FromString("before restart, after restart")
	if _, err := f.uploads.Finish(ctx, "app", up.ID, d); err != nil {
		t.Fatal(err)
	}
}

// TestUploadsRehashAfterRestart: the bytes and the state of a session are
// not fsynced, so after a crash of the machine the file may hold zeros
// where the saved hash state says otherwise. Another instance (a restart)
// must hash the bytes again, on Finish and on Append, and refuse them.
func TestUploadsRehashAfterRestart(t *testing.T) {
	const content = "bytes that the page cache held"
	cases := []struct {
		name    string
		zero    bool   // the file comes back full length, zeroed
		more    string // appended after the restart
		wantErr error
	}{
		{"intact", false, "", nil},
		{"intact, resumed", false, " and more", nil},
		{"zeroed", true, "", ErrDigestMismatch},
		{"zeroed, resumed", true, " and more", ErrDigestMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newUploadsFixture(t)
			up := f.start(t, "app")
			f.append(t, up, 0, content)
			if tc.zero {
				if err := os.WriteFile(filepath.Join(f.dir, "uploads", up.ID), make([]byte, len(content)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			restarted, err := NewDiskUploads(f.dir, f.blobs, f.db)
			if err != nil {
				t.Fatal(err)
			}
			if tc.more != "" {
				if _, err := restarted.Append(ctx, "app", up.ID, int64(len(content)), strings.NewReader(tc.more)); err != nil {
					t.Fatal(err)
				}
			}
			d := digest.FromString(content + tc.more)
			if _, err := restarted.Finish(ctx, "app", up.ID, d); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Finish() = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil {
				if got := string(f.blob(t, d)); got != content+tc.more {
					t.Fatalf("blob holds %q", got)
				}
			} else if _, err := f.blobs.Stat(ctx, d); !errors.Is(err, ErrBlobUnknown) {
				t.Fatalf("zeroed bytes committed under %s: %v", d, err)
			}
		})
	}
}

func TestUploadsCancel(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	f.append(t, up, 0, "bytes")
	if err := f.uploads.Cancel(ctx, "other", up.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("Cancel() from another repository = %v", err)
	}
	if err := f.uploads.Cancel(ctx, "app", up.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.uploads.Get(ctx, "app", up.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("Get() after Cancel = %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "uploads", up.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bytes left after Cancel: %v", err)
	}
	if err := f.uploads.Cancel(ctx, "app", up.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("second Cancel() = %v", err)
	}
}

func TestUploadsExpire(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	// Sessions are judged by the Updated time the store's clock gave them,
	// orphan files by their modification time: keep both near the real now.
	realNow := time.Now()
	now := realNow.Add(-10 * time.Hour)
	f.uploads.now = func() time.Time { return now }

	idle := f.start(t, "app")
	f.append(t, idle, 0, "idle")
	empty := f.start(t, "app") // no bytes yet, no file
	now = realNow.Add(-2 * time.Hour)
	active := f.start(t, "app")
	f.append(t, active, 0, "active")
	cutoff := realNow.Add(-5 * time.Hour)

	uploadsDir := filepath.Join(f.dir, "uploads")
	old := realNow.Add(-48 * time.Hour)
	writeFile := func(name string, mtime time.Time) string {
		p := filepath.Join(uploadsDir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orphan := writeFile(strings.Repeat("a", 32), old)
	freshOrphan := writeFile(strings.Repeat("b", 32), realNow)
	// A live session's file is kept whatever its modification time.
	if err := os.Chtimes(filepath.Join(uploadsDir, active.ID), old, old); err != nil {
		t.Fatal(err)
	}

	n, err := f.uploads.Expire(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Expire() removed %d sessions, want 2 (idle and empty)", n)
	}
	for _, gone := range []Upload{idle, empty} {
		if _, err := f.uploads.Get(ctx, "app", gone.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("idle session %s survived: %v", gone.ID, err)
		}
		if _, err := os.Stat(filepath.Join(uploadsDir, gone.ID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("idle session file %s survived", gone.ID)
		}
	}
	if _, err := f.uploads.Get(ctx, "app", active.ID); err != nil {
		t.Errorf("active session removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(uploadsDir, active.ID)); err != nil {
		t.Errorf("active session file removed: %v", err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old orphan file survived: %v", err)
	}
	if _, err := os.Stat(freshOrphan); err != nil {
		t.Errorf("recent orphan file removed (it may belong to a session being started): %v", err)
	}
	if n, err := f.uploads.Expire(ctx, cutoff); n != 0 || err != nil {
		t.Errorf("second Expire() = %d, %v; want nothing to do", n, err)
	}
}

func TestUploadsConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	f := newUploadsFixture(t)
	up := f.start(t, "app")
	const workers, chunk = 8, 1000
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			b := bytes.Repeat([]byte{byte('a' + i)}, chunk)
			if _, err := f.uploads.Append(ctx, "app", up.ID, -1, bytes.NewReader(b)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := f.uploads.Get(ctx, "app", up.ID)
	if err != nil || got.Size != workers*chunk {
		t.Fatalf("Get() = %+v, %v; want size %d", got, err, workers*chunk)
	}
	data, err := os.ReadFile(filepath.Join(f.dir, "uploads", up.ID))
	if err != nil {
		t.Fatal(err)
	}
	// Chunks never interleave.
	for i := 0; i < len(data); i += chunk {
		if bytes.Count(data[i:i+chunk], data[i:i+1]) != chunk {
			t.Fatalf("chunk at %d interleaved", i)
		}
	}
	if _, err := f.uploads.Finish(ctx, "app", up.ID, digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkUploadAppend appends 64 KiB chunks to sessions of their own
// from several goroutines at once, as concurrent pushes do.
func BenchmarkUploadAppend(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := OpenDB(filepath.Join(dir, "meta.db"), DBOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	blobs, err := NewDiskBlobs(dir, db)
	if err != nil {
		b.Fatal(err)
	}
	uploads, err := NewDiskUploads(dir, blobs, db)
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("moat"), 16<<10)
	b.SetBytes(int64(len(chunk)))
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		up, err := uploads.Start(ctx, "app")
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if _, err := uploads.Append(ctx, "app", up.ID, -1, bytes.NewReader(chunk)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
