package storage

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// Manifest records are binary so that a HEAD reads a few header fields
// without decoding the manifest bytes:
//
//	version (1 byte) = 1
//	mediaType, artifactType, subject: uvarint length + bytes each
//	created: varint Unix nanoseconds
//	blobs, manifests: uvarint count, then uvarint length + digest each
//	annotations: uvarint count, then key and value as length + bytes
//	raw manifest bytes: the rest
const manifestRecordV1 = 1

var errCorruptRecord = errors.New("corrupt manifest record")

func encodeManifest(m *Manifest) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(m.MediaType) + len(m.ArtifactType) + len(m.Subject) + binary.MaxVarintLen64 + len(m.Raw) + 3*binary.MaxVarintLen64
	for _, d := range m.Blobs {
		n += binary.MaxVarintLen64 + len(d)
	}
	for _, d := range m.Manifests {
		n += binary.MaxVarintLen64 + len(d)
	}
	for k, v := range m.Annotations {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, manifestRecordV1)
	b = appendString(b, m.MediaType)
	b = appendString(b, m.ArtifactType)
	b = appendString(b, string(m.Subject))
	b = binary.AppendVarint(b, m.Created.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(m.Blobs)))
	for _, d := range m.Blobs {
		b = appendString(b, string(d))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Manifests)))
	for _, d := range m.Manifests {
		b = appendString(b, string(d))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Annotations)))
	for k, v := range m.Annotations {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return append(b, m.Raw...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorruptRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorruptRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errCorruptRecord
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeManifest reads a record. With full false it stops after the header
// fields a HEAD needs (media type, size) and leaves Raw nil. The result
// never aliases b, which bbolt owns.
func decodeManifest(d digest.Digest, b []byte, full bool) (*Manifest, error) {
	if len(b) == 0 || b[0] != manifestRecordV1 {
		return nil, errCorruptRecord
	}
	r := recordReader{b: b[1:]}
	m := &Manifest{Digest: d}
	m.MediaType = r.string()
	m.ArtifactType = r.string()
	m.Subject = digest.Digest(r.string())
	m.Created = time.Unix(0, r.varint()).UTC()
	if !full {
		// Skip the lists to find the size of the raw bytes.
		for range 2 {
			for n := r.uvarint(); n > 0 && r.err == nil; n-- {
				r.skip()
			}
		}
		for n := r.uvarint(); n > 0 && r.err == nil; n-- {
			r.skip()
			r.skip()
		}
		m.Size = int64(len(r.b))
		return m, r.err
	}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		m.Blobs = append(m.Blobs, digest.Digest(r.string()))
	}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		m.Manifests = append(m.Manifests, digest.Digest(r.string()))
	}
	if n := r.uvarint(); n > 0 && r.err == nil {
		m.Annotations = make(map[string]string, min(n, 64))
		for ; n > 0 && r.err == nil; n-- {
			k := r.string()
			m.Annotations[k] = r.string()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	m.Raw = append([]byte(nil), r.b...)
	m.Size = int64(len(m.Raw))
	return m, nil
}

func (r *recordReader) skip() {
	n := r.uvarint()
	if r.err == nil {
		if n > uint64(len(r.b)) {
			r.err = errCorruptRecord
			return
		}
		r.b = r.b[n:]
	}
}
