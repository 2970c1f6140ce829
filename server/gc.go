package server

import (
	"context"
	"errors"
	"time"

	"github.com/moat-registry/moat/storage"
)

// CollectGarbage runs one garbage collection (one at a time).
func (s *Server) CollectGarbage(ctx context.Context, opts storage.GCOptions) (storage.GCReport, error) {
	if !s.gcMu.TryLock() {
		return storage.GCReport{}, storage.ErrBusy
	}
	defer s.gcMu.Unlock()
	rep, err := s.meta.CollectGarbage(ctx, s.blobs, opts)
	if errors.Is(err, storage.ErrBusy) {
		// Another replica holds the collector's lock: its collection
		// is the one that runs, and nothing failed here.
		s.log.Info("garbage collection skipped: another replica is collecting")
		return rep, err
	}
	canceled := err != nil && ctx.Err() != nil
	s.metrics.gc(rep, err, canceled)
	if canceled {
		// The caller went away or the server is stopping: the collection
		// stopped between batches and what it deleted stands.
		s.log.Info("garbage collection canceled", "cause", context.Cause(ctx), "blobsDeleted", rep.BlobsDeleted, "bytesReclaimed", rep.BytesReclaimed)
		return rep, err
	}
	if err != nil {
		s.log.Error("garbage collection failed", "err", err)
		return rep, err
	}
	s.log.Info("garbage collection", "dryRun", rep.DryRun, "manifestsDeleted", rep.ManifestsDeleted, "linksRemoved", rep.LinksRemoved,
		"blobsDeleted", rep.BlobsDeleted, "bytesReclaimed", rep.BytesReclaimed, "duration", rep.Finished.Sub(rep.Started))
	return rep, nil
}

// collectGarbage runs the scheduled collections until the server stops.
func (s *Server) collectGarbage() {
	every := time.Duration(s.cfg.GC.Interval)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-s.stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			_, _ = s.CollectGarbage(ctx, storage.GCOptions{GracePeriod: time.Duration(s.cfg.GC.GracePeriod), Untagged: s.cfg.GC.Untagged})
			cancel()
		}
	}
}
