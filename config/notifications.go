package config

import (
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// validate checks notifications; each error names its key path.
func (n NotificationsConfig) validate() []error {
	var errs []error
	names := map[string]bool{}
	for i, ep := range n.Endpoints {
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("notifications.endpoints[%d].%s: %s", i, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case ep.Name == "":
			bad("name", "must be set")
		case names[ep.Name]:
			bad("name", "%q is used by another endpoint", ep.Name)
		}
		names[ep.Name] = true
		if err := checkWebhookURL(ep.URL); err != nil {
			bad("url", "%v", err)
		}
		switch {
		case ep.Secret == "" && ep.SecretFile == "":
			bad("secret", "must be set (or secretFile): receivers check the X-Moat-Signature HMAC with it")
		case ep.Secret != "" && ep.SecretFile != "":
			bad("secretFile", "cannot be combined with secret")
		}
		for _, k := range slices.Sorted(maps.Keys(ep.Headers)) {
			if !validHeaderName(k) {
				bad("headers", "%q is not a header name", k)
			}
			switch http.CanonicalHeaderKey(k) {
			case "Content-Type", "X-Moat-Signature", "X-Moat-Delivery-Attempt", "Host", "Content-Length":
				bad("headers", "%s is set by moat", k)
			}
		}
		for j, g := range ep.Repositories {
			if g == "" {
				bad(fmt.Sprintf("repositories[%d]", j), "an empty pattern matches nothing")
			}
		}
		if ep.RepositoryRegexp != "" {
			if _, err := regexp.Compile(ep.RepositoryRegexp); err != nil {
				bad("repositoryRegexp", "%v", err)
			}
		}
		for j, a := range ep.Actions {
			if a != "push" && a != "delete" {
				bad(fmt.Sprintf("actions[%d]", j), "%q is not push or delete", a)
			}
		}
		if ep.Timeout < 0 {
			bad("timeout", "must not be negative")
		}
		if ep.MaxAttempts < 0 || ep.MaxAttempts > 100 {
			bad("maxAttempts", "must be between 1 and 100 (0: 5)")
		}
		if ep.Backoff < 0 {
			bad("backoff", "must not be negative")
		}
		if ep.QueueSize < 0 || ep.QueueSize > 1<<20 {
			bad("queueSize", "must be between 1 and 1048576 (0: 1024)")
		}
	}
	return errs
}

// checkWebhookURL accepts https URLs, and http ones on a loopback
// address; never a link-local, multicast or unspecified address (the
// dialer checks resolved names too).
func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		// Never quote the credentials: the whole user part goes, as a
		// token is often the user name (https://TOKEN@host/).
		redacted := *u
		redacted.User = url.User("xxxxx")
		return fmt.Errorf("%q holds credentials; put them in headers", redacted.String())
	}
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not a URL like https://hooks.example.com/moat", s)
	}
	host := u.Hostname()
	a, ipErr := netip.ParseAddr(host)
	if ipErr == nil {
		a = a.Unmap()
	}
	switch u.Scheme {
	case "https":
	case "http":
		if host != "localhost" && (ipErr != nil || !a.IsLoopback()) {
			return fmt.Errorf("%q: use https (http only on a loopback address)", s)
		}
	default:
		return fmt.Errorf("%q: use https", s)
	}
	if ipErr == nil && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsMulticast() || a.IsUnspecified()) {
		return fmt.Errorf("%q: link-local, multicast and unspecified addresses are refused", s)
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token.
func validHeaderName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	})
}

// validate checks tracing.
func (t TracingConfig) validate() []error {
	var errs []error
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("tracing.endpoint: %q is not an OTLP/HTTP URL like http://localhost:4318/v1/traces", t.Endpoint))
		}
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("tracing.sampleRatio: %v is not between 0 and 1", t.SampleRatio))
	}
	for _, k := range slices.Sorted(maps.Keys(t.Headers)) {
		if !validHeaderName(k) {
			errs = append(errs, fmt.Errorf("tracing.headers: %q is not a header name", k))
		}
	}
	return errs
}
