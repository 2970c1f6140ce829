package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/postgres"
	"github.com/moat-registry/moat/storage/postgres/pgtest"
	"github.com/moat-registry/moat/storage/storagetest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// replicas is a store whose calls alternate between two DBs on one
// database, as a load balancer spreads requests over two moat replicas.
type replicas struct {
	dbs [2]*postgres.DB
	n   atomic.Uint32
}

func (r *replicas) next() *postgres.DB { return r.dbs[r.n.Add(1)%2] }

func (r *replicas) Repositories(ctx context.Context, last string, n int, keep func(string) bool) ([]string, error) {
	return r.next().Repositories(ctx, last, n, keep)
}
func (r *replicas) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return r.next().LinkBlob(ctx, repo, d, size)
}
func (r *replicas) BlobLink(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	return r.next().BlobLink(ctx, repo, d)
}
func (r *replicas) FindBlob(ctx context.Context, d digest.Digest, keep func(string) bool) (string, int64, error) {
	return r.next().FindBlob(ctx, d, keep)
}
func (r *replicas) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return r.next().UnlinkBlob(ctx, repo, d)
}
func (r *replicas) PutManifest(ctx context.Context, repo string, m *storage.Manifest, tags []string, requireChildren bool) error {
	return r.next().PutManifest(ctx, repo, m, tags, requireChildren)
}
func (r *replicas) Manifest(ctx context.Context, repo, ref string, body bool) (*storage.Manifest, error) {
	return r.next().Manifest(ctx, repo, ref, body)
}
func (r *replicas) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return r.next().DeleteManifest(ctx, repo, d)
}
func (r *replicas) DeleteTag(ctx context.Context, repo, tag string) error {
	return r.next().DeleteTag(ctx, repo, tag)
}
func (r *replicas) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	return r.next().Tags(ctx, repo, last, n)
}
func (r *replicas) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	return r.next().Referrers(ctx, repo, d, artifactType)
}
func (r *replicas) TagDetails(ctx context.Context, repo string) ([]storage.TagInfo, error) {
	return r.next().TagDetails(ctx, repo)
}
func (r *replicas) ManifestDigests(ctx context.Context, repo string) ([]digest.Digest, error) {
	return r.next().ManifestDigests(ctx, repo)
}
func (r *replicas) MarkBlob(ctx context.Context, d digest.Digest, size int64) error {
	return r.next().MarkBlob(ctx, d, size)
}
func (r *replicas) PutUpload(ctx context.Context, s storage.UploadState) error {
	return r.next().PutUpload(ctx, s)
}
func (r *replicas) GetUpload(ctx context.Context, id string) (storage.UploadState, error) {
	return r.next().GetUpload(ctx, id)
}
func (r *replicas) DeleteUpload(ctx context.Context, id string) error {
	return r.next().DeleteUpload(ctx, id)
}
func (r *replicas) ListUploads(ctx context.Context, fn func(storage.UploadState) error) error {
	return r.next().ListUploads(ctx, fn)
}
func (r *replicas) ViewDocuments(ctx context.Context, fn func(storage.DocTx) error) error {
	return r.next().ViewDocuments(ctx, fn)
}
func (r *replicas) UpdateDocuments(ctx context.Context, fn func(storage.DocTx) error) error {
	return r.next().UpdateDocuments(ctx, fn)
}
func (r *replicas) AppendAudit(ctx context.Context, entries [][]byte) error {
	return r.next().AppendAudit(ctx, entries)
}
func (r *replicas) ScanAudit(ctx context.Context, fn func([]byte) bool) error {
	return r.next().ScanAudit(ctx, fn)
}
func (r *replicas) CollectGarbage(ctx context.Context, blobs storage.Blobs, opts storage.GCOptions) (storage.GCReport, error) {
	return r.next().CollectGarbage(ctx, blobs, opts)
}

// TestMetaConformanceAcrossReplicas runs the suite with every call going to
// the other replica of the one before: what one wrote, the other reads,
// with the same semantics.
func TestMetaConformanceAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite runs once more against a single replica")
	}
	storagetest.MetaSuite{
		Open: func(t testing.TB, opts storagetest.MetaOptions) storagetest.MetaStore {
			dsn := pgtest.Database(t)
			o := postgres.Options{AuditLimit: opts.AuditLimit}
			return &replicas{dbs: [2]*postgres.DB{openDSN(t, dsn, o), openDSN(t, dsn, o)}}
		},
		StoreSetsCreated: true,
	}.Run(t)
}

// TestUpdateDocumentsAcrossReplicas increments one counter document from
// two replicas at once: read-modify-write transactions lose no update.
func TestUpdateDocumentsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	a, b := openDSN(t, dsn, postgres.Options{}), openDSN(t, dsn, postgres.Options{})
	const each = 200
	var wg sync.WaitGroup
	for _, db := range []*postgres.DB{a, b} {
		for range 2 { // two writers per replica: its pool is shared too
			wg.Go(func() {
				for range each / 2 {
					if err := storagetest.Increment(ctx, db, "meta", "counter"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, db := range []*postgres.DB{a, b} {
		if n, err := storagetest.Counter(ctx, db, "meta", "counter"); err != nil || n != 2*each {
			t.Errorf("counter = %d, %v; want %d", n, err, 2*each)
		}
	}
}

// listener runs db.Listen and reports each call of fn on a channel.
func listener(t *testing.T, db *postgres.DB) (calls <-chan time.Time, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan time.Time, 100)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = db.Listen(ctx, func() { ch <- time.Now() })
	}()
	stop = func() {
		cancel()
		<-done
		if err != context.Canceled {
			t.Errorf("Listen() = %v, want context.Canceled", err)
		}
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ch, stop
}

// waitCall waits for a call of a listener's fn, within a bounded time.
func waitCall(t *testing.T, calls <-chan time.Time, what string) time.Time {
	t.Helper()
	select {
	case at := <-calls:
		return at
	case <-time.After(10 * time.Second):
		t.Fatalf("no call of the listener's fn within 10s: %s", what)
		return time.Time{}
	}
}

// TestListen: an update through one replica reaches another's listener;
// the latency is measured and reported. A listener whose connection is
// killed reconnects and calls fn once, then hears updates again.
func TestListen(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	a, b := openDSN(t, dsn, postgres.Options{}), openDSN(t, dsn, postgres.Options{})
	calls, stop := listener(t, b)
	waitCall(t, calls, "the call once listening")

	var latencies []time.Duration
	for i := range 20 {
		start := time.Now()
		if err := storagetest.Increment(ctx, a, "meta", "version"); err != nil {
			t.Fatal(err)
		}
		at := waitCall(t, calls, "an update through the other replica")
		latencies = append(latencies, at.Sub(start))
		if i == 0 {
			// An update that fails notifies nobody: no call may follow.
			_ = a.UpdateDocuments(ctx, func(tx storage.DocTx) error { return storage.ErrNotFound })
		}
	}
	select {
	case <-calls:
		t.Fatal("fn called more often than updates committed")
	default:
	}
	t.Logf("update through A to fn called on B: %s", summarize(latencies))

	t.Run("reconnects", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var killed int
		err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&killed)
		if err != nil || killed != 1 {
			t.Fatalf("terminated %d listeners, %v; want 1", killed, err)
		}
		waitCall(t, calls, "the call after reconnecting")
		if err := storagetest.Increment(ctx, a, "meta", "version"); err != nil {
			t.Fatal(err)
		}
		waitCall(t, calls, "an update after reconnecting")
	})
	stop()
}

func summarize(ds []time.Duration) string {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return fmt.Sprintf("min %v, median %v, max %v over %d updates", sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], len(sorted))
}

// TestListenStopsWithTheDB: closing the DB ends its listeners.
func TestListenStopsWithTheDB(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- db.Listen(context.Background(), func() {
			select {
			case called <- struct{}{}:
			default:
			}
		})
	}()
	<-called
	db.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Listen() after Close = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after Close")
	}
}

// TestPushesAcrossReplicas: writers on two replicas push manifests that
// move the same tags, listed in different orders, and delete some: no
// push fails (no deadlock surfaces), and every tag ends on a manifest
// that is there.
func TestPushesAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	dbs := []*postgres.DB{openDSN(t, dsn, postgres.Options{}), openDSN(t, dsn, postgres.Options{})}
	layer := digest.FromString("layer")
	if err := dbs[0].MarkBlob(ctx, layer, 5); err != nil {
		t.Fatal(err)
	}
	if err := dbs[1].LinkBlob(ctx, "app", layer, 5); err != nil {
		t.Fatal(err)
	}
	orders := [][]string{{"latest", "stable", "v1"}, {"v1", "stable", "latest"}, {"stable", "latest", "v1", "latest"}}
	var wg sync.WaitGroup
	for w := range 4 {
		db := dbs[w%2]
		wg.Go(func() {
			for i := range 40 {
				raw := fmt.Sprintf(`{"writer":%d,"push":%d}`, w, i)
				m := &storage.Manifest{Digest: digest.FromString(raw), MediaType: "application/vnd.oci.image.manifest.v1+json",
					Blobs: []digest.Digest{layer}, Raw: []byte(raw), Size: int64(len(raw)), Created: time.Now()}
				if err := db.PutManifest(ctx, "app", m, orders[(w+i)%len(orders)], true); err != nil {
					t.Errorf("push %d/%d: %v", w, i, err)
					return
				}
				if i%3 == 0 {
					if err := db.DeleteManifest(ctx, "app", m.Digest); err != nil {
						t.Errorf("delete %d/%d: %v", w, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	tags, err := dbs[0].TagDetails(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if _, err := dbs[1].Manifest(ctx, "app", tag.Digest.String(), false); err != nil {
			t.Errorf("tag %s names %s: %v", tag.Name, tag.Digest, err)
		}
	}
}
