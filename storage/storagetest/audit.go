package storagetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

func auditEntries(from, to int) [][]byte {
	var out [][]byte
	for i := from; i <= to; i++ {
		out = append(out, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	return out
}

func scanAudit(t *testing.T, db MetaStore, max int) []string {
	t.Helper()
	var out []string
	err := db.ScanAudit(context.Background(), func(e []byte) bool {
		out = append(out, string(e))
		return len(out) < max
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s MetaSuite) testAuditLog(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		limit   uint64
		batches [][][]byte
		max     int
		want    []string
	}{
		{"empty", 3, nil, 10, nil},
		{"under the bound", 3, [][][]byte{auditEntries(1, 2)}, 10, []string{`{"n":2}`, `{"n":1}`}},
		{"at the bound", 3, [][][]byte{auditEntries(1, 3)}, 10, []string{`{"n":3}`, `{"n":2}`, `{"n":1}`}},
		{"one batch over the bound", 3, [][][]byte{auditEntries(1, 5)}, 10, []string{`{"n":5}`, `{"n":4}`, `{"n":3}`}},
		{"batches over the bound", 3, [][][]byte{auditEntries(1, 2), auditEntries(3, 4), {}, auditEntries(5, 6)}, 10, []string{`{"n":6}`, `{"n":5}`, `{"n":4}`}},
		{"scan stops early", 10, [][][]byte{auditEntries(1, 5)}, 2, []string{`{"n":5}`, `{"n":4}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := s.Open(t, MetaOptions{AuditLimit: tt.limit})
			for _, b := range tt.batches {
				if err := db.AppendAudit(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if got := scanAudit(t, db, tt.max); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ScanAudit() = %v, want %v", got, tt.want)
			}
		})
	}
}

// testAuditLogOrder appends more entries than a backend would read in one
// go, in batches, and scans them all back newest first.
func (s MetaSuite) testAuditLogOrder(t *testing.T) {
	ctx := context.Background()
	const limit, total, batch = 1500, 2000, 250
	db := s.Open(t, MetaOptions{AuditLimit: limit})
	for i := 1; i <= total; i += batch {
		if err := db.AppendAudit(ctx, auditEntries(i, i+batch-1)); err != nil {
			t.Fatal(err)
		}
	}
	got := scanAudit(t, db, total+1)
	if len(got) != limit {
		t.Fatalf("ScanAudit() returned %d entries, want the bound, %d", len(got), limit)
	}
	for i, e := range got {
		if want := fmt.Sprintf(`{"n":%d}`, total-i); e != want {
			t.Fatalf("entry %d = %s, want %s", i, e, want)
		}
	}
}
