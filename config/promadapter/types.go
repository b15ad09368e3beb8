// Package promadapter reads prometheus-adapter's configuration file as it
// is (its rules and externalRules, a Helm values file's rules.custom and
// rules.external, or the ConfigMap that holds either) and translates each
// metric a rule yields into an hpa-signals catalog entry (config.Metric).
//
// A prometheus-adapter rule names a family of metrics: its seriesQuery
// finds series in Prometheus, its name mapping turns each series name into
// a metric name, its resources say which Kubernetes objects the series'
// labels name, and its metricsQuery template becomes the query. Which
// names a rule yields depends on what Prometheus holds; finding them is
// the provider's discovery (provider.Discovery), which asks Prometheus for
// series names and label names only, never for every series. This package
// owns the file format, its validation, and the translation of one rule
// and one series name into an entry, which the adapter's
// --prometheus-adapter-config and the import-prometheus-adapter command
// share.
package promadapter

// fileSpec is the configuration prometheus-adapter reads (its
// MetricsDiscoveryConfig), less resourceRules, which is read apart: it
// serves metrics.k8s.io, which hpa-signals does not.
type fileSpec struct {
	Rules         []ruleSpec `json:"rules"`
	ExternalRules []ruleSpec `json:"externalRules"`
}

// ruleSpec is one discovery rule as written.
type ruleSpec struct {
	SeriesQuery   string          `json:"seriesQuery"`
	SeriesFilters []filterSpec    `json:"seriesFilters"`
	Resources     resourceMapping `json:"resources"`
	Name          nameMapping     `json:"name"`
	MetricsQuery  string          `json:"metricsQuery"`
	// MetricQuery is a misspelling of metricsQuery that prometheus-adapter's
	// own sample configuration carried for years; it is read as
	// metricsQuery, with a note.
	MetricQuery string `json:"metricQuery"`
}

type filterSpec struct {
	Is    string `json:"is"`
	IsNot string `json:"isNot"`
}

type resourceMapping struct {
	Template   string                   `json:"template"`
	Overrides  map[string]groupResource `json:"overrides"`
	Namespaced *bool                    `json:"namespaced"`
}

type groupResource struct {
	Group    string `json:"group"`
	Resource string `json:"resource"`
}

type nameMapping struct {
	Matches string `json:"matches"`
	As      string `json:"as"`
}

// helmRules is the rules block of the prometheus-adapter Helm chart's
// values.
type helmRules struct {
	// Default, nil or true, makes the chart add its own default rules,
	// which are not in the values file.
	Default  *bool      `json:"default"`
	Custom   []ruleSpec `json:"custom"`
	External []ruleSpec `json:"external"`
	// Existing names a ConfigMap that holds the rules instead.
	Existing string `json:"existing"`
	// Resource holds resourceRules; it is read apart, see fileSpec.
}
