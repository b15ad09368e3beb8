// Package config owns the metric catalog: the YAML file format, strict
// decoding, defaults, validation with field paths, the built-in presets and
// reloading the file when it changes.
package config

import (
	"regexp"
	"text/template"
	"time"
)

// API names a metrics API a catalog entry is served on.
type API string

const (
	// APIPods serves the entry per pod: custom.metrics.k8s.io .../pods/*/<metric>.
	APIPods API = "pods"
	// APIObject serves the entry for one named object (namespaces, services,
	// deployments.apps, ...) on custom.metrics.k8s.io.
	APIObject API = "object"
	// APIExternal serves the entry on external.metrics.k8s.io.
	APIExternal API = "external"
)

// Source names where an entry's values come from.
type Source string

const (
	// SourcePrometheus reads the entry with a PromQL query (Metric.Query).
	SourcePrometheus Source = "prometheus"
	// SourceKafka computes the entry from consumer-group offsets
	// (Metric.Kafka).
	SourceKafka Source = "kafka"
)

// Catalog is the whole catalog file after decoding, defaulting and
// validation. A Catalog is immutable once built: readers share it without
// locking and a reload replaces it as a whole.
type Catalog struct {
	// Presets switches the built-in presets on or off. Nil (the zero value)
	// and true keep them: file entries then override presets of the same
	// name and extend the list otherwise. False serves only the file's
	// entries.
	Presets *bool `json:"presets,omitempty"`
	// Prometheus holds settings shared by all Prometheus entries.
	Prometheus PrometheusSettings `json:"prometheus"`
	// Kafka declares the Kafka clusters entries may read. Empty means no
	// Kafka entry can be served (they answer with an error naming the fix).
	Kafka KafkaSettings `json:"kafka"`
	// Metrics are the entries, presets first unless the file overrides them
	// by name. Names are unique.
	Metrics []Metric `json:"metrics"`

	// byName indexes Metrics by name; built by Parse and Default. Nil for a
	// Catalog built by hand, where Lookup falls back to a scan.
	byName map[string]int
}

// PrometheusSettings maps Kubernetes concepts to the Prometheus label names
// of the installation and bounds what a query may cost. Defaults:
// namespace -> "namespace", pod -> "pod", maxRange 1h.
type PrometheusSettings struct {
	Labels PrometheusLabels `json:"labels"`
	// MaxRange is the longest range or subquery window a rendered query may
	// use. A template whose fixed ranges exceed it is invalid; a parameter
	// value that makes a range exceed it is a 400. Zero means the default.
	MaxRange Duration `json:"maxRange,omitempty"`
}

// PrometheusLabels are the Prometheus label names that hold a series'
// Kubernetes namespace and pod name.
type PrometheusLabels struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
}

// KafkaSettings declares the Kafka clusters and which namespace owns which
// consumer groups beyond the entries' group patterns.
type KafkaSettings struct {
	Clusters []KafkaCluster `json:"clusters"`
	// GroupOwners gives consumer groups to namespaces explicitly, in
	// addition to each entry's GroupPattern. Empty: ownership follows the
	// patterns alone.
	GroupOwners []KafkaGroupOwner `json:"groupOwners,omitempty"`
}

// KafkaGroupOwner gives the consumer groups matching Groups (globs,
// path.Match syntax) to Namespace, on every cluster, for every namespaced
// kafka entry.
type KafkaGroupOwner struct {
	Namespace string   `json:"namespace"`
	Groups    []string `json:"groups"`
}

// KafkaCluster is one Kafka cluster the adapter keeps a long-lived client for.
type KafkaCluster struct {
	// Name is how selectors and entries refer to the cluster (selector key
	// "cluster"). Required, unique.
	Name string `json:"name"`
	// Brokers are bootstrap addresses host:port. At least one.
	Brokers []string `json:"brokers"`
	// ClientID is sent with every request. Default "hpa-signals".
	ClientID string `json:"clientID,omitempty"`
	// TLS enables TLS when set.
	TLS *KafkaTLS `json:"tls,omitempty"`
	// SASL enables SASL authentication when set.
	SASL *KafkaSASL `json:"sasl,omitempty"`
	// DialTimeout bounds connecting to a broker. Default 5s.
	DialTimeout Duration `json:"dialTimeout,omitempty"`
	// RequestTimeout bounds one evaluation's broker round trips. Default 10s.
	RequestTimeout Duration `json:"requestTimeout,omitempty"`
	// MetadataTTL is how long cluster metadata and partitions' log-start
	// offsets are reused. Default 30s.
	MetadataTTL Duration `json:"metadataTTL,omitempty"`
	// IdleTimeout closes broker connections unused for this long. Keep it
	// above the adapter's --refresh-interval, so refreshes reuse
	// connections (not checked: the catalog does not know the flag).
	// Default 5m.
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
}

// KafkaTLS configures TLS to the brokers. CAFile is read at start; the
// client key pair at start and again on each TLS handshake.
type KafkaTLS struct {
	CAFile             string `json:"caFile,omitempty"`
	CertFile           string `json:"certFile,omitempty"`
	KeyFile            string `json:"keyFile,omitempty"`
	ServerName         string `json:"serverName,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// KafkaSASL.Mechanism values.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaSASL configures SASL. The password comes from a file or an
// environment variable, never from the catalog itself, and is never logged.
type KafkaSASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512.
	Mechanism    string `json:"mechanism"`
	Username     string `json:"username"`
	PasswordFile string `json:"passwordFile,omitempty"`
	PasswordEnv  string `json:"passwordEnv,omitempty"`
}

// Metric is one catalog entry.
type Metric struct {
	// Name is the metric name HPAs use. Required, unique, a valid
	// Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
	Name string `json:"name"`
	// Description is shown by check-config and the docs.
	Description string `json:"description,omitempty"`
	// APIs lists where the entry is served. Required, non-empty.
	APIs []API `json:"apis"`
	// Source is prometheus or kafka. Required.
	Source Source `json:"source"`

	// Query is the PromQL template (source prometheus), written with <<
	// and >> delimiters. It sees .LabelMatchers (comma-separated matchers,
	// possibly empty), .GroupBy (comma-separated label names, possibly
	// empty), .GroupByWith "le" (the GroupBy labels followed by the given
	// ones, comma-separated and never with a dangling comma, for `by (...)`
	// clauses that add labels), .Params.<name> for each declared
	// parameter, .Series (the Series field), .GroupBySlice (GroupBy as a
	// list) and .LabelValuesByName (the value of each equality matcher by
	// label). See RenderQuery.
	Query string `json:"query,omitempty"`
	// Series is the Prometheus metric name the query reads, written into
	// the template as <<.Series>>, so that one query written for a family
	// of series (a prometheus-adapter rule's metricsQuery) serves each of
	// them. Empty: the template must not use .Series.
	Series string `json:"series,omitempty"`
	// Labels overrides prometheus.labels for this entry, for series whose
	// namespace and pod are held by other labels than most (e.g.
	// kubernetes_namespace). A field left empty keeps the catalog's.
	Labels *PrometheusLabels `json:"labels,omitempty"`
	// Resources maps a Kubernetes resource ("services",
	// "deployments.apps") to the Prometheus label holding the object's
	// name, for the object API. Namespaces and pods always map to the
	// labels in PrometheusSettings and need no entry here.
	Resources map[string]string `json:"resources,omitempty"`
	// Parameters are template parameters an HPA passes as selector keys
	// (`window=5m`). Only the `=` operator is accepted for them.
	Parameters []Parameter `json:"parameters,omitempty"`
	// SelectorLabels are the selector keys passed through to Prometheus as
	// label matchers. A selector key that is neither a parameter nor listed
	// here is rejected (400). "*" accepts any key that is a valid
	// Prometheus label name.
	SelectorLabels []string `json:"selectorLabels,omitempty"`

	// Kafka holds the settings of a source kafka entry.
	Kafka *KafkaMetric `json:"kafka,omitempty"`

	// ExternalNamespaces lists the namespaces other than the caller's that
	// an external request may read with a `namespace` selector key. Empty
	// (the default) means only the caller's own namespace.
	ExternalNamespaces []string `json:"externalNamespaces,omitempty"`

	// Namespaced says whether the entry's data belongs to namespaces. Nil
	// (the default) and true: every request reads only its own namespace's
	// data. False is an admin decision that the entry reads data no
	// namespace owns (a shared queue, a cluster-wide total): it is served
	// on the external API only, its queries carry no namespace matcher,
	// and only the namespaces in CallerNamespaces may read it.
	Namespaced *bool `json:"namespaced,omitempty"`
	// CallerNamespaces lists the namespaces that may read a namespaced:
	// false entry; "*" means every namespace. Required with namespaced:
	// false and not allowed otherwise. Other callers get the answer of a
	// metric that is not in the catalog.
	CallerNamespaces []string `json:"callerNamespaces,omitempty"`

	// tmpl is Query parsed once by Parse/Default; patterns are the anchored
	// Parameters[i].Pattern. Both nil for a Metric built by hand, which
	// RenderQuery then compiles on each call.
	tmpl     *template.Template
	patterns []*regexp.Regexp
	// preset marks a built-in entry the file did not replace: an entry
	// added with Catalog.With may replace it.
	preset bool
}

// Parameter is a named template parameter passed as an HPA selector key.
type Parameter struct {
	// Name is the selector key and the template name (.Params.<name>).
	Name string `json:"name"`
	// Default is used when the selector does not set the key. Empty means
	// the parameter is required.
	Default string `json:"default,omitempty"`
	// Pattern is an anchored regular expression the value must match.
	// Required: it is what keeps selector input from changing the query's
	// shape. Default for presets: a duration like 2m.
	Pattern string `json:"pattern"`
}

// KafkaSignal names what a kafka entry computes.
type KafkaSignal string

const (
	// KafkaLag is the group's total lag in messages over the selected topics.
	KafkaLag KafkaSignal = "lag"
	// KafkaLagMax is the largest lag of one partition, in messages.
	KafkaLagMax KafkaSignal = "lag_max"
	// KafkaLagSeconds is how far behind the group is, in seconds.
	KafkaLagSeconds KafkaSignal = "lag_seconds"
	// KafkaTimeToDrain estimates how long the group needs to consume its
	// lag at its recent rate, in seconds.
	KafkaTimeToDrain KafkaSignal = "time_to_drain_seconds"
	// KafkaStalledPartitions counts lagging partitions whose committed
	// offset has not moved for StallWindow.
	KafkaStalledPartitions KafkaSignal = "stalled_partitions"
	// KafkaShareBacklog is a share group's (KIP-932) backlog: records from
	// each share-partition start offset to the end of the partition that
	// are not yet delivery-complete (acknowledged or archived), summed
	// over the selected topics' partitions.
	KafkaShareBacklog KafkaSignal = "share_backlog"
	// KafkaShareBacklogMax is the largest share-group backlog of one
	// partition.
	KafkaShareBacklogMax KafkaSignal = "share_backlog_max"
	// KafkaShareBacklogSeconds is the age of a share group's backlog: now
	// minus the time of the oldest record not yet delivery-complete, the
	// first record at or after a share-partition start offset, over the
	// selected topics' partitions; 0 without backlog.
	KafkaShareBacklogSeconds KafkaSignal = "share_backlog_seconds"
)

// IsShare reports whether s reads a share group (KIP-932) rather than a
// consumer group.
func (s KafkaSignal) IsShare() bool {
	return s == KafkaShareBacklog || s == KafkaShareBacklogMax || s == KafkaShareBacklogSeconds
}

// KafkaMetric is the kafka part of an entry.
type KafkaMetric struct {
	// Signal is what the entry computes. Required.
	Signal KafkaSignal `json:"signal"`
	// OffsetReset is how a partition without a committed offset counts:
	// "latest" (0, the default) or "earliest" (end - log start).
	OffsetReset string `json:"offsetReset,omitempty"`
	// GroupPattern says which consumer groups a namespace owns: a glob
	// (path.Match syntax) where {namespace} is the caller's namespace.
	// Default "{namespace}.*". It holds {namespace} once, after literal
	// text only, followed by the end or a character namespace names cannot
	// contain, so that no group matches it for two namespaces. A namespace
	// also owns the groups Kafka.GroupOwners gives it. For a namespaced:
	// false entry it is any glob, the groups the entry reads; default "*".
	// See Catalog.MayReadGroup.
	GroupPattern string `json:"groupPattern,omitempty"`
	// AllowedTopics are globs (may use {namespace}, under the rule of
	// GroupPattern) of topics a selector may name although the group has
	// no committed offsets for them, e.g. for a consumer that has not
	// received a record yet or a group scaled to zero before its first
	// commit. Absent: "{namespace}.*", the namespace's own topics named
	// like its groups ("*" for a namespaced: false entry); written empty
	// ([]): only topics the group has committed offsets for. See
	// KafkaMetric.AllowedTopicsFor.
	AllowedTopics []string `json:"allowedTopics,omitempty"`
	// StallWindow is how long a lagging partition's committed offset must
	// stand still to count as stalled. Default 5m.
	StallWindow Duration `json:"stallWindow,omitempty"`
	// DrainWindow is the span time_to_drain_seconds measures the consume
	// rate over: the progress of the committed offsets from the sample
	// DrainWindow old to now. Keep it several times the consumers' commit
	// interval (5s for Kafka's Java consumer, 30s for Kafka Streams), so
	// that a commit more or less in the window changes little. Default 2m;
	// at most 1h.
	DrainWindow Duration `json:"drainWindow,omitempty"`
	// IsolationLevel is how records of transactions count, as a consumer
	// with the same isolation.level sees them: "read_uncommitted" (the
	// default) counts every record up to the high watermark;
	// "read_committed" counts up to the last stable offset (records of
	// open transactions do not count yet) and never counts records of
	// aborted transactions. Transaction markers never count under either.
	IsolationLevel string `json:"isolationLevel,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30s") in
// YAML and JSON. The zero value is 0, which the catalog's defaults replace.
type Duration struct{ time.Duration }
