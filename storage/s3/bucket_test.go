package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/s3"
	"github.com/moat-registry/moat/storage/s3/s3test"
	"github.com/opencontainers/go-digest"
)

const repo = "library/app"

// randomBytes returns n pseudo-random bytes.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// bucketKeys lists the keys in the backend's bucket and its open
// multipart uploads.
func bucketKeys(t testing.TB, b *backend) (objects, uploads []string) {
	t.Helper()
	srv, err := s3test.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := srv.Client()
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: &b.opts.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			objects = append(objects, aws.ToString(o.Key))
		}
	}
	out, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &b.opts.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range out.Uploads {
		uploads = append(uploads, aws.ToString(u.Key))
	}
	return objects, uploads
}

// onlyBlobs asserts that the bucket holds exactly the blobs want, and no
// staging objects or multipart uploads.
func onlyBlobs(t testing.TB, b *backend, want ...digest.Digest) {
	t.Helper()
	objects, uploads := bucketKeys(t, b)
	var keys []string
	for _, d := range want {
		keys = append(keys, "blobs/"+string(d.Algorithm())+"/"+d.Encoded()[:2]+"/"+d.Encoded())
	}
	slices.Sort(keys)
	slices.Sort(objects)
	if !slices.Equal(objects, keys) || len(uploads) != 0 {
		t.Fatalf("bucket holds objects %q and multipart uploads %q; want only %q", objects, uploads, keys)
	}
}

// TestNoLeftovers checks that every way a session or a Put ends leaves
// nothing but committed blobs in the bucket.
func TestNoLeftovers(t *testing.T) {
	b := newBackend(t, nil)
	st := b.store(t)
	ctx := context.Background()
	data := randomBytes(12<<20+5, 1)
	var stored []digest.Digest

	// A Put that fails verification, small and multipart.
	for _, n := range []int{100, len(data)} {
		if _, err := st.Put(ctx, digest.FromString("other"), bytes.NewReader(data[:n]), -1); !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatalf("Put() = %v", err)
		}
	}
	onlyBlobs(t, b)

	// A session finished after a refused sha512, one finished at once,
	// one cancelled, one expired.
	for i, alg := range []digest.Algorithm{digest.SHA512, digest.SHA256} {
		up, err := st.Start(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := st.Append(ctx, repo, up.ID, int64(off), bytes.NewReader(data[off:min(off+1<<20, len(data))])); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			if _, err := st.Finish(ctx, repo, up.ID, alg.FromString("wrong")); !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("Finish() = %v", err)
			}
		}
		d := alg.FromBytes(data)
		if _, err := st.Finish(ctx, repo, up.ID, d); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, d)
	}
	onlyBlobs(t, b, stored...)
	for _, end := range []string{"cancel", "expire"} {
		up, err := st.Start(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, repo, up.ID, 0, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, repo, up.ID, -1, bytes.NewReader(data[:10])); err != nil {
			t.Fatal(err)
		}
		if end == "cancel" {
			err = st.Cancel(ctx, repo, up.ID)
		} else {
			_, err = st.Expire(ctx, time.Now().Add(time.Minute))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	onlyBlobs(t, b, stored...)
}

// TestManyTinyChunks sends far more chunks than a session stages
// segments, so they merge.
func TestManyTinyChunks(t *testing.T) {
	b := newBackend(t, nil)
	st := b.store(t)
	ctx := context.Background()
	data := randomBytes(200*1000, 2)
	up, err := st.Start(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1000 {
		if _, err := st.Append(ctx, repo, up.ID, int64(off), bytes.NewReader(data[off:off+1000])); err != nil {
			t.Fatal(err)
		}
	}
	objects, _ := bucketKeys(t, b)
	if len(objects) > 33 {
		t.Fatalf("200 chunks left %d staged objects, want at most 33", len(objects))
	}
	d := digest.FromBytes(data)
	if _, err := st.Finish(ctx, repo, up.ID, d); err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	onlyBlobs(t, b, d)
}

// TestUploadState pins what a session keeps in storage.UploadState: the
// plain sha256 state, and the store's own state in Extra.
func TestUploadState(t *testing.T) {
	b := newBackend(t, nil)
	st := b.store(t)
	ctx := context.Background()
	data := randomBytes(6<<20, 3)
	up, err := st.Start(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, repo, up.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	state, err := b.db.GetUpload(ctx, up.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if state.Algorithm != "sha256" || h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state.HashState) != nil {
		t.Fatalf("state: algorithm %q, hash state %d bytes", state.Algorithm, len(state.HashState))
	}
	if digest.NewDigest(digest.SHA256, h) != digest.FromBytes(data) {
		t.Fatal("the hash state does not match the bytes")
	}
	if !bytes.Contains(state.Extra, []byte(`"parts"`)) || !bytes.Contains(state.Extra, []byte(`"segs"`)) {
		t.Fatalf("Extra = %s, want the parts and segments", state.Extra)
	}
}

// TestExpireSweepsOrphans leaves what crashes leave — staging objects and
// multipart uploads of no session, a Put's multipart upload — and checks
// that Expire removes them but not a live session's.
func TestExpireSweepsOrphans(t *testing.T) {
	b := newBackend(t, nil)
	srv, _ := s3test.Shared()
	c := srv.Client()
	ctx := context.Background()
	bucket := &b.opts.Bucket
	orphan := "uploads/0123456789abcdef0123456789abcdef/seg-1"
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: bucket, Key: &orphan, Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"uploads/fedcba9876543210fedcba9876543210/data-1", "blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"} {
		if _, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	st := b.store(t)
	live, err := st.Start(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(6<<20, 4)
	if _, err := st.Append(ctx, repo, live.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// A day ahead, everything is idle: the session expires, and a Put's
	// upload counts as abandoned (it must be a day older than the cutoff).
	if n, err := st.Expire(ctx, time.Now().Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Expire() = %d, %v", n, err)
	}
	onlyBlobs(t, b)

	b2 := newBackend(t, nil)
	st = b2.store(t)
	live, err = st.Start(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, repo, live.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: &b2.opts.Bucket, Key: &orphan, Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	// The orphan is older than the cutoff; the session's last chunk,
	// newer.
	cutoff := time.Now()
	if _, err := st.Append(ctx, repo, live.ID, -1, bytes.NewReader(data[:10])); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Expire(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("Expire() = %d, %v", n, err)
	}
	objects, uploads := bucketKeys(t, b2)
	if slices.Contains(objects, orphan) || len(uploads) != 1 || len(objects) != 2 {
		t.Fatalf("after Expire: objects %q, uploads %q; want the live session's", objects, uploads)
	}
	if _, err := st.Finish(ctx, repo, live.ID, digest.FromBytes(append(data, data[:10]...))); err != nil {
		t.Fatal(err)
	}
}

// listHook runs after when a listing of upload states ends: what happens
// between Expire's listing and its look at each session under the lock.
type listHook struct {
	storage.UploadStates
	after func()
}

func (l *listHook) ListUploads(ctx context.Context, fn func(storage.UploadState) error) error {
	err := l.UploadStates.ListUploads(ctx, fn)
	l.after()
	return err
}

// TestExpireKeepsSessionResumedMeanwhile: a session idle when Expire lists
// the states gets a chunk before Expire looks at it again under the
// session's lock. It survives, and so must its multipart upload and
// segments, which are older than the cutoff.
func TestExpireKeepsSessionResumedMeanwhile(t *testing.T) {
	b := newBackend(t, nil)
	ctx := context.Background()
	data := randomBytes(6<<20, 5) // a part and a staged segment
	var st *s3.Store
	var id string
	hook := &listHook{UploadStates: b.db, after: func() {
		if _, err := st.Append(ctx, repo, id, -1, bytes.NewReader(data[:10])); err != nil {
			t.Error(err)
		}
	}}
	st, err := s3.New(ctx, b.opts, hook, b.db)
	if err != nil {
		t.Fatal(err)
	}
	up, err := st.Start(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	id = up.ID
	if _, err := st.Append(ctx, repo, id, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	state, err := b.db.GetUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Idle when listed; the chunk the hook sends comes after the cutoff.
	cutoff := state.Updated.Add(time.Nanosecond)
	if n, err := st.Expire(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("Expire() = %d, %v; want the session kept", n, err)
	}
	want := append(slices.Clip(data), data[:10]...)
	if _, err := st.Finish(ctx, repo, id, digest.FromBytes(want)); err != nil {
		t.Fatalf("Finish() after Expire: %v", err)
	}
	onlyBlobs(t, b, digest.FromBytes(want))
}

// countingTransport records the requests a store sends.
type countingTransport struct {
	mu   sync.Mutex
	reqs []string // "METHOD Range"
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.Header.Get("Range"))
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

// TestOpenIsLazy checks that Open asks only for the size and that a
// Range request through http.ServeContent fetches only its bytes.
func TestOpenIsLazy(t *testing.T) {
	tr := &countingTransport{}
	b := newBackend(t, func(o *s3.Options) { o.HTTPClient = &http.Client{Transport: tr} })
	st := b.store(t)
	ctx := context.Background()
	data := randomBytes(7<<20, 5)
	d := digest.FromBytes(data)
	if _, err := st.Put(ctx, d, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	tr.take()

	rc, size, err := st.Open(ctx, d)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Open() = %d, %v", size, err)
	}
	if end, err := rc.Seek(0, io.SeekEnd); err != nil || end != size {
		t.Fatal(end, err)
	}
	if got := tr.take(); !slices.Equal(got, []string{"HEAD "}) {
		t.Fatalf("Open and Seek to the end sent %q, want one HEAD", got)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Range", "bytes=1000-1999")
	rec := httptest.NewRecorder()
	http.ServeContent(rec, req, "", time.Time{}, rc)
	rc.Close()
	if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), data[1000:2000]) {
		t.Fatalf("ServeContent: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if got := tr.take(); len(got) != 1 || !strings.HasPrefix(got[0], "GET bytes=1000-") {
		t.Fatalf("a Range request sent %q, want one ranged GET from 1000", got)
	}
}

// TestPresignGet fetches a blob from a presigned URL and checks that its
// lifetime is capped.
func TestPresignGet(t *testing.T) {
	b := newBackend(t, nil)
	st := b.store(t)
	ctx := context.Background()
	data := randomBytes(1000, 6)
	d := digest.FromBytes(data)
	if _, err := st.Put(ctx, d, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ttl  time.Duration
		want string
	}{{10 * time.Second, "10"}, {time.Hour, "60"}, {0, "60"}} {
		u, err := st.PresignGet(ctx, d, tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if got := parsed.Query().Get("X-Amz-Expires"); got != tc.want {
			t.Fatalf("PresignGet(%v): X-Amz-Expires=%s, want %s", tc.ttl, got, tc.want)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Fatalf("GET of the presigned URL: %s, %d bytes", resp.Status, len(body))
		}
	}
	if _, err := st.PresignGet(ctx, "sha256:nothex", time.Minute); err == nil {
		t.Fatal("PresignGet() of a malformed digest succeeded")
	}
}
