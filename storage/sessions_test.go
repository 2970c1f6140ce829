package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSessionDB(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "uploads.db")
	s, err := OpenSessionDB(path)
	if err != nil {
		t.Fatal(err)
	}
	st := UploadState{Upload: Upload{ID: "0123456789abcdef0123456789abcdef", Repository: "app", Size: 7, Started: time.Now().UTC()}, Algorithm: "sha256", HashState: []byte{1, 2}}
	if err := s.PutUpload(ctx, st); err != nil {
		t.Fatal(err)
	}
	s.Close()

	t.Run("reopened, the state is there", func(t *testing.T) {
		s, err := OpenSessionDB(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.GetUpload(ctx, st.ID)
		if err != nil || got.Size != 7 || got.Repository != "app" || len(got.HashState) != 2 {
			t.Fatalf("GetUpload = %+v, %v", got, err)
		}
		n := 0
		if err := s.ListUploads(ctx, func(UploadState) error { n++; return nil }); err != nil || n != 1 {
			t.Fatalf("ListUploads saw %d, %v", n, err)
		}
		if err := s.DeleteUpload(ctx, st.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUpload(ctx, st.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
	t.Run("a broken file is moved aside", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("not a bbolt file at all, as after a power loss"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSessionDB(path)
		if err != nil {
			t.Fatalf("OpenSessionDB over a broken file: %v", err)
		}
		defer s.Close()
		if _, err := s.GetUpload(ctx, st.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a new file holds %v", err)
		}
		aside, _ := filepath.Glob(path + ".broken-*")
		if len(aside) != 1 {
			t.Fatalf("broken file kept as %v", aside)
		}
	})
}
