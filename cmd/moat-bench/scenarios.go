package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Repositories the scenarios use.
const (
	repoSmall = "bench/small"
	repoLarge = "bench/large"
)

func repoTags(n int) string { return fmt.Sprintf("bench/tags-%d", n) }

// Target is a registry under test, with what has been pushed to it.
type Target struct {
	Name   string
	Client *Client
	// Proc is the server's process when the bench started it: its CPU
	// time is measured.
	Proc *Process

	smallSeeded bool
	largePushed bool
}

// Bench holds the content every target gets and runs the scenarios.
type Bench struct {
	opts   Options
	images []smallImage
	large  *largeBlob // monolithic push, pulled by pull-large
	chunk  *largeBlob // chunked push
	path   string     // the large blob's file

	// Phases, when set, is told when each measured phase starts and
	// ends (moat-bench profile takes a CPU profile of each).
	Phases Phases
}

// Phases observes the measured phases of the scenarios.
type Phases interface {
	Start(name string)
	Stop(name string)
}

// phase starts a measured phase and returns the function that ends it.
func (b *Bench) phase(name string) func() {
	if b.Phases == nil {
		return func() {}
	}
	b.Phases.Start(name)
	return func() { b.Phases.Stop(name) }
}

// NewBench generates the content: the small images, and the large blob
// file under workdir when a large scenario will run.
func NewBench(opts Options, workdir string) (*Bench, error) {
	b := &Bench{opts: opts, images: newSmallImages(opts.N, 1)}
	if opts.wants("push-large") || opts.wants("pull-large") || opts.wants("ceilings") {
		b.path = workdir + "/large.bin"
		if err := writeLargeFile(b.path, opts.LargeSize, 2); err != nil {
			return nil, fmt.Errorf("writing the large blob: %w", err)
		}
		var err error
		if b.large, err = openLargeBlob(b.path, 0); err != nil {
			return nil, err
		}
		if b.chunk, err = openLargeBlob(b.path, 1); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Close releases the large blob files.
func (b *Bench) Close() {
	if b.large != nil {
		b.large.Close()
		b.chunk.Close()
	}
}

// serverCPU starts measuring the server's CPU time; the function it
// returns reports the time used since (false without a process).
func (t *Target) serverCPU() func() (time.Duration, bool) {
	if t.Proc == nil {
		return func() (time.Duration, bool) { return 0, false }
	}
	before, err := t.Proc.CPUTime()
	return func() (time.Duration, bool) {
		after, err2 := t.Proc.CPUTime()
		return after - before, err == nil && err2 == nil
	}
}

// addCPUPerOp adds the server's CPU time per successful operation.
func addCPUPerOp(res *Result, cpu func() (time.Duration, bool), ops int) {
	if d, ok := cpu(); ok && ops > 0 {
		res.add("server CPU/op", "µs", float64(d.Microseconds())/float64(ops), false)
	}
}

// addCPU adds the server's CPU time.
func addCPU(res *Result, cpu func() (time.Duration, bool)) {
	if d, ok := cpu(); ok {
		res.add("server CPU", "s", d.Seconds(), false)
	}
}

// pushImage pushes the config and layer (POST + monolithic PUT each) and
// then the manifest by tag.
func pushImage(ctx context.Context, c *Client, repo string, img *smallImage) error {
	for _, blob := range []struct {
		d string
		b []byte
	}{{img.LayerDigest, img.Layer}, {img.CfgDigest, img.Config}} {
		if err := c.PushBlob(ctx, repo, blob.d, int64(len(blob.b)), func() io.Reader { return bytes.NewReader(blob.b) }); err != nil {
			return err
		}
	}
	return c.PutManifest(ctx, repo, img.Tag, mediaManifest, img.Manifest)
}

// pullImage pulls a manifest by tag and every blob it names, verifying
// each digest.
func pullImage(ctx context.Context, c *Client, repo string, img *smallImage) error {
	raw, err := c.GetManifest(ctx, repo, img.Tag, img.Digest)
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", img.Tag, err)
	}
	for _, d := range append([]descriptor{m.Config}, m.Layers...) {
		if err := c.GetBlob(ctx, repo, d.Digest, d.Size); err != nil {
			return err
		}
	}
	return nil
}

// PushSmall pushes every small image with opts.Concurrency workers.
func (b *Bench) PushSmall(ctx context.Context, t *Target) Result {
	res := Result{Scenario: "push-small", Subject: t.Name}
	var errs errorLog
	done := b.phase("push-small")
	cpu := t.serverCPU()
	r := runN(ctx, b.opts.Concurrency, len(b.images), &errs, func(ctx context.Context, i int) error {
		return pushImage(ctx, t.Client, repoSmall, &b.images[i])
	})
	done()
	t.smallSeeded = true
	res = b.imagesResult(res, r, &errs)
	addCPUPerOp(&res, cpu, len(r.lat))
	return res
}

func (b *Bench) imagesResult(res Result, r run, errs *errorLog) Result {
	s := Summarize(r.lat)
	res.Ops, res.Seconds, res.Latency = r.ops, r.elapsed.Seconds(), &s
	res.setErrors(errs)
	res.add("images/s", "images/s", r.rate(), true)
	res.add("p50", "ms", s.P50, false)
	res.add("p99", "ms", s.P99, false)
	return res
}

// seedSmall pushes the small images, untimed, unless they are there.
func (b *Bench) seedSmall(ctx context.Context, t *Target) error {
	if t.smallSeeded {
		return nil
	}
	var errs errorLog
	runN(ctx, b.opts.Concurrency, len(b.images), &errs, func(ctx context.Context, i int) error {
		return pushImage(ctx, t.Client, repoSmall, &b.images[i])
	})
	if errs.Count() > 0 {
		return fmt.Errorf("seeding %d small images: %d errors, first: %v", len(b.images), errs.Count(), errs.Samples())
	}
	t.smallSeeded = true
	return nil
}

// PullSmall pulls every small image once with opts.Concurrency workers.
func (b *Bench) PullSmall(ctx context.Context, t *Target) Result {
	res := Result{Scenario: "pull-small", Subject: t.Name}
	if err := b.seedSmall(ctx, t); err != nil {
		return failed(res, err)
	}
	var errs errorLog
	done := b.phase("pull-small")
	cpu := t.serverCPU()
	r := runN(ctx, b.opts.Concurrency, len(b.images), &errs, func(ctx context.Context, i int) error {
		return pullImage(ctx, t.Client, repoSmall, &b.images[i])
	})
	done()
	res = b.imagesResult(res, r, &errs)
	addCPUPerOp(&res, cpu, len(r.lat))
	return res
}

// HeadManifest HEADs the first small image's manifest by tag for
// opts.Duration with conc workers.
func (b *Bench) HeadManifest(ctx context.Context, t *Target, conc int) Result {
	res := Result{Scenario: fmt.Sprintf("head-manifest c=%d", conc), Subject: t.Name}
	if err := b.seedSmall(ctx, t); err != nil {
		return failed(res, err)
	}
	img := &b.images[0]
	var errs errorLog
	done := b.phase(fmt.Sprintf("head-manifest-c%d", conc))
	cpu := t.serverCPU()
	r := runFor(ctx, conc, b.opts.Duration, &errs, func(ctx context.Context) error {
		return t.Client.HeadManifest(ctx, repoSmall, img.Tag, img.Digest)
	})
	done()
	s := Summarize(r.lat)
	res.Ops, res.Seconds, res.Latency = r.ops, r.elapsed.Seconds(), &s
	res.setErrors(&errs)
	res.add("req/s", "req/s", r.rate(), true)
	res.add("p50", "ms", s.P50, false)
	res.add("p99", "ms", s.P99, false)
	addCPUPerOp(&res, cpu, len(r.lat))
	return res
}

// PushLarge pushes the large blob once: monolithic (one PUT) or chunked
// (PATCHes of opts.ChunkSize).
func (b *Bench) PushLarge(ctx context.Context, t *Target, chunked bool) Result {
	blob := b.large
	res := Result{Scenario: "push-large monolithic", Subject: t.Name}
	if chunked {
		blob = b.chunk
		res.Scenario = "push-large chunked " + formatSize(b.opts.ChunkSize)
	}
	var errs errorLog
	phase := "push-large-monolithic"
	if chunked {
		phase = "push-large-chunked"
	}
	done := b.phase(phase)
	cpu := t.serverCPU()
	start := time.Now()
	var err error
	if chunked {
		err = t.Client.PushBlobChunked(ctx, repoLarge, blob.Digest, blob.Size(), b.opts.ChunkSize, blob.Part)
	} else {
		err = t.Client.PushBlob(ctx, repoLarge, blob.Digest, blob.Size(), func() io.Reader { return blob.Part(0, blob.Size()) })
	}
	elapsed := time.Since(start)
	done()
	errs.Add(err)
	if err == nil && !chunked {
		t.largePushed = true
	}
	res.Ops, res.Seconds = 1, elapsed.Seconds()
	res.setErrors(&errs)
	res.add("MB/s", "MB/s", mbps(blob.Size(), elapsed, err), true)
	addCPU(&res, cpu)
	return res
}

// PullLarge GETs the large blob opts.LargePulls times, hashing while
// streaming; MB/s is the median pull's.
func (b *Bench) PullLarge(ctx context.Context, t *Target) Result {
	res := Result{Scenario: "pull-large", Subject: t.Name}
	if !t.largePushed {
		if err := t.Client.PushBlob(ctx, repoLarge, b.large.Digest, b.large.Size(), func() io.Reader { return b.large.Part(0, b.large.Size()) }); err != nil {
			return failed(res, err)
		}
		t.largePushed = true
	}
	defer b.phase("pull-large")()
	return b.pullLarge(ctx, t, res, func(ctx context.Context) error {
		return t.Client.GetBlob(ctx, repoLarge, b.large.Digest, b.large.Size())
	})
}

// pullLarge times get opts.LargePulls times; the server's CPU time is
// per pull.
func (b *Bench) pullLarge(ctx context.Context, t *Target, res Result, get func(context.Context) error) Result {
	var errs errorLog
	cpu := t.serverCPU()
	var lat []time.Duration
	for range b.opts.LargePulls {
		start := time.Now()
		err := get(ctx)
		errs.Add(err)
		if err == nil {
			lat = append(lat, time.Since(start))
		}
	}
	s := Summarize(lat)
	res.Ops, res.Seconds = b.opts.LargePulls, s.Mean*float64(len(lat))/1000
	res.setErrors(&errs)
	var rate float64
	if s.P50 > 0 {
		rate = float64(b.large.Size()) / 1e6 / (s.P50 / 1000)
	}
	res.add("MB/s", "MB/s", rate, true)
	if d, ok := cpu(); ok {
		res.add("server CPU", "s", d.Seconds()/float64(b.opts.LargePulls), false)
	}
	return res
}

func mbps(size int64, d time.Duration, err error) float64 {
	if err != nil || d <= 0 {
		return 0
	}
	return float64(size) / 1e6 / d.Seconds()
}

func failed(res Result, err error) Result {
	res.Errors++
	res.ErrorSamples = append(res.ErrorSamples, err.Error())
	return res
}

// formatSize writes a byte count as KiB, MiB or GiB when it is a whole
// multiple.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
