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
}

// Provider implements the custom and external metrics providers of
// sigs.k8s.io/custom-metrics-apiserver. It is safe for concurrent use.
type Provider struct {
	Options
}

// New returns a Provider.
func New(opts Options) *Provider {
	return &Provider{Options: opts}
}

// lookup returns the catalog entry name served on api to a request made in
// namespace caller, or a NotFound error. An entry the caller may not read
// (a namespaced: false entry that does not list it) answers exactly like a
// metric that is not in the catalog.
func (p *Provider) lookup(name string, api config.API, caller string) (*config.Catalog, *config.Metric, error) {
	cat := p.Catalog()
	m := cat.Lookup(name)
	if m == nil || !m.AllowsCaller(caller) {
		return nil, nil, notFound(fmt.Sprintf("metric %q is not in the catalog", name))
	}
	if !m.Serves(api) {
		return nil, nil, notFound(fmt.Sprintf("metric %q is not served on the %s API (it is served on %v); add %q to its apis in the catalog", name, api, m.APIs, api))
	}
	return cat, m, nil
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

// apiError turns a source or selector error into the API status the caller
// should see: no data is 404, a bad selector 400, anything else a 503 that
// names the source and cause, so an HPA holds its replica count.
func apiError(source config.Source, what string, err error) error {
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &status):
		return err
	case errors.Is(err, prometheus.ErrNoData), errors.Is(err, kafka.ErrNoData), errors.Is(err, kafka.ErrUnknownGroup):
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
