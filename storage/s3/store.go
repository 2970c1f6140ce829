package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// S3's limits on multipart uploads.
const (
	// MinPartSize is the smallest part S3 accepts, except for the last.
	MinPartSize = 5 << 20
	// maxCopySize is the largest object CopyObject copies, and the largest
	// range one UploadPartCopy copies.
	maxCopySize = 5 << 30
	// maxParts is how many parts one multipart upload may have.
	maxParts = 10000
)

// DefaultPartSize is the part size of multipart uploads when Options
// leaves it zero.
const DefaultPartSize = 8 << 20

// Options configure a Store.
type Options struct {
	// Endpoint is the URL of an S3-compatible service
	// ("https://minio.example:9000"); empty means AWS S3.
	Endpoint string
	// Region of the bucket; "us-east-1" when empty.
	Region string
	// Bucket holds everything; it must exist.
	Bucket string
	// Prefix is prepended to every key ("moat/"); empty for the bucket's
	// root. A missing trailing slash is added.
	Prefix string
	// AccessKey and SecretKey are static credentials (with SessionToken
	// for temporary ones). Without them the SDK's default chain applies:
	// environment, shared config, web identity (IRSA), instance role.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// UsePathStyle addresses the bucket in the path (endpoint/bucket/key)
	// rather than in the host name, as most S3-compatible servers need.
	UsePathStyle bool
	// PartSize is the size of multipart upload parts and the most bytes a
	// request holds in memory per upload (DefaultPartSize when zero; at
	// least MinPartSize). Parts grow past it for very large blobs, to stay
	// within S3's 10,000 parts.
	PartSize int64
	// Concurrency is how many parts one request uploads at a time
	// (default 2). A streaming request holds up to Concurrency+1 parts
	// in memory.
	Concurrency int
	// ChecksumWhenRequired sends request checksums only where S3 requires
	// them, for S3-compatible servers that reject the SDK's default
	// CRC checksums. Digests are verified by the store either way.
	ChecksumWhenRequired bool
	// HTTPClient sends the requests (default: the SDK's).
	HTTPClient *http.Client
}

// Store keeps blobs and upload sessions in an S3 bucket. It implements
// storage.Blobs and storage.Uploads; see the package documentation for
// the layout and the upload protocol.
type Store struct {
	client  *awss3.Client
	presign *awss3.PresignClient
	bucket  string
	prefix  string
	part    int64
	conc    int
	// whenRequired: no CRC32 checksums on uploads (Options.ChecksumWhenRequired).
	whenRequired bool
	states       storage.UploadStates
	marker       storage.Marker
	now          func() time.Time
	bufs         sync.Pool // *[]byte of part bytes
	locks        storage.SessionLocks

	sweepMu   sync.Mutex
	lastSweep time.Time
}

var (
	_ storage.Blobs   = (*Store)(nil)
	_ storage.Uploads = (*Store)(nil)
)

// New opens a store over an existing bucket. states keeps upload
// sessions (shared by every replica); marker (the metadata store) records
// each blob before its bytes are committed, and may be nil only for a
// store that never runs beside garbage collection.
func New(ctx context.Context, opts Options, states storage.UploadStates, marker storage.Marker) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	if states == nil {
		return nil, errors.New("s3: no upload states")
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.PartSize == 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartSize < MinPartSize || opts.PartSize > maxCopySize {
		return nil, fmt.Errorf("s3: part size %d outside [%d, %d]", opts.PartSize, MinPartSize, maxCopySize)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	var load []func(*config.LoadOptions) error
	load = append(load, config.WithRegion(opts.Region))
	if opts.AccessKey != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.SessionToken)))
	}
	if opts.ChecksumWhenRequired {
		load = append(load,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.UsePathStyle
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient
		}
		// Objects of multipart uploads have composite checksums, which
		// the SDK cannot validate on GetObject: not worth a warning each.
		o.DisableLogOutputChecksumValidationSkipped = true
		o.Logger = logging.Nop{}
	})
	s := &Store{
		client:       client,
		presign:      awss3.NewPresignClient(client),
		bucket:       opts.Bucket,
		prefix:       opts.Prefix,
		part:         opts.PartSize,
		conc:         opts.Concurrency,
		whenRequired: opts.ChecksumWhenRequired,
		states:       states,
		marker:       marker,
		now:          time.Now,
	}
	size := int(opts.PartSize)
	s.bufs.New = func() any { b := make([]byte, size); return &b }
	return s, nil
}

// Check reports whether the bucket is reachable with the store's
// credentials (HeadBucket), for readiness probes.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket})
	return err
}

// blobKey is where a committed blob lives: blobs/<alg>/<xx>/<hex>.
func (s *Store) blobKey(d digest.Digest) string {
	enc := d.Encoded()
	return s.prefix + "blobs/" + string(d.Algorithm()) + "/" + enc[:2] + "/" + enc
}

// uploadKey names a new staging object of session id: uploads/<id>/<kind>-<random>.
// Every write gets a fresh key, so a state only ever names bytes that were
// whole when it was saved.
func (s *Store) uploadKey(id, kind string) string {
	return s.prefix + "uploads/" + id + "/" + kind + "-" + randomName()
}

// partSize is the size of multipart part n (1-based): the configured size
// for the first thousand parts, then one more multiple per thousand, so
// that 10,000 parts hold 55 times a thousand parts (440 GB at 8 MiB).
func (s *Store) partSize(n int) int64 {
	return s.part * int64(1+(n-1)/1000)
}

// buffer returns a buffer of at least n bytes and the function that gives
// it back.
func (s *Store) buffer(n int64) ([]byte, func()) {
	if n <= s.part {
		bp := s.bufs.Get().(*[]byte)
		return (*bp)[:n], func() { s.bufs.Put(bp) }
	}
	return make([]byte, n), func() {}
}

// lock serialises the requests of one session within this process; other
// replicas are ordered by the client, which sends one chunk at a time.
func (s *Store) lock(id string) func() { return s.locks.Lock(id) }

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return storage.ErrUnsupportedDigest
		}
		return fmt.Errorf("%w: %v", storage.ErrBlobUnknown, err)
	}
	return nil
}

// randomName returns 32 hex characters from crypto/rand.
func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validID accepts the ids Start makes: 32 lower-case hex characters, so a
// client-chosen id never names another key.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isNotFound reports a missing object (NoSuchKey, NotFound or a bare 404).
func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// isNoSuchUpload reports a multipart upload that was completed or aborted.
func isNoSuchUpload(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}
