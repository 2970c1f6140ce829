package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// MarkBlob implements storage.Marker: the blob's record gets the current
// time, which keeps garbage collection from deleting its bytes for a
// grace period. The blob store calls it before committing bytes. While
// the collector holds the record locked, deciding about the blob, the
// upsert waits: it lands before the decision or after the deletion, as
// with bbolt's single writer.
func (db *DB) MarkBlob(ctx context.Context, d digest.Digest, size int64) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO blobs (digest, size, marked) VALUES ($1, $2, now())
		ON CONFLICT (digest) DO UPDATE SET size = excluded.size, marked = excluded.marked`,
		string(d), size)
	return err
}

// linkSQL refreshes the blob's mark and links it, in one statement; it
// links nothing when the blob has no record or the repository does not
// exist yet.
const linkSQL = `
	WITH blob AS (
		UPDATE blobs SET size = $3, marked = now() WHERE digest = $2 RETURNING digest
	)
	INSERT INTO links (repository, digest, size, linked)
	SELECT r.id, blob.digest, $3, now() FROM blob, repositories r WHERE r.name = $1
	ON CONFLICT (repository, digest) DO UPDATE SET size = excluded.size, linked = excluded.linked`

// LinkBlob implements storage.Meta. The blob must have its record (a
// mark): garbage collection removes the record with the bytes, so a link
// never points at nothing. The link refreshes the mark.
func (db *DB) LinkBlob(ctx context.Context, repository string, d digest.Digest, size int64) error {
	tag, err := db.pool.Exec(ctx, linkSQL, repository, string(d), size)
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	// A new repository, or a blob without a record: decide in a
	// transaction, so that a refused link creates no repository.
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM blobs WHERE digest = $1)", string(d)).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return storage.ErrBlobUnknown
		}
		if _, err := ensureRepository(ctx, tx, repository); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, linkSQL, repository, string(d), size)
		if err == nil && tag.RowsAffected() != 1 {
			err = storage.ErrBlobUnknown // collected meanwhile
		}
		return err
	})
}

// BlobLink implements storage.Meta.
func (db *DB) BlobLink(ctx context.Context, repository string, d digest.Digest) (int64, error) {
	var size int64
	err := db.pool.QueryRow(ctx, `
		SELECT l.size FROM links l JOIN repositories r ON r.id = l.repository
		WHERE r.name = $1 AND l.digest = $2`, repository, string(d)).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, storage.ErrBlobUnknown
	}
	return size, err
}

// FindBlob implements storage.Meta: the first repository in lexical order
// that keep accepts.
func (db *DB) FindBlob(ctx context.Context, d digest.Digest, keep func(string) bool) (string, int64, error) {
	sql := `SELECT r.name, l.size FROM links l JOIN repositories r ON r.id = l.repository
		WHERE l.digest = $1 ORDER BY r.name`
	if keep == nil {
		sql += " LIMIT 1"
	}
	rows, err := db.pool.Query(ctx, sql, string(d))
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var repo string
		var size int64
		if err := rows.Scan(&repo, &size); err != nil {
			return "", 0, err
		}
		if keep == nil || keep(repo) {
			return repo, size, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", 0, err
	}
	return "", 0, storage.ErrBlobUnknown
}

// UnlinkBlob implements storage.Meta.
func (db *DB) UnlinkBlob(ctx context.Context, repository string, d digest.Digest) error {
	tag, err := db.pool.Exec(ctx, `
		DELETE FROM links WHERE repository = (SELECT id FROM repositories WHERE name = $1) AND digest = $2`,
		repository, string(d))
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrBlobUnknown
	}
	return err
}
