package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// blobSizes cover the empty blob, a small one, one around 5 MiB and one
// of several 5 MiB parts.
var blobSizes = []int{0, 1, 4 << 10, 5<<20 - 1, 5 << 20, 5<<20 + 1, 13<<20 + 7}

func testBlobPut(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for i, n := range blobSizes {
		for _, declared := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/declared=%v", n, declared), func(t *testing.T) {
				c := blobBytes(n, uint64(i))
				d := digest.FromBytes(c)
				size := int64(-1)
				if declared {
					size = int64(n)
				}
				got, err := st.Blobs.Put(context.Background(), d, bytes.NewReader(c), size)
				if err != nil || got != int64(n) {
					t.Fatalf("Put() = %d, %v; want %d", got, err, n)
				}
				checkBlob(t, st.Blobs, d, c)
			})
		}
	}
}

func testBlobPutAlgorithms(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
		for _, n := range []int{3 << 10, 11<<20 + 5} {
			t.Run(fmt.Sprintf("%s/%d", alg, n), func(t *testing.T) {
				c := blobBytes(n, uint64(n)+uint64(len(alg)))
				d := hashOf(alg, c)
				if got, err := st.Blobs.Put(context.Background(), d, bytes.NewReader(c), -1); err != nil || got != int64(n) {
					t.Fatalf("Put() = %d, %v", got, err)
				}
				checkBlob(t, st.Blobs, d, c)
			})
		}
	}
}

func testBlobPutDigestMismatch(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for _, n := range []int{10, 12 << 20} {
		for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
			t.Run(fmt.Sprintf("%s/%d", alg, n), func(t *testing.T) {
				c := blobBytes(n, 1)
				claimed := hashOf(alg, []byte("something else"))
				if _, err := st.Blobs.Put(context.Background(), claimed, bytes.NewReader(c), int64(n)); !errors.Is(err, storage.ErrDigestMismatch) {
					t.Fatalf("Put() with the wrong digest = %v, want ErrDigestMismatch", err)
				}
				checkNoBlob(t, st.Blobs, claimed)
				checkNoBlob(t, st.Blobs, hashOf(alg, c))
				if got := walkBlobs(t, st.Blobs); len(got) != 0 {
					t.Fatalf("Walk() after a refused Put = %v, want nothing", got)
				}
			})
		}
	}
}

func testBlobPutSizeMismatch(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for _, n := range []int{10, 6 << 20} {
		for _, declared := range []int64{int64(n) - 1, int64(n) + 1} {
			t.Run(fmt.Sprintf("%d/as%d", n, declared), func(t *testing.T) {
				c := blobBytes(n, 2)
				d := digest.FromBytes(c)
				if _, err := st.Blobs.Put(context.Background(), d, bytes.NewReader(c), declared); !errors.Is(err, storage.ErrSizeMismatch) {
					t.Fatalf("Put() with size %d = %v, want ErrSizeMismatch", declared, err)
				}
				checkNoBlob(t, st.Blobs, d)
			})
		}
	}
}

func testBlobPutReadError(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for _, n := range []int{10, 7 << 20} {
		c := blobBytes(n, 3)
		d := digest.FromBytes(c)
		r := &brokenReader{r: bytes.NewReader(c[:n/2]), err: errBrokenPipe}
		if _, err := st.Blobs.Put(context.Background(), d, r, int64(n)); !errors.Is(err, errBrokenPipe) {
			t.Fatalf("Put() of a broken stream = %v, want the stream's error", err)
		}
		checkNoBlob(t, st.Blobs, d)
	}
}

func testBlobPutUnsupportedDigest(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	d := digest.Digest("md5:d41d8cd98f00b204e9800998ecf8427e")
	if _, err := st.Blobs.Put(context.Background(), d, strings.NewReader(""), 0); !errors.Is(err, storage.ErrUnsupportedDigest) {
		t.Fatalf("Put(%s) = %v, want ErrUnsupportedDigest", d, err)
	}
	if _, err := st.Blobs.Stat(context.Background(), d); !errors.Is(err, storage.ErrUnsupportedDigest) {
		t.Fatalf("Stat(%s) = %v, want ErrUnsupportedDigest", d, err)
	}
}

func testBlobPutTwice(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	c := blobBytes(100, 4)
	d := putBlob(t, st.Blobs, c)
	putBlob(t, st.Blobs, c)
	checkBlob(t, st.Blobs, d, c)
	if got := walkBlobs(t, st.Blobs); len(got) != 1 {
		t.Fatalf("Walk() after two Puts of one blob = %v", got)
	}
}

func testBlobPutConcurrent(t *testing.T, b BlobBackend) {
	a, other := b.Open(t), b.Open(t)
	shared := blobBytes(6<<20, 5)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = other
			}
			c := shared
			if i%4 == 0 {
				c = blobBytes(1000+i, uint64(100+i))
			}
			if _, err := st.Blobs.Put(context.Background(), digest.FromBytes(c), bytes.NewReader(c), int64(len(c))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put() = %v", err)
	}
	checkBlob(t, other.Blobs, digest.FromBytes(shared), shared)
	if got := walkBlobs(t, a.Blobs); len(got) != 5 {
		t.Fatalf("Walk() = %d blobs, want 5", len(got))
	}
}

func testBlobUnknown(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	checkNoBlob(t, st.Blobs, digest.FromString("never stored"))
	if _, err := st.Blobs.Stat(context.Background(), "sha256:../../etc/passwd"); err == nil {
		t.Fatal("Stat() of a malformed digest succeeded")
	}
}

func testBlobOpenSeek(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	c := blobBytes(6<<20+123, 6)
	d := putBlob(t, st.Blobs, c)
	rc, size, err := st.Blobs.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if size != int64(len(c)) {
		t.Fatalf("Open() size = %d, want %d", size, len(c))
	}
	if end, err := rc.Seek(0, io.SeekEnd); err != nil || end != size {
		t.Fatalf("Seek(0, End) = %d, %v; want %d", end, err, size)
	}
	if n, err := rc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read() at the end = %d, %v; want 0, EOF", n, err)
	}
	steps := []struct {
		offset int64
		whence int
		at     int64 // where the seek lands
		n      int   // bytes read there
	}{
		{0, io.SeekStart, 0, 100},
		{5 << 20, io.SeekStart, 5 << 20, 1000},
		{-10, io.SeekCurrent, 5<<20 + 990, 10},
		{-50, io.SeekEnd, size - 50, 50},
		{7, io.SeekStart, 7, 3},
		{0, io.SeekCurrent, 10, 6 << 20},
	}
	for _, s := range steps {
		at, err := rc.Seek(s.offset, s.whence)
		if err != nil || at != s.at {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", s.offset, s.whence, at, err, s.at)
		}
		buf := make([]byte, s.n)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatalf("reading %d bytes at %d: %v", s.n, at, err)
		}
		if !bytes.Equal(buf, c[at:at+int64(s.n)]) {
			t.Fatalf("%d bytes at %d differ from the blob's", s.n, at)
		}
	}
	if _, err := rc.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek(-1, Start) succeeded")
	}
	// Past the end, reading finds the end.
	if _, err := rc.Seek(size+10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read() past the end = %d, %v; want 0, EOF", n, err)
	}
}

// testBlobServeContentRanges serves a blob as the registry does, through
// http.ServeContent, and asks for ranges.
func testBlobServeContentRanges(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	c := blobBytes(3<<20+17, 7)
	d := putBlob(t, st.Blobs, c)
	size := len(c)
	tests := []struct {
		rng    string
		status int
		want   []byte
	}{
		{"", http.StatusOK, c},
		{"bytes=100-199", http.StatusPartialContent, c[100:200]},
		{"bytes=-10", http.StatusPartialContent, c[size-10:]},
		{fmt.Sprintf("bytes=%d-", size-5), http.StatusPartialContent, c[size-5:]},
		{"bytes=0-0", http.StatusPartialContent, c[:1]},
		{fmt.Sprintf("bytes=%d-", size), http.StatusRequestedRangeNotSatisfiable, nil},
	}
	for _, tc := range tests {
		t.Run(tc.rng, func(t *testing.T) {
			rc, _, err := st.Blobs.Open(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			rec := httptest.NewRecorder()
			http.ServeContent(rec, req, "", time.Time{}, rc)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.want != nil && !bytes.Equal(rec.Body.Bytes(), tc.want) {
				t.Fatalf("body of %d bytes differs from the %d wanted", rec.Body.Len(), len(tc.want))
			}
		})
	}
	t.Run("multiple", func(t *testing.T) {
		rc, _, err := st.Blobs.Open(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Range", "bytes=2000000-2000009,10-19")
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", time.Time{}, rc)
		body := rec.Body.Bytes()
		if rec.Code != http.StatusPartialContent || !bytes.Contains(body, c[2000000:2000010]) || !bytes.Contains(body, c[10:20]) {
			t.Fatalf("status %d; body lacks the ranges", rec.Code)
		}
	})
}

func testBlobDelete(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	keep := putBlob(t, st.Blobs, blobBytes(10, 8))
	gone := putBlob(t, st.Blobs, blobBytes(20, 9))
	if err := st.Blobs.Delete(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	checkNoBlob(t, st.Blobs, gone)
	if err := st.Blobs.Delete(context.Background(), gone); err != nil {
		t.Fatalf("Delete() of a missing blob = %v, want nil", err)
	}
	if got := walkBlobs(t, st.Blobs); len(got) != 1 || got[keep] != 10 {
		t.Fatalf("Walk() after Delete = %v, want only %s", got, shortDigest(keep))
	}
	// A deleted blob can be stored again.
	c := blobBytes(20, 9)
	putBlob(t, st.Blobs, c)
	checkBlob(t, st.Blobs, gone, c)
}

func testBlobWalk(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	if got := walkBlobs(t, st.Blobs); len(got) != 0 {
		t.Fatalf("Walk() of an empty store = %v", got)
	}
	want := map[digest.Digest]int64{}
	for i, alg := range []digest.Algorithm{digest.SHA256, digest.SHA256, digest.SHA384, digest.SHA512} {
		c := blobBytes(100*i+1, uint64(20+i))
		d := hashOf(alg, c)
		if _, err := st.Blobs.Put(context.Background(), d, bytes.NewReader(c), int64(len(c))); err != nil {
			t.Fatal(err)
		}
		want[d] = int64(len(c))
	}
	got := walkBlobs(t, st.Blobs)
	if len(got) != len(want) {
		t.Fatalf("Walk() = %v, want %v", got, want)
	}
	for d, n := range want {
		if got[d] != n {
			t.Fatalf("Walk() = %v, want %v", got, want)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := st.Blobs.Walk(context.Background(), func(digest.Digest, int64, time.Time) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk() with fn failing = %v after %d calls, want fn's error after one", err, calls)
	}
}

func testBlobReplicas(t *testing.T, b BlobBackend) {
	a, other := b.Open(t), b.Open(t)
	c := blobBytes(9<<20, 10)
	d := putBlob(t, a.Blobs, c)
	checkBlob(t, other.Blobs, d, c)
	if err := other.Blobs.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	checkNoBlob(t, a.Blobs, d)
}
