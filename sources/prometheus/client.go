// Package prometheus is the Prometheus source of hpa-signals: an instant
// query client with the adapter's authentication flags, and the translation
// of a catalog entry plus an HPA metric selector into one canonical PromQL
// string with every selector value escaped, so selector input can never
// change the shape of the query.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/klog/v2"
)

// ErrNoData is wrapped by Query errors when Prometheus answered but no
// finite sample was left: the series does not exist (yet), or every value
// was NaN or ±Inf. Callers map it to "not found", never to 0.
var ErrNoData = errors.New("no data")

// Sample is one value of a query result.
type Sample struct {
	// Labels are the series' labels; empty for a scalar result.
	Labels map[string]string
	// Value is finite in Query's answers, which drop NaN and ±Inf
	// samples; QueryAll keeps them.
	Value float64
	// Timestamp is the sample's evaluation time as reported by Prometheus.
	Timestamp time.Time
}

// Client runs instant queries against one Prometheus. It is safe for
// concurrent use.
type Client struct {
	api      v1.API
	timeout  time.Duration
	restarts *restartWatch
	metrics  *metrics
}

// NewClient returns a client for validated options.
func NewClient(o *Options) (*Client, error) {
	if errs := o.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid Prometheus options: %w", errors.Join(errs...))
	}
	if o.URL == "" {
		return nil, errors.New("create Prometheus client: --prometheus-url is empty")
	}
	rt, err := newTransport(o)
	if err != nil {
		return nil, fmt.Errorf("create Prometheus HTTP transport: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: o.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("create Prometheus API client: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	cl := &Client{api: v1.NewAPI(c), timeout: o.Timeout, restarts: newRestartWatch(o.Clock, o.MinWindowAfterRestart), metrics: m}
	cl.restarts.runtime = cl.runtime
	cl.restarts.firstScrape = cl.firstScrape
	cl.restarts.scrapedBefore = cl.scrapedBefore
	return cl, nil
}

// Query runs promql as an instant query at Prometheus' current time,
// bounded by ctx and the query timeout. It returns the finite samples of a
// vector or scalar result, or an error: one wrapping ErrNoData when nothing
// finite is left, one wrapping ErrWindowAfterRestart (a *RestartError)
// when the query's window reaches back before Prometheus' first scrape
// after a restart and too little data is there yet, or one naming
// Prometheus, the query and the cause when the query could not be answered
// (bad query, timeout, Prometheus unreachable). Errors do not repeat the
// Prometheus URL: they may reach API callers, who have no business knowing
// the address.
//
// After a restart, a query whose window reaches back before Prometheus'
// first scrape runs with its ranges shortened to the time since that
// scrape (see Evaluation), so it never reads across the hole in
// Prometheus' data.
func (c *Client) Query(ctx context.Context, promql string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	value, err := c.evaluate(ctx, promql, true)
	if err != nil {
		return nil, err
	}
	samples, err := toSamples(value)
	if err != nil {
		return nil, fmt.Errorf("query Prometheus for %q: %w", promql, err)
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%w for %s", ErrNoData, promql)
	}
	return samples, nil
}

// Evaluation returns how Query would run promql now: as it is, or with
// its ranges shortened after a Prometheus restart; the error is Query's
// refusal (a *RestartError) or a failure to ask Prometheus when it
// started scraping. It may ask Prometheus for its start time, never runs
// promql.
func (c *Client) Evaluation(ctx context.Context, promql string) (Evaluation, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.restarts.evaluate(ctx, promql)
}

// evaluate runs promql as Query decides (see restartWatch.evaluate);
// counted records the decision in the source's metrics.
func (c *Client) evaluate(ctx context.Context, promql string, counted bool) (model.Value, error) {
	ev, err := c.restarts.evaluate(ctx, promql)
	if counted {
		c.metrics.evaluated(ev, err)
	}
	if err != nil {
		if !errors.Is(err, ErrWindowAfterRestart) {
			c.restarts.queryFailed()
		}
		return nil, fmt.Errorf("query Prometheus for %q: %w", promql, err)
	}
	value, err := c.query(ctx, ev.Query)
	if err != nil {
		c.restarts.queryFailed()
	}
	return value, err
}

// runtime asks Prometheus when it started and last loaded its
// configuration.
func (c *Client) runtime(ctx context.Context) (started, configured time.Time, err error) {
	info, err := c.api.Runtimeinfo(ctx)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("ask Prometheus for its runtime information: %w", withoutURL(err))
	}
	return info.StartTime, info.LastConfigTime, nil
}

// scrapedBefore reports whether Prometheus holds a sample of any up
// series from the hour before started: whether it scraped before it
// started, into the data it has now.
func (c *Client) scrapedBefore(ctx context.Context, started time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	value, _, _, err := c.api.Query(ctx, "count(last_over_time(up[1h]))", started, v1.WithTimeout(c.timeout))
	if err != nil {
		return false, fmt.Errorf("ask Prometheus whether it scraped before its start: %w", withContext(ctx, withoutURL(err)))
	}
	samples, err := toSamples(value)
	return len(samples) > 0, err
}

// firstScrape returns Prometheus' first sample of any up series after
// since, within span before now; zero if there is none.
func (c *Client) firstScrape(ctx context.Context, since time.Time, span time.Duration) (time.Time, error) {
	value, err := c.query(ctx, firstScrapeQuery(since, span))
	if err != nil {
		return time.Time{}, err
	}
	samples, err := toSamples(value)
	if err != nil || len(samples) == 0 {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(math.Round(samples[0].Value * 1000))), nil
}

// query runs promql as an instant query; its errors are Query's.
func (c *Client) query(ctx context.Context, promql string) (model.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// The zero time lets Prometheus evaluate at its own clock, so a skewed
	// adapter clock cannot ask for the future. The timeout is also passed
	// on, so Prometheus stops evaluating when we stop waiting.
	value, warnings, infos, err := c.api.Query(ctx, promql, time.Time{}, v1.WithTimeout(c.timeout))
	if len(warnings) > 0 || len(infos) > 0 {
		klog.V(2).InfoS("Prometheus returned warnings", "query", promql, "warnings", warnings, "infos", infos)
	}
	if err != nil {
		return nil, fmt.Errorf("query Prometheus for %q: %w", promql, withContext(ctx, withoutURL(err)))
	}
	return value, nil
}

// withContext adds the context's error to err when the context ended and
// err does not say so already.
func withContext(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%w)", err, ctxErr)
	}
	return err
}

// LabelValues returns the values of label among the series that match any
// of the series selectors matches and have samples between start and end,
// bounded by ctx and the query timeout. Asked for "__name__", it lists
// metric names without listing their series. Errors are those of Query.
func (c *Client) LabelValues(ctx context.Context, label string, matches []string, start, end time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	values, warnings, _, err := c.api.LabelValues(ctx, label, matches, start, end)
	if len(warnings) > 0 {
		klog.V(2).InfoS("Prometheus returned warnings", "label", label, "match", matches, "warnings", warnings)
	}
	if err != nil {
		return nil, fmt.Errorf("list values of label %q of series %q in Prometheus: %w", label, matches, withoutURL(err))
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out, nil
}

// LabelNames returns the label names of the series that match any of the
// series selectors matches and have samples between start and end.
func (c *Client) LabelNames(ctx context.Context, matches []string, start, end time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	names, warnings, _, err := c.api.LabelNames(ctx, matches, start, end)
	if len(warnings) > 0 {
		klog.V(2).InfoS("Prometheus returned warnings", "match", matches, "warnings", warnings)
	}
	if err != nil {
		return nil, fmt.Errorf("list label names of series %q in Prometheus: %w", matches, withoutURL(err))
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out, nil
}

// withoutURL drops the request URL that an HTTP client error repeats
// (*url.Error: `Post "http://prometheus:9090/api/v1/query": ...`), keeping
// the operation and the cause, which stays matchable with errors.Is.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// toSamples converts a vector or scalar result, dropping non-finite values.
func toSamples(value model.Value) ([]Sample, error) {
	all, err := allSamples(value)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if finite(s.Value) {
			out = append(out, s)
		}
	}
	return out, nil
}

// allSamples converts a vector or scalar result, non-finite values too.
func allSamples(value model.Value) ([]Sample, error) {
	switch v := value.(type) {
	case model.Vector:
		out := make([]Sample, 0, len(v))
		for _, s := range v {
			ls := make(map[string]string, len(s.Metric))
			for k, val := range s.Metric {
				ls[string(k)] = string(val)
			}
			out = append(out, Sample{Labels: ls, Value: float64(s.Value), Timestamp: s.Timestamp.Time()})
		}
		return out, nil
	case *model.Scalar:
		return []Sample{{Labels: map[string]string{}, Value: float64(v.Value), Timestamp: v.Timestamp.Time()}}, nil
	case nil:
		return nil, errors.New("empty result")
	default:
		return nil, fmt.Errorf("result type %s is not supported; the query must return an instant vector or a scalar", value.Type())
	}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
