package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-registry/moat/config"
)

func TestValidateBackends(t *testing.T) {
	key := strings.Repeat("k", 32)
	tests := []struct {
		name   string
		edit   func(*config.Config)
		fields []string
	}{
		{"defaults", func(*config.Config) {}, nil},
		{"s3 with bbolt", func(c *config.Config) {
			c.Storage = config.StorageConfig{Driver: "s3", S3: config.S3Config{Bucket: "b", Endpoint: "http://127.0.0.1:9000"}}
		}, nil},
		{"replicas", func(c *config.Config) {
			c.Storage = config.StorageConfig{Driver: "s3", S3: config.S3Config{Bucket: "b"}}
			c.Metadata = config.MetadataConfig{Driver: "postgres", DSN: "postgres://moat@db/moat"}
			c.Keys.EncryptionKey = key
		}, nil},
		{"unknown drivers", func(c *config.Config) { c.Storage.Driver = "nfs"; c.Metadata.Driver = "etcd" }, []string{"storage.driver", "metadata.driver"}},
		{"s3 without bucket", func(c *config.Config) { c.Storage.Driver = "s3" }, []string{"storage.s3.bucket"}},
		{"s3 bad endpoint", func(c *config.Config) {
			c.Storage = config.StorageConfig{Driver: "s3", S3: config.S3Config{Bucket: "b", Endpoint: "ftp://x"}}
		}, []string{"storage.s3.endpoint"}},
		{"s3 half credentials", func(c *config.Config) {
			c.Storage = config.StorageConfig{Driver: "s3", S3: config.S3Config{Bucket: "b", AccessKey: "a"}}
		}, []string{"storage.s3.accessKey"}},
		{"redirect ttl over a minute", func(c *config.Config) {
			c.Storage = config.StorageConfig{Driver: "s3", S3: config.S3Config{Bucket: "b", RedirectTTL: config.Duration(2 * 60e9)}}
		}, []string{"storage.s3.redirectTTL"}},
		{"postgres needs a dsn, a key and s3", func(c *config.Config) { c.Metadata.Driver = "postgres" }, []string{"metadata.dsn", "keys.encryptionKey", "storage.driver"}},
		{"short encryption key", func(c *config.Config) {
			c.Storage = config.StorageConfig{Driver: "s3", S3: config.S3Config{Bucket: "b"}}
			c.Metadata = config.MetadataConfig{Driver: "postgres", DSN: "x"}
			c.Keys.EncryptionKey = "short"
		}, []string{"keys.encryptionKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
}

func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := config.Secret("", path); err != nil || s != "from-file" {
		t.Fatalf("Secret from a file = %q, %v", s, err)
	}
	if s, _ := config.Secret("inline", path); s != "inline" {
		t.Fatalf("an inline value must win, got %q", s)
	}
	if _, err := config.Secret("", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file is not an error")
	}
}
