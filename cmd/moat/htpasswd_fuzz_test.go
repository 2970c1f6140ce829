package main

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseHtpasswd: any htpasswd file parses without a panic into
// entries with a user name free of ':' and a bcrypt hash, in line order,
// with at most one entry or warning per line.
func FuzzParseHtpasswd(f *testing.F) {
	hash := "$2y$05$" + strings.Repeat("a", 53)
	for _, s := range []string{
		"alice:" + hash + "\n",
		"# comment\n\nbob:" + hash + "\r\ncarol:{SHA}abc\n",
		"dave:$apr1$x$y\n:" + hash + "\nnocolon\n  eve : " + hash + "  \n",
		"frank:" + hash + ":extra\n",
		strings.Repeat("x", 70<<10) + "\n",
		"\x00:\xff\n\xfe:" + hash,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, warnings, err := parseHtpasswd(bytes.NewReader(b))
		if err != nil {
			return // a line over the scanner's limit
		}
		lines := bytes.Count(b, []byte("\n")) + 1
		if len(entries)+len(warnings) > lines {
			t.Fatalf("%d entries and %d warnings from %d lines", len(entries), len(warnings), lines)
		}
		last := 0
		for _, e := range entries {
			if e.user == "" || strings.Contains(e.user, ":") || !isBcrypt(e.hash) {
				t.Fatalf("entry %+v", e)
			}
			if e.line <= last || e.line > lines {
				t.Fatalf("entry on line %d after line %d (of %d)", e.line, last, lines)
			}
			last = e.line
		}
	})
}
