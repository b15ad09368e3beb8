package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// AllNamespaces in CallerNamespaces lets every namespace read a
// namespaced: false entry.
const AllNamespaces = "*"

// IsNamespaced reports whether m's data belongs to namespaces, so that a
// request reads only its own namespace's share (see Metric.Namespaced).
func (m *Metric) IsNamespaced() bool { return m.Namespaced == nil || *m.Namespaced }

// LabelsFor returns the Prometheus labels that hold the namespace and pod
// of m's series: m's own labels where it sets them, else the catalog's.
func (c *Catalog) LabelsFor(m *Metric) PrometheusLabels { return m.labelsIn(c.Prometheus.Labels) }

func (m *Metric) labelsIn(l PrometheusLabels) PrometheusLabels {
	if m.Labels != nil {
		l.Namespace = cmp.Or(m.Labels.Namespace, l.Namespace)
		l.Pod = cmp.Or(m.Labels.Pod, l.Pod)
	}
	return l
}

// AllowsCaller reports whether a request made in namespace may read m at
// all: always for a namespaced entry, and for a namespaced: false entry only
// when CallerNamespaces lists namespace or "*".
func (m *Metric) AllowsCaller(namespace string) bool {
	if m.IsNamespaced() {
		return true
	}
	return slices.Contains(m.CallerNamespaces, AllNamespaces) || slices.Contains(m.CallerNamespaces, namespace)
}

// QueryProblem is one place where a rendered query breaks the scope rules
// CheckQuery enforces: either a vector selector without the required
// matchers (Selector and Missing set) or a range or subquery window longer
// than the maximum (Window and Range set).
type QueryProblem struct {
	// Selector is a vector selector that lacks required matchers.
	Selector *parser.VectorSelector
	// Missing are the required matchers Selector does not carry.
	Missing []*labels.Matcher
	// Window is a *parser.MatrixSelector or *parser.SubqueryExpr whose
	// range is longer than the maximum.
	Window parser.Expr
	// Range is Window's range.
	Range time.Duration
}

// OutOfScope reports whether the problem is a selector that would read
// outside the scope (rather than a range that is too long).
func (p QueryProblem) OutOfScope() bool { return p.Selector != nil }

// String describes the problem with the offending expression as PromQL.
func (p QueryProblem) String() string {
	if p.OutOfScope() {
		missing := make([]string, len(p.Missing))
		for i, m := range p.Missing {
			missing[i] = m.String()
		}
		return fmt.Sprintf("the vector selector %s lacks the scope matchers {%s}", p.Selector, strings.Join(missing, ","))
	}
	kind := "range"
	if _, ok := p.Window.(*parser.SubqueryExpr); ok {
		kind = "subquery range"
	}
	return fmt.Sprintf("the %s [%s] of %s", kind, model.Duration(p.Range), p.Window)
}

// CheckQuery parses the PromQL query and returns every place where it reads
// outside its scope: a vector selector (also inside a range selector or a
// subquery) that does not carry each of required with the same name, type
// and value (only those fields of the matchers are compared), and a range
// selector or subquery whose range is longer than maxRange (zero: no
// limit). Extra matchers on a selector only narrow it and are fine. The
// error is the parser's, when query is not valid PromQL.
func CheckQuery(query string, required []*labels.Matcher, maxRange time.Duration) ([]QueryProblem, error) {
	expr, err := promqlParser.ParseExpr(query)
	if err != nil {
		return nil, err
	}
	return CheckExpr(expr, required, maxRange), nil
}

// CheckExpr is CheckQuery for an expression already parsed.
func CheckExpr(expr parser.Expr, required []*labels.Matcher, maxRange time.Duration) []QueryProblem {
	var out []QueryProblem
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			var missing []*labels.Matcher
			for _, r := range required {
				if !slices.ContainsFunc(n.LabelMatchers, func(m *labels.Matcher) bool {
					return m.Name == r.Name && m.Type == r.Type && m.Value == r.Value
				}) {
					missing = append(missing, r)
				}
			}
			if len(missing) > 0 {
				out = append(out, QueryProblem{Selector: n, Missing: missing})
			}
		case *parser.MatrixSelector:
			if maxRange > 0 && n.Range > maxRange {
				out = append(out, QueryProblem{Window: n, Range: n.Range})
			}
		case *parser.SubqueryExpr:
			if maxRange > 0 && n.Range > maxRange {
				out = append(out, QueryProblem{Window: n, Range: n.Range})
			}
		}
		return nil
	})
	return out
}
