package config_test

import (
	"bytes"
	"testing"

	"github.com/moat-registry/moat/config"
	"gopkg.in/yaml.v3"
)

// FuzzParse: any configuration file parses and validates without a panic,
// and a valid configuration written back as YAML parses to the same,
// still valid, configuration.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"listen: 127.0.0.1:5000\ndata: /var/lib/moat\n",
		"listen: 0.0.0.0:443\ntls:\n  cert: c.pem\n  key: k.pem\npublicURL: https://registry.example.com\n",
		"trustedProxies: [10.0.0.0/8, 192.0.2.1]\nadmin:\n  allowedSources: [127.0.0.1]\n",
		"limits:\n  rate: 10.5\n  burst: 20\n  maxConcurrentUploads: 4\n  maxBlobSize: 1073741824\n  readHeaderTimeout: 5s\n  idleTimeout: 1m\n",
		"gc:\n  interval: 1h\n  gracePeriod: 2h\n  untagged: true\nuploads:\n  idleTimeout: 24h\n",
		"log:\n  format: json\n  level: debug\nregistry:\n  name: r\n  maxManifestSize: 1024\n",
		"notifications:\n  endpoints:\n    - name: hook\n      url: https://hooks.example.com/x\n      secret: s\n      actions: [push]\n      timeout: 5s\n",
		"tracing:\n  endpoint: http://localhost:4318/v1/traces\n  sampleRatio: 0.5\n",
		"limits: {rate: .nan, burst: 1}\n",
		"limits: {rate: .inf, burst: 1}\n",
		"gc: {gracePeriod: 9223372036854775807ns}\n",
		"listen: [a, b]\n",
		"unknown: 1\n",
		"&a [*a]\n",
		"a: &a {b: *a}\n",
		"listen: !!binary aGVsbG8=\n",
		"%YAML 1.1\n---\nlisten: x\n...\n---\ndata: y\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := config.Default()
		if err := config.Parse(b, &c); err != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("a valid configuration does not marshal: %v\n%+v", err, c)
		}
		back := config.Default()
		if err := config.Parse(out, &back); err != nil {
			t.Fatalf("a valid configuration written as YAML does not parse: %v\n%s", err, out)
		}
		// Compared as YAML: an empty list and no list are the same setting.
		if again, err := yaml.Marshal(back); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("round trip changed the configuration (%v):\nwritten %s\nback    %s", err, out, again)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("round trip made a valid configuration invalid: %v", err)
		}
	})
}

// FuzzApplyEnv: any MOAT_* variable applies or is refused with an error,
// never a panic.
func FuzzApplyEnv(f *testing.F) {
	for _, kv := range [][2]string{
		{"LISTEN", "127.0.0.1:5000"}, {"LIMITS_RATE", "NaN"}, {"LIMITS_BURST", "99999999999999999999"},
		{"TRUSTED_PROXIES", "10.0.0.0/8, ,192.0.2.1"}, {"GC_INTERVAL", "-1h"}, {"DEV", "maybe"},
		{"NOTIFICATIONS_ENDPOINTS", "x"}, {"TRACING_HEADERS", "a=b"}, {"", ""}, {"LIMITS_READ_HEADER_TIMEOUT", "1µs"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		c := config.Default()
		if err := config.ApplyEnv(&c, []string{"MOAT_" + name + "=" + value}); err != nil {
			return
		}
		_ = c.Validate()
	})
}
