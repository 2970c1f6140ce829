package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/moat-registry/moat/storage/postgres"
	"github.com/moat-registry/moat/storage/postgres/pgtest"
	"github.com/moat-registry/moat/storage/storagetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open opens a DB on a new database of the test cluster.
func open(t testing.TB, opts postgres.Options) *postgres.DB {
	t.Helper()
	return openDSN(t, pgtest.Database(t), opts)
}

// openDSN opens another DB (a replica) on the database dsn names.
func openDSN(t testing.TB, dsn string, opts postgres.Options) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var suite = storagetest.MetaSuite{
	Open: func(t testing.TB, opts storagetest.MetaOptions) storagetest.MetaStore {
		return open(t, postgres.Options{AuditLimit: opts.AuditLimit})
	},
	StoreSetsCreated: true, // the database's now()
}

func TestMetaConformance(t *testing.T) { suite.Run(t) }

func BenchmarkMeta(b *testing.B) { suite.Bench(b) }
