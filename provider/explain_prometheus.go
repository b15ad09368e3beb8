package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/explain"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// explainPrometheus is the source step of a Prometheus entry: the query the
// request runs, asked of Prometheus now (bypassing the cache), and what its
// answer holds for the HPA's objects: series per selected pod, pods without
// series, NaN values. When there is no usable value it looks for why (see
// diagnosis).
func (p *Provider) explainPrometheus(ctx context.Context, ex *explained, sq *SourceQuery) explain.Step {
	if p.Prometheus == nil {
		return explain.Step{Name: explain.StepSource, Result: explain.Failed,
			Summary: "no Prometheus is configured", Fix: "start the adapter with --prometheus-url"}
	}
	in, ok := p.Prometheus.(PrometheusInspector)
	if !ok {
		return skipped(explain.StepSource, "not checked: this adapter's Prometheus source cannot be inspected")
	}
	samples, err := in.QueryAll(ctx, sq.PromQL)
	var restarted *prometheus.RestartError
	if errors.As(err, &restarted) {
		return explain.Step{Name: explain.StepSource, Result: explain.Failed,
			Summary: restarted.Error(),
			Fix:     "wait until the time the message names: Prometheus' data has a hole from its last scrape before its restart to its first scrape after it; meanwhile the adapter serves its last value for up to --max-staleness, then the HPA holds its replica count"}
	}
	if err != nil {
		return explain.Step{Name: explain.StepSource, Result: explain.Failed,
			Summary: "Prometheus does not answer the query: " + p.redact(safeMessage(err)),
			Fix:     "Prometheus is unreachable or failing for the adapter: check it and --prometheus-url (the adapter's log has the address); meanwhile the adapter serves its last value for up to --max-staleness, then the HPA holds its replica count"}
	}
	step := p.explainSamples(ctx, ex, sq, in, samples)
	if note := p.restartNote(ctx, sq); note != "" {
		step.Details = append(step.Details, note)
	}
	return step
}

// restartNote says how the query's window was shortened after a
// Prometheus restart, or "" when it was not (or the source cannot say).
func (p *Provider) restartNote(ctx context.Context, sq *SourceQuery) string {
	ev, ok := p.Prometheus.(PrometheusEvaluator)
	if !ok {
		return ""
	}
	e, err := ev.Evaluation(ctx, sq.PromQL)
	if err != nil || !e.Shortened() {
		return ""
	}
	return fmt.Sprintf("Prometheus restarted at %s: the window is shortened from %s to the %s since its first scrape at %s, whole again from %s: %s",
		e.Started.UTC().Format(time.TimeOnly+"Z"), e.LookBack, e.Window, e.DataSince.UTC().Format(time.TimeOnly+"Z"),
		e.DataSince.Add(e.LookBack).UTC().Format(time.TimeOnly+"Z"), e.Query)
}

// explainSamples checks the answer of the query for the HPA's objects.
func (p *Provider) explainSamples(ctx context.Context, ex *explained, sq *SourceQuery, in PrometheusInspector, samples []prometheus.Sample) explain.Step {
	d := newDiagnosis(p, in, sq)
	switch {
	case ex.req.API == config.APIExternal:
		return d.external(ctx, samples)
	case ex.req.Name == "":
		if ex.pods == nil {
			return skipped(explain.StepSource, "not checked: the pods the HPA scales are not known (no pod selector)")
		}
		names, err := p.Pods.PodNames(ex.namespace, ex.pods)
		if err != nil {
			return explain.Step{Name: explain.StepSource, Result: explain.Failed,
				Summary: "the adapter cannot list the HPA's pods: " + err.Error(), Fix: "the adapter's pod watch is not ready; check its log"}
		}
		if len(names) == 0 {
			return explain.Step{Name: explain.StepSource, Result: explain.Failed,
				Summary: fmt.Sprintf("no pod in namespace %q matches the HPA's pod selector %q", ex.namespace, ex.pods),
				Fix:     "the scale target has no pods yet, or its selector matches none: kubectl get pods -l '" + ex.pods.String() + "'"}
		}
		sort.Strings(names)
		return d.objects(ctx, samples, names, "pods")
	default:
		return d.objects(ctx, samples, []string{ex.req.Name}, ex.req.Resource.String())
	}
}

// objects checks the answer for the HPA's objects: the selected pods, or
// the one described object; what names them in messages.
func (d *diagnosis) objects(ctx context.Context, samples []prometheus.Sample, names []string, what string) explain.Step {
	label := d.sq.ObjectLabel
	byName := map[string]prometheus.Sample{}
	unlabeled := 0
	for _, s := range samples {
		if v := s.Labels[label]; v != "" {
			byName[v] = s
		} else {
			unlabeled++
		}
	}
	var withValue, nan, missing []string
	for _, n := range names {
		s, ok := byName[n]
		switch {
		case !ok:
			missing = append(missing, n)
		case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
			nan = append(nan, n)
		default:
			withValue = append(withValue, n)
		}
	}
	others := 0
	for n := range byName {
		if !slices.Contains(names, n) {
			others++
		}
	}
	var details []string
	if len(missing) > 0 && len(withValue) > 0 {
		details = append(details, "without series: "+listNames(missing))
	}
	if len(nan) > 0 && len(withValue) > 0 {
		details = append(details, "NaN: "+listNames(nan))
	}
	if others > 0 {
		details = append(details, fmt.Sprintf("%d more series of the query belong to %s the HPA does not read", others, what))
	}
	if unlabeled > 0 {
		details = append(details, fmt.Sprintf("%d series of the query carry no %q label", unlabeled, label))
	}
	step := explain.Step{Name: explain.StepSource, Result: explain.OK}
	if len(withValue) > 0 {
		if what == "pods" {
			step.Summary = fmt.Sprintf("Prometheus has values for %d of the %d selected pods", len(withValue), len(names))
		} else {
			step.Summary = fmt.Sprintf("Prometheus has a value for %s %q: %s", what, names[0], formatFloat(byName[names[0]].Value))
		}
		step.Details = details
		return step
	}
	var f finding
	if len(nan) > 0 {
		f = nanFinding(nan)
		if len(missing) > 0 {
			details = append(details, "without series: "+listNames(missing))
		}
	} else {
		f = d.missingObjects(ctx, missing, what)
	}
	step.Result, step.Summary, step.Fix = explain.Failed, f.summary, f.fix
	step.Details = append(f.details, details...)
	return step
}

// external checks the answer of an external metric: any finite value.
func (d *diagnosis) external(ctx context.Context, samples []prometheus.Sample) explain.Step {
	finite := 0
	for _, s := range samples {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			finite++
		}
	}
	step := explain.Step{Name: explain.StepSource, Result: explain.OK}
	if finite > 0 {
		step.Summary = fmt.Sprintf("Prometheus answers %d series with values", finite)
		if finite < len(samples) {
			step.Details = []string{fmt.Sprintf("%d more series are NaN and left out", len(samples)-finite)}
		}
		return step
	}
	var f finding
	if len(samples) > 0 {
		f = nanFinding([]string{fmt.Sprintf("all %d series", len(samples))})
	} else {
		f = d.emptyResult(ctx)
	}
	step.Result, step.Summary, step.Details, step.Fix = explain.Failed, f.summary, f.details, f.fix
	return step
}

// finding is what a diagnosis found: a failed source step's summary,
// details and fix.
type finding struct {
	summary string
	details []string
	fix     string
}

func nanFinding(what []string) finding {
	return finding{
		summary: "the query returns NaN for " + listNames(what),
		details: []string{"NaN is 0/0: a latency quantile or a ratio over a window without requests"},
		fix:     "the adapter answers NaN as no data (404) and the HPA holds; send traffic to the workload, or use a longer window",
	}
}

// missingObjects explains why the query has no series for the named
// objects (pods, or a described object, what names them): the series
// exist but the selector or the query's functions drop them, or they carry
// the namespace and object under other labels than the catalog's, or they
// do not exist.
func (d *diagnosis) missingObjects(ctx context.Context, objects []string, what string) finding {
	if d.name == "" || len(d.namespaces) != 1 {
		return d.noName()
	}
	ns, nsLabel, objLabel := d.namespaces[0], d.nsLabel, d.sq.ObjectLabel
	objMatcher := matcher(objLabel, "=~", alternatives(objects))
	n, err := d.count(ctx, d.selector(append(slices.Clone(d.scope), objMatcher)...))
	if err != nil {
		return d.failed(err)
	}
	if n > 0 {
		if f, found := d.culprit(ctx, objMatcher); found {
			return f
		}
		return d.functions(fmt.Sprintf("the %s have %.0f series of %s", what, n, d.name))
	}
	// No series under the catalog's labels: look for series that carry the
	// namespace and the objects' names under other labels.
	nsLabels, err := d.labelsHolding(ctx, nil, []string{ns})
	if err != nil {
		return d.failed(err)
	}
	for _, l := range nsLabels[:min(len(nsLabels), 3)] {
		objLabels, err := d.labelsHolding(ctx, []string{matcher(l, "=", ns)}, objects)
		if err != nil {
			return d.failed(err)
		}
		if len(objLabels) == 0 {
			continue
		}
		return relabelFinding(d.name, what, nsLabel, l, objLabel, objLabels[0], ns)
	}
	if slices.Contains(nsLabels, nsLabel) {
		return finding{
			summary: fmt.Sprintf("none of the %s has series of %s: %s", what, d.name, listNames(objects)),
			details: []string{fmt.Sprintf("other series of %s in namespace %q exist, labelled %s=<name>; none names these %s", d.name, ns, objLabel, what)},
			fix:     fmt.Sprintf("make sure Prometheus scrapes these %s and labels their series %s=<name> (the catalog's prometheus.labels)", what, objLabel),
		}
	}
	return d.absent(ctx, nsLabels)
}

// emptyResult explains an empty answer of an external metric.
func (d *diagnosis) emptyResult(ctx context.Context) finding {
	if d.name == "" {
		return d.noName()
	}
	n, err := d.count(ctx, d.vs.String())
	if err != nil {
		return d.failed(err)
	}
	if n > 0 {
		return d.functions(fmt.Sprintf("its selector %s has %.0f series", d.vs, n))
	}
	if f, found := d.culprit(ctx); found {
		return f
	}
	if len(d.namespaces) != 1 {
		return finding{summary: fmt.Sprintf("Prometheus has no series of %s in the namespaces the query reads", d.name),
			fix: fmt.Sprintf("make sure Prometheus scrapes the workload and that it exports %s", d.name)}
	}
	nsLabels, err := d.labelsHolding(ctx, nil, []string{d.namespaces[0]})
	if err != nil {
		return d.failed(err)
	}
	for _, l := range nsLabels {
		if l != d.nsLabel {
			return relabelFinding(d.name, "", d.nsLabel, l, "", "", d.namespaces[0])
		}
	}
	return d.absent(ctx, nsLabels)
}

// culprit finds the selector matcher that leaves no series (the HPA's
// metric selector, or extra, e.g. an object matcher), and what its label
// holds instead.
func (d *diagnosis) culprit(ctx context.Context, extra ...string) (finding, bool) {
	base := append(slices.Clone(d.scope), extra...)
	for _, m := range d.userMatchers {
		n, err := d.count(ctx, d.selector(append(slices.Clone(base), m.String())...))
		if err != nil {
			return d.failed(err), true
		}
		if n > 0 {
			continue
		}
		values, err := d.values(ctx, m.Name, base)
		if err != nil {
			return d.failed(err), true
		}
		held := "no series of it has the label " + m.Name
		if len(values) > 0 {
			held = fmt.Sprintf("%s holds %s", m.Name, listNames(quoted(values)))
		}
		return finding{
			summary: fmt.Sprintf("no series of %s has %s", d.name, m),
			details: []string{held},
			fix:     fmt.Sprintf("change %s=... in the HPA's metric selector to a value the series hold", m.Name),
		}, true
	}
	return finding{}, false
}

// functions explains series that exist but that the query's functions
// turn into nothing.
func (d *diagnosis) functions(exists string) finding {
	f := finding{
		summary: exists + ", but the query returns nothing for them",
		fix:     "wait until the workload has served for one window, or use a longer window",
	}
	if d.window > 0 {
		f.details = []string{fmt.Sprintf("rate() over [%s] needs two samples of a series within the window: a series younger than the window, or scraped less than twice per window, has none", d.window)}
	}
	return f
}

// absent explains that no series of the metric carries the namespace.
func (d *diagnosis) absent(ctx context.Context, nsLabels []string) finding {
	any, err := d.in.RecentLabelNames(ctx, []string{fmt.Sprintf("{__name__=%q}", d.name)}, labelLookback)
	if err != nil {
		return d.failed(err)
	}
	if len(any) == 0 {
		return finding{
			summary: fmt.Sprintf("Prometheus has no series named %s at all", d.name),
			fix:     fmt.Sprintf("make sure Prometheus scrapes the workload and that it exports %s (the presets read what client_golang's promhttp middleware and Go collector export)", d.name),
		}
	}
	return finding{
		summary: fmt.Sprintf("Prometheus has no series of %s for namespace %q, under any label", d.name, d.namespaces[0]),
		fix:     fmt.Sprintf("make sure Prometheus scrapes the workloads of namespace %q and labels their series %s=<namespace>", d.namespaces[0], d.nsLabel),
	}
}

// relabelFinding reports series found under other labels than the
// catalog's prometheus.labels; objLabel and gotObj are empty for a metric
// without objects.
func relabelFinding(name, what, nsLabel, gotNS, objLabel, gotObj, ns string) finding {
	var have, want []string
	if gotNS != nsLabel {
		have, want = append(have, fmt.Sprintf("%s=%q", gotNS, ns)), append(want, fmt.Sprintf("%s=%q", nsLabel, ns))
	}
	if objLabel != "" && gotObj != objLabel {
		have, want = append(have, gotObj+"=<name>"), append(want, objLabel+"=<name>")
	}
	subject := "series of " + name
	if what != "" {
		subject = fmt.Sprintf("the %s' series of %s", what, name)
	}
	var settings []string
	if gotNS != nsLabel {
		settings = append(settings, "prometheus.labels.namespace: "+gotNS)
	}
	if objLabel != "" && gotObj != objLabel {
		if what == "pods" {
			settings = append(settings, "prometheus.labels.pod: "+gotObj)
		} else {
			settings = append(settings, fmt.Sprintf("the entry's resources {%s: %s}", what, gotObj))
		}
	}
	return finding{
		summary: fmt.Sprintf("%s carry %s, not %s", subject, strings.Join(have, " and "), strings.Join(want, " and ")),
		details: []string{"Prometheus' scrape configuration relabels them; the adapter reads the labels of the catalog's prometheus.labels"},
		fix: fmt.Sprintf("relabel these targets to %s in Prometheus' scrape configuration, or, if Prometheus labels every target this way, set %s in the catalog",
			strings.Join(want, " and "), strings.Join(settings, " and ")),
	}
}

func (d *diagnosis) noName() finding {
	return finding{summary: "Prometheus has no value for the query", fix: "run the query in Prometheus to see which part of it has no series"}
}

func (d *diagnosis) failed(err error) finding {
	return finding{summary: "Prometheus failed while explaining: " + d.p.redact(safeMessage(err)), fix: "check Prometheus and ask again"}
}

// list renders up to maxListed names.
func listNames(names []string) string {
	if len(names) > maxListed {
		return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
	}
	return strings.Join(names, ", ")
}

// nsLabelOf is the catalog's namespace label for s.
func nsLabelOf(s prometheus.Scope) string {
	return cmp.Or(s.Labels.Namespace, config.DefaultNamespaceLabel)
}
