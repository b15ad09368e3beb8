package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/explain"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// PrometheusInspector is what Explain asks Prometheus beyond Query.
// *prometheus.Client implements it; with a PrometheusSource that does not,
// the source step is left unchecked.
type PrometheusInspector interface {
	// QueryAll runs an instant query and returns every sample, NaN and
	// ±Inf included; an empty result is no samples and no error.
	QueryAll(ctx context.Context, promql string) ([]prometheus.Sample, error)
	// RecentLabelNames returns the label names (never values) of the series
	// matching any of the selectors within the last lookback.
	RecentLabelNames(ctx context.Context, selectors []string, lookback time.Duration) ([]string, error)
}

// PrometheusEvaluator says how a Prometheus source runs a query now:
// as it is, or with its windows shortened after a Prometheus restart.
// *prometheus.Client implements it; with a source that does not, explain
// does not mention restarts.
type PrometheusEvaluator interface {
	Evaluation(ctx context.Context, promql string) (prometheus.Evaluation, error)
}

// KafkaInspector is what Explain asks Kafka beyond Evaluate. *kafka.Source
// implements it; with a KafkaSource that does not, the source step is left
// unchecked.
type KafkaInspector interface {
	// DescribeGroup returns a group's state, members and committed topics.
	DescribeGroup(ctx context.Context, cluster, group string) (kafka.GroupDescription, error)
}

var (
	_ PrometheusInspector = (*prometheus.Client)(nil)
	_ PrometheusEvaluator = (*prometheus.Client)(nil)
	_ KafkaInspector      = (*kafka.Source)(nil)
)

// explained is the request an HPA metric makes, as Explain rebuilds it from
// a MetricExplanationSpec.
type explained struct {
	namespace string // the namespace of the explain request
	req       Request
	// pods selects the HPA's pods (pods API); nil when not known.
	pods labels.Selector
}

// Explain walks one metric of an HPA through the adapter for a request made
// in namespace, as the HPA controller's request would go: the catalog
// entry, the query QueryFor builds, what the source holds for that query
// and the value the adapter serves now, with the state of its cache. It
// reads what the request itself may read, and no more. The error is a 400
// for a spec that does not describe a metric request.
func (p *Provider) Explain(ctx context.Context, namespace string, spec explain.MetricExplanationSpec) ([]explain.Step, error) {
	ex, err := explainRequest(namespace, spec)
	if err != nil {
		return nil, err
	}
	cat := p.Catalog()
	catalog, m := explainCatalog(cat, ex)
	steps := []explain.Step{catalog}
	if catalog.Result != explain.OK {
		return append(steps, skipped(explain.StepQuery, "not built: the catalog step failed"),
			skipped(explain.StepSource, "not asked: the catalog step failed"),
			skipped(explain.StepValue, "not read: the catalog step failed")), nil
	}
	sq, qerr := p.QueryFor(ex.req)
	steps = append(steps, p.explainQuery(cat, m, ex, sq, qerr))
	switch {
	case qerr != nil:
		steps = append(steps, skipped(explain.StepSource, "not asked: the adapter refuses the request before asking its source (see query)"))
	case m.Source == config.SourceKafka:
		steps = append(steps, p.explainKafka(ctx, sq))
	default:
		steps = append(steps, p.explainPrometheus(ctx, ex, sq))
	}
	return append(steps, p.explainValue(ctx, ex, sq, qerr != nil)), nil
}

// explainRequest rebuilds the request the HPA controller makes for spec.
func explainRequest(namespace string, spec explain.MetricExplanationSpec) (*explained, error) {
	bad := func(format string, args ...any) error {
		return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
	}
	ex := &explained{namespace: namespace}
	ms := spec.Metric
	switch ms.Type {
	case autoscalingv2.PodsMetricSourceType:
		if ms.Pods == nil {
			return nil, bad("spec.metric.pods is missing for a metric of type Pods")
		}
		sel, err := metricSelector("spec.metric.pods.metric.selector", ms.Pods.Metric.Selector)
		if err != nil {
			return nil, err
		}
		if spec.PodSelector != "" {
			if ex.pods, err = labels.Parse(spec.PodSelector); err != nil {
				return nil, bad("spec.podSelector %q: %v", spec.PodSelector, err)
			}
		}
		ex.req = Request{API: config.APIPods, Metric: ms.Pods.Metric.Name, Namespace: namespace, Resource: podsResource, MetricSelector: sel}
	case autoscalingv2.ObjectMetricSourceType:
		if ms.Object == nil {
			return nil, bad("spec.metric.object is missing for a metric of type Object")
		}
		if spec.ObjectResource == "" {
			return nil, bad("spec.objectResource is required for a metric of type Object: the resource of the described object, e.g. services or deployments.apps")
		}
		sel, err := metricSelector("spec.metric.object.metric.selector", ms.Object.Metric.Selector)
		if err != nil {
			return nil, err
		}
		resource := schema.ParseGroupResource(spec.ObjectResource)
		api, name, ns := config.APIObject, ms.Object.DescribedObject.Name, namespace
		switch resource {
		case podsResource:
			api = config.APIPods
		case namespacesResource:
			// The HPA controller asks /namespaces/<name>/metrics/<metric>,
			// a request without a namespace; explain answers for its own
			// namespace only.
			if name != namespace {
				return nil, bad("the metric's described object is namespace %q; explain answers for namespace %q only", name, namespace)
			}
			ns = ""
		}
		ex.req = Request{API: api, Metric: ms.Object.Metric.Name, Namespace: ns, Resource: resource, Name: name, MetricSelector: sel}
	case autoscalingv2.ExternalMetricSourceType:
		if ms.External == nil {
			return nil, bad("spec.metric.external is missing for a metric of type External")
		}
		sel, err := metricSelector("spec.metric.external.metric.selector", ms.External.Metric.Selector)
		if err != nil {
			return nil, err
		}
		ex.req = Request{API: config.APIExternal, Metric: ms.External.Metric.Name, Namespace: namespace, MetricSelector: sel}
	default:
		return nil, bad("spec.metric.type %q: hpa-signals serves Pods, Object and External metrics", ms.Type)
	}
	return ex, nil
}

// metricSelector converts an HPA metric selector as the HPA controller
// does; nil selects everything.
func metricSelector(field string, ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s: %v", field, err))
	}
	return sel, nil
}

func skipped(name, summary string) explain.Step {
	return explain.Step{Name: name, Result: explain.Skipped, Summary: summary}
}

// explainQuery is the query step: the PromQL or Kafka query the request
// runs, or the status it gets and what to change.
func (p *Provider) explainQuery(cat *config.Catalog, m *config.Metric, ex *explained, sq *SourceQuery, err error) explain.Step {
	step := explain.Step{Name: explain.StepQuery, Result: explain.OK}
	if err != nil {
		code, msg := statusOf(p.redacted(err))
		step.Result = explain.Failed
		step.Summary = fmt.Sprintf("the adapter answers %d %s: %s", code, http.StatusText(code), msg)
		step.Fix = queryFix(cat, m, ex, code, msg)
		if m.Source == config.SourceKafka && code == http.StatusNotFound {
			if group := selectedGroup(cat, m, ex); group != "" && !cat.MayReadGroup(m, ex.namespace, group) {
				// Decided by the group's name alone: it tells nothing about
				// which groups exist.
				step.Summary = fmt.Sprintf("consumer group %q is not one namespace %q reads, so the adapter answers %d like for a group that does not exist: %s", group, ex.namespace, code, msg)
			}
			step.Details = ownerRule(cat, m, ex.namespace)
		}
		return step
	}
	if m.Source == config.SourceKafka {
		q := sq.Kafka
		topics := "the topics it has committed offsets for"
		if len(q.Topics) > 0 {
			topics = "topics " + strings.Join(q.Topics, ", ")
		}
		step.Summary = fmt.Sprintf("consumer group %q on cluster %q, %s: signal %s, offsetReset %s", q.Group, q.Cluster, topics, m.Kafka.Signal, m.Kafka.OffsetReset)
		step.Details = []string{ownership(cat, m, ex.namespace, q.Group)}
		return step
	}
	step.Summary = sq.PromQL
	return step
}

// selectedGroup is the consumer group a Kafka entry's request names, or
// "" if its selector names none.
func selectedGroup(cat *config.Catalog, m *config.Metric, ex *explained) string {
	names := make([]string, len(cat.Kafka.Clusters))
	for i, c := range cat.Kafka.Clusters {
		names[i] = c.Name
	}
	q, err := kafka.QueryFromSelector(m, names, ex.req.MetricSelector)
	if err != nil {
		return ""
	}
	return q.Group
}

// queryFix says what to change for a request the adapter refuses with
// code and msg.
func queryFix(cat *config.Catalog, m *config.Metric, ex *explained, code int, msg string) string {
	switch code {
	case http.StatusBadRequest:
		if fix := selectorFix(m, ex); fix != "" {
			return fix
		}
		return "change the HPA's metric selector as the message says"
	case http.StatusForbidden:
		return fmt.Sprintf("read only namespace %q's data from it (drop the namespace selector key), or ask the adapter's admin to list the other namespace in the entry's externalNamespaces", ex.namespace)
	case http.StatusNotFound:
		if m.Source == config.SourceKafka {
			return fmt.Sprintf("name a consumer group namespace %q owns (%s), or ask the adapter's admin to give the group to %q under kafka.groupOwners", ex.namespace, ownedGroups(cat, m, ex.namespace), ex.namespace)
		}
		return "the HPA names an object the adapter cannot read for this metric; the message says which and why"
	case http.StatusTooManyRequests:
		return "a limit of the adapter refused the request; the message names it and the flag that raises it"
	case http.StatusInternalServerError:
		return "the catalog entry needs fixing by the adapter's admin (the adapter's log has the query)"
	default:
		return "the message says what is missing in the adapter's configuration"
	}
}

// selectorFix explains the first key of the metric selector a Prometheus
// entry does not accept, or returns "".
func selectorFix(m *config.Metric, ex *explained) string {
	if m.Source != config.SourcePrometheus || ex.req.MetricSelector == nil {
		return ""
	}
	reqs, _ := ex.req.MetricSelector.Requirements()
	for _, r := range reqs {
		k := r.Key()
		if slices.ContainsFunc(m.Parameters, func(p config.Parameter) bool { return p.Name == k }) {
			continue
		}
		if strings.ContainsAny(k, "./") && ex.req.API != config.APIExternal {
			return fmt.Sprintf("remove %q from the metric selector: it filters the metric's series by their Prometheus labels, and %q is a Kubernetes label, not a Prometheus one; the HPA already reads only the pods of its scale target", k, k)
		}
		if !m.AllowsSelectorLabel(k) || strings.ContainsAny(k, "./") {
			return fmt.Sprintf("use only the keys the entry accepts (%s) in the metric selector, or ask the adapter's admin to add %q to the entry's selectorLabels", strings.Join(acceptedKeys(m), ", "), k)
		}
	}
	return ""
}

func acceptedKeys(m *config.Metric) []string {
	var keys []string
	for _, p := range m.Parameters {
		keys = append(keys, p.Name)
	}
	return append(keys, m.SelectorLabels...)
}

// statusOf returns the HTTP code and message of an API error.
func statusOf(err error) (int, string) {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		st := status.Status()
		return int(st.Code), st.Message
	}
	return http.StatusInternalServerError, err.Error()
}
