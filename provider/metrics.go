package provider

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the adapter's own metrics about the requests it serves and
// its cache. A nil *Metrics records nothing.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec

	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	cacheRefreshes *prometheus.CounterVec
	cacheExpiries  prometheus.Counter
	cacheEntries   prometheus.Gauge
	cacheValueAge  prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpa_signals_requests_total",
			Help: "Metric API requests served, by API (pods, object, external), metric and HTTP status code.",
		}, []string{"api", "metric", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hpa_signals_request_duration_seconds",
			Help:    "Time to answer a metric API request inside the provider, by API and metric.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"api", "metric"}),
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
			Help: "Background refreshes, by result (success, error).",
		}, []string{"result"}),
		cacheExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpa_signals_cache_expired_total",
			Help: "Keys dropped because nobody read them within the keep-alive window.",
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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.requestDuration, m.cacheHits, m.cacheMisses,
			m.cacheRefreshes, m.cacheExpiries, m.cacheEntries, m.cacheValueAge)
	}
	return m
}

func (m *Metrics) observeRequest(api, metric string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(api, metric, strconv.Itoa(code)).Inc()
	m.requestDuration.WithLabelValues(api, metric).Observe(d.Seconds())
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

func (m *Metrics) cacheRefresh(err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.cacheRefreshes.WithLabelValues(result).Inc()
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
