package s3

import (
	"encoding/json"
	"fmt"

	"github.com/moat-registry/moat/storage"
)

// session is the S3 half of an upload session's state: where its bytes
// are. The first bytes are the Parts of an open multipart upload (each at
// least MinPartSize); the rest, less than a part, are staged Segments —
// one small object per chunk that did not fill a part — which the next
// full part or Finish folds in. Size = sum(Parts) + sum(Segments).
type session struct {
	// MPU is the open multipart upload; zero until the first part.
	MPU      multipart `json:"mpu,omitzero"`
	Parts    []part    `json:"parts,omitempty"`
	Segments []segment `json:"segs,omitempty"`
}

// segment is a staged object of a session.
type segment struct {
	Key  string `json:"k"`
	Size int64  `json:"s"`
}

func (ses *session) partsSize() int64 {
	var n int64
	for _, p := range ses.Parts {
		n += p.Size
	}
	return n
}

func (ses *session) segmentsSize() int64 {
	var n int64
	for _, s := range ses.Segments {
		n += s.Size
	}
	return n
}

// keys lists the staging objects a session names.
func (ses *session) keys() []string {
	keys := make([]string, 0, len(ses.Segments)+1)
	for _, s := range ses.Segments {
		keys = append(keys, s.Key)
	}
	return keys
}

// extra is what a session keeps in storage.UploadState.Extra.
type extra struct {
	V       int     `json:"v"`
	Session session `json:"s"`
}

// encodeState stores the running sha256 state (nil: none) and the session
// in st.
func encodeState(st *storage.UploadState, hash []byte, ses session) error {
	b, err := json.Marshal(extra{V: 1, Session: ses})
	if err != nil {
		return err
	}
	st.Algorithm, st.HashState, st.Extra = "sha256", hash, b
	return nil
}

// decodeState reads what encodeState stored and checks that the session
// accounts for every byte of the upload.
func decodeState(st storage.UploadState) ([]byte, session, error) {
	var x extra
	if err := json.Unmarshal(st.Extra, &x); err != nil {
		return nil, session{}, fmt.Errorf("s3: upload %s: %w", st.ID, err)
	}
	if x.V != 1 {
		return nil, session{}, fmt.Errorf("s3: upload %s: state version %d", st.ID, x.V)
	}
	ses := x.Session
	if got := ses.partsSize() + ses.segmentsSize(); got != st.Size {
		return nil, session{}, fmt.Errorf("s3: upload %s: state holds %d bytes, size is %d", st.ID, got, st.Size)
	}
	var hash []byte
	if st.Algorithm == "sha256" {
		hash = st.HashState
	}
	return hash, ses, nil
}
