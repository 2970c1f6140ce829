package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Subjects of the policy comparison.
const (
	subjectPolicyOff = "moat policy off"
	subjectPolicyOn  = "moat policy on"
)

// policyRuleCount is how many ipRules the policy-on registry has.
const policyRuleCount = 100

// policy compares moat in dev mode (anonymous, no network rules) with
// moat with --dev=false, bearer tokens of the admin identity and 100 ip
// rules under defaultAction Deny (one of them allowing 127.0.0.1), on
// head-manifest and pull-small, PolicyRounds rounds in alternating order.
func (c *comparison) policy(ctx context.Context) ([]Result, error) {
	password := randomPassword()
	off, err := c.start(subjectMoat, "moat-policy-off-data", false, "")
	if err != nil {
		return nil, err
	}
	defer off.Stop()
	on, err := c.start(subjectMoat, "moat-policy-on-data", true, password)
	if err != nil {
		return nil, err
	}
	defer on.Stop()
	if err := waitReadyz(ctx, on.URL, 30*time.Second); err != nil {
		return nil, err
	}
	if err := applyIPRules(ctx, on.URL, password, policyRuleCount); err != nil {
		return nil, err
	}
	offClient, err := NewClient(off.URL, 16, "", "")
	if err != nil {
		return nil, err
	}
	onClient, err := NewClient(on.URL, 16, "admin", password)
	if err != nil {
		return nil, err
	}
	targets := []*Target{{Name: subjectPolicyOff, Client: offClient, Proc: off}, {Name: subjectPolicyOn, Client: onClient, Proc: on}}
	for _, t := range targets {
		if err := c.bench.seedSmall(ctx, t); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	rounds := map[string][]Result{}
	for round := range c.opts.PolicyRounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			busy := c.quiet.wait()
			head := c.bench.HeadManifest(ctx, t, c.opts.Concurrency)
			head.BusyBefore = busy
			busy = c.quiet.wait()
			pull := c.bench.PullSmall(ctx, t)
			pull.BusyBefore = busy
			for _, res := range []Result{head, pull} {
				res.Scenario = "policy: " + res.Scenario
				res.Load1 = load1()
				fmt.Fprintln(c.progress, progressLine(res))
				rounds[res.Scenario+"\x00"+res.Subject] = append(rounds[res.Scenario+"\x00"+res.Subject], res)
			}
		}
	}
	var out []Result
	for _, scenario := range []string{fmt.Sprintf("policy: head-manifest c=%d", c.opts.Concurrency), "policy: pull-small"} {
		for _, t := range targets {
			out = append(out, meanResult(rounds[scenario+"\x00"+t.Name]))
		}
	}
	c.logf("policy on: %d token fetches (one per scope, cached)", onClient.tokenFetches.Load())
	return out, nil
}

// meanResult averages the metrics of repeated runs and adds their errors.
func meanResult(rs []Result) Result {
	if len(rs) == 0 {
		return Result{}
	}
	out := rs[0]
	out.Metrics = append([]Metric(nil), rs[0].Metrics...)
	out.Latency = nil
	for _, r := range rs[1:] {
		out.Ops += r.Ops
		out.Seconds += r.Seconds
		out.Errors += r.Errors
		out.ErrorSamples = append(out.ErrorSamples, r.ErrorSamples...)
		for i := range out.Metrics {
			if v, ok := r.Metric(out.Metrics[i].Name); ok {
				out.Metrics[i].Value += v
			}
		}
	}
	for i := range out.Metrics {
		out.Metrics[i].Value /= float64(len(rs))
	}
	return out
}

func randomPassword() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitReadyz polls /readyz until moat has bootstrapped its admin identity.
func waitReadyz(ctx context.Context, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			drain(resp)
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz: not ready after %s", base, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// applyIPRules sets defaultAction Deny and n ip rules through the admin
// API; one of them allows 127.0.0.1, the others are documentation and
// private ranges the bench never uses.
func applyIPRules(ctx context.Context, base, password string, n int) error {
	type rule struct {
		Action string `json:"action"`
		Value  string `json:"value"`
	}
	rules := make([]rule, 0, n)
	for i := range n - 1 {
		rules = append(rules, rule{"Allow", fmt.Sprintf("10.%d.%d.0/24", i/200, i%200)})
	}
	rules = append(rules[:n/2], append([]rule{{"Allow", "127.0.0.1"}}, rules[n/2:]...)...)
	body, err := json.Marshal(map[string]any{"properties": map[string]any{
		"networkRuleSet": map[string]any{"defaultAction": "Deny", "ipRules": rules},
	}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, base+"/admin/v1/registry", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH /admin/v1/registry: %w", statusError(req, resp))
	}
	var got struct {
		Properties struct {
			NetworkRuleSet struct {
				DefaultAction string `json:"defaultAction"`
				IPRules       []rule `json:"ipRules"`
			} `json:"networkRuleSet"`
		} `json:"properties"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return fmt.Errorf("PATCH /admin/v1/registry: %w", err)
	}
	if rs := got.Properties.NetworkRuleSet; rs.DefaultAction != "Deny" || len(rs.IPRules) != n {
		return fmt.Errorf("PATCH /admin/v1/registry: defaultAction %q with %d rules, want Deny with %d", rs.DefaultAction, len(rs.IPRules), n)
	}
	return nil
}
