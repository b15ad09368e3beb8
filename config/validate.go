package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	plabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/util/validation"
)

var (
	// resourceRE is a lowercase plural resource, optionally with its group:
	// "services", "deployments.apps".
	resourceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// labelValueRE is a Kubernetes label value, what a selector can carry.
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

	apiNames      = []API{APIPods, APIObject, APIExternal}
	signalNames   = []KafkaSignal{KafkaLag, KafkaLagMax, KafkaLagSeconds, KafkaTimeToDrain, KafkaStalledPartitions, KafkaShareBacklog, KafkaShareBacklogMax, KafkaShareBacklogSeconds}
	saslMechanism = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}

	promqlParser = parser.NewParser(parser.Options{})
)

// problems collects FieldErrors with paths relative to one prefix.
type problems struct {
	prefix string
	errs   []*FieldError
}

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Path: joinPath(p.prefix, field), Err: fmt.Errorf(format, args...)})
}

// validate checks the decoded and defaulted file, compiling its entries'
// templates on the way. line locates a path in the file.
func (c *Catalog) validate(line func(string) int) []error {
	p := &problems{}
	labelsOK := true
	for _, f := range []struct{ name, value string }{
		{"prometheus.labels.namespace", c.Prometheus.Labels.Namespace},
		{"prometheus.labels.pod", c.Prometheus.Labels.Pod},
	} {
		if !model.LegacyValidation.IsValidLabelName(f.value) {
			p.add(f.name, "%q is not a valid Prometheus label name; use letters, digits and underscores, not starting with a digit", f.value)
			labelsOK = false
		}
	}
	if d := c.Prometheus.MaxRange.Duration; d < 0 {
		p.add("prometheus.maxRange", "must be positive, got %s; remove the key to use the default %s", d, model.Duration(DefaultPrometheusMaxRange))
	} else if labelsOK && (c.Presets == nil || *c.Presets) {
		c.validatePresetRanges(p)
	}
	clusters := map[string]int{}
	for i := range c.Kafka.Clusters {
		k := &c.Kafka.Clusters[i]
		kp := &problems{prefix: fmt.Sprintf("kafka.clusters[%d]", i)}
		k.validate(kp)
		if first, dup := clusters[k.Name]; dup && k.Name != "" {
			kp.add("name", "duplicate name %q, first used by kafka.clusters[%d]; names must be unique", k.Name, first)
		} else {
			clusters[k.Name] = i
		}
		p.errs = append(p.errs, kp.errs...)
	}
	c.Kafka.validateGroupOwners(p)
	names := map[string]int{}
	for i := range c.Metrics {
		m := &c.Metrics[i]
		mp := &problems{prefix: fmt.Sprintf("metrics[%d]", i)}
		m.validate(mp, c.Prometheus, labelsOK)
		if first, dup := names[m.Name]; dup && m.Name != "" {
			mp.add("name", "duplicate name %q, first used by metrics[%d]; names must be unique (an entry named like a preset replaces the preset)", m.Name, first)
		} else {
			names[m.Name] = i
		}
		p.errs = append(p.errs, mp.errs...)
	}
	for _, e := range p.errs {
		e.Line = line(e.Path)
	}
	// Report in file order; problems of one line keep the order of checks.
	slices.SortStableFunc(p.errs, func(a, b *FieldError) int { return a.Line - b.Line })
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errs
}

func (k *KafkaCluster) validate(p *problems) {
	switch {
	case k.Name == "":
		p.add("name", "missing; name the cluster, e.g. name: main (HPAs select it with the selector key cluster)")
	case !labelValueRE.MatchString(k.Name):
		p.add("name", "%q is not a valid label value; use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k.Name)
	}
	if len(k.Brokers) == 0 {
		p.add("brokers", "missing; list at least one bootstrap broker as host:port, e.g. [kafka-0.kafka:9092]")
	}
	for i, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err == nil && host == "" {
			err = fmt.Errorf("missing host")
		}
		if n, perr := strconv.Atoi(port); err == nil && (perr != nil || n < 1 || n > 65535) {
			err = fmt.Errorf("invalid port %q", port)
		}
		if err != nil {
			p.add(fmt.Sprintf("brokers[%d]", i), "%q is not host:port: %w; write e.g. kafka-0.kafka:9092", b, err)
		}
	}
	if strings.TrimSpace(k.ClientID) == "" {
		p.add("clientID", "empty; remove the key to use %q or set a client ID", DefaultKafkaClientID)
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"dialTimeout", k.DialTimeout}, {"requestTimeout", k.RequestTimeout}, {"metadataTTL", k.MetadataTTL}, {"idleTimeout", k.IdleTimeout}} {
		if d.d.Duration < 0 {
			p.add(d.name, "must be positive, got %s; remove the key to use the default", d.d.Duration)
		}
	}
	if t := k.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		p.add("tls", "certFile and keyFile must be set together for a client certificate; set both or neither")
	}
	if s := k.SASL; s != nil {
		switch {
		case s.Mechanism == "":
			p.add("sasl.mechanism", "missing; use one of %s", strings.Join(saslMechanism, ", "))
		case !slices.Contains(saslMechanism, s.Mechanism):
			p.add("sasl.mechanism", "unknown mechanism %q; use one of %s", s.Mechanism, strings.Join(saslMechanism, ", "))
		}
		if s.Username == "" {
			p.add("sasl.username", "missing; set the SASL user name")
		}
		if (s.PasswordFile == "") == (s.PasswordEnv == "") {
			p.add("sasl", "set exactly one of passwordFile and passwordEnv; the password itself never goes in the catalog")
		}
	}
}

// validate checks one entry and compiles its template and patterns.
// Queries are test-rendered only when labelsOK, so that an invalid
// prometheus.labels is reported once, not once per entry.
func (m *Metric) validate(p *problems, prom PrometheusSettings, labelsOK bool) {
	switch {
	case m.Name == "":
		p.add("name", "missing; every entry needs the metric name HPAs use, e.g. name: orders_per_second")
	case !model.LegacyValidation.IsValidMetricName(m.Name):
		p.add("name", "%q is not a valid metric name; use letters, digits, underscores and colons, not starting with a digit", m.Name)
	}
	if len(m.APIs) == 0 {
		p.add("apis", "missing; list where the entry is served: pods, object and/or external")
	}
	for i, a := range m.APIs {
		switch {
		case !slices.Contains(apiNames, a):
			p.add(fmt.Sprintf("apis[%d]", i), "unknown API %q; use pods, object or external", a)
		case slices.Index(m.APIs, a) < i:
			p.add(fmt.Sprintf("apis[%d]", i), "%q is listed twice; list each API once", a)
		case m.Source == SourceKafka && a != APIExternal:
			p.add(fmt.Sprintf("apis[%d]", i), "kafka entries are served on the external API only; set apis: [external]")
		}
	}
	for i, ns := range m.ExternalNamespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			p.add(fmt.Sprintf("externalNamespaces[%d]", i), "%q is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit", ns)
		}
	}
	if len(m.ExternalNamespaces) > 0 && !m.Serves(APIExternal) {
		p.add("externalNamespaces", "only used by the external API; add external to apis or remove externalNamespaces")
	}
	m.validateNamespaced(p)
	switch m.Source {
	case "":
		p.add("source", "missing; set prometheus or kafka")
	case SourcePrometheus:
		m.validatePrometheus(p, prom, labelsOK)
	case SourceKafka:
		m.validateKafka(p)
	default:
		p.add("source", "unknown source %q; use prometheus or kafka", m.Source)
	}
}

// validateNamespaced checks the fields of a namespaced: false entry.
func (m *Metric) validateNamespaced(p *problems) {
	if m.IsNamespaced() {
		if len(m.CallerNamespaces) > 0 {
			p.add("callerNamespaces", "only used with namespaced: false; remove it (a namespaced entry is readable by every namespace, for its own data)")
		}
		return
	}
	for i, a := range m.APIs {
		if a != APIExternal {
			p.add(fmt.Sprintf("apis[%d]", i), "a namespaced: false entry is served on the external API only; set apis: [external]")
		}
	}
	if len(m.ExternalNamespaces) > 0 {
		p.add("externalNamespaces", "not used by a namespaced: false entry, which reads no namespace's data; remove it")
	}
	if len(m.CallerNamespaces) == 0 {
		p.add("namespaced", "false needs callerNamespaces: the entry reads data no namespace owns, so list the namespaces that may read it, or [\"*\"] for every namespace")
	}
	for i, ns := range m.CallerNamespaces {
		if ns != AllNamespaces && len(validation.IsDNS1123Label(ns)) > 0 {
			p.add(fmt.Sprintf("callerNamespaces[%d]", i), "%q is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit, or \"*\" for every namespace", ns)
		}
	}
}

func (m *Metric) validateKafka(p *problems) {
	for _, f := range []struct {
		name string
		set  bool
	}{{"query", m.Query != ""}, {"parameters", len(m.Parameters) > 0}, {"selectorLabels", len(m.SelectorLabels) > 0}, {"resources", len(m.Resources) > 0}} {
		if f.set {
			p.add(f.name, "not used by a kafka entry; remove it (kafka entries take the selector keys group, topic, cluster and window)")
		}
	}
	k := m.Kafka
	if k == nil {
		p.add("kafka", "missing; a kafka entry needs a kafka block, e.g. kafka: {signal: lag}")
		return
	}
	signals := make([]string, len(signalNames))
	for i, s := range signalNames {
		signals[i] = string(s)
	}
	switch {
	case k.Signal == "":
		p.add("kafka.signal", "missing; set one of %s", strings.Join(signals, ", "))
	case !slices.Contains(signalNames, k.Signal):
		p.add("kafka.signal", "unknown signal %q; use one of %s", k.Signal, strings.Join(signals, ", "))
	}
	if k.OffsetReset != OffsetResetLatest && k.OffsetReset != OffsetResetEarliest {
		p.add("kafka.offsetReset", "unknown value %q; use latest or earliest", k.OffsetReset)
	}
	m.validateKafkaScope(p)
	if k.StallWindow.Duration < 0 {
		p.add("kafka.stallWindow", "must be positive, got %s; remove the key to use the default", k.StallWindow.Duration)
	}
	if d := k.DrainWindow.Duration; d < 0 || d > MaxKafkaDrainWindow {
		p.add("kafka.drainWindow", "must be positive and at most %s, got %s; remove the key to use the default (%s)", MaxKafkaDrainWindow, d, DefaultKafkaDrainWindow)
	}
	if k.IsolationLevel != IsolationReadUncommitted && k.IsolationLevel != IsolationReadCommitted {
		p.add("kafka.isolationLevel", "unknown value %q; use %s or %s", k.IsolationLevel, IsolationReadUncommitted, IsolationReadCommitted)
	}
}

func (m *Metric) validatePrometheus(p *problems, prom PrometheusSettings, labelsOK bool) {
	if m.Kafka != nil {
		p.add("kafka", "set on a prometheus entry; remove it, or set source: kafka")
	}
	paramsOK := true
	for i, prm := range m.Parameters {
		f := fmt.Sprintf("parameters[%d]", i)
		switch {
		case prm.Name == "":
			p.add(f+".name", "missing; name the parameter, e.g. name: window (HPAs set it as a selector key)")
			paramsOK = false
		case !model.LegacyValidation.IsValidLabelName(prm.Name):
			p.add(f+".name", "%q is not a valid parameter name; use letters, digits and underscores, not starting with a digit", prm.Name)
			paramsOK = false
		case slices.IndexFunc(m.Parameters, func(q Parameter) bool { return q.Name == prm.Name }) < i:
			p.add(f+".name", "duplicate parameter %q; declare each parameter once", prm.Name)
		case slices.Contains(m.SelectorLabels, prm.Name):
			p.add(f+".name", "%q is also listed in selectorLabels; a selector key is either a parameter or a label, remove it from one", prm.Name)
		}
		if prm.Pattern == "" {
			p.add(f+".pattern", "missing; every parameter needs a pattern so selector values cannot change the query's shape, e.g. pattern: '[1-9][0-9]{0,3}(s|m|h)'")
			paramsOK = false
		}
	}
	for _, e := range m.compile() {
		var fe *FieldError
		errors.As(e, &fe) // compile returns *FieldErrors only
		if strings.HasPrefix(fe.Path, "parameters[") {
			paramsOK = false
		}
		p.errs = append(p.errs, &FieldError{Path: joinPath(p.prefix, fe.Path), Err: fe.Err})
	}
	for i, prm := range m.Parameters {
		if m.patterns[i] != nil && prm.Pattern != "" && prm.Default != "" && !m.patterns[i].MatchString(prm.Default) {
			p.add(fmt.Sprintf("parameters[%d].default", i), "%q does not match the pattern %q; change the default or the pattern", prm.Default, prm.Pattern)
			paramsOK = false
		}
	}
	for i, l := range m.SelectorLabels {
		f := fmt.Sprintf("selectorLabels[%d]", i)
		switch {
		case l != "*" && !model.LegacyValidation.IsValidLabelName(l):
			p.add(f, "%q is not a valid Prometheus label name; use letters, digits and underscores, or \"*\" for any valid label name", l)
		case slices.Index(m.SelectorLabels, l) < i:
			p.add(f, "%q is listed twice; list each label once", l)
		}
	}
	m.validateResources(p)
	if m.Series != "" && !model.LegacyValidation.IsValidMetricName(m.Series) {
		p.add("series", "%q is not a valid Prometheus metric name; use letters, digits, underscores and colons, not starting with a digit", m.Series)
		paramsOK = false
	}
	if l := m.Labels; l != nil {
		for _, f := range []struct{ name, value string }{{"labels.namespace", l.Namespace}, {"labels.pod", l.Pod}} {
			if f.value != "" && !model.LegacyValidation.IsValidLabelName(f.value) {
				p.add(f.name, "%q is not a valid Prometheus label name; use letters, digits and underscores, not starting with a digit, or remove it to use prometheus.labels", f.value)
				labelsOK = false
			}
		}
	}
	if m.Query == "" {
		p.add("query", "missing; a prometheus entry needs a PromQL template, e.g. sum by (<<.GroupBy>>) (rate(orders_total{<<.LabelMatchers>>}[2m]))")
		return
	}
	if m.tmpl == nil {
		return // compile reported the parse error
	}
	for _, name := range paramRefs(m.tmpl) {
		if !m.HasParameter(name) {
			p.add("query", "uses .Params.%s, which is not declared; declare it under parameters (name, pattern, default) or remove it from the query", name)
			paramsOK = false
		}
	}
	if m.Series == "" && usesField(m.tmpl, "Series") {
		p.add("query", "uses .Series, but the entry sets no series; set series: to the Prometheus metric name the query reads, or write the name in the query")
		paramsOK = false
	}
	if paramsOK && labelsOK {
		prom.Labels = m.labelsIn(prom.Labels)
		m.validateRendered(p, prom)
	}
}

func (m *Metric) validateResources(p *problems) {
	if len(m.Resources) > 0 && !m.Serves(APIObject) {
		p.add("resources", "only used by the object API; add object to apis or remove resources")
	}
	for _, r := range slices.Sorted(maps.Keys(m.Resources)) {
		f := fmt.Sprintf("resources[%q]", r)
		switch {
		case r == "pods" || r == "namespaces":
			p.add(f, "%s always map to prometheus.labels.%s; remove this entry", r, strings.TrimSuffix(r, "s"))
		case !resourceRE.MatchString(r):
			p.add(f, "%q is not a resource name; write the lowercase plural resource with its API group unless it is core, e.g. services or deployments.apps", r)
		}
		if l := m.Resources[r]; !model.LegacyValidation.IsValidLabelName(l) {
			p.add(f, "%q is not a valid Prometheus label name; name the label holding the object's name, e.g. deployment", l)
		}
	}
}

// scopeSentinel stands for the request's namespace when validation renders
// a template. It is not a valid namespace name, so a template cannot carry
// it by accident: a selector that matches it carries <<.LabelMatchers>>.
const scopeSentinel = "<namespace>"

// validateRendered renders the query with and without matchers and
// grouping, parses the results as PromQL and checks the renderings a
// request makes (with matchers) with CheckExpr: every vector selector of a
// namespaced entry carries the scope matcher, and no range is longer than
// prometheus.maxRange.
func (m *Metric) validateRendered(p *problems, prom PrometheusSettings) {
	params := map[string]string{}
	for _, prm := range m.Parameters {
		v := prm.Default
		if v == "" {
			if v = sampleValue(prm.Pattern); v == "" {
				return // no value to test with; RenderQuery checks values at request time
			}
		}
		params[prm.Name] = v
	}
	labels := prom.Labels
	scope := &plabels.Matcher{Type: plabels.MatchEqual, Name: labels.Namespace, Value: scopeSentinel}
	var required []*plabels.Matcher
	if m.IsNamespaced() {
		required = []*plabels.Matcher{scope}
	}
	reported := map[string]bool{}
	values := map[string]string{labels.Namespace: scopeSentinel}
	shapes := []QueryData{
		{LabelMatchers: scope.String(), GroupBy: []string{labels.Pod}, LabelValues: values},
		{LabelMatchers: scope.String(), LabelValues: values},
	}
	if !m.IsNamespaced() {
		// Only a query without a namespace matcher can render without
		// matchers: `x{<<.LabelMatchers>>,job="a"}` is fine otherwise.
		shapes = append(shapes, QueryData{GroupBy: []string{labels.Pod}}, QueryData{})
	}
	for _, d := range shapes {
		q, err := execute(m.tmpl, m.templateData(d, params))
		if err != nil {
			p.add("query", "does not render: %w; use only .LabelMatchers, .GroupBy, .GroupByWith \"label\", .GroupBySlice, .LabelValuesByName, .Series and .Params.<name>", err)
			return
		}
		expr, err := promqlParser.ParseExpr(q)
		if err != nil {
			p.add("query", "renders invalid PromQL when .GroupBy is %s and .LabelMatchers is %s: %w; the query was: %s; "+
				"make the template valid with and without grouping and matchers (write by (<<.GroupByWith \"le\">>), not by (<<.GroupBy>>, le))",
				orEmpty(strings.Join(d.GroupBy, ", ")), orEmpty(d.LabelMatchers), err, q)
			return
		}
		if t := expr.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
			kind := map[parser.ValueType]string{parser.ValueTypeMatrix: "range vector"}[t]
			if kind == "" {
				kind = string(t)
			}
			p.add("query", "renders a %s, not an instant vector: %s; wrap range selectors in a function such as rate(...)", kind, q)
			return
		}
		if d.LabelMatchers == "" {
			continue // requests always render matchers; this rendering only has to parse
		}
		for _, pr := range CheckExpr(expr, required, prom.MaxRange.Duration) {
			msg := describeProblem(pr, prom.MaxRange.Duration, params)
			if !reported[msg] {
				reported[msg] = true
				p.add("query", "%s", msg)
			}
		}
	}
}

// describeProblem words a CheckExpr problem of a template rendered with
// params, with the fix.
func describeProblem(pr QueryProblem, maxRange time.Duration, params map[string]string) string {
	if pr.OutOfScope() {
		return fmt.Sprintf("the vector selector %s does not carry <<.LabelMatchers>>, so it would read every namespace's data; "+
			"write %s, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)",
			pr.Selector, withScopeMatchers(pr.Selector))
	}
	if len(params) == 0 {
		return fmt.Sprintf("%s is longer than prometheus.maxRange (%s); shorten it, or raise prometheus.maxRange",
			pr, model.Duration(maxRange))
	}
	set := make([]string, 0, len(params))
	for k, v := range params {
		set = append(set, k+"="+v)
	}
	slices.Sort(set)
	return fmt.Sprintf("rendered with %s, %s is longer than prometheus.maxRange (%s); shorten the range or the parameter's default, or raise prometheus.maxRange",
		strings.Join(set, ","), pr, model.Duration(maxRange))
}

// withScopeMatchers writes the selector as a template that carries
// <<.LabelMatchers>>, last, so that an empty .LabelMatchers leaves a valid
// trailing comma.
func withScopeMatchers(vs *parser.VectorSelector) string {
	var ms []string
	for _, lm := range vs.LabelMatchers {
		if lm.Name == model.MetricNameLabel && lm.Type == plabels.MatchEqual && lm.Value == vs.Name {
			continue
		}
		ms = append(ms, lm.String())
	}
	slices.Sort(ms)
	return vs.Name + "{" + strings.Join(append(ms, "<<.LabelMatchers>>"), ",") + "}"
}

// validatePresetRanges reports a prometheus.maxRange shorter than a range
// the presets the file keeps use with their defaults: every request for
// them would be refused.
func (c *Catalog) validatePresetRanges(p *problems) {
	maxRange := c.Prometheus.MaxRange.Duration
	var names []string
	var need time.Duration
	for _, m := range compiledPresets() {
		if m.Source != SourcePrometheus || slices.ContainsFunc(c.Metrics, func(f Metric) bool { return f.Name == m.Name }) {
			continue
		}
		q, err := m.RenderQuery(QueryData{LabelMatchers: c.Prometheus.Labels.Namespace + `="x"`})
		if err != nil {
			continue // the presets render; TestDefault proves it
		}
		problems, _ := CheckQuery(q, nil, maxRange)
		for _, pr := range problems {
			need = max(need, pr.Range)
		}
		if len(problems) > 0 {
			names = append(names, m.Name)
		}
	}
	if len(names) > 0 {
		p.add("prometheus.maxRange", "%s is shorter than the %s range the presets %s use; raise it to at least %s, replace those presets with entries of the same name, or set presets: false",
			model.Duration(maxRange), model.Duration(need), strings.Join(names, ", "), model.Duration(need))
	}
}

func orEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
