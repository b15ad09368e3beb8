package explain

import (
	"context"
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// APIService is the part of an apiregistration.k8s.io/v1 APIService that
// explain reads, decoded from its JSON.
type APIService struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		// Service is nil for an API the kube-apiserver serves itself.
		Service *ServiceReference `json:"service,omitempty"`
		Group   string            `json:"group"`
		Version string            `json:"version"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason,omitempty"`
			Message string `json:"message,omitempty"`
		} `json:"conditions,omitempty"`
	} `json:"status"`
}

// ServiceReference is the Service an APIService routes to.
type ServiceReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (s *ServiceReference) String() string { return s.Namespace + "/" + s.Name }

// metricsAPIServices are the APIServices the HPA controller's requests go
// through, by metric type.
var metricsAPIServices = map[autoscalingv2.MetricSourceType][]string{
	autoscalingv2.PodsMetricSourceType:              {"v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io"},
	autoscalingv2.ObjectMetricSourceType:            {"v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io"},
	autoscalingv2.ExternalMetricSourceType:          {"v1beta1.external.metrics.k8s.io"},
	autoscalingv2.ResourceMetricSourceType:          {"v1beta1.metrics.k8s.io"},
	autoscalingv2.ContainerResourceMetricSourceType: {"v1beta1.metrics.k8s.io"},
}

// apiServices reads each APIService once per report. ours is the Service
// of the explain API's APIService: the hpa-signals that answers explain.
type apiServices struct {
	c    Cluster
	ours *ServiceReference
	read map[string]apiServiceRead
}

type apiServiceRead struct {
	svc *APIService
	err error
}

func newAPIServices(ctx context.Context, c Cluster) *apiServices {
	a := &apiServices{c: c, read: map[string]apiServiceRead{}}
	if svc, err := a.get(ctx, APIServiceName); err == nil && svc.Spec.Service != nil {
		a.ours = svc.Spec.Service
	}
	return a
}

func (a *apiServices) get(ctx context.Context, name string) (*APIService, error) {
	r, ok := a.read[name]
	if !ok {
		r.svc, r.err = a.c.APIService(ctx, name)
		a.read[name] = r
	}
	return r.svc, r.err
}

// step is the apiservice step of a metric type: every APIService of its
// API that exists must be Available and, for the custom and external
// metrics APIs, point at hpa-signals.
func (a *apiServices) step(ctx context.Context, t autoscalingv2.MetricSourceType) Step {
	names := metricsAPIServices[t]
	step := Step{Name: StepAPIService, Result: OK}
	if len(names) == 0 {
		return Step{Name: StepAPIService, Result: Skipped, Summary: fmt.Sprintf("metric type %q is not one the HPA controller knows", t)}
	}
	resourceMetrics := t == autoscalingv2.ResourceMetricSourceType || t == autoscalingv2.ContainerResourceMetricSourceType
	var found []string
	var problems []Step
	for _, name := range names {
		svc, err := a.get(ctx, name)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			if apierrors.IsForbidden(err) {
				return Step{Name: StepAPIService, Result: Skipped,
					Summary: fmt.Sprintf("not checked: you may not read APIService %s (manifests/base lets every authenticated user read it with ClusterRole hpa-signals-explain-apiservices)", name)}
			}
			return Step{Name: StepAPIService, Result: Skipped, Summary: fmt.Sprintf("not checked: reading APIService %s failed: %v", name, err)}
		}
		found = append(found, name)
		owner := a.owner(svc)
		available, reason, message := availability(svc)
		switch {
		case svc.Spec.Service == nil && !resourceMetrics:
			problems = append(problems, Step{Summary: fmt.Sprintf("%s is served by the kube-apiserver itself: no adapter is registered for it", name),
				Fix: "apply hpa-signals' manifests (kubectl apply -k manifests/), which register its APIServices"})
		case !resourceMetrics && owner != "hpa-signals":
			problems = append(problems, Step{Summary: fmt.Sprintf("%s is served by %s (Service %s), not by hpa-signals", name, owner, svc.Spec.Service),
				Fix: fmt.Sprintf("%s has one adapter per cluster: read this metric through %s, or point %s at hpa-signals again (re-apply manifests/base) and serve %s's metrics otherwise", svc.Spec.Group, owner, name, owner)})
		case !available:
			problems = append(problems, Step{Summary: fmt.Sprintf("%s is not Available: %s: %s", name, reason, message), Fix: availabilityFix(reason, svc)})
		default:
			where := "the kube-apiserver"
			if svc.Spec.Service != nil {
				where = fmt.Sprintf("%s (Service %s)", owner, svc.Spec.Service)
			}
			step.Details = append(step.Details, fmt.Sprintf("%s: Available, served by %s", name, where))
		}
	}
	if len(found) == 0 {
		return Step{Name: StepAPIService, Result: Failed,
			Summary: fmt.Sprintf("no APIService serves the API of %s metrics (%s do not exist)", t, strings.Join(names, ", ")),
			Fix:     "apply hpa-signals' manifests (kubectl apply -k manifests/), which register its APIServices"}
	}
	if len(problems) > 0 {
		step.Result, step.Summary, step.Fix = Failed, problems[0].Summary, problems[0].Fix
		for _, p := range problems[1:] {
			step.Details = append(step.Details, p.Summary)
		}
		return step
	}
	step.Summary = step.Details[0]
	step.Details = step.Details[1:]
	return step
}

// owner names the adapter an APIService points at: hpa-signals when it is
// the Service of the explain API, else from the Service's namespace and
// name and the APIService's labels.
func (a *apiServices) owner(svc *APIService) string {
	ref := svc.Spec.Service
	if ref == nil {
		return "the kube-apiserver"
	}
	if a.ours != nil && *ref == *a.ours {
		return "hpa-signals"
	}
	words := ref.Namespace + " " + ref.Name
	for k, v := range svc.Metadata.Labels {
		words += " " + k + "=" + v
	}
	words = strings.ToLower(words)
	for _, known := range []struct{ needle, name string }{
		{"keda", "KEDA"},
		{"prometheus-adapter", "prometheus-adapter"},
		{"datadog", "the Datadog Cluster Agent"},
		{"kube-metrics-adapter", "kube-metrics-adapter"},
		{"metrics-server", "metrics-server"},
		{"hpa-signals", "hpa-signals"},
	} {
		if strings.Contains(words, known.needle) {
			if known.name == "hpa-signals" && a.ours != nil {
				return "another hpa-signals installation"
			}
			return known.name
		}
	}
	return "another adapter"
}

func availability(svc *APIService) (bool, string, string) {
	for _, c := range svc.Status.Conditions {
		if c.Type == "Available" {
			return c.Status == "True", c.Reason, c.Message
		}
	}
	return false, "Unknown", "the aggregator has not checked it yet"
}

// availabilityFix says what to do about an APIService that is not
// Available, by the aggregator's reason.
func availabilityFix(reason string, svc *APIService) string {
	target := "the adapter"
	if svc.Spec.Service != nil {
		target = "Service " + svc.Spec.Service.String()
	}
	switch reason {
	case "ServiceNotFound":
		return fmt.Sprintf("%s does not exist: re-apply manifests/base", target)
	case "ServicePortError":
		return fmt.Sprintf("%s does not listen on the APIService's port: re-apply manifests/base", target)
	case "MissingEndpoints", "EndpointsNotFound":
		return fmt.Sprintf("%s has no ready endpoints: check the adapter's pods (kubectl -n %s get pods) and their logs", target, namespaceOf(svc))
	case "FailedDiscoveryCheck":
		return fmt.Sprintf("the aggregator cannot reach %s or does not trust it: check the adapter's pods and logs (kubectl -n %s logs deploy/hpa-signals), that the NetworkPolicy lets the kube-apiserver in, and that the APIService's caBundle holds the CA of the adapter's serving certificate", target, namespaceOf(svc))
	default:
		return fmt.Sprintf("check %s and the adapter's logs", target)
	}
}

func namespaceOf(svc *APIService) string {
	if svc.Spec.Service != nil {
		return svc.Spec.Service.Namespace
	}
	return "hpa-signals"
}
