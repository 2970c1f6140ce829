package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SessionDB keeps the states of upload sessions in a bbolt file of their
// own (<data>/uploads.db), committed without fsync. A session's state
// changes with every chunk, and syncing it made every chunk of every push
// pay two fsyncs in the metadata file. The state survives a crash of moat
// (it is in the page cache); a crash of the machine may lose recent
// changes or the whole file, and then the sessions fail cleanly (404
// BLOB_UPLOAD_UNKNOWN, or a resume from the offset the state still
// holds): never a blob, since blobs are verified against their digest
// and committed with fsync. A file that does not check out at open is
// moved aside and started anew.
type SessionDB struct {
	db     *bolt.DB
	writes committer
}

var _ UploadStates = (*SessionDB)(nil)

// OpenSessionDB opens (creating if needed) the session file at path.
func OpenSessionDB(path string) (*SessionDB, error) {
	db, err := openSessions(path)
	if err != nil {
		// Unsynced writes may leave a file that does not open or check out
		// after a power loss: keep it for inspection, start anew.
		aside := fmt.Sprintf("%s.broken-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return nil, fmt.Errorf("open %s: %w (and moving it aside: %v)", path, err, rerr)
		}
		if db, err = openSessions(path); err != nil {
			return nil, err
		}
	}
	return &SessionDB{db: db, writes: committer{db: db}}, nil
}

func openSessions(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: the file is locked by another process (is another moat running on this data dir?)", path)
		}
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		_, err := tx.CreateBucketIfNotExists([]byte(bucketUploads))
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func (s *SessionDB) states() uploadStates { return uploadStates{s.db, &s.writes} }

// PutUpload implements UploadStates.
func (s *SessionDB) PutUpload(_ context.Context, st UploadState) error { return s.states().put(st) }

// GetUpload implements UploadStates.
func (s *SessionDB) GetUpload(_ context.Context, id string) (UploadState, error) {
	return s.states().get(id)
}

// DeleteUpload implements UploadStates.
func (s *SessionDB) DeleteUpload(_ context.Context, id string) error { return s.states().delete(id) }

// ListUploads implements UploadStates.
func (s *SessionDB) ListUploads(_ context.Context, fn func(UploadState) error) error {
	return s.states().list(fn)
}

// Close closes the file.
func (s *SessionDB) Close() error { return s.db.Close() }
