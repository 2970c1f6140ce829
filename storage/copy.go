package storage

import (
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// copyChunk is the size of the buffers copyHashed moves bytes in.
const copyChunk = 1 << 20

// writebackChunk is how much of a large upload is written before the
// kernel is asked to start writing it back.
const writebackChunk = 8 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, copyChunk); return &b }}

// copyHashed copies src to dst while h hashes the same bytes. A body that
// fits in one chunk is hashed and written in turn; a larger one is
// pipelined: this goroutine reads and hashes while another writes, so a
// large upload runs at the speed of the slower of the two instead of
// their sum.
//
// written counts the bytes dst accepted. hashed reports whether h covers
// exactly those bytes: it does unless a write failed (h may then be ahead
// of the file and must not be trusted). err is the first read or write
// error, io.EOF excluded.
func copyHashed(dst io.Writer, h hash.Hash, src io.Reader) (written int64, hashed bool, err error) {
	first := chunkPool.Get().(*[]byte)
	n, rerr := fill(src, *first)
	if rerr != nil {
		// One chunk or less: no pipeline.
		defer chunkPool.Put(first)
		if n > 0 {
			h.Write((*first)[:n])
			m, werr := dst.Write((*first)[:n])
			if werr != nil {
				return int64(m), false, werr
			}
		}
		if rerr == io.EOF {
			rerr = nil
		}
		return int64(n), true, rerr
	}
	type chunk struct {
		b *[]byte
		n int
	}
	toWrite := make(chan chunk, 2)
	var wrote int64
	var werr error
	var failed atomic.Bool // werr is set: reading on would be wasted
	done := make(chan struct{})
	f, _ := dst.(*os.File)
	var flushed int64 // start of the range not yet handed to writeback
	var base int64    // the file offset the copy started at
	if f != nil {
		base, _ = f.Seek(0, io.SeekCurrent)
	}
	go func() {
		defer close(done)
		for c := range toWrite {
			if werr == nil {
				m, err := dst.Write((*c.b)[:c.n])
				wrote += int64(m)
				if werr = err; err != nil {
					failed.Store(true)
				}
				if f != nil && wrote-flushed >= writebackChunk {
					startWriteback(f, base+flushed, wrote-flushed)
					flushed = wrote
				}
			}
			chunkPool.Put(c.b)
		}
	}()
	h.Write((*first)[:n])
	toWrite <- chunk{first, n}
	for rerr == nil && !failed.Load() {
		b := chunkPool.Get().(*[]byte)
		n, rerr = fill(src, *b)
		if n > 0 {
			h.Write((*b)[:n])
			toWrite <- chunk{b, n}
		} else {
			chunkPool.Put(b)
		}
	}
	close(toWrite)
	<-done
	if rerr == io.EOF {
		rerr = nil
	}
	if werr != nil {
		return wrote, false, werr
	}
	return wrote, true, rerr
}

// fill reads until b is full or src fails. Unlike io.ReadFull it returns
// src's error as it is: io.EOF for the end of the body, anything else
// (a body cut short is io.ErrUnexpectedEOF from net/http) as a failure.
func fill(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := src.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
