package s3

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/moat-registry/moat/storage"
)

// maxSegments bounds the staged segments of a session: one more chunk
// merges them into one object, so a client sending tiny chunks costs
// reads, not an ever-growing state.
const maxSegments = 32

// Start implements storage.Uploads.
func (s *Store) Start(ctx context.Context, repository string) (storage.Upload, error) {
	now := s.now().UTC()
	st := storage.UploadState{Upload: storage.Upload{ID: randomName(), Repository: repository, Started: now, Updated: now}}
	if err := encodeState(&st, nil, session{}); err != nil {
		return storage.Upload{}, err
	}
	if err := s.states.PutUpload(ctx, st); err != nil {
		return storage.Upload{}, err
	}
	return st.Upload, nil
}

// get loads a session of repository: its state, running hash state and
// S3 half.
func (s *Store) get(ctx context.Context, repository, id string) (storage.UploadState, []byte, session, error) {
	if !validID(id) {
		return storage.UploadState{}, nil, session{}, storage.ErrUploadUnknown
	}
	st, err := s.states.GetUpload(ctx, id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return storage.UploadState{}, nil, session{}, storage.ErrUploadUnknown
		}
		return storage.UploadState{}, nil, session{}, err
	}
	if st.Repository != repository {
		return storage.UploadState{}, nil, session{}, storage.ErrUploadUnknown
	}
	hs, ses, err := decodeState(st)
	if err != nil {
		return storage.UploadState{}, nil, session{}, fmt.Errorf("%w: %v", storage.ErrUploadUnknown, err)
	}
	return st, hs, ses, nil
}

// Get implements storage.Uploads.
func (s *Store) Get(ctx context.Context, repository, id string) (storage.Upload, error) {
	st, _, _, err := s.get(ctx, repository, id)
	return st.Upload, err
}

// resumeHash restores the running sha256 of a session of size bytes, or
// returns nil when there is none (Finish then reads the bytes back).
func resumeHash(size int64, state []byte) hash.Hash {
	h := sha256.New()
	if size == 0 {
		return h
	}
	if len(state) == 0 || h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state) != nil {
		return nil
	}
	return h
}

func marshalHash(h hash.Hash) []byte {
	if h == nil {
		return nil
	}
	b, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return b
}

// readFull reads into buf until it is full or r ends; the end of r is not
// an error.
func readFull(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return n, err
}

// Append implements storage.Uploads. The chunk's bytes are hashed as they
// arrive. Whenever the staged segments and the chunk fill a part, the
// segments are read back and sent with the chunk's bytes as the next part
// (parts go out while the next is read); what is left, under a part, is
// staged as a new segment. The state saved at the end names only parts
// and segments that S3 accepted, with the hash state that matches them:
// bytes that arrived before a read error, or before a part that failed,
// are kept.
func (s *Store) Append(ctx context.Context, repository, id string, offset int64, r io.Reader) (storage.Upload, error) {
	defer s.lock(id)()
	st, hs, ses, err := s.get(ctx, repository, id)
	if err != nil {
		return storage.Upload{}, err
	}
	if offset >= 0 && offset != st.Size {
		return st.Upload, storage.ErrOffsetMismatch
	}
	h := resumeHash(st.Size, hs)
	// What arrived is kept even when the client goes away: S3 and the
	// state store are written without the request's cancellation.
	wctx := context.WithoutCancel(ctx)
	staged := ses.segmentsSize()
	// Segments are always under a part, except after a reopen (Finish)
	// cut the number of parts, and so their size.
	ps := max(s.partSize(len(ses.Parts)+1), staged+1)
	buf, release := s.buffer(ps)
	n, readErr := readFull(r, buf[staged:])
	if n == 0 {
		release()
		return st.Upload, readErr
	}

	// A checkpoint is a state S3 holds once the request's first parts
	// are in: cps[0] is where the session stood, then one per part sent,
	// then one for the new segment.
	type checkpoint struct {
		parts int
		hash  []byte
		segs  []segment
	}
	cps := []checkpoint{{hash: hs, segs: ses.Segments}}
	var (
		up      *uploader
		created bool
		failure error // from S3
		sent    int
	)
	for int64(n) == ps-staged && readErr == nil { // the segments and the chunk fill a part
		if staged > 0 {
			if failure = s.readSegments(wctx, ses.Segments, buf[:staged]); failure != nil {
				n = 0
				break
			}
		}
		if ses.MPU.ID == "" {
			if ses.MPU, failure = s.createMultipart(wctx, s.uploadKey(id, "data"), true); failure != nil {
				n = 0
				break
			}
			created = true
			up = s.newUploader(wctx, ses.MPU)
		} else if up == nil {
			up = s.newUploader(wctx, ses.MPU)
		}
		if h != nil {
			h.Write(buf[staged:ps])
		}
		sent++
		up.upload(int32(len(ses.Parts)+sent), buf[:ps], release)
		cps = append(cps, checkpoint{parts: sent, hash: marshalHash(h)})
		staged = 0
		ps = s.partSize(len(ses.Parts) + sent + 1)
		buf, release = s.buffer(ps)
		n, readErr = readFull(r, buf)
	}

	// The rest, under a part, becomes a segment; with too many segments
	// already, it and they merge into one.
	if n > 0 {
		if h != nil {
			h.Write(buf[staged : staged+int64(n)])
		}
		keep := cps[len(cps)-1].segs
		seg := segment{Key: s.uploadKey(id, "seg"), Size: int64(n)}
		data := buf[staged : staged+int64(n)]
		if len(keep) >= maxSegments {
			failure = s.readSegments(wctx, keep, buf[:staged])
			seg.Size, data, keep = staged+int64(n), buf[:staged+int64(n)], nil
		}
		if failure == nil {
			if failure = s.putObject(wctx, seg.Key, data); failure == nil {
				cps = append(cps, checkpoint{parts: sent, hash: marshalHash(h), segs: append(slices.Clip(keep), seg)})
			}
		}
	}
	release()

	// Keep the last checkpoint whose parts S3 accepted.
	var parts []part
	if up != nil {
		var err error
		parts, err = up.wait()
		failure = errors.Join(failure, err)
	}
	cp := cps[0]
	for _, c := range cps {
		if c.parts <= len(parts) {
			cp = c
		}
	}
	oldSegs, lastSegs := ses.Segments, cps[len(cps)-1].segs
	ses.Parts = append(ses.Parts, parts[:cp.parts]...)
	ses.Segments = cp.segs
	if size := ses.partsSize() + ses.segmentsSize(); size != st.Size || created {
		next := st
		next.Size, next.Updated = size, s.now().UTC()
		err := encodeState(&next, cp.hash, ses)
		if err == nil {
			err = s.states.PutUpload(wctx, next)
		}
		if err != nil {
			s.deleteKeys(wctx, unlisted(lastSegs, oldSegs))
			return st.Upload, errors.Join(failure, err)
		}
		st = next
	}
	// Drop the segments that were folded into parts or merged, and a new
	// one that the state does not name.
	s.deleteKeys(wctx, unlisted(append(slices.Clip(oldSegs), lastSegs...), ses.Segments))
	if failure != nil {
		return st.Upload, failure
	}
	return st.Upload, readErr
}

// unlisted returns the keys of segs that are not in keep.
func unlisted(segs, keep []segment) []string {
	var keys []string
	for _, s := range segs {
		if !slices.ContainsFunc(keep, func(k segment) bool { return k.Key == s.Key }) && !slices.Contains(keys, s.Key) {
			keys = append(keys, s.Key)
		}
	}
	return keys
}

// readSegments reads staged segments, in order, into buf (their total
// size).
func (s *Store) readSegments(ctx context.Context, segs []segment, buf []byte) error {
	var off int64
	for _, seg := range segs {
		if err := s.readObject(ctx, seg.Key, buf[off:off+seg.Size]); err != nil {
			return err
		}
		off += seg.Size
	}
	return nil
}
