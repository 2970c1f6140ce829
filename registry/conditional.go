package registry

import (
	"net/textproto"
	"strings"
)

// Conditional requests (RFC 9110 §13). The registry's ETags are strong:
// `"<digest>"`. The parsing follows net/http's, so that what the registry
// decides itself agrees with what http.ServeContent decides for a blob.

// scanETag reads the entity tag at the start of s (after optional
// whitespace): `"…"` or `W/"…"`. It returns the tag as written and what
// follows it, or "" when s does not start with one.
func scanETag(s string) (etag, rest string) {
	s = textproto.TrimString(s)
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s[start:]) < 2 || s[start] != '"' {
		return "", ""
	}
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0x21 || c >= 0x23 && c <= 0x7e || c >= 0x80:
		case c == '"':
			return s[:i+1], s[i+1:]
		default:
			return "", ""
		}
	}
	return "", ""
}

// ifNoneMatchHits reports whether an If-None-Match header h names etag,
// compared weakly (a W/ prefix does not matter), or is "*", which any
// existing representation matches (RFC 9110 §13.1.2).
func ifNoneMatchHits(h, etag string) bool {
	for {
		h = textproto.TrimString(h)
		if h == "" {
			return false
		}
		if h[0] == ',' {
			h = h[1:]
			continue
		}
		if h[0] == '*' {
			return true
		}
		var tag string
		if tag, h = scanETag(h); tag == "" {
			return false
		}
		if strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
}

// ifRangeHolds reports whether a Range is to be honoured given the
// If-Range header h: when h is absent, or names etag by strong comparison
// (RFC 9110 §13.1.5). A date never holds, as blobs have no modification
// time (http.ServeContent then ignores the Range too).
func ifRangeHolds(h, etag string) bool {
	if h == "" {
		return true
	}
	tag, _ := scanETag(h)
	return tag != "" && tag == etag
}
