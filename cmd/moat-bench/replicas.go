package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Subjects of the replicas comparison.
const (
	subjectOneReplica = "1 replica (bbolt+fs)"
	subjectReplicas   = "%d replicas (pg+s3)"
)

// replicaFlags are the flags of `moat-bench replicas`.
type replicaFlags struct {
	moatBin      string
	n            int
	concurrency  string
	replicas     int
	rounds       int
	quick        bool
	pgDSN        string
	pgFast       bool
	s3Endpoint   string
	s3Region     string
	s3Bucket     string
	s3AccessKey  string
	s3SecretKey  string
	workdir, out string
	keep         bool
}

// replicasReport is the JSON file of a replicas run.
type replicasReport struct {
	Date        string   `json:"date"`
	Host        Host     `json:"host"`
	Replicas    int      `json:"replicas"`
	N           int      `json:"n"`
	Postgres    string   `json:"postgres"`
	ObjectStore string   `json:"objectStore"`
	Results     []Result `json:"results"`
	Seconds     float64  `json:"seconds"`
}

// runReplicas is `moat-bench replicas`: moat scaled out — N replicas on
// one PostgreSQL database and one S3 bucket, the load spread round-robin
// over them — against one replica on bbolt and the filesystem, both with
// authentication on (the admin's bearer tokens): push-small and
// pull-small aggregate images/s at each concurrency, and how long a
// settings change through one replica takes to be enforced by the others.
func runReplicas(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replicas", flag.ContinueOnError)
	f := &replicaFlags{}
	fs.StringVar(&f.moatBin, "moat", "bin/moat-static", "moat binary")
	fs.IntVar(&f.n, "n", 1000, "small images pushed and pulled per run")
	fs.StringVar(&f.concurrency, "concurrency", "8,16", "comma list of worker counts (spread over the replicas)")
	fs.IntVar(&f.replicas, "replicas", 3, "replicas sharing PostgreSQL and S3")
	fs.IntVar(&f.rounds, "rounds", 20, "settings changes whose propagation is measured")
	fs.BoolVar(&f.quick, "quick", false, "small sizes (--n 100 --rounds 5) unless given")
	fs.StringVar(&f.pgDSN, "pg-dsn", "", "PostgreSQL database for the replicas (empty: a throwaway cluster)")
	fs.BoolVar(&f.pgFast, "pg-fast", false, "the throwaway cluster runs with fsync off (the single replica's bbolt fsyncs)")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3 endpoint for the replicas (empty: a throwaway versitygw)")
	fs.StringVar(&f.s3Region, "s3-region", "", "S3 region (us-east-1 when empty)")
	fs.StringVar(&f.s3Bucket, "s3-bucket", "", "S3 bucket (must exist)")
	fs.StringVar(&f.s3AccessKey, "s3-access-key", "", "S3 access key")
	fs.StringVar(&f.s3SecretKey, "s3-secret-key", "", "S3 secret key")
	fs.StringVar(&f.workdir, "workdir", "", "where the temp dir goes (default $TMPDIR)")
	fs.StringVar(&f.out, "out", "", "JSON file of every figure (default bench/results/<date>-replicas.json)")
	fs.BoolVar(&f.keep, "keep", false, "keep the temp dir (data dirs and server logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if f.quick {
		if !given["n"] {
			f.n = 100
		}
		if !given["rounds"] {
			f.rounds = 5
		}
	}
	concs, err := parseConcurrencies(f.concurrency)
	if err != nil {
		return err
	}
	if f.replicas < 2 || f.n < f.replicas || f.rounds < 1 {
		return errors.New("--replicas must be at least 2, --n at least --replicas, --rounds at least 1")
	}
	if f.out == "" {
		suffix := "-replicas"
		if f.quick {
			suffix += "-quick"
		}
		f.out = filepath.Join("bench", "results", time.Now().Format("2006-01-02")+suffix+".json")
	}
	if f.moatBin, err = filepath.Abs(f.moatBin); err != nil {
		return err
	}
	if _, err := os.Stat(f.moatBin); err != nil {
		return fmt.Errorf("%w (make bench-build builds it)", err)
	}
	dir, err := os.MkdirTemp(f.workdir, "moat-bench-replicas-")
	if err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintln(os.Stderr, "moat-bench: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	start := time.Now()
	b, err := startBackends(ctx, f)
	if errors.Is(err, errBackendMissing) {
		fmt.Fprintln(os.Stderr, "moat-bench replicas: skipped:", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer b.stop()
	so := &scaleOut{f: f, dir: dir, password: randomPassword(), subjectN: fmt.Sprintf(subjectReplicas, f.replicas)}
	defer so.stop()
	if err := so.start(ctx, b); err != nil {
		return err
	}
	for _, c := range concs {
		so.smallRound(ctx, c)
	}
	res, err := so.propagation(ctx, f.rounds)
	if err != nil {
		return err
	}
	so.record(res)

	rep := replicasReport{Date: time.Now().UTC().Format(time.RFC3339), Host: readHost(), Replicas: f.replicas, N: f.n,
		Postgres: b.Postgres, ObjectStore: b.ObjectStore, Results: so.results, Seconds: time.Since(start).Seconds()}
	so.print(os.Stdout, rep)
	if err := os.MkdirAll(filepath.Dir(f.out), 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.out, append(js, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "moat-bench: wrote", f.out)
	var failed int64
	for _, r := range so.results {
		failed += r.Errors
	}
	if failed > 0 {
		return fmt.Errorf("%d operations failed (see errorSamples in %s)", failed, f.out)
	}
	return nil
}

func parseConcurrencies(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || c < 1 {
			return nil, fmt.Errorf("--concurrency %q: want a comma list of positive numbers", s)
		}
		out = append(out, c)
	}
	return out, nil
}

// scaleOut is one replicas run: the single replica, the replicas and
// their clients.
type scaleOut struct {
	f        *replicaFlags
	dir      string
	password string
	subjectN string

	single   *Process
	replicas []*Process
	clients  map[string][]*Client // subject → one client per process
	procs    map[string][]*Process
	results  []Result
	seed     uint64
}

func (so *scaleOut) start(ctx context.Context, b *backends) error {
	so.logf("starting %d replicas on PostgreSQL (%s) and S3 (%s)", so.f.replicas, b.Postgres, b.ObjectStore)
	var err error
	if so.replicas, err = startReplicas(ctx, so.f.moatBin, so.dir, so.f.replicas, b, so.password); err != nil {
		return err
	}
	so.logf("starting one replica on bbolt and the filesystem")
	if so.single, err = startMoatProcess(so.f.moatBin, "single", filepath.Join(so.dir, "single-data"), so.dir, so.password); err != nil {
		return err
	}
	if err := waitReadyz(ctx, so.single.URL, 60*time.Second); err != nil {
		return err
	}
	so.procs = map[string][]*Process{subjectOneReplica: {so.single}, so.subjectN: so.replicas}
	so.clients = map[string][]*Client{}
	for subject, procs := range so.procs {
		for _, p := range procs {
			c, err := NewClient(p.URL, 16, "admin", so.password)
			if err != nil {
				return err
			}
			so.clients[subject] = append(so.clients[subject], c)
		}
	}
	return nil
}

func (so *scaleOut) stop() {
	stopAll(so.replicas)
	if so.single != nil {
		_ = so.single.Stop()
	}
}

func (so *scaleOut) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "moat-bench: "+format+"\n", args...)
}

func (so *scaleOut) record(r Result) {
	r.Load1 = load1()
	so.results = append(so.results, r)
	fmt.Fprintln(os.Stderr, progressLine(r))
}

// smallRound pushes a fresh set of small images to each subject with
// conc workers, then pulls them, the subjects taking turns to go first.
// Image i goes through process i mod N; its pull through the next one,
// so that a replica serves what another stored.
func (so *scaleOut) smallRound(ctx context.Context, conc int) {
	so.seed++
	subjects := []string{subjectOneReplica, so.subjectN}
	if so.seed%2 == 0 {
		slices.Reverse(subjects)
	}
	images := newSmallImages(so.f.n, 100+so.seed)
	repo := fmt.Sprintf("bench/replicas-c%d", conc)
	for _, phase := range []string{"push-small", "pull-small"} {
		for _, subject := range subjects {
			clients, procs := so.clients[subject], so.procs[subject]
			var errs errorLog
			before, cpuOK := cpuOf(procs)
			r := runN(ctx, conc, len(images), &errs, func(ctx context.Context, i int) error {
				if phase == "push-small" {
					return pushImage(ctx, clients[i%len(clients)], repo, &images[i])
				}
				return pullImage(ctx, clients[(i+1)%len(clients)], repo, &images[i])
			})
			res := Result{Scenario: fmt.Sprintf("%s c=%d", phase, conc), Subject: subject}
			s := Summarize(r.lat)
			res.Ops, res.Seconds, res.Latency = r.ops, r.elapsed.Seconds(), &s
			res.setErrors(&errs)
			res.add("images/s", "images/s", r.rate(), true)
			res.add("p50", "ms", s.P50, false)
			res.add("p99", "ms", s.P99, false)
			if after, ok := cpuOf(procs); ok && cpuOK && len(r.lat) > 0 {
				res.add("moat CPU/image", "ms", float64((after-before).Microseconds())/1000/float64(len(r.lat)), false)
			}
			so.record(res)
		}
	}
}

// propagation toggles publicNetworkAccess through the first replica
// rounds times (Disabled, Enabled, …) and, after each answer, polls every other replica's GET
// /v2/ as the admin until it enforces the change: 403 once disabled, 200
// once enabled again. It reports the median and maximum delay from the
// PATCH's answer to the first enforcing answer.
func (so *scaleOut) propagation(ctx context.Context, rounds int) (Result, error) {
	res := Result{Scenario: "settings propagation", Subject: so.subjectN}
	hc := &http.Client{Transport: newTransport(len(so.replicas)), Timeout: 10 * time.Second}
	status := func(base string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/", nil)
		if err != nil {
			return 0, err
		}
		req.SetBasicAuth("admin", so.password)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		drain(resp)
		return resp.StatusCode, nil
	}
	var delays []time.Duration
	for i := range rounds {
		access, want := "Disabled", http.StatusForbidden
		if i%2 == 1 {
			access, want = "Enabled", http.StatusOK
		}
		if err := patchAccess(ctx, hc, so.replicas[0].URL, so.password, access); err != nil {
			return res, err
		}
		answered := time.Now()
		for _, p := range so.replicas[1:] {
			// The poll is tight on purpose: each round trip blocks on the
			// network (status drains and closes every body), and a pause
			// between them would add up to its length to the delay this
			// reports.
			for {
				st, err := status(p.URL)
				if err == nil && st == want {
					break
				}
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				if time.Since(answered) > 10*time.Second {
					return res, fmt.Errorf("%s does not enforce publicNetworkAccess %s 10s after the change (%d, %v)", p.Name, access, st, err)
				}
			}
			delays = append(delays, time.Since(answered))
		}
	}
	s := Summarize(delays)
	res.Ops, res.Latency = len(delays), &s
	res.add("median", "ms", s.P50, false)
	res.add("p99", "ms", s.P99, false)
	res.add("max", "ms", ms(slices.Max(delays)), false)
	return res, nil
}

// patchAccess sets publicNetworkAccess through the admin API.
func patchAccess(ctx context.Context, hc *http.Client, base, password, access string) error {
	body := fmt.Sprintf(`{"properties":{"publicNetworkAccess":%q}}`, access)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, base+"/admin/v1/registry", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.SetBasicAuth("admin", password)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH /admin/v1/registry: %w", statusError(req, resp))
	}
	return nil
}

// print writes the comparison table and the propagation figures.
func (so *scaleOut) print(w io.Writer, rep replicasReport) {
	fmt.Fprintf(w, "moat-bench replicas %s: %d CPUs (%s), %d images per run; PostgreSQL: %s; S3: %s\n",
		rep.Date, rep.Host.CPUs, rep.Host.CPUModel, rep.N, rep.Postgres, rep.ObjectStore)
	fmt.Fprintln(w, "every server, the database, the object store and the load run on this one machine")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tmetric\t%s\t%s\t%s/%s\terrors\n", so.subjectN, subjectOneReplica, "N", "1")
	var scenarios []string
	for _, r := range rep.Results {
		if r.Subject == subjectOneReplica && !slices.Contains(scenarios, r.Scenario) {
			scenarios = append(scenarios, r.Scenario)
		}
	}
	find := func(scenario, subject string) *Result {
		for i := range rep.Results {
			if rep.Results[i].Scenario == scenario && rep.Results[i].Subject == subject {
				return &rep.Results[i]
			}
		}
		return nil
	}
	for _, sc := range scenarios {
		one, n := find(sc, subjectOneReplica), find(sc, so.subjectN)
		if one == nil || n == nil {
			continue
		}
		for i, m := range n.Metrics {
			v1, _ := one.Metric(m.Name)
			ratio := "-"
			if v1 > 0 {
				ratio = fmt.Sprintf("%.2f×", m.Value/v1)
			}
			errs := ""
			if i == 0 {
				errs = fmt.Sprintf("%d / %d", n.Errors, one.Errors)
			}
			fmt.Fprintf(tw, "%s\t%s (%s)\t%.1f\t%.1f\t%s\t%s\n", sc, m.Name, m.Unit, m.Value, v1, ratio, errs)
		}
	}
	tw.Flush()
	if p := find("settings propagation", so.subjectN); p != nil {
		med, _ := p.Metric("median")
		mx, _ := p.Metric("max")
		fmt.Fprintf(w, "\nsettings propagation (publicNetworkAccess changed %d times through one replica; delay to each other replica's first enforcing answer, %d in all): median %.2f ms, max %.2f ms\n",
			so.f.rounds, p.Ops, med, mx)
	}
}
