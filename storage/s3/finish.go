package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// Finish implements storage.Uploads.
//
// A sha256 digest is checked against the saved hash state before anything
// moves; the blob is marked, and if it is stored already the session just
// ends. Otherwise the session's bytes are put in one piece: the segments
// become the multipart upload's last part (copied inside S3 when there is
// one segment) and the upload is completed at its staging key; a session
// without parts is one segment already, or is read into memory. Another
// digest is checked by reading that piece back before the blob is marked.
// The piece is copied to the blob's key, and the session and its staging
// objects are removed. On ErrDigestMismatch — or any failure after the
// multipart upload was completed — the session is reopened as it was,
// with a new multipart upload made of copies of the completed parts, so
// the client can append more or try again.
func (s *Store) Finish(ctx context.Context, repository, id string, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	defer s.lock(id)()
	st, hs, ses, err := s.get(ctx, repository, id)
	if err != nil {
		return 0, err
	}
	verified := false
	if d.Algorithm() == digest.SHA256 {
		if h := resumeHash(st.Size, hs); h != nil {
			if digest.NewDigest(digest.SHA256, h) != d {
				return 0, storage.ErrDigestMismatch
			}
			verified = true
		}
	}
	var b assembled
	defer func() { b.release() }()
	if !verified {
		if b, err = s.assemble(ctx, st.Size, ses); err != nil {
			return 0, err
		}
		got, err := s.digestOf(ctx, b, d.Algorithm())
		if err == nil && got != d {
			err = storage.ErrDigestMismatch
		}
		if err != nil {
			return 0, s.reopen(ctx, st, hs, ses, b, err)
		}
	}
	final := s.blobKey(d)
	err = s.commit(ctx, d, st.Size, func() error {
		if verified { // not assembled yet
			var err error
			if b, err = s.assemble(ctx, st.Size, ses); err != nil {
				return err
			}
		}
		if b.key == "" {
			return s.putObject(ctx, final, b.data)
		}
		return s.copyObject(ctx, b.key, final, st.Size)
	})
	if err != nil && !errors.Is(err, errExists) {
		return 0, s.reopen(ctx, st, hs, ses, b, err)
	}
	if err := s.states.DeleteUpload(ctx, id); err != nil {
		return 0, err
	}
	s.drop(context.WithoutCancel(ctx), ses, b.completed)
	return st.Size, nil
}

// assembled is where Finish finds a session's bytes in one piece: the
// object at key, or data in memory (key empty).
type assembled struct {
	key       string
	data      []byte
	free      func() // gives data's buffer back
	completed bool   // key is the session's completed multipart upload
}

func (b assembled) release() {
	if b.free != nil {
		b.free()
	}
}

// assemble puts a session's size bytes in one piece.
func (s *Store) assemble(ctx context.Context, size int64, ses session) (assembled, error) {
	if len(ses.Parts) == 0 {
		switch len(ses.Segments) {
		case 0:
			return assembled{}, nil
		case 1:
			return assembled{key: ses.Segments[0].Key}, nil
		}
		buf, release := s.buffer(size)
		if err := s.readSegments(ctx, ses.Segments, buf); err != nil {
			release()
			return assembled{}, err
		}
		return assembled{data: buf, free: release}, nil
	}
	parts := slices.Clone(ses.Parts)
	last := int32(len(parts) + 1)
	var err error
	var p part
	switch len(ses.Segments) {
	case 0:
	case 1:
		seg := ses.Segments[0]
		p, err = s.copyPart(ctx, ses.MPU, last, seg.Key, 0, seg.Size-1)
		parts = append(parts, p)
	default:
		buf, release := s.buffer(ses.segmentsSize())
		if err = s.readSegments(ctx, ses.Segments, buf); err == nil {
			p, err = s.uploadPart(ctx, ses.MPU, last, buf)
			parts = append(parts, p)
		}
		release()
	}
	if err == nil {
		err = s.complete(ctx, ses.MPU, parts)
	}
	if isNoSuchUpload(err) {
		// An earlier Finish completed the upload and then failed.
		if n, herr := s.size(ctx, ses.MPU.Key); herr == nil && n == size {
			err = nil
		}
	}
	if err != nil {
		return assembled{}, err
	}
	return assembled{key: ses.MPU.Key, completed: true}, nil
}

// digestOf hashes assembled bytes with alg, reading an object back.
func (s *Store) digestOf(ctx context.Context, b assembled, alg digest.Algorithm) (digest.Digest, error) {
	var r io.Reader = bytes.NewReader(b.data)
	if b.key != "" {
		out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &b.key})
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		r = out.Body
	}
	h := alg.Hash()
	bp := s.bufs.Get().(*[]byte)
	_, err := io.CopyBuffer(h, r, *bp)
	s.bufs.Put(bp)
	if err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// reopen undoes a completion when Finish fails after it: a new multipart
// upload gets the completed parts back as server-side copies, and the
// session's state names it. It returns cause, joined with its own error.
func (s *Store) reopen(ctx context.Context, st storage.UploadState, hs []byte, ses session, b assembled, cause error) error {
	if !b.completed {
		return cause
	}
	ctx = context.WithoutCancel(ctx)
	err := func() error {
		m, err := s.createMultipart(ctx, s.uploadKey(st.ID, "data"), false)
		if err != nil {
			return err
		}
		parts, err := s.copyRanges(ctx, m, 1, b.key, ses.partsSize())
		if err != nil {
			_ = s.abort(ctx, m)
			return err
		}
		ses.MPU, ses.Parts = m, parts
		st.Updated = s.now().UTC()
		if err := encodeState(&st, hs, ses); err != nil {
			return err
		}
		if err := s.states.PutUpload(ctx, st); err != nil {
			_ = s.abort(ctx, m)
			return err
		}
		s.deleteKeys(ctx, []string{b.key})
		return nil
	}()
	if err != nil {
		return errors.Join(cause, fmt.Errorf("s3: reopening upload %s: %w", st.ID, err))
	}
	return cause
}

// drop removes what a session staged: its multipart upload (or the
// object it was completed to) and its segments. Failures leave orphans
// for Expire.
func (s *Store) drop(ctx context.Context, ses session, completed bool) {
	keys := ses.keys()
	if ses.MPU.ID != "" {
		if !completed {
			_ = s.abort(ctx, ses.MPU)
		}
		// Completed by an earlier Finish that failed, perhaps.
		keys = append(keys, ses.MPU.Key)
	}
	s.deleteKeys(ctx, keys)
}

// Cancel implements storage.Uploads.
func (s *Store) Cancel(ctx context.Context, repository, id string) error {
	defer s.lock(id)()
	_, _, ses, err := s.get(ctx, repository, id)
	if err != nil {
		return err
	}
	if err := s.states.DeleteUpload(ctx, id); err != nil {
		return err
	}
	s.drop(context.WithoutCancel(ctx), ses, false)
	return nil
}
