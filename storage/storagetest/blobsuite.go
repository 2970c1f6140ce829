package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// BlobStore is one instance of a blob backend, as one moat process opens
// it.
type BlobStore struct {
	Blobs   storage.Blobs
	Uploads storage.Uploads
}

// BlobBackend is one backend's bytes and upload states.
type BlobBackend interface {
	// Open returns a new instance over the backend, as a restarted
	// process or another replica opens it. Instances run side by side and
	// share the bytes and the upload sessions.
	Open(t testing.TB) BlobStore
}

// BlobBackendFunc adapts a function to BlobBackend.
type BlobBackendFunc func(t testing.TB) BlobStore

// Open implements BlobBackend.
func (f BlobBackendFunc) Open(t testing.TB) BlobStore { return f(t) }

// BlobSuite is the conformance suite of a blob backend — storage.Blobs
// and storage.Uploads:
//
//	func TestBlobConformance(t *testing.T) {
//		storagetest.BlobSuite{New: newBackend}.Run(t)
//	}
//
// The sizes it uploads cross 12 MiB, so that an object store's multipart
// uploads form several parts (of 5 MiB, when the backend is configured
// with S3's smallest part size), from chunks under 5 MiB.
type BlobSuite struct {
	// New makes a new, empty backend for one test, removed when the test
	// ends (t.Cleanup).
	New func(t testing.TB) BlobBackend
}

// Run runs every test of the suite as parallel subtests of t.
func (s BlobSuite) Run(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T, BlobBackend)
	}{
		{"Put", testBlobPut},
		{"PutAlgorithms", testBlobPutAlgorithms},
		{"PutDigestMismatch", testBlobPutDigestMismatch},
		{"PutSizeMismatch", testBlobPutSizeMismatch},
		{"PutReadError", testBlobPutReadError},
		{"PutUnsupportedDigest", testBlobPutUnsupportedDigest},
		{"PutTwice", testBlobPutTwice},
		{"PutConcurrent", testBlobPutConcurrent},
		{"Unknown", testBlobUnknown},
		{"OpenSeek", testBlobOpenSeek},
		{"ServeContentRanges", testBlobServeContentRanges},
		{"Delete", testBlobDelete},
		{"Walk", testBlobWalk},
		{"Replicas", testBlobReplicas},
		{"UploadChunked", testUploadChunked},
		{"UploadAlgorithms", testUploadAlgorithms},
		{"UploadOneChunk", testUploadOneChunk},
		{"UploadEmpty", testUploadEmpty},
		{"UploadAlternatingReplicas", testUploadAlternatingReplicas},
		{"UploadResumeAfterCrash", testUploadResumeAfterCrash},
		{"UploadReadError", testUploadReadError},
		{"UploadOffsetMismatch", testUploadOffsetMismatch},
		{"UploadDigestMismatch", testUploadDigestMismatch},
		{"UploadExistingBlob", testUploadExistingBlob},
		{"UploadUnknown", testUploadUnknown},
		{"UploadCancel", testUploadCancel},
		{"UploadExpire", testUploadExpire},
		{"UploadConcurrentSessions", testUploadConcurrentSessions},
		{"UploadSlowSession", testUploadSlowSession},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each test has a backend of its own
			tc.fn(t, s.New(t))
		})
	}
}

// content returns n deterministic pseudo-random bytes; seeds give
// different contents.
func blobBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 7})
	_, _ = r.Read(b)
	return b
}

// digestOf returns the digest of b with alg.
func hashOf(alg digest.Algorithm, b []byte) digest.Digest { return alg.FromBytes(b) }

// readBlob reads a whole stored blob and checks the size Open reports.
func readBlob(t testing.TB, blobs storage.Blobs, d digest.Digest) []byte {
	t.Helper()
	rc, size, err := blobs.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("Open(%s) = %v", shortDigest(d), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", shortDigest(d), err)
	}
	if int64(len(b)) != size {
		t.Fatalf("Open(%s) reported %d bytes and read %d", shortDigest(d), size, len(b))
	}
	return b
}

// checkBlob asserts that blob d is stored with exactly want.
func checkBlob(t testing.TB, blobs storage.Blobs, d digest.Digest, want []byte) {
	t.Helper()
	size, err := blobs.Stat(context.Background(), d)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("Stat(%s) = %d, %v; want %d", shortDigest(d), size, err, len(want))
	}
	if got := readBlob(t, blobs, d); !bytes.Equal(got, want) {
		t.Fatalf("blob %s: read %d bytes that differ from the %d stored", shortDigest(d), len(got), len(want))
	}
}

// checkAbsent asserts that no blob d is stored.
func checkNoBlob(t testing.TB, blobs storage.Blobs, d digest.Digest) {
	t.Helper()
	if size, err := blobs.Stat(context.Background(), d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Fatalf("Stat(%s) = %d, %v; want ErrBlobUnknown", shortDigest(d), size, err)
	}
	if rc, _, err := blobs.Open(context.Background(), d); !errors.Is(err, storage.ErrBlobUnknown) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Open(%s) = %v; want ErrBlobUnknown", shortDigest(d), err)
	}
}

// walk lists the stored blobs and their sizes.
func walkBlobs(t testing.TB, blobs storage.Blobs) map[digest.Digest]int64 {
	t.Helper()
	got := map[digest.Digest]int64{}
	err := blobs.Walk(context.Background(), func(d digest.Digest, size int64, modified time.Time) error {
		if modified.IsZero() {
			t.Errorf("Walk: %s without a modification time", shortDigest(d))
		}
		got[d] = size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk() = %v", err)
	}
	return got
}

func shortDigest(d digest.Digest) string {
	if len(d) > 19 {
		return string(d[:19]) + "…"
	}
	return string(d)
}

func putBlob(t testing.TB, blobs storage.Blobs, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	if n, err := blobs.Put(context.Background(), d, bytes.NewReader(b), int64(len(b))); err != nil || n != int64(len(b)) {
		t.Fatalf("Put(%d bytes) = %d, %v", len(b), n, err)
	}
	return d
}

// brokenReader returns its content, then err; it calls cancel (if any)
// first.
type brokenReader struct {
	r      io.Reader
	err    error
	cancel func()
}

func (f *brokenReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		if f.cancel != nil {
			f.cancel()
		}
		err = f.err
	}
	return n, err
}

var errBrokenPipe = errors.New("client went away")
