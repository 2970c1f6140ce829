package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage/postgres/pgtest"
	"github.com/moat-registry/moat/storage/s3/s3test"
)

// replicaServiceName is the registry.name of every replica: the service
// of the token challenges and the audience of the tokens, which must be
// the same everywhere for a token from one replica to verify on another.
const replicaServiceName = "moat-replicas.test"

// replicaEncryptionKey seals the signing keys in PostgreSQL; every
// replica has the same one.
const replicaEncryptionKey = "replicas-test-encryption-key-0123456789abcdef"

// replicaSet is moat scaled out: three replicas (A, B, C), each a moat
// process with a data directory of its own, sharing one PostgreSQL
// database (metadata, settings, signing keys, upload state) and one S3
// bucket on versitygw (blobs, upload staging). The admin's password is
// the same on all (MOAT_ADMIN_PASSWORD).
type replicaSet struct {
	replicas []*replica
	password string
	config   string // the replicas' configuration file
	dsn      string
	s3       *s3test.Server
	bucket   string
}

// replica is one moat process of a replicaSet.
type replica struct {
	*moatServer
	name  string
	opts  moatOptions // how to start it again on the same data
	owner *testing.T  // the test the replica set lives for
}

// replicaConfig is the configuration file of every replica; `listen` and
// `data` come from startMoat's flags. trustedProxies names the test's
// round-robin proxy (127.0.0.1), whose X-Forwarded-For moat believes;
// the auth-failure limit is raised because the policy measurements send
// a refused Basic login per change from 127.0.0.1.
const replicaConfig = `dev: false
registry:
  name: %s
trustedProxies: [127.0.0.1/32]
limits:
  authFailuresPerMinute: 10000
storage:
  driver: s3
  s3:
    endpoint: %s
    region: %s
    bucket: %s
    accessKey: %s
    secretKey: %s
    usePathStyle: true
metadata:
  driver: postgres
  dsn: %s
keys:
  encryptionKey: %s
`

// startReplicaSet starts PostgreSQL and versitygw of the test's own, and
// three replicas on them, together (as a rolling deployment's first start
// would), and returns once each answers /readyz with 200.
func startReplicaSet(t *testing.T) *replicaSet {
	t.Helper()
	rs := &replicaSet{password: "admin-" + token(t)}
	rs.dsn = startPostgres(t)
	rs.s3 = s3test.New(t)
	opts := rs.s3.NewBucket(t)
	rs.bucket = opts.Bucket
	cfg := fmt.Sprintf(replicaConfig, replicaServiceName, opts.Endpoint, opts.Region, opts.Bucket,
		opts.AccessKey, opts.SecretKey, rs.dsn, replicaEncryptionKey)
	rs.config = cfg
	names := []string{"A", "B", "C"}
	rs.replicas = make([]*replica, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		r := &replica{name: name, owner: t, opts: moatOptions{
			Config:  cfg,
			DataDir: t.TempDir(),
			Env:     []string{"MOAT_ADMIN_PASSWORD=" + rs.password},
		}}
		rs.replicas[i] = r
		wg.Go(func() { r.moatServer, errs[i] = launchReplica(t, r.opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.replicas {
		r.waitReadyz(t)
		t.Logf("replica %s at %s", r.name, r.URL)
	}
	return rs
}

// launchReplica is startMoat for any goroutine: it returns its failure
// instead of ending the test. The server is stopped when the test ends.
func launchReplica(t *testing.T, opts moatOptions) (*moatServer, error) {
	bin, err := moatBinary()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(t.TempDir(), "moat.yaml")
	if err := os.WriteFile(path, []byte(opts.Config), 0o600); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		m, err := launchMoat(t, bin, opts.IP, opts.DataDir, []string{"--config", path}, opts.Env)
		if err == nil {
			t.Cleanup(func() { m.stop(t) })
			return m, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return nil, err
		}
	}
}

// A, B and C are the replicas.
func (rs *replicaSet) A() *replica { return rs.replicas[0] }
func (rs *replicaSet) B() *replica { return rs.replicas[1] }
func (rs *replicaSet) C() *replica { return rs.replicas[2] }

// kill ends the replica with SIGKILL, as a crash or an OOM kill would: no
// drain, no cleanup. Its cleanup then expects it gone.
func (r *replica) kill(t testing.TB) {
	t.Helper()
	r.stopped.Store(true)
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL replica %s: %v", r.name, err)
	}
	<-r.exited
	t.Logf("replica %s killed (%v)", r.name, r.waitErr)
}

// restart starts the replica again on its data directory (on a new port)
// and waits until it is ready. It lives until the replica set's test
// ends, not only t (a subtest).
func (r *replica) restart(t *testing.T) {
	t.Helper()
	m, err := launchReplica(r.owner, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	r.moatServer = m
	r.waitReadyz(t)
	t.Logf("replica %s restarted at %s", r.name, r.URL)
}

// startPostgres starts a PostgreSQL cluster of the test's own (pgtest's
// shared cluster needs pgtest.Main in TestMain) and returns the DSN of a
// new database on it. Without PostgreSQL the test is skipped, or fails
// with MOAT_E2E_REQUIRE=1.
func startPostgres(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx, pgtest.Options{})
	if errors.Is(err, pgtest.ErrNotInstalled) {
		unavailable(t, "%v; install it with: apt-get install -y postgresql", err)
	}
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
	})
	dsn, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	return dsn
}

// roundRobin is a reverse proxy that sends each request to the next of
// its targets in turn, as a load balancer without affinity does: the
// requests of one push or one upload land on different replicas. It
// passes the Host header and Location answers through unchanged (moat's
// Locations are path-absolute) and sets X-Forwarded-For, -Host and
// -Proto, which the replicas believe from 127.0.0.1 (trustedProxies).
type roundRobin struct {
	// Host is 127.0.0.1:PORT; URL is http://Host.
	Host, URL string

	targets []atomic.Pointer[url.URL]
	next    atomic.Uint64
	counts  []atomic.Int64
}

// startRoundRobin starts a proxy over the replicas, stopped when the test
// ends.
func startRoundRobin(t testing.TB, replicas []*replica) *roundRobin {
	t.Helper()
	p := &roundRobin{counts: make([]atomic.Int64, len(replicas)), targets: make([]atomic.Pointer[url.URL], len(replicas))}
	for i, r := range replicas {
		p.retarget(t, i, r)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := int((p.next.Add(1) - 1) % uint64(len(p.targets)))
			p.counts[i].Add(1)
			u := p.targets[i].Load()
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host // Host stays the proxy's
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		FlushInterval: -1, // stream bodies as they come
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// retarget points target i at replica r (restarted on a new port).
func (p *roundRobin) retarget(t testing.TB, i int, r *replica) {
	t.Helper()
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	p.targets[i].Store(u)
}

// spread is how many requests each target received, for the log.
func (p *roundRobin) spread() string {
	parts := make([]string, len(p.counts))
	for i := range p.counts {
		parts[i] = fmt.Sprintf("%s %d", p.targets[i].Load().Host, p.counts[i].Load())
	}
	return strings.Join(parts, ", ")
}
