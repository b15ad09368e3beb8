package provider

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/hpa-signals/hpa-signals/config"
)

// Defaults of the cache and selector limits, the values of their flags when
// not given.
const (
	DefaultRefreshInterval         = 10 * time.Second
	DefaultStaleAfter              = time.Minute
	DefaultRetryAfterFailure       = time.Second
	DefaultKeepAlive               = 5 * time.Minute
	DefaultEvictAfterIdle          = 30 * time.Second
	DefaultMaxKeys                 = 10000
	DefaultMaxKeysPerNamespace     = 100
	DefaultMaxConcurrentFetches    = 8
	DefaultMaxRefreshesPerInterval = 2000
	DefaultMaxSelectorLength       = 1024
	DefaultMaxSelectorValues       = 64
)

// fetchTimeoutMargin is added to the longest source timeout, so a source's
// own timeout, whose error says what timed out, fires before the cache's.
const fetchTimeoutMargin = time.Second

// CacheOptions tune the cache. Create them with NewCacheOptions; in a
// CacheOptions written by hand, the zero value of a limit, of
// EvictAfterIdle or of RetryAfterFailure means its default, and a nil
// NoData means no error is "no data".
type CacheOptions struct {
	// RefreshInterval is how often a key that is being read is fetched again
	// in the background. Keep it below the HPA sync period (15s by default)
	// so every HPA evaluation sees a value refreshed since the last one.
	RefreshInterval time.Duration
	// StaleAfter bounds how old a served answer may be. When refreshes fail
	// for longer than this, reads answer with the refresh error instead of
	// the old value, so HPAs hold their replica count.
	StaleAfter time.Duration
	// RetryAfterFailure is how long a failed fetch answers the reads of a
	// key that has no value to serve, before the next read asks the source
	// again; also the first wait of a failing key's background refreshes,
	// which doubles with each failure up to RefreshInterval. Zero means
	// DefaultRetryAfterFailure; more than RefreshInterval means
	// RefreshInterval.
	RetryAfterFailure time.Duration
	// KeepAlive is how long a key stays cached and refreshed after its last
	// read. Keys nobody reads for this long are dropped.
	KeepAlive time.Duration
	// FetchTimeout bounds one fetch, and how long a request waits for a
	// fetch slot of its source. Must be positive; SetFetchTimeout derives
	// it from the sources' own timeouts.
	FetchTimeout time.Duration
	// EvictAfterIdle protects recently read keys: a key read within this
	// long is never evicted to make room for another. An HPA reads its
	// metric every sync period (15s by default), so 30s protects every key
	// an HPA is using.
	EvictAfterIdle time.Duration
	// MaxKeys bounds the keys of all namespaces together.
	MaxKeys int
	// MaxKeysPerNamespace bounds the keys charged to one namespace.
	MaxKeysPerNamespace int
	// MaxConcurrentFetches bounds the fetches in flight per source,
	// foreground and background together.
	MaxConcurrentFetches int
	// MaxRefreshesPerInterval bounds the background refreshes started per
	// RefreshInterval; the most recently read keys are refreshed first.
	MaxRefreshesPerInterval int
	// NoData tells a fetch error that is an answer ("the source has no data
	// for this") from a failure. Such an answer replaces the cached value,
	// so the next read gets it at once. NewCacheOptions sets IsNoData.
	NoData func(error) bool
}

// NewCacheOptions returns the defaults, with IsNoData as the no-data
// classification. FetchTimeout is left to SetFetchTimeout.
func NewCacheOptions() *CacheOptions {
	return &CacheOptions{
		RefreshInterval:         DefaultRefreshInterval,
		StaleAfter:              DefaultStaleAfter,
		RetryAfterFailure:       DefaultRetryAfterFailure,
		KeepAlive:               DefaultKeepAlive,
		EvictAfterIdle:          DefaultEvictAfterIdle,
		MaxKeys:                 DefaultMaxKeys,
		MaxKeysPerNamespace:     DefaultMaxKeysPerNamespace,
		MaxConcurrentFetches:    DefaultMaxConcurrentFetches,
		MaxRefreshesPerInterval: DefaultMaxRefreshesPerInterval,
		NoData:                  IsNoData,
	}
}

// AddFlags registers the cache flags on fs.
func (o *CacheOptions) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.RefreshInterval, "refresh-interval", o.RefreshInterval,
		"How often values that HPAs read are refreshed in the background. Keep it below the HPA sync period (15s by default).")
	fs.DurationVar(&o.StaleAfter, "max-staleness", o.StaleAfter,
		"Oldest value served while refreshes fail; past it requests fail and HPAs hold their replica count.")
	fs.DurationVar(&o.RetryAfterFailure, "retry-after-failure", o.RetryAfterFailure,
		"How long a failed source query answers the reads that have no value to serve before the next read asks the source again; background refreshes of a failing value start retrying after it, doubling the wait up to --refresh-interval. At most --refresh-interval.")
	fs.DurationVar(&o.KeepAlive, "keep-alive", o.KeepAlive,
		"How long a value keeps being refreshed after it was last read.")
	fs.IntVar(&o.MaxKeys, "max-cache-keys", o.MaxKeys, fmt.Sprintf(
		"Most cached values (metric and selector combinations) of all namespaces together. When full, the least recently read value is evicted, but never one read within the last %s; if none may be, the request is refused with 429.", o.EvictAfterIdle))
	fs.IntVar(&o.MaxKeysPerNamespace, "max-cache-keys-per-namespace", o.MaxKeysPerNamespace,
		"Most cached values charged to one namespace (the namespace of the request). When full, as --max-cache-keys, within the namespace.")
	fs.IntVar(&o.MaxConcurrentFetches, "max-concurrent-fetches", o.MaxConcurrentFetches,
		"Most queries in flight to each source (Prometheus, Kafka), requests and background refreshes together. A request that gets no slot within the fetch timeout is refused with 429.")
	fs.IntVar(&o.MaxRefreshesPerInterval, "max-refreshes-per-interval", o.MaxRefreshesPerInterval,
		"Most background refreshes started per --refresh-interval; beyond it, the most recently read values are refreshed first and the others wait for the next interval.")
}

// Validate returns every problem with the options, each naming the flag and
// what to change.
func (o *CacheOptions) Validate() []error {
	var errs []error
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--refresh-interval", o.RefreshInterval}, {"--max-staleness", o.StaleAfter}, {"--keep-alive", o.KeepAlive}, {"--retry-after-failure", o.RetryAfterFailure}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.flag, d.v))
		}
	}
	if o.RefreshInterval > 0 && o.StaleAfter > 0 && o.StaleAfter <= o.RefreshInterval {
		errs = append(errs, fmt.Errorf("--max-staleness (%s) must be longer than --refresh-interval (%s), or every value goes stale before its refresh; raise --max-staleness to at least %s", o.StaleAfter, o.RefreshInterval, 3*o.RefreshInterval))
	}
	if o.RefreshInterval > 0 && o.KeepAlive > 0 && o.KeepAlive <= o.RefreshInterval {
		errs = append(errs, fmt.Errorf("--keep-alive (%s) must be longer than --refresh-interval (%s), or values expire before they are refreshed", o.KeepAlive, o.RefreshInterval))
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"--max-cache-keys", o.MaxKeys}, {"--max-cache-keys-per-namespace", o.MaxKeysPerNamespace}, {"--max-concurrent-fetches", o.MaxConcurrentFetches}, {"--max-refreshes-per-interval", o.MaxRefreshesPerInterval}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", n.flag, n.v))
		}
	}
	if o.MaxKeys >= 1 && o.MaxKeysPerNamespace > o.MaxKeys {
		errs = append(errs, fmt.Errorf("--max-cache-keys-per-namespace (%d) is above --max-cache-keys (%d), so it never applies; lower it or raise --max-cache-keys", o.MaxKeysPerNamespace, o.MaxKeys))
	}
	return errs
}

// SetFetchTimeout derives FetchTimeout from the sources' own timeouts: the
// Prometheus query timeout and each Kafka cluster's requestTimeout. It is
// the longest of them plus a second, so the source's own timeout, whose
// error says what timed out, fires first.
func (o *CacheOptions) SetFetchTimeout(prometheusTimeout time.Duration, kafkaClusters []config.KafkaCluster) {
	longest := prometheusTimeout
	for _, c := range kafkaClusters {
		longest = max(longest, c.RequestTimeout.Duration)
	}
	o.FetchTimeout = longest + fetchTimeoutMargin
}

// withDefaults returns o with zero limits replaced by their defaults.
func (o CacheOptions) withDefaults() CacheOptions {
	orDefault := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	orDefault(&o.MaxKeys, DefaultMaxKeys)
	orDefault(&o.MaxKeysPerNamespace, DefaultMaxKeysPerNamespace)
	orDefault(&o.MaxConcurrentFetches, DefaultMaxConcurrentFetches)
	orDefault(&o.MaxRefreshesPerInterval, DefaultMaxRefreshesPerInterval)
	if o.EvictAfterIdle <= 0 {
		o.EvictAfterIdle = DefaultEvictAfterIdle
	}
	if o.RetryAfterFailure <= 0 {
		o.RetryAfterFailure = DefaultRetryAfterFailure
	}
	if o.RefreshInterval > 0 {
		// A failing source is never asked less often than a healthy one.
		o.RetryAfterFailure = min(o.RetryAfterFailure, o.RefreshInterval)
	}
	if o.NoData == nil {
		o.NoData = func(error) bool { return false }
	}
	return o
}

// SelectorLimits bound the metric selector of one request. Create them with
// NewSelectorLimits; a zero field means its default.
type SelectorLimits struct {
	// MaxLength bounds the length of the metric selector, in characters
	// of its canonical form (labels.Selector's String).
	MaxLength int
	// MaxValues bounds the values of all in and notin requirements of the
	// metric selector together.
	MaxValues int
}

// NewSelectorLimits returns the defaults.
func NewSelectorLimits() *SelectorLimits {
	return &SelectorLimits{MaxLength: DefaultMaxSelectorLength, MaxValues: DefaultMaxSelectorValues}
}

// AddFlags registers the selector limit flags on fs.
func (l *SelectorLimits) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&l.MaxLength, "max-selector-length", l.MaxLength,
		"Longest metric selector a request may give, in characters; longer ones are refused with 400.")
	fs.IntVar(&l.MaxValues, "max-selector-values", l.MaxValues,
		"Most values a metric selector may list in its in and notin requirements together; more are refused with 400.")
}

// Validate returns every problem with the limits, each naming the flag.
func (l *SelectorLimits) Validate() []error {
	var errs []error
	if l.MaxLength < 1 {
		errs = append(errs, fmt.Errorf("--max-selector-length must be at least 1, got %d", l.MaxLength))
	}
	if l.MaxValues < 1 {
		errs = append(errs, fmt.Errorf("--max-selector-values must be at least 1, got %d", l.MaxValues))
	}
	return errs
}

func (l SelectorLimits) withDefaults() SelectorLimits {
	if l.MaxLength <= 0 {
		l.MaxLength = DefaultMaxSelectorLength
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxSelectorValues
	}
	return l
}
