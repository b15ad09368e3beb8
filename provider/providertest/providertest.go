// Package providertest serves a provider.Provider in tests, as
// net/http/httptest serves a handler: NewServer runs it behind the real
// custom-metrics-apiserver handler chain, and Pods is a pod lister over a
// fixed set of pods; Counter reads a counter of the adapter's own metrics.
// The provider's own tests and the integration tests
// share them; the e2e suite covers authentication, authorization and the
// pod watch cache.
package providertest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver"

	"github.com/hpa-signals/hpa-signals/provider"
)

// Pods is a provider.PodLister over fixed pods: namespace -> pod name ->
// labels. The zero value has no pods.
type Pods map[string]map[string]labels.Set

var _ provider.PodLister = Pods(nil)

// PodNames returns the pods of namespace whose labels match selector, in
// no particular order.
func (p Pods) PodNames(namespace string, selector labels.Selector) ([]string, error) {
	var names []string
	for name, l := range p[namespace] {
		if selector.Matches(l) {
			names = append(names, name)
		}
	}
	return names, nil
}

// NewServer serves p on the custom and external metrics APIs through the
// custom-metrics-apiserver handler chain, with the selector check and the
// explain API the adapter installs, without authentication or
// authorization. The server is closed when the test ends.
func NewServer(t testing.TB, p *provider.Provider) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(t, p))
	t.Cleanup(srv.Close)
	return srv
}

// NewHandler returns the handler chain NewServer serves, for benchmarks
// that call it in process, without a connection's cost.
func NewHandler(t testing.TB, p *provider.Provider) http.Handler {
	t.Helper()
	rc := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	rc.LoopbackClientConfig = &rest.Config{}
	rc.ExternalAddress = "127.0.0.1:443"
	provider.InstallSelectorCheck(&rc.Config)
	cfg := &apiserver.Config{GenericConfig: &rc.Config}
	s, err := provider.NewAPIServer(cfg.Complete(nil), "hpa-signals-test", p)
	if err != nil {
		t.Fatalf("create the metrics API server: %v", err)
	}
	provider.InstallExplain(s, p)
	return s.Handler
}

// Counter returns the value of the counter name{kv...} (label name, value
// pairs; other labels may be anything) that g gathers, and whether g has
// such a series.
func Counter(t testing.TB, g prometheus.Gatherer, name string, kv ...string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if ls[kv[i]] != kv[i+1] {
					continue series
				}
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
