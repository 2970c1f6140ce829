package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

func (a *app) jsonOutput() bool { return a.output == outputJSON }

// printJSON prints an admin API answer as the server sent it, indented.
func (a *app) printJSON(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("the server answered invalid JSON: %v", err)
	}
	buf.WriteByte('\n')
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

// printValue prints a value the CLI put together (several answers joined)
// as indented JSON.
func (a *app) printValue(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.printJSON(b)
}

// table writes aligned columns with a header row.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row adds a row. Empty cells show as "-"; control characters and tabs in
// values (which come from the server and may come from anyone who can
// send it a username) are replaced so they cannot break the columns or
// drive the terminal.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, cell(c))
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || (unicode.IsPrint(r) && !unicode.IsSpace(r)) {
			return r
		}
		if unicode.IsSpace(r) {
			return ' '
		}
		return '?'
	}, s)
}

// yesNo renders a bool for a table.
func yesNo(b bool) string { return strconv.FormatBool(b) }

// when renders a time for a table (UTC, seconds).
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// expires renders an optional expiry.
func expires(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return when(*t)
}

// arrayOrEmpty is raw, or [] when the field was absent or null.
func arrayOrEmpty(raw json.RawMessage) []byte {
	if len(raw) == 0 || string(raw) == "null" {
		return []byte("[]")
	}
	return raw
}
