package provider_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/config/promadapter"
	"github.com/hpa-signals/hpa-signals/provider"
)

// fakeNames answers label-value and label-name questions from maps keyed
// by the series selector, and counts the questions.
type fakeNames struct {
	mu     sync.Mutex
	values map[string][]string // match -> __name__ values
	labels map[string][]string // match -> label names
	fail   error
	asked  []string
}

func (f *fakeNames) LabelValues(_ context.Context, label string, matches []string, _, _ time.Time) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "values "+label+" "+strings.Join(matches, " "))
	if f.fail != nil {
		return nil, f.fail
	}
	return f.values[matches[0]], nil
}

func (f *fakeNames) LabelNames(_ context.Context, matches []string, _, _ time.Time) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "names "+strings.Join(matches, " "))
	return f.labels[matches[0]], nil
}

func coreMapper(gr schema.GroupResource) (schema.GroupResource, error) {
	for _, r := range []string{"pods", "namespaces", "services"} {
		if gr.Group == "" && (gr.Resource == r || gr.Resource+"s" == r) {
			return schema.GroupResource{Resource: r}, nil
		}
	}
	return schema.GroupResource{}, fmt.Errorf("no resource %s", gr)
}

func TestDiscovery(t *testing.T) {
	rules, err := promadapter.Parse([]byte(`
rules:
- seriesQuery: '{__name__=~"^http_.*_total$",namespace!=""}'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)
- seriesQuery: 'queue_depth{namespace!=""}'
  metricsQuery: sum(<<.Series>>) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__=~"^queue_.*",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
`))
	if err != nil {
		t.Fatal(err)
	}
	const (
		httpSel  = `{__name__=~"^http_.*_total$",namespace!=""}`
		queueSel = `{__name__=~"^queue_.*",namespace!=""}`
	)
	names := &fakeNames{
		values: map[string][]string{
			httpSel: {"http_requests_total", "http_errors_total"},
			`{__name__=~"^http_.*_total$",namespace!="",namespace!=""}`: {"http_requests_total", "http_errors_total"},
			`{__name__=~"^http_.*_total$",namespace!="",pod!=""}`:       {"http_requests_total", "http_errors_total"},
			`{__name__=~"^http_.*_total$",namespace!="",service!=""}`:   {"http_requests_total"},
			`{namespace!="",__name__="queue_depth"}`:                    {"queue_depth"},
			queueSel:                                                    {"queue_depth", "queue_age_seconds"},
		},
		labels: map[string][]string{httpSel: {"__name__", "instance", "namespace", "pod", "service"}},
	}
	base, err := config.Parse([]byte("metrics:\n- {name: queue_depth, apis: [external], source: prometheus, query: 'max(queue_depth{<<.LabelMatchers>>})'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := provider.NewDiscovery(provider.DiscoveryOptions{
		Rules: func() *promadapter.Config { return rules }, Catalog: func() *config.Catalog { return base },
		Prometheus: names, Mapper: coreMapper,
	})
	if d.Catalog() != base || d.HasSynced() {
		t.Fatal("before the first pass the catalog is not the base catalog")
	}
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !d.HasSynced() {
		t.Error("not synced after a pass")
	}
	cat := d.Catalog()
	want := map[string]string{
		"http_requests_per_second": "[pods object] map[services:service]",
		"http_errors_per_second":   "[pods object] map[]",
		"queue_age_seconds":        "[external] map[]",
	}
	for name, w := range want {
		m := cat.Lookup(name)
		if m == nil {
			t.Errorf("%s is not in the catalog", name)
			continue
		}
		if got := fmt.Sprintf("%v %v", m.APIs, m.Resources); got != w {
			t.Errorf("%s: %s, want %s", name, got, w)
		}
	}
	// queue_depth: the file's entry wins over the external rule's; the
	// custom rule maps no label to a resource, so it serves nothing.
	if m := cat.Lookup("queue_depth"); m == nil || m.Series != "" {
		t.Errorf("queue_depth is %+v, want the file's entry", m)
	}
	// One question per rule for names, one for the template rule's labels,
	// one per label that names a resource.
	wantAsked := []string{
		"values __name__ " + httpSel,
		"names " + httpSel,
		`values __name__ {__name__=~"^http_.*_total$",namespace!="",namespace!=""}`,
		`values __name__ {__name__=~"^http_.*_total$",namespace!="",pod!=""}`,
		`values __name__ {__name__=~"^http_.*_total$",namespace!="",service!=""}`,
		`values __name__ {namespace!="",__name__="queue_depth"}`,
		"values __name__ " + queueSel,
	}
	if !slices.Equal(names.asked, wantAsked) {
		t.Errorf("asked\n%s\nwant\n%s", strings.Join(names.asked, "\n"), strings.Join(wantAsked, "\n"))
	}

	// An unchanged pass keeps the same catalog value.
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.Catalog() != cat {
		t.Error("an unchanged pass built a new catalog")
	}
	// A failing pass keeps the names found before.
	names.fail = errors.New("prometheus is down")
	if err := d.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "prometheus is down") {
		t.Errorf("failing pass: %v", err)
	}
	if d.Catalog().Lookup("http_requests_per_second") == nil {
		t.Error("a failing pass dropped the names found before")
	}
	// A name gone from Prometheus leaves the catalog.
	names.fail = nil
	names.values[queueSel] = []string{"queue_depth"}
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.Catalog().Lookup("queue_age_seconds") != nil {
		t.Error("a name Prometheus no longer has is still served")
	}
	// A reloaded catalog is merged at once.
	base2, _ := config.Parse([]byte("presets: false\n"))
	base = base2
	d.CatalogChanged()
	if d.Catalog().Lookup("go_goroutines") != nil || d.Catalog().Lookup("http_requests_per_second") == nil {
		t.Error("the reloaded catalog is not merged with the discovered entries")
	}
}

func TestDiscoveryBound(t *testing.T) {
	rules, err := promadapter.Parse([]byte(`
externalRules:
- seriesQuery: '{__name__=~"^q_.*"}'
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
`))
	if err != nil {
		t.Fatal(err)
	}
	var many []string
	for i := range 10 {
		many = append(many, fmt.Sprintf("q_%d", i))
	}
	base, _ := config.Parse([]byte("presets: false\n"))
	m := provider.NewMetrics(nil)
	d := provider.NewDiscovery(provider.DiscoveryOptions{
		Rules: func() *promadapter.Config { return rules }, Catalog: func() *config.Catalog { return base },
		Prometheus: &fakeNames{values: map[string][]string{`{__name__=~"^q_.*"}`: many}}, Mapper: coreMapper, MaxMetrics: 4, Metrics: m,
	})
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Catalog().Metrics); n != 4 {
		t.Errorf("%d metrics served, want the bound 4", n)
	}
}
