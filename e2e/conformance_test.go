package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// resultsEnv names a directory where TestConformance keeps the suite's
// reports (results.yaml, report.html, junit.xml, stdout.txt), one
// subdirectory per spec version; `make conformance` sets it to ./results.
const resultsEnv = "MOAT_CONFORMANCE_RESULTS"

// conformanceCounts are the totals the suite prints under
// "OCI Conformance Result".
type conformanceCounts struct {
	Result                                   string
	Pass, Fail, Skip, Disabled, Error, Total int
}

func (c conformanceCounts) String() string {
	return fmt.Sprintf("OCI Conformance Result: %s (Pass %d, FAIL %d, Skip %d, Disabled %d, Error %d, Total %d)",
		c.Result, c.Pass, c.Fail, c.Skip, c.Disabled, c.Error, c.Total)
}

var (
	conformanceResultRE = regexp.MustCompile(`(?m)^OCI Conformance Result: (\S+)$`)
	conformanceCountRE  = regexp.MustCompile(`(?m)^  (Disabled|Skip|Pass|FAIL|Error|Total)\.*: +(\d+)$`)
)

// parseConformanceSummary reads the totals from the suite's stdout.
func parseConformanceSummary(stdout string) (conformanceCounts, error) {
	var c conformanceCounts
	m := conformanceResultRE.FindStringSubmatch(stdout)
	if m == nil {
		return c, fmt.Errorf("no %q line in the output", "OCI Conformance Result")
	}
	c.Result = m[1]
	fields := map[string]*int{"Pass": &c.Pass, "FAIL": &c.Fail, "Skip": &c.Skip, "Disabled": &c.Disabled, "Error": &c.Error, "Total": &c.Total}
	seen := 0
	for _, m := range conformanceCountRE.FindAllStringSubmatch(stdout, -1) {
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return c, err
		}
		*fields[m[1]] = n
		seen++
	}
	if seen != len(fields) {
		return c, fmt.Errorf("found %d of the %d counts", seen, len(fields))
	}
	return c, nil
}

// conformanceResults is the part of results.yaml the test reads: the
// status of every API area and every data set.
type conformanceResults struct {
	APIs map[string]string `yaml:"apis"`
	Data map[string]string `yaml:"data"`
}

// TestConformance runs the OCI distribution-spec conformance suite against
// a fresh moat in the zero-config profile, once per spec version with that
// version's defaults (every API area of the version on). It fails on any
// FAIL, Error or Skip, and on a Disabled area or data set other than those
// the version's defaults or moat's profile switch off.
func TestConformance(t *testing.T) {
	suite := lookTool(t, "conformance")
	tests := []struct {
		version string
		// disabledAPIs are switched off by the suite's defaults for the version.
		disabledAPIs []string
		// disabledData are data sets switched off by the version's defaults
		// or left off because the profile does not accept them ("Sparse
		// Manifests" needs registry.relaxIndexReferences).
		disabledData []string
	}{
		{
			version:      "1.1",
			disabledAPIs: []string{"Blob upload cancel", "Manifest put with tag params"},
			disabledData: []string{"Sparse Manifests", "Tag Param", "Tag Param sha512"},
		},
		{
			version:      "dev",
			disabledData: []string{"Sparse Manifests"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			m := startMoat(t, moatOptions{})
			results := t.TempDir()
			if dir := os.Getenv(resultsEnv); dir != "" {
				results = filepath.Join(dir, tc.version)
			}
			run := command{
				path: suite,
				env: []string{
					"OCI_REGISTRY=" + m.Host,
					"OCI_TLS=disabled",
					"OCI_VERSION=" + tc.version,
					"OCI_RESULTS_DIR=" + results,
				},
				// Only the settings above configure the suite: not the test
				// process's OCI_* variables, nor an oci-conformance.yaml in
				// the working directory.
				dropEnv: "OCI_",
				dir:     t.TempDir(),
				timeout: 10 * time.Minute,
			}
			stdout, combined, err := run.output(t.Context())
			if dir := os.Getenv(resultsEnv); dir != "" {
				writeFile(t, filepath.Join(results, "stdout.txt"), []byte(combined))
			}
			counts, perr := parseConformanceSummary(stdout)
			if perr != nil {
				t.Fatalf("conformance %s: %v (exit: %v)\n%s", tc.version, perr, err, tail(combined, 80))
			}
			t.Logf("conformance %s: %s", tc.version, counts)
			if err != nil || counts.Result != "Pass" || counts.Fail != 0 || counts.Error != 0 || counts.Skip != 0 || counts.Pass == 0 {
				t.Errorf("conformance %s failed (exit: %v); failing and skipped tests:\n%s", tc.version, err, conformanceProblems(stdout))
			}

			b, err := os.ReadFile(filepath.Join(results, "results.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var res conformanceResults
			if err := yaml.Unmarshal(b, &res); err != nil {
				t.Fatalf("results.yaml: %v", err)
			}
			if len(res.APIs) == 0 || len(res.Data) == 0 {
				t.Fatalf("results.yaml lists no APIs or no data:\n%s", b)
			}
			checkStatuses(t, "API", res.APIs, tc.disabledAPIs)
			checkStatuses(t, "data set", res.Data, tc.disabledData)
		})
	}
}

// checkStatuses wants every entry to be Pass, except the disabled ones,
// which must be Disabled.
func checkStatuses(t *testing.T, kind string, statuses map[string]string, disabled []string) {
	t.Helper()
	names := make([]string, 0, len(statuses))
	for name := range statuses {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		want := "Pass"
		if slices.Contains(disabled, name) {
			want = "Disabled"
		}
		if got := statuses[name]; got != want {
			t.Errorf("%s %q: %s, want %s", kind, name, got, want)
		}
	}
	for _, name := range disabled {
		if _, ok := statuses[name]; !ok {
			t.Errorf("%s %q is not in results.yaml; update the expected Disabled list", kind, name)
		}
	}
}

// conformanceProblems picks from the suite's result tree (the first
// paragraph of its stdout) the tests that did not pass, with their error
// lines; at most about 200 lines.
func conformanceProblems(stdout string) string {
	var out []string
	keep := false
	for line := range strings.Lines(stdout) {
		line = strings.TrimRight(line, "\n")
		if line == "" || len(out) > 200 {
			break // the tree ends with an empty line
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasSuffix(line, ": FAIL"), strings.HasSuffix(line, ": Error"), strings.HasSuffix(line, ": Skip"):
			keep = true
			out = append(out, line)
		case keep && strings.HasPrefix(trimmed, "- "):
			out = append(out, line)
		default:
			keep = false
		}
	}
	return strings.Join(out, "\n")
}

// TestParseConformanceSummary pins the parser to the suite's output.
func TestParseConformanceSummary(t *testing.T) {
	const pass = `Test results
OCI Conformance Test: Pass
  OCI Conformance Test/ping: Pass

OCI Conformance Result: Pass
  Disabled......................:          2
  Skip..........................:          0
  Pass..........................:        860
  FAIL..........................:          0
  Error.........................:          0
  Total.........................:        862

API conformance:
  Tag listing...................:       Pass
`
	const fail = `Test results
OCI Conformance Test: FAIL
  OCI Conformance Test/sha256 blobs: FAIL
    OCI Conformance Test/sha256 blobs/get-missing: Pass
    OCI Conformance Test/sha256 blobs/post only: FAIL
      OCI Conformance Test/sha256 blobs/post only/blob-head: FAIL
       - unexpected status code: 404
  OCI Conformance Test/referrers: Skip

OCI Conformance Result: FAIL
  Disabled......................:          0
  Skip..........................:          1
  Pass..........................:        900
  FAIL..........................:          3
  Error.........................:          0
  Total.........................:        904
`
	tests := []struct {
		name     string
		stdout   string
		want     conformanceCounts
		problems []string
		wantErr  bool
	}{
		{
			name:   "pass",
			stdout: pass,
			want:   conformanceCounts{Result: "Pass", Pass: 860, Disabled: 2, Total: 862},
		},
		{
			name:   "fail",
			stdout: fail,
			want:   conformanceCounts{Result: "FAIL", Pass: 900, Fail: 3, Skip: 1, Total: 904},
			problems: []string{
				"OCI Conformance Test: FAIL",
				"  OCI Conformance Test/sha256 blobs: FAIL",
				"    OCI Conformance Test/sha256 blobs/post only: FAIL",
				"      OCI Conformance Test/sha256 blobs/post only/blob-head: FAIL",
				"       - unexpected status code: 404",
				"  OCI Conformance Test/referrers: Skip",
			},
		},
		{name: "no summary", stdout: "failed to load config: boom\n", wantErr: true},
		{name: "counts missing", stdout: "OCI Conformance Result: Pass\n  Pass....: 3\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConformanceSummary(tc.stdout)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %t", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got := conformanceProblems(tc.stdout); got != strings.Join(tc.problems, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", got, strings.Join(tc.problems, "\n"))
			}
		})
	}
}
