package provider_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// A namespaced: false entry answers only the namespaces the catalog lists,
// and any other caller gets exactly the answer of a metric that does not
// exist, without a source call.
func TestCallerNamespacesOfAClusterWideEntry(t *testing.T) {
	cat, err := config.Parse([]byte(`
presets: false
metrics:
  - name: shared_queue_depth
    apis: [external]
    source: prometheus
    query: sum(queue_depth{<<.LabelMatchers>>})
    namespaced: false
    callerNamespaces: [platform]
`))
	if err != nil {
		t.Fatal(err)
	}
	prom := &fakePrometheus{answers: map[string][]prometheus.Sample{}}
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: prom,
		Pods:       fakePods{},
		Cache:      provider.NewCache(provider.CacheOptions{RefreshInterval: time.Second, StaleAfter: time.Minute, KeepAlive: time.Minute, FetchTimeout: time.Second}, nil, nil),
	})
	get := func(ns, metric string) error {
		_, err := p.GetExternalMetric(context.Background(), ns, labels.Everything(), cmprovider.ExternalMetricInfo{Metric: metric})
		return err
	}
	unknown := get("team-a", "no_such_metric")
	denied := get("team-a", "shared_queue_depth")
	if !apierrors.IsNotFound(denied) || !apierrors.IsNotFound(unknown) {
		t.Fatalf("caller not listed: %v; unknown metric: %v; want both 404", denied, unknown)
	}
	if want := `metric "shared_queue_depth" is not in the catalog`; denied.Error() != want {
		t.Errorf("caller not listed: %q, want %q (the text of a metric that does not exist)", denied, want)
	}
	if len(prom.queries) != 0 {
		t.Errorf("a caller that may not read the entry caused queries %v", prom.queries)
	}
	// The listed caller reaches the source (which has no data here).
	if err := get("platform", "shared_queue_depth"); !apierrors.IsNotFound(err) || len(prom.queries) != 1 {
		t.Errorf("listed caller: %v after %d queries, want the source's 404 after 1 query", err, len(prom.queries))
	}
}
