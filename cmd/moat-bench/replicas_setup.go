package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moat-registry/moat/storage/postgres/pgtest"
	"github.com/moat-registry/moat/storage/s3/s3test"
)

// replicaServiceName is the registry.name of every replica: tokens from
// one verify on the others only when the audience is the same.
const replicaServiceName = "moat-bench-replicas"

// backends are the shared services of the replicas: a PostgreSQL
// database and an S3 bucket, given by flags or started for the run
// (pgtest and s3test, the harnesses of moat's own tests).
type backends struct {
	DSN                            string
	Endpoint, Region, Bucket       string
	AccessKey, SecretKey           string
	pg                             *pgtest.Cluster
	s3                             *s3test.Server
	Postgres, ObjectStore, Durable string // what the report says ran
}

// errBackendMissing reports that PostgreSQL or versitygw is not
// installed, so the scale-out figures cannot be taken.
var errBackendMissing = errors.New("backend not installed")

// startBackends starts what the flags do not name. A throwaway cluster
// keeps PostgreSQL's durable defaults (fsync on) unless fast is set: the
// single replica it is compared with fsyncs its bbolt commits.
func startBackends(ctx context.Context, f *replicaFlags) (*backends, error) {
	b := &backends{DSN: f.pgDSN, Endpoint: f.s3Endpoint, Region: f.s3Region, Bucket: f.s3Bucket,
		AccessKey: f.s3AccessKey, SecretKey: f.s3SecretKey, Postgres: "given (--pg-dsn)", ObjectStore: "given (--s3-endpoint)"}
	if b.DSN == "" {
		c, err := pgtest.Start(ctx, pgtest.Options{Durable: !f.pgFast})
		if err != nil {
			if errors.Is(err, pgtest.ErrNotInstalled) {
				return nil, fmt.Errorf("%w: %v (apt-get install postgresql, or --pg-dsn)", errBackendMissing, err)
			}
			return nil, fmt.Errorf("starting PostgreSQL: %w", err)
		}
		b.pg = c
		if b.DSN, err = c.CreateDatabase(ctx); err != nil {
			b.stop()
			return nil, err
		}
		b.Postgres = "throwaway cluster (pgtest), fsync " + map[bool]string{true: "off", false: "on"}[f.pgFast]
	}
	if b.Endpoint == "" {
		s, err := s3test.Start(ctx)
		if err != nil {
			b.stop()
			if errors.Is(err, s3test.ErrNotInstalled) {
				return nil, fmt.Errorf("%w: %v; install it with %s, or give --s3-endpoint", errBackendMissing, err, s3test.InstallHint)
			}
			return nil, fmt.Errorf("starting versitygw: %w", err)
		}
		b.s3 = s
		if b.Bucket, err = s.CreateBucket(ctx); err != nil {
			b.stop()
			return nil, err
		}
		// versitygw's POSIX backend removes a key's empty parent
		// directories when it deletes the key, racing with a concurrent
		// write under the same parent: a staging segment deleted as its
		// upload finishes can take uploads/ away while another upload
		// creates uploads/<id>/, which fails with 409
		// ExistingObjectIsDirectory (a 500 for the client, a few per
		// thousand pushes at c=8). A directory object stops the
		// removal; real S3 has no directories to race on.
		if _, err := s.Client().PutObject(ctx, &awss3.PutObjectInput{Bucket: &b.Bucket, Key: aws.String("uploads/")}); err != nil {
			b.stop()
			return nil, err
		}
		b.Endpoint, b.Region, b.AccessKey, b.SecretKey = s.Endpoint, s3test.Region, s3test.AccessKey, s3test.SecretKey
		b.ObjectStore = "versitygw " + s3test.Version + " (POSIX backend, throwaway)"
	}
	if b.Region == "" {
		b.Region = "us-east-1"
	}
	return b, nil
}

func (b *backends) stop() {
	if b.s3 != nil {
		_ = b.s3.Stop()
	}
	if b.pg != nil {
		_ = b.pg.Stop()
	}
}

// replicaConfigYAML is the configuration file every replica shares;
// listen and data come from flags.
const replicaConfigYAML = `dev: false
registry:
  name: %s
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

// startReplicas starts n moat replicas on the backends, one data
// directory each, and waits until each is ready.
func startReplicas(ctx context.Context, bin, dir string, n int, b *backends, password string) ([]*Process, error) {
	cfg := filepath.Join(dir, "replica.yaml")
	yaml := fmt.Sprintf(replicaConfigYAML, replicaServiceName, b.Endpoint, b.Region, b.Bucket, b.AccessKey, b.SecretKey, b.DSN, randomPassword()+randomPassword())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	var procs []*Process
	for i := range n {
		name := fmt.Sprintf("replica-%c", 'a'+i)
		p, err := startMoatProcess(bin, name, filepath.Join(dir, name+"-data"), dir, password, "--config", cfg)
		if err != nil {
			stopAll(procs)
			return nil, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := waitReadyz(ctx, p.URL, 60*time.Second); err != nil {
			stopAll(procs)
			return nil, err
		}
	}
	return procs, nil
}

// startMoatProcess runs `moat serve --dev=false` on a fresh port over
// data with the admin password and extra flags.
func startMoatProcess(bin, name, data, logDir, password string, extra ...string) (*Process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return startProcess(procSpec{
		name:  name,
		bin:   bin,
		args:  append([]string{"serve", "--listen", addr, "--data", data, "--dev=false"}, extra...),
		env:   []string{"MOAT_ADMIN_PASSWORD=" + password},
		addr:  addr,
		data:  data,
		log:   filepath.Join(logDir, name+".log"),
		ready: func(status int) bool { return status == http.StatusOK || status == http.StatusUnauthorized },
	})
}

func stopAll(procs []*Process) {
	for _, p := range procs {
		_ = p.Stop()
	}
}

// cpuOf is the CPU time the processes used so far.
func cpuOf(procs []*Process) (time.Duration, bool) {
	var sum time.Duration
	for _, p := range procs {
		d, err := p.CPUTime()
		if err != nil {
			return 0, false
		}
		sum += d
	}
	return sum, true
}
