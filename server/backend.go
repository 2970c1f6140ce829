package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/postgres"
	"github.com/moat-registry/moat/storage/s3"
)

// metaStore is what the server needs of a metadata store: bbolt for one
// server, PostgreSQL for several replicas.
type metaStore interface {
	storage.Meta
	storage.UploadStates
	storage.Documents
	storage.AuditLog
	storage.Collector
	storage.Marker
	Check(context.Context) error
	Close() error
}

// checker is a blob store that can tell whether it is reachable.
type checker interface {
	Check(context.Context) error
}

var (
	_ metaStore = (*storage.DB)(nil)
	_ metaStore = (*postgres.DB)(nil)
	_ checker   = (*s3.Store)(nil)
)

// openBackends opens the metadata store, the blob and upload stores and
// the signing key ring that the configuration names.
func (s *Server) openBackends(ctx context.Context) error {
	cfg := s.cfg
	keyRetention := auth.RefreshTokenTTL + auth.AccessTokenTTL
	switch cfg.Metadata.Driver {
	case config.DriverPostgres:
		dsn, err := config.Secret(cfg.Metadata.DSN, cfg.Metadata.DSNFile)
		if err != nil {
			return fmt.Errorf("metadata.dsnFile: %w", err)
		}
		pg, err := postgres.Open(ctx, dsn, postgres.Options{Logger: s.log})
		if err != nil {
			return err
		}
		s.meta, s.listen = pg, pg.Listen
	default:
		db, err := storage.OpenDB(filepath.Join(cfg.Data, "meta.db"), storage.DBOptions{})
		if err != nil {
			return err
		}
		s.meta = db
	}
	// Upload session states: shared through PostgreSQL by replicas, else in
	// a file of their own, written without fsync (storage.SessionDB).
	states := storage.UploadStates(s.meta)
	if cfg.Metadata.Driver != config.DriverPostgres {
		sessions, err := storage.OpenSessionDB(filepath.Join(cfg.Data, "uploads.db"))
		if err != nil {
			return err
		}
		s.sessions, states = sessions, sessions
	}
	switch cfg.Storage.Driver {
	case config.DriverS3:
		c := cfg.Storage.S3
		secret, err := config.Secret(c.SecretKey, c.SecretKeyFile)
		if err != nil {
			return fmt.Errorf("storage.s3.secretKeyFile: %w", err)
		}
		st, err := s3.New(ctx, s3.Options{
			Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix,
			AccessKey: c.AccessKey, SecretKey: secret, UsePathStyle: c.UsePathStyle,
		}, states, s.meta)
		if err != nil {
			return err
		}
		s.blobs, s.uploads = st, st
		if c.Redirect {
			s.redirectTTL = time.Duration(c.RedirectTTL)
		}
	default:
		blobs, err := storage.NewDiskBlobs(cfg.Data, s.meta)
		if err != nil {
			return err
		}
		uploads, err := storage.NewDiskUploads(cfg.Data, blobs, states)
		if err != nil {
			return err
		}
		s.blobs, s.uploads = blobs, uploads
	}
	var err error
	if cfg.Metadata.Driver == config.DriverPostgres {
		key, kerr := config.Secret(cfg.Keys.EncryptionKey, cfg.Keys.EncryptionKeyFile)
		if kerr != nil {
			return fmt.Errorf("keys.encryptionKeyFile: %w", kerr)
		}
		s.keys, err = auth.OpenSharedKeyRing(ctx, s.meta, []byte(key), keyRetention)
	} else {
		s.keys, err = auth.OpenKeyRing(filepath.Join(cfg.Data, "keys"), keyRetention)
	}
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	return nil
}

// followChanges keeps this replica's view of the control plane in step
// with the others: on every change notification it reloads the
// directory and the key ring. Notifications that arrive while a reload
// runs are folded into one more reload.
func (s *Server) followChanges(ctx context.Context) {
	if s.listen == nil {
		return
	}
	kick := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			}
			if err := s.dir.Reload(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reloading the registry settings", "err", err)
			}
			if err := s.keys.Reload(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reloading the signing keys", "err", err)
			}
		}
	}()
	err := s.listen(ctx, func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	if err != nil && ctx.Err() == nil {
		s.log.Error("following settings changes stopped", "err", err)
	}
}

// checkBlobs reports whether the blob store is reachable (object stores).
func (s *Server) checkBlobs(ctx context.Context) error {
	if c, ok := s.blobs.(checker); ok {
		return c.Check(ctx)
	}
	return nil
}
