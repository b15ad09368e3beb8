package provider

import (
	"context"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

var _ cmprovider.CustomMetricsProvider = (*Provider)(nil)

var (
	podsResource       = schema.GroupResource{Resource: "pods"}
	namespacesResource = schema.GroupResource{Resource: "namespaces"}
)

// kinds names the described object of the resources HPAs commonly target.
// Other resources are described by their resource name.
var kinds = map[schema.GroupResource]struct{ kind, apiVersion string }{
	podsResource:                              {"Pod", "v1"},
	namespacesResource:                        {"Namespace", "v1"},
	{Resource: "services"}:                    {"Service", "v1"},
	{Group: "apps", Resource: "deployments"}:  {"Deployment", "apps/v1"},
	{Group: "apps", Resource: "statefulsets"}: {"StatefulSet", "apps/v1"},
	{Group: "apps", Resource: "replicasets"}:  {"ReplicaSet", "apps/v1"},
}

// GetMetricBySelector answers a Pods metric: the value for every pod in
// namespace matching selector that has data. Prometheus is asked once per
// metric and namespace, grouped by pod, so all HPAs of a namespace share one
// query; the pods are resolved from the watch cache.
func (p *Provider) GetMetricBySelector(ctx context.Context, namespace string, selector labels.Selector, info cmprovider.CustomMetricInfo, metricSelector labels.Selector) (list *custom_metrics.MetricValueList, err error) {
	defer func(start time.Time) { err = p.finish(config.APIPods, info.Metric, start, err) }(time.Now())
	q, err := p.QueryFor(Request{API: config.APIPods, Metric: info.Metric, Namespace: namespace, Resource: info.GroupResource, MetricSelector: metricSelector})
	if err != nil {
		return nil, err
	}
	samples, err := p.prometheusSamples(ctx, q)
	if err != nil {
		return nil, err
	}
	names, err := p.Pods.PodNames(namespace, selector)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list pods in %q: %w", namespace, err))
	}
	sort.Strings(names)
	// HPAs read the same answer every sync until Prometheus or the pods
	// change: reuse the list built from the same cached samples for the
	// same pods.
	key := answerKey{metric: info.Metric, namespace: namespace, pods: selector.String(), selector: selectorString(metricSelector)}
	if list := p.memo.answer(key, samples, names); list != nil {
		return list, nil
	}
	byPod := make(map[string]*prometheus.Sample, len(samples))
	for i := range samples {
		byPod[samples[i].Labels[q.ObjectLabel]] = &samples[i]
	}
	list = &custom_metrics.MetricValueList{Items: make([]custom_metrics.MetricValue, 0, min(len(names), len(samples)))}
	ident := identifier(info.Metric, metricSelector)
	for _, name := range names {
		s, ok := byPod[name]
		if !ok {
			continue // a pod without data is left out; the HPA treats it as missing
		}
		v, err := metricValue(podsResource, namespace, name, ident, s)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, v)
	}
	if len(list.Items) == 0 {
		return nil, notFound(fmt.Sprintf("no data for metric %q for any of the %d pods in namespace %q matching %q", info.Metric, len(names), namespace, selector))
	}
	p.memo.keepAnswer(q.Catalog, key, samples, names, list)
	return list, nil
}

// GetMetricByName answers an Object metric for one named object: a pod, a
// namespace, or any resource the entry maps to a Prometheus label.
//
// The object must lie in the request's namespace. For the namespaces
// resource that means its name is the request namespace: the aggregator
// authorised /namespaces/team-b/namespaces/team-a/<metric> as a read in
// team-b, so it gets the 404 of a namespace without data, whatever team-a
// holds. A request without a namespace may name any namespace: the library
// routes /namespaces/team-a/metrics/<metric> (authorised in team-a) here
// with name.Namespace "" and name.Name team-a, and a cluster-scoped request
// was authorised cluster-wide. Other resources are namespaced objects, so a
// request without a namespace names none of them. Neither case touches a
// source.
func (p *Provider) GetMetricByName(ctx context.Context, name types.NamespacedName, info cmprovider.CustomMetricInfo, metricSelector labels.Selector) (value *custom_metrics.MetricValue, err error) {
	api := config.APIObject
	if info.GroupResource == podsResource {
		api = config.APIPods
	}
	defer func(start time.Time) { err = p.finish(api, info.Metric, start, err) }(time.Now())
	q, err := p.QueryFor(Request{API: api, Metric: info.Metric, Namespace: name.Namespace, Resource: info.GroupResource, Name: name.Name, MetricSelector: metricSelector})
	if err != nil {
		return nil, err
	}
	samples, err := p.prometheusSamples(ctx, q)
	if err != nil {
		return nil, err
	}
	for i := range samples {
		if samples[i].Labels[q.ObjectLabel] == name.Name {
			v, err := metricValue(info.GroupResource, name.Namespace, name.Name, identifier(info.Metric, metricSelector), &samples[i])
			if err != nil {
				return nil, err
			}
			return &v, nil
		}
	}
	return nil, noDataFor(info.Metric, info.GroupResource, name.Name, name.Namespace)
}

// noDataFor is the 404 of an object without data.
func noDataFor(metric string, resource schema.GroupResource, name, namespace string) error {
	return notFound(fmt.Sprintf("no data for metric %q for %s %q in namespace %q", metric, resource, name, namespace))
}

// ListAllMetrics lists every entry on each resource it can be read for.
// The list is never empty: an empty API group breaks client-go discovery,
// so a catalog without custom entries lists a placeholder that answers 404.
func (p *Provider) ListAllMetrics() []cmprovider.CustomMetricInfo {
	var infos []cmprovider.CustomMetricInfo
	for i := range p.Catalog().Metrics {
		m := &p.Catalog().Metrics[i]
		for _, t := range Targets(m) {
			if t.API != config.APIExternal {
				infos = append(infos, cmprovider.CustomMetricInfo{GroupResource: t.Resource, Namespaced: t.Resource != namespacesResource, Metric: m.Name})
			}
		}
	}
	if len(infos) == 0 {
		infos = append(infos, cmprovider.CustomMetricInfo{GroupResource: namespacesResource, Metric: "hpa_signals_no_custom_metrics"})
	}
	return infos
}

// prometheusSamples answers a Prometheus query from the cache.
func (p *Provider) prometheusSamples(ctx context.Context, q *SourceQuery) ([]prometheus.Sample, error) {
	if p.Prometheus == nil {
		return nil, apierrors.NewServiceUnavailable(q.What + ": no Prometheus is configured; start the adapter with --prometheus-url")
	}
	v, err := p.Cache.Get(ctx, q.Key, p.fetch(config.SourcePrometheus, func(ctx context.Context) (any, error) {
		return p.Prometheus.Query(ctx, q.PromQL)
	}))
	if err != nil {
		return nil, apiError(config.SourcePrometheus, q.What, err)
	}
	return v.([]prometheus.Sample), nil
}

// selectorString is the canonical form of sel, "" for none.
func selectorString(sel labels.Selector) string {
	if sel == nil {
		return ""
	}
	return sel.String()
}

func identifier(metric string, sel labels.Selector) custom_metrics.MetricIdentifier {
	id := custom_metrics.MetricIdentifier{Name: metric}
	if sel != nil && !sel.Empty() {
		if ls, err := metav1.ParseToLabelSelector(sel.String()); err == nil {
			id.Selector = ls
		}
	}
	return id
}

func metricValue(gr schema.GroupResource, namespace, name string, id custom_metrics.MetricIdentifier, s *prometheus.Sample) (custom_metrics.MetricValue, error) {
	k, ok := kinds[gr]
	if !ok {
		k.kind, k.apiVersion = gr.Resource, gr.Group
	}
	q, ok := milliQuantity(s.Value)
	if !ok {
		_, err := quantity(fmt.Sprintf("metric %q for %s %q in namespace %q", id.Name, gr, name, namespace), s.Value)
		return custom_metrics.MetricValue{}, err
	}
	return custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{Kind: k.kind, APIVersion: k.apiVersion, Namespace: namespace, Name: name},
		Metric:          id,
		Timestamp:       metav1.NewTime(s.Timestamp),
		Value:           q,
	}, nil
}
