package storage

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestManifestRecordRoundTrip(t *testing.T) {
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	tests := []struct {
		name string
		m    Manifest
	}{
		{"minimal", Manifest{MediaType: mtManifest, Created: at, Raw: []byte(`{}`)}},
		{"full", Manifest{
			MediaType:    mtManifest,
			ArtifactType: "application/vnd.example+json",
			Subject:      digest.FromString("subject"),
			Annotations:  map[string]string{"a": "1", "b": "", "": "empty key"},
			Blobs:        []digest.Digest{digest.FromString("config"), digest.SHA512.FromString("layer")},
			Created:      at,
			Raw:          []byte(`{"schemaVersion":2,"mediaType":"x"}`),
		}},
		{"index", Manifest{
			MediaType: mtIndex,
			Manifests: []digest.Digest{digest.FromString("a"), digest.FromString("b")},
			Created:   at,
			Raw:       bytes.Repeat([]byte("x"), 70_000),
		}},
		{"no raw bytes", Manifest{MediaType: mtManifest, Created: at}},
		{"before 1970", Manifest{MediaType: mtManifest, Created: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), Raw: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := digest.FromBytes(tt.m.Raw)
			want := tt.m
			want.Digest, want.Size = d, int64(len(tt.m.Raw))
			rec := encodeManifest(&tt.m)

			full, err := decodeManifest(d, rec, true)
			if err != nil {
				t.Fatalf("decode full: %v", err)
			}
			if !full.Created.Equal(want.Created) {
				t.Errorf("Created = %v, want %v", full.Created, want.Created)
			}
			full.Created = want.Created
			if !reflect.DeepEqual(*full, want) {
				t.Errorf("decode full = %+v\nwant %+v", *full, want)
			}

			head, err := decodeManifest(d, rec, false)
			if err != nil {
				t.Fatalf("decode head: %v", err)
			}
			if head.Raw != nil || head.Size != want.Size || head.MediaType != want.MediaType ||
				head.ArtifactType != want.ArtifactType || head.Subject != want.Subject || !head.Created.Equal(want.Created) {
				t.Errorf("decode head = %+v", *head)
			}
			if len(tt.m.Raw) > 0 && &full.Raw[0] == &rec[len(rec)-len(tt.m.Raw)] {
				t.Error("decoded Raw aliases the record")
			}
		})
	}
}

func TestDecodeManifestCorrupt(t *testing.T) {
	m := Manifest{
		MediaType:   mtManifest,
		Subject:     digest.FromString("s"),
		Blobs:       []digest.Digest{digest.FromString("b")},
		Annotations: map[string]string{"k": "v"},
		Created:     time.Unix(1, 0),
	}
	rec := encodeManifest(&m) // no raw bytes: every proper prefix is cut short
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, rec[1:]...)},
		{"string longer than the record", []byte{1, 0x7f, 'a'}},
		{"uvarint overflow", append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...)},
	}
	for i := 1; i < len(rec); i++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"cut at " + strconv.Itoa(i), rec[:i]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, full := range []bool{true, false} {
				if m, err := decodeManifest("sha256:x", tt.b, full); !errors.Is(err, errCorruptRecord) {
					t.Errorf("decode(full=%v) = %+v, %v; want errCorruptRecord", full, m, err)
				}
			}
		})
	}
}

func FuzzDecodeManifest(f *testing.F) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, m := range []Manifest{
		{MediaType: mtManifest, Created: at, Raw: []byte(`{}`)},
		{MediaType: mtIndex, Subject: digest.FromString("s"), ArtifactType: "a/b", Created: at,
			Blobs: []digest.Digest{digest.FromString("b")}, Manifests: []digest.Digest{digest.FromString("m")},
			Annotations: map[string]string{"k": "v"}, Raw: []byte("raw")},
	} {
		f.Add(encodeManifest(&m))
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		full, errFull := decodeManifest("sha256:x", b, true)
		head, errHead := decodeManifest("sha256:x", b, false)
		if !bytes.Equal(b, orig) {
			t.Fatal("decode changed its input")
		}
		if (errFull == nil) != (errHead == nil) {
			t.Fatalf("full decode error %v, header decode error %v", errFull, errHead)
		}
		if errFull != nil {
			return
		}
		if head.Size != full.Size || head.MediaType != full.MediaType || head.ArtifactType != full.ArtifactType ||
			head.Subject != full.Subject || !head.Created.Equal(full.Created) {
			t.Fatalf("header decode %+v disagrees with full decode %+v", head, full)
		}
		// What decodes re-encodes to the same manifest.
		again, err := decodeManifest("sha256:x", encodeManifest(full), true)
		if err != nil {
			t.Fatalf("re-encoded record: %v", err)
		}
		if !reflect.DeepEqual(again, full) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", again, full)
		}
	})
}
