package jobs

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

// fakeClock is the scheduler's clock in tests. Each turn of Schedule's
// loop reads it twice (the time it plans from, then the wait until the
// next task), so the number of reads tells the test that a turn is done.
type fakeClock struct {
	mu    sync.Mutex
	at    time.Time
	reads int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return c.at
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.at = c.at.Add(d)
	c.mu.Unlock()
}

// waitReads waits until the clock has been read n times.
func (c *fakeClock) waitReads(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		reads := c.reads
		c.mu.Unlock()
		if reads >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduler read the clock %d times, want %d", reads, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// startScheduler runs Schedule on clk until the test ends. Only the
// scheduler reads the clock: copy tasks do not (purge does).
func startScheduler(t *testing.T, h *harness, clk *fakeClock) {
	saved := now
	now = clk.Now
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.runner.Schedule(sctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		now = saved
	})
}

// lastOperation is the operation of a task's last run ("" for none).
func (h *harness) lastOperation(service, task string) string {
	h.t.Helper()
	tk, err := h.dir.GetTask(ctx, service, task)
	h.must(err)
	if tk.LastRun == nil {
		return ""
	}
	return tk.LastRun.Operation
}

// TestSchedule: enabled tasks run when their schedule is due — an
// `@every` interval and a cron line, read in UTC whatever the clock's
// zone — once per due time; disabled tasks and tasks without a schedule
// never run.
func TestSchedule(t *testing.T) {
	h := newHarness(t)
	h.tasksService("nightly", "AcrPush", "/")
	h.image("app", "1", "content", nil)
	copyTask := func(name, schedule string) auth.Task {
		return auth.Task{Service: "nightly", Name: name, Type: auth.TaskCopy, Schedule: schedule,
			Copy: &auth.CopyTask{Source: "app:1", Target: "mirror/" + name + ":1"}}
	}
	h.putTask(copyTask("every", "@every 1m"))
	h.putTask(copyTask("cron", "0 3 * * *"))
	h.putTask(copyTask("off", "@every 1m"))
	h.putTask(copyTask("manual", ""))

	// 02:58 UTC, on a clock in UTC+5.
	clk := &fakeClock{at: time.Date(2026, 3, 1, 2, 58, 0, 0, time.UTC).In(time.FixedZone("UTC+5", 5*3600))}
	startScheduler(t, h, clk)
	reads := 2
	turn := func(d time.Duration) map[string]string {
		t.Helper()
		clk.waitReads(t, reads)
		clk.advance(d)
		h.runner.Wake()
		reads += 2
		clk.waitReads(t, reads)
		runs := map[string]string{}
		for _, name := range []string{"every", "cron", "off", "manual"} {
			runs[name] = h.lastOperation("nightly", name)
			if runs[name] != "" {
				// A run still going when its task is due again makes the
				// scheduler skip that turn: let it end.
				h.wait(runs[name])
			}
		}
		return runs
	}

	r1 := turn(0) // 02:58: nothing is due
	for name, op := range r1 {
		if op != "" {
			t.Errorf("02:58: %s ran before it was due", name)
		}
	}
	r2 := turn(time.Minute) // 02:59
	if r2["every"] == "" || r2["cron"] != "" {
		t.Errorf("02:59: runs %v, want every only", r2)
	}
	r3 := turn(0) // 02:59 again: not due again
	if r3["every"] != r2["every"] {
		t.Errorf("02:59: every ran twice")
	}
	r4 := turn(time.Minute) // 03:00 UTC
	if r4["every"] == r3["every"] || r4["cron"] == "" {
		t.Errorf("03:00 UTC: runs %v, want every again and cron (0 3 * * * is UTC)", r4)
	}
	if r4["off"] != "" || r4["manual"] != "" {
		t.Errorf("a disabled task or one without a schedule ran: %v", r4)
	}
	for _, name := range []string{"every", "cron"} {
		if op, _ := h.runner.Operation(r4[name]); op.Status != StatusSucceeded {
			t.Errorf("%s: %s %s", name, op.Status, op.Error)
		}
	}
	if got := h.tags("mirror/every"); len(got) != 1 {
		t.Errorf("mirror/every tags %q", got)
	}

	// A schedule changed to one not due yet takes effect at once.
	h.putTask(copyTask("every", "@every 1h"))
	r5 := turn(time.Minute) // 03:01
	if r5["every"] != r4["every"] {
		t.Error("03:01: every ran on its old schedule")
	}
}

// TestScheduleNeverFires: a stored schedule that never fires (30
// February; CheckTask refuses it, but one may predate that check) does
// not run, where the zero time cron gives for it would be due on every
// pass.
func TestScheduleNeverFires(t *testing.T) {
	h := newHarness(t)
	h.tasksService("nightly", "AcrPush", "/")
	h.image("app", "1", "content", nil)
	for name, schedule := range map[string]string{"feb30": "0 0 30 2 *", "hourly": "@every 1h"} {
		_, _, err := h.dir.PutTask(ctx, auth.Task{Service: "nightly", Name: name, Type: auth.TaskCopy, Schedule: schedule, Enabled: true,
			Copy: &auth.CopyTask{Source: "app:1", Target: "mirror/" + name + ":1"}})
		h.must(err)
	}
	clk := &fakeClock{at: time.Date(2026, 3, 1, 2, 58, 0, 0, time.UTC)}
	startScheduler(t, h, clk)
	// Each pass plans from the clock, then reads it for the wait until
	// the hourly task: two reads.
	for reads := 2; reads <= 6; reads += 2 {
		clk.waitReads(t, reads)
		if op := h.lastOperation("nightly", "feb30"); op != "" {
			t.Fatalf("pass %d: a schedule that never fires ran (operation %s)", reads/2, op)
		}
		clk.advance(time.Minute)
		h.runner.Wake()
	}
}
