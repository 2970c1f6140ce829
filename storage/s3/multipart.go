package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// part is a finished part of a multipart upload, as CompleteMultipartUpload
// needs it.
type part struct {
	N    int32  `json:"n"`
	ETag string `json:"e"`
	Size int64  `json:"s"`
	// CRC is the part's CRC32 (base64) when the upload was created with
	// that checksum algorithm.
	CRC string `json:"c,omitempty"`
}

// multipart is an open multipart upload: its key, S3 upload id and the
// checksum algorithm it was created with ("CRC32" or none).
type multipart struct {
	Key      string `json:"key"`
	ID       string `json:"id"`
	Checksum string `json:"sum,omitempty"`
}

func (s *Store) checksum() types.ChecksumAlgorithm {
	if s.whenRequired {
		return ""
	}
	return types.ChecksumAlgorithmCrc32
}

// createMultipart starts a multipart upload at key. The parts of an
// upload with checksums carry their CRC32, sent by this store and checked
// by S3; an upload of copied parts has none, because S3 computes their
// checksums itself and not every S3-compatible server reports them right
// for ranges of multipart objects.
func (s *Store) createMultipart(ctx context.Context, key string, checksums bool) (multipart, error) {
	alg := types.ChecksumAlgorithm("")
	if checksums {
		alg = s.checksum()
	}
	out, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, ContentType: aws.String("application/octet-stream"),
		ChecksumAlgorithm: alg,
	})
	if err != nil {
		return multipart{}, err
	}
	return multipart{Key: key, ID: aws.ToString(out.UploadId), Checksum: string(alg)}, nil
}

// uploadPart sends data as part n of m, with a checksum when m has them.
func (s *Store) uploadPart(ctx context.Context, m multipart, n int32, data []byte) (part, error) {
	var opts []func(*awss3.Options)
	if m.Checksum == "" {
		opts = append(opts, func(o *awss3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
	}
	out, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket: &s.bucket, Key: &m.Key, UploadId: &m.ID, PartNumber: &n,
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithm(m.Checksum),
	}, opts...)
	if err != nil {
		return part{}, err
	}
	p := part{N: n, ETag: aws.ToString(out.ETag), Size: int64(len(data))}
	if m.Checksum != "" {
		p.CRC = aws.ToString(out.ChecksumCRC32)
	}
	return p, nil
}

// copyPart makes bytes [first, last] of the object at src part n of m,
// inside S3.
func (s *Store) copyPart(ctx context.Context, m multipart, n int32, src string, first, last int64) (part, error) {
	in := &awss3.UploadPartCopyInput{
		Bucket: &s.bucket, Key: &m.Key, UploadId: &m.ID, PartNumber: &n,
		CopySource: aws.String(s.copySource(src)),
	}
	if first != 0 || last >= 0 {
		in.CopySourceRange = aws.String("bytes=" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10))
	}
	out, err := s.client.UploadPartCopy(ctx, in)
	if err != nil {
		return part{}, err
	}
	p := part{N: n, Size: last - first + 1}
	if r := out.CopyPartResult; r != nil {
		p.ETag = aws.ToString(r.ETag)
		if m.Checksum != "" {
			p.CRC = aws.ToString(r.ChecksumCRC32)
		}
	}
	return p, nil
}

// copySource is the x-amz-copy-source of a key in the store's bucket.
func (s *Store) copySource(key string) string {
	return url.PathEscape(s.bucket) + "/" + (&url.URL{Path: key}).EscapedPath()
}

// complete ends m with parts, making its object visible.
func (s *Store) complete(ctx context.Context, m multipart, parts []part) error {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.N), ETag: aws.String(p.ETag)}
		if m.Checksum == string(types.ChecksumAlgorithmCrc32) && p.CRC != "" {
			done[i].ChecksumCRC32 = aws.String(p.CRC)
		}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &m.Key, UploadId: &m.ID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	return err
}

// abort drops a multipart upload and its parts; one already gone is not
// an error.
func (s *Store) abort(ctx context.Context, m multipart) error {
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &m.Key, UploadId: &m.ID})
	if err != nil && !isNoSuchUpload(err) && !isNotFound(err) {
		return err
	}
	return nil
}

func (s *Store) putObject(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType: aws.String("application/octet-stream"), ChecksumAlgorithm: s.checksum(),
	})
	return err
}

// readObject reads the whole object at key, which is len(buf) bytes long,
// into buf.
func (s *Store) readObject(ctx context.Context, key string, buf []byte) error {
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("staged object %s is gone: %w", key, err)
		}
		return err
	}
	defer out.Body.Close()
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	return nil
}

// copyObject copies the size-byte object at src to dst inside S3: with
// CopyObject up to 5 GiB, beyond with a multipart upload of ranged
// UploadPartCopy parts.
func (s *Store) copyObject(ctx context.Context, src, dst string, size int64) error {
	if size <= maxCopySize {
		_, err := s.client.CopyObject(ctx, &awss3.CopyObjectInput{
			Bucket: &s.bucket, Key: &dst, CopySource: aws.String(s.copySource(src)),
		})
		return err
	}
	m, err := s.createMultipart(ctx, dst, false)
	if err != nil {
		return err
	}
	parts, err := s.copyRanges(ctx, m, 1, src, size)
	if err == nil {
		err = s.complete(ctx, m, parts)
	}
	if err != nil {
		_ = s.abort(context.WithoutCancel(ctx), m)
	}
	return err
}

// copyRanges copies the first size bytes of src into m as parts from
// number first on, each at most 5 GiB and, when size is at least
// MinPartSize, none smaller than that.
func (s *Store) copyRanges(ctx context.Context, m multipart, first int32, src string, size int64) ([]part, error) {
	ranges := splitRanges(size)
	parts := make([]part, len(ranges))
	var wg sync.WaitGroup
	errs := make([]error, len(ranges))
	sem := make(chan struct{}, s.conc)
	for i, r := range ranges {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			parts[i], errs[i] = s.copyPart(ctx, m, first+int32(i), src, r[0], r[1])
		}()
	}
	wg.Wait()
	return parts, errors.Join(errs...)
}

// splitRanges cuts [0, size) into the fewest ranges of at most 5 GiB, of
// nearly equal length (so none is under 5 MiB when size exceeds 5 GiB),
// as inclusive [first, last] pairs.
func splitRanges(size int64) [][2]int64 {
	if size <= 0 {
		return nil
	}
	n := (size + maxCopySize - 1) / maxCopySize
	out := make([][2]int64, 0, n)
	var start int64
	for i := int64(0); i < n; i++ {
		end := size * (i + 1) / n
		out = append(out, [2]int64{start, end - 1})
		start = end
	}
	return out
}

// uploader sends the parts of one request, at most Concurrency at a time,
// while the request reads the next.
type uploader struct {
	s   *Store
	ctx context.Context
	m   multipart
	sem chan struct{}
	wg  sync.WaitGroup

	mu    sync.Mutex
	parts []part
	errs  []error
}

func (s *Store) newUploader(ctx context.Context, m multipart) *uploader {
	return &uploader{s: s, ctx: ctx, m: m, sem: make(chan struct{}, s.conc)}
}

// upload sends data as part n in the background and then calls release.
// It blocks while Concurrency parts are on their way.
func (u *uploader) upload(n int32, data []byte, release func()) {
	u.mu.Lock()
	i := len(u.parts)
	u.parts = append(u.parts, part{})
	u.errs = append(u.errs, nil)
	u.mu.Unlock()
	u.sem <- struct{}{}
	u.wg.Add(1)
	go func() {
		defer func() { release(); <-u.sem; u.wg.Done() }()
		p, err := u.s.uploadPart(u.ctx, u.m, n, data)
		u.mu.Lock()
		u.parts[i], u.errs[i] = p, err
		u.mu.Unlock()
	}()
}

// wait waits for every part sent and returns those that were uploaded, in
// order, up to the first that failed, and that failure.
func (u *uploader) wait() ([]part, error) {
	u.wg.Wait()
	for i, err := range u.errs {
		if err != nil {
			return u.parts[:i], err
		}
	}
	return u.parts, nil
}
