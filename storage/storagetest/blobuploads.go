package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// uploadRepo is the repository the upload tests push to.
const uploadRepo = "library/app"

// uploadTotal crosses 12 MiB: with 5 MiB parts, two full parts and a
// staged rest.
const uploadTotal = 13<<20 + 4321

// chunkSizes cuts total into chunks under 5 MiB of uneven sizes, some of
// them tiny.
func chunkSizes(total int) []int {
	pattern := []int{1<<20 + 17, 3<<20 - 5, 700 << 10, 1, 4<<20 + 1, 2 << 20, 64 << 10, 1<<20 + 333, 5<<20 - 1}
	var out []int
	for i := 0; total > 0; i++ {
		n := min(pattern[i%len(pattern)], total)
		out = append(out, n)
		total -= n
	}
	return out
}

// startUpload opens a session.
func startUpload(t testing.TB, up storage.Uploads) string {
	t.Helper()
	s, err := up.Start(context.Background(), uploadRepo)
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	if s.ID == "" || s.Size != 0 || s.Repository != uploadRepo {
		t.Fatalf("Start() = %+v", s)
	}
	return s.ID
}

// appendChunk sends one chunk at offset and checks the new size.
func appendChunk(t testing.TB, up storage.Uploads, id string, offset int64, chunk []byte) {
	t.Helper()
	s, err := up.Append(context.Background(), uploadRepo, id, offset, bytes.NewReader(chunk))
	if err != nil {
		t.Fatalf("Append(%d bytes at %d) = %v", len(chunk), offset, err)
	}
	if want := offset + int64(len(chunk)); offset >= 0 && s.Size != want {
		t.Fatalf("Append(%d bytes at %d): size %d, want %d", len(chunk), offset, s.Size, want)
	}
}

// appendAll sends data[from:] in chunks of sizes, round-robin over ups.
func appendAll(t testing.TB, ups []storage.Uploads, id string, data []byte, from int, sizes []int) {
	t.Helper()
	off := from
	for i, n := range sizes {
		appendChunk(t, ups[i%len(ups)], id, int64(off), data[off:off+n])
		off += n
	}
	if off != len(data) {
		t.Fatalf("chunks cover %d of %d bytes", off, len(data))
	}
}

// finish ends a session with d and checks the size it reports.
func finish(t testing.TB, up storage.Uploads, id string, d digest.Digest, size int) {
	t.Helper()
	got, err := up.Finish(context.Background(), uploadRepo, id, d)
	if err != nil || got != int64(size) {
		t.Fatalf("Finish(%s) = %d, %v; want %d", shortDigest(d), got, err, size)
	}
	if _, err := up.Get(context.Background(), uploadRepo, id); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Fatalf("Get() after Finish = %v, want ErrUploadUnknown", err)
	}
}

// uploadSize returns a session's size.
func uploadSize(t testing.TB, up storage.Uploads, id string) int64 {
	t.Helper()
	s, err := up.Get(context.Background(), uploadRepo, id)
	if err != nil {
		t.Fatalf("Get() = %v", err)
	}
	return s.Size
}

func testUploadChunked(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	data := blobBytes(uploadTotal, 30)
	id := startUpload(t, st.Uploads)
	appendAll(t, []storage.Uploads{st.Uploads}, id, data, 0, chunkSizes(len(data)))
	if got := uploadSize(t, st.Uploads, id); got != int64(len(data)) {
		t.Fatalf("Get() size = %d, want %d", got, len(data))
	}
	d := digest.FromBytes(data)
	finish(t, st.Uploads, id, d, len(data))
	checkBlob(t, st.Blobs, d, data)
}

func testUploadAlgorithms(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
		for _, n := range []int{1000, uploadTotal} {
			t.Run(fmt.Sprintf("%s/%d", alg, n), func(t *testing.T) {
				data := blobBytes(n, uint64(31+n+len(alg)))
				id := startUpload(t, st.Uploads)
				appendAll(t, []storage.Uploads{st.Uploads}, id, data, 0, chunkSizes(n))
				d := hashOf(alg, data)
				finish(t, st.Uploads, id, d, n)
				checkBlob(t, st.Blobs, d, data)
			})
		}
	}
}

// testUploadOneChunk streams a whole blob in one request without an
// offset, as docker does.
func testUploadOneChunk(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	data := blobBytes(uploadTotal, 32)
	id := startUpload(t, st.Uploads)
	s, err := st.Uploads.Append(context.Background(), uploadRepo, id, -1, bytes.NewReader(data))
	if err != nil || s.Size != int64(len(data)) {
		t.Fatalf("Append() = %+v, %v", s, err)
	}
	d := digest.FromBytes(data)
	finish(t, st.Uploads, id, d, len(data))
	checkBlob(t, st.Blobs, d, data)
}

func testUploadEmpty(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	id := startUpload(t, st.Uploads)
	// An empty chunk changes nothing.
	appendChunk(t, st.Uploads, id, 0, nil)
	d := digest.FromBytes(nil)
	finish(t, st.Uploads, id, d, 0)
	checkBlob(t, st.Blobs, d, nil)
}

// testUploadAlternatingReplicas sends the chunks of one session to two
// instances in turn, as a load balancer in front of replicas does.
func testUploadAlternatingReplicas(t *testing.T, b BlobBackend) {
	a, other := b.Open(t), b.Open(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			data := blobBytes(uploadTotal, 33)
			id := startUpload(t, a.Uploads)
			appendAll(t, []storage.Uploads{other.Uploads, a.Uploads}, id, data, 0, chunkSizes(len(data)))
			if got := uploadSize(t, a.Uploads, id); got != int64(len(data)) {
				t.Fatalf("Get() on the other replica: size %d, want %d", got, len(data))
			}
			d := hashOf(alg, data)
			finish(t, other.Uploads, id, d, len(data))
			checkBlob(t, a.Blobs, d, data)
		})
	}
}

// testUploadResumeAfterCrash abandons the instance that received the
// first half, as a crash does, and finishes through a new one.
func testUploadResumeAfterCrash(t *testing.T, b BlobBackend) {
	data := blobBytes(uploadTotal, 34)
	sizes := chunkSizes(len(data))
	half, off := sizes[:len(sizes)/2], 0
	for _, n := range half {
		off += n
	}
	first := b.Open(t)
	id := startUpload(t, first.Uploads)
	appendAll(t, []storage.Uploads{first.Uploads}, id, data[:off], 0, half)

	next := b.Open(t)
	if got := uploadSize(t, next.Uploads, id); got != int64(off) {
		t.Fatalf("Get() after the restart: size %d, want %d", got, off)
	}
	appendAll(t, []storage.Uploads{next.Uploads}, id, data, off, sizes[len(half):])
	d := digest.FromBytes(data)
	finish(t, next.Uploads, id, d, len(data))
	checkBlob(t, next.Blobs, d, data)
}

// testUploadReadError cuts a chunk off mid-way, as a client that goes
// away does: the bytes that arrived stay, and the client resumes from
// there.
func testUploadReadError(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	data := blobBytes(uploadTotal, 35)
	for _, cut := range []int{3 << 10, 6<<20 + 11} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			id := startUpload(t, st.Uploads)
			appendChunk(t, st.Uploads, id, 0, data[:1000])
			// As with net/http, the request's context ends with the body.
			ctx, cancel := context.WithCancel(context.Background())
			r := &brokenReader{r: bytes.NewReader(data[1000 : 1000+cut]), err: errBrokenPipe, cancel: cancel}
			s, err := st.Uploads.Append(ctx, uploadRepo, id, 1000, r)
			if !errors.Is(err, errBrokenPipe) {
				t.Fatalf("Append() of a broken stream = %v, want the stream's error", err)
			}
			if want := int64(1000 + cut); s.Size != want || uploadSize(t, st.Uploads, id) != want {
				t.Fatalf("after a broken chunk: size %d, want %d (the bytes that arrived)", s.Size, want)
			}
			appendAll(t, []storage.Uploads{st.Uploads}, id, data, 1000+cut, chunkSizes(len(data)-1000-cut))
			d := digest.FromBytes(data)
			finish(t, st.Uploads, id, d, len(data))
			checkBlob(t, st.Blobs, d, data)
		})
	}
}

func testUploadOffsetMismatch(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	data := blobBytes(3000, 36)
	id := startUpload(t, st.Uploads)
	appendChunk(t, st.Uploads, id, 0, data[:1000])
	for _, off := range []int64{0, 999, 1001, 5000} {
		s, err := st.Uploads.Append(context.Background(), uploadRepo, id, off, bytes.NewReader(data[1000:2000]))
		if !errors.Is(err, storage.ErrOffsetMismatch) {
			t.Fatalf("Append() at %d of a 1000-byte session = %v, want ErrOffsetMismatch", off, err)
		}
		if s.ID != id || s.Size != 1000 {
			t.Fatalf("Append() at %d reported %+v, want the session at 1000", off, s)
		}
	}
	if got := uploadSize(t, st.Uploads, id); got != 1000 {
		t.Fatalf("size after refused chunks = %d, want 1000", got)
	}
	// A negative offset appends wherever the session stands.
	appendChunk(t, st.Uploads, id, -1, data[1000:2000])
	appendChunk(t, st.Uploads, id, 2000, data[2000:])
	d := digest.FromBytes(data)
	finish(t, st.Uploads, id, d, len(data))
	checkBlob(t, st.Blobs, d, data)
}

// testUploadDigestMismatch finishes with a wrong digest: nothing becomes
// visible and the session stays open, to take more chunks and finish.
func testUploadDigestMismatch(t *testing.T, b BlobBackend) {
	a, other := b.Open(t), b.Open(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		for _, n := range []int{2000, uploadTotal} {
			t.Run(fmt.Sprintf("%s/%d", alg, n), func(t *testing.T) {
				data := blobBytes(n, uint64(37+n))
				head := n - 1000
				stored := len(walkBlobs(t, a.Blobs))
				id := startUpload(t, a.Uploads)
				appendAll(t, []storage.Uploads{a.Uploads}, id, data[:head], 0, chunkSizes(head))
				for _, wrong := range []digest.Digest{hashOf(alg, data), hashOf(alg, data[:head-1])} {
					if _, err := other.Uploads.Finish(context.Background(), uploadRepo, id, wrong); !errors.Is(err, storage.ErrDigestMismatch) {
						t.Fatalf("Finish() with a wrong digest = %v, want ErrDigestMismatch", err)
					}
					checkNoBlob(t, a.Blobs, wrong)
				}
				checkNoBlob(t, a.Blobs, hashOf(alg, data[:head]))
				if got := walkBlobs(t, a.Blobs); len(got) != stored {
					t.Fatalf("Walk() after refused Finishes = %d blobs, want %d", len(got), stored)
				}
				if got := uploadSize(t, other.Uploads, id); got != int64(head) {
					t.Fatalf("size after a refused Finish = %d, want %d", got, head)
				}
				appendAll(t, []storage.Uploads{other.Uploads, a.Uploads}, id, data, head, []int{300, 700})
				d := hashOf(alg, data)
				finish(t, a.Uploads, id, d, n)
				checkBlob(t, other.Blobs, d, data)
			})
		}
	}
}

// testUploadExistingBlob finishes a session whose blob is already stored.
func testUploadExistingBlob(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	for _, n := range []int{10, uploadTotal} {
		data := blobBytes(n, 38)
		d := putBlob(t, st.Blobs, data)
		id := startUpload(t, st.Uploads)
		appendAll(t, []storage.Uploads{st.Uploads}, id, data, 0, chunkSizes(n))
		finish(t, st.Uploads, id, d, n)
		checkBlob(t, st.Blobs, d, data)
	}
}

func testUploadUnknown(t *testing.T, b BlobBackend) {
	st := b.Open(t)
	ctx := context.Background()
	id := startUpload(t, st.Uploads)
	d := digest.FromString("x")
	for _, tc := range []struct{ repo, id string }{
		{"other/repo", id}, // another repository's session
		{uploadRepo, "0123456789abcdef0123456789abcdef"}, // never started
		{uploadRepo, "../../../etc/passwd"},
		{uploadRepo, ""},
	} {
		if _, err := st.Uploads.Get(ctx, tc.repo, tc.id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Errorf("Get(%q, %q) = %v, want ErrUploadUnknown", tc.repo, tc.id, err)
		}
		if _, err := st.Uploads.Append(ctx, tc.repo, tc.id, 0, bytes.NewReader([]byte("x"))); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Errorf("Append(%q, %q) = %v, want ErrUploadUnknown", tc.repo, tc.id, err)
		}
		if _, err := st.Uploads.Finish(ctx, tc.repo, tc.id, d); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Errorf("Finish(%q, %q) = %v, want ErrUploadUnknown", tc.repo, tc.id, err)
		}
		if err := st.Uploads.Cancel(ctx, tc.repo, tc.id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Errorf("Cancel(%q, %q) = %v, want ErrUploadUnknown", tc.repo, tc.id, err)
		}
	}
	if got := uploadSize(t, st.Uploads, id); got != 0 {
		t.Fatalf("the session changed: size %d", got)
	}
}

func testUploadCancel(t *testing.T, b BlobBackend) {
	a, other := b.Open(t), b.Open(t)
	ctx := context.Background()
	for _, n := range []int{10, uploadTotal} {
		data := blobBytes(n, 39)
		id := startUpload(t, a.Uploads)
		appendAll(t, []storage.Uploads{a.Uploads}, id, data, 0, chunkSizes(n))
		if err := other.Uploads.Cancel(ctx, uploadRepo, id); err != nil {
			t.Fatalf("Cancel() = %v", err)
		}
		if _, err := a.Uploads.Get(ctx, uploadRepo, id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("Get() after Cancel = %v, want ErrUploadUnknown", err)
		}
		if _, err := a.Uploads.Append(ctx, uploadRepo, id, int64(n), bytes.NewReader(data)); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("Append() after Cancel = %v, want ErrUploadUnknown", err)
		}
		if _, err := a.Uploads.Finish(ctx, uploadRepo, id, digest.FromBytes(data)); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("Finish() after Cancel = %v, want ErrUploadUnknown", err)
		}
		if err := a.Uploads.Cancel(ctx, uploadRepo, id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("Cancel() twice = %v, want ErrUploadUnknown", err)
		}
		checkNoBlob(t, a.Blobs, digest.FromBytes(data))
	}
}

func testUploadExpire(t *testing.T, b BlobBackend) {
	a, other := b.Open(t), b.Open(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Hour)
	var ids []string
	for i, n := range []int{0, 10, uploadTotal} {
		id := startUpload(t, a.Uploads)
		data := blobBytes(n, uint64(40+i))
		appendAll(t, []storage.Uploads{a.Uploads}, id, data, 0, chunkSizes(n))
		ids = append(ids, id)
	}
	if n, err := other.Uploads.Expire(ctx, before); err != nil || n != 0 {
		t.Fatalf("Expire(an hour ago) = %d, %v; want 0 of the fresh sessions", n, err)
	}
	for _, id := range ids {
		uploadSize(t, a.Uploads, id)
	}
	if n, err := other.Uploads.Expire(ctx, time.Now().Add(time.Hour)); err != nil || n != len(ids) {
		t.Fatalf("Expire(in an hour) = %d, %v; want %d", n, err, len(ids))
	}
	for _, id := range ids {
		if _, err := a.Uploads.Get(ctx, uploadRepo, id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("Get() of an expired session = %v, want ErrUploadUnknown", err)
		}
	}
	if n, err := a.Uploads.Expire(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("Expire() again = %d, %v; want 0", n, err)
	}
	// New sessions work after an expiry.
	data := blobBytes(100, 44)
	id := startUpload(t, a.Uploads)
	appendChunk(t, a.Uploads, id, 0, data)
	finish(t, a.Uploads, id, digest.FromBytes(data), len(data))
}

// testUploadConcurrentSessions runs sessions side by side on two
// instances.
func testUploadConcurrentSessions(t *testing.T, b BlobBackend) {
	ups := []storage.Uploads{b.Open(t).Uploads, b.Open(t).Uploads}
	blobs := b.Open(t).Blobs
	const sessions = 6
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := blobBytes(6<<20+i*1000, uint64(50+i))
			if i%3 == 0 {
				data = blobBytes(5000, 60) // two sessions of the same blob
			}
			if err := uploadInChunks(ups, data, 1<<20+i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := walkBlobs(t, blobs); len(got) != sessions-1 {
		t.Fatalf("Walk() = %d blobs, want %d", len(got), sessions-1)
	}
}

// uploadInChunks pushes data through a session in chunks of chunk bytes,
// round-robin over ups, without a testing.TB (it runs in goroutines).
func uploadInChunks(ups []storage.Uploads, data []byte, chunk int) error {
	ctx := context.Background()
	s, err := ups[0].Start(ctx, uploadRepo)
	if err != nil {
		return err
	}
	for i, off := 0, 0; off < len(data); i++ {
		n := min(chunk, len(data)-off)
		if _, err := ups[i%len(ups)].Append(ctx, uploadRepo, s.ID, int64(off), bytes.NewReader(data[off:off+n])); err != nil {
			return fmt.Errorf("Append() at %d: %w", off, err)
		}
		off += n
	}
	d := digest.FromBytes(data)
	if n, err := ups[1%len(ups)].Finish(ctx, uploadRepo, s.ID, d); err != nil || n != int64(len(data)) {
		return fmt.Errorf("Finish() = %d, %w", n, err)
	}
	return nil
}

// gateReader is a request body that stops in the middle: its first Read
// closes reading, then it blocks until release is closed, and ends.
type gateReader struct {
	reading, release chan struct{}
}

func (g *gateReader) Read([]byte) (int, error) {
	close(g.reading)
	<-g.release
	return 0, io.EOF
}

// testUploadSlowSession holds one session's Append in the middle of its
// body and appends to many other sessions meanwhile: a slow client delays
// later requests of its own session only. The other sessions are many, so
// that sessions sharing locks by some fixed assignment would show.
func testUploadSlowSession(t *testing.T, b BlobBackend) {
	ctx := context.Background()
	up := b.Open(t).Uploads
	slow := startUpload(t, up)
	first := []byte("bytes before the client stalls")
	gate := &gateReader{reading: make(chan struct{}), release: make(chan struct{})}
	slowDone := make(chan error, 1)
	go func() {
		_, err := up.Append(ctx, uploadRepo, slow, 0, io.MultiReader(bytes.NewReader(first), gate))
		slowDone <- err
	}()
	<-gate.reading // the slow Append holds its session

	const others, workers = 256, 16
	othersDone := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		errs := make(chan error, others)
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					s, err := up.Start(ctx, uploadRepo)
					if err == nil {
						_, err = up.Append(ctx, uploadRepo, s.ID, 0, bytes.NewReader(fmt.Appendf(nil, "session %d", i)))
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		for i := range others {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		othersDone <- errors.Join(all...)
	}()
	select {
	case err := <-othersDone:
		if err != nil {
			t.Errorf("Append to another session: %v", err)
		}
	case err := <-slowDone:
		t.Fatalf("the stalled Append returned %v before its body ended", err)
	case <-time.After(2 * time.Minute): // a deadlock guard, not a timing
		close(gate.release)
		<-othersDone
		t.Fatal("Appends to other sessions waited for a stalled one")
	}
	close(gate.release)
	if err := <-slowDone; err != nil {
		t.Fatalf("the stalled Append, released: %v", err)
	}
	if got := uploadSize(t, up, slow); got != int64(len(first)) {
		t.Fatalf("the stalled session holds %d bytes, want %d", got, len(first))
	}
}
