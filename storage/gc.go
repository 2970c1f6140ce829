package storage

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// gcBatch is how many blobs garbage collection decides on and deletes in
// one write transaction, while every other writer waits.
const gcBatch = 32

// gcDeleteTimeout bounds the delete of one blob's bytes (an object
// store's DELETE), so that a hung call cannot hold the write lock.
const gcDeleteTimeout = 30 * time.Second

// GCOptions shape a garbage collection.
type GCOptions struct {
	// GracePeriod protects what was uploaded, mounted or linked this
	// recently, so a push that has sent its blobs but not yet its manifest
	// loses nothing.
	GracePeriod time.Duration
	// Untagged also deletes manifests that no tag names, no other manifest
	// references and whose subject (for referrers) is gone.
	Untagged bool
	// DryRun counts what would go without changing anything.
	DryRun bool
}

// GCReport says what a collection removed.
type GCReport struct {
	Started          time.Time `json:"startedAt"`
	Finished         time.Time `json:"finishedAt"`
	ManifestsDeleted int       `json:"manifestsDeleted"`
	LinksRemoved     int       `json:"linksRemoved"`
	BlobsDeleted     int       `json:"blobsDeleted"`
	BytesReclaimed   int64     `json:"bytesReclaimed"`
	BlobsKept        int       `json:"blobsKept"`
	DryRun           bool      `json:"dryRun"`
}

// CollectGarbage removes what nothing references, online, while pushes
// continue. The protocol (see the package documentation) is: (1)
// optionally delete untagged manifests; (2) in each repository, drop the
// links to blobs no manifest references and that were not linked within
// the grace period; (3) delete the bytes of blobs no repository links
// and that were not marked within the grace period — each decided and
// removed inside a write transaction of the collector's own, so no upload
// can mark the blob in between.
func (s *DB) CollectGarbage(ctx context.Context, blobs Blobs, opts GCOptions) (GCReport, error) {
	rep := GCReport{Started: time.Now().UTC(), DryRun: opts.DryRun}
	cutoff := time.Now().Add(-opts.GracePeriod)
	repos, err := s.Repositories(ctx, "", -1, nil)
	if err != nil {
		return rep, err
	}
	if opts.Untagged {
		for _, repo := range repos {
			n, err := s.deleteUntagged(ctx, repo, cutoff, opts.DryRun)
			if err != nil {
				return rep, err
			}
			rep.ManifestsDeleted += n
		}
	}
	// A dry run drops nothing, so it remembers the links it would drop
	// and counts the blobs they would leave unlinked.
	var dropped map[string]bool
	if opts.DryRun {
		dropped = map[string]bool{}
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		n, err := s.dropUnreferencedLinks(repo, cutoff, dropped)
		if err != nil {
			return rep, err
		}
		rep.LinksRemoved += n
	}
	if err := s.deleteUnlinkedBlobs(ctx, blobs, cutoff, dropped, &rep); err != nil {
		return rep, err
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// deleteUntagged deletes, in passes, manifests created before cutoff that
// no tag names, no manifest of the repository references and whose
// subject is gone (an index's children are referenced; a signature is kept
// while its image is there).
func (s *DB) deleteUntagged(ctx context.Context, repo string, cutoff time.Time, dry bool) (int, error) {
	total := 0
	for range 5 {
		n := 0
		err := s.updateManifests(func(tx *bolt.Tx) error {
			n = 0
			rb, ok := openRepo(tx, repo)
			if !ok {
				return nil
			}
			referenced := map[string]bool{}
			type cand struct {
				d       digest.Digest
				subject digest.Digest
				created time.Time
			}
			var cands []cand
			err := rb.manifests.ForEach(func(k, v []byte) error {
				m, err := decodeManifest(digest.Digest(k), v, true)
				if err != nil {
					return nil // unreadable: leave it
				}
				for _, c := range m.Manifests {
					referenced[string(c)] = true
				}
				cands = append(cands, cand{m.Digest, m.Subject, m.Created})
				return nil
			})
			if err != nil {
				return err
			}
			for _, c := range cands {
				if referenced[string(c.d)] || c.created.After(cutoff) {
					continue
				}
				if c.subject != "" && rb.manifests.Get([]byte(c.subject)) != nil {
					continue
				}
				prefix := pairKey(string(c.d), "")
				if k, _ := rb.tagsByDigest.Cursor().Seek(prefix); bytes.HasPrefix(k, prefix) {
					continue // tagged
				}
				n++
				if !dry {
					if err := deleteManifestTx(rb, c.d); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n == 0 || dry || ctx.Err() != nil {
			break
		}
	}
	return total, nil
}

// dropUnreferencedLinks removes a repository's links to blobs that no
// manifest there references and that were linked before cutoff. With
// dryRun set it removes nothing and adds the links to dryRun instead
// (keyed by repository, NUL, digest).
func (s *DB) dropUnreferencedLinks(repo string, cutoff time.Time, dryRun map[string]bool) (int, error) {
	n := 0
	err := s.writes.update(func(tx *bolt.Tx) error {
		n = 0
		rb, ok := openRepo(tx, repo)
		if !ok {
			return nil
		}
		referenced := map[string]bool{}
		err := rb.manifests.ForEach(func(k, v []byte) error {
			blobs, err := manifestBlobs(v)
			if err != nil {
				// Unreadable: keep everything this repository links.
				return errKeepAll
			}
			for _, b := range blobs {
				referenced[b] = true
			}
			return nil
		})
		if errors.Is(err, errKeepAll) {
			return nil
		}
		if err != nil {
			return err
		}
		var drop [][]byte
		err = rb.links.ForEach(func(k, v []byte) error {
			if referenced[string(k)] {
				return nil
			}
			if _, linked := decodeLinkRecord(v); linked.Before(cutoff) {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		n = len(drop)
		if dryRun != nil {
			for _, k := range drop {
				dryRun[string(pairKey(repo, string(k)))] = true
			}
			return nil
		}
		for _, k := range drop {
			if err := rb.links.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

var errKeepAll = errors.New("keep all links")

// manifestBlobs reads the blob digests of a manifest record.
func manifestBlobs(v []byte) ([]string, error) {
	if len(v) == 0 || v[0] != manifestRecordV1 {
		return nil, errCorruptRecord
	}
	r := recordReader{b: v[1:]}
	r.skip() // mediaType
	r.skip() // artifactType
	r.skip() // subject
	r.varint()
	var out []string
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		out = append(out, r.string())
	}
	return out, r.err
}

// deleteUnlinkedBlobs deletes the bytes of blobs no repository links. In
// a dry run (dryRun not nil) it deletes nothing, and the links a real run
// would have dropped do not count.
func (s *DB) deleteUnlinkedBlobs(ctx context.Context, blobs Blobs, cutoff time.Time, dryRun map[string]bool, rep *GCReport) error {
	dry := dryRun != nil
	live := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		repos := tx.Bucket([]byte(bucketRepos))
		return repos.ForEachBucket(func(name []byte) error {
			return repos.Bucket(name).Bucket([]byte(bucketLinks)).ForEach(func(k, _ []byte) error {
				if !dryRun[string(pairKey(string(name), string(k)))] {
					live[string(k)] = true
				}
				return nil
			})
		})
	})
	if err != nil {
		return err
	}
	type cand struct {
		d       digest.Digest
		size    int64
		modTime time.Time
	}
	var cands []cand
	err = blobs.Walk(ctx, func(d digest.Digest, size int64, mod time.Time) error {
		if live[string(d)] {
			rep.BlobsKept++
			return nil
		}
		cands = append(cands, cand{d, size, mod})
		return nil
	})
	if err != nil {
		return err
	}
	// Decide and delete in write transactions: an upload marks a blob in a
	// transaction before it commits or reuses the bytes, so it either runs
	// before (the mark is seen, the blob kept) or after (the bytes are gone
	// and the upload writes its own). Each batch is a transaction of its
	// own, not one shared by the group committer: writers wait for it,
	// so it is small and each delete has a deadline, and a failure of
	// another writer never runs it again.
	for len(cands) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := cands[:min(len(cands), gcBatch)]
		cands = cands[len(batch):]
		var deleted int
		var reclaimed int64
		var deleteErr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			deleted, reclaimed = 0, 0
			records := tx.Bucket([]byte(bucketBlobs))
			for _, c := range batch {
				if rec := records.Get([]byte(c.d)); rec != nil {
					if _, marked := decodeLinkRecord(rec); !marked.Before(cutoff) {
						continue
					}
				} else if !c.modTime.Before(cutoff) {
					continue
				}
				if !dry {
					// The record goes even if the delete fails: bytes
					// without a record are whole (a delete removes them or
					// not) and collected later, while a record without
					// bytes would let a mount link to nothing.
					if err := records.Delete([]byte(c.d)); err != nil {
						return err
					}
					dctx, cancel := context.WithTimeout(ctx, s.gcDeleteTimeout)
					deleteErr = blobs.Delete(dctx, c.d)
					cancel()
					if deleteErr != nil {
						return nil // commit what was done
					}
				}
				deleted++
				reclaimed += c.size
			}
			return nil
		})
		if err != nil {
			return err
		}
		rep.BlobsDeleted += deleted
		rep.BytesReclaimed += reclaimed
		if deleteErr != nil {
			return deleteErr
		}
	}
	return nil
}
