package s3

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// Stat implements storage.Blobs with a HeadObject.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	return s.size(ctx, s.blobKey(d))
}

// size returns an object's length, or storage.ErrBlobUnknown.
func (s *Store) size(ctx context.Context, key string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return 0, storage.ErrBlobUnknown
		}
		return 0, err
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Open implements storage.Blobs. It asks only for the size (HeadObject);
// the returned reader fetches bytes with ranged GetObject requests from
// its current offset on the first Read after a Seek, so seeking to the end
// costs nothing and a Range request transfers only what it reads. The
// reader's requests run under ctx.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if err := checkDigest(d); err != nil {
		return nil, 0, err
	}
	key := s.blobKey(d)
	size, err := s.size(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	return &objectReader{ctx: ctx, s: s, key: key, size: size}, size, nil
}

// Put implements storage.Blobs. Content up to one part is hashed in
// memory and written with one PutObject once verified; larger content
// streams to a multipart upload at the blob's key, which is completed —
// and the blob visible — only after the digest and size are verified.
func (s *Store) Put(ctx context.Context, d digest.Digest, r io.Reader, size int64) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	h := d.Algorithm().Hash()
	key := s.blobKey(d)
	ps := s.partSize(1)
	buf, release := s.buffer(ps)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		release()
		return int64(n), err
	}
	if err != nil { // it all fits in one request
		defer release()
		h.Write(buf[:n])
		if err := verify(d, h, size, int64(n)); err != nil {
			return int64(n), err
		}
		err := s.commit(ctx, d, int64(n), func() error { return s.putObject(ctx, key, buf[:n]) })
		if err != nil && !errors.Is(err, errExists) {
			return int64(n), err
		}
		return int64(n), nil
	}

	m, err := s.createMultipart(ctx, key, true)
	if err != nil {
		release()
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			_ = s.abort(context.WithoutCancel(ctx), m)
		}
	}()
	up := s.newUploader(ctx, m)
	total := int64(0)
	for num := 1; ; num++ {
		h.Write(buf[:n])
		total += int64(n)
		up.upload(int32(num), buf[:n], release)
		if err == io.ErrUnexpectedEOF {
			break
		}
		if num == maxParts {
			up.wait()
			return total, errors.New("s3: blob needs more than 10,000 parts")
		}
		buf, release = s.buffer(s.partSize(num + 1))
		n, err = io.ReadFull(r, buf)
		if err == io.EOF {
			release()
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			release()
			up.wait()
			return total, err
		}
	}
	parts, failed := up.wait()
	if failed != nil {
		return total, failed
	}
	if err := verify(d, h, size, total); err != nil {
		return total, err
	}
	err = s.commit(ctx, d, total, func() error { return s.complete(ctx, m, parts) })
	if errors.Is(err, errExists) {
		return total, nil // the deferred abort drops this copy
	}
	done = err == nil
	return total, err
}

// verify checks what Put or Finish read against the digest and the
// declared size (negative: unknown).
func verify(d digest.Digest, h interface{ Sum([]byte) []byte }, declared, got int64) error {
	if declared >= 0 && declared != got {
		return storage.ErrSizeMismatch
	}
	if digest.NewDigestFromBytes(d.Algorithm(), h.Sum(nil)) != d {
		return storage.ErrDigestMismatch
	}
	return nil
}

// commit marks d for garbage collection, then makes the verified bytes
// visible at d's key with write — unless the blob is already stored: the
// content is the same, and the mark keeps the collector from removing it.
func (s *Store) commit(ctx context.Context, d digest.Digest, size int64, write func() error) error {
	if s.marker != nil {
		if err := s.marker.MarkBlob(ctx, d, size); err != nil {
			return err
		}
	}
	if _, err := s.size(ctx, s.blobKey(d)); err == nil {
		return errExists
	} else if !errors.Is(err, storage.ErrBlobUnknown) {
		return err
	}
	return write()
}

// errExists tells Put and Finish that commit found the blob stored: they
// drop their copy and succeed.
var errExists = errors.New("blob already stored")

// Delete implements storage.Blobs.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	key := s.blobKey(d)
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// Walk implements storage.Blobs: ListObjectsV2 over blobs/. Keys that do
// not name a blob are skipped.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64, modified time.Time) error) error {
	root := s.prefix + "blobs/"
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &root})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			d, ok := parseBlobKey(strings.TrimPrefix(aws.ToString(o.Key), root))
			if !ok {
				continue
			}
			if err := fn(d, aws.ToInt64(o.Size), aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseBlobKey turns "<alg>/<xx>/<hex>" back into a digest.
func parseBlobKey(rel string) (digest.Digest, bool) {
	alg, rest, ok := strings.Cut(rel, "/")
	if !ok {
		return "", false
	}
	xx, enc, ok := strings.Cut(rest, "/")
	if !ok || len(enc) < 2 || enc[:2] != xx {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	return d, d.Validate() == nil
}

// MaxPresignTTL bounds the lifetime of presigned URLs: a presigned URL
// works from any network, so it must not outlive the decision that
// issued it by much.
const MaxPresignTTL = 60 * time.Second

// PresignGet returns a URL from which anyone can GET blob d directly from
// the bucket for ttl (at most MaxPresignTTL; zero or less means the
// maximum). It does not check that the blob exists, nor any policy: the
// registry decides first whether a client may be redirected at all.
func (s *Store) PresignGet(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error) {
	if err := checkDigest(d); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxPresignTTL {
		ttl = MaxPresignTTL
	}
	key := s.blobKey(d)
	req, err := s.presign.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key},
		awss3.WithPresignExpires(ttl))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}
