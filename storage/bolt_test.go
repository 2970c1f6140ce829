package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func newTestDB(t testing.TB, opts DBOptions) *DB {
	t.Helper()
	db, err := OpenDB(filepath.Join(t.TempDir(), "meta.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func readSchema(t *testing.T, path string) uint64 {
	t.Helper()
	raw, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v uint64
	err = raw.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchema))
		if len(b) != 8 {
			return fmt.Errorf("schema value %x", b)
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenDBSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := OpenDB(path, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Check(context.Background()); err != nil {
		t.Errorf("Check() = %v", err)
	}
	db.Close()
	if v := readSchema(t, path); v != schemaVersion {
		t.Errorf("stored schema version %d, want %d", v, schemaVersion)
	}

	t.Run("reopen keeps the version", func(t *testing.T) {
		db, err := OpenDB(path, DBOptions{})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if v := readSchema(t, path); v != schemaVersion {
			t.Errorf("schema version %d after reopen", v)
		}
	})

	t.Run("newer version is refused", func(t *testing.T) {
		raw, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = raw.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), binary.BigEndian.AppendUint64(nil, schemaVersion+1))
		})
		raw.Close()
		if err != nil {
			t.Fatal(err)
		}
		db, err := OpenDB(path, DBOptions{})
		if err == nil {
			db.Close()
			t.Fatal("OpenDB() accepted a newer schema")
		}
		for _, want := range []string{path, fmt.Sprintf("schema version %d", schemaVersion+1), "newer than this moat understands"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
}

func TestOpenDBLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := OpenDB(path, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	second, err := OpenDB(path, DBOptions{Timeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("a second OpenDB() of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("error %q does not explain the lock", err)
	}
}

func TestUploadStates(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	st := UploadState{
		Upload:    Upload{ID: "0123", Repository: "a/b", Size: 42, Started: at, Updated: at.Add(time.Second)},
		Algorithm: "sha256",
		HashState: []byte{1, 2, 3},
	}
	if _, err := db.GetUpload(ctx, st.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetUpload() of a missing id = %v, want ErrNotFound", err)
	}
	if err := db.PutUpload(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetUpload(ctx, st.ID)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Errorf("GetUpload() = %+v, %v; want %+v", got, err, st)
	}
	other := st
	other.ID = "4567"
	if err := db.PutUpload(ctx, other); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := db.ListUploads(ctx, func(s UploadState) error { ids = append(ids, s.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"0123", "4567"}) {
		t.Errorf("ListUploads() = %v", ids)
	}
	if err := db.DeleteUpload(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetUpload(ctx, st.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetUpload() after delete = %v", err)
	}
}

func TestDocuments(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	put := func(collection, key, value string) {
		t.Helper()
		if err := db.UpdateDocuments(ctx, func(tx DocTx) error { return tx.Put(collection, key, []byte(value)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("identities", "bob", `{"name":"bob"}`)
	put("identities", "alice", `{"name":"alice"}`)
	put("identities", "carol", `{"name":"carol"}`)
	put("settings", "registry", `{"v":1}`)
	put("settings", "registry", `{"v":2}`)

	tests := []struct {
		name       string
		collection string
		key        string
		want       string
		wantErr    error
	}{
		{"stored", "identities", "alice", `{"name":"alice"}`, nil},
		{"overwritten", "settings", "registry", `{"v":2}`, nil},
		{"missing key", "identities", "dave", "", ErrNotFound},
		{"missing collection", "tokens", "x", "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run("get "+tt.name, func(t *testing.T) {
			err := db.ViewDocuments(ctx, func(tx DocTx) error {
				got, err := tx.Get(tt.collection, tt.key)
				if err != nil {
					return err
				}
				if string(got) != tt.want {
					t.Errorf("Get() = %s, want %s", got, tt.want)
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Get() error = %v, want %v", err, tt.wantErr)
			}
		})
	}

	t.Run("list in key order", func(t *testing.T) {
		var keys []string
		err := db.ViewDocuments(ctx, func(tx DocTx) error {
			return tx.List("identities", func(k string, v []byte) error {
				keys = append(keys, k)
				if !strings.Contains(string(v), k) {
					t.Errorf("%s: value %s", k, v)
				}
				return nil
			})
		})
		if err != nil || !reflect.DeepEqual(keys, []string{"alice", "bob", "carol"}) {
			t.Errorf("List() = %v, %v", keys, err)
		}
		err = db.ViewDocuments(ctx, func(tx DocTx) error {
			return tx.List("nothing", func(string, []byte) error { t.Error("called for an empty collection"); return nil })
		})
		if err != nil {
			t.Errorf("List() of a missing collection = %v", err)
		}
	})

	t.Run("values outlive the transaction", func(t *testing.T) {
		var kept []byte
		_ = db.ViewDocuments(ctx, func(tx DocTx) error { kept, _ = tx.Get("identities", "bob"); return nil })
		put("identities", "bob", `{"name":"BOB"}`)
		if string(kept) != `{"name":"bob"}` {
			t.Errorf("a value read earlier changed to %s", kept)
		}
	})

	t.Run("delete", func(t *testing.T) {
		err := db.UpdateDocuments(ctx, func(tx DocTx) error { return tx.Delete("identities", "carol") })
		if err != nil {
			t.Fatal(err)
		}
		err = db.UpdateDocuments(ctx, func(tx DocTx) error { return tx.Delete("identities", "carol") })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("second Delete() = %v, want ErrNotFound", err)
		}
		err = db.UpdateDocuments(ctx, func(tx DocTx) error { return tx.Delete("nothing", "x") })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete() in a missing collection = %v, want ErrNotFound", err)
		}
	})

	t.Run("a failed update writes nothing", func(t *testing.T) {
		boom := errors.New("boom")
		err := db.UpdateDocuments(ctx, func(tx DocTx) error {
			if err := tx.Put("identities", "eve", []byte(`{}`)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("UpdateDocuments() = %v", err)
		}
		err = db.ViewDocuments(ctx, func(tx DocTx) error { _, err := tx.Get("identities", "eve"); return err })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("a rolled-back Put is visible: %v", err)
		}
	})
}

func TestAuditLog(t *testing.T) {
	ctx := context.Background()
	scan := func(db *DB, max int) []string {
		var out []string
		err := db.ScanAudit(ctx, func(e []byte) bool {
			out = append(out, string(e))
			return len(out) < max
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	entries := func(from, to int) [][]byte {
		var out [][]byte
		for i := from; i <= to; i++ {
			out = append(out, []byte(fmt.Sprintf(`{"n":%d}`, i)))
		}
		return out
	}
	tests := []struct {
		name    string
		limit   uint64
		batches [][][]byte
		max     int
		want    []string
	}{
		{"empty", 3, nil, 10, nil},
		{"under the bound", 3, [][][]byte{entries(1, 2)}, 10, []string{`{"n":2}`, `{"n":1}`}},
		{"one batch over the bound", 3, [][][]byte{entries(1, 5)}, 10, []string{`{"n":5}`, `{"n":4}`, `{"n":3}`}},
		{"batches over the bound", 3, [][][]byte{entries(1, 2), entries(3, 4), {}, entries(5, 6)}, 10, []string{`{"n":6}`, `{"n":5}`, `{"n":4}`}},
		{"scan stops early", 10, [][][]byte{entries(1, 5)}, 2, []string{`{"n":5}`, `{"n":4}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTestDB(t, DBOptions{AuditLimit: tt.limit})
			for _, b := range tt.batches {
				if err := db.AppendAudit(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if got := scan(db, tt.max); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ScanAudit() = %v, want %v", got, tt.want)
			}
		})
	}
}
