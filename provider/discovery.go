package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	plabels "github.com/prometheus/prometheus/model/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/config/promadapter"
)

// SeriesNames lists metric and label names in Prometheus without listing
// series. *prometheus.Client implements it.
type SeriesNames interface {
	// LabelValues returns the values of label among the series matching
	// any of the selectors matches with samples between start and end.
	LabelValues(ctx context.Context, label string, matches []string, start, end time.Time) ([]string, error)
	// LabelNames returns the label names of those series.
	LabelNames(ctx context.Context, matches []string, start, end time.Time) ([]string, error)
}

// DiscoveryOptions configure a Discovery. Rules, Catalog, Prometheus and
// Mapper are required.
type DiscoveryOptions struct {
	// Rules returns the prometheus-adapter rules in force.
	Rules func() *promadapter.Config
	// Catalog returns the catalog the discovered entries join; they rank
	// after its file's entries and before its presets (config.Catalog.With).
	Catalog func() *config.Catalog
	// Prometheus answers the discovery's questions.
	Prometheus SeriesNames
	// Mapper finds the resource a label names in the cluster.
	Mapper promadapter.Mapper
	// Interval is how often names are discovered again. Zero means
	// DefaultDiscoveryInterval.
	Interval time.Duration
	// MaxAge is how far back a series must have samples to count. Zero
	// means Interval, as prometheus-adapter's --metrics-max-age.
	MaxAge time.Duration
	// MaxMetrics bounds the metrics discovered in all. Zero means
	// DefaultMaxDiscoveredMetrics.
	MaxMetrics int
	// Clock runs the interval. Nil means the real clock.
	Clock clock.WithTicker
	// Metrics records passes. Nil records nothing.
	Metrics *Metrics
}

// Defaults of the discovery flags.
const (
	DefaultDiscoveryInterval    = time.Minute
	DefaultMaxDiscoveredMetrics = 5000
)

// Discovery serves the metrics prometheus-adapter rules yield. Each pass
// asks Prometheus, per rule, for the metric names its series query
// matches (the label values of __name__) and, for the labels the rule maps
// to Kubernetes resources, which of those names carry them: a few requests
// per rule whose answers are names, never the series, so its memory grows
// with the number of metric names. The names become catalog entries
// (promadapter.Rule.Entry) that join the catalog the provider reads
// through Catalog: a new catalog value is built when a pass finds
// something new or the catalog or the rules change, never on an unchanged
// pass. It is safe for concurrent use.
type Discovery struct {
	opts DiscoveryOptions

	current atomic.Pointer[config.Catalog]
	synced  atomic.Bool
	kick    chan struct{}

	mu      sync.Mutex // serializes passes and merges; guards the fields below
	rules   *promadapter.Config
	found   map[*promadapter.Rule]ruleNames
	base    *config.Catalog
	entries []promadapter.Entry
	dropped string // the problems of the last merge, logged when they change
}

// ruleNames is what a pass found for one rule: for each metric name of
// its series, the labels of those series that name resources.
type ruleNames map[string]map[string]schema.GroupResource

// NewDiscovery returns a Discovery serving opts.Catalog() until its first
// pass.
func NewDiscovery(opts DiscoveryOptions) *Discovery {
	if opts.Interval <= 0 {
		opts.Interval = DefaultDiscoveryInterval
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = opts.Interval
	}
	if opts.MaxMetrics <= 0 {
		opts.MaxMetrics = DefaultMaxDiscoveredMetrics
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	d := &Discovery{opts: opts, kick: make(chan struct{}, 1), found: map[*promadapter.Rule]ruleNames{}}
	d.current.Store(opts.Catalog())
	return d
}

// Catalog returns the catalog with the discovered entries; it never
// returns nil.
func (d *Discovery) Catalog() *config.Catalog { return d.current.Load() }

// HasSynced reports whether a pass has succeeded, so that the catalog
// holds the rules' metrics.
func (d *Discovery) HasSynced() bool { return d.synced.Load() }

// Entries returns the entries of the last pass, in rule order and, within
// a rule, by series name, including those the catalog left out.
func (d *Discovery) Entries() []promadapter.Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.entries)
}

// CatalogChanged merges the discovered entries into the catalog that
// opts.Catalog now returns. Call it when that catalog is reloaded.
func (d *Discovery) CatalogChanged() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mergeLocked()
}

// RulesChanged makes Run discover again now. Call it when the rules are
// reloaded.
func (d *Discovery) RulesChanged() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run discovers at once, then every Interval and when the rules change,
// until ctx is done.
func (d *Discovery) Run(ctx context.Context) {
	t := d.opts.Clock.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		if err := d.Refresh(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "Discovering the metrics of prometheus-adapter rules; the names found before keep serving")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-d.kick:
		}
	}
}

// Refresh runs one pass: it asks Prometheus for the names of every rule
// and serves what it finds. A rule whose questions fail keeps the names of
// its last pass; the error names each failure.
func (d *Discovery) Refresh(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	rules := d.opts.Rules()
	if rules != d.rules {
		// Rules of another version of the file are other values: start
		// afresh rather than keep names of rules that may be gone.
		d.rules, d.found = rules, map[*promadapter.Rule]ruleNames{}
	}
	end := d.opts.Clock.Now()
	p := &pass{d: d, ctx: ctx, start: end.Add(-d.opts.MaxAge), end: end, answers: map[string][]string{}}
	var errs []error
	for _, r := range rules.Rules {
		found, err := p.discover(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (seriesQuery %s): %w", r.Path, r.SeriesQuery, err))
			continue
		}
		d.found[r] = found
	}
	d.mergeLocked()
	err := errors.Join(errs...)
	if err == nil {
		d.synced.Store(true)
	}
	d.opts.Metrics.discoveryRun(err, len(d.entries))
	return err
}

// pass is one discovery pass; answers memoizes Prometheus' answers, since
// rules often share a series query.
type pass struct {
	d          *Discovery
	ctx        context.Context
	start, end time.Time
	answers    map[string][]string
}

func (p *pass) ask(kind, match string, call func() ([]string, error)) ([]string, error) {
	key := kind + "\x00" + match
	if v, ok := p.answers[key]; ok {
		return v, nil
	}
	v, err := call()
	if err != nil {
		return nil, err
	}
	p.answers[key] = v
	return v, nil
}

func (p *pass) names(match string) ([]string, error) {
	return p.ask("names", match, func() ([]string, error) {
		return p.d.opts.Prometheus.LabelValues(p.ctx, model.MetricNameLabel, []string{match}, p.start, p.end)
	})
}

func (p *pass) labels(match string) ([]string, error) {
	return p.ask("labels", match, func() ([]string, error) {
		return p.d.opts.Prometheus.LabelNames(p.ctx, []string{match}, p.start, p.end)
	})
}

// discover finds the metric names of r's series and, for a custom rule,
// which of them carry each label that names a resource.
func (p *pass) discover(r *promadapter.Rule) (ruleNames, error) {
	names, err := p.names(r.Selector())
	if err != nil {
		return nil, err
	}
	found := ruleNames{}
	for _, n := range names {
		if _, ok := r.MetricName(n); ok {
			found[n] = map[string]schema.GroupResource{}
		}
	}
	if r.External || len(found) == 0 {
		return found, nil
	}
	candidates := r.CandidateLabels()
	if r.HasTemplate() {
		all, err := p.labels(r.Selector())
		if err != nil {
			return nil, err
		}
		candidates = append(candidates, all...)
	}
	resources := r.ResourceLabels(slices.Compact(slices.Sorted(slices.Values(candidates))), p.d.opts.Mapper)
	for _, l := range slices.Sorted(maps.Keys(resources)) {
		with, err := p.names(r.Selector(plabels.MustNewMatcher(plabels.MatchNotEqual, l, "")))
		if err != nil {
			return nil, err
		}
		for _, n := range with {
			if res, ok := found[n]; ok {
				res[l] = resources[l]
			}
		}
	}
	return found, nil
}

// mergeLocked translates what the passes found into entries and, if they
// or the catalog changed, serves a new catalog with them.
func (d *Discovery) mergeLocked() {
	base := d.opts.Catalog()
	labels := base.Prometheus.Labels
	var entries []promadapter.Entry
	taken := map[string]string{}
	var conflicts []string
	limited := false
	if d.rules != nil {
		for _, r := range d.rules.Rules {
			found := d.found[r]
			for _, series := range slices.Sorted(maps.Keys(found)) {
				e, ok := r.Entry(series, found[series], labels)
				if !ok {
					continue
				}
				if first, dup := taken[e.Metric.Name]; dup {
					conflicts = append(conflicts, fmt.Sprintf("%s: series %s of %s (served: %s)", e.Metric.Name, series, r.Path, first))
					continue
				}
				if len(entries) >= d.opts.MaxMetrics {
					limited = true
					continue
				}
				taken[e.Metric.Name] = fmt.Sprintf("series %s of %s", series, r.Path)
				entries = append(entries, e)
			}
		}
	}
	if limited {
		d.opts.Metrics.LimitHit(LimitDiscoveredMetrics)
		klog.ErrorS(nil, "The prometheus-adapter rules yield more metrics than --max-discovered-metrics; the others are not served", "limit", d.opts.MaxMetrics)
	}
	if base == d.base && sameEntries(entries, d.entries) {
		return
	}
	metrics := make([]config.Metric, len(entries))
	for i, e := range entries {
		metrics[i] = e.Metric
	}
	merged, err := base.With(metrics)
	problems := ""
	if err != nil {
		problems = err.Error()
	}
	if len(conflicts) > 0 {
		problems += fmt.Sprintf("\nseveral series yield one name; the first is served: %v", conflicts)
	}
	if problems != d.dropped && problems != "" {
		klog.ErrorS(errors.New(problems), "Some metrics of the prometheus-adapter rules are not served")
	}
	d.base, d.entries, d.dropped = base, entries, problems
	d.current.Store(merged)
	klog.V(2).InfoS("Serving the metrics of prometheus-adapter rules", "metrics", len(entries), "catalog", len(merged.Metrics))
}

// sameEntries reports whether a and b serve the same metrics from the same
// series with the same resources.
func sameEntries(a, b []promadapter.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y promadapter.Entry) bool {
		return x.Rule == y.Rule && x.Metric.Name == y.Metric.Name && x.Metric.Series == y.Metric.Series &&
			slices.Equal(x.Metric.APIs, y.Metric.APIs) && maps.Equal(x.Metric.Resources, y.Metric.Resources) &&
			*x.Metric.Labels == *y.Metric.Labels
	})
}
