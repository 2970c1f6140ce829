package registry

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

var zeroTime time.Time

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// writeUploadState answers with where a session stands: Location
// (path-absolute, so a client on a private endpoint stays on it), Range
// "0-<last byte>" and the session id.
func writeUploadState(w http.ResponseWriter, up storage.Upload, status int) {
	h := w.Header()
	h.Set("Location", uploadLocation(up.Repository, up.ID))
	last := up.Size - 1
	if last < 0 {
		last = 0
	}
	h.Set("Range", "0-"+strconv.FormatInt(last, 10))
	h.Set("Docker-Upload-UUID", up.ID)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func writeBlobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", blobLocation(repo, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// hasBody reports whether a request carries content.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (mount=&from=), a single-POST upload (digest=) or a new session.
func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, rt Route, grant auth.Grant) error {
	ctx := r.Context()
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		done, err := reg.mount(r, rt.Repository, q.Get("from"), d, grant)
		if err != nil {
			return err
		}
		if done {
			reg.emit(Event{Action: "push", Kind: KindBlob, Repository: rt.Repository, Digest: d.String(), Actor: grant.Actor(), Request: r})
			writeBlobCreated(w, rt.Repository, d)
			return nil
		}
	} else if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return err
		}
		body, err := reg.capBody(requestBody{r.Body}, r.ContentLength, 0)
		if err != nil {
			return err
		}
		size, err := reg.blobs.Put(ctx, d, body, r.ContentLength)
		if err != nil {
			return err
		}
		if err := reg.meta.LinkBlob(ctx, rt.Repository, d, size); err != nil {
			return err
		}
		reg.emit(Event{Action: "push", Kind: KindBlob, Repository: rt.Repository, Digest: d.String(), Size: size, Actor: grant.Actor(), Request: r})
		writeBlobCreated(w, rt.Repository, d)
		return nil
	}
	up, err := reg.uploads.Start(ctx, rt.Repository)
	if err != nil {
		return err
	}
	writeUploadState(w, up, http.StatusAccepted)
	return nil
}

// mount links blob d into repo from another repository the caller may
// pull: from, or without from any such repository. It reports false when
// no mount happened and an ordinary upload should follow.
func (reg *Registry) mount(r *http.Request, repo, from string, d digest.Digest, grant auth.Grant) (bool, error) {
	ctx := r.Context()
	var size int64
	var err error
	if from != "" {
		if !grant.Allows(from, auth.Pull) {
			return false, nil
		}
		size, err = reg.meta.BlobLink(ctx, from, d)
	} else {
		_, size, err = reg.meta.FindBlob(ctx, d, func(name string) bool { return grant.Allows(name, auth.Pull) })
	}
	if errors.Is(err, storage.ErrBlobUnknown) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := reg.blobs.Stat(ctx, d); err != nil {
		if errors.Is(err, storage.ErrBlobUnknown) {
			return false, nil
		}
		return false, err
	}
	return true, reg.meta.LinkBlob(ctx, repo, d, size)
}

// uploadStatus answers GET /v2/<name>/blobs/uploads/<id>.
func (reg *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, rt Route) error {
	up, err := reg.uploads.Get(r.Context(), rt.Repository, rt.Reference)
	if err != nil {
		return err
	}
	writeUploadState(w, up, http.StatusNoContent)
	return nil
}

// appendBody writes the request body to a session. With Content-Range the
// chunk must start where the session ends (416 otherwise) and the body
// must be as long as the range (400 otherwise, keeping what arrived);
// docker streams without it.
func (reg *Registry) appendBody(r *http.Request, rt Route) (storage.Upload, error) {
	ctx := r.Context()
	offset, length := int64(-1), int64(-1)
	body := io.Reader(requestBody{r.Body})
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, err := parseContentRange(cr)
		if err != nil {
			return storage.Upload{}, errcode.BlobUploadInvalid.New("malformed Content-Range " + strconv.Quote(truncate(cr, 80)))
		}
		if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
			return storage.Upload{}, errcode.SizeInvalid.New("Content-Length does not match Content-Range")
		}
		offset, length = start, end-start+1
		body = io.LimitReader(body, length)
	}
	limit := reg.opts.MaxBlobSize
	if limit > 0 {
		cur, err := reg.uploads.Get(ctx, rt.Repository, rt.Reference)
		if err != nil {
			return storage.Upload{}, err
		}
		if body, err = reg.capBody(body, r.ContentLength, cur.Size); err != nil {
			return cur, err
		}
	}
	up, err := reg.uploads.Append(ctx, rt.Repository, rt.Reference, offset, body)
	if errors.Is(err, storage.ErrOffsetMismatch) {
		return up, withUploadState(errcode.RangeInvalid.New("chunk does not continue the upload"), up)
	}
	if err != nil {
		return up, err
	}
	// The size was checked before Append took the session's lock, so a
	// concurrent PATCH may have grown the session meanwhile.
	if limit > 0 && up.Size > limit {
		return up, tooLarge(limit)
	}
	if length >= 0 {
		if up.Size-offset != length {
			return up, withUploadState(errcode.SizeInvalid.New("the body is shorter than Content-Range"), up)
		}
		if r.ContentLength < 0 {
			// A chunked body must end with the range.
			var one [1]byte
			n, err := io.ReadFull(requestBody{r.Body}, one[:])
			if n > 0 {
				return up, withUploadState(errcode.SizeInvalid.New("the body is longer than Content-Range"), up)
			}
			if err != io.EOF {
				return up, err
			}
		}
	}
	return up, nil
}

// withUploadState adds to e the headers of where the session stands, so
// that the client can resume.
func withUploadState(e *errcode.Error, up storage.Upload) *errcode.Error {
	return e.SetHeader("Location", uploadLocation(up.Repository, up.ID)).
		SetHeader("Range", "0-"+strconv.FormatInt(max(up.Size-1, 0), 10)).
		SetHeader("Docker-Upload-UUID", up.ID)
}

// patchUpload answers PATCH /v2/<name>/blobs/uploads/<id>.
func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	up, err := reg.appendBody(r, rt)
	if err != nil {
		return err
	}
	writeUploadState(w, up, http.StatusAccepted)
	return nil
}

// putUpload answers PUT /v2/<name>/blobs/uploads/<id>?digest=: an optional
// last chunk, then verification against the digest.
func (reg *Registry) putUpload(w http.ResponseWriter, r *http.Request, rt Route, grant auth.Grant) error {
	ctx := r.Context()
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if hasBody(r) {
		if _, err := reg.appendBody(r, rt); err != nil {
			return err
		}
	}
	limit := reg.opts.MaxBlobSize
	if limit > 0 {
		// Concurrent PATCHes can each pass capBody and together exceed
		// the limit: such a session never becomes a blob.
		up, err := reg.uploads.Get(ctx, rt.Repository, rt.Reference)
		if err != nil {
			return err
		}
		if up.Size > limit {
			return tooLarge(limit)
		}
	}
	size, err := reg.uploads.Finish(ctx, rt.Repository, rt.Reference, d)
	if err != nil {
		return err
	}
	if limit > 0 && size > limit {
		// A PATCH grew the session after the check above; the blob stays
		// unlinked, for garbage collection.
		return tooLarge(limit)
	}
	if err := reg.meta.LinkBlob(ctx, rt.Repository, d, size); err != nil {
		return err
	}
	reg.emit(Event{Action: "push", Kind: KindBlob, Repository: rt.Repository, Digest: d.String(), Size: size, Actor: grant.Actor(), Request: r})
	writeBlobCreated(w, rt.Repository, d)
	return nil
}

// cancelUpload answers DELETE /v2/<name>/blobs/uploads/<id>.
func (reg *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	if err := reg.uploads.Cancel(r.Context(), rt.Repository, rt.Reference); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var errBlobTooLarge = errors.New("blob larger than the registry allows")

// bodyReadError is a failure to read a request body (a malformed chunked
// encoding, a connection reset): the client's fault, unlike a failure to
// write to storage.
type bodyReadError struct{ error }

func (e bodyReadError) Unwrap() error { return e.error }

// requestBody marks the read errors of a request body as bodyReadError;
// io.EOF stays as it is.
type requestBody struct{ r io.Reader }

func (b requestBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyReadError{err}
	}
	return n, err
}

// capBody bounds what a body of declared length may add to a blob that
// already holds have bytes (limits.maxBlobSize): a declared length over
// the bound is refused at once, a stream fails when it crosses it.
func (reg *Registry) capBody(body io.Reader, declared, have int64) (io.Reader, error) {
	limit := reg.opts.MaxBlobSize
	if limit <= 0 {
		return body, nil
	}
	if have+declared > limit {
		return nil, tooLarge(limit)
	}
	return &cappedReader{r: body, left: limit - have}, nil
}

func tooLarge(limit int64) error {
	return errcode.TooLarge.New("blobs are limited to " + strconv.FormatInt(limit, 10) + " bytes")
}

// cappedReader fails with errBlobTooLarge once more than left bytes came.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errBlobTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n - 1, errBlobTooLarge
	}
	return n, err
}
