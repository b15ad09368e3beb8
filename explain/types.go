// Package explain says why an HPA's metrics have the values they have, or
// none. For each metric of an HPA it walks the path the HPA controller's
// request takes, one step at a time: the HPA's own conditions and events,
// the APIService of the metrics API and which adapter it points at, and,
// through the adapter's explain.hpa-signals.io API, the catalog entry, the
// query the adapter builds, what the source holds for it and the value
// served now. The first step that fails is the verdict, with its fix.
//
// It holds the explain.hpa-signals.io API types the adapter serves, the
// client side the kubectl plugin runs (Explainer, with the caller's own
// Kubernetes credentials only) and the report's rendering.
package explain

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The explain API: a namespaced, create-only resource, like
// SelfSubjectAccessReview. A POST of a MetricExplanation to
// /apis/explain.hpa-signals.io/v1alpha1/namespaces/NS/metricexplanations
// asks the adapter about one metric in namespace NS and answers with the
// object and its Status filled in.
const (
	Group    = "explain.hpa-signals.io"
	Version  = "v1alpha1"
	Resource = "metricexplanations"
	Kind     = "MetricExplanation"
)

// GroupVersion is the explain API's group and version.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// APIServiceName is the name of the APIService that registers the explain
// API with the aggregator.
const APIServiceName = Version + "." + Group

// CollectionPath is the path a MetricExplanation for namespace is posted to.
func CollectionPath(namespace string) string {
	return "/apis/" + Group + "/" + Version + "/namespaces/" + namespace + "/" + Resource
}

// MetricExplanation asks the adapter about one metric of an HPA, in the
// namespace of the request, and carries its answer in Status.
type MetricExplanation struct {
	metav1.TypeMeta `json:",inline"`
	Spec            MetricExplanationSpec   `json:"spec"`
	Status          MetricExplanationStatus `json:"status,omitempty"`
}

// MetricExplanationSpec is the metric as the HPA controller asks for it.
type MetricExplanationSpec struct {
	// Metric is the metric as the HPA declares it: type Pods, Object or
	// External.
	Metric autoscalingv2.MetricSpec `json:"metric"`
	// PodSelector selects the pods the HPA scales: the label selector of
	// its scale target's scale subresource. Pods metrics only; empty when
	// it is not known.
	PodSelector string `json:"podSelector,omitempty"`
	// ObjectResource is the resource of an Object metric's described
	// object as the HPA controller maps its kind: "services",
	// "deployments.apps", "pods", "namespaces".
	ObjectResource string `json:"objectResource,omitempty"`
}

// MetricExplanationStatus is the adapter's answer: the steps it checked.
type MetricExplanationStatus struct {
	Steps []Step `json:"steps,omitempty"`
}

// The steps of an explanation, in the order the HPA controller's request
// meets them. The client checks the first two; the adapter the others.
const (
	// StepHPA: the HPA's conditions and recent events for the metric.
	StepHPA = "hpa"
	// StepAPIService: the APIService of the metric's API group: Available,
	// and pointing at hpa-signals rather than another adapter.
	StepAPIService = "apiservice"
	// StepCatalog: the catalog entry of the metric name, served on the
	// metric's API; the parameters and selector keys it accepts.
	StepCatalog = "catalog"
	// StepQuery: what the adapter builds from the request: the PromQL, or
	// the Kafka group, topics and cluster, or the error the request gets.
	StepQuery = "query"
	// StepSource: what the source holds for the query.
	StepSource = "source"
	// StepValue: the value the adapter serves now, with its sample time
	// and the state of its cache.
	StepValue = "value"
)

// Steps lists the step names in order.
var Steps = []string{StepHPA, StepAPIService, StepCatalog, StepQuery, StepSource, StepValue}

// Result is the outcome of a step.
type Result string

const (
	// OK: the step holds.
	OK Result = "ok"
	// Failed: the step is broken; Step.Fix says what to change.
	Failed Result = "failed"
	// Skipped: the step was not checked (not applicable, not reachable
	// after a failed step, or not readable with the caller's rights).
	Skipped Result = "skipped"
)

// Step is one checked step of a metric's path.
type Step struct {
	// Name is one of the Step* constants.
	Name string `json:"name"`
	// Result is the outcome.
	Result Result `json:"result"`
	// Summary says what was found, in one line.
	Summary string `json:"summary"`
	// Details are further lines: the PromQL, pods without series, the
	// cache state, ...
	Details []string `json:"details,omitempty"`
	// Fix says what to change; set when Result is Failed.
	Fix string `json:"fix,omitempty"`
}
