package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moat-registry/moat/config"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    []string // Problem.String() of each problem, in order
	}{
		{name: "empty file"},
		{name: "valid", yaml: "listen: 0.0.0.0:443\ntls:\n  cert: c.pem\n  key: k.pem\ngc:\n  interval: 12h\n"},
		{name: "unknown key with a suggestion", yaml: "listen: 127.0.0.1:5000\nregistry:\n  nmae: r\n",
			want: []string{"3: registry.nmae: unknown key (did you mean registry.name?)"}},
		{name: "unknown key in another case", yaml: "publicUrl: https://r.example.com\n",
			want: []string{"1: publicUrl: unknown key (did you mean publicURL?)"}},
		{name: "unknown key, nothing close", yaml: "\n\nbananas: 3\n",
			want: []string{"3: bananas: unknown key"}},
		{name: "bad duration", yaml: "uploads:\n  idleTimeout: soon\n",
			want: []string{`2: uploads.idleTimeout: "soon" is not a duration (e.g. 90s, 24h)`}},
		{name: "wrong scalar type", yaml: "limits:\n  burst: lots\n  rate: fast\n",
			want: []string{`2: limits.burst: "lots" is not an integer`, `3: limits.rate: "fast" is not a number`}},
		{name: "scalar for a list", yaml: "trustedProxies: 10.0.0.0/8\n",
			want: []string{`1: trustedProxies: "10.0.0.0/8" is not a list of strings`}},
		{name: "scalar for a section", yaml: "tls: on\n",
			want: []string{"1: tls: expected a mapping of keys (tls.cert, tls.key, tls.selfSigned)"}},
		{name: "bad CIDR", yaml: "trustedProxies:\n  - 10.0.0.0/8\n  - 10.0.0.0/33\n",
			want: []string{`3: trustedProxies[1]: "10.0.0.0/33" is not an IP address or CIDR`}},
		{name: "cert without key", yaml: "listen: 127.0.0.1:5000\ntls:\n  cert: c.pem\n",
			want: []string{"2: tls: cert and key must be set together"}},
		{name: "several at once", yaml: "listne: x\nuploads:\n  idleTimeout: 5 minutes\ntrustedProxies: [nope]\nlog:\n  level: loud\n",
			want: []string{
				"1: listne: unknown key (did you mean listen?)",
				`3: uploads.idleTimeout: "5 minutes" is not a duration (e.g. 90s, 24h)`,
				`4: trustedProxies[0]: "nope" is not an IP address or CIDR`,
				`6: log.level: "loud" is not debug, info, warn or error`,
			}},
		{name: "duplicate key", yaml: "listen: a:1\nlisten: 127.0.0.1:5000\n",
			want: []string{"2: listen: already set on line 1"}},
		{name: "not YAML", yaml: "listen: [\n",
			want: []string{"1: did not find expected node content"}},
		{name: "not a mapping", yaml: "- listen\n",
			want: []string{"1: the file must be a mapping of keys (listen: …, registry: …)"}},
		{name: "list item keys", yaml: "notifications:\n  endpoints:\n    - name: a\n      url: ftp://x\n      secret: s\n      retries: 3\n",
			want: []string{`4: notifications.endpoints[0].url: "ftp://x": use https`, "6: notifications.endpoints[0].retries: unknown key"}},
		{name: "list item validation", yaml: "notifications:\n  endpoints:\n    - name: a\n      url: ftp://x\n      secret: s\n",
			want: []string{`4: notifications.endpoints[0].url: "ftp://x": use https`}},
		{name: "bad environment variable", yaml: "listen: 127.0.0.1:5000\n", environ: []string{"MOAT_GC_INTERVAL=daily", "PATH=/bin"},
			want: []string{`gc.interval (MOAT_GC_INTERVAL): "daily" is not a duration (e.g. 90s, 24h)`}},
		{name: "environment overrides the file", yaml: "log:\n  level: info\n", environ: []string{"MOAT_LOG_LEVEL=loud"},
			want: []string{`log.level (MOAT_LOG_LEVEL): "loud" is not debug, info, warn or error`}},
		{name: "problem of an environment value", yaml: "gc:\n  interval: 1h\n", environ: []string{"MOAT_GC_GRACE_PERIOD=1s"},
			want: []string{"gc.gracePeriod (MOAT_GC_GRACE_PERIOD): must be at least 1m: pushes in flight need time to send their manifest"}},
		{name: "empty variables are unset", yaml: "data: /var/lib/moat\nadmin:\n  allowedSources: [10.0.0.0/8]\n",
			environ: []string{"MOAT_DATA=", "MOAT_ADMIN_ALLOWED_SOURCES="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := config.Check([]byte(tt.yaml), tt.environ)
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Check() problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// Check agrees with Parse + ApplyEnv + Validate, the steps of
			// Load and serve.
			want := config.FileDefaults()
			err := config.Parse([]byte(tt.yaml), &want)
			if err == nil {
				err = config.ApplyEnv(&want, tt.environ)
			}
			if err == nil {
				err = want.Validate()
			}
			if (err == nil) != (len(problems) == 0) {
				t.Errorf("Check found %d problems, Load and Validate say %v", len(problems), err)
			}
			if err == nil && !reflect.DeepEqual(c, want) {
				t.Errorf("Check() config = %+v\nLoad would give %+v", c, want)
			}
		})
	}
}
