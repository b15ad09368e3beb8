package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/metrics/pkg/apis/external_metrics"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
)

var _ cmprovider.ExternalMetricsProvider = (*Provider)(nil)

// externalResource names the external API in Forbidden errors.
var externalResource = externalMetricsGroupResource()

// namespaceKey is the selector key with which an external request names
// namespaces other than its own (allowed only where the entry lists them).
const namespaceKey = "namespace"

// GetExternalMetric answers an External metric. It is always scoped to the
// request's namespace: Prometheus entries read only that namespace unless
// the selector names others the entry allow-lists, and Kafka entries read
// only consumer groups the namespace owns (config.Catalog.MayReadGroup) and,
// of those, only topics the group has committed offsets for or the entry
// allows.
func (p *Provider) GetExternalMetric(ctx context.Context, namespace string, metricSelector labels.Selector, info cmprovider.ExternalMetricInfo) (list *external_metrics.ExternalMetricValueList, err error) {
	defer func(start time.Time) { err = p.finish(config.APIExternal, info.Metric, start, err) }(time.Now())
	q, err := p.QueryFor(Request{API: config.APIExternal, Metric: info.Metric, Namespace: namespace, MetricSelector: metricSelector})
	if err != nil {
		return nil, err
	}
	if q.Metric.Source == config.SourceKafka {
		return p.kafkaExternal(ctx, q)
	}
	return p.prometheusExternal(ctx, q)
}

// ListAllExternalMetrics lists the entries served on the external API.
func (p *Provider) ListAllExternalMetrics() []cmprovider.ExternalMetricInfo {
	var infos []cmprovider.ExternalMetricInfo
	for _, m := range p.Catalog().Metrics {
		if m.Serves(config.APIExternal) {
			infos = append(infos, cmprovider.ExternalMetricInfo{Metric: m.Name})
		}
	}
	if len(infos) == 0 {
		infos = append(infos, cmprovider.ExternalMetricInfo{Metric: "hpa_signals_no_external_metrics"})
	}
	return infos
}

// prometheusExternal answers a Prometheus entry on the external API: one
// value per series of the query.
func (p *Provider) prometheusExternal(ctx context.Context, q *SourceQuery) (*external_metrics.ExternalMetricValueList, error) {
	samples, err := p.prometheusSamples(ctx, q)
	if err != nil {
		return nil, err
	}
	list := &external_metrics.ExternalMetricValueList{Items: make([]external_metrics.ExternalMetricValue, 0, len(samples))}
	for _, s := range samples {
		v, err := quantity(q.What, s.Value)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, external_metrics.ExternalMetricValue{
			MetricName:   q.Metric.Name,
			MetricLabels: s.Labels,
			Timestamp:    metav1.NewTime(s.Timestamp),
			Value:        v,
		})
	}
	return list, nil
}

// allowedNamespaces returns the namespaces an external request may read:
// its own, or those its selector names when the entry allow-lists them.
func allowedNamespaces(m *config.Metric, own string, reqs []labels.Requirement) ([]string, error) {
	if len(reqs) == 0 {
		return []string{own}, nil
	}
	if len(reqs) > 1 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("external metric %q: give the %q selector key once", m.Name, namespaceKey))
	}
	r := reqs[0]
	switch r.Operator() {
	case selection.Equals, selection.DoubleEquals, selection.In:
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("external metric %q: the %q selector key takes = or in, not %s", m.Name, namespaceKey, r.Operator()))
	}
	namespaces := r.Values().List() // sorted
	for _, ns := range namespaces {
		if ns != own && !slices.Contains(m.ExternalNamespaces, ns) {
			return nil, apierrors.NewForbidden(externalResource, m.Name, fmt.Errorf(
				"namespace %q may not read namespace %q; the catalog entry allows only %s", own, ns, describeAllowed(own, m.ExternalNamespaces)))
		}
	}
	return namespaces, nil
}

func describeAllowed(own string, extra []string) string {
	if len(extra) == 0 {
		return fmt.Sprintf("the caller's own namespace (%q); list others in externalNamespaces", own)
	}
	return fmt.Sprintf("the caller's own namespace and %v", extra)
}

// kafkaExternal answers a Kafka entry from the cache (see kafkaQuery for
// which groups and topics a namespace may read).
func (p *Provider) kafkaExternal(ctx context.Context, sq *SourceQuery) (*external_metrics.ExternalMetricValueList, error) {
	m, q, namespace := sq.Metric, sq.Kafka, sq.Key.Namespace
	v, err := p.Cache.Get(ctx, sq.Key, p.fetch(config.SourceKafka, func(ctx context.Context) (any, error) {
		return p.Kafka.Evaluate(ctx, q)
	}))
	if errors.Is(err, kafka.ErrUnknownGroup) || errors.Is(err, kafka.ErrUnknownTopic) {
		return nil, kafkaNotFound(m, namespace, err)
	}
	if err != nil {
		return nil, apiError(config.SourceKafka, sq.What, err)
	}
	r := v.(kafka.Result)
	value, err := quantity(sq.What, r.Value)
	if err != nil {
		return nil, err
	}
	metricLabels := map[string]string{"cluster": q.Cluster, "group": q.Group}
	if len(q.Topics) > 0 {
		metricLabels["topic"] = strings.Join(q.Topics, ",")
	}
	return &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{
		MetricName:   m.Name,
		MetricLabels: metricLabels,
		Timestamp:    metav1.NewTime(r.Time),
		Value:        value,
	}}}, nil
}

// kafkaNotFound is the 404 of a consumer group or topic that does not
// exist or that the caller may not read: err's text (kafka.GroupNotFound
// or the source's unknown-topic error) is the same in both cases, and so
// is this answer.
func kafkaNotFound(m *config.Metric, namespace string, err error) error {
	return notFound(fmt.Sprintf("external metric %q: %v for namespace %q", m.Name, err, namespace))
}
