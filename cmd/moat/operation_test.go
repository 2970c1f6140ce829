package main

import (
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/jobs"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func prog(b, tb int64, n, tn int) jobs.Progress {
	return jobs.Progress{Bytes: b, TotalBytes: tb, Blobs: n, TotalBlobs: tn}
}

func TestProgressBarLine(t *testing.T) {
	tests := []struct {
		name string
		p    jobs.Progress
		want string
	}{
		{"start", prog(0, 40<<20, 0, 7), "[                              ] 0 B / 40.0 MiB  0/7 blobs"},
		{"a third by bytes", prog(40<<20/3, 40<<20, 3, 7), "[========>                     ] 13.3 MiB / 40.0 MiB  3/7 blobs"},
		{"done", prog(40<<20, 40<<20, 7, 7), "[==============================] 40.0 MiB / 40.0 MiB  7/7 blobs"},
		{"referrers found on the way overshoot", prog(50, 40, 5, 4), "[==============================] 50 B / 40 B  5/4 blobs"},
		{"purge counts only", prog(0, 0, 1, 4), "[======>                       ] 1/4 deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProgressBar(nil, false, time.Now)
			if got := p.line(tt.p); got != tt.want {
				t.Errorf("line = %q\n  want %q", got, tt.want)
			}
		})
	}
}

func TestProgressBarOnATerminal(t *testing.T) {
	var b strings.Builder
	clock := newFakeClock()
	p := newProgressBar(&b, true, clock.now)
	p.update(prog(0, 0, 0, 0)) // nothing known: nothing drawn
	p.update(prog(0, 2048, 0, 2))
	p.update(prog(0, 2048, 0, 2)) // unchanged: not redrawn
	p.update(prog(1024, 2048, 1, 2))
	p.update(prog(2048, 2048, 2, 2))
	p.finish(true)
	want := "\r[                              ] 0 B / 2.0 KiB  0/2 blobs" +
		"\r[==============>               ] 1.0 KiB / 2.0 KiB  1/2 blobs" +
		"\r[==============================] 2.0 KiB / 2.0 KiB  2/2 blobs\n"
	if b.String() != want {
		t.Errorf("terminal output:\n%q\nwant\n%q", b.String(), want)
	}
	// A shorter line wipes the end of the longer one before it.
	b.Reset()
	p = newProgressBar(&b, true, clock.now)
	p.update(prog(0, 2<<20, 0, 10))
	p.update(prog(0, 0, 1, 2))
	if !strings.HasSuffix(b.String(), "1/2 deleted"+strings.Repeat(" ", len("[                              ] 0 B / 2.0 MiB  0/10 blobs")-len("[===============>              ] 1/2 deleted"))) {
		t.Errorf("no padding: %q", b.String())
	}
}

func TestProgressBarInALog(t *testing.T) {
	var b strings.Builder
	clock := newFakeClock()
	p := newProgressBar(&b, false, clock.now)
	p.update(prog(0, 100, 0, 4)) // within the first second: not printed
	clock.add(1100 * time.Millisecond)
	p.update(prog(50, 100, 2, 4)) // printed
	clock.add(200 * time.Millisecond)
	p.update(prog(75, 100, 3, 4)) // too soon
	clock.add(time.Second)
	p.update(prog(75, 100, 3, 4)) // printed: a change not yet shown
	p.update(prog(100, 100, 4, 4))
	p.finish(true) // the last state
	want := "[==============>               ] 50 B / 100 B  2/4 blobs\n" +
		"[=====================>        ] 75 B / 100 B  3/4 blobs\n" +
		"[==============================] 100 B / 100 B  4/4 blobs\n"
	if b.String() != want {
		t.Errorf("log output:\n%s\nwant\n%s", b.String(), want)
	}

	// A quick success prints one line; a quick failure nothing.
	b.Reset()
	p = newProgressBar(&b, false, clock.now)
	p.update(prog(100, 100, 4, 4))
	p.finish(true)
	if b.String() != "[==============================] 100 B / 100 B  4/4 blobs\n" {
		t.Errorf("quick success: %q", b.String())
	}
	b.Reset()
	p = newProgressBar(&b, false, clock.now)
	p.update(prog(0, 100, 0, 4))
	p.finish(false)
	if b.String() != "" {
		t.Errorf("quick failure: %q", b.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 12900000: "12.3 MiB", 5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
