package prometheus

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	plabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/strutil"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/hpa-signals/hpa-signals/config"
)

// ErrInvalidSelector is wrapped by BuildQuery errors caused by the HPA's
// metric selector (a key the entry does not accept, an operator PromQL
// cannot express, a parameter value outside its pattern). Callers map it to
// 400 Bad Request; the message names the key and the fix.
var ErrInvalidSelector = errors.New("invalid metric selector")

// ErrOutOfScope is wrapped by BuildQuery errors about a built query in
// which some vector selector lacks the scope's matchers. It means a bug (in
// a template that validation let through, or in the escaping), never a
// caller's mistake: the query is not returned, so it never runs, and
// callers answer 500.
var ErrOutOfScope = errors.New("query reads outside its scope")

// ErrRangeTooLong is wrapped, together with ErrInvalidSelector, by
// BuildQuery errors about a range or subquery window that selector values
// made longer than prometheus.maxRange, so callers can count the limit.
var ErrRangeTooLong = errors.New("range too long")

// Scope is what the request, not the HPA's metric selector, decides: which
// namespaces and which grouping. Selector keys that name a scope label are
// rejected so a selector cannot widen the scope. The provider builds it
// (provider.PrometheusScope) from the catalog's settings, which config has
// defaulted and validated.
//
// Whether the query is restricted to namespaces at all is the catalog's
// decision, not the request's: for a namespaced entry (the default)
// Namespaces is required; for a namespaced: false entry it must be empty,
// the query carries no namespace matcher, and the namespace, pod and
// resource labels are ordinary selector keys (accepted when selectorLabels
// lists them or has "*"), since no scope sets them. GroupBy labels stay
// reserved either way.
type Scope struct {
	// Labels names the namespace and pod labels (prometheus.labels of the
	// catalog).
	Labels config.PrometheusLabels
	// Namespaces the query is restricted to: one is matched with =,
	// several with =~ over their escaped alternatives. Required for a
	// namespaced entry, empty for a namespaced: false one.
	Namespaces []string
	// GroupBy are the label names the query groups by (.GroupBy in the
	// template). Empty aggregates everything into one series.
	GroupBy []string
	// MaxRange is the longest range or subquery window the query may use
	// (prometheus.maxRange of the catalog). Zero means no limit.
	MaxRange time.Duration
}

// BuildQuery renders the PromQL of entry m for scope s and the HPA's metric
// selector. Selector keys declared as m.Parameters fill template
// parameters; the others become label matchers if m.SelectorLabels allows
// them. Equal inputs produce equal strings, so the result is a cache key.
//
// Every query is parsed before it is returned and checked with
// config.CheckQuery: each vector selector must carry the scope's matchers
// exactly as built (the namespace matcher), else the error wraps
// ErrOutOfScope; a range longer than s.MaxRange, which only a parameter
// value can cause once the catalog is validated, wraps ErrInvalidSelector
// like every other error caused by the selector.
func BuildQuery(m *config.Metric, s Scope, metricSelector labels.Selector) (string, error) {
	var reqs []requirement
	if metricSelector != nil {
		rs, selectable := metricSelector.Requirements()
		if !selectable && !metricSelector.Empty() {
			return "", fmt.Errorf("%w: selector %q selects nothing; use a selector without contradictions", ErrInvalidSelector, metricSelector)
		}
		for _, r := range rs {
			reqs = append(reqs, requirement{key: r.Key(), op: r.Operator(), values: r.ValuesUnsorted()})
		}
	}
	return buildQuery(m, s, reqs)
}

// requirement is a selector requirement without the Kubernetes syntax
// limits on values, so the fuzz test can feed any string.
type requirement struct {
	key    string
	op     selection.Operator
	values []string
}

func buildQuery(m *config.Metric, s Scope, reqs []requirement) (string, error) {
	scope, reserved, err := scopeMatchers(m, s)
	if err != nil {
		return "", fmt.Errorf("build query for metric %q: %w", m.Name, err)
	}

	reqs = slices.Clone(reqs)
	for i := range reqs {
		reqs[i].values = slices.Clone(reqs[i].values)
		slices.Sort(reqs[i].values)
		reqs[i].values = slices.Compact(reqs[i].values)
		if reqs[i].op == selection.DoubleEquals {
			reqs[i].op = selection.Equals
		}
	}
	slices.SortFunc(reqs, compareRequirements)

	params := make(map[string]string, len(m.Parameters))
	values := map[string]string{}
	for _, sm := range scope {
		labelValues(values, sm)
	}
	var matchers []string
	for _, r := range reqs {
		if p := parameter(m, r.key); p != nil {
			v, err := paramValue(p, r, params)
			if err != nil {
				return "", fmt.Errorf("%w for metric %q: %w", ErrInvalidSelector, m.Name, err)
			}
			params[p.Name] = v
			continue
		}
		mt, err := translate(m, r, reserved)
		if err != nil {
			return "", fmt.Errorf("%w for metric %q: %w", ErrInvalidSelector, m.Name, err)
		}
		labelValues(values, mt)
		matchers = append(matchers, mt.String())
	}
	// Matcher.String quotes the value with strconv.Quote: PromQL string
	// literals use Go's escape sequences, so the value parses back to
	// itself for any valid UTF-8; the fuzz test checks the round trip.
	slices.Sort(matchers)
	matchers = slices.Compact(matchers)
	all := make([]string, 0, len(scope)+len(matchers))
	for _, sm := range scope {
		all = append(all, sm.String())
	}
	all = append(all, matchers...)

	// RenderQuery applies parameter defaults and checks values against
	// their anchored patterns.
	q, err := m.RenderQuery(config.QueryData{
		LabelMatchers: strings.Join(all, ","),
		GroupBy:       slices.Clone(s.GroupBy),
		Params:        params,
		LabelValues:   values,
	})
	if errors.Is(err, config.ErrInvalidParameter) {
		return "", fmt.Errorf("%w for metric %q: %w", ErrInvalidSelector, m.Name, err)
	}
	if err != nil {
		return "", fmt.Errorf("build query for metric %q: %w", m.Name, err)
	}
	if err := checkScope(q, scope, s.MaxRange, params); err != nil {
		return "", fmt.Errorf("build query for metric %q: %w", m.Name, err)
	}
	return q, nil
}

// labelValues records what an equality or regular-expression matcher
// selects in values, for .LabelValuesByName: a regular expression of the
// alternatives ("a|b"), escaped for a PromQL string.
func labelValues(values map[string]string, m *plabels.Matcher) {
	var re string
	switch m.Type {
	case plabels.MatchEqual:
		re = regexp.QuoteMeta(m.Value)
	case plabels.MatchRegexp:
		re = m.Value
	default:
		return
	}
	q := strconv.Quote(re)
	values[m.Name] = q[1 : len(q)-1]
}

// checkScope parses the built query q and makes sure that every vector
// selector carries the scope matchers exactly as built and that no range is
// longer than maxRange. params are the parameters the selector set.
func checkScope(q string, scope []*plabels.Matcher, maxRange time.Duration, params map[string]string) error {
	problems, err := config.CheckQuery(q, scope, maxRange)
	if err != nil {
		// Templates are parsed at load time with the defaults, so only a
		// parameter value can make the query invalid.
		if len(params) > 0 {
			return fmt.Errorf("%w: with %s the query is not valid PromQL (%w); tighten the parameter's pattern in the catalog", ErrInvalidSelector, paramList(params), err)
		}
		return fmt.Errorf("the built query does not parse (%w); it was not run: %s", err, q)
	}
	for _, p := range problems {
		if p.OutOfScope() {
			return fmt.Errorf("%w: %s; the query was not run: %s", ErrOutOfScope, p, q)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	p := problems[0]
	if len(params) == 0 {
		return fmt.Errorf("%s is longer than prometheus.maxRange (%s) with the entry's parameter defaults; the catalog entry needs fixing", p, model.Duration(maxRange))
	}
	return fmt.Errorf("%w: %w: %s is longer than prometheus.maxRange (%s); choose shorter values than %s in the metric selector, or ask the admin to raise prometheus.maxRange in the catalog",
		ErrInvalidSelector, ErrRangeTooLong, p, model.Duration(maxRange), paramList(params))
}

// paramList writes parameter values as a selector would: "a=1,window=5m".
func paramList(params map[string]string) string {
	set := make([]string, 0, len(params))
	for k, v := range params {
		set = append(set, k+"="+v)
	}
	slices.Sort(set)
	return strings.Join(set, ",")
}

// scopeMatchers returns the scope's matchers and the label names a
// selector must not touch. The matchers' regular expressions are not
// compiled: they are only rendered and compared by name, type and value.
func scopeMatchers(m *config.Metric, s Scope) ([]*plabels.Matcher, map[string]bool, error) {
	reserved := map[string]bool{}
	if m.IsNamespaced() {
		reserved[s.Labels.Namespace], reserved[s.Labels.Pod] = true, true
		for _, l := range m.Resources {
			reserved[l] = true
		}
	}
	for _, l := range s.GroupBy {
		reserved[l] = true
	}
	for _, n := range s.Namespaces {
		if !utf8.ValidString(n) {
			return nil, nil, fmt.Errorf("namespace %q is not valid UTF-8", n)
		}
	}
	ns := slices.Compact(slices.Sorted(slices.Values(s.Namespaces)))
	switch {
	case !m.IsNamespaced():
		if len(ns) > 0 {
			return nil, nil, fmt.Errorf("the entry is namespaced: false and reads no namespace's data, but the scope names namespaces %q", ns)
		}
		return nil, reserved, nil
	case len(ns) == 0:
		return nil, nil, errors.New("no namespace to restrict the query to")
	case len(ns) == 1:
		return []*plabels.Matcher{{Name: s.Labels.Namespace, Type: plabels.MatchEqual, Value: ns[0]}}, reserved, nil
	default:
		return []*plabels.Matcher{{Name: s.Labels.Namespace, Type: plabels.MatchRegexp, Value: alternatives(ns)}}, reserved, nil
	}
}

func parameter(m *config.Metric, key string) *config.Parameter {
	for i := range m.Parameters {
		if m.Parameters[i].Name == key {
			return &m.Parameters[i]
		}
	}
	return nil
}

// paramValue checks a requirement on a parameter key and returns its value.
// Defaults and patterns are applied by config.Metric.RenderQuery.
func paramValue(p *config.Parameter, r requirement, seen map[string]string) (string, error) {
	if r.op != selection.Equals && r.op != selection.DoubleEquals || len(r.values) != 1 {
		return "", fmt.Errorf("parameter %q only takes %s=<value>, not operator %q", p.Name, p.Name, r.op)
	}
	v := r.values[0]
	if prev, ok := seen[p.Name]; ok && prev != v {
		return "", fmt.Errorf("parameter %q is set twice (%q and %q); set it once", p.Name, prev, v)
	}
	return v, nil
}

// translate turns a selector requirement on a label key into a matcher.
func translate(m *config.Metric, r requirement, reserved map[string]bool) (*plabels.Matcher, error) {
	k := r.key
	switch {
	case strings.HasPrefix(k, "__"):
		return nil, fmt.Errorf("key %q: labels starting with __ are reserved by Prometheus; remove it from the selector", k)
	case !model.LegacyValidation.IsValidLabelName(k):
		return nil, fmt.Errorf("key %q is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*); use the label's name as stored in Prometheus (e.g. %q, as Prometheus' Kubernetes discovery writes it) as the selector key", k, strutil.SanitizeFullLabelName(k))
	case reserved[k]:
		return nil, fmt.Errorf("key %q is set by the request itself (namespace, object or grouping label); remove it from the metric selector", k)
	case !m.AllowsSelectorLabel(k):
		return nil, fmt.Errorf("key %q is not accepted by this metric; use one of %v or ask the admin to add it to selectorLabels", k, acceptedKeys(m))
	}
	for _, v := range r.values {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("key %q: value %q is not valid UTF-8", k, v)
		}
	}
	switch r.op {
	case selection.Equals, selection.DoubleEquals, selection.NotEquals:
		if len(r.values) != 1 {
			return nil, fmt.Errorf("key %q: operator %q needs exactly one value", k, r.op)
		}
		op := plabels.MatchEqual
		if r.op == selection.NotEquals {
			op = plabels.MatchNotEqual
		}
		return &plabels.Matcher{Name: k, Type: op, Value: r.values[0]}, nil
	case selection.In, selection.NotIn:
		if len(r.values) == 0 {
			return nil, fmt.Errorf("key %q: operator %q needs at least one value", k, r.op)
		}
		op := plabels.MatchRegexp
		if r.op == selection.NotIn {
			op = plabels.MatchNotRegexp
		}
		return &plabels.Matcher{Name: k, Type: op, Value: alternatives(r.values)}, nil
	case selection.Exists:
		return &plabels.Matcher{Name: k, Type: plabels.MatchRegexp, Value: ".+"}, nil
	case selection.DoesNotExist:
		return &plabels.Matcher{Name: k, Type: plabels.MatchEqual, Value: ""}, nil
	default:
		return nil, fmt.Errorf("key %q: operator %q has no PromQL equivalent; use =, !=, in, notin, exists or !key", k, r.op)
	}
}

func acceptedKeys(m *config.Metric) []string {
	var keys []string
	for _, p := range m.Parameters {
		keys = append(keys, p.Name)
	}
	return append(keys, m.SelectorLabels...)
}

// alternatives is a regular expression matching exactly one of the sorted
// values.
func alternatives(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	slices.Sort(quoted)
	return strings.Join(quoted, "|")
}

func compareRequirements(a, b requirement) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.op), string(b.op)); c != 0 {
		return c
	}
	return slices.Compare(a.values, b.values)
}
