package explain

import (
	"fmt"
	"sort"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

// recentEvents is how far back the hpa step counts the HPA's warnings.
const recentEvents = 10 * time.Minute

// hpaStep is the hpa step of metric i: what the HPA itself reports for it
// (its current value or <unknown>), its conditions, and its recent warning
// events that name the metric.
func hpaStep(h *autoscalingv2.HorizontalPodAutoscaler, i int, ms autoscalingv2.MetricSpec, events []corev1.Event, eventsErr, podErr error, now time.Time) Step {
	step := Step{Name: StepHPA, Result: OK}
	name := metricName(ms)
	current := currentValue(h.Status.CurrentMetrics, i)
	active := condition(h, autoscalingv2.ScalingActive)
	able := condition(h, autoscalingv2.AbleToScale)

	var warnings []corev1.Event
	for _, ev := range events {
		if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, name) && now.Sub(eventTime(ev)) <= recentEvents {
			warnings = append(warnings, ev)
		}
	}
	sort.Slice(warnings, func(a, b int) bool { return eventTime(warnings[a]).After(eventTime(warnings[b])) })
	if len(warnings) > 0 {
		n := 0
		for _, ev := range warnings {
			n += max(1, int(ev.Count))
		}
		latest := warnings[0]
		step.Details = append(step.Details, fmt.Sprintf("%d warning events naming %s in the last %s; the latest, %s ago: %s: %s",
			n, name, recentEvents, roundAge(now.Sub(eventTime(latest))), latest.Reason, latest.Message))
	}
	if eventsErr != nil {
		step.Details = append(step.Details, "events not read: "+eventsErr.Error())
	}
	var conditions []string
	for _, c := range []*autoscalingv2.HorizontalPodAutoscalerCondition{active, able} {
		if c != nil {
			conditions = append(conditions, fmt.Sprintf("%s=%s (%s): %s", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	step.Details = append(conditions, step.Details...)

	switch {
	case able != nil && able.Status == corev1.ConditionFalse:
		step.Result = Failed
		step.Summary = fmt.Sprintf("the HPA cannot scale: %s: %s", able.Reason, able.Message)
		step.Fix = fmt.Sprintf("make sure the scale target %s/%s exists in namespace %s and has a scale subresource", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, h.Namespace)
	case podErr != nil && ms.Type == autoscalingv2.PodsMetricSourceType:
		step.Result = Failed
		step.Summary = "the pods of the scale target are not known: " + podErr.Error()
		step.Fix = fmt.Sprintf("make sure the scale target %s/%s exists in namespace %s and has a scale subresource with a selector", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, h.Namespace)
	case current != "":
		step.Summary = "current " + current
	case active != nil && active.Status == corev1.ConditionFalse && (active.Reason == "AmbiguousSelector" || active.Reason == "InvalidSelector"):
		step.Result = Failed
		step.Summary = fmt.Sprintf("the HPA reads <unknown>: %s: %s", active.Reason, active.Message)
		step.Fix = "give each HPA a scale target of its own: the pods of two HPAs must not overlap"
	case active == nil && len(warnings) == 0:
		step.Result = Skipped
		step.Summary = "the HPA has not evaluated its metrics yet"
	default:
		step.Result = Failed
		switch {
		case active != nil && active.Status == corev1.ConditionFalse && strings.Contains(active.Message, name):
			step.Summary = fmt.Sprintf("the HPA reads <unknown>: %s: %s", active.Reason, active.Message)
			step.Details = step.Details[1:] // the summary says it
		case len(warnings) > 0:
			step.Summary = fmt.Sprintf("the HPA reads <unknown>: %s: %s", warnings[0].Reason, warnings[0].Message)
		default:
			step.Summary = "the HPA reads <unknown>"
		}
		// The fix is the verdict's: see recoverFix.
	}
	return step
}

// recoverFix is the fix of an hpa step that failed while every step after
// it holds: the HPA saw an error the path no longer has.
const recoverFix = "every step the adapter checks holds now: the HPA reads the value at its next sync (every 15s by default)"

// currentValue renders the HPA's current value of metric i, or "" when it
// has none (kubectl shows <unknown>). The controller keeps
// status.currentMetrics in the order of spec.metrics, with an empty entry
// for a metric it could not read.
func currentValue(statuses []autoscalingv2.MetricStatus, i int) string {
	if i >= len(statuses) {
		return ""
	}
	var v autoscalingv2.MetricValueStatus
	switch s := statuses[i]; {
	case s.Pods != nil:
		v = s.Pods.Current
	case s.Object != nil:
		v = s.Object.Current
	case s.External != nil:
		v = s.External.Current
	case s.Resource != nil:
		v = s.Resource.Current
	case s.ContainerResource != nil:
		v = s.ContainerResource.Current
	default:
		return ""
	}
	switch {
	case v.AverageValue != nil:
		return "average " + formatQuantity(*v.AverageValue)
	case v.Value != nil:
		return "value " + formatQuantity(*v.Value)
	case v.AverageUtilization != nil:
		return fmt.Sprintf("%d%% utilization", *v.AverageUtilization)
	}
	return ""
}

func condition(h *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range h.Status.Conditions {
		if h.Status.Conditions[i].Type == t {
			return &h.Status.Conditions[i]
		}
	}
	return nil
}

func metricName(ms autoscalingv2.MetricSpec) string {
	switch {
	case ms.Pods != nil:
		return ms.Pods.Metric.Name
	case ms.Object != nil:
		return ms.Object.Metric.Name
	case ms.External != nil:
		return ms.External.Metric.Name
	case ms.Resource != nil:
		return string(ms.Resource.Name)
	case ms.ContainerResource != nil:
		return string(ms.ContainerResource.Name)
	}
	return ""
}

// eventTime is when an event last happened.
func eventTime(ev corev1.Event) time.Time {
	switch {
	case ev.Series != nil && !ev.Series.LastObservedTime.IsZero():
		return ev.Series.LastObservedTime.Time
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// roundAge renders an age to the second.
func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}
