package storage

import "sync"

// SessionLocks serialise the requests of each upload session within a
// process: one mutex per session id, which exists while a request of the
// session holds or waits for it. A request that holds its session for long
// — reading a slow body, hashing or copying gigabytes — delays only later
// requests of that session, never another one. The zero value is ready.
type SessionLocks struct {
	mu sync.Mutex
	m  map[string]*sessionLock
}

type sessionLock struct {
	mu   sync.Mutex
	refs int // requests holding or waiting for mu; guarded by SessionLocks.mu
}

// Lock locks session id and returns the function that unlocks it, to be
// called once.
func (l *SessionLocks) Lock(id string) (unlock func()) {
	l.mu.Lock()
	e := l.m[id]
	if e == nil {
		if l.m == nil {
			l.m = map[string]*sessionLock{}
		}
		e = &sessionLock{}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
