package main

import (
	"context"
	"debug/buildinfo"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Subjects of a compare.
const (
	subjectMoat = "moat"
	subjectDist = "distribution"
)

// comparison is one `moat-bench compare`: moat and Distribution started
// side by side under one temp dir and run through the same scenarios.
type comparison struct {
	opts     Options
	moatBin  string
	distBin  string
	dir      string // the temp dir: data dirs, logs, the large blob
	bench    *Bench
	progress *os.File
	results  []Result
	procs    map[string]*Process // the main instances by subject
	quiet    *quietGate
	moatEnv  []string // added to moat's environment
}

func runCompare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	of := bindOptions(fs)
	moatBin := fs.String("moat", "bin/moat-static", "moat binary (built stripped and static by make bench)")
	distBin := fs.String("distribution", "bin/registry", "CNCF Distribution v3.1.2 registry binary")
	workdir := fs.String("workdir", "", "where the temp dir goes (default $TMPDIR); use the disk under test")
	out := fs.String("out", "", "JSON file of every figure (default bench/results/<date>.json, -quick.json with --quick)")
	keep := fs.Bool("keep", false, "keep the temp dir (data dirs and server logs)")
	revision := fs.String("revision", "", "moat's source revision, recorded in the JSON (make bench: git describe)")
	var moatEnv envList
	fs.Var(&moatEnv, "moat-env", "KEY=VALUE added to moat's environment (repeatable), e.g. MOAT_LOG_LEVEL=warn")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := of.options()
	if err != nil {
		return err
	}
	if *out == "" {
		suffix := ""
		if opts.Quick {
			suffix = "-quick"
		}
		*out = filepath.Join("bench", "results", time.Now().Format("2006-01-02")+suffix+".json")
	}
	for _, b := range []*string{moatBin, distBin} {
		if *b, err = filepath.Abs(*b); err != nil {
			return err
		}
		if _, err := os.Stat(*b); err != nil {
			return fmt.Errorf("%w (make bench builds moat and installs Distribution)", err)
		}
	}
	dir, err := os.MkdirTemp(*workdir, "moat-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "moat-bench: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	c := &comparison{opts: opts, moatBin: *moatBin, distBin: *distBin, dir: dir, progress: os.Stderr, procs: map[string]*Process{}}
	c.moatEnv = moatEnv
	c.quiet = &quietGate{maxBusy: opts.MaxBusy, maxWait: opts.MaxWait, log: c.logf}
	defer c.stopAll()
	start := time.Now()
	if err := c.run(ctx); err != nil {
		return err
	}
	rep := newReport(opts, c.results)
	rep.Seconds = time.Since(start).Seconds()
	rep.Builds = map[string]BuildInfo{subjectMoat: readBuild(*moatBin), subjectDist: readBuild(*distBin)}
	rep.Revision = *revision
	rep.MoatEnv = moatEnv
	rep.Print(os.Stdout, []string{subjectMoat, subjectDist})
	if err := rep.WriteJSON(*out); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "moat-bench: wrote", *out)
	if n := rep.ErrorCount(); n > 0 {
		return fmt.Errorf("%d operations failed (see errorSamples in %s)", n, *out)
	}
	return nil
}

func (c *comparison) logf(format string, args ...any) {
	fmt.Fprintf(c.progress, "moat-bench: "+format+"\n", args...)
}

func (c *comparison) run(ctx context.Context) error {
	c.logf("workdir %s; generating content", c.dir)
	var err error
	if c.bench, err = NewBench(c.opts, c.dir); err != nil {
		return err
	}
	defer c.bench.Close()
	c.results = append(c.results, binarySizes(c.moatBin, c.distBin)...)
	if c.opts.wants("startup") {
		c.logf("startup on an empty data dir, %d times each", c.opts.StartupReps)
		if err := c.startupEmpty(); err != nil {
			return err
		}
	}
	var targets []*Target
	for _, subject := range []string{subjectMoat, subjectDist} {
		p, err := c.start(subject, subject+"-data", false, "")
		if err != nil {
			return err
		}
		c.procs[subject] = p
		cl, err := NewClient(p.URL, 16, "", "")
		if err != nil {
			return err
		}
		targets = append(targets, &Target{Name: subject, Client: cl, Proc: p})
	}
	suite := &Suite{Bench: c.bench, Targets: targets, Workdir: c.dir, Progress: c.progress, Quiet: c.quiet}
	suite.AfterPushSmall = func(t *Target, res *Result) {
		if kb, err := c.procs[t.Name].StatusKB("VmHWM"); err == nil {
			res.add("peak RSS", "MB", kbToMB(kb), false)
		}
	}
	if c.opts.wants("ceilings") {
		p, err := c.startCeiling()
		if err != nil {
			return err
		}
		defer p.Stop()
		if suite.Ceiling, err = NewClient(p.URL, 16, "", ""); err != nil {
			return err
		}
		suite.CeilingProc = p
	}
	c.logf("load scenarios, interleaved")
	c.results = append(c.results, suite.Run(ctx)...)
	if c.opts.wants("startup") && c.opts.wants("tags-list") {
		c.logf("startup with %d tags stored", c.opts.Tags)
		if err := c.startupStored(); err != nil {
			return err
		}
	}
	for _, subject := range []string{subjectMoat, subjectDist} {
		_ = c.procs[subject].Stop()
		delete(c.procs, subject)
	}
	if c.opts.wants("policy") {
		c.logf("moat with auth and 100 ip rules vs moat in dev mode")
		res, err := c.policy(ctx)
		if err != nil {
			return err
		}
		c.results = append(c.results, res...)
	}
	return nil
}

// start runs a fresh instance of subject over dir/data.
func (c *comparison) start(subject, data string, policy bool, adminPassword string) (*Process, error) {
	data = filepath.Join(c.dir, data)
	name := filepath.Base(data)
	var spec procSpec
	var err error
	if subject == subjectMoat {
		spec, err = moatSpec(c.moatBin, name, data, c.dir, c.moatEnv, policy, adminPassword)
	} else {
		spec, err = distributionSpec(c.distBin, name, data, c.dir)
	}
	if err != nil {
		return nil, err
	}
	return startProcess(spec)
}

func (c *comparison) startCeiling() (*Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	img := c.bench.images[0]
	return startProcess(procSpec{
		name:  "ceiling-server",
		bin:   self,
		args:  ceilingArgs(addr, c.bench.path, img.Digest, len(img.Manifest)),
		addr:  addr,
		log:   filepath.Join(c.dir, "ceiling-server.log"),
		ready: only200,
	})
}

func (c *comparison) stopAll() {
	for _, p := range c.procs {
		_ = p.Stop()
	}
}

// startupEmpty starts each registry on a fresh data dir StartupReps
// times (alternating which goes first) and reads the idle RSS a second
// after the first start.
func (c *comparison) startupEmpty() error {
	subjects := []string{subjectMoat, subjectDist}
	times := map[string][]time.Duration{}
	rss := map[string]float64{}
	for rep := range c.opts.StartupReps {
		for i := range subjects {
			subject := subjects[(i+rep)%len(subjects)]
			c.quiet.wait()
			data := fmt.Sprintf("%s-startup-%d", subject, rep)
			p, err := c.start(subject, data, false, "")
			if err != nil {
				return err
			}
			times[subject] = append(times[subject], p.Startup)
			if rep == 0 {
				time.Sleep(time.Second)
				if kb, err := p.StatusKB("VmRSS"); err == nil {
					rss[subject] = kbToMB(kb)
				}
			}
			_ = p.Stop()
			_ = os.RemoveAll(p.Data)
		}
	}
	for _, subject := range subjects {
		res := startupResult("startup (empty)", subject, times[subject])
		res.add("idle RSS", "MB", rss[subject], false)
		c.record(res)
	}
	return nil
}

// startupStored restarts the main instances, which hold the tags-list
// repositories, StartupReps times each.
func (c *comparison) startupStored() error {
	subjects := []string{subjectMoat, subjectDist}
	times := map[string][]time.Duration{}
	rss := map[string]float64{}
	reps := max(1, min(c.opts.StartupReps, 3))
	for rep := range reps {
		for i := range subjects {
			subject := subjects[(i+rep)%len(subjects)]
			if err := c.procs[subject].Stop(); err != nil {
				return err
			}
			c.quiet.wait()
			p, err := c.procs[subject].Restart()
			if err != nil {
				return err
			}
			c.procs[subject] = p
			times[subject] = append(times[subject], p.Startup)
			if rep == reps-1 {
				time.Sleep(time.Second)
				if kb, err := p.StatusKB("VmRSS"); err == nil {
					rss[subject] = kbToMB(kb)
				}
			}
		}
	}
	for _, subject := range subjects {
		res := startupResult(fmt.Sprintf("startup (%d tags)", c.opts.Tags), subject, times[subject])
		res.add("idle RSS", "MB", rss[subject], false)
		c.record(res)
	}
	return nil
}

func (c *comparison) record(r Result) {
	r.Load1 = load1()
	c.results = append(c.results, r)
	fmt.Fprintln(c.progress, progressLine(r))
}

func startupResult(scenario, subject string, ds []time.Duration) Result {
	res := Result{Scenario: scenario, Subject: subject}
	sorted := slices.Clone(ds)
	s := Summarize(sorted)
	res.Ops, res.Latency = len(ds), &s
	res.add("exec → /v2/ p50", "ms", s.P50, false)
	res.add("min", "ms", ms(sorted[0]), false)
	return res
}

// binarySizes are the sizes of the binaries under test.
func binarySizes(moatBin, distBin string) []Result {
	var out []Result
	for _, b := range []struct{ subject, path string }{{subjectMoat, moatBin}, {subjectDist, distBin}} {
		res := Result{Scenario: "binary size", Subject: b.subject}
		if st, err := os.Stat(b.path); err == nil {
			res.add("size", "MB", float64(st.Size())/1e6, false)
		} else {
			res = failed(res, err)
		}
		out = append(out, res)
	}
	return out
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// BuildInfo is how a binary under test was built.
type BuildInfo struct {
	Path      string            `json:"path"`
	GoVersion string            `json:"goVersion,omitempty"`
	Module    string            `json:"module,omitempty"`
	Version   string            `json:"version,omitempty"`
	Settings  map[string]string `json:"settings,omitempty"`
}

func readBuild(path string) BuildInfo {
	bi := BuildInfo{Path: path}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return bi
	}
	bi.GoVersion, bi.Module, bi.Version = info.GoVersion, info.Main.Path, info.Main.Version
	bi.Settings = map[string]string{}
	for _, s := range info.Settings {
		switch s.Key {
		case "-ldflags", "-trimpath", "CGO_ENABLED", "GOAMD64", "-tags":
			bi.Settings[s.Key] = s.Value
		}
	}
	return bi
}
