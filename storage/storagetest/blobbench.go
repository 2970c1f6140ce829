package storagetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Bench runs the blob hot paths as sub-benchmarks, so that backends
// compare on the same work: a monolithic Put of a small and of a large
// blob, and a read of each through Open. Bytes per second are the blob's.
func (s BlobSuite) Bench(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"16MiB", 16 << 20}} {
		b.Run("Put/"+size.name, func(b *testing.B) { benchPut(b, s.New(b), size.n) })
		b.Run("Open/"+size.name, func(b *testing.B) { benchOpen(b, s.New(b), size.n) })
	}
}

// benchPut stores a new blob per iteration (its first bytes count the
// iterations); hashing the content for its digest is not timed.
func benchPut(b *testing.B, backend BlobBackend, n int) {
	st := backend.Open(b)
	ctx := context.Background()
	data := blobBytes(n, 70)
	var i uint64
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		i++
		binary.BigEndian.PutUint64(data, i)
		d := digest.FromBytes(data)
		b.StartTimer()
		if _, err := st.Blobs.Put(ctx, d, bytes.NewReader(data), int64(n)); err != nil {
			b.Fatal(err)
		}
	}
}

// benchOpen reads a stored blob through Open, whole.
func benchOpen(b *testing.B, backend BlobBackend, n int) {
	st := backend.Open(b)
	ctx := context.Background()
	d := putBlob(b, st.Blobs, blobBytes(n, 71))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		rc, _, err := st.Blobs.Open(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		if m, err := io.Copy(io.Discard, rc); err != nil || m != int64(n) {
			b.Fatal(m, err)
		}
		rc.Close()
	}
}
