package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCommitterGroupsAndIsolatesFailures runs many concurrent writers, some
// failing, and checks every successful write landed, no failed write did,
// and each writer got its own result.
func TestCommitterGroupsAndIsolatesFailures(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	c := committer{db: db}
	errOdd := errors.New("odd writers fail after writing")
	const n = 200
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = c.update(func(tx *bolt.Tx) error {
				if err := tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					return err
				}
				if i%2 == 1 {
					return errOdd // after a write: the group must roll back
				}
				return nil
			})
		})
	}
	wg.Wait()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := range n {
			got := b.Get(fmt.Appendf(nil, "k%03d", i)) != nil
			if i%2 == 1 {
				if !errors.Is(results[i], errOdd) || got {
					t.Errorf("writer %d: err %v, key present %v; want errOdd and no key", i, results[i], got)
				}
			} else if results[i] != nil || !got {
				t.Errorf("writer %d: err %v, key present %v; want success", i, results[i], got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
