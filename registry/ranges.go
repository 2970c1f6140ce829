package registry

import (
	"errors"
	"net/textproto"
	"strconv"
	"strings"
)

var errBadRange = errors.New("malformed range")

// parseContentRange parses the Content-Range of an upload chunk. OCI
// clients send "<start>-<end>"; "bytes <start>-<end>/<total|*>" and
// "bytes=<start>-<end>" are accepted too. end is inclusive.
func parseContentRange(s string) (start, end int64, err error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "bytes"); ok {
		s = strings.TrimLeft(rest, " =")
		if i := strings.IndexByte(s, '/'); i >= 0 {
			s = s[:i]
		}
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, errBadRange
	}
	start, err1 := parseOffset(a)
	end, err2 := parseOffset(b)
	if err1 != nil || err2 != nil || end < start {
		return 0, 0, errBadRange
	}
	return start, end, nil
}

// parseOffset parses a non-negative decimal without sign or spaces.
func parseOffset(s string) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, errBadRange
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errBadRange
	}
	return n, nil
}

// checkRange validates a Range header of a blob GET against the blob size:
// "bytes=" then one or more of "a-b", "a-" or "-n". Following RFC 9110
// §14.2, it reports ignore for a range unit other than bytes (the whole
// blob is served) and skips empty list elements. It returns errBadRange
// for a malformed header and for one of which no range is satisfiable.
func checkRange(h string, size int64) (ignore bool, err error) {
	unit, spec, ok := strings.Cut(h, "=")
	if !ok {
		return false, errBadRange
	}
	if unit != "bytes" {
		return true, nil
	}
	satisfiable := false
	for part := range strings.SplitSeq(spec, ",") {
		// Trim as http.ServeContent does (ASCII space, tab, CR, LF only),
		// so that nothing accepted here is a range it refuses.
		part = textproto.TrimString(part)
		if part == "" {
			continue
		}
		a, b, ok := strings.Cut(part, "-")
		if !ok {
			return false, errBadRange
		}
		if a == "" {
			n, err := parseOffset(b)
			if err != nil {
				return false, errBadRange
			}
			if n > 0 && size > 0 {
				satisfiable = true
			}
			continue
		}
		start, err := parseOffset(a)
		if err != nil {
			return false, errBadRange
		}
		if b != "" {
			end, err := parseOffset(b)
			if err != nil || end < start {
				return false, errBadRange
			}
		}
		if start < size {
			satisfiable = true
		}
	}
	if !satisfiable {
		return false, errBadRange
	}
	return false, nil
}
