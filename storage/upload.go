package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// DiskUploads keeps resumable upload sessions: their bytes in
// <data>/uploads/<id>, their state (size, running sha256 state) in
// UploadStates, so that a session survives a restart.
//
// Neither the bytes nor the state are fsynced, so after a crash of the
// machine a file may come back with other bytes (zeros) than the saved
// hash state covers. The state therefore names the instance that saved it
// (in Extra): only the instance that wrote the bytes, which no crash of
// the machine survives, trusts the hash state; any other reads the bytes
// back and hashes them again.
type DiskUploads struct {
	dir      string
	blobs    *DiskBlobs
	states   UploadStates
	now      func() time.Time
	locks    SessionLocks
	instance []byte // random, new with every NewDiskUploads
}

var _ Uploads = (*DiskUploads)(nil)

// NewDiskUploads opens the upload store under dataDir; finished sessions
// move their bytes into blobs.
func NewDiskUploads(dataDir string, blobs *DiskBlobs, states UploadStates) (*DiskUploads, error) {
	u := &DiskUploads{dir: filepath.Join(dataDir, "uploads"), blobs: blobs, states: states, now: time.Now, instance: []byte(randomName())}
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return nil, err
	}
	return u, nil
}

// lock serialises the requests of one session.
func (u *DiskUploads) lock(id string) func() { return u.locks.Lock(id) }

// validID accepts the ids Start makes: 32 lower-case hex characters. It
// keeps a client-chosen id from naming any other file.
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

func (u *DiskUploads) path(id string) string { return filepath.Join(u.dir, id) }

// Start implements Uploads.
func (u *DiskUploads) Start(ctx context.Context, repository string) (Upload, error) {
	now := u.now().UTC()
	st := UploadState{Upload: Upload{ID: randomName(), Repository: repository, Started: now, Updated: now}, Algorithm: "sha256"}
	if err := u.states.PutUpload(ctx, st); err != nil {
		return Upload{}, err
	}
	return st.Upload, nil
}

func (u *DiskUploads) get(ctx context.Context, repository, id string) (UploadState, error) {
	if !validID(id) {
		return UploadState{}, ErrUploadUnknown
	}
	st, err := u.states.GetUpload(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return UploadState{}, ErrUploadUnknown
		}
		return UploadState{}, err
	}
	if st.Repository != repository {
		return UploadState{}, ErrUploadUnknown
	}
	return st, nil
}

// Get implements Uploads.
func (u *DiskUploads) Get(ctx context.Context, repository, id string) (Upload, error) {
	st, err := u.get(ctx, repository, id)
	return st.Upload, err
}

// Append implements Uploads.
func (u *DiskUploads) Append(ctx context.Context, repository, id string, offset int64, r io.Reader) (Upload, error) {
	defer u.lock(id)()
	st, err := u.get(ctx, repository, id)
	if err != nil {
		return Upload{}, err
	}
	if offset >= 0 && offset != st.Size {
		return st.Upload, ErrOffsetMismatch
	}
	f, err := os.OpenFile(u.path(id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return st.Upload, err
	}
	defer f.Close()
	// The state is the truth: bytes past it are from a write that was cut
	// off before its state was saved; a file shorter than it lost data.
	fi, err := f.Stat()
	if err != nil {
		return st.Upload, err
	}
	if fi.Size() < st.Size {
		return st.Upload, fmt.Errorf("upload %s: %d bytes on disk, %d recorded: %w", id, fi.Size(), st.Size, ErrUploadUnknown)
	}
	if fi.Size() > st.Size {
		if err := f.Truncate(st.Size); err != nil {
			return st.Upload, err
		}
	}
	h, err := u.resumeHash(st, f)
	if err != nil {
		return st.Upload, err
	}
	if _, err := f.Seek(st.Size, io.SeekStart); err != nil {
		return st.Upload, err
	}
	n, hashed, copyErr := copyHashed(f, h, r)
	if n > 0 {
		st.Size += n
		st.Updated = u.now().UTC()
		st.HashState, st.Extra = nil, u.instance
		if hashed {
			if m, ok := h.(encoding.BinaryMarshaler); ok {
				st.HashState, _ = m.MarshalBinary()
			}
		}
		if err := u.states.PutUpload(ctx, st); err != nil {
			return st.Upload, err
		}
	}
	return st.Upload, copyErr
}

// resumeHash returns the sha256 of the session's st.Size bytes: the saved
// hash state when this instance saved it, otherwise a hash of the bytes
// read back from f (see DiskUploads). It leaves f's offset anywhere.
func (u *DiskUploads) resumeHash(st UploadState, f *os.File) (hash.Hash, error) {
	h := sha256.New()
	if st.Size == 0 {
		return h, nil
	}
	if st.Algorithm == "sha256" && len(st.HashState) > 0 && bytes.Equal(st.Extra, u.instance) &&
		h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.HashState) == nil {
		return h, nil
	}
	h.Reset()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	bp := copyBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(h, io.LimitReader(f, st.Size), *bp)
	copyBuffers.Put(bp)
	if err != nil {
		return nil, err
	}
	if n != st.Size {
		return nil, fmt.Errorf("upload %s: %d bytes on disk, %d recorded: %w", st.ID, n, st.Size, ErrUploadUnknown)
	}
	return h, nil
}

// Finish implements Uploads.
func (u *DiskUploads) Finish(ctx context.Context, repository, id string, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	defer u.lock(id)()
	st, err := u.get(ctx, repository, id)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(u.path(id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	if fi.Size() != st.Size {
		if fi.Size() < st.Size {
			f.Close()
			return 0, fmt.Errorf("upload %s: %d bytes on disk, %d recorded: %w", id, fi.Size(), st.Size, ErrUploadUnknown)
		}
		if err := f.Truncate(st.Size); err != nil {
			f.Close()
			return 0, err
		}
	}
	got, err := u.sum(st, f, d.Algorithm())
	if err != nil {
		f.Close()
		return 0, err
	}
	if got != d {
		f.Close()
		return 0, ErrDigestMismatch
	}
	if err := u.blobs.commit(ctx, f, d, st.Size); err != nil {
		return 0, err
	}
	if err := u.states.DeleteUpload(ctx, id); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// sum is the digest of the session's bytes: for sha256 from the running
// hash (resumeHash), otherwise by reading the file.
func (u *DiskUploads) sum(st UploadState, f *os.File, alg digest.Algorithm) (digest.Digest, error) {
	if alg == digest.SHA256 {
		h, err := u.resumeHash(st, f)
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, h), nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := alg.Hash()
	bp := copyBuffers.Get().(*[]byte)
	_, err := io.CopyBuffer(h, io.LimitReader(f, st.Size), *bp)
	copyBuffers.Put(bp)
	if err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// Cancel implements Uploads.
func (u *DiskUploads) Cancel(ctx context.Context, repository, id string) error {
	defer u.lock(id)()
	if _, err := u.get(ctx, repository, id); err != nil {
		return err
	}
	return u.remove(ctx, id)
}

func (u *DiskUploads) remove(ctx context.Context, id string) error {
	if err := os.Remove(u.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return u.states.DeleteUpload(ctx, id)
}

// Expire implements Uploads. It also removes files in the uploads directory
// that no session owns and that are older than the cutoff.
func (u *DiskUploads) Expire(ctx context.Context, cutoff time.Time) (int, error) {
	var stale []string
	live := map[string]bool{}
	err := u.states.ListUploads(ctx, func(st UploadState) error {
		if st.Updated.Before(cutoff) {
			stale = append(stale, st.ID)
		} else {
			live[st.ID] = true
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range stale {
		unlock := u.lock(id)
		st, err := u.states.GetUpload(ctx, id)
		if err == nil && st.Updated.Before(cutoff) {
			if err := u.remove(ctx, id); err != nil {
				unlock()
				return n, err
			}
			n++
		}
		unlock()
	}
	entries, err := os.ReadDir(u.dir)
	if err != nil {
		return n, err
	}
	for _, e := range entries {
		if live[e.Name()] {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if _, err := u.states.GetUpload(ctx, e.Name()); errors.Is(err, ErrNotFound) {
				_ = os.Remove(u.path(e.Name()))
			}
		}
	}
	return n, nil
}
