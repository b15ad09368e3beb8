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
	// Redact lists internal addresses that API error messages must not
	// show, such as AddressesOf the Prometheus URL; the catalog's Kafka
	// broker addresses and IP addresses are always removed. The log keeps
	// the full error.
	Redact []string
}

// Provider implements the custom and external metrics providers of
// sigs.k8s.io/custom-metrics-apiserver. It is safe for concurrent use.
type Provider struct {
	Options

	memo *memo // nil in a Provider not made by New: nothing is kept
}

// New returns a Provider.
func New(opts Options) *Provider {
	opts.Limits = opts.Limits.withDefaults()
	return &Provider{Options: opts, memo: newMemo()}
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

// finish records a request and logs a failure with its full cause, and
// returns the error the caller sees: err without internal addresses in its
// message (see redact).
func (p *Provider) finish(api config.API, metric string, start time.Time, err error) error {
	code := http.StatusOK
	if err != nil {
		code = http.StatusInternalServerError
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			code = int(status.Status().Code)
		}
	}
	p.Metrics.observeRequest(string(api), p.metricLabel(metric), code, time.Since(start))
	switch {
	case code >= 500:
		klog.ErrorS(detail(err), "Metric request failed", "api", api, "metric", metric, "code", code)
	case code >= 400:
		klog.V(2).InfoS("Metric request rejected", "api", api, "metric", metric, "code", code, "reason", detail(err).Error())
	}
	if err == nil {
		return nil
	}
	return p.redacted(err)
}

// metricLabel is the metric label of the adapter's own metrics for a
// requested name: the name if the catalog has it, else "unknown", so what
// callers type cannot grow the label set.
func (p *Provider) metricLabel(name string) string {
	if p.Catalog().Lookup(name) == nil {
		return unknownMetric
	}
	return name
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

// quantity converts a source value to an API quantity with milli
// precision, which is what the HPA controller reads. A value whose milli
// value does not fit an int64 is an internal error saying so; what names
// the value in it.
func quantity(what string, v float64) (resource.Quantity, error) {
	q, ok := milliQuantity(v)
	if !ok {
		return resource.Quantity{}, apierrors.NewInternalError(fmt.Errorf(
			"%s: value %g is out of range: the metrics API carries values with milli precision in a 64-bit integer, at most ±%.4g; scale the catalog query's result down (e.g. divide it by 1000)",
			what, v, float64(math.MaxInt64)/1000))
	}
	return q, nil
}

// milliQuantity is quantity without the error: false when v is out of
// range.
func milliQuantity(v float64) (resource.Quantity, bool) {
	milli := math.Round(v * 1000)
	if math.IsNaN(milli) || milli >= 1<<63 || milli < -(1<<63) {
		return resource.Quantity{}, false
	}
	return *resource.NewMilliQuantity(int64(milli), resource.DecimalSI), true
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
