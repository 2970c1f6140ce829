package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Storage drivers.
const (
	DriverFilesystem = "filesystem"
	DriverS3         = "s3"
	DriverBbolt      = "bbolt"
	DriverPostgres   = "postgres"
)

// StorageConfig selects where blob bytes live.
type StorageConfig struct {
	// Driver is "filesystem" (blobs under data) or "s3" (an S3-compatible
	// object store, for several replicas).
	Driver string `yaml:"driver"`
	// S3 configures the s3 driver.
	S3 S3Config `yaml:"s3"`
}

// S3Config configures blob storage on an S3-compatible object store.
type S3Config struct {
	// Endpoint is the service URL ("https://minio.example:9000"); empty is
	// AWS S3.
	Endpoint string `yaml:"endpoint"`
	// Region of the bucket ("us-east-1" when empty).
	Region string `yaml:"region"`
	// Bucket holds the blobs; it must exist.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every object key ("moat/").
	Prefix string `yaml:"prefix"`
	// AccessKey and SecretKey are static credentials; without them the
	// SDK's default chain applies (environment, shared config, IRSA,
	// instance role).
	AccessKey string `yaml:"accessKey"`
	// SecretKey is the secret of AccessKey (better set with
	// MOAT_STORAGE_S3_SECRET_KEY or secretKeyFile).
	SecretKey string `yaml:"secretKey"`
	// SecretKeyFile is a file holding SecretKey.
	SecretKeyFile string `yaml:"secretKeyFile"`
	// UsePathStyle addresses the bucket in the path, as most
	// S3-compatible servers need.
	UsePathStyle bool `yaml:"usePathStyle"`
	// Redirect answers blob downloads with a redirect to a presigned URL
	// of the object store (ACR's data endpoint), after moat decided the
	// request. Never for private-endpoint traffic, nor while network rules
	// restrict access: a presigned URL works from any network.
	Redirect bool `yaml:"redirect"`
	// RedirectTTL is how long a presigned URL is valid (at most 60s).
	RedirectTTL Duration `yaml:"redirectTTL"`
}

// MetadataConfig selects where metadata and control-plane state live.
type MetadataConfig struct {
	// Driver is "bbolt" (one file under data) or "postgres" (PostgreSQL,
	// for several replicas).
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL connection string (postgres://user:pass@host/db
	// or key=value pairs); better set with MOAT_METADATA_DSN or dsnFile.
	DSN string `yaml:"dsn"`
	// DSNFile is a file holding DSN.
	DSNFile string `yaml:"dsnFile"`
}

// KeysConfig protects the token signing keys when they are shared.
type KeysConfig struct {
	// EncryptionKey seals the signing keys kept in the metadata store when
	// metadata.driver is postgres (at least 32 bytes, e.g. the output of
	// `openssl rand -base64 32`); every replica needs the same one.
	EncryptionKey string `yaml:"encryptionKey"`
	// EncryptionKeyFile is a file holding EncryptionKey.
	EncryptionKeyFile string `yaml:"encryptionKeyFile"`
}

// Secret returns value, or the trimmed content of file when value is empty.
func Secret(value, file string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *Config) validateBackends() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Storage.Driver {
	case "", DriverFilesystem:
	case DriverS3:
		s := c.Storage.S3
		if s.Bucket == "" {
			bad("storage.s3.bucket", "required with storage.driver s3")
		}
		if s.Endpoint != "" {
			if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("storage.s3.endpoint", "%q is not an http(s) URL", s.Endpoint)
			}
		}
		if (s.AccessKey == "") != (s.SecretKey == "" && s.SecretKeyFile == "") {
			bad("storage.s3.accessKey", "accessKey and secretKey (or secretKeyFile) go together")
		}
		if s.SecretKey != "" && s.SecretKeyFile != "" {
			bad("storage.s3.secretKeyFile", "set secretKey or secretKeyFile, not both")
		}
		if d := time.Duration(s.RedirectTTL); d < 0 || d > time.Minute {
			bad("storage.s3.redirectTTL", "must be between 0 and 60s")
		}
	default:
		bad("storage.driver", "%q is not filesystem or s3", c.Storage.Driver)
	}
	switch c.Metadata.Driver {
	case "", DriverBbolt: // with either blob store (one replica)
	case DriverPostgres:
		if c.Metadata.DSN == "" && c.Metadata.DSNFile == "" {
			bad("metadata.dsn", "required with metadata.driver postgres (or dsnFile)")
		}
		if c.Metadata.DSN != "" && c.Metadata.DSNFile != "" {
			bad("metadata.dsnFile", "set dsn or dsnFile, not both")
		}
		if c.Keys.EncryptionKey == "" && c.Keys.EncryptionKeyFile == "" {
			bad("keys.encryptionKey", "required with metadata.driver postgres: replicas share the signing keys, sealed with it")
		} else if len(c.Keys.EncryptionKey) > 0 && len(c.Keys.EncryptionKey) < 32 {
			bad("keys.encryptionKey", "must have at least 32 bytes")
		}
		if c.Storage.Driver != DriverS3 {
			bad("storage.driver", "filesystem blobs cannot be shared by replicas; use s3 with metadata.driver postgres")
		}
	default:
		bad("metadata.driver", "%q is not bbolt or postgres", c.Metadata.Driver)
	}
	return errs
}
