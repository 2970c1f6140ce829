package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/storagetest"
)

// diskSuite runs the blob conformance suite against the disk store, with
// the bbolt DB keeping upload states and marks. Every instance opens the
// same directory, as a restarted process does.
var diskSuite = storagetest.BlobSuite{
	New: func(t testing.TB) storagetest.BlobBackend {
		dir := t.TempDir()
		db, err := storage.OpenDB(filepath.Join(dir, "meta.db"), storage.DBOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return storagetest.BlobBackendFunc(func(t testing.TB) storagetest.BlobStore {
			blobs, err := storage.NewDiskBlobs(dir, db)
			if err != nil {
				t.Fatal(err)
			}
			uploads, err := storage.NewDiskUploads(dir, blobs, db)
			if err != nil {
				t.Fatal(err)
			}
			return storagetest.BlobStore{Blobs: blobs, Uploads: uploads}
		})
	},
}

func TestBlobConformance(t *testing.T) { diskSuite.Run(t) }

func BenchmarkBlobs(b *testing.B) { diskSuite.Bench(b) }
