package storage

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A write function that panics (a bug, or bbolt meeting a corrupt page)
// must panic in its own caller only — where the server's recover
// middleware catches it — and must not wedge the writes after it or
// fail the writes grouped with it.
func TestCommitterSurvivesPanic(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	c := committer{db: db}
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(k), []byte("v")) }
	}
	// update runs one write and reports whether it panicked.
	update := func(fn func(*bolt.Tx) error) (panicked any, err error) {
		defer func() { panicked = recover() }()
		return nil, c.update(fn)
	}
	// withTimeout guards against a hang; it does not synchronise anything.
	withTimeout := func(t *testing.T, name string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never finished: the committer is wedged", name)
		}
	}

	t.Run("alone", func(t *testing.T) {
		withTimeout(t, "panicking write", func() {
			if p, _ := update(func(*bolt.Tx) error { panic("bug") }); p != "bug" {
				t.Errorf("recovered %v, want the write's own panic", p)
			}
		})
		withTimeout(t, "next write", func() {
			if p, err := update(put("after")); err != nil || p != nil {
				t.Errorf("next write: %v, panic %v", err, p)
			}
		})
	})

	t.Run("in a group", func(t *testing.T) {
		const n = 50
		errs := make([]error, n)
		panics := make([]any, n)
		withTimeout(t, "grouped writes", func() {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if i == n/2 {
						panics[i], errs[i] = update(func(tx *bolt.Tx) error {
							_ = put("never")(tx)
							panic(fmt.Sprint("bug ", i))
						})
						return
					}
					panics[i], errs[i] = update(put(fmt.Sprint("k", i)))
				})
			}
			wg.Wait()
		})
		for i := range n {
			if i == n/2 {
				if panics[i] != fmt.Sprint("bug ", i) {
					t.Errorf("writer %d recovered %v", i, panics[i])
				}
				continue
			}
			if errs[i] != nil || panics[i] != nil {
				t.Errorf("writer %d: %v, panic %v", i, errs[i], panics[i])
			}
		}
		_ = db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("b"))
			if b.Get([]byte("never")) != nil {
				t.Error("the panicking write was committed")
			}
			for i := range n {
				if i != n/2 && b.Get(fmt.Appendf(nil, "k%d", i)) == nil {
					t.Errorf("writer %d's key is missing", i)
				}
			}
			return nil
		})
	})
}
