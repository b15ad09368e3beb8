//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// prometheusAdapterScenario: the adapter restarted with
// --prometheus-adapter-config and a rules file of the classic shape
// (http_requests_total as http_requests_per_second); an HPA written for
// prometheus-adapter (the rule's metric name, no hpa-signals parameter)
// replaces sample-app-qps and scales sample-app as that one does: 240
// req/s to 5 replicas, 40 req/s back to 2. The rule's name replaces the
// preset of the same name while the flag is given.
func prometheusAdapterScenario(ctx context.Context, t *testing.T, e env.Env, root string) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("restarting the adapter with --prometheus-adapter-config needs the local stack")
	}
	c := e.Cluster()
	hpas := c.Client().AutoscalingV2().HorizontalPodAutoscalers(demoNamespace)
	rules, err := filepath.Abs("testdata/prometheus-adapter-e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := hpas.Delete(ctx, qpsHPA, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete %s: %v", qpsHPA, err)
	}
	defer func() {
		// Back to the stack's adapter and the example HPAs.
		if err := hpas.Delete(ctx, "sample-app-prometheus-adapter", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete the HPA: %v", err)
		}
		if err := s.RestartAdapterWith(ctx); err != nil {
			t.Errorf("restart the adapter without the rules: %v", err)
		}
		if err := cluster.ApplyKustomize(ctx, c, filepath.Join(root, "demo", "hpas")); err != nil {
			t.Errorf("re-apply demo/hpas: %v", err)
		}
	}()
	if err := s.RestartAdapterWith(ctx, "--prometheus-adapter-config="+rules, "--metrics-relist-interval=5s"); err != nil {
		t.Fatal(err)
	}
	// The external rule's metric exists only through the rules file.
	v := waitExternalValue(ctx, t, c, "http_requests_rate", "", func(v float64) bool { return v > 0 })
	t.Logf("http_requests_rate from the external rule: %g req/s", v)

	hpa, err := os.ReadFile("testdata/hpa-prometheus-adapter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Apply(ctx, c, string(hpa)); err != nil {
		t.Fatal(err)
	}
	const name = "sample-app-prometheus-adapter"
	setLoad(ctx, t, e, qpsApp, 240, loadgen.Shape{})
	h := waitHPA(ctx, t, c, name, "settles at 5 replicas seeing ~48 req/s per pod under 240 req/s", scaleTimeout,
		func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			if !settledAt(5)(h) {
				return false
			}
			v := h.Status.CurrentMetrics[0].Pods.Current.AverageValue.AsApproximateFloat64()
			return v >= 43 && v <= 53
		})
	t.Logf("240 req/s: %s", describeHPA(h))
	setLoad(ctx, t, e, qpsApp, 40, loadgen.Shape{})
	h = waitHPA(ctx, t, c, name, "back to 2 replicas under 40 req/s", scaleTimeout, settledAt(2))
	t.Logf("40 req/s: %s", describeHPA(h))
}
