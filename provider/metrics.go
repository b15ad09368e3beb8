package provider

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hpa-signals/hpa-signals/config"
)

// The limits counted by hpa_signals_limit_hits_total, the values of its
// limit label.
const (
	// LimitCacheKeys: a new key found the cache full (--max-cache-keys).
	LimitCacheKeys = "cache_keys"
	// LimitCacheKeysPerNamespace: a new key found its namespace full
	// (--max-cache-keys-per-namespace).
	LimitCacheKeysPerNamespace = "cache_keys_per_namespace"
	// LimitConcurrentFetches: a request got no fetch slot within the fetch
	// timeout (--max-concurrent-fetches).
	LimitConcurrentFetches = "concurrent_fetches"
	// LimitRefreshesPerInterval: a due key was left for a later interval,
	// counted once per key and interval (--max-refreshes-per-interval).
	LimitRefreshesPerInterval = "refreshes_per_interval"
	// LimitSelectorLength: a metric selector was too long
	// (--max-selector-length).
	LimitSelectorLength = "selector_length"
	// LimitSelectorValues: a metric selector listed too many in/notin
	// values (--max-selector-values).
	LimitSelectorValues = "selector_values"
	// LimitMaxRange: a query range exceeded the catalog's
	// prometheus.maxRange.
	LimitMaxRange = "max_range"
	// LimitDiscoveredMetrics: a discovery pass found more metric names
	// than --max-discovered-metrics, counted once per pass.
	LimitDiscoveredMetrics = "discovered_metrics"
	// LimitExplanations: an explanation found every explanation slot busy.
	LimitExplanations = "explanations"
)

var limits = []string{LimitCacheKeys, LimitCacheKeysPerNamespace, LimitConcurrentFetches, LimitRefreshesPerInterval,
	LimitSelectorLength, LimitSelectorValues, LimitMaxRange, LimitDiscoveredMetrics, LimitExplanations}

// unknownMetric is the metric label of requests for a name the catalog
// does not have, so what callers type cannot grow the label set.
const unknownMetric = "unknown"

// Metrics are the adapter's own metrics about the requests it serves and
// its cache. A nil *Metrics records nothing.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec

	sourceQueries  *prometheus.CounterVec
	sourceDuration *prometheus.HistogramVec

	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	cacheRefreshes *prometheus.CounterVec
	cacheExpiries  prometheus.Counter
	cacheEvictions prometheus.Counter
	cacheEntries   prometheus.Gauge
	cacheValueAge  prometheus.Histogram

	limitHits *prometheus.CounterVec

	discoveryRuns     *prometheus.CounterVec
	discoveredMetrics prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_requests_total",
			Help: "Metric API requests served, by API (pods, object, external), metric (\"unknown\" for a name not in the catalog) and HTTP status code.",
		}, []string{"api", "metric", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hpa_signals_request_duration_seconds",
			Help:    "Time to answer a metric API request inside the provider, by API and metric.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"api", "metric"}),
		sourceQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_source_queries_total",
			Help: "Queries sent to a metric source (prometheus, kafka), by result: success, no_data, timeout, canceled, error.",
		}, []string{"source", "result"}),
		sourceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hpa_signals_source_query_duration_seconds",
			Help:    "Time a metric source took to answer a query, by source.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpa_signals_cache_hits_total",
			Help: "Reads answered from memory.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpa_signals_cache_misses_total",
			Help: "Reads that had to wait for a source fetch.",
		}),
		cacheRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_cache_refreshes_total",
			Help: "Background refreshes, by result (success, no_data, error).",
		}, []string{"result"}),
		cacheExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpa_signals_cache_expired_total",
			Help: "Keys dropped because nobody read them within the keep-alive window.",
		}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpa_signals_cache_evictions_total",
			Help: "Keys dropped to make room for a new key under --max-cache-keys or --max-cache-keys-per-namespace.",
		}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hpa_signals_cache_entries",
			Help: "Keys currently cached and refreshed.",
		}),
		cacheValueAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hpa_signals_cache_value_age_seconds",
			Help:    "Age of the values served from memory, since their fetch.",
			Buckets: []float64{1, 2, 5, 10, 15, 30, 60, 120, 300},
		}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_limit_hits_total",
			Help: "Requests or refreshes a limit refused, by limit: cache_keys, cache_keys_per_namespace, concurrent_fetches, refreshes_per_interval, selector_length, selector_values, max_range, discovered_metrics, explanations.",
		}, []string{"limit"}),
		discoveryRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_discovery_runs_total",
			Help: "Passes that discovered the metric names of prometheus-adapter rules, by result (success, error).",
		}, []string{"result"}),
		discoveredMetrics: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hpa_signals_discovered_metrics",
			Help: "Metrics served from prometheus-adapter rules after the last discovery pass.",
		}),
	}
	for _, l := range limits {
		m.limitHits.WithLabelValues(l) // every limit is exported, at 0 until hit
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.requestDuration, m.sourceQueries, m.sourceDuration, m.cacheHits, m.cacheMisses,
			m.cacheRefreshes, m.cacheExpiries, m.cacheEvictions, m.cacheEntries, m.cacheValueAge, m.limitHits,
			m.discoveryRuns, m.discoveredMetrics)
	}
	return m
}

// LimitHit counts one refusal by limit, a Limit* constant.
func (m *Metrics) LimitHit(limit string) { m.addLimitHits(limit, 1) }

func (m *Metrics) addLimitHits(limit string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.limitHits.WithLabelValues(limit).Add(float64(n))
}

func (m *Metrics) observeRequest(api, metric string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(api, metric, strconv.Itoa(code)).Inc()
	m.requestDuration.WithLabelValues(api, metric).Observe(d.Seconds())
}

// observeSource records one source call.
func (m *Metrics) observeSource(source config.Source, err error, d time.Duration) {
	if m == nil {
		return
	}
	m.sourceQueries.WithLabelValues(string(source), sourceResult(err)).Inc()
	m.sourceDuration.WithLabelValues(string(source)).Observe(d.Seconds())
}

func sourceResult(err error) string {
	switch {
	case err == nil:
		return "success"
	case IsNoData(err):
		return "no_data"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}

func (m *Metrics) cacheHit(age time.Duration) {
	if m == nil {
		return
	}
	m.cacheHits.Inc()
	m.cacheValueAge.Observe(age.Seconds())
}

func (m *Metrics) cacheErrorHit() {
	if m == nil {
		return
	}
	m.cacheHits.Inc()
}

func (m *Metrics) cacheMiss() {
	if m == nil {
		return
	}
	m.cacheMisses.Inc()
}

func (m *Metrics) cacheRefresh(result string) {
	if m == nil {
		return
	}
	m.cacheRefreshes.WithLabelValues(result).Inc()
}

func (m *Metrics) cacheEvicted() {
	if m == nil {
		return
	}
	m.cacheEvictions.Inc()
}

func (m *Metrics) cacheExpired() {
	if m == nil {
		return
	}
	m.cacheExpiries.Inc()
}

func (m *Metrics) setCacheEntries(n int) {
	if m == nil {
		return
	}
	m.cacheEntries.Set(float64(n))
}

func (m *Metrics) discoveryRun(err error, metrics int) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.discoveryRuns.WithLabelValues(result).Inc()
	m.discoveredMetrics.Set(float64(metrics))
}
