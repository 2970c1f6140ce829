package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moat-registry/moat/storage"
)

// objectReader reads an object of known size with ranged GetObject
// requests. Seek only moves the offset; the next Read opens a body from
// there to the end of the object, and Reads continue on it until a Seek
// moves elsewhere. It is not safe for concurrent use.
type objectReader struct {
	ctx  context.Context
	s    *Store
	key  string
	size int64
	off  int64

	body    io.ReadCloser // nil until a Read needs it
	bodyOff int64         // offset of body's next byte
}

var errNegativeOffset = errors.New("s3: seek to a negative offset")

func (r *objectReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body != nil && r.bodyOff != r.off {
		r.closeBody()
	}
	if r.body == nil {
		out, err := r.s.client.GetObject(r.ctx, &awss3.GetObjectInput{
			Bucket: &r.s.bucket, Key: &r.key,
			Range: rangeHeader(r.off, r.size-1),
		})
		if err != nil {
			if isNotFound(err) {
				return 0, storage.ErrBlobUnknown
			}
			return 0, err
		}
		r.body, r.bodyOff = out.Body, r.off
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	r.bodyOff += int64(n)
	if err == io.EOF {
		r.closeBody()
		if r.off < r.size {
			return n, fmt.Errorf("s3: %s ended at %d of %d bytes: %w", r.key, r.off, r.size, io.ErrUnexpectedEOF)
		}
		if n > 0 {
			err = nil
		}
	}
	return n, err
}

func rangeHeader(first, last int64) *string {
	s := "bytes=" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10)
	return &s
}

// Seek implements io.Seeker without any request.
func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return r.off, errors.New("s3: invalid whence")
	}
	if offset < 0 {
		return r.off, errNegativeOffset
	}
	r.off = offset
	return offset, nil
}

func (r *objectReader) closeBody() {
	if r.body != nil {
		_ = r.body.Close()
		r.body = nil
	}
}

// Close ends the current GetObject, if any.
func (r *objectReader) Close() error {
	r.closeBody()
	return nil
}
