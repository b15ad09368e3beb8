package promadapter

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/config"
)

// Entry is the catalog entry one rule yields for one series name.
type Entry struct {
	// Metric is the hpa-signals catalog entry; it is validated when it
	// joins a catalog (config.Catalog.With).
	Metric config.Metric
	// Rule is the rule it comes from.
	Rule *Rule
	// Notes say what hpa-signals serves differently from prometheus-adapter
	// for this entry, beyond the differences every entry has.
	Notes []string
}

var (
	podsResource       = schema.GroupResource{Resource: "pods"}
	namespacesResource = schema.GroupResource{Resource: "namespaces"}
	// clusterScoped are the resources prometheus-adapter serves at the
	// cluster scope, outside any namespace; HPAs cannot use them.
	clusterScoped = []schema.GroupResource{{Resource: "nodes"}, {Resource: "persistentvolumes"}}
)

// Entry translates the rule for the series named series, whose labels map
// to resources as ResourceLabels found (label -> resource; only custom
// rules use them). labels are the catalog's prometheus.labels: the rule's
// queries read the namespace (and pod) from the labels its resources map
// to namespaces (and pods), or else from these. The second result is
// false when the rule does not serve the series (seriesFilters or
// name.matches leave it out, or a custom series names no resource an HPA
// can read).
func (r *Rule) Entry(series string, resources map[string]schema.GroupResource, labels config.PrometheusLabels) (Entry, bool) {
	name, ok := r.MetricName(series)
	if !ok {
		return Entry{}, false
	}
	e := Entry{Rule: r, Metric: config.Metric{
		Name:           name,
		Description:    fmt.Sprintf("prometheus-adapter %s, series %s", r.Path, series),
		Source:         config.SourcePrometheus,
		Series:         series,
		Query:          r.Query,
		SelectorLabels: []string{"*"},
	}}
	nsLabel := r.labelFor("namespace")
	if nsLabel == "" && (r.Namespaced || !r.External) {
		nsLabel = labels.Namespace
		e.Notes = append(e.Notes, fmt.Sprintf("the rule maps no label to namespaces, so the queries read the namespace from label %q (prometheus.labels.namespace); prometheus-adapter could not build its namespaced queries", nsLabel))
	}
	l := config.PrometheusLabels{Namespace: cmp.Or(nsLabel, labels.Namespace), Pod: cmp.Or(r.labelFor("pod"), labels.Pod)}
	e.Metric.Labels = &l

	if r.External {
		e.Metric.APIs = []config.API{config.APIExternal}
		if !r.Namespaced {
			no := false
			e.Metric.Namespaced = &no
			e.Metric.CallerNamespaces = []string{config.AllNamespaces}
			e.Notes = append(e.Notes, "resources.namespaced is false: the queries carry no namespace matcher and every namespace may read them, as with prometheus-adapter; narrow callerNamespaces to the namespaces that need them")
		}
		return e, true
	}

	var pods, object bool
	objects := map[string]string{}
	var dropped []string
	for _, label := range sortedKeys(resources) {
		switch gr := resources[label]; {
		case gr == podsResource:
			if pods {
				continue
			}
			pods, l.Pod = true, label
		case gr == namespacesResource:
			object = true
		case slices.Contains(clusterScoped, gr):
			dropped = append(dropped, gr.String())
		default:
			if _, ok := objects[gr.String()]; !ok {
				objects[gr.String()] = label
				object = true
			}
		}
	}
	if len(dropped) > 0 {
		e.Notes = append(e.Notes, fmt.Sprintf("not served for %v: cluster-scoped objects belong to no namespace, and HPAs cannot read them", slices.Compact(dropped)))
	}
	if !pods && !object {
		return Entry{}, false
	}
	if pods {
		e.Metric.APIs = append(e.Metric.APIs, config.APIPods)
	}
	if object {
		e.Metric.APIs = append(e.Metric.APIs, config.APIObject)
	}
	if len(objects) > 0 {
		e.Metric.Resources = objects
	}
	return e, true
}
