package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// Repositories implements storage.Meta, in byte order from the index on
// repositories.name. keep filters in Go, so the names come in pages.
func (db *DB) Repositories(ctx context.Context, last string, n int, keep func(string) bool) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	page := 1000
	if keep == nil && n > 0 {
		page = n
	}
	var out []string
	for {
		rows, err := db.pool.Query(ctx, `SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2`, last, page)
		if err != nil {
			return nil, err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if keep == nil || keep(name) {
				out = append(out, name)
				if len(out) == n {
					return out, nil
				}
			}
		}
		if len(names) < page {
			return out, nil
		}
		last = names[len(names)-1]
	}
}

// Tags implements storage.Meta: one query that walks the (repository,
// tag) primary key from last, and tells an unknown repository (no row)
// from one without tags (a row of NULL).
func (db *DB) Tags(ctx context.Context, repository, last string, n int) ([]string, error) {
	var limit *int // NULL: no limit
	if n >= 0 {
		limit = &n
	}
	rows, err := db.pool.Query(ctx, `
		SELECT t.tag FROM repositories r
		LEFT JOIN LATERAL (
			SELECT tag FROM tags WHERE repository = r.id AND tag > $2 ORDER BY tag LIMIT $3
		) t ON true
		WHERE r.name = $1`, repository, last, limit)
	if err != nil {
		return nil, err
	}
	tags, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, storage.ErrRepositoryUnknown
	}
	var out []string
	for _, t := range tags {
		if t != nil {
			out = append(out, *t)
		}
	}
	return out, nil
}

// DeleteTag implements storage.Meta.
func (db *DB) DeleteTag(ctx context.Context, repository, tag string) error {
	ct, err := db.pool.Exec(ctx, `
		DELETE FROM tags WHERE repository = (SELECT id FROM repositories WHERE name = $1) AND tag = $2`,
		repository, tag)
	if err == nil && ct.RowsAffected() == 0 {
		err = storage.ErrManifestUnknown
	}
	return err
}

// TagDetails implements storage.Meta, in tag order.
func (db *DB) TagDetails(ctx context.Context, repository string) ([]storage.TagInfo, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT t.tag, t.digest, t.updated FROM repositories r
		LEFT JOIN tags t ON t.repository = r.id
		WHERE r.name = $1 ORDER BY t.tag`, repository)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	var out []storage.TagInfo
	for rows.Next() {
		found = true
		var name, d *string
		var updated *time.Time
		if err := rows.Scan(&name, &d, &updated); err != nil {
			return nil, err
		}
		if name != nil {
			out = append(out, storage.TagInfo{Name: *name, Digest: digest.Digest(*d), Updated: updated.UTC()})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, storage.ErrRepositoryUnknown
	}
	return out, nil
}
