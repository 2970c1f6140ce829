package jobs

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parseSchedule parses a standard 5-field cron expression or a descriptor
// (@daily, @hourly, @every 1h).
func parseSchedule(spec string) (cron.Schedule, error) {
	// cron.ParseStandard panics on a time zone with nothing after it
	// ("TZ=UTC"): it slices up to the space that ends the zone.
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, errors.New("a time zone needs a schedule after it")
	}
	return cron.ParseStandard(spec)
}

// Schedule runs scheduled tasks until ctx ends. It sleeps until the next
// task is due, and re-reads the tasks when Wake is called.
func (r *Runner) Schedule(ctx context.Context) {
	type entry struct {
		spec string
		next time.Time
	}
	entries := map[string]entry{}
	running := map[string]string{} // task → operation id
	for {
		tasks, err := r.dir.Tasks(ctx, "")
		if err != nil {
			r.opts.Logger.Warn("reading tasks", "err", err)
		}
		// Schedules are in UTC (moat task --schedule): cron reads them in
		// the zone of the time it is given.
		t0 := now().UTC()
		var wakeAt time.Time
		seen := map[string]bool{}
		for _, t := range tasks {
			if t.Schedule == "" || !t.Enabled {
				continue
			}
			key := t.Service + "/" + t.Name
			seen[key] = true
			sched, err := parseSchedule(t.Schedule)
			if err != nil {
				continue
			}
			e, ok := entries[key]
			if !ok || e.spec != t.Schedule {
				e = entry{spec: t.Schedule, next: sched.Next(t0)}
			}
			if e.next.IsZero() {
				// It never fires ("0 0 30 2 *"; CheckTask refuses those):
				// the zero time would be due on every pass.
				entries[key] = e
				continue
			}
			if !e.next.After(t0) {
				if id, busy := running[key]; busy {
					if op, ok := r.ops.get(id); ok && op.Status == StatusRunning {
						e.next = sched.Next(t0) // still running: skip this turn
						entries[key] = e
						continue
					}
				}
				op, err := r.RunTask(ctx, t.Service, t.Name)
				if err != nil {
					r.opts.Logger.Warn("starting a scheduled task", "task", key, "err", err)
				} else {
					running[key] = op.ID
				}
				e.next = sched.Next(t0)
			}
			entries[key] = e
			if !e.next.IsZero() && (wakeAt.IsZero() || e.next.Before(wakeAt)) {
				wakeAt = e.next
			}
		}
		for key := range entries {
			if !seen[key] {
				delete(entries, key)
			}
		}
		wait := time.Hour
		if !wakeAt.IsZero() {
			wait = wakeAt.Sub(now())
		}
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-r.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}
