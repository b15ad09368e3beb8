//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// getHPA reads one HPA of the demo namespace.
func getHPA(ctx context.Context, c cluster.Cluster, name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	return c.Client().AutoscalingV2().HorizontalPodAutoscalers(demoNamespace).Get(ctx, name, metav1.GetOptions{})
}

// waitHPA waits until cond holds for the HPA and returns it; on timeout it
// fails t with the HPA's status, which says what the controller saw.
func waitHPA(ctx context.Context, t *testing.T, c cluster.Cluster, name, what string, timeout time.Duration, cond func(*autoscalingv2.HorizontalPodAutoscaler) bool) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	var last *autoscalingv2.HorizontalPodAutoscaler
	err := cluster.WaitFor(ctx, name+": "+what, timeout, func(ctx context.Context) (bool, error) {
		h, err := getHPA(ctx, c, name)
		if err != nil {
			return false, err
		}
		last = h
		return cond(h), nil
	})
	if err != nil {
		t.Fatalf("%v\nlast status: %s", err, describeHPA(last))
	}
	return last
}

// replicasAtLeast and replicasAtMost are conditions on the HPA's current
// replica count.
func replicasAtLeast(n int32) func(*autoscalingv2.HorizontalPodAutoscaler) bool {
	return func(h *autoscalingv2.HorizontalPodAutoscaler) bool { return h.Status.CurrentReplicas >= n }
}

func replicasAtMost(n int32) func(*autoscalingv2.HorizontalPodAutoscaler) bool {
	return func(h *autoscalingv2.HorizontalPodAutoscaler) bool { return h.Status.CurrentReplicas <= n }
}

// settledAt holds when the HPA runs n replicas, wants n, and reports a
// value for each of its metrics.
func settledAt(n int32) func(*autoscalingv2.HorizontalPodAutoscaler) bool {
	return func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return h.Status.CurrentReplicas == n && h.Status.DesiredReplicas == n && reporting(h)
	}
}

// reporting reports whether the controller has a current value for every
// metric of the HPA (kubectl shows no <unknown>).
func reporting(h *autoscalingv2.HorizontalPodAutoscaler) bool {
	if len(h.Status.CurrentMetrics) != len(h.Spec.Metrics) {
		return false
	}
	for _, m := range h.Status.CurrentMetrics {
		if currentValue(m) == "" {
			return false
		}
	}
	return condition(h, autoscalingv2.ScalingActive) == corev1.ConditionTrue
}

// currentValue is the metric's current value as kubectl would print it, or
// "" when the controller has none.
func currentValue(m autoscalingv2.MetricStatus) string {
	var c autoscalingv2.MetricValueStatus
	switch m.Type {
	case autoscalingv2.PodsMetricSourceType:
		if m.Pods == nil {
			return ""
		}
		c = m.Pods.Current
	case autoscalingv2.ObjectMetricSourceType:
		if m.Object == nil {
			return ""
		}
		c = m.Object.Current
	case autoscalingv2.ExternalMetricSourceType:
		if m.External == nil {
			return ""
		}
		c = m.External.Current
	}
	switch {
	case c.AverageValue != nil:
		return c.AverageValue.String()
	case c.Value != nil:
		return c.Value.String()
	}
	return ""
}

func condition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) corev1.ConditionStatus {
	for _, c := range h.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func conditionMessage(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) string {
	for _, c := range h.Status.Conditions {
		if c.Type == typ {
			return c.Reason + ": " + c.Message
		}
	}
	return ""
}

// describeHPA is the HPA's status on one line per fact, for failures.
func describeHPA(h *autoscalingv2.HorizontalPodAutoscaler) string {
	if h == nil {
		return "(never read)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: replicas current %d desired %d", h.Name, h.Status.CurrentReplicas, h.Status.DesiredReplicas)
	for _, m := range h.Status.CurrentMetrics {
		fmt.Fprintf(&b, "; %s current %q", m.Type, currentValue(m))
	}
	for _, c := range h.Status.Conditions {
		fmt.Fprintf(&b, "\n  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	return b.String()
}

// replicaLog records every HPA's replica count and metric values once a
// second, so a run shows the transitions the HPAs went through.
type replicaLog struct {
	began time.Time

	mu          sync.Mutex
	transitions map[string][]string // HPA name -> "2 (0s)", "3 (41s)", ...
	last        map[string]int32
}

func startReplicaLog(ctx context.Context, c cluster.Cluster) *replicaLog {
	l := &replicaLog{began: time.Now(), transitions: map[string][]string{}, last: map[string]int32{}}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			list, err := c.Client().AutoscalingV2().HorizontalPodAutoscalers(demoNamespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			l.mu.Lock()
			for _, h := range list.Items {
				n := h.Status.CurrentReplicas
				if last, seen := l.last[h.Name]; seen && last == n {
					continue
				}
				l.last[h.Name] = n
				l.transitions[h.Name] = append(l.transitions[h.Name], fmt.Sprintf("%d (%s)", n, time.Since(l.began).Round(time.Second)))
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// String is one line per HPA: its replica counts with when they began.
func (l *replicaLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(l.transitions)) {
		fmt.Fprintf(&b, "  %-24s %s\n", n, strings.Join(l.transitions[n], " -> "))
	}
	return b.String()
}
