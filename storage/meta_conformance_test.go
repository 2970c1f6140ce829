package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/storagetest"
)

// boltSuite runs the metadata conformance suite against the bbolt DB.
var boltSuite = storagetest.MetaSuite{
	Open: func(t testing.TB, opts storagetest.MetaOptions) storagetest.MetaStore {
		db, err := storage.OpenDB(filepath.Join(t.TempDir(), "meta.db"), storage.DBOptions{AuditLimit: opts.AuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
}

func TestMetaConformance(t *testing.T) { boltSuite.Run(t) }

func BenchmarkMeta(b *testing.B) { boltSuite.Bench(b) }
