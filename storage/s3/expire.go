package s3

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/moat-registry/moat/storage"
)

const (
	// sweepInterval is how often one store looks for orphans: Expire runs
	// every minute on every replica, the listing need not.
	sweepInterval = 10 * time.Minute
	// maxPutDuration is how long a monolithic Put may stream: its
	// multipart upload (at the blob's key, owned by no session) is an
	// orphan only when it began that long before the cutoff.
	maxPutDuration = 24 * time.Hour
)

// Expire implements storage.Uploads: it ends the sessions idle since
// before the cutoff — their state, multipart upload and segments. Every
// sweepInterval it also removes orphans older than the cutoff, left by
// crashes and failed cleanups: staging objects and multipart uploads
// under uploads/ that no session names, and multipart uploads of
// monolithic Puts begun maxPutDuration before the cutoff.
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (int, error) {
	var stale []string
	live := map[string]bool{}    // session ids
	liveMPU := map[string]bool{} // multipart upload ids of live sessions
	alive := func(st storage.UploadState) {
		live[st.ID] = true
		if _, ses, err := decodeState(st); err == nil && ses.MPU.ID != "" {
			liveMPU[ses.MPU.ID] = true
		}
	}
	err := s.states.ListUploads(ctx, func(st storage.UploadState) error {
		if st.Updated.Before(cutoff) {
			stale = append(stale, st.ID)
		} else {
			alive(st)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range stale {
		unlock := s.lock(id)
		st, err := s.states.GetUpload(ctx, id)
		switch {
		case err == nil && st.Updated.Before(cutoff):
			if err := s.states.DeleteUpload(ctx, id); err != nil {
				unlock()
				return n, err
			}
			if _, ses, err := decodeState(st); err == nil {
				s.drop(ctx, ses, false)
			}
			n++
		case err == nil:
			alive(st) // a chunk came since the listing
		case !errors.Is(err, storage.ErrNotFound):
			live[id] = true // unknown: the sweep asks again
		}
		unlock()
	}
	return n, s.sweep(ctx, cutoff, live, liveMPU)
}

// sessionGone reports whether session id has ended: its state is gone.
// Ids are random and never reused, so a session gone stays gone.
func (s *Store) sessionGone(ctx context.Context, id string) bool {
	_, err := s.states.GetUpload(ctx, id)
	return errors.Is(err, storage.ErrNotFound)
}

// sweep removes orphans (see Expire), at most once per sweepInterval.
func (s *Store) sweep(ctx context.Context, cutoff time.Time, live, liveMPU map[string]bool) error {
	now := s.now()
	s.sweepMu.Lock()
	if !s.lastSweep.IsZero() && now.Sub(s.lastSweep) < sweepInterval {
		s.sweepMu.Unlock()
		return nil
	}
	s.lastSweep = now
	s.sweepMu.Unlock()

	uploads := s.prefix + "uploads/"
	sessionOf := func(key string) string {
		id, _, _ := strings.Cut(strings.TrimPrefix(key, uploads), "/")
		return id
	}
	// A session not live when listed may have got a chunk since, or
	// started: only the bytes of a session confirmed ended are orphans.
	gone := map[string]bool{}
	ended := func(id string) bool {
		if live[id] {
			return false
		}
		if _, ok := gone[id]; !ok {
			gone[id] = s.sessionGone(ctx, id)
		}
		return gone[id]
	}
	for _, prefix := range []string{uploads, s.prefix + "blobs/"} {
		limit := cutoff
		if prefix != uploads {
			limit = cutoff.Add(-maxPutDuration)
		}
		p := awss3.NewListMultipartUploadsPaginator(s.client, &awss3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, u := range page.Uploads {
				key, id := aws.ToString(u.Key), aws.ToString(u.UploadId)
				if liveMPU[id] || !aws.ToTime(u.Initiated).Before(limit) ||
					(prefix == uploads && !ended(sessionOf(key))) {
					continue
				}
				if err := s.abort(ctx, multipart{Key: key, ID: id}); err != nil {
					return err
				}
			}
		}
	}
	var orphans []string
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(uploads)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if aws.ToTime(o.LastModified).Before(cutoff) && ended(sessionOf(key)) {
				orphans = append(orphans, key)
			}
		}
	}
	s.deleteKeys(ctx, orphans)
	return nil
}

// deleteKeys removes objects, a thousand per request. It is best effort:
// what it fails to remove, Expire's sweep finds later.
func (s *Store) deleteKeys(ctx context.Context, keys []string) {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		objs := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			objs[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		_, _ = s.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
			Bucket: &s.bucket, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
	}
}
