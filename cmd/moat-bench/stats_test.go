package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50 of two is the first", ms(1, 2), 50, time.Millisecond},
		{"p50 of three is the middle", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"p50 of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"a tiny p is the min", ms(1, 2, 3), 0.1, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	ds := []time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	s := Summarize(ds)
	want := Summary{Count: 4, P50: 2, P99: 4, Mean: 2.5, Max: 4}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("Summarize(nil) is not the zero Summary")
	}
}

func TestErrorLogKeepsTheFirstSamples(t *testing.T) {
	var e errorLog
	e.Add(nil)
	for i := range 2 * maxErrorSamples {
		e.Add(&StatusError{Method: "GET", Path: "/v2/", Status: 500 + i})
	}
	if e.Count() != 2*maxErrorSamples {
		t.Errorf("Count = %d, want %d (nil is not an error)", e.Count(), 2*maxErrorSamples)
	}
	if len(e.Samples()) != maxErrorSamples {
		t.Errorf("%d samples, want %d", len(e.Samples()), maxErrorSamples)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1GiB", 1 << 30, true},
		{"16MiB", 16 << 20, true},
		{"4KiB", 4 << 10, true},
		{"64M", 64 << 20, true},
		{"4096", 4096, true},
		{"12B", 12, true},
		{"", 0, false},
		{"-1MiB", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}
