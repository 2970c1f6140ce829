package storage

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// committer groups concurrent write transactions into one bbolt commit —
// one pair of fsyncs for many writers — without delaying a lone writer.
// The first writer to arrive commits at once and becomes the leader;
// writers that arrive while it commits queue up. When its commit is done
// the leader hands the role to the first writer queued, which commits the
// whole queue as one group and hands on in turn, so that a writer waits
// for the commit in progress and its own group, however steady the load.
//
// If any function in a group fails, the group is rolled back and each
// function runs again in a transaction of its own, so a failure never
// leaks into another writer's result (the same contract as bbolt's Batch:
// functions must be idempotent and touch nothing but the transaction).
type committer struct {
	db *bolt.DB

	mu    sync.Mutex
	queue []*writeOp
	busy  bool
}

type writeOp struct {
	fn  func(*bolt.Tx) error
	err error
	// wake receives false when the op is committed, or true first when
	// its writer is to lead the next group.
	wake chan bool
}

// update runs fn in a write transaction, possibly shared with others.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	op := &writeOp{fn: safely(fn), wake: make(chan bool, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, op)
	if c.busy {
		c.mu.Unlock()
		if lead := <-op.wake; !lead {
			return op.result()
		}
		c.mu.Lock()
	}
	// The leader: the queue holds op and whoever came since.
	c.busy = true
	group := c.queue
	c.queue = nil
	c.mu.Unlock()
	c.commit(group)
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].wake <- true // busy stays set for the next leader
	} else {
		c.busy = false
	}
	c.mu.Unlock()
	return op.result()
}

// panicked carries a panic of a write function out of the transaction
// (which it rolls back, and a group with it) to the function's own caller,
// so that one writer's panic never stops the leader committing for others.
type panicked struct{ value any }

func (p panicked) Error() string { return fmt.Sprint("write transaction panicked: ", p.value) }

func safely(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = panicked{v}
			}
		}()
		return fn(tx)
	}
}

// result is the op's error, or its panic raised again in its caller.
func (op *writeOp) result() error {
	if p, ok := op.err.(panicked); ok {
		panic(p.value)
	}
	return op.err
}

func (c *committer) commit(group []*writeOp) {
	defer func() {
		for _, op := range group {
			op.wake <- false
		}
	}()
	if len(group) == 1 {
		group[0].err = c.db.Update(group[0].fn)
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, op := range group {
			if err := op.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	for _, op := range group {
		op.err = c.db.Update(op.fn)
	}
}
