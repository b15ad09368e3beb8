package prometheus

import (
	"context"
	"fmt"
	"time"
)

// QueryAll runs promql as an instant query like Query, but returns every
// sample of the result, NaN and ±Inf included, and an empty result as no
// samples rather than an ErrNoData error: explaining why a metric has no
// value needs to tell the two apart. After a restart it shortens or
// refuses the query as Query does, without counting it in the source's
// metrics.
func (c *Client) QueryAll(ctx context.Context, promql string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	value, err := c.evaluate(ctx, promql, false)
	if err != nil {
		return nil, err
	}
	samples, err := allSamples(value)
	if err != nil {
		return nil, fmt.Errorf("query Prometheus for %q: %w", promql, err)
	}
	return samples, nil
}

// RecentLabelNames returns the names of the labels of the series that match any
// of the series selectors and had a sample within the last lookback,
// sorted. Only names travel: no label values.
func (c *Client) RecentLabelNames(ctx context.Context, selectors []string, lookback time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	end := time.Now()
	names, _, _, err := c.api.LabelNames(ctx, selectors, end.Add(-lookback), end)
	if err != nil {
		return nil, fmt.Errorf("ask Prometheus for the label names of %q: %w", selectors, withContext(ctx, withoutURL(err)))
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out, nil
}
