package explain

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cluster is what an Explainer reads from the Kubernetes API, with the
// caller's own credentials: nothing reaches Prometheus or Kafka but
// through the adapter's explain API, which answers for the caller's
// namespace only. NewCluster returns the real one.
type Cluster interface {
	// HPA returns an HPA as autoscaling/v2.
	HPA(ctx context.Context, namespace, name string) (*autoscalingv2.HorizontalPodAutoscaler, error)
	// Events returns the events of an HPA.
	Events(ctx context.Context, namespace, name string) ([]corev1.Event, error)
	// APIService returns an APIService by name.
	APIService(ctx context.Context, name string) (*APIService, error)
	// ScaleSelector returns the label selector of a scale target's scale
	// subresource: the pods a Pods metric reads.
	ScaleSelector(ctx context.Context, namespace string, ref autoscalingv2.CrossVersionObjectReference) (string, error)
	// Resource maps a kind to its resource as the HPA controller does,
	// e.g. "deployments.apps" for apps/v1 Deployment.
	Resource(apiVersion, kind string) (string, error)
	// Explain posts a MetricExplanation to the adapter's explain API in
	// namespace and returns the adapter's steps.
	Explain(ctx context.Context, namespace string, spec MetricExplanationSpec) ([]Step, error)
}

// Explainer explains HPAs. It is safe for concurrent use if its Cluster is.
type Explainer struct {
	Cluster Cluster
	// Now is the time events' ages are measured from. Nil means time.Now.
	Now func() time.Time
}

// ExplainHPA explains an HPA the cluster holds. The error is for an HPA
// that cannot be read; everything after that is a step of the report.
func (e *Explainer) ExplainHPA(ctx context.Context, namespace, name string) (*Report, error) {
	h, err := e.Cluster.HPA(ctx, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("read HPA %s/%s: %w", namespace, name, err)
	}
	return e.explain(ctx, h, true, nil), nil
}

// ExplainManifest explains an HPA that is not applied: what it would read.
// selectors are the pod selectors of the workloads its manifest declares,
// by "Kind/name", for a scale target the cluster does not hold yet.
func (e *Explainer) ExplainManifest(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, selectors map[string]string) *Report {
	return e.explain(ctx, h, false, selectors)
}

func (e *Explainer) explain(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, applied bool, selectors map[string]string) *Report {
	ref := h.Spec.ScaleTargetRef
	r := &Report{Namespace: h.Namespace, Name: h.Name, Applied: applied, Target: describeTarget(h)}
	// The pods of Pods metrics: the scale target's selector, as the HPA
	// controller reads it.
	var podSelector string
	var podErr error
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.PodsMetricSourceType {
			podSelector, podErr = e.Cluster.ScaleSelector(ctx, h.Namespace, ref)
			if sel, ok := selectors[ref.Kind+"/"+ref.Name]; podErr != nil && ok {
				podSelector, podErr = sel, nil
			}
			break
		}
	}
	var events []corev1.Event
	var eventsErr error
	if applied {
		events, eventsErr = e.Cluster.Events(ctx, h.Namespace, h.Name)
	}
	services := newAPIServices(ctx, e.Cluster)
	for i, ms := range h.Spec.Metrics {
		m := MetricReport{Index: i + 1, Type: string(ms.Type)}
		describeMetric(&m, ms)
		if applied {
			m.Steps = append(m.Steps, hpaStep(h, i, ms, events, eventsErr, podErr, e.now()))
		} else {
			m.Steps = append(m.Steps, Step{Name: StepHPA, Result: Skipped, Summary: "not applied: the steps below are what it would read"})
		}
		m.Steps = append(m.Steps, services.step(ctx, ms.Type))
		m.Steps = append(m.Steps, e.adapterSteps(ctx, h.Namespace, ms, podSelector, podErr)...)
		m.Verdict = Decide(m.Steps)
		if m.Verdict.Step == StepHPA && m.Verdict.Fix == "" {
			m.Verdict.Fix, m.Steps[0].Fix = recoverFix, recoverFix
		}
		r.Metrics = append(r.Metrics, m)
	}
	return r
}

// adapterSteps asks the adapter about one metric: the catalog, query,
// source and value steps.
func (e *Explainer) adapterSteps(ctx context.Context, namespace string, ms autoscalingv2.MetricSpec, podSelector string, podErr error) []Step {
	notAsked := func(step Step) []Step {
		out := []Step{step}
		for _, name := range []string{StepQuery, StepSource, StepValue} {
			out = append(out, Step{Name: name, Result: Skipped, Summary: "not checked: the adapter was not asked"})
		}
		return out
	}
	spec := MetricExplanationSpec{Metric: ms}
	switch ms.Type {
	case autoscalingv2.PodsMetricSourceType:
		if podErr == nil {
			spec.PodSelector = podSelector
		}
	case autoscalingv2.ObjectMetricSourceType:
		if ms.Object == nil {
			return notAsked(Step{Name: StepCatalog, Result: Failed, Summary: "the Object metric has no object section", Fix: "fix the HPA's spec"})
		}
		res, err := e.Cluster.Resource(ms.Object.DescribedObject.APIVersion, ms.Object.DescribedObject.Kind)
		if err != nil {
			return notAsked(Step{Name: StepCatalog, Result: Failed,
				Summary: fmt.Sprintf("the described object's kind %s %s is unknown to the cluster: %v", ms.Object.DescribedObject.APIVersion, ms.Object.DescribedObject.Kind, err),
				Fix:     "fix describedObject's apiVersion and kind in the HPA"})
		}
		spec.ObjectResource = res
	case autoscalingv2.ExternalMetricSourceType:
	default:
		return notAsked(Step{Name: StepCatalog, Result: Skipped, Summary: fmt.Sprintf("%s metrics are served by metrics-server, not hpa-signals", ms.Type)})
	}
	steps, err := e.Cluster.Explain(ctx, namespace, spec)
	if err != nil {
		fix := "check that the adapter runs and that the APIService " + APIServiceName + " is Available (kubectl get apiservice " + APIServiceName + ")"
		switch {
		case apierrors.IsForbidden(err):
			fix = "ask for the ClusterRole hpa-signals-explain in namespace " + namespace + " (a RoleBinding; see manifests/base/rbac-explain.yaml)"
		case apierrors.IsNotFound(err):
			fix = "install an adapter that serves the explain API: re-apply manifests/base of this version"
		}
		return notAsked(Step{Name: StepCatalog, Result: Failed, Summary: "cannot ask the adapter: " + err.Error(), Fix: fix})
	}
	return steps
}

func (e *Explainer) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// describeTarget says what the HPA scales and where it stands.
func describeTarget(h *autoscalingv2.HorizontalPodAutoscaler) string {
	ref := h.Spec.ScaleTargetRef
	minReplicas := int32(1)
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	s := fmt.Sprintf("%s/%s, min %d, max %d", ref.Kind, ref.Name, minReplicas, h.Spec.MaxReplicas)
	if h.Status.ObservedGeneration != nil || h.Status.CurrentReplicas > 0 || h.Status.DesiredReplicas > 0 {
		s = fmt.Sprintf("%s/%s at %d (desired %d, min %d, max %d)", ref.Kind, ref.Name, h.Status.CurrentReplicas, h.Status.DesiredReplicas, minReplicas, h.Spec.MaxReplicas)
	}
	return s
}

// describeMetric fills in the metric's name, selector, object and target.
func describeMetric(m *MetricReport, ms autoscalingv2.MetricSpec) {
	var id autoscalingv2.MetricIdentifier
	var target autoscalingv2.MetricTarget
	switch {
	case ms.Pods != nil:
		id, target = ms.Pods.Metric, ms.Pods.Target
	case ms.Object != nil:
		id, target = ms.Object.Metric, ms.Object.Target
		m.Object = ms.Object.DescribedObject.Kind + "/" + ms.Object.DescribedObject.Name
	case ms.External != nil:
		id, target = ms.External.Metric, ms.External.Target
	case ms.Resource != nil:
		id.Name, target = string(ms.Resource.Name), ms.Resource.Target
	case ms.ContainerResource != nil:
		id.Name, target = string(ms.ContainerResource.Name)+" of container "+ms.ContainerResource.Container, ms.ContainerResource.Target
	}
	m.Metric = id.Name
	if id.Selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(id.Selector); err == nil {
			m.Selector = sel.String()
		}
	}
	m.Target = describeMetricTarget(target)
}

func describeMetricTarget(t autoscalingv2.MetricTarget) string {
	switch {
	case t.Type == autoscalingv2.ValueMetricType && t.Value != nil:
		return "value " + formatQuantity(*t.Value)
	case t.Type == autoscalingv2.AverageValueMetricType && t.AverageValue != nil:
		return "average " + formatQuantity(*t.AverageValue)
	case t.Type == autoscalingv2.UtilizationMetricType && t.AverageUtilization != nil:
		return fmt.Sprintf("%d%% utilization", *t.AverageUtilization)
	}
	return ""
}

// formatQuantity renders a quantity as a number with at most three
// decimals: 48.2 rather than 48200m.
func formatQuantity(q resource.Quantity) string {
	return strconv.FormatFloat(math.Round(q.AsApproximateFloat64()*1000)/1000, 'f', -1, 64)
}
