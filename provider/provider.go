// Package provider serves the catalog on the custom and external metrics
// APIs: it resolves a request to a catalog entry, applies the namespace
// policy, builds the source query, answers from the cache and turns source
// values into API objects with the right status on failure.
package provider

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// PrometheusSource runs PromQL. *prometheus.Client implements it.
type PrometheusSource interface {
	// Query runs an instant query. It returns an error wrapping
	// prometheus.ErrNoData when no finite sample is left.
	Query(ctx context.Context, promql string) ([]prometheus.Sample, error)
}

// KafkaSource evaluates consumer-group signals. *kafka.Source implements it.
type KafkaSource interface {
	Evaluate(ctx context.Context, q kafka.Query) (kafka.Result, error)
}

// PodLister resolves a pod label selector to pod names from a watch cache.
type PodLister interface {
	// PodNames returns the names of the pods in namespace that match
	// selector. It must not call the API server.
	PodNames(namespace string, selector labels.Selector) ([]string, error)
}

// Options wire a Provider. Catalog, Pods and Cache are required.
type Options struct {
	// Catalog returns the catalog in force; it is called once per request,
	// so a reload takes effect on the next request.
	Catalog func() *config.Catalog
	// Prometheus answers source prometheus entries. If nil, they fail with
	// an error saying no Prometheus is configured.
	Prometheus PrometheusSource
	// Kafka answers source kafka entries. If nil, they fail with an error
	// saying no Kafka cluster is configured.
	Kafka KafkaSource
	// Pods resolves HPA pod selectors.
	Pods PodLister
	// Cache holds source answers.
	Cache *Cache
	// Metrics records requests. If nil, nothing is recorded.
	Metrics *Metrics
	// Limits bound the metric selector of a request. A zero field means
	// its default.
	Limits SelectorLimits
}

// Provider implements the custom and external metrics providers of
// sigs.k8s.io/custom-metrics-apiserver. It is safe for concurrent use.
type Provider struct {
	Options
}

// New returns a Provider.
func New(opts Options) *Provider {
	opts.Limits = opts.Limits.withDefaults()
	return &Provider{Options: opts}
}

// lookup returns the catalog entry name served on api, or a NotFound error.
func (p *Provider) lookup(name string, api config.API) (*config.Catalog, *config.Metric, error) {
	cat := p.Catalog()
	for i := range cat.Metrics {
		m := &cat.Metrics[i]
		if m.Name != name {
			continue
		}
		for _, a := range m.APIs {
			if a == api {
				return cat, m, nil
			}
		}
		return nil, nil, notFound(fmt.Sprintf("metric %q is not served on the %s API (it is served on %v); add %q to its apis in the catalog", name, api, m.APIs, api))
	}
	return nil, nil, notFound(fmt.Sprintf("metric %q is not in the catalog", name))
}

// fetch returns a cache Fetch that calls a source and records the call.
func (p *Provider) fetch(source config.Source, call func(context.Context) (any, error)) Fetch {
	return func(ctx context.Context) (any, error) {
		start := time.Now()
		v, err := call(ctx)
		p.Metrics.observeSource(source, err, time.Since(start))
		return v, err
	}
}

// observe records one request and logs failures that are not the caller's.
func (p *Provider) observe(api config.API, metric string, start time.Time, err error) {
	code := http.StatusOK
	if err != nil {
		code = http.StatusInternalServerError
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			code = int(status.Status().Code)
		}
	}
	p.Metrics.observeRequest(string(api), metric, code, time.Since(start))
	switch {
	case code >= 500:
		klog.ErrorS(err, "Metric request failed", "api", api, "metric", metric)
	case code >= 400:
		klog.V(2).InfoS("Metric request rejected", "api", api, "metric", metric, "code", code, "reason", err.Error())
	}
}

// IsNoData reports whether a source error is an answer, "the source has no
// data for this", rather than a failure: the API answers it with 404 and
// the cache keeps it in place of the last value.
func IsNoData(err error) bool {
	return errors.Is(err, prometheus.ErrNoData) || errors.Is(err, kafka.ErrNoData) ||
		errors.Is(err, kafka.ErrUnknownGroup) || errors.Is(err, kafka.ErrUnknownTopic)
}

// apiError turns a source, cache or selector error into the API status the
// caller should see: no data is 404, a bad selector 400, a limit 429, and
// anything else a 503 that names the source and cause, so an HPA holds its
// replica count.
func apiError(source config.Source, what string, err error) error {
	var status apierrors.APIStatus
	var limit *LimitError
	switch {
	case errors.As(err, &status):
		return err
	case errors.As(err, &limit):
		// No Retry-After: client-go would retry a 429 that has one, up to
		// ten times, holding the HPA controller's worker meanwhile.
		return apierrors.NewTooManyRequests(fmt.Sprintf("%s: %v", what, limit), 0)
	case IsNoData(err):
		return notFound(fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, prometheus.ErrInvalidSelector), errors.Is(err, kafka.ErrInvalidSelector):
		return apierrors.NewBadRequest(fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, context.Canceled):
		return apierrors.NewTimeoutError(fmt.Sprintf("%s: request canceled", what), 0)
	default:
		return apierrors.NewServiceUnavailable(fmt.Sprintf("%s: %s source failed: %v", what, source, err))
	}
}

func notFound(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotFound,
		Reason:  metav1.StatusReasonNotFound,
		Message: msg,
	}}
}

// checkSelector applies the selector limits to a request's metric selector.
func (p *Provider) checkSelector(metric string, sel labels.Selector) error {
	if sel == nil {
		return nil
	}
	if n := len(sel.String()); n > p.Limits.MaxLength {
		p.Metrics.LimitHit(LimitSelectorLength)
		return apierrors.NewBadRequest(fmt.Sprintf(
			"metric %q: the metric selector is %d characters long, over the limit of %d (--max-selector-length); select with fewer or shorter values, or ask the adapter's admin to raise --max-selector-length",
			metric, n, p.Limits.MaxLength))
	}
	reqs, _ := sel.Requirements()
	values := 0
	for _, r := range reqs {
		if op := r.Operator(); op == selection.In || op == selection.NotIn {
			values += r.Values().Len()
		}
	}
	if values > p.Limits.MaxValues {
		p.Metrics.LimitHit(LimitSelectorValues)
		return apierrors.NewBadRequest(fmt.Sprintf(
			"metric %q: the metric selector lists %d values in its in/notin requirements, over the limit of %d (--max-selector-values); list fewer values, or ask the adapter's admin to raise --max-selector-values",
			metric, values, p.Limits.MaxValues))
	}
	return nil
}

// quantity converts a source value to an API quantity with milli precision,
// which is what the HPA controller reads.
func quantity(v float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Round(v*1000)), resource.DecimalSI)
}

// withoutKeys returns sel without the requirements on keys, and those
// requirements.
func withoutKeys(sel labels.Selector, keys ...string) (labels.Selector, []labels.Requirement) {
	reqs, _ := sel.Requirements()
	rest := labels.NewSelector()
	var taken []labels.Requirement
next:
	for _, r := range reqs {
		for _, k := range keys {
			if r.Key() == k {
				taken = append(taken, r)
				continue next
			}
		}
		rest = rest.Add(r)
	}
	return rest, taken
}

func externalMetricsGroupResource() schema.GroupResource {
	return schema.GroupResource{Group: "external.metrics.k8s.io", Resource: "metrics"}
}
