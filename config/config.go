// Package config is moat's typed configuration: one YAML file, MOAT_*
// environment overrides and command-line flags, checked by Validate at
// load with errors that name the field.
//
// The file holds bootstrap and server settings. Registry settings changed
// through the admin API (network rules, identities, roles …) live in the
// metadata store, not here.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Field comments are the reference
// documentation (docs/configuration.md is generated from them).
type Config struct {
	// Listen is the public listener's address (host:port).
	Listen string `yaml:"listen"`
	// Data is the directory that holds blobs, metadata and keys.
	Data string `yaml:"data"`
	// Dev turns on the zero-config profile: anonymous pull, push, delete and
	// catalog for loopback callers. It is on only when moat runs without a
	// config file, unless the file sets it.
	Dev bool `yaml:"dev"`
	// PublicURL is the base URL clients use (scheme://host[:port]); it forms
	// the token realm. Empty: the request's scheme and Host.
	PublicURL string `yaml:"publicURL"`
	// TrustedProxies are the CIDRs of reverse proxies whose X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host are believed.
	TrustedProxies []string `yaml:"trustedProxies"`
	// Registry holds settings of the OCI API.
	Registry RegistryConfig `yaml:"registry"`
	// Admin holds settings of the admin API.
	Admin AdminConfig `yaml:"admin"`
	// PrivateEndpoints holds settings of private endpoint listeners.
	PrivateEndpoints PrivateEndpointsConfig `yaml:"privateEndpoints"`
	// TLS serves the public listener over HTTPS.
	TLS TLSConfig `yaml:"tls"`
	// Uploads holds settings of resumable uploads.
	Uploads UploadsConfig `yaml:"uploads"`
	// GC holds settings of online garbage collection.
	GC GCConfig `yaml:"gc"`
	// Limits protect the server from overload and oversized requests.
	Limits LimitsConfig `yaml:"limits"`
	// Log holds logging settings.
	Log LogConfig `yaml:"log"`
	// Notifications send webhooks on pushes and deletes.
	Notifications NotificationsConfig `yaml:"notifications"`
	// Tracing exports OpenTelemetry traces; off unless an endpoint is set.
	Tracing TracingConfig `yaml:"tracing"`
	// Storage selects where blob bytes live.
	Storage StorageConfig `yaml:"storage"`
	// Metadata selects where metadata and control-plane state live.
	Metadata MetadataConfig `yaml:"metadata"`
	// Keys protects the token signing keys when replicas share them.
	Keys KeysConfig `yaml:"keys"`
}

// RegistryConfig holds settings of the OCI API.
type RegistryConfig struct {
	// Name is the service name in token challenges and the JWT audience.
	// Empty: the public listener's host:port.
	Name string `yaml:"name"`
	// RelaxIndexReferences accepts an index whose child manifests are not in
	// the repository (sparse indexes).
	RelaxIndexReferences bool `yaml:"relaxIndexReferences"`
	// MaxManifestSize bounds a manifest in bytes.
	MaxManifestSize int64 `yaml:"maxManifestSize"`
}

// AdminConfig holds settings of the admin API.
type AdminConfig struct {
	// AllowedSources are CIDRs allowed to reach the control plane:
	// /admin/v1, /.well-known, /healthz, /readyz and /metrics (the token
	// endpoints under /oauth2 stay open); empty allows all.
	AllowedSources []string `yaml:"allowedSources"`
}

// PrivateEndpointsConfig holds settings of private endpoint listeners.
type PrivateEndpointsConfig struct {
	// AllowedAddresses are the CIDRs a private endpoint may listen in.
	AllowedAddresses []string `yaml:"allowedAddresses"`
}

// TLSConfig serves HTTPS.
type TLSConfig struct {
	// Cert is a PEM certificate chain file.
	Cert string `yaml:"cert"`
	// Key is the PEM private key file of Cert.
	Key string `yaml:"key"`
	// SelfSigned generates a certificate for development.
	SelfSigned bool `yaml:"selfSigned"`
}

// Enabled reports whether the public listener serves HTTPS.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.SelfSigned }

// UploadsConfig holds settings of resumable uploads.
type UploadsConfig struct {
	// IdleTimeout ends an upload session that received nothing for this long.
	IdleTimeout Duration `yaml:"idleTimeout"`
}

// GCConfig holds settings of online garbage collection.
type GCConfig struct {
	// Interval runs a collection this often; 0 turns the schedule off
	// (collections then run only on demand, `moat gc`).
	Interval Duration `yaml:"interval"`
	// GracePeriod protects blobs uploaded or linked this recently, so a
	// push that has sent its layers but not yet its manifest loses nothing.
	GracePeriod Duration `yaml:"gracePeriod"`
	// Untagged also deletes manifests no tag names and nothing references.
	Untagged bool `yaml:"untagged"`
}

// LimitsConfig protects the server. Zero turns a limit off.
type LimitsConfig struct {
	// Rate is the sustained number of data-plane requests per second
	// allowed from one client address; over it, requests get 429
	// TOOMANYREQUESTS with Retry-After.
	Rate float64 `yaml:"rate"`
	// Burst is how many requests above Rate one client may send at once.
	Burst int `yaml:"burst"`
	// MaxConcurrentUploads bounds the upload requests (blob POST, PATCH,
	// PUT with a body) served at once; more get 429 with Retry-After.
	MaxConcurrentUploads int `yaml:"maxConcurrentUploads"`
	// MaxBlobSize bounds one blob in bytes; larger uploads get 413.
	MaxBlobSize int64 `yaml:"maxBlobSize"`
	// AuthFailuresPerMinute is how many wrong passwords one client address
	// may send in a minute before its password attempts get 429.
	AuthFailuresPerMinute int `yaml:"authFailuresPerMinute"`
	// ReadHeaderTimeout bounds the time a client may take to send a
	// request's headers; a slower connection is closed (slowloris).
	ReadHeaderTimeout Duration `yaml:"readHeaderTimeout"`
	// IdleTimeout closes a keep-alive connection that sends no new request
	// for this long.
	IdleTimeout Duration `yaml:"idleTimeout"`
}

// LogConfig holds logging settings.
type LogConfig struct {
	// Format is "text" or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `yaml:"level"`
}

// NotificationsConfig sends webhooks, in the envelope of CNCF
// Distribution's notifications, when content is pushed or deleted.
type NotificationsConfig struct {
	// Endpoints receive the events; each has its own bounded queue.
	Endpoints []NotificationEndpoint `yaml:"endpoints"`
}

// NotificationEndpoint is one webhook receiver.
type NotificationEndpoint struct {
	// Name names the endpoint in logs and metrics (unique).
	Name string `yaml:"name"`
	// URL receives the events by POST: https, or http on a loopback
	// address; never link-local.
	URL string `yaml:"url"`
	// Secret is the key of the X-Moat-Signature header: "sha256=" and the
	// hex HMAC-SHA256 of the body.
	Secret string `yaml:"secret"`
	// SecretFile reads the secret from a file instead (a trailing newline
	// is ignored).
	SecretFile string `yaml:"secretFile"`
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string `yaml:"headers"`
	// Repositories are globs of the repositories whose events are sent:
	// "*" matches any characters, "/" included ("app/*" is every
	// repository under app/). Empty, with repositoryRegexp empty: all.
	Repositories []string `yaml:"repositories"`
	// RepositoryRegexp is an RE2 expression that must match a whole
	// repository name; an event is sent when it or a glob matches.
	RepositoryRegexp string `yaml:"repositoryRegexp"`
	// Actions are the actions sent: push, delete. Empty: both.
	Actions []string `yaml:"actions"`
	// IgnoredMediaTypes are target media types never sent;
	// application/octet-stream leaves blob events out.
	IgnoredMediaTypes []string `yaml:"ignoredMediaTypes"`
	// Timeout bounds one attempt. 0: 5s.
	Timeout Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts of one delivery, the first included.
	// 0: 5.
	MaxAttempts int `yaml:"maxAttempts"`
	// Backoff is the wait before the second attempt; it doubles after each
	// failure, up to 1m, with jitter. 0: 1s.
	Backoff Duration `yaml:"backoff"`
	// QueueSize bounds the events waiting for this endpoint; when it is
	// full, new events are dropped and counted. 0: 1024.
	QueueSize int `yaml:"queueSize"`
}

// TracingConfig exports OpenTelemetry traces over OTLP/HTTP.
type TracingConfig struct {
	// Endpoint is the OTLP/HTTP traces URL, e.g.
	// http://localhost:4318/v1/traces. Empty: tracing off (no cost).
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the fraction of requests traced, 0 to 1, unless the
	// caller's traceparent decides.
	SampleRatio float64 `yaml:"sampleRatio"`
	// Headers are sent with every export (e.g. an API key).
	Headers map[string]string `yaml:"headers"`
	// ServiceName is the service.name of the spans. Empty: moat.
	ServiceName string `yaml:"serviceName"`
}

// Duration is a time.Duration written as "90s" or "1h".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return d.parse(n.Value)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 90s, 24h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default is the zero-config profile of `moat serve`.
func Default() Config {
	return Config{
		Listen:           "127.0.0.1:5000",
		Data:             "./moat-data",
		Dev:              true,
		Registry:         RegistryConfig{MaxManifestSize: 4 << 20},
		PrivateEndpoints: PrivateEndpointsConfig{AllowedAddresses: []string{"127.0.0.0/8", "::1/128"}},
		Uploads:          UploadsConfig{IdleTimeout: Duration(24 * time.Hour)},
		GC:               GCConfig{Interval: Duration(24 * time.Hour), GracePeriod: Duration(time.Hour)},
		Limits:           LimitsConfig{AuthFailuresPerMinute: 10, ReadHeaderTimeout: Duration(30 * time.Second), IdleTimeout: Duration(2 * time.Minute)},
		Log:              LogConfig{Format: "text", Level: "info"},
		Tracing:          TracingConfig{SampleRatio: 1},
		Storage:          StorageConfig{Driver: DriverFilesystem, S3: S3Config{RedirectTTL: Duration(time.Minute)}},
		Metadata:         MetadataConfig{Driver: DriverBbolt},
	}
}

// Load reads a YAML file over the defaults (with Dev off: a config file
// makes every setting explicit), then applies MOAT_* environment
// overrides. It does not validate; call Validate.
func Load(path string) (Config, error) {
	c := Default()
	if path != "" {
		c.Dev = false
		b, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		if err := Parse(b, &c); err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := ApplyEnv(&c, os.Environ()); err != nil {
		return c, err
	}
	return c, nil
}

// Parse decodes YAML into c, refusing unknown keys.
func Parse(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ApplyEnv applies MOAT_<PATH> variables, where PATH is the YAML key path
// in upper snake case: registry.name → MOAT_REGISTRY_NAME, publicURL →
// MOAT_PUBLIC_URL, trustedProxies → MOAT_TRUSTED_PROXIES (a comma list).
// An empty variable counts as unset, so that an unset ${VAR} in a compose
// file cannot silently clear a setting of the file (admin.allowedSources,
// tls).
func ApplyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" && strings.HasPrefix(k, "MOAT_") {
			env[k] = v
		}
	}
	var errs []error
	walkFields(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value) {
		name := EnvName(path)
		s, ok := env[name]
		if !ok {
			return
		}
		if err := setFromString(v, s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// EnvName is the environment variable of a YAML key path.
func EnvName(path string) string {
	var b strings.Builder
	b.WriteString("MOAT_")
	prevLower := false
	for _, r := range path {
		switch {
		case r == '.':
			b.WriteByte('_')
			prevLower = false
		case r >= 'A' && r <= 'Z':
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			prevLower = false
		default:
			b.WriteRune(unicode.ToUpper(r))
			prevLower = unicode.IsLower(r)
		}
	}
	return b.String()
}

// walkFields calls fn for every leaf field with its YAML key path.
func walkFields(v reflect.Value, prefix string, fn func(path string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			walkFields(fv, path, fn)
			continue
		}
		fn(path, fv)
	}
}

// Fields lists every leaf key path of Config with its Go type, for the
// generated reference.
func Fields() []Field {
	var out []Field
	c := Default()
	walkFields(reflect.ValueOf(&c).Elem(), "", func(path string, v reflect.Value) {
		out = append(out, Field{Path: path, Type: v.Type(), Default: v.Interface()})
	})
	return out
}

// Field describes one configuration key.
type Field struct {
	Path    string
	Type    reflect.Type
	Default any
}

func setFromString(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case Duration:
		var d Duration
		if err := d.parse(s); err != nil {
			return err
		}
		v.Set(reflect.ValueOf(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int64, reflect.Int:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from the environment")
		}
		var items []string
		for it := range strings.SplitSeq(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate checks every field and returns all problems, each naming its
// key path.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, err := netip.ParseAddrPort(normalizeHostPort(c.Listen)); err != nil {
		if host, port, err := net.SplitHostPort(c.Listen); err != nil || host == "" || !validPort(port) {
			bad("listen", "%q is not host:port (port 0-65535)", c.Listen)
		}
	}
	if c.Data == "" {
		bad("data", "must name a directory")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("publicURL", "%q is not an http(s) base URL like https://registry.example.com", c.PublicURL)
		}
	}
	checkPrefixes := func(field string, list []string) {
		for i, s := range list {
			if _, err := ParsePrefix(s); err != nil {
				bad(fmt.Sprintf("%s[%d]", field, i), "%q is not an IP address or CIDR", s)
			}
		}
	}
	checkPrefixes("trustedProxies", c.TrustedProxies)
	for i, s := range c.TrustedProxies {
		if p, err := ParsePrefix(s); err == nil && p.Bits() == 0 {
			bad(fmt.Sprintf("trustedProxies[%d]", i), "%q is a wildcard: any client could set X-Forwarded-For; name the proxies' addresses", s)
		}
	}
	checkPrefixes("admin.allowedSources", c.Admin.AllowedSources)
	checkPrefixes("privateEndpoints.allowedAddresses", c.PrivateEndpoints.AllowedAddresses)
	for i, s := range c.PrivateEndpoints.AllowedAddresses {
		if p, err := ParsePrefix(s); err == nil && p.Bits() == 0 {
			bad(fmt.Sprintf("privateEndpoints.allowedAddresses[%d]", i), "%q is a wildcard; name the addresses private endpoints may use", s)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key must be set together")
	}
	if c.TLS.SelfSigned && c.TLS.Cert != "" {
		bad("tls.selfSigned", "cannot be combined with cert and key")
	}
	if c.Registry.MaxManifestSize <= 0 {
		bad("registry.maxManifestSize", "must be positive")
	}
	if c.Uploads.IdleTimeout <= 0 {
		bad("uploads.idleTimeout", "must be positive")
	}
	if c.Limits.Rate < 0 || math.IsNaN(c.Limits.Rate) || math.IsInf(c.Limits.Rate, 0) {
		bad("limits.rate", "must be a non-negative number")
	}
	if c.Limits.Burst < 0 || (c.Limits.Rate > 0 && c.Limits.Burst == 0) {
		bad("limits.burst", "must be positive when limits.rate is set")
	}
	if c.Limits.MaxConcurrentUploads < 0 {
		bad("limits.maxConcurrentUploads", "must not be negative")
	}
	if c.Limits.AuthFailuresPerMinute < 0 {
		bad("limits.authFailuresPerMinute", "must not be negative")
	}
	if c.Limits.MaxBlobSize < 0 {
		bad("limits.maxBlobSize", "must not be negative")
	}
	if c.Limits.ReadHeaderTimeout < 0 {
		bad("limits.readHeaderTimeout", "must not be negative")
	}
	if c.Limits.IdleTimeout < 0 {
		bad("limits.idleTimeout", "must not be negative")
	}
	if c.GC.Interval < 0 {
		bad("gc.interval", "must not be negative")
	}
	if time.Duration(c.GC.GracePeriod) < time.Minute {
		bad("gc.gracePeriod", "must be at least 1m: pushes in flight need time to send their manifest")
	}
	errs = append(errs, c.Notifications.validate()...)
	errs = append(errs, c.validateBackends()...)
	errs = append(errs, c.Tracing.validate()...)
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

// validPort reports whether s is a numeric TCP port.
func validPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

func normalizeHostPort(s string) string {
	if strings.HasPrefix(s, "localhost:") {
		return "127.0.0.1:" + s[len("localhost:"):]
	}
	return s
}

// ParsePrefix parses a CIDR or a single address (as a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ListenIsLoopback reports whether the listen address binds only loopback.
func (c *Config) ListenIsLoopback() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
