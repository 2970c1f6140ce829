package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestHeadCacheFollowsWrites: a HEAD after a tag moves, a manifest goes or
// a tag is deleted sees the change, also while readers race the writer.
func TestHeadCacheFollowsWrites(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(filepath.Join(t.TempDir(), "meta.db"), DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(i int) digest.Digest {
		raw := fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i)
		m := &Manifest{Digest: digest.FromString(raw), MediaType: "application/vnd.oci.image.manifest.v1+json", Raw: []byte(raw), Size: int64(len(raw)), Created: time.Now()}
		if err := db.PutManifest(ctx, "app", m, []string{"latest"}, true); err != nil {
			t.Fatal(err)
		}
		return m.Digest
	}
	head := func() (digest.Digest, error) {
		m, err := db.Manifest(ctx, "app", "latest", false)
		if err != nil {
			return "", err
		}
		return m.Digest, nil
	}
	d0 := put(0)
	for range 2 { // a miss, then a hit
		if d, err := head(); err != nil || d != d0 {
			t.Fatalf("HEAD = %s, %v; want %s", d, err, d0)
		}
	}
	d1 := put(1)
	if d, _ := head(); d != d1 {
		t.Fatalf("after the tag moved HEAD = %s, want %s", d, d1)
	}
	if err := db.DeleteTag(ctx, "app", "latest"); err != nil {
		t.Fatal(err)
	}
	if _, err := head(); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("after the tag was deleted HEAD: %v", err)
	}

	// Readers race a writer; once the writer is done, every reader sees
	// its last write.
	var last digest.Digest
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = head()
				}
			}
		})
	}
	for i := 2; i < 200; i++ {
		last = put(i)
	}
	close(stop)
	wg.Wait()
	if d, err := head(); err != nil || d != last {
		t.Fatalf("after the race HEAD = %s, %v; want %s", d, err, last)
	}
}
