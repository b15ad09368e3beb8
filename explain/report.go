package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report is what explain says about one HPA.
type Report struct {
	// Namespace and Name name the HPA.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Applied is false for an HPA read from a manifest the cluster does
	// not hold: the report then says what the HPA would read.
	Applied bool `json:"applied"`
	// Target describes the scale target, e.g. "Deployment/web, 3 replicas
	// (min 2, max 10)".
	Target string `json:"target"`
	// Metrics are the HPA's metrics, in its order.
	Metrics []MetricReport `json:"metrics"`
}

// MetricReport is the explanation of one metric of an HPA.
type MetricReport struct {
	// Index is the metric's position in the HPA, from 1.
	Index int `json:"index"`
	// Type is the metric's type: Pods, Object, External, Resource or
	// ContainerResource.
	Type string `json:"type"`
	// Metric is the metric name (the resource name for Resource metrics).
	Metric string `json:"metric"`
	// Selector is the metric selector as the HPA sends it, e.g.
	// "handler=work,window=30s"; empty when it selects everything.
	Selector string `json:"selector,omitempty"`
	// Object is an Object metric's described object, "Kind/name".
	Object string `json:"object,omitempty"`
	// Target is the metric's target, e.g. "average 50".
	Target string `json:"target"`
	// Steps are the checked steps, in order.
	Steps []Step `json:"steps"`
	// Verdict is the first failing step and its fix.
	Verdict Verdict `json:"verdict"`
}

// Verdict is the conclusion about one metric.
type Verdict struct {
	// Result is OK when no step failed, Failed otherwise.
	Result Result `json:"result"`
	// Step is the failing step's name; empty when Result is OK.
	Step string `json:"step,omitempty"`
	// Summary is the failing step's summary, or what the HPA reads.
	Summary string `json:"summary"`
	// Fix is the failing step's fix.
	Fix string `json:"fix,omitempty"`
}

// causes are the steps that can be why a metric has no value, in the order
// the HPA controller's request meets them. The hpa step is the symptom: it
// is the verdict only when none of them fails.
var causes = []string{StepAPIService, StepCatalog, StepQuery, StepSource, StepValue}

// Decide returns the verdict of a metric's steps: the first of the cause
// steps that failed; else the hpa step if it failed (the HPA reported an
// error that the path no longer shows, or one of its own, such as a
// missing scale target); else OK with the value step's summary.
func Decide(steps []Step) Verdict {
	byName := map[string]Step{}
	for _, s := range steps {
		byName[s.Name] = s
	}
	for _, name := range append(causes, StepHPA) {
		if s, ok := byName[name]; ok && s.Result == Failed {
			return Verdict{Result: Failed, Step: s.Name, Summary: s.Summary, Fix: s.Fix}
		}
	}
	v := Verdict{Result: OK, Summary: "every step holds"}
	if s, ok := byName[StepValue]; ok && s.Result == OK {
		v.Summary = "every step holds; the adapter serves " + s.Summary
	}
	return v
}

// Healthy reports whether every metric's verdict is OK.
func (r *Report) Healthy() bool {
	for _, m := range r.Metrics {
		if m.Verdict.Result != OK {
			return false
		}
	}
	return true
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// marks are the symbols of step results in the text report.
var marks = map[Result]string{OK: "✓", Failed: "✗", Skipped: "–"}

// WriteText writes the report for a terminal: per metric, one line per
// step with ✓, ✗ or – (not checked), details indented below it, the fix of
// a failed step, and the verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	what := "HPA"
	if !r.Applied {
		what = "HPA (not applied; what it would read)"
	}
	fmt.Fprintf(&b, "%s %s/%s: %s\n", what, r.Namespace, r.Name, r.Target)
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, "\nmetric %d of %d: %s\n", m.Index, len(r.Metrics), m.title())
		for _, s := range m.Steps {
			fmt.Fprintf(&b, "  %s %-10s  %s\n", marks[s.Result], s.Name, s.Summary)
			for _, d := range s.Details {
				fmt.Fprintf(&b, "  %-12s  %s\n", "", d)
			}
			if s.Result == Failed && s.Fix != "" {
				fmt.Fprintf(&b, "  %-12s  fix: %s\n", "", s.Fix)
			}
		}
		v := m.Verdict
		if v.Result == OK {
			fmt.Fprintf(&b, "  verdict: ✓ %s\n", v.Summary)
			continue
		}
		fmt.Fprintf(&b, "  verdict: ✗ %s: %s\n", v.Step, v.Summary)
		if v.Fix != "" {
			fmt.Fprintf(&b, "  fix: %s\n", v.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// title is the metric's heading: type, name, selector, object and target.
func (m *MetricReport) title() string {
	s := m.Type + " " + m.Metric
	if m.Selector != "" {
		s += "{" + m.Selector + "}"
	}
	if m.Object != "" {
		s += " of " + m.Object
	}
	if m.Target != "" {
		s += ", target " + m.Target
	}
	return s
}
