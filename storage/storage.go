package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sentinel errors. Callers compare with errors.Is; the registry maps each to
// its OCI error code in one table.
var (
	ErrBlobUnknown       = errors.New("blob unknown")
	ErrManifestUnknown   = errors.New("manifest unknown")
	ErrRepositoryUnknown = errors.New("repository unknown")
	ErrUploadUnknown     = errors.New("upload unknown")
	ErrDigestMismatch    = errors.New("content does not match digest")
	ErrSizeMismatch      = errors.New("content does not match size")
	ErrOffsetMismatch    = errors.New("chunk does not continue the upload")
	ErrNotFound          = errors.New("not found")
	ErrUnsupportedDigest = errors.New("unsupported digest algorithm")
	ErrClosed            = errors.New("storage closed")
	// ErrBusy answers a garbage collection asked for while one runs.
	ErrBusy = errors.New("a garbage collection is already running")
)

// MissingError reports a descriptor that a manifest references but that is
// not in the repository. It matches ErrBlobUnknown or ErrManifestUnknown.
type MissingError struct {
	Digest   digest.Digest
	Manifest bool
}

func (e *MissingError) Error() string {
	if e.Manifest {
		return "manifest " + e.Digest.String() + " unknown in repository"
	}
	return "blob " + e.Digest.String() + " unknown in repository"
}

// Is makes errors.Is(err, ErrBlobUnknown) true for a missing blob and
// ErrManifestUnknown for a missing manifest.
func (e *MissingError) Is(target error) bool {
	if e.Manifest {
		return target == ErrManifestUnknown
	}
	return target == ErrBlobUnknown
}

// Blobs is the content-addressed store of blob bytes, shared by all
// repositories. Which repository may see which blob is metadata (Meta).
type Blobs interface {
	// Stat returns the size of a stored blob or ErrBlobUnknown.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open opens a stored blob for reading. The disk store returns an
	// *os.File so that HTTP answers use sendfile.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
	// Put stores the content r, which must hash to d (and be size bytes
	// long unless size is negative). Nothing is visible until it is verified.
	Put(ctx context.Context, d digest.Digest, r io.Reader, size int64) (int64, error)
	// Delete removes a stored blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every stored blob.
	Walk(ctx context.Context, fn func(d digest.Digest, size int64, modified time.Time) error) error
}

// Upload is the state of a resumable upload session.
type Upload struct {
	ID         string
	Repository string
	Size       int64
	Started    time.Time
	Updated    time.Time
}

// Uploads stores resumable upload sessions: their bytes and their state.
type Uploads interface {
	// Start opens a session for repository.
	Start(ctx context.Context, repository string) (Upload, error)
	// Get returns a session's state, or ErrUploadUnknown when it does not
	// exist, expired or belongs to another repository.
	Get(ctx context.Context, repository, id string) (Upload, error)
	// Append writes r at offset, which must equal the session's size
	// (ErrOffsetMismatch otherwise; a negative offset appends). The bytes
	// that arrived before a read error are kept, so the client can resume.
	Append(ctx context.Context, repository, id string, offset int64, r io.Reader) (Upload, error)
	// Finish verifies the session's bytes against d, moves them into the
	// blob store and ends the session. On ErrDigestMismatch the session
	// stays open.
	Finish(ctx context.Context, repository, id string, d digest.Digest) (int64, error)
	// Cancel ends a session and removes its bytes.
	Cancel(ctx context.Context, repository, id string) error
	// Expire ends every session idle since before the cutoff and returns
	// how many it removed.
	Expire(ctx context.Context, cutoff time.Time) (int, error)
}

// Manifest is a stored manifest and what the registry derived from it.
type Manifest struct {
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Subject      digest.Digest
	Annotations  map[string]string
	// Blobs and Manifests are the digests the manifest references that
	// must be present in the repository (config and layers; index children).
	Blobs     []digest.Digest
	Manifests []digest.Digest
	// Created is when the manifest was pushed. A store with a clock of
	// its own (PostgreSQL: the database's) sets it and ignores the time
	// passed to PutManifest.
	Created time.Time
	Size    int64
	// Raw is the manifest exactly as it was pushed. A lookup without body
	// leaves it nil.
	Raw []byte
}

// Meta is the metadata of repositories: manifests, tags, which blobs each
// repository may see, and the referrers index.
type Meta interface {
	// Repositories lists repository names after last in lexical order, at
	// most n (n < 0: all) that keep returns true for.
	Repositories(ctx context.Context, last string, n int, keep func(string) bool) ([]string, error)
	// LinkBlob makes a stored blob visible in a repository.
	LinkBlob(ctx context.Context, repository string, d digest.Digest, size int64) error
	// BlobLink returns the size of a blob visible in a repository, or
	// ErrBlobUnknown.
	BlobLink(ctx context.Context, repository string, d digest.Digest) (int64, error)
	// FindBlob returns a repository, among those keep accepts, in which d
	// is visible, and its size; ErrBlobUnknown when there is none.
	FindBlob(ctx context.Context, d digest.Digest, keep func(string) bool) (string, int64, error)
	// UnlinkBlob hides a blob from a repository (ErrBlobUnknown if it was
	// not visible there).
	UnlinkBlob(ctx context.Context, repository string, d digest.Digest) error
	// PutManifest stores m in a repository and points tags at it, in one
	// transaction. Every blob m references must be visible in the
	// repository, and with requireChildren every child manifest must be
	// there too (a *MissingError otherwise).
	PutManifest(ctx context.Context, repository string, m *Manifest, tags []string, requireChildren bool) error
	// Manifest returns the manifest a tag or digest names, with its bytes
	// when body is true; ErrManifestUnknown or ErrRepositoryUnknown.
	Manifest(ctx context.Context, repository, reference string, body bool) (*Manifest, error)
	// DeleteManifest removes a manifest, every tag pointing at it and its
	// referrers entry.
	DeleteManifest(ctx context.Context, repository string, d digest.Digest) error
	// DeleteTag removes one tag.
	DeleteTag(ctx context.Context, repository, tag string) error
	// Tags lists a repository's tags after last in lexical order, at most n
	// (n < 0: all); ErrRepositoryUnknown when the repository does not exist.
	Tags(ctx context.Context, repository, last string, n int) ([]string, error)
	// Referrers lists the manifests whose subject is d, optionally only
	// those of one artifact type.
	Referrers(ctx context.Context, repository string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
	// TagDetails lists a repository's tags with their digests and the time
	// each was set; ErrRepositoryUnknown when the repository does not exist.
	TagDetails(ctx context.Context, repository string) ([]TagInfo, error)
	// ManifestDigests lists the digests of a repository's manifests.
	ManifestDigests(ctx context.Context, repository string) ([]digest.Digest, error)
}

// Collector is a metadata store that garbage-collects a blob store,
// online (see the package documentation for the protocol).
type Collector interface {
	CollectGarbage(ctx context.Context, blobs Blobs, opts GCOptions) (GCReport, error)
}

// UploadStates persists upload session state for Uploads.
type UploadStates interface {
	PutUpload(ctx context.Context, s UploadState) error
	GetUpload(ctx context.Context, id string) (UploadState, error)
	DeleteUpload(ctx context.Context, id string) error
	ListUploads(ctx context.Context, fn func(UploadState) error) error
}

// UploadState is what survives a restart of an upload session: where it
// stands and the running hash state so far.
type UploadState struct {
	Upload
	// Algorithm names the hash of HashState ("sha256").
	Algorithm string
	HashState []byte
	// Extra is the blob store's own state of the session (an object
	// store's multipart upload id and parts), opaque to everything else.
	Extra []byte `json:",omitempty"`
}

// Documents stores JSON documents by collection and key: the registry's
// settings, identities, role assignments and other control-plane state.
type Documents interface {
	// ViewDocuments runs fn in a read transaction.
	ViewDocuments(ctx context.Context, fn func(DocTx) error) error
	// UpdateDocuments runs fn in a write transaction; if fn returns an
	// error nothing is written.
	UpdateDocuments(ctx context.Context, fn func(DocTx) error) error
}

// DocTx is a transaction over Documents.
type DocTx interface {
	// Get returns a document or ErrNotFound.
	Get(collection, key string) ([]byte, error)
	Put(collection, key string, value []byte) error
	// Delete removes a document; ErrNotFound when it did not exist.
	Delete(collection, key string) error
	// List calls fn for every document of a collection in key order.
	List(collection string, fn func(key string, value []byte) error) error
}

// AuditLog is a bounded, append-only log of policy decisions.
type AuditLog interface {
	// AppendAudit adds entries (JSON) and trims the oldest past the bound.
	AppendAudit(ctx context.Context, entries [][]byte) error
	// ScanAudit calls fn with entries newest first until it returns false.
	ScanAudit(ctx context.Context, fn func(entry []byte) bool) error
}
