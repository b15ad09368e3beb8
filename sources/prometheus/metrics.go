package prometheus

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric families shared by every source. Each source registers them with
// its own constant source label, so the help text and label names here must
// stay identical in the other sources or the registry refuses the second
// registration.
const (
	queriesName       = "hpa_signals_source_queries_total"
	queriesHelp       = "Queries sent to a metric source, by source and result."
	queryDurationName = "hpa_signals_source_query_duration_seconds"
	queryDurationHelp = "Time a metric source took to answer a query, by source."
)

type clientMetrics struct {
	queries  *prometheus.CounterVec
	duration prometheus.Histogram
}

// results are the values of the result label, pre-created so a dashboard
// sees zeros instead of missing series.
var results = []string{"success", "no_data", "bad_query", "timeout", "canceled", "error"}

func newClientMetrics(reg prometheus.Registerer) (*clientMetrics, error) {
	source := prometheus.Labels{"source": "prometheus"}
	m := &clientMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: queriesName, Help: queriesHelp, ConstLabels: source,
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: queryDurationName, Help: queryDurationHelp, ConstLabels: source,
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, r := range results {
		m.queries.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register Prometheus source metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *clientMetrics) observe(result string, d time.Duration) {
	m.queries.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}
