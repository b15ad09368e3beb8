package prometheus

import (
	"errors"
	"fmt"

	promclient "github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of hpa_signals_prometheus_restart_evaluations_total.
const (
	// resultShortened: the query ran with its ranges shortened.
	resultShortened = "shortened"
	// resultRefused: the query was refused, its window too short yet.
	resultRefused = "refused"
)

// metrics are the source's own metrics. A nil *metrics records nothing.
// The queries themselves are counted and timed by the provider
// (hpa_signals_source_*); these add what happens after a restart.
type metrics struct {
	restartEvaluations *promclient.CounterVec // result
}

func newMetrics(reg promclient.Registerer) (*metrics, error) {
	m := &metrics{restartEvaluations: promclient.NewCounterVec(promclient.CounterOpts{
		Name: "hpa_signals_prometheus_restart_evaluations_total",
		Help: "Queries whose window reached back before Prometheus' first scrape after a restart, by result: shortened (run over the time since that scrape) or refused (less than --prometheus-min-window-after-restart of data yet).",
	}, []string{"result"})}
	for _, r := range []string{resultShortened, resultRefused} {
		m.restartEvaluations.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.restartEvaluations); err != nil {
		return nil, fmt.Errorf("register Prometheus source metrics: %w", err)
	}
	return m, nil
}

// evaluated counts a query that was shortened or refused after a restart.
func (m *metrics) evaluated(ev Evaluation, err error) {
	switch {
	case m == nil:
	case errors.Is(err, ErrWindowAfterRestart):
		m.restartEvaluations.WithLabelValues(resultRefused).Inc()
	case err == nil && ev.Shortened():
		m.restartEvaluations.WithLabelValues(resultShortened).Inc()
	}
}
