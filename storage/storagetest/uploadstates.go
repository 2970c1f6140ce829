package storagetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
)

func (s MetaSuite) testUploadStates(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	st := storage.UploadState{
		Upload:    storage.Upload{ID: "0123", Repository: "a/b", Size: 42, Started: at, Updated: at.Add(time.Second)},
		Algorithm: "sha256",
		HashState: []byte{1, 2, 3},
	}
	if _, err := db.GetUpload(ctx, st.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetUpload() of a missing id = %v, want ErrNotFound", err)
	}
	if err := db.PutUpload(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetUpload(ctx, st.ID)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Errorf("GetUpload() = %+v, %v; want %+v", got, err, st)
	}
	// A later chunk replaces the state, the blob store's own part included.
	st.Size, st.HashState, st.Extra = 84, []byte{4, 5, 6, 7}, []byte(`{"uploadId":"x","parts":[1]}`)
	if err := db.PutUpload(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetUpload(ctx, st.ID); err != nil || !reflect.DeepEqual(got, st) {
		t.Errorf("GetUpload() after an update = %+v, %v; want %+v", got, err, st)
	}
	other := st
	other.ID = "4567"
	other.Repository = "c"
	first := st
	first.ID = "00ff"
	for _, s := range []storage.UploadState{other, first} {
		if err := db.PutUpload(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	if err := db.ListUploads(ctx, func(s storage.UploadState) error { ids = append(ids, s.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"00ff", "0123", "4567"}) {
		t.Errorf("ListUploads() = %v, want them in id order", ids)
	}
	stop := errors.New("stop")
	ids = nil
	err = db.ListUploads(ctx, func(s storage.UploadState) error { ids = append(ids, s.ID); return stop })
	if !errors.Is(err, stop) || len(ids) != 1 {
		t.Errorf("ListUploads() with fn failing = %v after %v, want fn's error after one", err, ids)
	}
	if err := db.DeleteUpload(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetUpload(ctx, st.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetUpload() after delete = %v", err)
	}
	if err := db.DeleteUpload(ctx, st.ID); err != nil {
		t.Errorf("DeleteUpload() of a missing id = %v, want nil", err)
	}
}
