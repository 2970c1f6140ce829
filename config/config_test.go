package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("mismatch with %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(c *config.Config)
		fields []string // key paths the error must name; none: valid
	}{
		{"default", func(*config.Config) {}, nil},
		{"IPv6 listen", func(c *config.Config) { c.Listen = "[::1]:5000" }, nil},
		{"host name listen", func(c *config.Config) { c.Listen = "registry.internal:443" }, nil},
		{"localhost listen", func(c *config.Config) { c.Listen = "localhost:5000" }, nil},
		{"full valid", func(c *config.Config) {
			c.PublicURL = "https://registry.example.com"
			c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"}
			c.Admin.AllowedSources = []string{"127.0.0.1"}
			c.TLS = config.TLSConfig{Cert: "c.pem", Key: "k.pem"}
			c.Log = config.LogConfig{Format: "json", Level: "debug"}
		}, nil},
		{"listen without port", func(c *config.Config) { c.Listen = "127.0.0.1" }, []string{"listen"}},
		{"listen without host", func(c *config.Config) { c.Listen = ":5000" }, []string{"listen"}},
		{"listen port out of range", func(c *config.Config) { c.Listen = "127.0.0.1:99999" }, []string{"listen"}},
		{"listen port not a number", func(c *config.Config) { c.Listen = "localhost:http" }, []string{"listen"}},
		{"empty data", func(c *config.Config) { c.Data = "" }, []string{"data"}},
		{"publicURL scheme", func(c *config.Config) { c.PublicURL = "ftp://registry.example.com" }, []string{"publicURL"}},
		{"publicURL path", func(c *config.Config) { c.PublicURL = "https://example.com/registry" }, []string{"publicURL"}},
		{"publicURL without host", func(c *config.Config) { c.PublicURL = "https://" }, []string{"publicURL"}},
		{"trustedProxies entry", func(c *config.Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} }, []string{"trustedProxies[1]"}},
		{"trustedProxies wildcard v4", func(c *config.Config) { c.TrustedProxies = []string{"0.0.0.0/0"} }, []string{"trustedProxies[0]"}},
		{"trustedProxies wildcard v6", func(c *config.Config) { c.TrustedProxies = []string{"10.0.0.0/8", "::/0"} }, []string{"trustedProxies[1]"}},
		{"admin.allowedSources entry", func(c *config.Config) { c.Admin.AllowedSources = []string{"10.0.0.0/33"} }, []string{"admin.allowedSources[0]"}},
		{"privateEndpoints wildcard v4", func(c *config.Config) { c.PrivateEndpoints.AllowedAddresses = []string{"0.0.0.0/0"} }, []string{"privateEndpoints.allowedAddresses[0]"}},
		{"privateEndpoints wildcard v6", func(c *config.Config) {
			c.PrivateEndpoints.AllowedAddresses = []string{"127.0.0.0/8", "::/0"}
		}, []string{"privateEndpoints.allowedAddresses[1]"}},
		{"privateEndpoints garbage", func(c *config.Config) { c.PrivateEndpoints.AllowedAddresses = []string{"x"} }, []string{"privateEndpoints.allowedAddresses[0]"}},
		{"tls cert without key", func(c *config.Config) { c.TLS.Cert = "c.pem" }, []string{"tls"}},
		{"tls key without cert", func(c *config.Config) { c.TLS.Key = "k.pem" }, []string{"tls"}},
		{"tls self-signed with cert", func(c *config.Config) {
			c.TLS = config.TLSConfig{Cert: "c.pem", Key: "k.pem", SelfSigned: true}
		}, []string{"tls.selfSigned"}},
		{"maxManifestSize zero", func(c *config.Config) { c.Registry.MaxManifestSize = 0 }, []string{"registry.maxManifestSize"}},
		{"idleTimeout negative", func(c *config.Config) { c.Uploads.IdleTimeout = config.Duration(-time.Second) }, []string{"uploads.idleTimeout"}},
		{"log format", func(c *config.Config) { c.Log.Format = "xml" }, []string{"log.format"}},
		{"log level", func(c *config.Config) { c.Log.Level = "trace" }, []string{"log.level"}},
		{"gc grace period too short", func(c *config.Config) { c.GC.GracePeriod = config.Duration(time.Second) }, []string{"gc.gracePeriod"}},
		{"gc interval negative", func(c *config.Config) { c.GC.Interval = -1 }, []string{"gc.interval"}},
		{"limits timeouts negative", func(c *config.Config) {
			c.Limits.ReadHeaderTimeout = config.Duration(-time.Second)
			c.Limits.IdleTimeout = config.Duration(-time.Second)
		}, []string{"limits.readHeaderTimeout", "limits.idleTimeout"}},
		{"everything wrong", func(c *config.Config) {
			*c = config.Config{Listen: "x", TrustedProxies: []string{"y"}, TLS: config.TLSConfig{Cert: "c"}}
		}, []string{"listen", "data", "trustedProxies[0]", "tls", "registry.maxManifestSize", "uploads.idleTimeout", "gc.gracePeriod", "log.format", "log.level"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.fields) {
				t.Errorf("%d errors, want %d: %v", len(lines), len(tt.fields), err)
			}
			for i, field := range tt.fields {
				if i < len(lines) && !strings.HasPrefix(lines[i], field+": ") {
					t.Errorf("error %d %q does not name %s", i, lines[i], field)
				}
			}
			golden(t, "validate_"+strings.ReplaceAll(tt.name, " ", "_"), err.Error()+"\n")
		})
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		check   func(t *testing.T, c config.Config)
		wantErr []string // variable names the error must name
	}{
		{
			name:    "registry name",
			environ: []string{"MOAT_REGISTRY_NAME=registry.example.com"},
			check: func(t *testing.T, c config.Config) {
				if c.Registry.Name != "registry.example.com" {
					t.Errorf("Registry.Name = %q", c.Registry.Name)
				}
			},
		},
		{
			name:    "trusted proxies comma list",
			environ: []string{"MOAT_TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.1,,2001:db8::/32 "},
			check: func(t *testing.T, c config.Config) {
				want := []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"}
				if !reflect.DeepEqual(c.TrustedProxies, want) {
					t.Errorf("TrustedProxies = %q, want %q", c.TrustedProxies, want)
				}
			},
		},
		{
			name:    "idle timeout",
			environ: []string{"MOAT_UPLOADS_IDLE_TIMEOUT=90m"},
			check: func(t *testing.T, c config.Config) {
				if c.Uploads.IdleTimeout != config.Duration(90*time.Minute) {
					t.Errorf("IdleTimeout = %v", time.Duration(c.Uploads.IdleTimeout))
				}
			},
		},
		{
			name:    "bool, integer and camel-case keys",
			environ: []string{"MOAT_DEV=false", "MOAT_TLS_SELF_SIGNED=true", "MOAT_REGISTRY_MAX_MANIFEST_SIZE=1024", "MOAT_PUBLIC_URL=https://r.example.com?a=b"},
			check: func(t *testing.T, c config.Config) {
				if c.Dev || !c.TLS.SelfSigned || c.Registry.MaxManifestSize != 1024 || c.PublicURL != "https://r.example.com?a=b" {
					t.Errorf("got Dev=%v SelfSigned=%v MaxManifestSize=%d PublicURL=%q", c.Dev, c.TLS.SelfSigned, c.Registry.MaxManifestSize, c.PublicURL)
				}
			},
		},
		{
			name:    "other variables are ignored",
			environ: []string{"HOME=/root", "MOAT_ADMIN_PASSWORD=secret", "MOAT_LISTEN", "LISTEN=0.0.0.0:1"},
			check: func(t *testing.T, c config.Config) {
				if !reflect.DeepEqual(c, config.Default()) {
					t.Errorf("config changed: %+v", c)
				}
			},
		},
		{
			// An unset ${VAR} in a compose file arrives as VAR= and must not
			// clear what the file set.
			name:    "empty variables are unset",
			environ: []string{"MOAT_LISTEN=", "MOAT_DATA=", "MOAT_PRIVATE_ENDPOINTS_ALLOWED_ADDRESSES=", "MOAT_DEV="},
			check: func(t *testing.T, c config.Config) {
				if !reflect.DeepEqual(c, config.Default()) {
					t.Errorf("config changed: %+v", c)
				}
			},
		},
		{name: "bad bool", environ: []string{"MOAT_DEV=maybe"}, wantErr: []string{"MOAT_DEV"}},
		{name: "bad duration", environ: []string{"MOAT_UPLOADS_IDLE_TIMEOUT=1 day"}, wantErr: []string{"MOAT_UPLOADS_IDLE_TIMEOUT"}},
		{
			name:    "every bad variable is reported",
			environ: []string{"MOAT_DEV=yes please", "MOAT_REGISTRY_MAX_MANIFEST_SIZE=4MiB"},
			wantErr: []string{"MOAT_DEV", "MOAT_REGISTRY_MAX_MANIFEST_SIZE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			err := config.ApplyEnv(&c, tt.environ)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("ApplyEnv() = nil, want an error")
				}
				for _, name := range tt.wantErr {
					if !strings.Contains(err.Error(), name+": ") {
						t.Errorf("error %q does not name %s", err, name)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyEnv() = %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"listen", "MOAT_LISTEN"},
		{"data", "MOAT_DATA"},
		{"publicURL", "MOAT_PUBLIC_URL"},
		{"trustedProxies", "MOAT_TRUSTED_PROXIES"},
		{"registry.name", "MOAT_REGISTRY_NAME"},
		{"registry.maxManifestSize", "MOAT_REGISTRY_MAX_MANIFEST_SIZE"},
		{"registry.relaxIndexReferences", "MOAT_REGISTRY_RELAX_INDEX_REFERENCES"},
		{"admin.allowedSources", "MOAT_ADMIN_ALLOWED_SOURCES"},
		{"privateEndpoints.allowedAddresses", "MOAT_PRIVATE_ENDPOINTS_ALLOWED_ADDRESSES"},
		{"tls.selfSigned", "MOAT_TLS_SELF_SIGNED"},
		{"uploads.idleTimeout", "MOAT_UPLOADS_IDLE_TIMEOUT"},
		{"log.level", "MOAT_LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := config.EnvName(tt.path); got != tt.want {
				t.Errorf("EnvName(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
	t.Run("every field has its own variable", func(t *testing.T) {
		seen := map[string]string{}
		for _, f := range config.Fields() {
			name := config.EnvName(f.Path)
			if other, dup := seen[name]; dup {
				t.Errorf("%s and %s both map to %s", other, f.Path, name)
			}
			seen[name] = f.Path
		}
		if len(seen) < 15 {
			t.Errorf("only %d fields found", len(seen))
		}
	})
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		check   func(t *testing.T, c config.Config)
		wantErr string // a substring of the error
	}{
		{name: "empty document", yaml: "", check: func(t *testing.T, c config.Config) {
			if !reflect.DeepEqual(c, config.Default()) {
				t.Errorf("defaults changed: %+v", c)
			}
		}},
		{name: "known keys", yaml: "listen: 0.0.0.0:443\nregistry:\n  name: r.example.com\nuploads:\n  idleTimeout: 90s\ntrustedProxies: [10.0.0.0/8]\n",
			check: func(t *testing.T, c config.Config) {
				if c.Listen != "0.0.0.0:443" || c.Registry.Name != "r.example.com" ||
					c.Uploads.IdleTimeout != config.Duration(90*time.Second) || len(c.TrustedProxies) != 1 {
					t.Errorf("got %+v", c)
				}
				if c.Log.Level != "info" {
					t.Errorf("an absent key lost its default: log.level = %q", c.Log.Level)
				}
			}},
		{name: "unknown top-level key", yaml: "listne: 0.0.0.0:443\n", wantErr: "listne"},
		{name: "unknown nested key", yaml: "registry:\n  nmae: x\n", wantErr: "nmae"},
		{name: "bad duration", yaml: "uploads:\n  idleTimeout: soon\n", wantErr: "soon"},
		{name: "wrong type", yaml: "trustedProxies: 10.0.0.0/8\n", wantErr: "line 1"},
		{name: "not YAML", yaml: "listen: [\n", wantErr: "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			err := config.Parse([]byte(tt.yaml), &c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() = %v, want an error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("no file is the dev profile", func(t *testing.T) {
		c, err := config.Load("")
		if err != nil {
			t.Fatal(err)
		}
		if !c.Dev {
			t.Error("Dev is off without a config file")
		}
	})
	t.Run("file turns dev off and env overrides it", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "moat.yaml")
		if err := os.WriteFile(path, []byte("listen: 0.0.0.0:5000\nregistry:\n  name: from-file\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("MOAT_REGISTRY_NAME", "from-env")
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Dev || c.Listen != "0.0.0.0:5000" || c.Registry.Name != "from-env" {
			t.Errorf("got Dev=%v Listen=%q Name=%q", c.Dev, c.Listen, c.Registry.Name)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Validate() = %v", err)
		}
	})
	t.Run("unknown key names the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "moat.yaml")
		if err := os.WriteFile(path, []byte("bogus: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Load() = %v, want an error naming %s", err, path)
		}
	})
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"10.1.2.3/8", "10.0.0.0/8", true},
		{"192.0.2.7", "192.0.2.7/32", true},
		{"::ffff:192.0.2.7", "192.0.2.7/32", true},
		{"2001:db8::1", "2001:db8::1/128", true},
		{"2001:db8::/32", "2001:db8::/32", true},
		{"10.0.0.0/33", "", false},
		{"host.example", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := config.ParsePrefix(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParsePrefix(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && p.String() != tt.want {
				t.Errorf("ParsePrefix(%q) = %s, want %s", tt.in, p, tt.want)
			}
		})
	}
}

func TestListenIsLoopback(t *testing.T) {
	tests := []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:5000", true},
		{"localhost:5000", true},
		{"[::1]:5000", true},
		{"0.0.0.0:5000", false},
		{"192.0.2.1:5000", false},
		{"registry.example.com:5000", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			c := config.Config{Listen: tt.listen}
			if got := c.ListenIsLoopback(); got != tt.want {
				t.Errorf("ListenIsLoopback(%q) = %v, want %v", tt.listen, got, tt.want)
			}
		})
	}
}
