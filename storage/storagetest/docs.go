package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moat-registry/moat/storage"
)

func (s MetaSuite) testDocuments(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	put := func(collection, key, value string) {
		t.Helper()
		if err := db.UpdateDocuments(ctx, func(tx storage.DocTx) error { return tx.Put(collection, key, []byte(value)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("identities", "bob", `{"name":"bob"}`)
	put("identities", "alice", `{"name":"alice"}`)
	put("identities", "carol", `{"name":"carol"}`)
	put("identities", "Zed", `{"name":"Zed"}`)
	put("settings", "registry", `{"v":1}`)
	put("settings", "registry", `{"v":2}`)
	put("meta", "version", "\x00\x00\x00\x00\x00\x00\x01\xff") // not JSON: bytes as they are

	tests := []struct {
		name       string
		collection string
		key        string
		want       string
		wantErr    error
	}{
		{"stored", "identities", "alice", `{"name":"alice"}`, nil},
		{"overwritten", "settings", "registry", `{"v":2}`, nil},
		{"binary", "meta", "version", "\x00\x00\x00\x00\x00\x00\x01\xff", nil},
		{"missing key", "identities", "dave", "", storage.ErrNotFound},
		{"key of another collection", "settings", "alice", "", storage.ErrNotFound},
		{"missing collection", "tokens", "x", "", storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run("get "+tt.name, func(t *testing.T) {
			err := db.ViewDocuments(ctx, func(tx storage.DocTx) error {
				got, err := tx.Get(tt.collection, tt.key)
				if err != nil {
					return err
				}
				if string(got) != tt.want {
					t.Errorf("Get() = %q, want %q", got, tt.want)
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
		err := db.ViewDocuments(ctx, func(tx storage.DocTx) error {
			return tx.List("identities", func(k string, v []byte) error {
				keys = append(keys, k)
				if !strings.Contains(string(v), k) {
					t.Errorf("%s: value %s", k, v)
				}
				return nil
			})
		})
		if err != nil || !reflect.DeepEqual(keys, []string{"Zed", "alice", "bob", "carol"}) {
			t.Errorf("List() = %v, %v; want byte order", keys, err)
		}
		err = db.ViewDocuments(ctx, func(tx storage.DocTx) error {
			return tx.List("nothing", func(string, []byte) error { t.Error("called for an empty collection"); return nil })
		})
		if err != nil {
			t.Errorf("List() of a missing collection = %v", err)
		}
		stop := errors.New("stop")
		n := 0
		err = db.ViewDocuments(ctx, func(tx storage.DocTx) error {
			return tx.List("identities", func(string, []byte) error { n++; return stop })
		})
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("List() with fn failing = %v after %d calls, want fn's error after one", err, n)
		}
	})

	t.Run("values outlive the transaction", func(t *testing.T) {
		var kept []byte
		var listed [][]byte
		_ = db.ViewDocuments(ctx, func(tx storage.DocTx) error {
			kept, _ = tx.Get("identities", "bob")
			return tx.List("identities", func(_ string, v []byte) error { listed = append(listed, v); return nil })
		})
		put("identities", "bob", `{"name":"BOB"}`)
		put("identities", "alice", `{"name":"ALICE"}`)
		if string(kept) != `{"name":"bob"}` {
			t.Errorf("a value read earlier changed to %s", kept)
		}
		if len(listed) != 4 || string(listed[1]) != `{"name":"alice"}` {
			t.Errorf("values listed earlier changed: %q", listed)
		}
	})

	t.Run("a transaction reads its own writes", func(t *testing.T) {
		err := db.UpdateDocuments(ctx, func(tx storage.DocTx) error {
			if err := tx.Put("identities", "dave", []byte(`{"name":"dave"}`)); err != nil {
				return err
			}
			if err := tx.Delete("identities", "Zed"); err != nil {
				return err
			}
			if got, err := tx.Get("identities", "dave"); err != nil || string(got) != `{"name":"dave"}` {
				t.Errorf("Get() of a document put in the transaction = %s, %v", got, err)
			}
			if _, err := tx.Get("identities", "Zed"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get() of a document deleted in the transaction = %v", err)
			}
			var keys []string
			err := tx.List("identities", func(k string, _ []byte) error { keys = append(keys, k); return nil })
			if err != nil || !reflect.DeepEqual(keys, []string{"alice", "bob", "carol", "dave"}) {
				t.Errorf("List() in the transaction = %v, %v", keys, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		err := db.UpdateDocuments(ctx, func(tx storage.DocTx) error { return tx.Delete("identities", "carol") })
		if err != nil {
			t.Fatal(err)
		}
		err = db.UpdateDocuments(ctx, func(tx storage.DocTx) error { return tx.Delete("identities", "carol") })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Delete() = %v, want ErrNotFound", err)
		}
		err = db.UpdateDocuments(ctx, func(tx storage.DocTx) error { return tx.Delete("nothing", "x") })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete() in a missing collection = %v, want ErrNotFound", err)
		}
	})

	t.Run("a failed update writes nothing", func(t *testing.T) {
		boom := errors.New("boom")
		err := db.UpdateDocuments(ctx, func(tx storage.DocTx) error {
			if err := tx.Put("identities", "eve", []byte(`{}`)); err != nil {
				return err
			}
			if err := tx.Delete("identities", "bob"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("UpdateDocuments() = %v", err)
		}
		err = db.ViewDocuments(ctx, func(tx storage.DocTx) error { _, err := tx.Get("identities", "eve"); return err })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a rolled-back Put is visible: %v", err)
		}
		err = db.ViewDocuments(ctx, func(tx storage.DocTx) error { _, err := tx.Get("identities", "bob"); return err })
		if err != nil {
			t.Errorf("a rolled-back Delete took effect: %v", err)
		}
	})
}

// testDocumentsConcurrentUpdates: read-modify-write in UpdateDocuments is
// atomic — concurrent increments of one counter lose none.
func (s MetaSuite) testDocumentsConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if err := Increment(ctx, db, "meta", "counter"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, err := Counter(ctx, db, "meta", "counter"); err != nil || n != writers*each {
		t.Errorf("counter = %d, %v; want %d", n, err, writers*each)
	}
}

// Increment adds one to a counter document (a decimal number) in one
// UpdateDocuments, as a read-modify-write.
func Increment(ctx context.Context, docs storage.Documents, collection, key string) error {
	return docs.UpdateDocuments(ctx, func(tx storage.DocTx) error {
		n := 0
		b, err := tx.Get(collection, key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			if n, err = strconv.Atoi(string(b)); err != nil {
				return fmt.Errorf("counter %q: %w", b, err)
			}
		}
		return tx.Put(collection, key, []byte(strconv.Itoa(n+1)))
	})
}

// Counter reads a counter document that Increment writes.
func Counter(ctx context.Context, docs storage.Documents, collection, key string) (int, error) {
	n := 0
	err := docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		b, err := tx.Get(collection, key)
		if err != nil {
			return err
		}
		n, err = strconv.Atoi(string(b))
		return err
	})
	return n, err
}
