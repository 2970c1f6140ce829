package storage

import (
	"sync"
	"testing"
)

// TestSessionLocks checks that requests of one session run one at a time
// and that a session's lock goes away once no request holds or wants it.
func TestSessionLocks(t *testing.T) {
	var l SessionLocks
	const sessions, requests = 8, 50
	counts := make([]int, sessions) // unsynchronised: the race detector checks the locks
	var wg sync.WaitGroup
	for i := range sessions * requests {
		wg.Go(func() {
			id := string(rune('a' + i%sessions))
			defer l.Lock(id)()
			counts[i%sessions]++
		})
	}
	wg.Wait()
	for i, n := range counts {
		if n != requests {
			t.Errorf("session %d: %d requests counted, want %d", i, n, requests)
		}
	}
	if len(l.m) != 0 {
		t.Errorf("%d locks left after every request ended", len(l.m))
	}
}
