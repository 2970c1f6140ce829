package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// Batch sizes of the collector.
const (
	gcLinkBatch   = 1000 // links locked and decided per transaction
	gcWalkBatch   = 1000 // walked blobs looked up per query
	gcDeleteBatch = 64   // blobs locked, decided and deleted per transaction
)

// CollectGarbage implements storage.Collector with the protocol of the
// bbolt store (see the storage package documentation), one collector at
// a time across every process sharing the database: it holds a
// session-level advisory lock, and answers storage.ErrBusy while another
// holds it. bbolt serialises the collector's decisions against the
// writers by its single writer; here each decision is made by a statement
// that runs after the collector has locked the rows it decides about, and
// the writers that could change the decision lock the same rows:
//
//   - an untagged manifest is locked FOR UPDATE before it is re-checked
//     and deleted; tagging it (the foreign key), pushing an index that
//     requires it (FOR KEY SHARE) or pushing it again (the upsert) wait;
//   - a link is locked FOR UPDATE before it is re-checked and dropped; a
//     manifest push reads the links it needs FOR KEY SHARE, and a new
//     link or upload refreshes its time through the row;
//   - a blob's record is locked FOR UPDATE before its mark is read and
//     its bytes deleted; MarkBlob and LinkBlob upsert or update that row,
//     so they wait and land before the decision or after the deletion.
//     A blob with bytes but no record gets a placeholder record, with the
//     bytes' modification time as its mark, for the length of the
//     decision, so that a concurrent MarkBlob waits for it too.
//
// Times are the database's (now()), so that the replicas' clocks do not
// matter. The cutoff is the collection's start less the grace period.
func (db *DB) CollectGarbage(ctx context.Context, blobs storage.Blobs, opts storage.GCOptions) (storage.GCReport, error) {
	rep := storage.GCReport{Started: time.Now().UTC(), DryRun: opts.DryRun}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockGC).Scan(&locked); err != nil {
		return rep, err
	}
	if !locked {
		return rep, storage.ErrBusy
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, `SELECT pg_advisory_unlock($1)`, lockGC); err != nil {
			// The session keeps the lock: end it.
			_ = conn.Conn().Close(unlockCtx)
		}
	}()
	gc := collector{conn: conn, blobs: blobs, dry: opts.DryRun, rep: &rep}
	if opts.DryRun {
		gc.dropped = map[link]bool{}
	}
	if err := conn.QueryRow(ctx, `SELECT now() - $1 * interval '1 microsecond'`, opts.GracePeriod.Microseconds()).Scan(&gc.cutoff); err != nil {
		return rep, err
	}
	rows, err := conn.Query(ctx, `SELECT id FROM repositories ORDER BY name`)
	if err != nil {
		return rep, err
	}
	repos, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return rep, err
	}
	if opts.Untagged {
		for _, repo := range repos {
			if err := gc.deleteUntagged(ctx, repo); err != nil {
				return rep, err
			}
		}
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := gc.dropUnreferencedLinks(ctx, repo); err != nil {
			return rep, err
		}
	}
	if err := gc.deleteUnlinkedBlobs(ctx); err != nil {
		return rep, err
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// collector is one collection's state.
type collector struct {
	conn   *pgxpool.Conn // holds the advisory lock
	blobs  storage.Blobs
	cutoff time.Time
	dry    bool
	// dropped holds, in a dry run, the links a real run would have dropped
	// (which drops nothing), so that the blobs they would leave unlinked
	// count as freed.
	dropped map[link]bool
	rep     *storage.GCReport
}

// link is a repository's link to a blob.
type link struct {
	repo   int64
	digest string
}

// untaggedSQL selects the manifests of repository $1 created at or before
// $2 that no tag names, no manifest of the repository references as a
// child and whose subject, if any, is gone. $3, when not NULL, restricts
// the choice to those digests.
const untaggedSQL = `
	WITH referenced AS (SELECT DISTINCT unnest(children) AS digest FROM manifests WHERE repository = $1)
	SELECT m.digest FROM manifests m
	WHERE m.repository = $1 AND m.created <= $2
		AND ($3::text[] IS NULL OR m.digest = ANY($3))
		AND NOT EXISTS (SELECT FROM tags t WHERE t.repository = $1 AND t.digest = m.digest)
		AND NOT EXISTS (SELECT FROM referenced r WHERE r.digest = m.digest)
		AND (m.subject IS NULL OR NOT EXISTS (SELECT FROM manifests s WHERE s.repository = $1 AND s.digest = m.subject))`

// deleteUntagged deletes, in up to five passes (an index, then its
// children; an image, then its signatures), the untagged manifests
// untaggedSQL selects.
func (gc *collector) deleteUntagged(ctx context.Context, repo int64) error {
	for range 5 {
		rows, err := gc.conn.Query(ctx, untaggedSQL, repo, gc.cutoff, nil)
		if err != nil {
			return err
		}
		cands, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(cands) == 0 {
			return nil
		}
		if gc.dry {
			gc.rep.ManifestsDeleted += len(cands)
			return nil
		}
		n := 0
		err = retry(func() error {
			return pgx.BeginFunc(ctx, gc.conn, func(tx pgx.Tx) error {
				if err := lockRows(ctx, tx, `SELECT FROM manifests WHERE repository = $1 AND digest = ANY($2) ORDER BY digest FOR UPDATE`, repo, cands); err != nil {
					return err
				}
				// Decided again now that nothing can change it; the statement
				// sees every write committed before the locks were granted.
				ct, err := tx.Exec(ctx, `DELETE FROM manifests WHERE repository = $1 AND digest IN (`+untaggedSQL+`)`, repo, gc.cutoff, cands)
				n = int(ct.RowsAffected())
				return err
			})
		})
		if err != nil {
			return err
		}
		gc.rep.ManifestsDeleted += n
		if n == 0 || ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// unreferencedLinksSQL selects the links of repository $1 to blobs that no
// manifest there references and that were made before $2; $3, when not
// NULL, restricts the choice to those digests.
const unreferencedLinksSQL = `
	WITH referenced AS (SELECT DISTINCT unnest(blobs) AS digest FROM manifests WHERE repository = $1)
	SELECT l.digest FROM links l
	WHERE l.repository = $1 AND l.linked < $2
		AND ($3::text[] IS NULL OR l.digest = ANY($3))
		AND NOT EXISTS (SELECT FROM referenced r WHERE r.digest = l.digest)`

// dropUnreferencedLinks removes a repository's links to blobs that no
// manifest there references and that were linked before the cutoff.
func (gc *collector) dropUnreferencedLinks(ctx context.Context, repo int64) error {
	rows, err := gc.conn.Query(ctx, unreferencedLinksSQL, repo, gc.cutoff, nil)
	if err != nil {
		return err
	}
	cands, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if gc.dry {
		gc.rep.LinksRemoved += len(cands)
		for _, d := range cands {
			gc.dropped[link{repo, d}] = true
		}
		return nil
	}
	for batch := range slices.Chunk(cands, gcLinkBatch) {
		n := 0
		err := retry(func() error {
			return pgx.BeginFunc(ctx, gc.conn, func(tx pgx.Tx) error {
				if err := lockRows(ctx, tx, `SELECT FROM links WHERE repository = $1 AND digest = ANY($2) ORDER BY digest FOR UPDATE`, repo, batch); err != nil {
					return err
				}
				ct, err := tx.Exec(ctx, `DELETE FROM links WHERE repository = $1 AND digest IN (`+unreferencedLinksSQL+`)`, repo, gc.cutoff, batch)
				n = int(ct.RowsAffected())
				return err
			})
		})
		if err != nil {
			return err
		}
		gc.rep.LinksRemoved += n
	}
	return nil
}

// linked returns which of the digests some repository links, not
// counting, in a dry run, the links it would have dropped.
func (gc *collector) linked(ctx context.Context, q querier, ds []string) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT repository, digest FROM links WHERE digest = ANY($1)`, ds)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var l link
	_, err = pgx.ForEachRow(rows, []any{&l.repo, &l.digest}, func() error {
		if !gc.dropped[l] {
			out[l.digest] = true
		}
		return nil
	})
	return out, err
}

// lockRows runs a SELECT … FOR UPDATE and discards its rows.
func lockRows(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// blobCandidate is a stored blob that no repository linked when walked.
type blobCandidate struct {
	d       string
	size    int64
	modTime time.Time
}

// deleteUnlinkedBlobs walks the blob store, keeps the blobs some
// repository links, and decides about the others in small transactions.
func (gc *collector) deleteUnlinkedBlobs(ctx context.Context) error {
	var cands, walked []blobCandidate
	lookup := func() error {
		if len(walked) == 0 {
			return nil
		}
		ds := make([]string, len(walked))
		for i, c := range walked {
			ds[i] = c.d
		}
		linked, err := gc.linked(ctx, gc.conn, ds)
		if err != nil {
			return err
		}
		for _, c := range walked {
			if linked[c.d] {
				gc.rep.BlobsKept++
			} else {
				cands = append(cands, c)
			}
		}
		walked = walked[:0]
		return nil
	}
	err := gc.blobs.Walk(ctx, func(d digest.Digest, size int64, mod time.Time) error {
		walked = append(walked, blobCandidate{string(d), size, mod})
		if len(walked) < gcWalkBatch {
			return nil
		}
		return lookup()
	})
	if err == nil {
		err = lookup()
	}
	if err != nil {
		return err
	}
	for batch := range slices.Chunk(cands, gcDeleteBatch) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := gc.deleteBlobs(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// deleteBlobs decides about a batch of unlinked blobs and deletes those
// neither linked nor marked since the cutoff — bytes first, then the
// record — while their records are locked.
func (gc *collector) deleteBlobs(ctx context.Context, batch []blobCandidate) error {
	slices.SortFunc(batch, func(a, b blobCandidate) int { return strings.Compare(a.d, b.d) })
	ds := make([]string, len(batch))
	sizes := make([]int64, len(batch))
	mods := make([]time.Time, len(batch))
	for i, c := range batch {
		ds[i], sizes[i], mods[i] = c.d, c.size, c.modTime
	}
	tx, err := gc.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	// Placeholders for bytes without a record: the blob's own record if a
	// MarkBlob commits first, otherwise this transaction's, which a
	// concurrent MarkBlob waits for.
	rows, err := tx.Query(ctx, `
		INSERT INTO blobs (digest, size, marked)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[])
		ON CONFLICT (digest) DO NOTHING
		RETURNING digest`, ds, sizes, mods)
	if err != nil {
		return err
	}
	placeholders, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	// The marks as the locks are granted: a MarkBlob or LinkBlob that
	// committed meanwhile shows here; one that comes later waits.
	rows, err = tx.Query(ctx, `SELECT digest, marked FROM blobs WHERE digest = ANY($1) ORDER BY digest FOR UPDATE`, ds)
	if err != nil {
		return err
	}
	marks := map[string]time.Time{}
	var d string
	var marked time.Time
	if _, err := pgx.ForEachRow(rows, []any{&d, &marked}, func() error { marks[d] = marked; return nil }); err != nil {
		return err
	}
	// Linked since the walk: kept (and refreshed by the link anyway).
	linked, err := gc.linked(ctx, tx, ds)
	if err != nil {
		return err
	}
	var drop []string // records to delete: collected blobs, and unused placeholders
	for _, c := range batch {
		placeholder := slices.Contains(placeholders, c.d)
		mark, ok := marks[c.d]
		if !ok || linked[c.d] || !mark.Before(gc.cutoff) {
			if placeholder {
				drop = append(drop, c.d)
			}
			continue
		}
		gc.rep.BlobsDeleted++
		gc.rep.BytesReclaimed += c.size
		if gc.dry {
			continue
		}
		if err := gc.blobs.Delete(ctx, digest.Digest(c.d)); err != nil {
			return err
		}
		drop = append(drop, c.d)
	}
	if gc.dry {
		return nil // the rollback drops the placeholders
	}
	if len(drop) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM blobs WHERE digest = ANY($1)`, drop); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
