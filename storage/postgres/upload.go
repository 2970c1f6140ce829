package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/moat-registry/moat/storage"
)

// uploadRecord is the stored state of an upload session, the same JSON as
// bbolt's, with its version.
type uploadRecord struct {
	V int `json:"v"`
	storage.UploadState
}

// PutUpload implements storage.UploadStates.
func (db *DB) PutUpload(ctx context.Context, st storage.UploadState) error {
	b, err := json.Marshal(uploadRecord{V: 1, UploadState: st})
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		INSERT INTO uploads (id, state) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state`, st.ID, string(b))
	return err
}

// GetUpload implements storage.UploadStates.
func (db *DB) GetUpload(ctx context.Context, id string) (storage.UploadState, error) {
	var b []byte
	err := db.pool.QueryRow(ctx, `SELECT state FROM uploads WHERE id = $1`, id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.UploadState{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.UploadState{}, err
	}
	var rec uploadRecord
	err = json.Unmarshal(b, &rec)
	return rec.UploadState, err
}

// DeleteUpload implements storage.UploadStates; a missing id is no error.
func (db *DB) DeleteUpload(ctx context.Context, id string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, id)
	return err
}

// ListUploads implements storage.UploadStates, in id order. The states
// are read before fn is called, so fn may use the DB.
func (db *DB) ListUploads(ctx context.Context, fn func(storage.UploadState) error) error {
	rows, err := db.pool.Query(ctx, `SELECT state FROM uploads ORDER BY id`)
	if err != nil {
		return err
	}
	states, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return err
	}
	for _, b := range states {
		var rec uploadRecord
		if json.Unmarshal(b, &rec) != nil {
			continue // unreadable: left for Expire's sweep
		}
		if err := fn(rec.UploadState); err != nil {
			return err
		}
	}
	return nil
}
