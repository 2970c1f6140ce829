package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
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

// TestCommitterLeaderReturns: under a steady stream of writers the first
// one returns once its own group is committed; it does not go on
// committing for the writers that keep arriving. Each write of the stream
// starts the next writer and lets its transaction end only once that
// writer is queued, so the queue is never empty when a commit ends.
func TestCommitterLeaderReturns(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := committer{db: db}
	const most = 2000 // a bound, so that a leader that never returns fails the test instead of hanging
	var (
		stop      = make(chan struct{})
		links     atomic.Int64
		wg        sync.WaitGroup
		exhausted atomic.Bool
	)
	queued := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) > 0
	}
	var link func(*bolt.Tx) error
	link = func(*bolt.Tx) error {
		select {
		case <-stop:
			return nil
		default:
		}
		if links.Add(1) > most {
			exhausted.Store(true)
			return nil
		}
		wg.Go(func() {
			if err := c.update(link); err != nil {
				t.Error(err)
			}
		})
		for !queued() {
			runtime.Gosched()
		}
		return nil
	}
	if err := c.update(link); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if exhausted.Load() {
		t.Fatalf("the first writer returned only after %d later writers were committed", most)
	}
}

// BenchmarkCommitParallel is group commit's point: many writers at once,
// each a small write transaction, sharing fsyncs.
func BenchmarkCommitParallel(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		b.Fatal(err)
	}
	c := committer{db: db}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Appendf(nil, "k%09d", seq.Add(1))
			if err := c.update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(k, []byte("v")) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
