package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/explain"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// inspectedPrometheus is fakePrometheus with the explain questions:
// QueryAll answers from the same map (NaN kept, an unknown query empty)
// and RecentLabelNames from labelNames by selector.
type inspectedPrometheus struct {
	*fakePrometheus
	labelNames map[string][]string
	// evaluation, if set, is how the source runs every query after a
	// Prometheus restart: Evaluation answers it, and QueryAll fails with
	// restart if that is set.
	evaluation *prometheus.Evaluation
	restart    *prometheus.RestartError
}

func (f *inspectedPrometheus) Evaluation(_ context.Context, promql string) (prometheus.Evaluation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.restart != nil {
		return prometheus.Evaluation{Query: promql}, f.restart
	}
	if f.evaluation != nil {
		return *f.evaluation, nil
	}
	return prometheus.Evaluation{Query: promql}, nil
}

// Query answers like the real client: without NaN, and no data for an
// empty answer.
func (f *inspectedPrometheus) Query(ctx context.Context, promql string) ([]prometheus.Sample, error) {
	all, err := f.QueryAll(ctx, promql)
	var out []prometheus.Sample
	for _, s := range all {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			out = append(out, s)
		}
	}
	if err == nil && len(out) == 0 {
		err = errors.Join(prometheus.ErrNoData, errors.New("no data for "+promql))
	}
	return out, err
}

func (f *inspectedPrometheus) QueryAll(_ context.Context, promql string) ([]prometheus.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, promql)
	if f.err != nil {
		return nil, f.err
	}
	if f.restart != nil {
		return nil, fmt.Errorf("query Prometheus for %q: %w", promql, f.restart)
	}
	return f.answers[promql], nil
}

func (f *inspectedPrometheus) RecentLabelNames(_ context.Context, selectors []string, _ time.Duration) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.labelNames[strings.Join(selectors, " ")], nil
}

// describedKafka is groupsKafka with DescribeGroup from descriptions.
type describedKafka struct {
	groupsKafka
	mu           sync.Mutex
	descriptions map[string]kafka.GroupDescription
	described    []string
}

func (f *describedKafka) DescribeGroup(_ context.Context, cluster, group string) (kafka.GroupDescription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.described = append(f.described, group)
	d, ok := f.descriptions[group]
	if !ok {
		return kafka.GroupDescription{}, kafka.GroupNotFound(cluster, group)
	}
	return d, nil
}

const explainCatalog = `
kafka:
  clusters:
    - name: main
      brokers: ["127.0.0.1:9092"]
  groupOwners:
    - namespace: team-a
      groups: [billing]
metrics:
  - name: kafka_consumer_lag_earliest
    apis: [external]
    source: kafka
    kafka: {signal: lag, offsetReset: earliest}
  - name: platform_requests
    apis: [external]
    source: prometheus
    namespaced: false
    callerNamespaces: [platform]
    query: sum(rate(http_requests_total{<<.LabelMatchers>>}[1m]))
`

type explainFixture struct {
	prom  *inspectedPrometheus
	kafka *describedKafka
	cat   *config.Catalog
	clock *clocktesting.FakeClock
	cache *provider.Cache
	srv   *httptest.Server
}

func newExplainFixture(t *testing.T, opts provider.CacheOptions) *explainFixture {
	t.Helper()
	cat, err := config.Parse([]byte(explainCatalog))
	if err != nil {
		t.Fatal(err)
	}
	f := &explainFixture{
		prom:  &inspectedPrometheus{fakePrometheus: &fakePrometheus{answers: map[string][]prometheus.Sample{}}, labelNames: map[string][]string{}},
		kafka: &describedKafka{groupsKafka: groupsKafka{groups: map[string]float64{}}, descriptions: map[string]kafka.GroupDescription{}},
		cat:   cat,
		clock: clocktesting.NewFakeClock(sampleTime.Add(2 * time.Second)),
	}
	f.cache = provider.NewCache(opts, f.clock, nil)
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: f.prom,
		Kafka:      f.kafka,
		Pods: providertest.Pods{"team-a": {
			"web-1": {"app": "web"}, "web-2": {"app": "web"}, "web-3": {"app": "web"},
		}},
		Cache: f.cache,
	})
	f.srv = providertest.NewServer(t, p)
	return f
}

// explain posts a MetricExplanation for namespace and returns the steps by
// name.
func (f *explainFixture) explain(t *testing.T, namespace string, spec explain.MetricExplanationSpec) map[string]explain.Step {
	t.Helper()
	code, body := f.post(t, namespace, explain.MetricExplanation{Spec: spec})
	if code != http.StatusOK {
		t.Fatalf("POST explanation: %d %s", code, body)
	}
	var me explain.MetricExplanation
	if err := json.Unmarshal([]byte(body), &me); err != nil {
		t.Fatal(err)
	}
	if me.Kind != explain.Kind || me.APIVersion != explain.GroupVersion.String() {
		t.Errorf("answer is a %s %s", me.APIVersion, me.Kind)
	}
	steps := map[string]explain.Step{}
	var order []string
	for _, s := range me.Status.Steps {
		steps[s.Name] = s
		order = append(order, s.Name)
	}
	if want := []string{explain.StepCatalog, explain.StepQuery, explain.StepSource, explain.StepValue}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("steps %v, want %v", order, want)
	}
	return steps
}

func (f *explainFixture) post(t *testing.T, namespace string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(f.srv.URL+explain.CollectionPath(namespace), "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func podsSpec(metric string, selector map[string]string) explain.MetricExplanationSpec {
	return explain.MetricExplanationSpec{
		Metric: autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: metric, Selector: labelSelector(selector)},
		}},
		PodSelector: "app=web",
	}
}

func externalSpec(metric string, selector map[string]string) explain.MetricExplanationSpec {
	return explain.MetricExplanationSpec{Metric: autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: metric, Selector: labelSelector(selector)},
	}}}
}

func labelSelector(m map[string]string) *metav1.LabelSelector {
	if m == nil {
		return nil
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func wantStep(t *testing.T, steps map[string]explain.Step, name string, result explain.Result, summary string, more ...string) {
	t.Helper()
	s := steps[name]
	all := s.Summary + "\n" + strings.Join(s.Details, "\n") + "\nfix: " + s.Fix
	if s.Result != result || !strings.Contains(s.Summary, summary) {
		t.Errorf("%s step: %s %q, want %s with %q\n%s", name, s.Result, s.Summary, result, summary, all)
		return
	}
	for _, m := range more {
		if !strings.Contains(all, m) {
			t.Errorf("%s step lacks %q:\n%s", name, m, all)
		}
	}
}

func TestExplainHealthyPodsMetric(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	q := `sum by (pod) (rate(http_requests_total{namespace="team-a",handler="work"}[2m]))`
	f.prom.answers[q] = []prometheus.Sample{sample(10, "pod", "web-1"), sample(math.NaN(), "pod", "web-2"), sample(5, "pod", "db-1")}
	steps := f.explain(t, "team-a", podsSpec("http_requests_per_second", map[string]string{"handler": "work"}))
	wantStep(t, steps, explain.StepCatalog, explain.OK, "http_requests_per_second: prometheus entry served on the pods, object, external API",
		"parameter window (default 2m", "selector keys: handler, code, method")
	wantStep(t, steps, explain.StepQuery, explain.OK, q)
	wantStep(t, steps, explain.StepSource, explain.OK, "Prometheus has values for 1 of the 3 selected pods",
		"without series: web-3", "NaN: web-2", "1 more series of the query belong to pods the HPA does not read")
	// The first read through the cache: it was not cached before. The
	// value is sampleTime's, 2s before the fake clock.
	wantStep(t, steps, explain.StepValue, explain.OK, "10 (sampled 12:00:00Z, 2s ago)", "cache: nobody read this value within --keep-alive")
	// A second explanation finds the value cached.
	steps = f.explain(t, "team-a", podsSpec("http_requests_per_second", map[string]string{"handler": "work"}))
	wantStep(t, steps, explain.StepValue, explain.OK, "10 (", "cache: fresh, fetched 0s ago")
}

func TestExplainAfterPrometheusRestart(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	q := `sum by (pod) (rate(http_requests_total{namespace="team-a",handler="work"}[2m]))`
	started := sampleTime.Add(-40 * time.Second)
	spec := podsSpec("http_requests_per_second", map[string]string{"handler": "work"})

	// Too little data since the restart: the source step shows the refusal.
	f.prom.restart = &prometheus.RestartError{Started: started, FirstScrape: started.Add(6 * time.Second),
		LookBack: 2 * time.Minute, MinWindow: 30 * time.Second, Now: started.Add(20 * time.Second)}
	steps := f.explain(t, "team-a", spec)
	wantStep(t, steps, explain.StepSource, explain.Failed, "Prometheus restarted at 11:59:20Z (20s ago)",
		"values resume at 11:59:56Z and cover the whole window from 12:01:26Z",
		"fix: wait until the time the message names: Prometheus' data has a hole from its last scrape before its restart to its first scrape after it; meanwhile the adapter serves its last value for up to --max-staleness")

	// Shortened: the answer is checked as usual, with a line saying so.
	f.prom.restart = nil
	f.prom.answers[q] = []prometheus.Sample{sample(10, "pod", "web-1"), sample(9, "pod", "web-2"), sample(11, "pod", "web-3")}
	f.prom.evaluation = &prometheus.Evaluation{Query: strings.Replace(q, "[2m]", "[34s]", 1), LookBack: 2 * time.Minute,
		Started: started, DataSince: started.Add(6 * time.Second), Window: 34 * time.Second}
	steps = f.explain(t, "team-a", spec)
	wantStep(t, steps, explain.StepSource, explain.OK, "Prometheus has values for 3 of the 3 selected pods",
		"Prometheus restarted at 11:59:20Z: the window is shortened from 2m0s to the 34s since its first scrape at 11:59:26Z, whole again from 12:01:26Z: "+
			strings.Replace(q, "[2m]", "[34s]", 1))
}

func TestExplainCatalogNearMiss(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	steps := f.explain(t, "team-a", podsSpec("http_request_per_second", nil))
	wantStep(t, steps, explain.StepCatalog, explain.Failed, `metric "http_request_per_second" is not in the catalog`,
		"did you mean http_requests_per_second?", "fix: rename the metric in the HPA to http_requests_per_second")
	for _, s := range []string{explain.StepQuery, explain.StepSource, explain.StepValue} {
		wantStep(t, steps, s, explain.Skipped, "the catalog step failed")
	}
	// A namespaced: false entry that does not list the caller is not in
	// the catalog for it: no near miss leads to it either.
	steps = f.explain(t, "team-a", externalSpec("platform_request", nil))
	wantStep(t, steps, explain.StepCatalog, explain.Failed, `metric "platform_request" is not in the catalog`)
	if strings.Contains(strings.Join(steps[explain.StepCatalog].Details, " ")+steps[explain.StepCatalog].Fix, "platform_requests") {
		t.Errorf("the catalog step names an entry team-a may not read: %+v", steps[explain.StepCatalog])
	}
	steps = f.explain(t, "platform", externalSpec("platform_request", nil))
	wantStep(t, steps, explain.StepCatalog, explain.Failed, "not in the catalog", "did you mean platform_requests?")
	// An entry on another API.
	steps = f.explain(t, "team-a", podsSpec("kafka_consumer_lag", nil))
	wantStep(t, steps, explain.StepCatalog, explain.Failed, `metric "kafka_consumer_lag" is served on the external API, not on pods`,
		"use it as an External metric in the HPA")
	if len(f.prom.queries) != 0 {
		t.Errorf("Prometheus was asked %v", f.prom.queries)
	}
}

func TestExplainSelectorKeyThatIsNotALabel(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	steps := f.explain(t, "team-a", podsSpec("http_requests_per_second", map[string]string{"app.kubernetes.io/name": "web"}))
	wantStep(t, steps, explain.StepQuery, explain.Failed, `the adapter answers 400 Bad Request: metric "http_requests_per_second" in namespace "team-a": invalid metric selector`,
		`key "app.kubernetes.io/name" is not a Prometheus label name`,
		`fix: remove "app.kubernetes.io/name" from the metric selector`)
	wantStep(t, steps, explain.StepSource, explain.Skipped, "not asked")
	wantStep(t, steps, explain.StepValue, explain.Failed, "the HPA gets 400 Bad Request")
	steps = f.explain(t, "team-a", podsSpec("http_requests_per_second", map[string]string{"path": "x"}))
	wantStep(t, steps, explain.StepQuery, explain.Failed, "400", "use only the keys the entry accepts (window, handler, code, method)")
}

func TestExplainPrometheusFindings(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	q := `histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="team-a"}[2m])))`
	f.prom.answers[q] = []prometheus.Sample{sample(math.NaN(), "pod", "web-1"), sample(math.NaN(), "pod", "web-2")}
	steps := f.explain(t, "team-a", podsSpec("http_request_duration_seconds_p99", nil))
	wantStep(t, steps, explain.StepSource, explain.Failed, "the query returns NaN for web-1, web-2", "NaN is 0/0", "fix: the adapter answers NaN as no data")
	wantStep(t, steps, explain.StepValue, explain.Failed, "the HPA gets 404 Not Found")

	// No series for the pods, and none under any label: every question
	// carries team-a's namespace on some label.
	f.prom.labelNames[`{__name__="go_goroutines"}`] = []string{"__name__", "namespace", "pod"}
	steps = f.explain(t, "team-a", podsSpec("go_goroutines", nil))
	wantStep(t, steps, explain.StepSource, explain.Failed, `Prometheus has no series of go_goroutines for namespace "team-a", under any label`)
	for _, q := range f.prom.queries {
		if strings.Contains(q, "go_goroutines") && !strings.Contains(q, `"team-a"`) {
			t.Errorf("a question without team-a's namespace: %s", q)
		}
	}
}

func TestExplainPrometheusOutage(t *testing.T) {
	opts := provider.NewCacheOptions()
	opts.FetchTimeout = time.Second
	f := newExplainFixture(t, *opts)
	q := `sum by (pod) (go_goroutines{namespace="team-a"})`
	f.prom.answers[q] = []prometheus.Sample{sample(40, "pod", "web-1")}
	spec := podsSpec("go_goroutines", nil)
	f.explain(t, "team-a", spec) // the HPA's first read
	f.prom.mu.Lock()
	f.prom.err = errors.New("query Prometheus: dial tcp 10.0.0.9:9090: connection refused")
	f.prom.mu.Unlock()

	f.clock.Step(opts.RefreshInterval)
	f.cache.RefreshDue(context.Background())
	steps := f.explain(t, "team-a", spec)
	wantStep(t, steps, explain.StepSource, explain.Failed, "Prometheus does not answer the query: query Prometheus: dial tcp [redacted]: connection refused",
		"fix: Prometheus is unreachable or failing for the adapter")
	wantStep(t, steps, explain.StepValue, explain.OK, "40 (",
		"cache: serving a stale value: the last answer is 10s old and the last refresh failed 0s ago (query Prometheus: dial tcp [redacted]: connection refused); it is served until it is 1m0s old")

	f.clock.Step(opts.StaleAfter)
	f.cache.RefreshDue(context.Background())
	steps = f.explain(t, "team-a", spec)
	wantStep(t, steps, explain.StepValue, explain.Failed, "the HPA gets 503 Service Unavailable",
		"cache: failing: no answer within --max-staleness (1m0s); the last refresh failed 0s ago", "fix: the source is failing")
	for name, s := range steps {
		if strings.Contains(s.Summary+strings.Join(s.Details, ""), "10.0.0.9") {
			t.Errorf("%s step shows the Prometheus address: %+v", name, s)
		}
	}
}

func TestExplainCacheEviction(t *testing.T) {
	opts := fixtureCacheOptions()
	opts.MaxKeysPerNamespace, opts.EvictAfterIdle = 1, time.Second
	f := newExplainFixture(t, opts)
	for _, q := range []string{`sum by (pod) (go_goroutines{namespace="team-a"})`, `sum by (pod) (rate(http_requests_total{namespace="team-a"}[2m]))`} {
		f.prom.answers[q] = []prometheus.Sample{sample(1, "pod", "web-1")}
	}
	f.explain(t, "team-a", podsSpec("go_goroutines", nil))
	f.clock.Step(2 * time.Second)
	f.explain(t, "team-a", podsSpec("http_requests_per_second", nil)) // evicts go_goroutines
	f.clock.Step(3 * time.Second)
	steps := f.explain(t, "team-a", podsSpec("go_goroutines", nil))
	wantStep(t, steps, explain.StepValue, explain.OK, "1 (",
		"cache: the value was evicted (--max-cache-keys-per-namespace) 3s ago; this read fetched it again")
}

func TestExplainKafka(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	f.kafka.groups["team-a.billing"] = 120
	f.kafka.descriptions["team-a.billing"] = kafka.GroupDescription{Cluster: "main", Group: "team-a.billing", State: "Stable", Members: 2,
		Topics: []kafka.TopicOffsets{{Topic: "team-a.orders", Committed: 12}}}
	f.kafka.descriptions["team-a.idle"] = kafka.GroupDescription{Cluster: "main", Group: "team-a.idle", State: "Empty"}
	f.kafka.descriptions["team-b.billing"] = kafka.GroupDescription{Cluster: "main", Group: "team-b.billing", State: "Stable", Members: 1}

	steps := f.explain(t, "team-a", externalSpec("kafka_consumer_lag", map[string]string{"group": "team-a.billing"}))
	wantStep(t, steps, explain.StepCatalog, explain.OK, "kafka_consumer_lag: kafka entry",
		`namespace "team-a" reads the consumer groups matching "team-a.*" (groupPattern "{namespace}.*") and "billing" (kafka.groupOwners)`)
	wantStep(t, steps, explain.StepQuery, explain.OK, `consumer group "team-a.billing" on cluster "main", the topics it has committed offsets for: signal lag, offsetReset latest`,
		`namespace "team-a" owns group "team-a.billing": it matches "team-a.*"`)
	wantStep(t, steps, explain.StepSource, explain.OK, `group "team-a.billing" on cluster "main": state Stable, 2 members; committed offsets on team-a.orders (12 partitions)`)
	wantStep(t, steps, explain.StepValue, explain.OK, "120 for cluster=main,group=team-a.billing")

	steps = f.explain(t, "team-a", externalSpec("kafka_consumer_lag", map[string]string{"group": "team-a.idle"}))
	wantStep(t, steps, explain.StepSource, explain.Failed, `consumer group "team-a.idle" has never committed an offset`,
		`group "team-a.idle" on cluster "main": state Empty, 0 members`, "fix: name its topic with the topic selector key")

	steps = f.explain(t, "team-a", externalSpec("kafka_consumer_lag", map[string]string{"group": "team-a.billing", "topic": "payroll"}))
	wantStep(t, steps, explain.StepSource, explain.Failed, `topic "payroll": group "team-a.billing" has no committed offsets for it`,
		"fix: name a topic the group consumes (team-a.orders)")

	steps = f.explain(t, "team-a", externalSpec("kafka_consumer_lag", map[string]string{"group": "team-a.gone"}))
	wantStep(t, steps, explain.StepSource, explain.Failed, `consumer group "team-a.gone" on cluster "main": not found`)

	// A group of another namespace, whether it exists or not, is explained
	// exactly like any group the namespace does not own, and Kafka is
	// never asked about it.
	foreign := f.explain(t, "team-a", externalSpec("kafka_consumer_lag", map[string]string{"group": "team-b.billing"}))
	unknown := f.explain(t, "team-a", externalSpec("kafka_consumer_lag", map[string]string{"group": "team-b.nothing"}))
	wantStep(t, foreign, explain.StepQuery, explain.Failed, `consumer group "team-b.billing" is not one namespace "team-a" reads, so the adapter answers 404 like for a group that does not exist: external metric "kafka_consumer_lag": consumer group "team-b.billing" on cluster "main": not found for namespace "team-a"`,
		`fix: name a consumer group namespace "team-a" owns (matching "team-a.*"`)
	a, _ := json.Marshal(foreign)
	b, _ := json.Marshal(unknown)
	if strings.ReplaceAll(string(a), "team-b.billing", "G") != strings.ReplaceAll(string(b), "team-b.nothing", "G") {
		t.Errorf("a foreign group is explained otherwise than one that does not exist:\n%s\n%s", a, b)
	}
	for _, g := range f.kafka.described {
		if strings.HasPrefix(g, "team-b.") {
			t.Errorf("Kafka was asked about %s", g)
		}
	}
}

func TestExplainAPI(t *testing.T) {
	f := newExplainFixture(t, fixtureCacheOptions())
	for _, c := range []struct {
		name string
		body any
		want string
	}{
		{"not a MetricExplanation", map[string]any{"spec": map[string]any{"metrik": 1}}, `unknown field \"metrik\"`},
		{"another kind", map[string]any{"kind": "Pod", "apiVersion": "v1"}, "post a explain.hpa-signals.io/v1alpha1 MetricExplanation"},
		{"resource metric", explain.MetricExplanation{Spec: explain.MetricExplanationSpec{Metric: autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType}}},
			`spec.metric.type \"Resource\": hpa-signals serves Pods, Object and External metrics`},
		{"another namespace's namespace object", explain.MetricExplanation{Spec: explain.MetricExplanationSpec{ObjectResource: "namespaces",
			Metric: autoscalingv2.MetricSpec{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
				DescribedObject: autoscalingv2.CrossVersionObjectReference{Kind: "Namespace", Name: "team-b"}, Metric: autoscalingv2.MetricIdentifier{Name: "go_goroutines"}}}}},
			`explain answers for namespace \"team-a\" only`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := f.post(t, "team-a", c.body)
			if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
				t.Errorf("got %d %s, want 400 with %q", code, body, c.want)
			}
		})
	}
	resp, err := http.Get(f.srv.URL + "/apis/explain.hpa-signals.io/v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	var list metav1.APIResourceList
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.APIResources) != 1 || list.APIResources[0].Name != "metricexplanations" || !list.APIResources[0].Namespaced {
		t.Errorf("discovery: %+v, %v", list, err)
	}
	resp, err = http.Post(f.srv.URL+"/apis/explain.hpa-signals.io/v1alpha1/metricexplanations", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST without a namespace: %d, want 404", resp.StatusCode)
	}
}
