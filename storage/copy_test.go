package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

type failAfter struct {
	left int
	buf  bytes.Buffer
}

var errDiskFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.buf.Write(p[:n])
		f.left = 0
		return n, errDiskFull
	}
	f.left -= len(p)
	return f.buf.Write(p)
}

func TestCopyHashed(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 5*copyChunk/16+7) // several chunks and a tail
	cases := []struct {
		name       string
		src        io.Reader
		dst        *failAfter
		wantN      int
		wantHashed bool
		wantErr    error
	}{
		{"small", bytes.NewReader(big[:100]), &failAfter{left: 1 << 30}, 100, true, nil},
		{"one chunk exactly", bytes.NewReader(big[:copyChunk]), &failAfter{left: 1 << 30}, copyChunk, true, nil},
		{"pipelined", bytes.NewReader(big), &failAfter{left: 1 << 30}, len(big), true, nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(big[:3*copyChunk/2])), &failAfter{left: 1 << 30}, 3 * copyChunk / 2, true, nil},
		{"cut short", io.MultiReader(bytes.NewReader(big[:2*copyChunk+5]), iotest.ErrReader(io.ErrUnexpectedEOF)), &failAfter{left: 1 << 30}, 2*copyChunk + 5, true, io.ErrUnexpectedEOF},
		{"write fails", bytes.NewReader(big), &failAfter{left: copyChunk + 3}, copyChunk + 3, false, errDiskFull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := sha256.New()
			n, hashed, err := copyHashed(tc.dst, h, tc.src)
			if int(n) != tc.wantN || hashed != tc.wantHashed || !errors.Is(err, tc.wantErr) {
				t.Fatalf("copyHashed = %d, %v, %v; want %d, %v, %v", n, hashed, err, tc.wantN, tc.wantHashed, tc.wantErr)
			}
			if !bytes.Equal(tc.dst.buf.Bytes(), big[:n]) {
				t.Fatal("written bytes differ from the source")
			}
			if hashed {
				if want := sha256.Sum256(big[:n]); !bytes.Equal(h.Sum(nil), want[:]) {
					t.Fatal("hash does not cover exactly the written bytes")
				}
			}
		})
	}
}

// countingZeros is an endless body that counts what was read of it.
type countingZeros struct{ read int64 }

func (c *countingZeros) Read(p []byte) (int, error) {
	clear(p)
	c.read += int64(len(p))
	return len(p), nil
}

// TestCopyHashedStopsReadingAfterWriteError: a full disk ends the copy
// within a few chunks; the rest of a huge body is not read for nothing.
func TestCopyHashedStopsReadingAfterWriteError(t *testing.T) {
	src := &countingZeros{}
	body := io.LimitReader(src, 256*copyChunk)
	_, _, err := copyHashed(&failAfter{left: copyChunk + 3}, sha256.New(), body)
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("copyHashed = %v, want %v", err, errDiskFull)
	}
	// The writer fails on the second chunk; the reader is at most the
	// channel's two chunks and the one in hand ahead of it.
	if limit := int64(6 * copyChunk); src.read > limit {
		t.Errorf("read %d bytes of the body after the write failed, want at most %d", src.read, limit)
	}
}

func BenchmarkCopyHashed(b *testing.B) {
	src := bytes.Repeat([]byte{7}, 64<<20)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := copyHashed(io.Discard, sha256.New(), bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
}
