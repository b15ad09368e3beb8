package provider

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// Request is one metric request as the custom and external metrics APIs
// receive it.
type Request struct {
	// API is the API the request came in on: pods for a label selection of
	// pods, object for one named object, external.
	API config.API
	// Metric is the metric name.
	Metric string
	// Namespace is the namespace the aggregator authorised the request in.
	// Empty for a cluster-scoped custom metrics request.
	Namespace string
	// Resource is the described object's resource on the custom metrics
	// API: pods, namespaces, or a resource an entry maps to a label. Unused
	// on the external API.
	Resource schema.GroupResource
	// Name is the described object's name on the object API; empty for a
	// label selection of pods.
	Name string
	// MetricSelector is the HPA's metric selector. Nil selects everything.
	MetricSelector labels.Selector
}

// SourceQuery is what a request reads: its catalog entry, the query its
// source is asked, and the cache key its answer is kept under.
type SourceQuery struct {
	Catalog *config.Catalog
	Metric  *config.Metric
	// Key is the cache key of the answer, charged to the request's
	// namespace.
	Key Key
	// PromQL is the query of a Prometheus entry, built for Scope.
	PromQL string
	Scope  prometheus.Scope
	// ObjectLabel is the Prometheus label whose value names each sample's
	// object: the pod label for pods, the namespace or resource label of
	// an object; empty on the external API.
	ObjectLabel string
	// Kafka is the query of a Kafka entry.
	Kafka kafka.Query
	// What names the request in error messages.
	What string
}

// QueryFor resolves a request against the catalog in force to the query
// its source would be asked, without asking it. The error is the API status
// the request gets before any source call: 404 for a metric that is not in
// the catalog (or that the caller may not read), for an object outside the
// request's namespace or a consumer group the namespace does not own; 400
// for a selector over a limit or one the entry cannot translate; 403 for a
// namespace the entry does not allow. Serving and Explain resolve requests
// here alone, and its PromQL is PrometheusQuery's, which check-config
// prints, so what Explain and check-config show is what runs.
func (p *Provider) QueryFor(req Request) (*SourceQuery, error) {
	if err := p.checkSelector(req.Metric, req.MetricSelector); err != nil {
		return nil, err
	}
	sel := req.MetricSelector
	if sel == nil {
		sel = labels.Everything()
	}
	if req.API == config.APIExternal {
		cat, m, err := p.lookup(req.Metric, config.APIExternal, req.Namespace)
		if err != nil {
			return nil, err
		}
		if m.Source == config.SourceKafka {
			return p.kafkaQuery(cat, m, req.Namespace, sel)
		}
		return p.prometheusExternalQuery(cat, m, req.Namespace, sel)
	}
	if req.Name == "" && req.Resource != podsResource {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("metric %q: only pods can be selected by label; name the %s object instead", req.Metric, req.Resource))
	}
	api := config.APIObject
	if req.Resource == podsResource {
		api = config.APIPods
	}
	cat, m, err := p.lookup(req.Metric, api, req.Namespace)
	if err != nil {
		return nil, err
	}
	namespace := req.Namespace
	if req.Resource == namespacesResource {
		// The object must lie in the request's namespace: see
		// GetMetricByName.
		if req.Namespace != "" && req.Name != req.Namespace {
			return nil, noDataFor(req.Metric, req.Resource, req.Name, req.Namespace)
		}
		namespace = req.Name
	}
	if namespace == "" {
		return nil, notFound(fmt.Sprintf("metric %q for %s %q: %s live in namespaces; ask under /namespaces/<namespace>/%s/%s/%s",
			req.Metric, req.Resource, req.Name, req.Resource, req.Resource, req.Name, req.Metric))
	}
	what := fmt.Sprintf("metric %q in namespace %q", m.Name, namespace)
	if m.Source != config.SourcePrometheus {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s: source %s entries are served on the external API only", what, m.Source))
	}
	q, err := p.prometheusQuery(cat, m, Target{API: api, Resource: req.Resource}, req.Namespace, what, []string{namespace}, sel)
	if err != nil {
		return nil, err
	}
	q.ObjectLabel = q.Scope.GroupBy[0]
	return q, nil
}

// prometheusExternalQuery resolves a Prometheus entry on the external API.
// A namespaced entry reads the caller's namespace, or those its namespace
// selector key names when the entry allow-lists them; a namespaced: false
// entry reads data no namespace owns, without a namespace matcher (lookup
// has already checked that the entry lists the caller in
// callerNamespaces), and the namespace key is an ordinary selector key
// there.
func (p *Provider) prometheusExternalQuery(cat *config.Catalog, m *config.Metric, namespace string, sel labels.Selector) (*SourceQuery, error) {
	what := fmt.Sprintf("external metric %q (not namespaced) for namespace %q", m.Name, namespace)
	var namespaces []string
	if m.IsNamespaced() {
		rest, reqs := withoutKeys(sel, namespaceKey)
		var err error
		if namespaces, err = allowedNamespaces(m, namespace, reqs); err != nil {
			return nil, err
		}
		sel = rest
		what = fmt.Sprintf("external metric %q in namespace %q", m.Name, strings.Join(namespaces, ","))
	}
	return p.prometheusQuery(cat, m, Target{API: config.APIExternal}, namespace, what, namespaces, sel)
}

// prometheusQuery builds the entry's query for target t over namespaces
// (PrometheusScope and PrometheusQuery, which check-config prints too),
// keyed in the caller's namespace; what names the request in errors.
func (p *Provider) prometheusQuery(cat *config.Catalog, m *config.Metric, t Target, caller, what string, namespaces []string, sel labels.Selector) (*SourceQuery, error) {
	scope, err := PrometheusScope(cat, m, t, namespaces)
	if err != nil {
		return nil, notFound(err.Error())
	}
	// The warm path asks for the same query on every request: render and
	// check it once per catalog.
	promql, err := p.memo.query(cat, m, t, namespaces, selectorString(sel), func() (string, error) {
		return PrometheusQuery(cat, m, t, namespaces, sel)
	})
	if errors.Is(err, prometheus.ErrOutOfScope) {
		// A bug in the entry or the adapter, not the caller's: the query
		// is not run; the log keeps it for the admin.
		klog.ErrorS(err, "Refused to run a query that reads outside its scope", "metric", m.Name)
		return nil, apierrors.NewInternalError(fmt.Errorf("%s: the entry's query would read outside the request's scope, so it was not run; the adapter's log has the query", what))
	}
	if errors.Is(err, prometheus.ErrRangeTooLong) {
		p.Metrics.LimitHit(LimitMaxRange)
	}
	if err != nil {
		return nil, apiError(config.SourcePrometheus, what, err)
	}
	return &SourceQuery{
		Catalog: cat,
		Metric:  m,
		Key:     Key{Namespace: caller, Source: string(config.SourcePrometheus), Query: promql},
		PromQL:  promql,
		Scope:   scope,
		What:    what,
	}, nil
}

// kafkaQuery resolves a Kafka entry: the consumer-group query of the
// selector, if the namespace may read the group. A group it may not read is
// answered exactly like a group that does not exist, without asking Kafka.
func (p *Provider) kafkaQuery(cat *config.Catalog, m *config.Metric, namespace string, sel labels.Selector) (*SourceQuery, error) {
	what := fmt.Sprintf("external metric %q in namespace %q", m.Name, namespace)
	if p.Kafka == nil || len(cat.Kafka.Clusters) == 0 {
		return nil, apierrors.NewServiceUnavailable(what + ": no Kafka cluster is configured; declare one under kafka.clusters in the catalog")
	}
	names := make([]string, 0, len(cat.Kafka.Clusters))
	for _, c := range cat.Kafka.Clusters {
		names = append(names, c.Name)
	}
	q, err := kafka.QueryFromSelector(m, names, sel)
	if err != nil {
		return nil, apiError(config.SourceKafka, what, err)
	}
	if !cat.MayReadGroup(m, namespace, q.Group) {
		return nil, kafkaNotFound(m, namespace, kafka.GroupNotFound(q.Cluster, q.Group))
	}
	q.AllowedTopics = m.Kafka.AllowedTopicsFor(namespace)
	return &SourceQuery{
		Catalog: cat,
		Metric:  m,
		Key:     Key{Namespace: namespace, Source: string(config.SourceKafka), Query: m.Name + "\x00" + q.Key()},
		Kafka:   q,
		What:    fmt.Sprintf("%s for group %q on cluster %q", what, q.Group, q.Cluster),
	}, nil
}
