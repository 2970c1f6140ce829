package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Metric is one figure of a run.
type Metric struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	// Higher is true when a larger value is better.
	Higher bool `json:"higherIsBetter"`
}

// Result is one scenario run against one subject (a registry or a
// ceiling).
type Result struct {
	Scenario     string   `json:"scenario"`
	Subject      string   `json:"subject"`
	Ops          int      `json:"ops"`
	Errors       int64    `json:"errors"`
	ErrorSamples []string `json:"errorSamples,omitempty"`
	Seconds      float64  `json:"seconds"`
	Latency      *Summary `json:"latency,omitempty"`
	Metrics      []Metric `json:"metrics"`
	// BusyBefore is the fraction of the CPUs other work kept busy just
	// before the run, and Load1 the 1-minute load average after it:
	// other work on the machine skews a figure.
	BusyBefore float64 `json:"busyBefore"`
	Load1      float64 `json:"load1,omitempty"`
}

// Metric returns the named metric's value (0 when absent).
func (r *Result) Metric(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

func (r *Result) add(name, unit string, v float64, higher bool) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Unit: unit, Value: v, Higher: higher})
}

func (r *Result) setErrors(e *errorLog) {
	r.Errors = e.Count()
	r.ErrorSamples = e.Samples()
}

// run is what a pool of workers measured.
type run struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration
}

// runN runs op(i) for i in [0, n) on conc workers and times each call.
// A failed op is counted in errs and its latency is not recorded.
func runN(ctx context.Context, conc, n int, errs *errorLog, op func(ctx context.Context, i int) error) run {
	var next atomic.Int64
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, n/conc+1)
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					break
				}
				t := time.Now()
				err := op(ctx, i)
				if err != nil {
					errs.Add(err)
					continue
				}
				local = append(local, time.Since(t))
			}
			lats[w] = local
		}()
	}
	wg.Wait()
	return merge(lats, n, time.Since(start))
}

// runFor runs op on conc workers until d has passed.
func runFor(ctx context.Context, conc int, d time.Duration, errs *errorLog, op func(ctx context.Context) error) run {
	lats := make([][]time.Duration, conc)
	var ops atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(deadline) {
					break
				}
				err := op(ctx)
				ops.Add(1)
				if err != nil {
					errs.Add(err)
					continue
				}
				local = append(local, time.Since(t))
			}
			lats[w] = local
		}()
	}
	wg.Wait()
	return merge(lats, int(ops.Load()), time.Since(start))
}

func merge(lats [][]time.Duration, ops int, elapsed time.Duration) run {
	total := 0
	for _, l := range lats {
		total += len(l)
	}
	all := make([]time.Duration, 0, total)
	for _, l := range lats {
		all = append(all, l...)
	}
	return run{ops: ops, elapsed: elapsed, lat: all}
}

// rate is successful ops per second.
func (r run) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.lat)) / r.elapsed.Seconds()
}
