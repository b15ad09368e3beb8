package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// results are the values of the result label, pre-created so dashboards
// see zeros instead of missing series.
var results = []string{"success", "no_data", "unknown_group", "bad_query", "timeout", "canceled", "error"}

// metrics are the source's own metrics. A nil *metrics records nothing.
// The calls themselves are counted and timed by the provider, which calls
// every source (hpa_signals_source_*); these add the Kafka dimensions.
type metrics struct {
	clusterQueries  *prometheus.CounterVec // cluster, result
	partitionErrors *prometheus.CounterVec // cluster, api, error
}

func newMetrics(reg prometheus.Registerer, clusters []string) (*metrics, error) {
	m := &metrics{
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
		for _, c := range clusters {
			m.clusterQueries.WithLabelValues(c, r)
		}
	}
	if reg == nil {
		return m, nil
	}
	// One Source per registry: the adapter makes one at start (Kafka
	// clusters are not reloaded), so a second registration is a bug.
	for _, c := range []prometheus.Collector{m.clusterQueries, m.partitionErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register Kafka source metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(cluster string, err error) {
	if m == nil {
		return
	}
	m.clusterQueries.WithLabelValues(cluster, resultOf(err)).Inc()
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
