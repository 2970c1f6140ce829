package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// repoBuckets are the buckets of one repository.
type repoBuckets struct {
	manifests, tags, tagsByDigest, links, referrers *bolt.Bucket
}

var repoBucketNames = [...]string{bucketManifests, bucketTags, bucketTagsByDigest, bucketLinks, bucketReferrers}

func openRepo(tx *bolt.Tx, repository string) (repoBuckets, bool) {
	r := tx.Bucket([]byte(bucketRepos)).Bucket([]byte(repository))
	if r == nil {
		return repoBuckets{}, false
	}
	return repoBuckets{
		manifests:    r.Bucket([]byte(bucketManifests)),
		tags:         r.Bucket([]byte(bucketTags)),
		tagsByDigest: r.Bucket([]byte(bucketTagsByDigest)),
		links:        r.Bucket([]byte(bucketLinks)),
		referrers:    r.Bucket([]byte(bucketReferrers)),
	}, true
}

func createRepo(tx *bolt.Tx, repository string) (repoBuckets, error) {
	if rb, ok := openRepo(tx, repository); ok {
		return rb, nil
	}
	r, err := tx.Bucket([]byte(bucketRepos)).CreateBucket([]byte(repository))
	if err != nil {
		return repoBuckets{}, err
	}
	for _, name := range repoBucketNames {
		if _, err := r.CreateBucket([]byte(name)); err != nil {
			return repoBuckets{}, err
		}
	}
	rb, _ := openRepo(tx, repository)
	return rb, nil
}

// pairKey is a 0x00 b, the key of the two-part indexes.
func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

// Repositories implements Meta.
func (s *DB) Repositories(_ context.Context, last string, n int, keep func(string) bool) ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketRepos)).Cursor()
		k, _ := c.First()
		if last != "" {
			k, _ = c.Seek([]byte(last))
			if k != nil && string(k) == last {
				k, _ = c.Next()
			}
		}
		for ; k != nil && (n < 0 || len(out) < n); k, _ = c.Next() {
			name := string(k)
			if keep == nil || keep(name) {
				out = append(out, name)
			}
		}
		return nil
	})
	return out, err
}

// linkRecord is a repository's link to a blob, and the global record of a
// stored blob: size (uvarint) and the time in Unix milliseconds (varint)
// of the last upload or mount (for a link) or mark (for the record), which
// garbage collection's grace period counts from.
func linkRecord(size int64, t time.Time) []byte {
	b := binary.AppendUvarint(nil, uint64(size))
	return binary.AppendVarint(b, t.UnixMilli())
}

func decodeLinkRecord(v []byte) (size int64, linked time.Time) {
	u, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, time.Time{}
	}
	if t, k := binary.Varint(v[n:]); k > 0 {
		linked = time.UnixMilli(t)
	}
	return int64(u), linked
}

// LinkBlob implements Meta. The blob must be stored: its global record is
// written (marked) before its bytes are committed, and garbage collection
// removes the record with the bytes, so a link never points at nothing.
func (s *DB) LinkBlob(_ context.Context, repository string, d digest.Digest, size int64) error {
	return s.writes.update(func(tx *bolt.Tx) error {
		blobs := tx.Bucket([]byte(bucketBlobs))
		if blobs.Get([]byte(d)) == nil {
			return ErrBlobUnknown
		}
		rb, err := createRepo(tx, repository)
		if err != nil {
			return err
		}
		now := time.Now()
		if err := rb.links.Put([]byte(d), linkRecord(size, now)); err != nil {
			return err
		}
		return blobs.Put([]byte(d), linkRecord(size, now))
	})
}

// MarkBlob records that a blob is being stored or used now, which keeps
// garbage collection from deleting its bytes for a grace period. The blob
// store calls it before committing bytes.
func (s *DB) MarkBlob(_ context.Context, d digest.Digest, size int64) error {
	return s.writes.update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketBlobs)).Put([]byte(d), linkRecord(size, time.Now()))
	})
}

// BlobLink implements Meta.
func (s *DB) BlobLink(_ context.Context, repository string, d digest.Digest) (int64, error) {
	var size int64
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrBlobUnknown
		}
		v := rb.links.Get([]byte(d))
		if v == nil {
			return ErrBlobUnknown
		}
		u, n := binary.Uvarint(v)
		if n <= 0 {
			return errCorruptRecord
		}
		size = int64(u)
		return nil
	})
	return size, err
}

// FindBlob returns a repository, among those keep accepts, that links d.
func (s *DB) FindBlob(_ context.Context, d digest.Digest, keep func(string) bool) (string, int64, error) {
	var repo string
	var size int64
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRepos)).ForEachBucket(func(k []byte) error {
			if repo != "" {
				return nil
			}
			rb, _ := openRepo(tx, string(k))
			if v := rb.links.Get([]byte(d)); v != nil && (keep == nil || keep(string(k))) {
				u, _ := binary.Uvarint(v)
				repo, size = string(k), int64(u)
			}
			return nil
		})
	})
	if err == nil && repo == "" {
		err = ErrBlobUnknown
	}
	return repo, size, err
}

// UnlinkBlob implements Meta.
func (s *DB) UnlinkBlob(_ context.Context, repository string, d digest.Digest) error {
	return s.writes.update(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok || rb.links.Get([]byte(d)) == nil {
			return ErrBlobUnknown
		}
		return rb.links.Delete([]byte(d))
	})
}

// PutManifest implements Meta.
func (s *DB) PutManifest(_ context.Context, repository string, m *Manifest, tags []string, requireChildren bool) error {
	rec := encodeManifest(m)
	var refDesc []byte
	if m.Subject != "" {
		var err error
		refDesc, err = json.Marshal(ocispec.Descriptor{
			MediaType:    m.MediaType,
			Digest:       m.Digest,
			Size:         m.Size,
			ArtifactType: m.ArtifactType,
			Annotations:  m.Annotations,
		})
		if err != nil {
			return err
		}
	}
	now := time.Now()
	return s.updateManifests(func(tx *bolt.Tx) error {
		rb, err := createRepo(tx, repository)
		if err != nil {
			return err
		}
		for _, d := range m.Blobs {
			if rb.links.Get([]byte(d)) == nil {
				return &MissingError{Digest: d}
			}
		}
		if requireChildren {
			for _, d := range m.Manifests {
				if rb.manifests.Get([]byte(d)) == nil {
					return &MissingError{Digest: d, Manifest: true}
				}
			}
		}
		if err := rb.manifests.Put([]byte(m.Digest), rec); err != nil {
			return err
		}
		for _, tag := range tags {
			if v := rb.tags.Get([]byte(tag)); v != nil {
				old, _ := decodeTag(v)
				if old == string(m.Digest) {
					continue
				}
				if err := rb.tagsByDigest.Delete(pairKey(old, tag)); err != nil {
					return err
				}
			}
			if err := rb.tags.Put([]byte(tag), encodeTag(m.Digest, now)); err != nil {
				return err
			}
			if err := rb.tagsByDigest.Put(pairKey(string(m.Digest), tag), nil); err != nil {
				return err
			}
		}
		if m.Subject != "" {
			return rb.referrers.Put(pairKey(string(m.Subject), string(m.Digest)), refDesc)
		}
		return nil
	})
}

// isDigestRef tells a digest reference from a tag: tags cannot hold ':'.
func isDigestRef(ref string) bool { return strings.IndexByte(ref, ':') >= 0 }

// Manifest implements Meta.
func (s *DB) Manifest(_ context.Context, repository, reference string, body bool) (*Manifest, error) {
	var gen uint64
	if !body {
		var m *Manifest
		var hit bool
		if m, gen, hit = s.heads.get(repository, reference); hit {
			return m, nil
		}
	}
	var m *Manifest
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrRepositoryUnknown
		}
		key := []byte(reference)
		if !isDigestRef(reference) {
			v := rb.tags.Get(key)
			if v == nil {
				return ErrManifestUnknown
			}
			key = tagDigest(v)
		}
		v := rb.manifests.Get(key)
		if v == nil {
			return ErrManifestUnknown
		}
		var err error
		m, err = decodeManifest(digest.Digest(key), v, body)
		return err
	})
	if err == nil && !body {
		s.heads.put(repository, reference, gen, m)
	}
	return m, err
}

// updateManifests is a write that may change manifests or tags: the HEAD
// cache is invalidated once it committed.
func (s *DB) updateManifests(fn func(*bolt.Tx) error) error {
	err := s.writes.update(fn)
	s.heads.invalidate()
	return err
}

// DeleteManifest implements Meta.
func (s *DB) DeleteManifest(_ context.Context, repository string, d digest.Digest) error {
	return s.updateManifests(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrManifestUnknown
		}
		return deleteManifestTx(rb, d)
	})
}

// deleteManifestTx removes a manifest, its tags and its referrers entry.
func deleteManifestTx(rb repoBuckets, d digest.Digest) error {
	v := rb.manifests.Get([]byte(d))
	if v == nil {
		return ErrManifestUnknown
	}
	m, err := decodeManifest(d, v, false)
	if err != nil {
		return err
	}
	if err := rb.manifests.Delete([]byte(d)); err != nil {
		return err
	}
	prefix := pairKey(string(d), "")
	var tags [][]byte
	c := rb.tagsByDigest.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		tags = append(tags, append([]byte(nil), k...))
	}
	for _, k := range tags {
		if err := rb.tagsByDigest.Delete(k); err != nil {
			return err
		}
		if err := rb.tags.Delete(k[len(prefix):]); err != nil {
			return err
		}
	}
	if m.Subject != "" {
		return rb.referrers.Delete(pairKey(string(m.Subject), string(d)))
	}
	return nil
}

// DeleteTag implements Meta.
func (s *DB) DeleteTag(_ context.Context, repository, tag string) error {
	return s.updateManifests(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrManifestUnknown
		}
		v := rb.tags.Get([]byte(tag))
		if v == nil {
			return ErrManifestUnknown
		}
		if err := rb.tagsByDigest.Delete(pairKey(string(tagDigest(v)), tag)); err != nil {
			return err
		}
		return rb.tags.Delete([]byte(tag))
	})
}

// Tags implements Meta.
func (s *DB) Tags(_ context.Context, repository, last string, n int) ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrRepositoryUnknown
		}
		c := rb.tags.Cursor()
		k, _ := c.First()
		if last != "" {
			k, _ = c.Seek([]byte(last))
			if k != nil && string(k) == last {
				k, _ = c.Next()
			}
		}
		if n >= 0 {
			out = make([]string, 0, min(n, 1024))
		}
		for ; k != nil && (n < 0 || len(out) < n); k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	return out, err
}

// Referrers implements Meta.
func (s *DB) Referrers(_ context.Context, repository string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	out := []ocispec.Descriptor{}
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return nil
		}
		prefix := pairKey(string(d), "")
		c := rb.referrers.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var desc ocispec.Descriptor
			if err := json.Unmarshal(v, &desc); err != nil {
				return err
			}
			if artifactType == "" || desc.ArtifactType == artifactType {
				out = append(out, desc)
			}
		}
		return nil
	})
	return out, err
}

// Tag values are the digest, a 0x00 and the time the tag was last set
// (varint Unix nanoseconds), which purge tasks read.
func encodeTag(d digest.Digest, t time.Time) []byte {
	b := make([]byte, 0, len(d)+1+binary.MaxVarintLen64)
	b = append(b, d...)
	b = append(b, 0)
	return binary.AppendVarint(b, t.UnixNano())
}

// tagDigest is the digest part of a tag value (a slice of v).
func tagDigest(v []byte) []byte {
	if i := bytes.IndexByte(v, 0); i >= 0 {
		return v[:i]
	}
	return v
}

func decodeTag(v []byte) (string, time.Time) {
	d := tagDigest(v)
	var t time.Time
	if len(d) < len(v) {
		if n, k := binary.Varint(v[len(d)+1:]); k > 0 {
			t = time.Unix(0, n).UTC()
		}
	}
	return string(d), t
}

// TagInfo is a tag with the manifest it names and when it was set.
type TagInfo struct {
	Name    string
	Digest  digest.Digest
	Updated time.Time
}

// TagDetails lists a repository's tags with their digests and times.
func (s *DB) TagDetails(_ context.Context, repository string) ([]TagInfo, error) {
	var out []TagInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrRepositoryUnknown
		}
		return rb.tags.ForEach(func(k, v []byte) error {
			d, t := decodeTag(v)
			out = append(out, TagInfo{Name: string(k), Digest: digest.Digest(d), Updated: t})
			return nil
		})
	})
	return out, err
}

// ManifestDigests lists the digests of a repository's manifests.
func (s *DB) ManifestDigests(_ context.Context, repository string) ([]digest.Digest, error) {
	var out []digest.Digest
	err := s.db.View(func(tx *bolt.Tx) error {
		rb, ok := openRepo(tx, repository)
		if !ok {
			return ErrRepositoryUnknown
		}
		return rb.manifests.ForEach(func(k, _ []byte) error {
			out = append(out, digest.Digest(k))
			return nil
		})
	})
	return out, err
}
