package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket names of the metadata file. Every top-level bucket is created in
// one transaction when the file is opened.
const (
	bucketMeta    = "meta"    // schema version
	bucketRepos   = "repos"   // <repository> → nested buckets below
	bucketBlobs   = "blobs"   // <digest> → linkRecord: every stored blob, with its GC mark
	bucketUploads = "uploads" // <upload id> → UploadState (JSON)
	bucketDocs    = "docs"    // <collection> → <key> → JSON document
	bucketAudit   = "audit"   // <8-byte sequence> → audit entry (JSON)

	// Nested in each repository's bucket.
	bucketManifests    = "m" // <digest> → manifest record
	bucketTags         = "t" // <tag> → <digest>
	bucketTagsByDigest = "d" // <digest> 0x00 <tag> → nothing
	bucketLinks        = "b" // <digest> → size (uvarint): blobs visible here
	bucketReferrers    = "r" // <subject digest> 0x00 <referrer digest> → descriptor (JSON)

	keySchema = "schema"
)

// schemaVersion is the version of the layout above. migrations[i] moves a
// file from version i to i+1.
const schemaVersion = 3

var migrations = []func(tx *bolt.Tx) error{
	0: func(*bolt.Tx) error { return nil }, // a new file: the buckets are created by open
	1: migrateTagTimes,
	2: migrateLinkTimes,
}

// migrateLinkTimes (schema 2 → 3) adds the link time to every blob link;
// links of a version-2 file get the migration's time, so garbage
// collection's grace period protects them as if just linked.
func migrateLinkTimes(tx *bolt.Tx) error {
	now := time.Now()
	repos := tx.Bucket([]byte(bucketRepos))
	return repos.ForEachBucket(func(name []byte) error {
		links := repos.Bucket(name).Bucket([]byte(bucketLinks))
		if links == nil {
			return nil
		}
		var keys, vals [][]byte
		err := links.ForEach(func(k, v []byte) error {
			size, _ := decodeLinkRecord(v)
			keys = append(keys, append([]byte(nil), k...))
			vals = append(vals, linkRecord(size, now))
			return nil
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := links.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// migrateTagTimes (schema 1 → 2) adds the time a tag was set to every tag
// value; tags of a version-1 file get the migration's time.
func migrateTagTimes(tx *bolt.Tx) error {
	now := time.Now()
	return tx.Bucket([]byte(bucketRepos)).ForEachBucket(func(name []byte) error {
		tags := tx.Bucket([]byte(bucketRepos)).Bucket(name).Bucket([]byte(bucketTags))
		if tags == nil {
			return nil
		}
		var keys, vals [][]byte
		err := tags.ForEach(func(k, v []byte) error {
			if bytes.IndexByte(v, 0) < 0 {
				keys = append(keys, append([]byte(nil), k...))
				vals = append(vals, encodeTag(digest.Digest(v), now))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := tags.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// DB is the bbolt metadata store: repositories, upload sessions, documents
// and the audit log. It implements Meta, UploadStates, Documents and AuditLog.
type DB struct {
	db     *bolt.DB
	writes committer
	heads  headCache
	// AuditLimit bounds the audit log; the oldest entries go first.
	auditLimit uint64
	// gcDeleteTimeout bounds one blob delete of garbage collection.
	gcDeleteTimeout time.Duration
}

var (
	_ Meta         = (*DB)(nil)
	_ UploadStates = (*DB)(nil)
	_ Documents    = (*DB)(nil)
	_ AuditLog     = (*DB)(nil)
	_ Collector    = (*DB)(nil)
	_ Marker       = (*DB)(nil)
)

// DBOptions tune OpenDB.
type DBOptions struct {
	// Timeout bounds the wait for the file lock held by another process.
	Timeout time.Duration
	// AuditLimit is the number of audit entries kept (default 100,000).
	AuditLimit uint64
}

// OpenDB opens (creating if needed) the metadata file at path, creates the
// buckets and migrates the schema.
func OpenDB(path string, opts DBOptions) (*DB, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.AuditLimit == 0 {
		opts.AuditLimit = 100_000
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: the file is locked by another process (is another moat running on this data dir?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{bucketMeta, bucketRepos, bucketBlobs, bucketUploads, bucketDocs, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return migrate(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &DB{db: db, writes: committer{db: db}, auditLimit: opts.AuditLimit, gcDeleteTimeout: gcDeleteTimeout}, nil
}

func migrate(tx *bolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	var v uint64
	if b := meta.Get([]byte(keySchema)); b != nil {
		v = binary.BigEndian.Uint64(b)
	}
	if v > schemaVersion {
		return fmt.Errorf("metadata schema version %d is newer than this moat understands (%d)", v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
		}
	}
	return meta.Put([]byte(keySchema), binary.BigEndian.AppendUint64(nil, v))
}

// Close closes the file.
func (s *DB) Close() error { return s.db.Close() }

// Check reports whether the file can be read (for readiness).
func (s *DB) Check(context.Context) error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketMeta)) == nil {
			return errors.New("metadata buckets missing")
		}
		return nil
	})
}

// --- upload states ---

// uploadStates reads and writes upload session states in the uploads
// bucket of a bbolt file: the metadata file (DB) or a file of their own
// (SessionDB).
type uploadStates struct {
	db     *bolt.DB
	writes *committer
}

type uploadRecord struct {
	V int `json:"v"`
	UploadState
}

func (u uploadStates) put(st UploadState) error {
	b, err := json.Marshal(uploadRecord{V: 1, UploadState: st})
	if err != nil {
		return err
	}
	return u.writes.update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketUploads)).Put([]byte(st.ID), b)
	})
}

func (u uploadStates) get(id string) (UploadState, error) {
	var rec uploadRecord
	err := u.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketUploads)).Get([]byte(id))
		if b == nil {
			return ErrNotFound
		}
		return json.Unmarshal(b, &rec)
	})
	return rec.UploadState, err
}

func (u uploadStates) delete(id string) error {
	return u.writes.update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketUploads)).Delete([]byte(id))
	})
}

func (u uploadStates) list(fn func(UploadState) error) error {
	return u.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketUploads)).ForEach(func(_, v []byte) error {
			var rec uploadRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return nil // unreadable: left for Expire's file sweep
			}
			return fn(rec.UploadState)
		})
	})
}

func (s *DB) states() uploadStates { return uploadStates{s.db, &s.writes} }

// PutUpload implements UploadStates.
func (s *DB) PutUpload(_ context.Context, st UploadState) error { return s.states().put(st) }

// GetUpload implements UploadStates.
func (s *DB) GetUpload(_ context.Context, id string) (UploadState, error) {
	return s.states().get(id)
}

// DeleteUpload implements UploadStates.
func (s *DB) DeleteUpload(_ context.Context, id string) error { return s.states().delete(id) }

// ListUploads implements UploadStates.
func (s *DB) ListUploads(_ context.Context, fn func(UploadState) error) error {
	return s.states().list(fn)
}

// --- documents ---

type docTx struct{ docs *bolt.Bucket }

func (t docTx) Get(collection, key string) ([]byte, error) {
	c := t.docs.Bucket([]byte(collection))
	if c == nil {
		return nil, ErrNotFound
	}
	v := c.Get([]byte(key))
	if v == nil {
		return nil, ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (t docTx) Put(collection, key string, value []byte) error {
	c, err := t.docs.CreateBucketIfNotExists([]byte(collection))
	if err != nil {
		return err
	}
	return c.Put([]byte(key), value)
}

func (t docTx) Delete(collection, key string) error {
	c := t.docs.Bucket([]byte(collection))
	if c == nil || c.Get([]byte(key)) == nil {
		return ErrNotFound
	}
	return c.Delete([]byte(key))
}

func (t docTx) List(collection string, fn func(key string, value []byte) error) error {
	c := t.docs.Bucket([]byte(collection))
	if c == nil {
		return nil
	}
	return c.ForEach(func(k, v []byte) error {
		return fn(string(k), append([]byte(nil), v...))
	})
}

// ViewDocuments implements Documents.
func (s *DB) ViewDocuments(_ context.Context, fn func(DocTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(docTx{tx.Bucket([]byte(bucketDocs))}) })
}

// UpdateDocuments implements Documents.
func (s *DB) UpdateDocuments(_ context.Context, fn func(DocTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(docTx{tx.Bucket([]byte(bucketDocs))}) })
}

// --- audit ---

// AppendAudit implements AuditLog.
func (s *DB) AppendAudit(_ context.Context, entries [][]byte) error {
	if len(entries) == 0 {
		return nil
	}
	return s.writes.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketAudit))
		var seq uint64
		for _, e := range entries {
			var err error
			if seq, err = b.NextSequence(); err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), e); err != nil {
				return err
			}
		}
		if seq <= s.auditLimit {
			return nil
		}
		oldest := seq - s.auditLimit // keys <= oldest go
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= oldest; k, _ = c.Next() {
			old = append(old, k)
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScanAudit implements AuditLog.
func (s *DB) ScanAudit(_ context.Context, fn func(entry []byte) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketAudit)).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if !fn(v) {
				return nil
			}
		}
		return nil
	})
}
