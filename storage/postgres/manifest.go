package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PutManifest implements storage.Meta, in one transaction sent as one
// batch (begin, create the repository if needed, check, write), then a
// commit or a rollback. The links of the blobs m references (and, with
// requireChildren, its child manifests) are read FOR KEY SHARE: garbage
// collection cannot drop them until the manifest is committed, and then
// sees that it references them. A transaction PostgreSQL chose to end
// (a deadlock) is tried again. The manifest's created time is the
// database's now(), not m.Created: garbage collection compares it with
// the database's clock, whatever the replicas' clocks say.
func (db *DB) PutManifest(ctx context.Context, repository string, m *storage.Manifest, tags []string, requireChildren bool) error {
	tags = uniqueTags(tags)
	return retry(func() error { return db.putManifest(ctx, repository, m, tags, requireChildren) })
}

func (db *DB) putManifest(ctx context.Context, repository string, m *storage.Manifest, tags []string, requireChildren bool) error {
	var annotations any // SQL NULL when there are none
	if len(m.Annotations) > 0 {
		annotations = m.Annotations
	}
	var subject *string
	if m.Subject != "" {
		s := string(m.Subject)
		subject = &s
	}

	var linked, children []string
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	// A name created concurrently makes this insert wait, then do
	// nothing; the statements below see the committed row.
	b.Queue(`INSERT INTO repositories (name) SELECT $1 WHERE NOT EXISTS (SELECT FROM repositories WHERE name = $1)
		ON CONFLICT (name) DO NOTHING`, repository)
	if len(m.Blobs) > 0 {
		b.Queue(`SELECT digest FROM links WHERE repository = (SELECT id FROM repositories WHERE name = $1)
			AND digest = ANY($2) ORDER BY digest FOR KEY SHARE`, repository, digestStrings(m.Blobs)).Query(collectStrings(&linked))
	}
	if requireChildren && len(m.Manifests) > 0 {
		b.Queue(`SELECT digest FROM manifests WHERE repository = (SELECT id FROM repositories WHERE name = $1)
			AND digest = ANY($2) ORDER BY digest FOR KEY SHARE`, repository, digestStrings(m.Manifests)).Query(collectStrings(&children))
	}
	b.Queue(`
		INSERT INTO manifests (repository, digest, media_type, artifact_type, subject, created, size, blobs, children, annotations, raw)
		VALUES ((SELECT id FROM repositories WHERE name = $1), $2, $3, $4, $5, now(), $6, $7, $8, $9, $10)
		ON CONFLICT (repository, digest) DO UPDATE SET
			media_type = excluded.media_type, artifact_type = excluded.artifact_type,
			subject = excluded.subject, created = excluded.created, size = excluded.size,
			blobs = excluded.blobs, children = excluded.children,
			annotations = excluded.annotations, raw = excluded.raw`,
		repository, string(m.Digest), m.MediaType, m.ArtifactType, subject, int64(len(m.Raw)),
		digestStrings(m.Blobs), digestStrings(m.Manifests), annotations, nonNil(m.Raw))
	if len(tags) > 0 {
		// A tag set again to the manifest it names keeps its time.
		b.Queue(`
			INSERT INTO tags (repository, tag, digest, updated)
			SELECT r.id, tag, $3, now() FROM repositories r, unnest($2::text[]) AS tag WHERE r.name = $1
			ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated
			WHERE tags.digest <> excluded.digest`,
			repository, tags, string(m.Digest))
	}
	br := db.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	if err := br.Close(); err != nil {
		return err
	}
	// The writes above are undone by the rollback if a check fails.
	if d := firstMissing(m.Blobs, linked); d != "" {
		return &storage.MissingError{Digest: d}
	}
	if requireChildren {
		if d := firstMissing(m.Manifests, children); d != "" {
			return &storage.MissingError{Digest: d, Manifest: true}
		}
	}
	return tx.Commit(ctx)
}

func collectStrings(dst *[]string) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		var err error
		*dst, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}
}

// firstMissing returns the first of want that is not in have.
func firstMissing(want []digest.Digest, have []string) digest.Digest {
	for _, d := range want {
		if !slices.Contains(have, string(d)) {
			return d
		}
	}
	return ""
}

// uniqueTags sorts the tags and drops repeated ones, which one upsert
// cannot set twice. Sorted, concurrent pushes lock the tags they share in
// the same order, and cannot deadlock.
func uniqueTags(tags []string) []string {
	if len(tags) < 2 {
		return tags
	}
	return slices.Compact(slices.Sorted(slices.Values(tags)))
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// isDigestRef tells a digest reference from a tag: tags cannot hold ':'.
func isDigestRef(ref string) bool { return strings.IndexByte(ref, ':') >= 0 }

// The manifest lookups, each one query: the repository row is always
// there when the repository is, so no row means ErrRepositoryUnknown and
// a row of NULLs ErrManifestUnknown. Without the body the raw bytes are
// not read.
const (
	manifestHeadColumns = `m.digest, m.media_type, m.artifact_type, m.subject, m.created, m.size`
	manifestBodyColumns = manifestHeadColumns + `, m.blobs, m.children, m.annotations, m.raw`
	byTag               = ` FROM repositories r
		LEFT JOIN tags t ON t.repository = r.id AND t.tag = $2
		LEFT JOIN manifests m ON m.repository = r.id AND m.digest = t.digest
		WHERE r.name = $1`
	byDigest = ` FROM repositories r
		LEFT JOIN manifests m ON m.repository = r.id AND m.digest = $2
		WHERE r.name = $1`
	headByTag    = `SELECT ` + manifestHeadColumns + byTag
	headByDigest = `SELECT ` + manifestHeadColumns + byDigest
	getByTag     = `SELECT ` + manifestBodyColumns + byTag
	getByDigest  = `SELECT ` + manifestBodyColumns + byDigest
)

// Manifest implements storage.Meta.
func (db *DB) Manifest(ctx context.Context, repository, reference string, body bool) (*storage.Manifest, error) {
	var sql string
	switch {
	case body && isDigestRef(reference):
		sql = getByDigest
	case body:
		sql = getByTag
	case isDigestRef(reference):
		sql = headByDigest
	default:
		sql = headByTag
	}
	var (
		d, mediaType, artifactType, subject *string
		created                             *time.Time
		size                                *int64
		blobs, children                     []string
		annotations                         map[string]string
		raw                                 []byte
	)
	dest := []any{&d, &mediaType, &artifactType, &subject, &created, &size}
	if body {
		dest = append(dest, &blobs, &children, &annotations, &raw)
	}
	err := db.pool.QueryRow(ctx, sql, repository, reference).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrRepositoryUnknown
	}
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, storage.ErrManifestUnknown
	}
	m := &storage.Manifest{
		Digest:       digest.Digest(*d),
		MediaType:    *mediaType,
		ArtifactType: *artifactType,
		Created:      created.UTC(),
		Size:         *size,
	}
	if subject != nil {
		m.Subject = digest.Digest(*subject)
	}
	if body {
		m.Blobs, m.Manifests = toDigests(blobs), toDigests(children)
		if len(annotations) > 0 {
			m.Annotations = annotations
		}
		m.Raw = nonNil(raw)
	}
	return m, nil
}

// toDigests converts text[] back to digests; none is nil, as bbolt has it.
func toDigests(ss []string) []digest.Digest {
	if len(ss) == 0 {
		return nil
	}
	out := make([]digest.Digest, len(ss))
	for i, s := range ss {
		out[i] = digest.Digest(s)
	}
	return out
}

// DeleteManifest implements storage.Meta. Its tags go with it (ON DELETE
// CASCADE); its referrers entry is the row itself. The manifest and then
// its tags, in tag order, are locked first, the order in which a push
// locks its manifest and the tags it moves: a push and a delete sharing
// tags wait for each other instead of deadlocking.
func (db *DB) DeleteManifest(ctx context.Context, repository string, d digest.Digest) error {
	return retry(func() error {
		var deleted int64
		b := &pgx.Batch{}
		b.BeginTx(pgx.TxOptions{})
		b.Queue(`SELECT FROM manifests WHERE repository = (SELECT id FROM repositories WHERE name = $1) AND digest = $2
			FOR UPDATE`, repository, string(d))
		b.Queue(`SELECT FROM tags WHERE repository = (SELECT id FROM repositories WHERE name = $1) AND digest = $2
			ORDER BY tag FOR UPDATE`, repository, string(d))
		b.Queue(`DELETE FROM manifests WHERE repository = (SELECT id FROM repositories WHERE name = $1) AND digest = $2`,
			repository, string(d)).Exec(func(ct pgconn.CommandTag) error { deleted = ct.RowsAffected(); return nil })
		br := db.pool.SendBatch(ctx, b)
		tx := br.Tx()
		defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
		if err := br.Close(); err != nil {
			return err
		}
		if deleted == 0 {
			return storage.ErrManifestUnknown
		}
		return tx.Commit(ctx)
	})
}

// ManifestDigests implements storage.Meta, in digest order.
func (db *DB) ManifestDigests(ctx context.Context, repository string) ([]digest.Digest, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT m.digest FROM repositories r
		LEFT JOIN manifests m ON m.repository = r.id
		WHERE r.name = $1 ORDER BY m.digest`, repository)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, storage.ErrRepositoryUnknown
	}
	var out []digest.Digest
	for _, d := range ds {
		if d != nil {
			out = append(out, digest.Digest(*d))
		}
	}
	return out, nil
}

// Referrers implements storage.Meta: the manifests whose subject is d, in
// digest order, from the subject index.
func (db *DB) Referrers(ctx context.Context, repository string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT media_type, digest, size, artifact_type, annotations FROM manifests
		WHERE repository = (SELECT id FROM repositories WHERE name = $1) AND subject = $2
			AND ($3 = '' OR artifact_type = $3)
		ORDER BY digest`, repository, string(d), artifactType)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ocispec.Descriptor{}
	for rows.Next() {
		var desc ocispec.Descriptor
		var annotations map[string]string
		if err := rows.Scan(&desc.MediaType, &desc.Digest, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, err
		}
		if len(annotations) > 0 {
			desc.Annotations = annotations
		}
		out = append(out, desc)
	}
	return out, rows.Err()
}
