package main

import (
	"fmt"
	"math"
	"strings"
)

// TargetCheck is one target of issue 6 held against the figures.
type TargetCheck struct {
	Name     string  `json:"name"`
	Required string  `json:"required"`
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
	Met      bool    `json:"met"`
}

// checkTargets evaluates every target whose figures the report has.
func checkTargets(r *Report) []TargetCheck {
	var out []TargetCheck
	add := func(name, required, measured string, v float64, met bool) {
		out = append(out, TargetCheck{Name: name, Required: required, Measured: measured, Value: v, Met: met})
	}
	vs := func(scenario, metric, required string, min float64) {
		m, ok1 := r.value(scenario, subjectMoat, metric)
		d, ok2 := r.value(scenario, subjectDist, metric)
		if !ok1 || !ok2 || d == 0 {
			return
		}
		x := m / d
		add(scenario+" vs distribution", required, fmt.Sprintf("%.2f× (%s vs %s %s)", x, formatValue(m), formatValue(d), metric), x, x >= min)
	}
	ofCeiling := func(scenario, metric string, min float64) {
		csc, ceiling, _ := ceilingFor(scenario)
		m, ok1 := r.value(scenario, subjectMoat, metric)
		c, ok2 := r.value(csc, ceiling, metric)
		if !ok1 || !ok2 || c == 0 {
			return
		}
		x := m / c
		add(scenario+" vs "+strings.TrimPrefix(ceiling, "ceiling: ")+" ceiling", fmt.Sprintf("≥ %.0f %%", 100*min),
			fmt.Sprintf("%.0f %% (%s of %s %s)", 100*x, formatValue(m), formatValue(c), metric), x, x >= min)
	}
	under := func(name, scenario, metric, unit string, limit float64) {
		v, ok := r.value(scenario, subjectMoat, metric)
		if !ok {
			return
		}
		add(name, fmt.Sprintf("< %s %s", formatValue(limit), unit), fmt.Sprintf("%s %s", formatValue(v), unit), v, v < limit)
	}

	vs("push-small", "images/s", "≥ 2×", 2)
	vs("pull-small", "images/s", "≥ 2×", 2)
	for _, sc := range r.scenarios(subjectMoat) {
		if strings.HasPrefix(sc, "head-manifest c=") {
			ofCeiling(sc, "req/s", 0.8)
		}
	}
	small, large := r.Options.TagsSmall, r.Options.Tags
	if sc := fmt.Sprintf("tags-list %d", small); small > 0 {
		m, ok1 := r.value(sc, subjectMoat, "whole list p50")
		d, ok2 := r.value(sc, subjectDist, "whole list p50")
		if ok1 && ok2 && m > 0 {
			x := d / m
			add(sc+" whole, faster than distribution", "≥ 5×", fmt.Sprintf("%.1f× (%s vs %s ms)", x, formatValue(m), formatValue(d)), x, x >= 5)
		}
	}
	sc := fmt.Sprintf("tags-list %d", large)
	under(sc+" whole list", sc, "whole list p50", "ms", 100)
	under(sc+" first page of 100", sc, "first page p50", "ms", 5)
	under(sc+" middle page of 100", sc, "middle page p50", "ms", 5)
	ofCeiling("pull-large", "MB/s", 0.9)
	for _, sc := range r.scenarios(subjectMoat) {
		if strings.HasPrefix(sc, "push-large ") {
			ofCeiling(sc, "MB/s", 0.8)
		}
	}
	for _, sc := range r.scenarios(subjectPolicyOn) {
		off, ok1 := r.value(sc, subjectPolicyOff, firstMetric(r, sc))
		on, ok2 := r.value(sc, subjectPolicyOn, firstMetric(r, sc))
		if !ok1 || !ok2 || off == 0 {
			continue
		}
		d := (on - off) / off
		add(sc+" on vs off", "within 5 %", fmt.Sprintf("%+.1f %% (%s vs %s)", 100*d, formatValue(on), formatValue(off)), d, math.Abs(d) <= 0.05)
	}
	if m, ok := r.value("push-small", subjectMoat, "peak RSS"); ok {
		if d, ok := r.value("push-small", subjectDist, "peak RSS"); ok {
			add("peak RSS under push-small", "below distribution", fmt.Sprintf("%s vs %s MB", formatValue(m), formatValue(d)), m, m < d)
		}
	}
	stored := fmt.Sprintf("startup (%d tags)", large)
	under("startup, empty data dir (exec → /v2/)", "startup (empty)", "exec → /v2/ p50", "ms", 50)
	under(stored+" (exec → /v2/)", stored, "exec → /v2/ p50", "ms", 200)
	under("idle RSS after startup", "startup (empty)", "idle RSS", "MB", 30)
	under("stripped static binary", "binary size", "size", "MB", 40)
	return out
}

func firstMetric(r *Report, scenario string) string {
	if res := r.find(scenario, subjectPolicyOff); res != nil && len(res.Metrics) > 0 {
		return res.Metrics[0].Name
	}
	return ""
}
