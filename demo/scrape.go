package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// AdapterView is the adapter's own figures over the last interval.
type AdapterView struct {
	// Err says why there are no figures (scrape failed, no URL); "" when
	// the scrape worked.
	Err string
	// Rates are nil on the first scrape (a rate needs two) and when a
	// counter went backwards (the adapter restarted).
	RequestsPerSecond *float64
	// CacheHitRatio is hits/(hits+misses) over the interval; nil when no
	// read happened.
	CacheHitRatio *float64
	// SourceLatency is the mean query duration per source label over the
	// interval; a source that ran no query is absent.
	SourceLatency []SourceLatency
}

// SourceLatency is the mean duration of one source's queries.
type SourceLatency struct {
	Source  string
	Mean    time.Duration
	Queries float64
}

// adapterCounters are the cumulative values one scrape reads.
type adapterCounters struct {
	at                       time.Time
	requests, hits, misses   float64
	durationSum, durationCnt map[string]float64 // by source label
}

// scraper reads the adapter's /metrics and turns two scrapes into rates.
// It is used by one goroutine at a time (Watcher.Poll's caller).
type scraper struct {
	url    string
	client *http.Client
	prev   *adapterCounters
}

func newScraper(url string, client *http.Client) *scraper {
	return &scraper{url: url, client: client}
}

func (s *scraper) scrape(ctx context.Context, now time.Time) AdapterView {
	if s.url == "" {
		return AdapterView{Err: "no metrics URL"}
	}
	cur, err := s.fetch(ctx)
	if err != nil {
		return AdapterView{Err: err.Error()}
	}
	cur.at = now
	prev := s.prev
	s.prev = cur
	if prev == nil {
		return AdapterView{}
	}
	return adapterRates(prev, cur)
}

func (s *scraper) fetch(ctx context.Context) (*adapterCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape adapter metrics: %w", err)
	}
	// The text format: TextParser reads nothing else.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape adapter metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("scrape adapter metrics: %s: %s", resp.Status, body)
	}
	return parseAdapterMetrics(resp.Body)
}

// parseAdapterMetrics reads the counters the view needs from the text
// exposition format. Missing families count as zero: an adapter that
// served no request yet has no hpa_signals_requests_total series.
func parseAdapterMetrics(r io.Reader) (*adapterCounters, error) {
	// The zero TextParser has no valid name validation scheme and rejects
	// every name; UTF-8 accepts whatever the adapter exposes.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse adapter metrics: %w", err)
	}
	// Flattened to samples (histograms become _sum, _count and _bucket),
	// so this file needs no client_model types.
	var samples model.Vector
	for _, name := range []string{
		"hpa_signals_requests_total",
		"hpa_signals_cache_hits_total",
		"hpa_signals_cache_misses_total",
		"hpa_signals_source_query_duration_seconds",
	} {
		if families[name] == nil {
			continue
		}
		v, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, families[name])
		if err != nil {
			return nil, fmt.Errorf("parse adapter metrics: %s: %w", name, err)
		}
		samples = append(samples, v...)
	}
	c := &adapterCounters{durationSum: map[string]float64{}, durationCnt: map[string]float64{}}
	for _, smp := range samples {
		value := float64(smp.Value)
		switch smp.Metric[model.MetricNameLabel] {
		case "hpa_signals_requests_total":
			c.requests += value
		case "hpa_signals_cache_hits_total":
			c.hits += value
		case "hpa_signals_cache_misses_total":
			c.misses += value
		case "hpa_signals_source_query_duration_seconds_sum":
			c.durationSum[string(smp.Metric["source"])] += value
		case "hpa_signals_source_query_duration_seconds_count":
			c.durationCnt[string(smp.Metric["source"])] += value
		}
	}
	return c, nil
}

// adapterRates turns two scrapes into the figures over the interval
// between them.
func adapterRates(prev, cur *adapterCounters) AdapterView {
	var v AdapterView
	secs := cur.at.Sub(prev.at).Seconds()
	if d := cur.requests - prev.requests; secs > 0 && d >= 0 {
		v.RequestsPerSecond = ptrTo(d / secs)
	}
	hits, misses := cur.hits-prev.hits, cur.misses-prev.misses
	if hits >= 0 && misses >= 0 && hits+misses > 0 {
		v.CacheHitRatio = ptrTo(hits / (hits + misses))
	}
	for source, cnt := range cur.durationCnt {
		n := cnt - prev.durationCnt[source]
		sum := cur.durationSum[source] - prev.durationSum[source]
		if n <= 0 || sum < 0 {
			continue
		}
		v.SourceLatency = append(v.SourceLatency, SourceLatency{
			Source:  source,
			Mean:    time.Duration(sum / n * float64(time.Second)),
			Queries: n,
		})
	}
	sort.Slice(v.SourceLatency, func(i, j int) bool { return v.SourceLatency[i].Source < v.SourceLatency[j].Source })
	return v
}
