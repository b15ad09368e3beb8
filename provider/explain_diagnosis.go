package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	plabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// labelLookback is how far back a diagnosis asks Prometheus for label
// names.
const labelLookback = 10 * time.Minute

// maxDiagnosticQueries bounds the requests one diagnosis sends to
// Prometheus besides the entry's query.
const maxDiagnosticQueries = 12

// searchLabel is the label a label search adds to tell its parts apart.
const searchLabel = "hpa_signals_label"

var promqlParser = parser.NewParser(parser.Options{})

// errBudget ends a diagnosis that asked Prometheus maxDiagnosticQueries
// times.
var errBudget = fmt.Errorf("the diagnosis stopped after %d questions to Prometheus", maxDiagnosticQueries)

// diagnosis asks Prometheus why a query has no usable value. It looks at
// the query's first vector selector (the metric the entry reads) and asks
// narrower and wider questions about it: is there a series for these
// objects, does a selector matcher leave none, do the series carry the
// namespace under another label.
//
// Every question stays within the request's scope: each vector selector
// it sends carries the scope's namespace matcher, or an equality matcher
// whose value is the request's namespace on another label name (a series
// relabelled to kubernetes_namespace="team-a" is still team-a's data), and
// checkAnchored refuses any other. Label names travel, and the values of
// labels of series within the scope; nothing of other namespaces does.
type diagnosis struct {
	p  *Provider
	in PrometheusInspector
	sq *SourceQuery

	vs           *parser.VectorSelector // the query's first vector selector; nil if none
	name         string                 // vs's metric name; "" if it has none
	nsLabel      string
	namespaces   []string           // the scope's namespaces; none for a not namespaced entry
	scope        []string           // the scope's matchers of vs, as PromQL
	userMatchers []*plabels.Matcher // vs's other matchers: the HPA's selector's, the template's
	window       time.Duration      // the longest range of the query
	asked        int
}

func newDiagnosis(p *Provider, in PrometheusInspector, sq *SourceQuery) *diagnosis {
	d := &diagnosis{p: p, in: in, sq: sq, nsLabel: nsLabelOf(sq.Scope), namespaces: sq.Scope.Namespaces}
	expr, err := promqlParser.ParseExpr(sq.PromQL)
	if err != nil {
		return d
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if d.vs == nil {
				d.vs = n
			}
		case *parser.MatrixSelector:
			d.window = max(d.window, n.Range)
		case *parser.SubqueryExpr:
			d.window = max(d.window, n.Range)
		}
		return nil
	})
	if d.vs == nil {
		return d
	}
	d.name = d.vs.Name
	for _, m := range d.vs.LabelMatchers {
		switch {
		case m.Name == model.MetricNameLabel:
			if m.Type == plabels.MatchEqual {
				d.name = m.Value
			}
		case m.Name == d.nsLabel && len(d.namespaces) > 0:
			d.scope = append(d.scope, m.String())
		default:
			d.userMatchers = append(d.userMatchers, m)
		}
	}
	return d
}

// selector renders a vector selector of the metric with matchers.
func (d *diagnosis) selector(matchers ...string) string {
	return "{" + strings.Join(append([]string{fmt.Sprintf("%s=%q", model.MetricNameLabel, d.name)}, matchers...), ",") + "}"
}

// count returns the number of series of a vector selector.
func (d *diagnosis) count(ctx context.Context, selector string) (float64, error) {
	samples, err := d.query(ctx, "count("+selector+")")
	if err != nil || len(samples) == 0 {
		return 0, err
	}
	return samples[0].Value, nil
}

// values returns up to maxListed values of label on the series of the
// metric with the base matchers, sorted.
func (d *diagnosis) values(ctx context.Context, label string, base []string) ([]string, error) {
	if !model.LegacyValidation.IsValidLabelName(label) {
		return nil, nil
	}
	samples, err := d.query(ctx, fmt.Sprintf("group by (%s) (%s)", label, d.selector(base...)))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range samples {
		if v := s.Labels[label]; v != "" {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out[:min(len(out), maxListed)], nil
}

// labelsHolding returns the labels of the metric's series (with the anchor
// matchers) whose value is one of values, most series first: one
// RecentLabelNames request for the candidates and one query that asks about all
// of them, each part anchored by its own matcher.
func (d *diagnosis) labelsHolding(ctx context.Context, anchor, values []string) ([]string, error) {
	if err := d.spend(); err != nil {
		return nil, err
	}
	names, err := d.in.RecentLabelNames(ctx, []string{d.selector(anchor...)}, labelLookback)
	if err != nil {
		return nil, err
	}
	match := "="
	value := values[0]
	if len(values) > 1 {
		match, value = "=~", alternatives(values)
	}
	var parts []string
	for _, l := range names {
		if l == model.MetricNameLabel || l == searchLabel || !model.LegacyValidation.IsValidLabelName(l) || slices.ContainsFunc(anchor, func(a string) bool { return strings.HasPrefix(a, l+"=") }) {
			continue
		}
		if len(parts) == 40 {
			break
		}
		sel := d.selector(append(slices.Clone(anchor), matcher(l, match, value))...)
		parts = append(parts, fmt.Sprintf("label_replace(%s, %q, %q, \"\", \"\")", sel, searchLabel, l))
	}
	if len(parts) == 0 {
		return nil, nil
	}
	samples, err := d.query(ctx, fmt.Sprintf("count by (%s) (%s)", searchLabel, strings.Join(parts, " or ")))
	if err != nil {
		return nil, err
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].Value > samples[j].Value })
	out := make([]string, 0, len(samples))
	for _, s := range samples {
		out = append(out, s.Labels[searchLabel])
	}
	return out, nil
}

// query runs one question after checking that it stays in the scope.
func (d *diagnosis) query(ctx context.Context, q string) ([]prometheus.Sample, error) {
	if err := d.checkAnchored(q); err != nil {
		return nil, err
	}
	if err := d.spend(); err != nil {
		return nil, err
	}
	return d.in.QueryAll(ctx, q)
}

func (d *diagnosis) spend() error {
	if d.asked >= maxDiagnosticQueries {
		return errBudget
	}
	d.asked++
	return nil
}

// checkAnchored refuses a question with a vector selector that carries
// neither one of the scope's matchers nor an equality matcher on one of
// the scope's namespaces.
func (d *diagnosis) checkAnchored(q string) error {
	if len(d.namespaces) == 0 {
		return nil // a not namespaced entry: its data belongs to no namespace
	}
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return fmt.Errorf("a diagnostic query does not parse: %w", err)
	}
	var bad error
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || bad != nil {
			return nil
		}
		if !slices.ContainsFunc(vs.LabelMatchers, func(m *plabels.Matcher) bool {
			return slices.Contains(d.scope, m.String()) || m.Type == plabels.MatchEqual && slices.Contains(d.namespaces, m.Value)
		}) {
			bad = fmt.Errorf("a diagnostic query would read outside the request's scope, so it was not run: %s", vs)
		}
		return nil
	})
	return bad
}

func matcher(label, op, value string) string { return fmt.Sprintf("%s%s%q", label, op, value) }

// alternatives is a regular expression matching exactly one of values.
func alternatives(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return strings.Join(quoted, "|")
}
