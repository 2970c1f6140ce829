package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuTimes reads the machine's busy and total CPU time from /proc/stat.
func cpuTimes() (busy, total uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat: empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected %q", sc.Text())
	}
	var idle uint64
	for i, s := range fields[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 8 { // guest time is already in user time
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total, nil
}

// cpuBusy is the fraction of all CPUs busy over d.
func cpuBusy(d time.Duration) (float64, error) {
	b0, t0, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b1, t1, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	if t1 == t0 {
		return 0, nil
	}
	return float64(b1-b0) / float64(t1-t0), nil
}

// quietGate holds each run back until the machine is quiet: the bench's
// own servers are idle between runs, so CPU time spent then is other
// work that would skew the figures.
type quietGate struct {
	maxBusy float64       // 0: never wait
	maxWait time.Duration // give up waiting after this long
	log     func(format string, args ...any)
}

// wait blocks until the CPUs are at most maxBusy busy over half a second,
// or maxWait has passed, and returns the last busy fraction.
func (q *quietGate) wait() float64 {
	if q == nil || q.maxBusy <= 0 {
		return 0
	}
	deadline := time.Now().Add(q.maxWait)
	warned := false
	for {
		busy, err := cpuBusy(500 * time.Millisecond)
		if err != nil || busy <= q.maxBusy {
			return busy
		}
		if time.Now().After(deadline) {
			if q.log != nil {
				q.log("the machine is still %.0f %% busy after %s; running anyway", 100*busy, q.maxWait)
			}
			return busy
		}
		if !warned && q.log != nil {
			q.log("waiting for other work on the machine to stop (CPUs %.0f %% busy)", 100*busy)
			warned = true
		}
	}
}
