package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/moat-registry/moat/storage/postgres"
	"github.com/moat-registry/moat/storage/postgres/pgtest"
)

// TestOpenTogether: replicas starting at once on an empty database
// migrate it once (the advisory lock), and all start.
func TestOpenTogether(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	var wg sync.WaitGroup
	dbs := make([]*postgres.DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(ctx, dsn, postgres.Options{}) })
	}
	wg.Wait()
	for i, db := range dbs {
		if errs[i] != nil {
			t.Errorf("replica %d: Open() = %v", i, errs[i])
			continue
		}
		if err := db.Check(ctx); err != nil {
			t.Errorf("replica %d: Check() = %v", i, err)
		}
		db.Close()
	}
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	db := openDSN(t, dsn, postgres.Options{})
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `UPDATE moat_schema SET version = version + 1 RETURNING version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err == nil {
		t.Error("Check() passed on a schema of another version")
	}
	second, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err == nil {
		second.Close()
		t.Fatal("Open() accepted a newer schema")
	}
	for _, want := range []string{"schema version " + strconv.Itoa(v), "newer than this moat understands", "postgres@127.0.0.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx := context.Background()
	if db, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", postgres.Options{}); err == nil {
		db.Close()
		t.Fatal("Open() of an unreachable server succeeded")
	}
	if db, err := postgres.Open(ctx, "::not a dsn", postgres.Options{}); err == nil {
		db.Close()
		t.Fatal("Open() of a malformed DSN succeeded")
	}
}
