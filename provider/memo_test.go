package provider

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	clocktesting "k8s.io/utils/clock/testing"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// scriptedPrometheus answers every query with samples a test sets; each
// answer is a new slice, as the real client's.
type scriptedPrometheus struct {
	mu     sync.Mutex
	values map[string]float64 // pod -> value
}

func (s *scriptedPrometheus) Query(context.Context, string) ([]prometheus.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []prometheus.Sample
	for pod, v := range s.values {
		out = append(out, prometheus.Sample{Labels: map[string]string{"pod": pod}, Value: v, Timestamp: time.Unix(1, 0)})
	}
	return out, nil
}

func (s *scriptedPrometheus) set(pod string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[pod] = v
}

// podSet is a PodLister over pods of team-a a test changes.
type podSet struct {
	mu   sync.Mutex
	pods map[string]labels.Set
}

func (p *podSet) PodNames(namespace string, sel labels.Selector) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	for name, l := range p.pods {
		if namespace == "team-a" && sel.Matches(l) {
			names = append(names, name)
		}
	}
	return names, nil
}

func (p *podSet) add(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods[name] = labels.Set{"app": "web"}
}

// TestPodsAnswerIsReusedUntilValueOrPodsChange: a warm Pods read returns
// the list built for the same cached value and pods; a new pod, a refreshed
// value and a new catalog each give a new list with what changed.
func TestPodsAnswerIsReusedUntilValueOrPodsChange(t *testing.T) {
	prom := &scriptedPrometheus{values: map[string]float64{"web-1": 1, "web-2": 2, "web-3": 3}}
	pods := &podSet{pods: map[string]labels.Set{"web-1": {"app": "web"}, "web-2": {"app": "web"}, "db-1": {"app": "db"}}}
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	opts := testCacheOptions
	cache := NewCache(opts, clk, nil)
	cat := config.Default()
	var catMu sync.Mutex
	p := New(Options{
		Catalog: func() *config.Catalog {
			catMu.Lock()
			defer catMu.Unlock()
			return cat
		},
		Prometheus: prom, Pods: pods, Cache: cache,
	})
	info := cmprovider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: "http_requests_per_second"}
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	read := func() map[string]int64 {
		t.Helper()
		l, err := p.GetMetricBySelector(context.Background(), "team-a", sel, info, labels.Everything())
		if err != nil {
			t.Fatalf("GetMetricBySelector: %v", err)
		}
		out := map[string]int64{}
		for _, it := range l.Items {
			out[it.DescribedObject.Name] = it.Value.MilliValue()
		}
		return out
	}
	first, err := p.GetMetricBySelector(context.Background(), "team-a", sel, info, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.GetMetricBySelector(context.Background(), "team-a", sel, info, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if &again.Items[0] != &first.Items[0] {
		t.Error("a warm read with the same value and pods built new items, want the first read's")
	}
	if again == first {
		t.Error("two reads got the same list object: the encoder sets its kind, so each request needs its own")
	}
	if other, err := p.GetMetricBySelector(context.Background(), "team-a", labels.Everything(), info, labels.Everything()); err != nil || &other.Items[0] == &first.Items[0] {
		t.Errorf("another pod selector got the list of app=web (err %v)", err)
	}

	pods.add("web-3")
	if got := read(); len(got) != 3 || got["web-3"] != 3000 {
		t.Fatalf("after web-3 started: %v, want web-1..3", got)
	}

	prom.set("web-1", 7)
	clk.Step(opts.RefreshInterval)
	cache.RefreshDue(context.Background())
	if got := read(); got["web-1"] != 7000 || got["web-2"] != 2000 {
		t.Fatalf("after a refresh: %v, want web-1 at 7", got)
	}

	// A reloaded catalog whose default window differs builds a new query.
	reloaded := config.Default()
	m := reloaded.Lookup("http_requests_per_second")
	for i := range m.Parameters {
		m.Parameters[i].Default = "5m"
	}
	catMu.Lock()
	cat = reloaded
	catMu.Unlock()
	before := cache.Len()
	read()
	if cache.Len() != before+1 {
		t.Errorf("after a catalog reload the read used %d cache keys, want a new key for the new query (%d)", cache.Len(), before+1)
	}
}
