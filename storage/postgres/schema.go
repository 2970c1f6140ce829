package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Advisory lock keys (one 64-bit key space per database): "moat" in the
// high half, the purpose in the low.
const (
	lockMigrate   int64 = 0x6d6f6174_00000001 // schema migrations at Open
	lockGC        int64 = 0x6d6f6174_00000002 // one garbage collector at a time
	lockDocuments int64 = 0x6d6f6174_00000003 // UpdateDocuments, one writer at a time
)

// migrations[i] moves a database from schema version i to i+1, in one
// transaction. Append only: a released migration never changes.
var migrations = []string{
	0: schemaV1,
}

// schemaVersion is the version this code reads and writes.
var schemaVersion = len(migrations)

// schemaV1 mirrors the bbolt buckets (see doc.go). Every key column that
// is listed in order is COLLATE "C", so that order is byte order, as in
// bbolt, whatever the database's default collation.
const schemaV1 = `
CREATE TABLE repositories (
	id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text COLLATE "C" NOT NULL UNIQUE
);

CREATE TABLE blobs (
	digest text COLLATE "C" PRIMARY KEY,
	size   bigint NOT NULL,
	marked timestamptz NOT NULL
) WITH (fillfactor = 80);

CREATE TABLE links (
	repository bigint NOT NULL REFERENCES repositories (id),
	digest     text COLLATE "C" NOT NULL REFERENCES blobs (digest),
	size       bigint NOT NULL,
	linked     timestamptz NOT NULL,
	PRIMARY KEY (repository, digest)
) WITH (fillfactor = 80);
CREATE INDEX links_by_digest ON links (digest);

CREATE TABLE manifests (
	repository    bigint NOT NULL REFERENCES repositories (id),
	digest        text COLLATE "C" NOT NULL,
	media_type    text NOT NULL,
	artifact_type text NOT NULL,
	subject       text COLLATE "C",
	created       timestamptz NOT NULL,
	size          bigint NOT NULL,
	blobs         text[] COLLATE "C" NOT NULL,
	children      text[] COLLATE "C" NOT NULL,
	annotations   jsonb,
	raw           bytea NOT NULL,
	PRIMARY KEY (repository, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repository, subject, digest) WHERE subject IS NOT NULL;

CREATE TABLE tags (
	repository bigint NOT NULL,
	tag        text COLLATE "C" NOT NULL,
	digest     text COLLATE "C" NOT NULL,
	updated    timestamptz NOT NULL,
	PRIMARY KEY (repository, tag),
	FOREIGN KEY (repository, digest) REFERENCES manifests (repository, digest) ON DELETE CASCADE
);
CREATE INDEX tags_by_digest ON tags (repository, digest);

CREATE TABLE uploads (
	id    text COLLATE "C" PRIMARY KEY,
	state jsonb NOT NULL
);

CREATE TABLE documents (
	collection text COLLATE "C" NOT NULL,
	key        text COLLATE "C" NOT NULL,
	value      bytea NOT NULL,
	PRIMARY KEY (collection, key)
);

CREATE TABLE audit (
	seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	entry bytea NOT NULL
);
`

// migrate brings the schema to schemaVersion. Replicas starting together
// take turns on an advisory lock, so the first migrates and the others
// find the work done.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockMigrate); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockMigrate); err != nil {
			// The session keeps the lock: drop the connection, which frees it.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	_, err = conn.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS moat_schema (
			one     boolean PRIMARY KEY DEFAULT true CHECK (one),
			version integer NOT NULL
		);
		INSERT INTO moat_schema (version) VALUES (0) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT version FROM moat_schema").Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("metadata schema version %d is newer than this moat understands (%d)", v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE moat_schema SET version = $1", v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
		}
	}
	return nil
}
