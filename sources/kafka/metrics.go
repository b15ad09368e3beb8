package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// Metric families shared by every source: name, help and label names must
// stay identical to the other sources' (see sources/prometheus) or the
// registry refuses the second registration. The cluster dimension is
// therefore on the kafka-specific family below.
const (
	queriesName       = "hpa_signals_source_queries_total"
	queriesHelp       = "Queries sent to a metric source, by source and result."
	queryDurationName = "hpa_signals_source_query_duration_seconds"
	queryDurationHelp = "Time a metric source took to answer a query, by source."
)

// results are the values of the result label, pre-created so dashboards
// see zeros instead of missing series.
var results = []string{"success", "no_data", "unknown_group", "bad_query", "timeout", "canceled", "error"}

// metrics are the source's own metrics. A nil *metrics records nothing.
type metrics struct {
	queries         *prometheus.CounterVec // result
	duration        prometheus.Histogram
	clusterQueries  *prometheus.CounterVec // cluster, result
	partitionErrors *prometheus.CounterVec // cluster, api, error
}

func newMetrics(reg prometheus.Registerer, clusters []string) (*metrics, error) {
	source := prometheus.Labels{"source": "kafka"}
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: queriesName, Help: queriesHelp, ConstLabels: source,
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: queryDurationName, Help: queryDurationHelp, ConstLabels: source,
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		clusterQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_kafka_queries_total",
			Help: "Consumer-group evaluations, by Kafka cluster and result.",
		}, []string{"cluster", "result"}),
		partitionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_kafka_partition_errors_total",
			Help: "Per-partition error codes returned by Kafka brokers, by cluster, API and error; each failed the evaluation it was part of.",
		}, []string{"cluster", "api", "error"}),
	}
	for _, r := range results {
		m.queries.WithLabelValues(r)
		for _, c := range clusters {
			m.clusterQueries.WithLabelValues(c, r)
		}
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.queries, err = register(reg, m.queries); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.clusterQueries, err = register(reg, m.clusterQueries); err != nil {
		return nil, err
	}
	if m.partitionErrors, err = register(reg, m.partitionErrors); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered (a
// second Source on the same registry, e.g. after a catalog reload).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register Kafka source metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) observe(cluster string, err error, d time.Duration) {
	if m == nil {
		return
	}
	r := resultOf(err)
	m.queries.WithLabelValues(r).Inc()
	m.clusterQueries.WithLabelValues(cluster, r).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *metrics) partitionError(cluster, api string, err error) {
	if m == nil {
		return
	}
	code := "unknown"
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		code = kerr.Title()
	}
	m.partitionErrors.WithLabelValues(cluster, api, code).Inc()
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ErrUnknownGroup):
		return "unknown_group"
	case errors.Is(err, ErrNoData):
		return "no_data"
	case errors.Is(err, ErrInvalidSelector):
		return "bad_query"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
