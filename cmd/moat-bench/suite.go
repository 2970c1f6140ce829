package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Subject names of the ceilings.
const (
	ceilingHead  = "ceiling: fixed-header HEAD"
	ceilingPull  = "ceiling: ServeContent"
	ceilingFsync = "ceiling: fsynced write"
	hashing      = "sha256 hashing"
)

// Suite runs the load scenarios against its targets interleaved:
// scenario by scenario, each time starting with the next target in turn,
// and the ceilings in the same rotation.
type Suite struct {
	Bench   *Bench
	Targets []*Target
	// Ceiling is the ceiling server (nil: no ceilings), and CeilingProc
	// its process.
	Ceiling     *Client
	CeilingProc *Process
	// Workdir holds the fsync ceiling's file.
	Workdir string
	// AfterPushSmall, when set, adds to a target's push-small result
	// (peak RSS).
	AfterPushSmall func(t *Target, res *Result)
	// Progress receives a line per result.
	Progress io.Writer
	// Quiet, when set, holds each run back while other work keeps the
	// machine busy.
	Quiet *quietGate

	results    []Result
	dropFailed bool
}

type subjectRun func(ctx context.Context) []Result

// Run runs the selected load scenarios and returns every result.
func (s *Suite) Run(ctx context.Context) []Result {
	o := s.Bench.opts
	b := s.Bench
	step := 0
	do := func(runs []subjectRun) {
		for i := range runs {
			run := runs[(i+step)%len(runs)]
			busy := s.Quiet.wait()
			for _, r := range run(ctx) {
				r.BusyBefore = busy
				s.record(r)
			}
		}
		step++
	}
	perTarget := func(fn func(ctx context.Context, t *Target) Result) []subjectRun {
		var runs []subjectRun
		for _, t := range s.Targets {
			runs = append(runs, func(ctx context.Context) []Result { return []Result{fn(ctx, t)} })
		}
		return runs
	}
	ceilings := s.Ceiling != nil && o.wants("ceilings")
	if o.wants("push-small") {
		do(perTarget(func(ctx context.Context, t *Target) Result {
			res := b.PushSmall(ctx, t)
			if s.AfterPushSmall != nil {
				s.AfterPushSmall(t, &res)
			}
			return res
		}))
	}
	if o.wants("pull-small") {
		do(perTarget(b.PullSmall))
	}
	if o.wants("head-manifest") {
		for _, c := range o.headConcurrencies() {
			runs := perTarget(func(ctx context.Context, t *Target) Result { return b.HeadManifest(ctx, t, c) })
			if ceilings {
				ceiling := &Target{Name: ceilingHead, Client: s.Ceiling, Proc: s.CeilingProc, smallSeeded: true}
				runs = append(runs, func(ctx context.Context) []Result { return []Result{b.HeadManifest(ctx, ceiling, c)} })
			}
			do(runs)
		}
	}
	if o.wants("push-large") {
		push := func(chunked bool) func(ctx context.Context, t *Target) Result {
			return func(ctx context.Context, t *Target) Result {
				s.beforeLargeWrite()
				return b.PushLarge(ctx, t, chunked)
			}
		}
		runs := perTarget(push(false))
		if ceilings {
			runs = append(runs, func(context.Context) []Result {
				return []Result{FsyncCeiling(s.Workdir, b.large, o.LargePulls, s.beforeLargeWrite), HashRate(b.large.Size())}
			})
		}
		do(runs)
		do(perTarget(push(true)))
	}
	if o.wants("pull-large") {
		runs := perTarget(b.PullLarge)
		if ceilings {
			ceiling := &Target{Name: ceilingPull, Client: s.Ceiling, Proc: s.CeilingProc}
			runs = append(runs, func(ctx context.Context) []Result { return []Result{b.PullCeiling(ctx, ceiling)} })
		}
		do(runs)
	}
	if o.wants("tags-list") {
		for _, n := range o.tagCounts() {
			do(perTarget(func(ctx context.Context, t *Target) Result { return b.TagsList(ctx, t, n) }))
		}
	}
	return s.results
}

// beforeLargeWrite drops the page cache when the options say so; a
// failure (not root) is reported once and the runs go on without.
func (s *Suite) beforeLargeWrite() {
	if !s.Bench.opts.DropCaches || s.dropFailed {
		return
	}
	if err := dropPageCache(); err != nil {
		s.dropFailed = true
		if s.Progress != nil {
			fmt.Fprintf(s.Progress, "  (page cache not dropped before large writes: %v)\n", err)
		}
	}
}

func (s *Suite) record(r Result) {
	r.Load1 = load1()
	s.results = append(s.results, r)
	if s.Progress != nil {
		fmt.Fprintln(s.Progress, progressLine(r))
	}
}

// progressLine is a one-line account of a result.
func progressLine(r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-28s %-28s", r.Scenario, r.Subject)
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, " %s=%s", m.Name, formatValue(m.Value))
	}
	fmt.Fprintf(&b, " errors=%d busy-before=%.0f%% load=%.1f", r.Errors, 100*r.BusyBefore, r.Load1)
	if len(r.ErrorSamples) > 0 {
		fmt.Fprintf(&b, " first error: %s", r.ErrorSamples[0])
	}
	return b.String()
}
