package provider

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// Target is what a request reads a catalog entry for: an API and, on the
// custom metrics API, the resource of the object it describes.
type Target struct {
	API config.API
	// Resource is pods on the pods API; namespaces or one of the entry's
	// resources on the object API; empty on the external API.
	Resource schema.GroupResource
}

// String names the target as check-config prints it: "pods", "object
// namespaces", "object deployments.apps", "external".
func (t Target) String() string {
	if t.API == config.APIObject {
		return "object " + t.Resource.String()
	}
	return string(t.API)
}

// Targets lists what entry m is served for, in the order of its APIs: the
// pods API; the object API for namespaces and for each of its resources,
// sorted; the external API.
func Targets(m *config.Metric) []Target {
	var out []Target
	for _, api := range m.APIs {
		switch api {
		case config.APIPods:
			out = append(out, Target{API: api, Resource: podsResource})
		case config.APIObject:
			out = append(out, Target{API: api, Resource: namespacesResource})
			for _, r := range slices.Sorted(maps.Keys(m.Resources)) {
				out = append(out, Target{API: api, Resource: schema.ParseGroupResource(r)})
			}
		case config.APIExternal:
			out = append(out, Target{API: api})
		}
	}
	return out
}

// PrometheusQuery returns the PromQL that Prometheus entry m of cat runs
// for target t over namespaces and the HPA's metric selector sel: the
// PrometheusScope built by prometheus.BuildQuery. Requests and check-config
// both build their queries here. Errors are PrometheusScope's and
// BuildQuery's.
func PrometheusQuery(cat *config.Catalog, m *config.Metric, t Target, namespaces []string, sel labels.Selector) (string, error) {
	s, err := PrometheusScope(cat, m, t, namespaces)
	if err != nil {
		return "", err
	}
	return prometheus.BuildQuery(m, s, sel)
}

// PrometheusScope returns the scope of the query that Prometheus entry m of
// cat runs for target t over namespaces: grouped by the label that holds
// the described object's name (the pod or namespace label of the entry,
// else of the catalog (Catalog.LabelsFor), or the entry's label for the
// resource), not grouped on the external API. A
// namespaced: false entry reads no namespace's data, so its scope names
// none whatever namespaces holds. The error says that the entry maps no
// label for the resource.
func PrometheusScope(cat *config.Catalog, m *config.Metric, t Target, namespaces []string) (prometheus.Scope, error) {
	l := cat.LabelsFor(m)
	s := prometheus.Scope{Labels: l, MaxRange: cat.Prometheus.MaxRange.Duration}
	if m.IsNamespaced() {
		s.Namespaces = namespaces
	}
	switch {
	case t.API == config.APIExternal:
	case t.Resource == podsResource:
		s.GroupBy = []string{l.Pod}
	case t.Resource == namespacesResource:
		s.GroupBy = []string{l.Namespace}
	default:
		l := m.Resources[t.Resource.String()]
		if l == "" {
			return prometheus.Scope{}, fmt.Errorf("metric %q is not available for %s; map the resource to a Prometheus label in the entry's resources", m.Name, t.Resource)
		}
		s.GroupBy = []string{l}
	}
	return s, nil
}
