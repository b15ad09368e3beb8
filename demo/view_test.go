package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2025, 11, 21, 14, 0, 0, 0, time.UTC)

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

// exampleHPAs are one HPA per metric type, as the controller would have
// written their status; the external one failed to read its metric.
func exampleHPAs() []*autoscalingv2.HorizontalPodAutoscaler {
	ref := func(name string) autoscalingv2.CrossVersionObjectReference {
		return autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}
	}
	qps := autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"}
	p99 := autoscalingv2.MetricIdentifier{Name: "http_request_duration_seconds_p99"}
	svc := autoscalingv2.CrossVersionObjectReference{APIVersion: "v1", Kind: "Service", Name: "sample-app-latency"}
	return []*autoscalingv2.HorizontalPodAutoscaler{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "sample-app-qps"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: ref("sample-app"), MinReplicas: ptr.To[int32](2), MaxReplicas: 20,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
				Metric: qps, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("50")}}}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			CurrentReplicas: 2, DesiredReplicas: 3, LastScaleTime: &metav1.Time{Time: t0.Add(-40 * time.Second)},
			CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{
				Metric: qps, Current: autoscalingv2.MetricValueStatus{AverageValue: q("74500m")}}}},
		},
	}, {
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "sample-app-latency-p99"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: ref("sample-app-latency"), MinReplicas: ptr.To[int32](2), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
					DescribedObject: svc, Metric: p99, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: q("250m")}}},
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}},
			},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			CurrentReplicas: 2, DesiredReplicas: 2,
			// Out of spec order, to check statuses are matched by identity.
			CurrentMetrics: []autoscalingv2.MetricStatus{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
					Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To[int32](63)}}},
				{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricStatus{
					DescribedObject: svc, Metric: p99, Current: autoscalingv2.MetricValueStatus{Value: q("31m")}}},
			},
		},
	}, {
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "billing-consumer"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: ref("billing-consumer"), MinReplicas: ptr.To[int32](1), MaxReplicas: 12,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "kafka_consumer_lag"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("1k")}}}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			CurrentReplicas: 1, DesiredReplicas: 1,
			// The controller leaves a zero entry for a metric it could not read.
			CurrentMetrics: []autoscalingv2.MetricStatus{{}},
			Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
				{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "SucceededGetScale"},
				{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: "FailedGetExternalMetric",
					Message: "the HPA was unable to compute the replica count: unable to get external metric demo/kafka_consumer_lag"},
			},
		},
	}}
}

func rescaleEvent(name, hpa, msg string, at time.Time) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "demo", Name: name},
		InvolvedObject: corev1.ObjectReference{Kind: "HorizontalPodAutoscaler", Namespace: "demo", Name: hpa},
		Reason:         "SuccessfulRescale", Message: msg, Type: corev1.EventTypeNormal,
		FirstTimestamp: metav1.Time{Time: at}, LastTimestamp: metav1.Time{Time: at},
	}
}

func newFakeClient(t *testing.T) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	ctx := context.Background()
	for _, h := range exampleHPAs() {
		if _, err := client.AutoscalingV2().HorizontalPodAutoscalers(h.Namespace).Create(ctx, h, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	events := []*corev1.Event{
		rescaleEvent("e1", "sample-app-qps", "New size: 2; reason: Current number of replicas below Spec.MinReplicas", t0.Add(-5*time.Minute)),
		rescaleEvent("e2", "sample-app-qps", "New size: 3; reason: pods metric http_requests_per_second above target", t0.Add(-40*time.Second)),
		{ // not a rescale: ignored
			ObjectMeta:     metav1.ObjectMeta{Namespace: "demo", Name: "e3"},
			InvolvedObject: corev1.ObjectReference{Kind: "HorizontalPodAutoscaler", Name: "sample-app-qps"},
			Reason:         "FailedGetPodsMetric", Message: "boom", LastTimestamp: metav1.Time{Time: t0},
		},
	}
	for _, e := range events {
		if _, err := client.CoreV1().Events("demo").Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return client
}

func TestWatcherPollHPAs(t *testing.T) {
	w, err := NewWatcher(WatcherOptions{Client: newFakeClient(t), Namespaces: []string{"demo"}, Clock: clocktesting.NewFakeClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	s := w.Poll(context.Background())
	if len(s.Errors) != 0 {
		t.Fatalf("errors: %v", s.Errors)
	}
	if !s.Time.Equal(t0) {
		t.Errorf("Time = %v, want %v", s.Time, t0)
	}
	got := map[string]HPAView{}
	var order []string
	for _, h := range s.HPAs {
		got[h.Name] = h
		order = append(order, h.Name)
	}
	if want := "billing-consumer,sample-app-latency-p99,sample-app-qps"; strings.Join(order, ",") != want {
		t.Errorf("HPAs = %v, want sorted %s", order, want)
	}

	qps := got["sample-app-qps"]
	if qps.CurrentReplicas != 2 || qps.DesiredReplicas != 3 || qps.MinReplicas != 2 || qps.MaxReplicas != 20 {
		t.Errorf("qps replicas = %+v", qps)
	}
	if want := "New size: 3; reason: pods metric http_requests_per_second above target"; qps.LastScaleEvent != want {
		t.Errorf("qps LastScaleEvent = %q, want the newest rescale %q", qps.LastScaleEvent, want)
	}
	if !qps.LastScaleTime.Equal(t0.Add(-40 * time.Second)) {
		t.Errorf("qps LastScaleTime = %v", qps.LastScaleTime)
	}
	checkMetric(t, qps.Metrics[0], MetricView{Type: "Pods", Name: "http_requests_per_second", TargetType: "AverageValue", Target: 50, Current: ptrTo(74.5)})

	lat := got["sample-app-latency-p99"]
	if len(lat.Metrics) != 2 {
		t.Fatalf("latency metrics = %+v", lat.Metrics)
	}
	checkMetric(t, lat.Metrics[0], MetricView{Type: "Object", Name: "http_request_duration_seconds_p99", TargetType: "Value", Target: 0.25, Current: ptrTo(0.031)})
	checkMetric(t, lat.Metrics[1], MetricView{Type: "Resource", Name: "cpu", TargetType: "Utilization", Target: 80, Current: ptrTo(63.0)})
	if lat.LastScaleEvent != "" || !lat.LastScaleTime.IsZero() {
		t.Errorf("latency never scaled, got %q at %v", lat.LastScaleEvent, lat.LastScaleTime)
	}

	billing := got["billing-consumer"]
	checkMetric(t, billing.Metrics[0], MetricView{Type: "External", Name: "kafka_consumer_lag", TargetType: "AverageValue", Target: 1000})
	if !strings.HasPrefix(billing.Problem, "ScalingActive=False FailedGetExternalMetric: ") {
		t.Errorf("billing Problem = %q", billing.Problem)
	}

	if latest, ok := w.Latest(); !ok || len(latest.HPAs) != 3 {
		t.Errorf("Latest() = %d HPAs, %v", len(latest.HPAs), ok)
	}
}

func checkMetric(t *testing.T, got, want MetricView) {
	t.Helper()
	const eps = 1e-9
	if got.Type != want.Type || got.Name != want.Name || got.TargetType != want.TargetType || math.Abs(got.Target-want.Target) > eps {
		t.Errorf("metric = %+v, want %+v", got, want)
	}
	switch {
	case want.Current == nil && got.Current != nil:
		t.Errorf("%s current = %v, want unknown", want.Name, *got.Current)
	case want.Current != nil && got.Current == nil:
		t.Errorf("%s current unknown, want %v", want.Name, *want.Current)
	case want.Current != nil && math.Abs(*got.Current-*want.Current) > eps:
		t.Errorf("%s current = %v, want %v", want.Name, *got.Current, *want.Current)
	}
}

func TestWatcherNeedsClientAndNamespaces(t *testing.T) {
	if _, err := NewWatcher(WatcherOptions{Namespaces: []string{"demo"}}); err == nil {
		t.Error("NewWatcher without a client: no error")
	}
	if _, err := NewWatcher(WatcherOptions{Client: fake.NewClientset()}); err == nil {
		t.Error("NewWatcher without namespaces: no error")
	}
}

// metricsServer serves the adapter exposition bodies in turn.
type metricsServer struct {
	mu     sync.Mutex
	bodies []string
	status int
}

func (m *metricsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status != 0 {
		http.Error(w, "forbidden", m.status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, m.bodies[0])
	if len(m.bodies) > 1 {
		m.bodies = m.bodies[1:]
	}
}

func exposition(requests, hits, misses, promSum, promCount, kafkaSum, kafkaCount float64) string {
	return fmt.Sprintf(`# HELP hpa_signals_requests_total Metric API requests served.
# TYPE hpa_signals_requests_total counter
hpa_signals_requests_total{api="pods",code="200",metric="http_requests_per_second"} %g
hpa_signals_requests_total{api="external",code="200",metric="kafka_consumer_lag"} 10
# TYPE hpa_signals_cache_hits_total counter
hpa_signals_cache_hits_total %g
# TYPE hpa_signals_cache_misses_total counter
hpa_signals_cache_misses_total %g
# TYPE hpa_signals_source_query_duration_seconds histogram
hpa_signals_source_query_duration_seconds_bucket{source="prometheus",le="0.01"} 0
hpa_signals_source_query_duration_seconds_bucket{source="prometheus",le="+Inf"} %[5]g
hpa_signals_source_query_duration_seconds_sum{source="prometheus"} %[4]g
hpa_signals_source_query_duration_seconds_count{source="prometheus"} %[5]g
hpa_signals_source_query_duration_seconds_bucket{source="kafka",le="+Inf"} %[7]g
hpa_signals_source_query_duration_seconds_sum{source="kafka"} %[6]g
hpa_signals_source_query_duration_seconds_count{source="kafka"} %[7]g
# TYPE go_goroutines gauge
go_goroutines 42
`, requests, hits, misses, promSum, promCount, kafkaSum, kafkaCount)
}

func TestWatcherAdapterFigures(t *testing.T) {
	srv := &metricsServer{bodies: []string{
		exposition(100, 50, 10, 1.0, 100, 0.2, 20),
		// 2s later: +30 requests, +18 hits, +2 misses, 10 Prometheus queries
		// of 8ms each, no Kafka query.
		exposition(130, 68, 12, 1.08, 110, 0.2, 20),
		// The adapter restarted: counters went back.
		exposition(5, 1, 1, 0.01, 1, 0, 0),
	}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	clock := clocktesting.NewFakeClock(t0)
	w, err := NewWatcher(WatcherOptions{Client: fake.NewClientset(), Namespaces: []string{"demo"}, MetricsURL: ts.URL, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	first := w.Poll(ctx).Adapter
	if first.Err != "" || first.RequestsPerSecond != nil || first.CacheHitRatio != nil || first.SourceLatency != nil {
		t.Errorf("first scrape = %+v, want no figures yet (a rate needs two scrapes)", first)
	}

	clock.Step(2 * time.Second)
	second := w.Poll(ctx).Adapter
	if second.Err != "" {
		t.Fatal(second.Err)
	}
	if second.RequestsPerSecond == nil || *second.RequestsPerSecond != 15 {
		t.Errorf("RequestsPerSecond = %v, want 15", second.RequestsPerSecond)
	}
	if second.CacheHitRatio == nil || math.Abs(*second.CacheHitRatio-0.9) > 1e-9 {
		t.Errorf("CacheHitRatio = %v, want 0.9", second.CacheHitRatio)
	}
	if len(second.SourceLatency) != 1 || second.SourceLatency[0].Source != "prometheus" ||
		second.SourceLatency[0].Mean != 8*time.Millisecond || second.SourceLatency[0].Queries != 10 {
		t.Errorf("SourceLatency = %+v, want prometheus 8ms over 10 queries and no idle kafka", second.SourceLatency)
	}

	clock.Step(2 * time.Second)
	third := w.Poll(ctx).Adapter
	if third.RequestsPerSecond != nil || third.CacheHitRatio != nil || len(third.SourceLatency) != 0 {
		t.Errorf("after a restart = %+v, want no figures (counters went back)", third)
	}

	srv.mu.Lock()
	srv.status = http.StatusForbidden
	srv.mu.Unlock()
	if got := w.Poll(ctx).Adapter.Err; !strings.Contains(got, "403") {
		t.Errorf("Err = %q, want the 403", got)
	}
}

func TestWatcherWithoutMetricsURL(t *testing.T) {
	w, err := NewWatcher(WatcherOptions{Client: fake.NewClientset(), Namespaces: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Poll(context.Background()).Adapter.Err; got != "no metrics URL" {
		t.Errorf("Err = %q", got)
	}
}

func TestParseAdapterMetricsRejectsGarbage(t *testing.T) {
	if _, err := parseAdapterMetrics(strings.NewReader("hpa_signals_requests_total{ 1\n")); err == nil {
		t.Error("no error for a malformed exposition")
	}
}

// At zero replicas the controller writes the average over zero pods as the
// minimum int64 in milli-units; the view shows "-" instead of that number.
func TestHPAViewAtZeroReplicas(t *testing.T) {
	ext := autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "kafka_consumer_lag_earliest"},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("500")},
	}}
	status := func(avg string) []autoscalingv2.MetricStatus {
		return []autoscalingv2.MetricStatus{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: "kafka_consumer_lag_earliest"},
			Current: autoscalingv2.MetricValueStatus{AverageValue: q(avg)},
		}}}
	}
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "audit-consumer"},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr.To[int32](0), MaxReplicas: 6, Metrics: []autoscalingv2.MetricSpec{ext}},
		Status:     autoscalingv2.HorizontalPodAutoscalerStatus{CurrentMetrics: status("-9223372036854775808m")},
	}
	v := hpaView(h)
	if m := v.Metrics[0]; !m.AtZero || m.Current != nil || valueTarget(m) != "-/500 avg" {
		t.Errorf("at 0 replicas: AtZero %v, Current %v, shown %q; want true, nil, %q", m.AtZero, m.Current, valueTarget(m), "-/500 avg")
	}
	h.Status.CurrentReplicas = 2
	h.Status.CurrentMetrics = status("1161")
	v = hpaView(h)
	if m := v.Metrics[0]; m.AtZero || valueTarget(m) != "1161/500 avg" {
		t.Errorf("at 2 replicas: AtZero %v, shown %q; want false, %q", m.AtZero, valueTarget(m), "1161/500 avg")
	}
}
