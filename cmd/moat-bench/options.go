package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenarioNames are the values of --scenarios, in the order they run.
var scenarioNames = []string{"startup", "push-small", "pull-small", "head-manifest", "push-large", "pull-large", "tags-list", "ceilings", "policy"}

// Options are the settings of a bench run.
type Options struct {
	Scenarios    []string      `json:"scenarios"`
	Concurrency  int           `json:"concurrency"`
	N            int           `json:"n"`
	Duration     time.Duration `json:"duration"`
	LargeSize    int64         `json:"largeSize"`
	ChunkSize    int64         `json:"chunkSize"`
	LargePulls   int           `json:"largePulls"`
	Tags         int           `json:"tags"`
	TagsSmall    int           `json:"tagsSmall"`
	ListReps     int           `json:"listReps"`
	PageReps     int           `json:"pageReps"`
	StartupReps  int           `json:"startupReps"`
	PolicyRounds int           `json:"policyRounds"`
	MaxBusy      float64       `json:"maxBusy"`
	MaxWait      time.Duration `json:"maxWait"`
	Quick        bool          `json:"quick"`
	// DropCaches drops the page cache before each large write (see
	// dropPageCache).
	DropCaches bool `json:"dropCaches"`
}

// DefaultOptions are the full run's settings.
func DefaultOptions() Options {
	return Options{
		Scenarios:    scenarioNames,
		Concurrency:  8,
		N:            1000,
		Duration:     10 * time.Second,
		LargeSize:    1 << 30,
		ChunkSize:    16 << 20,
		LargePulls:   3,
		Tags:         100_000,
		TagsSmall:    5_000,
		ListReps:     5,
		PageReps:     20,
		StartupReps:  5,
		PolicyRounds: 2,
		MaxBusy:      0.25,
		MaxWait:      3 * time.Minute,
		DropCaches:   true,
	}
}

// QuickOptions finish a compare in under a minute, for a CI smoke run.
func QuickOptions() Options {
	o := DefaultOptions()
	o.Quick = true
	o.DropCaches = false
	o.N = 50
	o.Duration = time.Second
	o.LargeSize = 32 << 20
	o.ChunkSize = 4 << 20
	o.LargePulls = 1
	o.Tags = 1000
	o.TagsSmall = 300
	o.ListReps = 3
	o.PageReps = 5
	o.StartupReps = 2
	o.PolicyRounds = 1
	o.MaxBusy = 0 // a CI machine is the bench's alone
	return o
}

func (o Options) wants(name string) bool { return slices.Contains(o.Scenarios, name) }

// headConcurrencies are the worker counts of head-manifest: --concurrency
// and 16.
func (o Options) headConcurrencies() []int {
	if o.Concurrency == 16 {
		return []int{16}
	}
	return []int{o.Concurrency, 16}
}

// tagCounts are the tags-list repository sizes: the 5,000 of the issue's
// comparison and --tags.
func (o Options) tagCounts() []int {
	if o.TagsSmall == o.Tags || o.TagsSmall <= 0 {
		return []int{o.Tags}
	}
	return []int{o.TagsSmall, o.Tags}
}

// optionFlags are the scenario flags of a flag set.
type optionFlags struct {
	fs        *flag.FlagSet
	o         Options
	scenarios string
	large     sizeFlag
	chunk     sizeFlag
}

// bindOptions registers the scenario flags on fs. --quick replaces the
// defaults of the flags not given explicitly, so options applies it after
// parsing.
func bindOptions(fs *flag.FlagSet) *optionFlags {
	f := &optionFlags{fs: fs, o: DefaultOptions()}
	f.large, f.chunk = sizeFlag(f.o.LargeSize), sizeFlag(f.o.ChunkSize)
	fs.StringVar(&f.scenarios, "scenarios", strings.Join(scenarioNames, ","), "comma list of scenarios: "+strings.Join(scenarioNames, ", "))
	fs.IntVar(&f.o.Concurrency, "concurrency", f.o.Concurrency, "workers (head-manifest also runs with 16)")
	fs.IntVar(&f.o.N, "n", f.o.N, "small images pushed and pulled")
	fs.DurationVar(&f.o.Duration, "duration", f.o.Duration, "how long head-manifest runs")
	fs.Var(&f.large, "large-size", "size of the large blob (e.g. 1GiB, 64MiB)")
	fs.Var(&f.chunk, "chunk-size", "PATCH size of the chunked large push")
	fs.IntVar(&f.o.LargePulls, "large-pulls", f.o.LargePulls, "pulls of the large blob and writes of the fsync ceiling (the median counts)")
	fs.IntVar(&f.o.Tags, "tags", f.o.Tags, "tags of the large tags-list repository")
	fs.IntVar(&f.o.TagsSmall, "tags-small", f.o.TagsSmall, "tags of the small tags-list repository (0: none)")
	fs.IntVar(&f.o.ListReps, "list-reps", f.o.ListReps, "whole tag lists timed per repository")
	fs.IntVar(&f.o.PageReps, "page-reps", f.o.PageReps, "first and middle pages of 100 timed per repository")
	fs.IntVar(&f.o.StartupReps, "startup-reps", f.o.StartupReps, "startups timed per registry")
	fs.IntVar(&f.o.PolicyRounds, "policy-rounds", f.o.PolicyRounds, "rounds of the policy on/off comparison")
	fs.Float64Var(&f.o.MaxBusy, "max-busy", f.o.MaxBusy, "before each run, wait while other work keeps more than this fraction of the CPUs busy (0: never wait)")
	fs.DurationVar(&f.o.MaxWait, "max-wait", f.o.MaxWait, "longest wait for a quiet machine before a run")
	fs.BoolVar(&f.o.Quick, "quick", false, "small sizes: the whole compare takes under a minute (CI smoke)")
	fs.BoolVar(&f.o.DropCaches, "drop-caches", f.o.DropCaches, "before each large push and fsync-ceiling write, sync and drop the page cache (needs root; --quick turns it off)")
	return f
}

// options applies --quick under the explicitly given flags.
func (f *optionFlags) options() (Options, error) {
	o := f.o
	o.LargeSize, o.ChunkSize = int64(f.large), int64(f.chunk)
	if o.Quick {
		q := QuickOptions()
		set := map[string]bool{}
		f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		pick := func(name string, dst *int, v int) {
			if !set[name] {
				*dst = v
			}
		}
		pick("n", &o.N, q.N)
		pick("large-pulls", &o.LargePulls, q.LargePulls)
		pick("tags", &o.Tags, q.Tags)
		pick("tags-small", &o.TagsSmall, q.TagsSmall)
		pick("startup-reps", &o.StartupReps, q.StartupReps)
		pick("policy-rounds", &o.PolicyRounds, q.PolicyRounds)
		if !set["duration"] {
			o.Duration = q.Duration
		}
		if !set["large-size"] {
			o.LargeSize = q.LargeSize
		}
		if !set["max-busy"] {
			o.MaxBusy = q.MaxBusy
		}
		if !set["chunk-size"] {
			o.ChunkSize = q.ChunkSize
		}
		if !set["drop-caches"] {
			o.DropCaches = q.DropCaches
		}
		pick("list-reps", &o.ListReps, q.ListReps)
		pick("page-reps", &o.PageReps, q.PageReps)
	}
	o.Scenarios = nil
	for s := range strings.SplitSeq(f.scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames, s) {
			return o, fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", s, strings.Join(scenarioNames, ", "))
		}
		o.Scenarios = append(o.Scenarios, s)
	}
	switch {
	case o.Concurrency < 1:
		return o, fmt.Errorf("--concurrency must be at least 1")
	case o.N < 1:
		return o, fmt.Errorf("--n must be at least 1")
	case o.LargeSize < 8 || o.ChunkSize < 1:
		return o, fmt.Errorf("--large-size must be at least 8 bytes and --chunk-size at least 1")
	case o.Tags < 1:
		return o, fmt.Errorf("--tags must be at least 1")
	case o.LargePulls < 1 || o.StartupReps < 1 || o.PolicyRounds < 1 || o.ListReps < 1 || o.PageReps < 1:
		return o, fmt.Errorf("--large-pulls, --list-reps, --page-reps, --startup-reps and --policy-rounds must be at least 1")
	}
	return o, nil
}

// sizeFlag is a byte count written as 1GiB, 16MiB, 4KiB, 1G, 16M or
// plain bytes.
type sizeFlag int64

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 1GiB, 16MiB or 4096", v)
	}
	return n * mult, nil
}
