package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/explain"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// explainPods are the pods the explain test's adapter knows: web-1 and
// web-2 are scraped as Prometheus' catalog labels say, web-3 is not
// scraped at all, web-r is scraped by a job that relabels the namespace
// and pod to kubernetes_namespace and kubernetes_pod_name, and team-r's
// only pod is scraped that way too.
var explainPods = providertest.Pods{
	"team-a":     {"web-1": {"app": "web"}, "web-2": {"app": "web"}, "web-3": {"app": "web"}, "web-r": {"app": "relabeled"}},
	"team-r":     {"api-1": {"app": "api"}},
	"team-empty": {"web-9": {"app": "web"}},
}

// TestExplainAgainstPrometheus explains metrics whose answers a real
// Prometheus holds, or does not and why: the source step's findings come
// from questions asked of it.
func TestExplainAgainstPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus; run make test")
	}
	web1, web2, webR, apiR := promtest.NewTarget(t), promtest.NewTarget(t), promtest.NewTarget(t), promtest.NewTarget(t)
	for _, tg := range []*promtest.Target{web1, web2, webR, apiR} {
		tg.Load(5, time.Millisecond)
	}
	prom := promtest.Start(t,
		web1.As(map[string]string{"namespace": "team-a", "pod": "web-1"}),
		web2.As(map[string]string{"namespace": "team-a", "pod": "web-2"}),
		webR.As(map[string]string{"kubernetes_namespace": "team-a", "kubernetes_pod_name": "web-r"}),
		apiR.As(map[string]string{"kubernetes_namespace": "team-r", "kubernetes_pod_name": "api-1"}))
	post, clock := explainServer(t, prom.URL())

	// Wait for two scrapes of every target.
	var steps map[string]explain.Step
	deadline := time.Now().Add(30 * time.Second)
	for {
		steps = post(t, "team-a", podsMetric("go_goroutines", nil, "app=web"))
		if steps[explain.StepSource].Result == explain.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no data within 30s: %+v", steps[explain.StepSource])
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the relabelled targets were scraped in the same rounds
	// The polls cached "no data" until the first scrapes: move the cache's
	// clock past the staleness bound, so the next reads fetch again.
	clock.Step(cacheOptions.StaleAfter + time.Second)
	steps = post(t, "team-a", podsMetric("go_goroutines", nil, "app=web"))

	t.Run("pods with and without series", func(t *testing.T) {
		wantStep(t, steps[explain.StepSource], explain.OK, "Prometheus has values for 2 of the 3 selected pods", "without series: web-3")
		wantStep(t, steps[explain.StepValue], explain.OK, "2 pods, average ")
	})
	t.Run("a pod scraped under other labels", func(t *testing.T) {
		steps := post(t, "team-a", podsMetric("go_goroutines", nil, "app=relabeled"))
		wantStep(t, steps[explain.StepSource], explain.Failed,
			`the pods' series of go_goroutines carry kubernetes_namespace="team-a" and kubernetes_pod_name=<name>, not namespace="team-a" and pod=<name>`,
			"set prometheus.labels.namespace: kubernetes_namespace and prometheus.labels.pod: kubernetes_pod_name in the catalog")
		wantStep(t, steps[explain.StepValue], explain.Failed, "the HPA gets 404 Not Found")
	})
	t.Run("a namespace scraped under other labels", func(t *testing.T) {
		steps := post(t, "team-r", externalMetric("go_goroutines", nil))
		wantStep(t, steps[explain.StepSource], explain.Failed,
			`series of go_goroutines carry kubernetes_namespace="team-r", not namespace="team-r"`, "prometheus.labels.namespace: kubernetes_namespace")
	})
	t.Run("a selector value no series has", func(t *testing.T) {
		steps := post(t, "team-a", podsMetric("http_requests_per_second", map[string]string{"code": "500"}, "app=web"))
		wantStep(t, steps[explain.StepSource], explain.Failed, `no series of http_requests_total has code="500"`,
			`code holds "200"`, "fix: change code=... in the HPA's metric selector")
	})
	t.Run("a namespace without series", func(t *testing.T) {
		steps := post(t, "team-empty", podsMetric("go_goroutines", nil, "app=web"))
		wantStep(t, steps[explain.StepSource], explain.Failed, `Prometheus has no series of go_goroutines for namespace "team-empty", under any label`)
	})
	t.Run("a latency quantile of the selected pods", func(t *testing.T) {
		steps := post(t, "team-a", podsMetric("http_request_duration_seconds_p99", nil, "app=web"))
		// The targets serve requests, so their histograms exist; p99 of the
		// selected pods is a value.
		wantStep(t, steps[explain.StepSource], explain.OK, "Prometheus has values for 2 of the 3 selected pods")
	})
	t.Run("Prometheus down", func(t *testing.T) {
		prom.Stop()
		defer prom.Start()
		steps := post(t, "team-a", podsMetric("go_goroutines", nil, "app=web"))
		wantStep(t, steps[explain.StepSource], explain.Failed, "Prometheus does not answer the query", "connection refused")
		if strings.Contains(steps[explain.StepSource].Summary, prom.URL()) {
			t.Errorf("the source step names Prometheus' address: %s", steps[explain.StepSource].Summary)
		}
	})
}

// explainServer serves a provider with the explain API, reading
// Prometheus at promURL, and returns a function that posts an
// explanation and returns its steps by name, and the cache's clock.
func explainServer(t *testing.T, promURL string) (func(*testing.T, string, explain.MetricExplanationSpec) map[string]explain.Step, *clocktesting.FakeClock) {
	opts := prometheus.NewOptions()
	opts.URL, opts.Timeout = promURL, queryTimeout
	// Prometheus has just started: rates run over the seconds since its
	// first scrape from the first second (TestPrometheusRestart checks the
	// default refusal).
	opts.MinWindowAfterRestart = time.Second
	client, err := prometheus.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	cat := config.Default()
	clock := clocktesting.NewFakeClock(time.Now())
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: client,
		Pods:       explainPods,
		Cache:      provider.NewCache(cacheOptions, clock, nil),
		Redact:     provider.AddressesOf(promURL),
	})
	srv := providertest.NewServer(t, p)
	return func(t *testing.T, namespace string, spec explain.MetricExplanationSpec) map[string]explain.Step {
		t.Helper()
		b, _ := json.Marshal(explain.MetricExplanation{Spec: spec})
		resp, err := httpClient.Post(srv.URL+explain.CollectionPath(namespace), "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var me explain.MetricExplanation
		if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST explanation: %d, %v", resp.StatusCode, err)
		}
		steps := map[string]explain.Step{}
		for _, s := range me.Status.Steps {
			steps[s.Name] = s
		}
		return steps
	}, clock
}

func podsMetric(name string, selector map[string]string, pods string) explain.MetricExplanationSpec {
	var sel *metav1.LabelSelector
	if selector != nil {
		sel = &metav1.LabelSelector{MatchLabels: selector}
	}
	if _, err := labels.Parse(pods); err != nil {
		panic(err)
	}
	return explain.MetricExplanationSpec{PodSelector: pods, Metric: autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType,
		Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: name, Selector: sel}}}}
}

func externalMetric(name string, selector map[string]string) explain.MetricExplanationSpec {
	var sel *metav1.LabelSelector
	if selector != nil {
		sel = &metav1.LabelSelector{MatchLabels: selector}
	}
	return explain.MetricExplanationSpec{Metric: autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType,
		External: &autoscalingv2.ExternalMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: name, Selector: sel}}}}
}

func wantStep(t *testing.T, s explain.Step, result explain.Result, summary string, more ...string) {
	t.Helper()
	all := s.Summary + "\n" + strings.Join(s.Details, "\n") + "\nfix: " + s.Fix
	if s.Result != result || !strings.Contains(s.Summary, summary) {
		t.Errorf("%s step: %s\n%s\nwant %s with %q", s.Name, s.Result, all, result, summary)
		return
	}
	for _, m := range more {
		if !strings.Contains(all, m) {
			t.Errorf("%s step lacks %q:\n%s", s.Name, m, all)
		}
	}
}
