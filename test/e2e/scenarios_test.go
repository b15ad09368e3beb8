//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// The workloads and HPAs of demo/hpas (manifests/examples with
// behaviours of seconds): names and the numbers the scenarios rely on.
const (
	demoNamespace = "demo"
	topic         = "demo.orders"

	qpsHPA, qpsApp               = "sample-app-qps", "sample-app"                   // Pods, 50 req/s per pod, 2..20
	latencyHPA, latencyApp       = "sample-app-latency-p99", "sample-app-latency"   // Object, p99 250ms, 2..10
	goroutinesHPA, goroutinesApp = "sample-app-goroutines", "sample-app-goroutines" // Pods, 500 per pod, 1..10
	billingHPA                   = "billing-consumer"                               // External AverageValue lag 1000, 1..12
	shippingHPA                  = "shipping-consumer"                              // External Value lag seconds 30, 1..12
	auditHPA                     = "audit-consumer"                                 // External AverageValue lag 500, 0..6
)

// scaleTimeout bounds one scaling step: the 30s rate window has to fill
// and the controller syncs every 2s.
const scaleTimeout = 3 * time.Minute

// TestScenarios runs the adapter in a cluster with the example HPAs and
// checks what the real HPA controller does with its numbers: each signal
// scales its workload out and back in, an outage holds replica counts,
// access control holds, and the adapter starts and stops cleanly.
func TestScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	e := startEnv(ctx, t)
	c := e.Cluster()
	root := repoRoot(t)
	if err := cluster.ApplyKustomize(ctx, c, filepath.Join(root, "demo", "hpas")); err != nil {
		t.Fatal(err)
	}
	replicas := startReplicaLog(ctx, c)
	defer func() { t.Logf("replica counts over the run (time since the HPAs were applied):\n%s", replicas) }()

	baseline(ctx, t, e)

	t.Run("APISurface", func(t *testing.T) { apiSurface(ctx, t, e, root) })
	t.Run("Signals", func(t *testing.T) {
		t.Run("QPS", func(t *testing.T) { t.Parallel(); qpsScenario(ctx, t, e) })
		t.Run("Latency", func(t *testing.T) { t.Parallel(); latencyScenario(ctx, t, e) })
		t.Run("Goroutines", func(t *testing.T) { t.Parallel(); goroutinesScenario(ctx, t, e) })
		t.Run("Kafka", func(t *testing.T) { t.Parallel(); kafkaScenario(ctx, t, e) })
		t.Run("ScaleFromZero", func(t *testing.T) { t.Parallel(); scaleFromZeroScenario(ctx, t, e) })
		t.Run("ShareGroup", func(t *testing.T) { t.Parallel(); shareGroupScenario(ctx, t, e) })
	})
	t.Run("PrometheusOutage", func(t *testing.T) { outageScenario(ctx, t, e) })
	t.Run("Security", func(t *testing.T) { securityScenario(ctx, t, e, root) })
	t.Run("Scope", func(t *testing.T) { scopeScenario(ctx, t, e) })
	t.Run("KeyCap", func(t *testing.T) { keyCapScenario(ctx, t, e) })
	t.Run("PrometheusAdapterRules", func(t *testing.T) { prometheusAdapterScenario(ctx, t, e, root) })
	t.Run("Explain", func(t *testing.T) { explainScenario(ctx, t, e) })
	t.Run("Lifecycle", func(t *testing.T) { lifecycleScenario(ctx, t, e) })
}

// baseline puts light load on the HTTP workloads (below every target) and
// waits until every HPA reports its metrics at its minimum.
func baseline(ctx context.Context, t *testing.T, e env.Env) {
	t.Helper()
	setLoad(ctx, t, e, qpsApp, 40, loadgen.Shape{})
	setLoad(ctx, t, e, latencyApp, 100, loadgen.Shape{})
	setLoad(ctx, t, e, goroutinesApp, 10, loadgen.Shape{})
	c := e.Cluster()
	for name, min := range map[string]int32{qpsHPA: 2, latencyHPA: 2, goroutinesHPA: 1, billingHPA: 1, shippingHPA: 1} {
		waitHPA(ctx, t, c, name, fmt.Sprintf("reports its metrics at %d replicas", min), scaleTimeout, settledAt(min))
	}
}

func setLoad(ctx context.Context, t *testing.T, e env.Env, deployment string, rps float64, load loadgen.Shape) {
	t.Helper()
	if err := e.SetLoad(ctx, demoNamespace, deployment, rps, load); err != nil {
		t.Fatal(err)
	}
}

// qpsScenario: http_requests_per_second as a Pods metric, target 50 per
// pod. 240 req/s calls for ceil(240/50) = 5 pods; 40 req/s for the minimum, 2.
func qpsScenario(ctx context.Context, t *testing.T, e env.Env) {
	c := e.Cluster()
	setLoad(ctx, t, e, qpsApp, 240, loadgen.Shape{})
	// Settled: 5 replicas, and the per-pod rate the controller sees is
	// 240/5 = 48, inside the 10% tolerance around the target, so it stays.
	h := waitHPA(ctx, t, c, qpsHPA, "settles at 5 replicas seeing ~48 req/s per pod under 240 req/s", scaleTimeout,
		func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			if !settledAt(5)(h) {
				return false
			}
			v := h.Status.CurrentMetrics[0].Pods.Current.AverageValue.AsApproximateFloat64()
			return v >= 43 && v <= 53
		})
	t.Logf("240 req/s: %s", describeHPA(h))
	setLoad(ctx, t, e, qpsApp, 40, loadgen.Shape{})
	h = waitHPA(ctx, t, c, qpsHPA, "back to 2 replicas under 40 req/s", scaleTimeout, settledAt(2))
	t.Logf("40 req/s: %s", describeHPA(h))
}

// latencyScenario: p99 latency of the Service as an Object metric, target
// 250ms. 2 pods of 4 workers x 20ms serve about 400 req/s; 600 req/s
// queues and p99 climbs past the target.
func latencyScenario(ctx context.Context, t *testing.T, e env.Env) {
	c := e.Cluster()
	setLoad(ctx, t, e, latencyApp, 600, loadgen.Shape{})
	h := waitHPA(ctx, t, c, latencyHPA, "scales out to 3+ replicas under 600 req/s", scaleTimeout, replicasAtLeast(3))
	t.Logf("600 req/s: %s", describeHPA(h))
	setLoad(ctx, t, e, latencyApp, 100, loadgen.Shape{})
	h = waitHPA(ctx, t, c, latencyHPA, "back to 2 replicas under 100 req/s", scaleTimeout, settledAt(2))
	t.Logf("100 req/s: %s", describeHPA(h))
}

// goroutinesScenario: go_goroutines as a Pods metric, target 500 per pod.
// 50 req/s each holding 20 goroutines for 2s keep about 2000 goroutines
// alive over the Deployment: 4 pods.
func goroutinesScenario(ctx context.Context, t *testing.T, e env.Env) {
	c := e.Cluster()
	setLoad(ctx, t, e, goroutinesApp, 50, loadgen.Shape{Goroutines: 20, Hold: 2 * time.Second})
	h := waitHPA(ctx, t, c, goroutinesHPA, "scales out to 4+ replicas holding ~2000 goroutines", scaleTimeout, replicasAtLeast(4))
	t.Logf("~2000 goroutines: %s", describeHPA(h))
	if h.Status.CurrentReplicas > 6 {
		t.Errorf("%s scaled to %d replicas for ~2000 goroutines at 500 per pod, want 4 or 5", goroutinesHPA, h.Status.CurrentReplicas)
	}
	setLoad(ctx, t, e, goroutinesApp, 10, loadgen.Shape{})
	h = waitHPA(ctx, t, c, goroutinesHPA, "back to 1 replica", scaleTimeout, settledAt(1))
	t.Logf("goroutines released: %s", describeHPA(h))
}

// kafkaScenario: a burst of 6000 messages to demo.orders. billing-consumer
// (kafka_consumer_lag, AverageValue 1000) scales out to ~6, drains the
// backlog at 50 msg/s per replica and scales back in; audit-consumer
// (minReplicas 0) wakes from zero; kafka_consumer_lag_seconds of shipping
// reports the backlog's age.
func kafkaScenario(ctx context.Context, t *testing.T, e env.Env) {
	c := e.Cluster()
	// Caught up before the burst: lag and lag seconds are 0, not missing.
	for _, m := range []string{"kafka_consumer_lag", "kafka_consumer_lag_seconds"} {
		v := waitExternalValue(ctx, t, c, m, "group=demo.shipping,topic="+topic, func(v float64) bool { return v == 0 })
		t.Logf("before the burst: %s{group=demo.shipping} = %g", m, v)
	}
	auditZero := waitHPA(ctx, t, c, auditHPA, "scaled to zero while caught up", scaleTimeout, replicasAtMost(0))
	t.Logf("caught up: %s", describeHPA(auditZero))

	burst := time.Now()
	if err := e.ProduceBurst(ctx, topic, 6000); err != nil {
		t.Fatal(err)
	}
	h := waitHPA(ctx, t, c, billingHPA, "scales out to 4+ replicas for a lag of ~6000", scaleTimeout, replicasAtLeast(4))
	t.Logf("after the burst: %s", describeHPA(h))
	lagSeconds := waitExternalValue(ctx, t, c, "kafka_consumer_lag_seconds", "group=demo.shipping,topic="+topic, func(v float64) bool { return v > 0 })
	if age := time.Since(burst).Seconds(); lagSeconds > age+5 {
		t.Errorf("kafka_consumer_lag_seconds{group=demo.shipping} = %g, but the oldest unconsumed record is at most %.0fs old", lagSeconds, age)
	}
	t.Logf("kafka_consumer_lag_seconds{group=demo.shipping} = %g, %.0fs after the burst", lagSeconds, time.Since(burst).Seconds())
	h = waitHPA(ctx, t, c, auditHPA, "wakes from zero", scaleTimeout, replicasAtLeast(1))
	t.Logf("audit woke: %s", describeHPA(h))

	h = waitHPA(ctx, t, c, billingHPA, "back to 1 replica once drained", 2*scaleTimeout, settledAt(1))
	t.Logf("drained: %s", describeHPA(h))
	h = waitHPA(ctx, t, c, auditHPA, "back to zero once drained", 2*scaleTimeout, replicasAtMost(0))
	t.Logf("drained: %s", describeHPA(h))
	waitExternalValue(ctx, t, c, "kafka_consumer_lag", "group=demo.billing,topic="+topic, func(v float64) bool { return v == 0 })
}

// outageScenario: with Prometheus gone the adapter serves its last values
// until the staleness bound, then errors; the controller then reports the
// metric unavailable and keeps the replica count instead of scaling to the
// minimum. With Prometheus back, the HPA resumes.
func outageScenario(ctx context.Context, t *testing.T, e env.Env) {
	c := e.Cluster()
	setLoad(ctx, t, e, qpsApp, 150, loadgen.Shape{})
	waitHPA(ctx, t, c, qpsHPA, "settles at 3 replicas under 150 req/s", scaleTimeout, settledAt(3))

	if err := e.StopPrometheus(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = e.StartPrometheus(context.Background())
		}
	}()
	// Drop the load too: if the HPA acted on anything but an error it
	// would now scale in.
	setLoad(ctx, t, e, qpsApp, 40, loadgen.Shape{})
	h := waitHPA(ctx, t, c, qpsHPA, "reports the metric unavailable", time.Minute, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return condition(h, autoscalingv2.ScalingActive) == corev1.ConditionFalse
	})
	t.Logf("Prometheus stopped: %s", describeHPA(h))
	if msg := conditionMessage(h, autoscalingv2.ScalingActive); !strings.Contains(msg, "http_requests_per_second") {
		t.Errorf("ScalingActive message %q does not name the metric", msg)
	}
	_, err := rawGet(ctx, c, customPath("v1beta2", "pods/*/http_requests_per_second", "handler=work,window=30s"))
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "prometheus") {
		t.Errorf("pods metric with Prometheus stopped: got error %v, want 503 naming Prometheus", err)
	} else {
		t.Logf("pods metric with Prometheus stopped: %v", err)
	}
	// Longer than the scale-down stabilization window (20s): a scale-in
	// would have happened by now.
	hold := time.Now().Add(30 * time.Second)
	for time.Now().Before(hold) {
		h, err := getHPA(ctx, c, qpsHPA)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status.CurrentReplicas != 3 || (h.Spec.MinReplicas != nil && h.Status.DesiredReplicas == *h.Spec.MinReplicas) {
			t.Fatalf("during the outage the HPA moved: %s", describeHPA(h))
		}
		time.Sleep(time.Second)
	}

	if err := e.StartPrometheus(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	h = waitHPA(ctx, t, c, qpsHPA, "resumes and scales in to 2 after the outage", scaleTimeout, settledAt(2))
	t.Logf("Prometheus back: %s", describeHPA(h))
}

// apiSurface: discovery of every served version through the aggregator,
// Available APIServices, values that match the load, 404 and 400, and
// `kubectl get hpa` without <unknown>.
func apiSurface(ctx context.Context, t *testing.T, e env.Env, root string) {
	c := e.Cluster()
	for gv, want := range map[string]string{
		"custom.metrics.k8s.io/v1beta1":   "pods/http_requests_per_second",
		"custom.metrics.k8s.io/v1beta2":   "services/http_request_duration_seconds_p99",
		"external.metrics.k8s.io/v1beta1": "kafka_consumer_lag",
	} {
		out, err := cluster.Kubectl(ctx, c, "", "get", "--raw", "/apis/"+gv)
		if err != nil {
			t.Fatal(err)
		}
		var list metav1.APIResourceList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("discovery of %s: %v\n%s", gv, err, out)
		}
		if list.GroupVersion != gv || !hasResource(list, want) {
			t.Errorf("discovery of %s: groupVersion %q, %d resources, want %q among them", gv, list.GroupVersion, len(list.APIResources), want)
		}
	}
	for _, name := range []string{"v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"} {
		if err := cluster.WaitAPIServiceAvailable(ctx, c, name, 10*time.Second); err != nil {
			t.Error(err)
		}
	}

	// 40 req/s over the 2 pods of sample-app: about 20 each.
	items := waitCustomValues(ctx, t, c, "pods/*/http_requests_per_second", "handler=work,window=30s", func(vals map[string]float64) bool {
		if len(vals) != 2 {
			return false
		}
		for _, v := range vals {
			if v < 17 || v > 23 {
				return false
			}
		}
		return true
	}, "app.kubernetes.io/name=sample-app")
	t.Logf("http_requests_per_second of sample-app under 40 req/s: %v", items)

	if _, err := rawGet(ctx, c, customPath("v1beta2", "pods/*/no_such_metric", "")); !apierrors.IsNotFound(err) {
		t.Errorf("unknown metric: got %v, want 404", err)
	}
	if _, err := rawGet(ctx, c, customPath("v1beta2", "pods/*/http_requests_per_second", "app.kubernetes.io/name=sample-app")); !apierrors.IsBadRequest(err) {
		t.Errorf("selector key that is not a Prometheus label: got %v, want 400", err)
	}
	if _, err := rawGet(ctx, c, externalPath("kafka_consumer_lag", "group=demo.no-such-group")); !apierrors.IsNotFound(err) {
		t.Errorf("unknown consumer group: got %v, want 404", err)
	}

	out, err := cluster.Kubectl(ctx, c, "", "get", "hpa", "-n", demoNamespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get hpa:\n%s", out)
	if strings.Contains(out, "<unknown>") {
		t.Errorf("kubectl get hpa shows <unknown>:\n%s", out)
	}
}

func hasResource(list metav1.APIResourceList, name string) bool {
	for _, r := range list.APIResources {
		if r.Name == name {
			return true
		}
	}
	return false
}

// securityScenario: RBAC in front of the aggregated APIs, the namespace
// scope of external metrics, and the manifests as users apply them.
func securityScenario(ctx context.Context, t *testing.T, e env.Env, root string) {
	c := e.Cluster()
	// A ServiceAccount nobody granted anything.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "no-rbac", Namespace: demoNamespace}}
	if _, err := c.Client().CoreV1().ServiceAccounts(demoNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "no-rbac.kubeconfig")
	if err := cluster.ServiceAccountKubeconfig(ctx, c, demoNamespace, "no-rbac", kubeconfig); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		customPath("v1beta2", "pods/*/http_requests_per_second", ""),
		externalPath("kafka_consumer_lag", "group=demo.billing,topic="+topic),
	} {
		out, err := kubectlAs(ctx, kubeconfig, "get", "--raw", path)
		if err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("GET %s as a ServiceAccount without RBAC: %v %s, want 403 Forbidden", path, err, out)
		}
	}

	// A namespace reads only its own external metrics: demo's request rate
	// is not visible from namespace "other", with or without a selector
	// that names demo.
	if err := c.CreateNamespace(ctx, "other"); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := rawGet(ctx, c, externalPathIn("other", "http_requests_per_second", "namespace=demo")); !apierrors.IsForbidden(err) {
		t.Errorf("external metric of namespace demo asked from namespace other: got %v, want 403", err)
	}
	if _, err := rawGet(ctx, c, externalPathIn("other", "http_requests_per_second", "")); !apierrors.IsNotFound(err) {
		t.Errorf("external metric of namespace other (no workloads): got %v, want 404, not demo's data", err)
	}
	// From demo itself the same metric answers.
	waitExternalValue(ctx, t, c, "http_requests_per_second", "handler=work,window=30s", func(v float64) bool { return v > 0 })
	// demo's consumer groups are not other's: asked from other, demo.billing
	// answers exactly like a group of other's that does not exist.
	_, foreign := rawGet(ctx, c, externalPathIn("other", "kafka_consumer_lag", "group=demo.billing,topic="+topic))
	_, unknown := rawGet(ctx, c, externalPathIn("other", "kafka_consumer_lag", "group=other.billing,topic="+topic))
	if !apierrors.IsNotFound(foreign) || !apierrors.IsNotFound(unknown) ||
		strings.ReplaceAll(foreign.Error(), "demo.billing", "G") != strings.ReplaceAll(unknown.Error(), "other.billing", "G") {
		t.Errorf("from namespace other: group demo.billing: %v; group other.billing (none such): %v; want the same 404", foreign, unknown)
	}

	// The manifests as a user applies them pass the real apiserver's
	// validation and admission.
	for _, dir := range []string{"manifests", "manifests/examples"} {
		if out, err := cluster.Kubectl(ctx, c, "", "apply", "--dry-run=server", "-k", filepath.Join(root, dir)); err != nil {
			t.Errorf("kubectl apply --dry-run=server -k %s: %v\n%s", dir, err, out)
		}
	}
}

// lifecycleScenario (local stack): the adapter is ready within a second of
// start, and on SIGTERM it finishes what it serves and exits within its
// grace period; a new process takes over and the HPAs keep working.
func lifecycleScenario(ctx context.Context, t *testing.T, e env.Env) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("needs the adapter as a local process: it runs as a Deployment here")
	}
	if d := s.AdapterReadyAfter(); d > time.Second {
		t.Errorf("adapter ready %s after start, want within 1s", d)
	} else {
		t.Logf("adapter ready %s after start", d.Round(time.Millisecond))
	}

	// Requests straight to the adapter while it is told to stop: each one
	// is answered, or turned away (connection refused, or a 503 "shutting
	// down" with Retry-After for a request that arrives on a kept-alive
	// connection after shutdown began), never cut off.
	proc := s.AdapterProcess()
	client := s.AdapterHTTPClient()
	url := s.AdapterURL() + customPath("v1beta2", "pods/*/http_requests_per_second", "handler=work,window=30s")
	// The metric answers first: a scenario before this one may have
	// restarted Prometheus, whose windows are refused for a while after
	// (see the Prometheus source's restart watch).
	if err := cluster.WaitFor(ctx, "the adapter to answer "+url, 2*time.Minute, func(ctx context.Context) (bool, error) {
		code, body, err := httpGet(ctx, client, url)
		return until(code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err))
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	var workers sync.WaitGroup
	for range 4 {
		workers.Go(func() {
			for {
				code, body, err := httpGet(ctx, client, url)
				outcome := fmt.Sprint(code)
				switch {
				case err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down"):
					outcome = "503 shutting down"
				case err != nil && strings.Contains(err.Error(), "connection refused"):
					outcome = "refused"
				case err != nil:
					outcome = "error: " + err.Error()
				}
				mu.Lock()
				counts[outcome]++
				mu.Unlock()
				if outcome == "refused" {
					return // the listener is closed for good
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // requests answered before the signal
	sent := time.Now()
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proc.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("adapter still running 15s after SIGTERM (grace period 10s)")
	}
	took := time.Since(sent)
	workers.Wait()
	if exited, code := proc.ExitCode(); !exited || code != 0 {
		t.Errorf("adapter exit status %d after SIGTERM, want 0", code)
	}
	t.Logf("adapter exited %s after SIGTERM; requests around it: %v", took.Round(time.Millisecond), counts)
	for r, n := range counts {
		if r != "200" && r != "refused" && r != "503 shutting down" {
			t.Errorf("%d requests ended %q around SIGTERM, want only answers (200), refused connections or 503 shutting down", n, r)
		}
	}
	if counts["200"] == 0 {
		t.Errorf("no request was answered before SIGTERM: %v", counts)
	}

	if err := s.RestartAdapter(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s.AdapterReadyAfter(); d > time.Second {
		t.Errorf("restarted adapter ready %s after start, want within 1s", d)
	}
	waitHPA(ctx, t, e.Cluster(), qpsHPA, "reports its metric from the new adapter", scaleTimeout, settledAt(2))
}

// rawGet GETs path from the cluster's apiserver as the cluster admin
// (through the aggregator for the metrics APIs). Non-2xx answers are
// *errors.StatusError.
func rawGet(ctx context.Context, c cluster.Cluster, path string) ([]byte, error) {
	return getWith(ctx, c.Client(), path)
}

// getWith GETs path with client (through the aggregator for the metrics
// APIs). Non-2xx answers are *errors.StatusError wrapped with the message
// of the answer: the error alone is the generic text of the status code.
func getWith(ctx context.Context, client kubernetes.Interface, path string) ([]byte, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, err
	}
	req := client.Discovery().RESTClient().Get().AbsPath(u.Path)
	for k, vs := range u.Query() {
		for _, v := range vs {
			req = req.Param(k, v)
		}
	}
	body, err := req.DoRaw(ctx)
	if err != nil && len(body) > 0 {
		var st metav1.Status
		if json.Unmarshal(body, &st) == nil && st.Message != "" {
			return body, fmt.Errorf("%w: %s", err, st.Message)
		}
	}
	return body, err
}

func customPath(version, resource, metricSelector string, labelSelector ...string) string {
	p := "/apis/custom.metrics.k8s.io/" + version + "/namespaces/" + demoNamespace + "/" + resource
	q := url.Values{}
	if metricSelector != "" {
		q.Set("metricLabelSelector", metricSelector)
	}
	if len(labelSelector) > 0 {
		q.Set("labelSelector", strings.Join(labelSelector, ","))
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

func externalPath(metric, selector string) string {
	return externalPathIn(demoNamespace, metric, selector)
}

func externalPathIn(namespace, metric, selector string) string {
	p := "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + namespace + "/" + metric
	if selector != "" {
		p += "?" + url.Values{"labelSelector": {selector}}.Encode()
	}
	return p
}

// metricValueList is the part of custom and external metric lists the
// scenarios read.
type metricValueList struct {
	Items []struct {
		DescribedObject struct{ Name string } `json:"describedObject"`
		Value           resource.Quantity     `json:"value"`
	} `json:"items"`
}

// waitCustomValues polls a custom metric (v1beta2) until ok holds for its
// values by object name, and returns them.
func waitCustomValues(ctx context.Context, t *testing.T, c cluster.Cluster, resource, metricSelector string, ok func(map[string]float64) bool, labelSelector ...string) map[string]float64 {
	t.Helper()
	path := customPath("v1beta2", resource, metricSelector, labelSelector...)
	var vals map[string]float64
	err := cluster.WaitFor(ctx, "GET "+path+" to answer the expected values", time.Minute, func(ctx context.Context) (bool, error) {
		body, err := rawGet(ctx, c, path)
		if err != nil {
			return false, err
		}
		var list metricValueList
		if err := json.Unmarshal(body, &list); err != nil {
			return false, err
		}
		vals = map[string]float64{}
		for _, it := range list.Items {
			vals[it.DescribedObject.Name] = it.Value.AsApproximateFloat64()
		}
		if ok(vals) {
			return true, nil
		}
		return false, fmt.Errorf("values %v", vals)
	})
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

// waitExternalValue polls an external metric of namespace demo until it has
// exactly one value and ok holds for it, and returns it.
func waitExternalValue(ctx context.Context, t *testing.T, c cluster.Cluster, metric, selector string, ok func(float64) bool) float64 {
	t.Helper()
	path := externalPath(metric, selector)
	var v float64
	err := cluster.WaitFor(ctx, "GET "+path+" to answer the expected value", 2*time.Minute, func(ctx context.Context) (bool, error) {
		body, err := rawGet(ctx, c, path)
		if err != nil {
			return false, err
		}
		var list metricValueList
		if err := json.Unmarshal(body, &list); err != nil {
			return false, err
		}
		if len(list.Items) != 1 {
			return false, fmt.Errorf("%d values, want 1", len(list.Items))
		}
		v = list.Items[0].Value.AsApproximateFloat64()
		if ok(v) {
			return true, nil
		}
		return false, fmt.Errorf("value %g", v)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// repoRoot is the module root: two directories above this file.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository root")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// kubectlAs runs kubectl with another kubeconfig (another identity).
func kubectlAs(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, cluster.KubectlPath, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// httpGet returns the status code and body of a GET.
func httpGet(ctx context.Context, client *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}
