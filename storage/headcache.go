package storage

import (
	"sync"
	"sync/atomic"
)

// headCache remembers what Manifest(…, body=false) found — the answer of a
// manifest HEAD, the registry's hottest read — so that a repeated HEAD
// costs a map lookup instead of a bbolt read transaction.
//
// Correctness rests on a generation counter: every write that can change
// a manifest or a tag bumps it after it commits, and an entry is served
// only while the generation it was read under is current. A reader takes
// the generation before it reads bbolt, so an entry read before a write
// committed is tagged with the old generation and never served after it.
type headCache struct {
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[headKey]headEntry
}

type headKey struct{ repository, reference string }

type headEntry struct {
	gen uint64
	m   Manifest // Raw nil
}

const headCacheMax = 8192

func (c *headCache) get(repository, reference string) (*Manifest, uint64, bool) {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.m[headKey{repository, reference}]
	c.mu.RUnlock()
	if !ok || e.gen != g {
		return nil, g, false
	}
	m := e.m
	return &m, g, true
}

func (c *headCache) put(repository, reference string, g uint64, m *Manifest) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= headCacheMax {
		c.m = make(map[headKey]headEntry)
	}
	c.m[headKey{repository, reference}] = headEntry{gen: g, m: *m}
	c.mu.Unlock()
}

// invalidate ends every entry; writers call it after they commit.
func (c *headCache) invalidate() { c.gen.Add(1) }
