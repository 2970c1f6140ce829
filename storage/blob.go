package storage

import (
	"context"
	"crypto/rand"
	_ "crypto/sha256" // register sha256 with go-digest
	_ "crypto/sha512" // register sha384 and sha512 with go-digest
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// DiskBlobs is the content-addressed blob store on the local disk. See the
// package documentation for the layout.
type DiskBlobs struct {
	root   string // <data>/blobs
	tmp    string // <data>/tmp, on the same filesystem so rename is atomic
	marker Marker
}

// Marker records that a blob is being stored now (DB.MarkBlob), before its
// bytes are committed: the mark protects the bytes from a concurrent
// garbage collection.
type Marker interface {
	MarkBlob(ctx context.Context, d digest.Digest, size int64) error
}

var _ Blobs = (*DiskBlobs)(nil)

// copyBuffers holds the buffers that stream request bodies to disk.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// NewDiskBlobs opens the blob store under dataDir, creating its directories
// and removing temp files a crash left behind. marker (the metadata store)
// records each blob before its bytes are committed; only a store that
// never runs beside garbage collection may pass nil.
func NewDiskBlobs(dataDir string, marker Marker) (*DiskBlobs, error) {
	s := &DiskBlobs{root: filepath.Join(dataDir, "blobs"), tmp: filepath.Join(dataDir, "tmp"), marker: marker}
	for _, d := range []string{s.root, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := s.syncTree(dataDir); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		_ = os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return s, nil
}

// syncTree fsyncs the blob directories that exist — blobs/, each
// blobs/<alg>/ — and dataDir: an earlier process may have created an
// entry in them (commit's MkdirAll) and crashed before its fsync, and a
// later commit, finding the directory in place, fsyncs only the
// directory it renames into. Creating the 3×256 fan-out directories here
// instead would cost an empty data dir's start a quarter of a second.
func (s *DiskBlobs) syncTree(dataDir string) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
		if err := syncDir(filepath.Join(s.root, string(alg))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	return syncDir(dataDir)
}

// path is where a blob lives: blobs/<algorithm>/<first two hex>/<hex>.
// Callers validate d first (digest.Digest.Validate), so it holds no
// separators.
func (s *DiskBlobs) path(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(s.root, string(d.Algorithm()), enc[:2], enc)
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return ErrUnsupportedDigest
		}
		return fmt.Errorf("%w: %v", ErrBlobUnknown, err)
	}
	return nil
}

// Stat implements Blobs.
func (s *DiskBlobs) Stat(_ context.Context, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.path(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, ErrBlobUnknown
		}
		return 0, err
	}
	return fi.Size(), nil
}

// Open implements Blobs; the reader is an *os.File.
func (s *DiskBlobs) Open(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if err := checkDigest(d); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, ErrBlobUnknown
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Put implements Blobs: the content streams to a temp file while it is
// hashed, is verified, fsynced and renamed into place.
func (s *DiskBlobs) Put(ctx context.Context, d digest.Digest, r io.Reader, size int64) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	f, err := s.tempFile()
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := d.Algorithm().Hash()
	n, _, err := copyHashed(f, h, r)
	if err != nil {
		return n, err
	}
	if size >= 0 && n != size {
		return n, ErrSizeMismatch
	}
	if digest.NewDigest(d.Algorithm(), h) != d {
		return n, ErrDigestMismatch
	}
	if err := s.commit(ctx, f, d, n); err != nil {
		return n, err
	}
	done = true
	return n, nil
}

// commit marks d, then fsyncs and closes f and renames it to d's place.
// If the blob is already stored the temp file is dropped: the content is
// the same, and the mark keeps garbage collection from removing it.
func (s *DiskBlobs) commit(ctx context.Context, f *os.File, d digest.Digest, size int64) error {
	if s.marker != nil {
		if err := s.marker.MarkBlob(ctx, d, size); err != nil {
			f.Close()
			return err
		}
	}
	final := s.path(d)
	if _, err := os.Stat(final); err == nil {
		f.Close()
		return os.Remove(f.Name())
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir := filepath.Dir(final)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// The first blob of its fan-out directory: the directory is made,
		// with its parents, each synced.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		for _, d := range []string{filepath.Dir(dir), s.root} {
			if err := syncDir(d); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return err
	}
	return syncDir(dir)
}

// Delete implements Blobs.
func (s *DiskBlobs) Delete(_ context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk implements Blobs.
func (s *DiskBlobs) Walk(ctx context.Context, fn func(d digest.Digest, size int64, modified time.Time) error) error {
	return filepath.WalkDir(s.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		alg, rest, _ := cutPath(rel)
		_, enc, _ := cutPath(rest)
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
		if d.Validate() != nil {
			return nil // not a blob: leave it alone
		}
		fi, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(d, fi.Size(), fi.ModTime())
	})
}

func cutPath(p string) (string, string, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == filepath.Separator {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

func (s *DiskBlobs) tempFile() (*os.File, error) {
	return os.OpenFile(filepath.Join(s.tmp, randomName()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// randomName returns 32 hex characters from crypto/rand.
func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// syncDir fsyncs a directory so that a rename into it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
