package main

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted:
// the smallest value with at least p % of the values at or below it. It
// is 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summary describes a set of latencies, in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P99   float64 `json:"p99Ms"`
	Mean  float64 `json:"meanMs"`
	Max   float64 `json:"maxMs"`
}

// Summarize sorts ds in place and describes it.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	var total time.Duration
	for _, d := range ds {
		total += d
	}
	return Summary{
		Count: len(ds),
		P50:   ms(Percentile(ds, 50)),
		P99:   ms(Percentile(ds, 99)),
		Mean:  ms(total / time.Duration(len(ds))),
		Max:   ms(ds[len(ds)-1]),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// errorLog counts failed operations and keeps the first few messages.
type errorLog struct {
	n       atomic.Int64
	mu      sync.Mutex
	samples []string
}

const maxErrorSamples = 5

// Add counts err (nil is not counted).
func (e *errorLog) Add(err error) {
	if err == nil {
		return
	}
	if e.n.Add(1) > maxErrorSamples {
		return
	}
	e.mu.Lock()
	e.samples = append(e.samples, err.Error())
	e.mu.Unlock()
}

// Count is the number of errors added.
func (e *errorLog) Count() int64 { return e.n.Load() }

// Samples are the first errors' messages.
func (e *errorLog) Samples() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.samples)
}
