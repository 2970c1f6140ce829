package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is every figure of a run: what the table shows and the JSON file
// holds.
type Report struct {
	Date string `json:"date"`
	// Revision is moat's source revision (git describe), when given.
	Revision string `json:"revision,omitempty"`
	// MoatEnv is what --moat-env added to moat's environment.
	MoatEnv []string             `json:"moatEnv,omitempty"`
	Host    Host                 `json:"host"`
	Options Options              `json:"options"`
	Seconds float64              `json:"seconds"`
	Builds  map[string]BuildInfo `json:"builds,omitempty"`
	Results []Result             `json:"results"`
	Targets []TargetCheck        `json:"targets,omitempty"`
}

// Host describes the machine.
type Host struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	MemoryMB  int64  `json:"memoryMB,omitempty"`
	GoVersion string `json:"goVersion"`
	OSArch    string `json:"osArch"`
}

func newReport(opts Options, results []Result) *Report {
	r := &Report{Date: time.Now().UTC().Format(time.RFC3339), Host: readHost(), Options: opts, Results: results}
	r.Targets = checkTargets(r)
	return r
}

func readHost() Host {
	h := Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var total int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &total); err == nil {
			h.MemoryMB = int64(kbToMB(total))
		}
	}
	return h
}

// loadRange is the lowest and highest load average the results saw.
func (r *Report) loadRange() string {
	lo, hi := math.Inf(1), 0.0
	for _, res := range r.Results {
		if res.Load1 > 0 {
			lo, hi = min(lo, res.Load1), max(hi, res.Load1)
		}
	}
	if hi == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f–%.1f", lo, hi)
}

// find returns the result of scenario for subject.
func (r *Report) find(scenario, subject string) *Result {
	for i := range r.Results {
		if r.Results[i].Scenario == scenario && r.Results[i].Subject == subject {
			return &r.Results[i]
		}
	}
	return nil
}

// value is a metric of scenario for subject.
func (r *Report) value(scenario, subject, metric string) (float64, bool) {
	res := r.find(scenario, subject)
	if res == nil || res.Errors > 0 && len(res.Metrics) == 0 {
		return 0, false
	}
	return res.Metric(metric)
}

// ErrorCount is the number of failed operations over all results.
func (r *Report) ErrorCount() int64 {
	var n int64
	for _, res := range r.Results {
		n += res.Errors
	}
	return n
}

// scenarios lists the scenarios some subject ran, in order of first
// appearance.
func (r *Report) scenarios(subjects ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, res := range r.Results {
		if seen[res.Scenario] {
			continue
		}
		for _, s := range subjects {
			if res.Subject == s {
				seen[res.Scenario] = true
				out = append(out, res.Scenario)
				break
			}
		}
	}
	return out
}

// Print writes the tables: the subjects side by side (with the ratio of
// the first to the second when there are two), the ceilings, the policy
// comparison and the targets.
func (r *Report) Print(w io.Writer, subjects []string) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(w, "moat-bench %s: %d CPUs (%s), %s, concurrency %d, load average %s\n\n",
		r.Date, r.Host.CPUs, r.Host.CPUModel, r.Host.GoVersion, r.Options.Concurrency, r.loadRange())
	head := "scenario\tmetric"
	for _, s := range subjects {
		head += "\t" + s
	}
	if len(subjects) == 2 {
		head += "\t" + subjects[0] + "/" + subjects[1]
	}
	fmt.Fprintln(tw, head+"\terrors")
	for _, sc := range r.scenarios(subjects...) {
		if strings.HasPrefix(sc, "policy: ") {
			continue
		}
		first := r.firstOf(sc, subjects)
		if first == nil {
			continue
		}
		for i, m := range first.Metrics {
			row := sc + "\t" + m.Name + " (" + m.Unit + ")"
			var vals []float64
			for _, s := range subjects {
				v, ok := r.value(sc, s, m.Name)
				vals = append(vals, v)
				row += "\t" + cell(v, ok)
			}
			if len(subjects) == 2 {
				row += "\t" + ratio(vals[0], vals[1])
			}
			errs := ""
			if i == 0 {
				errs = r.errorCells(sc, subjects)
			}
			fmt.Fprintln(tw, row+"\t"+errs)
		}
	}
	tw.Flush()
	r.printCeilings(w, subjects)
	r.printPolicy(w)
	r.printTargets(w)
}

func (r *Report) firstOf(scenario string, subjects []string) *Result {
	for _, s := range subjects {
		if res := r.find(scenario, s); res != nil && len(res.Metrics) > 0 {
			return res
		}
	}
	return nil
}

func (r *Report) errorCells(scenario string, subjects []string) string {
	var parts []string
	for _, s := range subjects {
		if res := r.find(scenario, s); res != nil {
			parts = append(parts, fmt.Sprint(res.Errors))
		} else {
			parts = append(parts, "-")
		}
	}
	return strings.Join(parts, "/")
}

// ceilingFor names the ceiling a scenario is held against: the
// scenario the ceiling ran under and its subject.
func ceilingFor(scenario string) (ceilingScenario, ceiling string, ok bool) {
	switch {
	case strings.HasPrefix(scenario, "head-manifest c="):
		return scenario, ceilingHead, true
	case scenario == "pull-large":
		return scenario, ceilingPull, true
	case strings.HasPrefix(scenario, "push-large "):
		return "push-large", ceilingFsync, true
	}
	return "", "", false
}

func (r *Report) printCeilings(w io.Writer, subjects []string) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	header := false
	for _, sc := range r.scenarios(subjects...) {
		csc, ceiling, ok := ceilingFor(sc)
		if !ok {
			continue
		}
		c := r.find(csc, ceiling)
		if c == nil || len(c.Metrics) == 0 {
			continue
		}
		m := c.Metrics[0]
		if !header {
			fmt.Fprintln(w)
			line := "scenario\tceiling\tceiling value"
			for _, s := range subjects {
				line += "\t" + s + "\t" + s + "/ceiling"
			}
			fmt.Fprintln(tw, line+"\tserver CPU/op (µs): ceiling, "+strings.Join(subjects, ", "))
			header = true
		}
		line := fmt.Sprintf("%s\t%s\t%s %s", sc, strings.TrimPrefix(ceiling, "ceiling: "), formatValue(m.Value), m.Unit)
		for _, s := range subjects {
			v, ok := r.value(sc, s, m.Name)
			line += "\t" + cell(v, ok) + "\t" + percent(v, m.Value, ok)
		}
		var cpu []string
		if v, ok := c.Metric("server CPU/op"); ok {
			cpu = append(cpu, formatValue(v))
			for _, s := range subjects {
				v, ok := r.value(sc, s, "server CPU/op")
				cpu = append(cpu, cell(v, ok))
			}
		}
		fmt.Fprintln(tw, line+"\t"+strings.Join(cpu, ", "))
	}
	if h := r.find("push-large", hashing); h != nil && len(h.Metrics) > 0 {
		fmt.Fprintf(tw, "push-large\tsha256 (this CPU, from memory)\t%s MB/s\n", formatValue(h.Metrics[0].Value))
	}
	tw.Flush()
}

func (r *Report) printPolicy(w io.Writer) {
	scenarios := r.scenarios(subjectPolicyOff, subjectPolicyOn)
	if len(scenarios) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tpolicy off (dev)\tpolicy on (bearer + 100 ip rules)\ton vs off\terrors")
	for _, sc := range scenarios {
		off, on := r.find(sc, subjectPolicyOff), r.find(sc, subjectPolicyOn)
		if off == nil || on == nil {
			continue
		}
		for i, m := range off.Metrics {
			v, ok := on.Metric(m.Name)
			row := fmt.Sprintf("%s\t%s (%s)\t%s\t%s\t%s", strings.TrimPrefix(sc, "policy: "), m.Name, m.Unit, formatValue(m.Value), cell(v, ok), change(v, m.Value))
			errs := ""
			if i == 0 {
				errs = fmt.Sprintf("%d/%d", off.Errors, on.Errors)
			}
			fmt.Fprintln(tw, row+"\t"+errs)
		}
	}
	tw.Flush()
}

func (r *Report) printTargets(w io.Writer) {
	if len(r.Targets) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "target (issue 6)\trequired\tmeasured\tmet")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Required, t.Measured, met)
	}
	tw.Flush()
}

// WriteJSON writes the report to path, creating its directory.
func (r *Report) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func cell(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return formatValue(v)
}

// formatValue keeps three significant digits or so.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100 || (v == math.Trunc(v) && a < 1e12):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func percent(v, of float64, ok bool) string {
	if !ok || of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %%", 100*v/of)
}

func change(v, base float64) string {
	if base == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f %%", 100*(v-base)/base)
}
