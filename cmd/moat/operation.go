package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/jobs"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

const operationsPath = "/operations"

// pollInterval is how often a waiting command asks for its operation.
const pollInterval = 200 * time.Millisecond

// maxPollFailures is how many polls in a row may fail (a restarting
// proxy, a dropped connection) before waiting gives up.
const maxPollFailures = 5

func (a *app) newOperationCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "operation",
		Aliases: []string{"operations"},
		Short:   "Follow long-running operations (imports, task runs)",
	}
	var wait bool
	show := &cobra.Command{
		Use:   "show ID [--wait]",
		Short: "Show an operation; --wait follows it to its end with a progress bar",
		Args:  nameArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var op jobs.Operation
			raw, err := c.get(cmd.Context(), resourcePath(operationsPath, args[0]), &op)
			if err != nil {
				return err
			}
			if wait && op.Status == jobs.StatusRunning {
				if op, raw, err = a.waitOperation(cmd.Context(), c, op.ID); err != nil {
					return err
				}
			}
			if a.jsonOutput() {
				if err := a.printJSON(raw); err != nil {
					return err
				}
			} else if err := a.printOperations([]jobs.Operation{op}); err != nil {
				return err
			}
			if wait && op.Status == jobs.StatusFailed {
				return fmt.Errorf("operation %s failed: %s", op.ID, oneLine(op.Error))
			}
			return nil
		},
	}
	show.Flags().BoolVar(&wait, "wait", false, "wait until the operation ends; exit non-zero when it fails")
	cmd.AddCommand(show)
	return cmd
}

func (a *app) printOperations(ops []jobs.Operation) error {
	t := newTable(a.stdout, "ID", "KIND", "STATUS", "SOURCE", "TARGET", "PROGRESS", "DIGEST", "ERROR")
	for _, op := range ops {
		t.row(op.ID, op.Kind, op.Status, op.Source, op.Target, progressText(op.Progress), op.Digest, oneLine(op.Error))
	}
	return t.flush()
}

// progressText is "12.3 MiB / 40.0 MiB  3/7 blobs" for a copy, or
// "3/7 deleted" when no bytes are counted (a purge counts deletions).
func progressText(p jobs.Progress) string {
	if p.TotalBlobs == 0 && p.Blobs == 0 {
		return ""
	}
	counts := strconv.Itoa(p.Blobs) + "/" + strconv.Itoa(p.TotalBlobs)
	if p.TotalBytes == 0 {
		return counts + " deleted"
	}
	return humanBytes(p.Bytes) + " / " + humanBytes(p.TotalBytes) + "  " + counts + " blobs"
}

// waitOperation polls an operation until it is no longer Running, drawing
// its progress on stderr. It returns the last answer; a failed operation
// is not an error here, the caller words it. An interrupt (Ctrl-C) stops
// the waiting, not the operation.
func (a *app) waitOperation(ctx context.Context, c *client, id string) (jobs.Operation, []byte, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	bar := newProgressBar(a.stderr, isTerminal(a.stderr), time.Now)
	succeeded := false
	defer func() { bar.finish(succeeded) }()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	interrupted := func() error {
		return fmt.Errorf("stopped waiting; operation %s goes on in the server (moat operation show %s --wait)", id, id)
	}
	failures := 0
	for {
		var op jobs.Operation
		raw, err := c.get(ctx, resourcePath(operationsPath, id), &op)
		switch {
		case ctx.Err() != nil:
			return op, nil, interrupted()
		case isStatus(err, http.StatusNotFound):
			return op, nil, fmt.Errorf("operation %s is gone: the server keeps operations for a day and forgets them when it restarts", id)
		case err != nil:
			var ae *apiError
			if failures++; failures >= maxPollFailures || (errors.As(err, &ae) && ae.Status < 500) {
				return op, nil, err
			}
		default:
			failures = 0
			bar.update(op.Progress)
			if op.Status != jobs.StatusRunning {
				succeeded = op.Status == jobs.StatusSucceeded
				return op, raw, nil
			}
		}
		select {
		case <-ctx.Done():
			return op, nil, interrupted()
		case <-tick.C:
		}
	}
}

// isTerminal reports whether w is a terminal (so that a progress bar can
// redraw itself in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws an operation's progress: on a terminal one line
// redrawn in place with \r; elsewhere (a CI log) a line per change at
// most once a second, the first a second after the start, and the last
// state when the operation succeeded — so a quick operation prints one
// line, and a failed one only its error.
type progressBar struct {
	w   io.Writer
	tty bool
	now func() time.Time

	cur, shown jobs.Progress
	drawn      bool      // something was printed
	lastAt     time.Time // of the last line, or the start
	width      int       // of the line on the terminal
}

func newProgressBar(w io.Writer, tty bool, now func() time.Time) *progressBar {
	return &progressBar{w: w, tty: tty, now: now, lastAt: now()}
}

// barWidth is the number of cells between the brackets.
const barWidth = 30

func (p *progressBar) update(pr jobs.Progress) {
	p.cur = pr
	if pr.TotalBlobs == 0 && pr.Blobs == 0 {
		return // nothing known yet: a failure to resolve prints only its error
	}
	if p.drawn && pr == p.shown {
		return
	}
	if !p.tty && p.now().Sub(p.lastAt) < time.Second {
		return
	}
	p.draw()
}

// finish ends the bar: the last state if it was not shown (after a
// success, or on a terminal), and the end of the line.
func (p *progressBar) finish(succeeded bool) {
	if (succeeded || p.tty && p.drawn) && (!p.drawn || p.cur != p.shown) && (p.cur.TotalBlobs > 0 || p.cur.Blobs > 0) {
		p.draw()
	}
	if p.tty && p.drawn {
		io.WriteString(p.w, "\n")
	}
}

func (p *progressBar) draw() {
	line := p.line(p.cur)
	if p.tty {
		pad := max(p.width-len(line), 0)
		io.WriteString(p.w, "\r"+line+strings.Repeat(" ", pad))
		p.width = len(line)
	} else {
		io.WriteString(p.w, line+"\n")
	}
	p.shown, p.drawn, p.lastAt = p.cur, true, p.now()
}

// line renders "[=========>      ] 12.3 MiB / 40.0 MiB  3/7 blobs".
func (p *progressBar) line(pr jobs.Progress) string {
	var frac float64
	switch {
	case pr.TotalBytes > 0:
		frac = float64(pr.Bytes) / float64(pr.TotalBytes)
	case pr.TotalBlobs > 0:
		frac = float64(pr.Blobs) / float64(pr.TotalBlobs)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		if filled > 0 {
			bar = bar[:filled-1] + ">"
		}
		bar += strings.Repeat(" ", barWidth-filled)
	}
	return "[" + bar + "] " + progressText(pr)
}

// humanBytes renders a size in binary units: 512 B, 1.5 KiB, 12.3 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}
