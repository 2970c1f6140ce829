package storage

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// TestMigrateTagTimes builds a schema-1 file by hand (tag values were bare
// digests) and checks that opening it migrates every tag to carry a time.
func TestMigrateTagTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	d := digest.FromString("manifest")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{bucketMeta, bucketRepos, bucketBlobs, bucketUploads, bucketDocs, bucketAudit} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), binary.BigEndian.AppendUint64(nil, 1)); err != nil {
			return err
		}
		repo, err := tx.Bucket([]byte(bucketRepos)).CreateBucket([]byte("app"))
		if err != nil {
			return err
		}
		for _, n := range repoBucketNames {
			if _, err := repo.CreateBucket([]byte(n)); err != nil {
				return err
			}
		}
		return repo.Bucket([]byte(bucketTags)).Put([]byte("v1"), []byte(d))
	})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	db, err := OpenDB(path, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := db.TagDetails(context.Background(), "app")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 1 || tags[0].Name != "v1" || tags[0].Digest != d || tags[0].Updated.Before(before) {
		t.Fatalf("migrated tags = %+v, want v1 → %s with a time set", tags, d)
	}
	if v := readSchema(t, path); v != schemaVersion {
		t.Errorf("schema version %d after migration, want %d", v, schemaVersion)
	}
}
