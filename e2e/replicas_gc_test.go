package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"
)

// gcGarbage is how many unreferenced blobs the GC step pushes first.
const gcGarbage = 200

// gcLockKey is the PostgreSQL advisory lock key of moat's garbage
// collector: lockGC in storage/postgres/schema.go ("moat" in the high
// half, 2 in the low). Should the two drift apart, the collections the
// GC step expects to be refused would run, and the step fails.
const gcLockKey int64 = 0x6d6f6174_00000002

// replicasGC pushes unreferenced blobs, then, while the test holds the
// collectors' PostgreSQL advisory lock, asks A, B and C at once for a
// collection: each answers 409. Once the lock is released a collection
// runs (200). The garbage is gone from every replica; the image of the
// push step still pulls.
func replicasGC(t *testing.T, rs *replicaSet, _ *roundRobin) {
	const repo = "repl/garbage"
	garbage := make([]digest.Digest, gcGarbage)
	var wg sync.WaitGroup
	errs := make(chan error, gcGarbage)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < gcGarbage; i += 8 {
				b := fmt.Appendf(nil, "garbage %d %s", i, token(t))
				d := digest.FromBytes(b)
				garbage[i] = d
				r := rs.replicas[i%len(rs.replicas)]
				a, err := trySend(r.URL, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "admin", rs.password, b)
				if err == nil && a.status != http.StatusCreated {
					err = fmt.Errorf("monolithic POST of blob %d on %s: %s", i, r.name, a)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The garbage has to be older than the grace period (at least a
	// minute): age every link and mark by two hours, as if the pushes
	// had been made then. The database's clock decides, not the
	// replicas'.
	rs.ageBlobs(t, 2*time.Hour)

	// The test holds the collectors' advisory lock from its own session
	// while A, B and C are asked at once for a collection: each finds
	// another collector holding it and answers 409, whatever the timing.
	// Released, it lets one collection through.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	lockConn, err := pgx.Connect(ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Close(context.Background())
	var locked bool
	if err := lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, gcLockKey).Scan(&locked); err != nil || !locked {
		t.Fatalf("take the GC advisory lock: locked %t, %v", locked, err)
	}
	statuses := make([]int, len(rs.replicas))
	bodies := make([]string, len(rs.replicas))
	start := make(chan struct{})
	for i, r := range rs.replicas {
		wg.Go(func() {
			<-start
			a, err := trySend(r.URL, http.MethodPost, "/admin/v1/gc", "admin", rs.password, []byte(`{"gracePeriod":"1h"}`))
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			statuses[i], bodies[i] = a.status, strings.TrimSpace(string(a.body))
		})
	}
	close(start)
	wg.Wait()
	for i, r := range rs.replicas {
		t.Logf("POST /admin/v1/gc on %s with the lock held elsewhere: %d: %.300s", r.name, statuses[i], bodies[i])
		if statuses[i] != http.StatusConflict {
			t.Errorf("POST /admin/v1/gc on %s while another session holds the GC lock: %d %.300s, want 409", r.name, statuses[i], bodies[i])
		}
	}
	var unlocked bool
	if err := lockConn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, gcLockKey).Scan(&unlocked); err != nil || !unlocked {
		t.Fatalf("release the GC advisory lock: unlocked %t, %v", unlocked, err)
	}
	if t.Failed() {
		t.FailNow()
	}
	a, err := trySend(rs.B().URL, http.MethodPost, "/admin/v1/gc", "admin", rs.password, []byte(`{"gracePeriod":"1h"}`))
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("POST /admin/v1/gc on B once the lock is free: %v %v, want 200", a, err)
	}
	t.Logf("POST /admin/v1/gc on B once the lock is free: %d: %.300s", a.status, strings.TrimSpace(string(a.body)))

	// Finding another replica's collection running is no failure: no
	// error counted in the metrics that alerts watch.
	for _, r := range rs.replicas {
		a := r.send(t, rs, http.MethodGet, "/metrics", nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("GET /metrics on %s: %s", r.name, a)
		}
		for line := range strings.Lines(string(a.body)) {
			if strings.HasPrefix(line, `moat_gc_runs_total{result="error"}`) {
				t.Errorf("replica %s counts a failed collection: %s", r.name, strings.TrimSpace(line))
			}
		}
	}

	for i, d := range garbage {
		if i%50 != 0 {
			continue
		}
		for _, r := range rs.replicas {
			if a := r.send(t, rs, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil, nil); a.status != http.StatusNotFound {
				t.Errorf("HEAD of collected blob %s on %s: %d, want 404", d, r.name, a.status)
			}
		}
	}
	for _, r := range rs.replicas {
		r.manifestDigestAs(t, rs, "repl/app", "1")
	}
	// The image's blobs are still there: pull it whole through C.
	rs.crane(t).pull(t, rs.C(), "repl/app:1")
}

// ageBlobs moves the link and mark times of every blob back by d, in the
// database the replicas share (storage/postgres/doc.go).
func (rs *replicaSet) ageBlobs(t testing.TB, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`UPDATE links SET linked = linked - $1 * interval '1 microsecond'`,
		`UPDATE blobs SET marked = marked - $1 * interval '1 microsecond'`,
	} {
		if _, err := conn.Exec(ctx, q, d.Microseconds()); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// trySend is sendAs for any goroutine: it returns its errors.
func trySend(base, method, path, user, password string, body []byte) (replicaAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return replicaAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if strings.HasPrefix(path, "/admin/") {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return replicaAnswer{}, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return replicaAnswer{}, err
	}
	return replicaAnswer{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}, nil
}

// waitParts polls the bucket until the multipart upload that stages the
// upload session at loc holds at least n parts, and returns its S3
// upload id and part numbers. The session's objects are under
// uploads/<session id>/ (storage/s3/doc.go).
func (rs *replicaSet) waitParts(t testing.TB, loc string, n int) (string, []int32) {
	t.Helper()
	id := path.Base(strings.SplitN(loc, "?", 2)[0])
	c := rs.s3.Client()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		ups, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &rs.bucket, Prefix: aws.String("uploads/" + id + "/")})
		if err != nil {
			t.Fatalf("ListMultipartUploads: %v", err)
		}
		for _, u := range ups.Uploads {
			parts, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: &rs.bucket, Key: u.Key, UploadId: u.UploadId})
			if err != nil {
				t.Fatalf("ListParts: %v", err)
			}
			if len(parts.Parts) >= n {
				var nums []int32
				for _, p := range parts.Parts {
					nums = append(nums, aws.ToInt32(p.PartNumber))
				}
				return aws.ToString(u.UploadId), nums
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("session %s: no multipart upload with %d parts in the bucket within 30s", id, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
