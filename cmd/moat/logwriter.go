package main

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// logWriter buffers log lines and writes them out at most every
// flushEvery, or sooner when a burst fills the buffer, so that the access
// log of a busy server costs a write system call per batch instead of per
// request. Every Write keeps whole lines together; Close flushes.
type logWriter struct {
	out io.Writer

	mu     sync.Mutex
	buf    bytes.Buffer
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

const (
	flushEvery  = 100 * time.Millisecond
	flushAtSize = 64 << 10
)

func newLogWriter(out io.Writer) *logWriter {
	w := &logWriter{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	w.buf.Write(p)
	if w.buf.Len() >= flushAtSize {
		w.flushLocked()
	}
	return len(p), nil
}

func (w *logWriter) flushLocked() {
	if w.buf.Len() > 0 {
		_, _ = w.out.Write(w.buf.Bytes())
		w.buf.Reset()
	}
}

func (w *logWriter) loop() {
	defer close(w.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			w.flushLocked()
			w.mu.Unlock()
		}
	}
}

// Close flushes what is buffered; later writes go straight through.
func (w *logWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	w.flushLocked()
	w.mu.Unlock()
	return nil
}
