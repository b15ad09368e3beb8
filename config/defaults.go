package config

import (
	"slices"
	"time"
)

// The defaults, in one place. setDefaults applies them to file entries and
// presets alike.
const (
	DefaultNamespaceLabel     = "namespace"
	DefaultPodLabel           = "pod"
	DefaultPrometheusMaxRange = time.Hour

	DefaultKafkaClientID       = "hpa-signals"
	DefaultKafkaDialTimeout    = 5 * time.Second
	DefaultKafkaRequestTimeout = 10 * time.Second
	DefaultKafkaMetadataTTL    = 30 * time.Second
	DefaultKafkaIdleTimeout    = 5 * time.Minute

	DefaultKafkaOffsetReset  = OffsetResetLatest
	DefaultKafkaGroupPattern = "{namespace}.*"
	DefaultKafkaStallWindow  = 5 * time.Minute
	DefaultKafkaDrainWindow  = 2 * time.Minute
	// MaxKafkaDrainWindow bounds drainWindow: the offset history of a
	// group nobody reads is dropped after an hour.
	MaxKafkaDrainWindow        = time.Hour
	DefaultKafkaIsolationLevel = IsolationReadUncommitted

	// DefaultKafkaSharedGroupPattern is the groupPattern of a namespaced:
	// false entry: any group, for the namespaces in callerNamespaces.
	DefaultKafkaSharedGroupPattern = "*"
)

// DefaultKafkaAllowedTopics is the allowedTopics of a namespaced entry
// that does not set it: the namespace's own topics, named like its groups,
// may be named before the group commits (a consumer that has joined but not
// yet received a record, or one scaled to zero). A namespaced: false entry
// allows every topic (DefaultKafkaSharedAllowedTopics). Write
// allowedTopics: [] to allow only topics with committed offsets.
var (
	DefaultKafkaAllowedTopics       = []string{"{namespace}.*"}
	DefaultKafkaSharedAllowedTopics = []string{"*"}
)

// KafkaMetric.OffsetReset values.
const (
	// OffsetResetLatest counts a partition without a committed offset as
	// caught up (lag 0), like a consumer with auto.offset.reset=latest.
	OffsetResetLatest = "latest"
	// OffsetResetEarliest counts a partition without a committed offset as
	// lagging by everything retained (end - log start offset).
	OffsetResetEarliest = "earliest"
)

// KafkaMetric.IsolationLevel values.
const (
	// IsolationReadUncommitted counts records up to the high watermark.
	IsolationReadUncommitted = "read_uncommitted"
	// IsolationReadCommitted counts records up to the last stable offset,
	// without those of aborted transactions.
	IsolationReadCommitted = "read_committed"
)

// setDefaults fills every unset field that has a default. It runs before
// validation, so validation sees the values that will be used.
func (c *Catalog) setDefaults() {
	setString(&c.Prometheus.Labels.Namespace, DefaultNamespaceLabel)
	setString(&c.Prometheus.Labels.Pod, DefaultPodLabel)
	setDuration(&c.Prometheus.MaxRange, DefaultPrometheusMaxRange)
	for i := range c.Kafka.Clusters {
		k := &c.Kafka.Clusters[i]
		setString(&k.ClientID, DefaultKafkaClientID)
		setDuration(&k.DialTimeout, DefaultKafkaDialTimeout)
		setDuration(&k.RequestTimeout, DefaultKafkaRequestTimeout)
		setDuration(&k.MetadataTTL, DefaultKafkaMetadataTTL)
		setDuration(&k.IdleTimeout, DefaultKafkaIdleTimeout)
	}
	for i := range c.Metrics {
		c.Metrics[i].setDefaults()
	}
}

func (m *Metric) setDefaults() {
	if m.Source != SourceKafka || m.Kafka == nil {
		return
	}
	setString(&m.Kafka.OffsetReset, DefaultKafkaOffsetReset)
	if m.IsNamespaced() {
		setString(&m.Kafka.GroupPattern, DefaultKafkaGroupPattern)
		setList(&m.Kafka.AllowedTopics, DefaultKafkaAllowedTopics)
	} else {
		setString(&m.Kafka.GroupPattern, DefaultKafkaSharedGroupPattern)
		setList(&m.Kafka.AllowedTopics, DefaultKafkaSharedAllowedTopics)
	}
	setDuration(&m.Kafka.StallWindow, DefaultKafkaStallWindow)
	setDuration(&m.Kafka.DrainWindow, DefaultKafkaDrainWindow)
	setString(&m.Kafka.IsolationLevel, DefaultKafkaIsolationLevel)
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// setList sets an absent list (nil); a list written empty ([]) stays empty.
func setList(l *[]string, def []string) {
	if *l == nil {
		*l = slices.Clone(def)
	}
}

func setDuration(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}
