package s3_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/s3"
	"github.com/moat-registry/moat/storage/s3/s3test"
	"github.com/moat-registry/moat/storage/storagetest"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

// backend is one bucket of the shared gateway and one bbolt DB, which
// keeps the upload states and marks of every instance — the replicas.
type backend struct {
	opts s3.Options
	db   *storage.DB
}

// newBackend makes a backend with a new bucket; adjust changes the
// store options.
func newBackend(t testing.TB, adjust func(*s3.Options)) *backend {
	opts := s3test.Bucket(t)
	opts.PartSize = s3.MinPartSize
	if adjust != nil {
		adjust(&opts)
	}
	db, err := storage.OpenDB(filepath.Join(t.TempDir(), "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &backend{opts: opts, db: db}
}

// Open implements storagetest.BlobBackend.
func (b *backend) Open(t testing.TB) storagetest.BlobStore {
	st := b.store(t)
	return storagetest.BlobStore{Blobs: st, Uploads: st}
}

func (b *backend) store(t testing.TB) *s3.Store {
	st, err := s3.New(context.Background(), b.opts, b.db, b.db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func suite(adjust func(*s3.Options)) storagetest.BlobSuite {
	return storagetest.BlobSuite{New: func(t testing.TB) storagetest.BlobBackend { return newBackend(t, adjust) }}
}

func TestBlobConformance(t *testing.T) { suite(nil).Run(t) }

// TestBlobConformanceOptions runs the suite again with a key prefix, the
// default part size and no CRC32 checksums on uploads.
func TestBlobConformanceOptions(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite again, with other options")
	}
	suite(func(o *s3.Options) {
		o.Prefix = "registry/moat"
		o.PartSize = 0
		o.ChecksumWhenRequired = true
		o.Concurrency = 1
	}).Run(t)
}

// BenchmarkBlobs runs the blob benchmarks against the gateway with the
// store's default options (8 MiB parts, two in flight).
func BenchmarkBlobs(b *testing.B) {
	suite(func(o *s3.Options) { o.PartSize = 0 }).Bench(b)
}
