package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hpa-signals/hpa-signals/config"
)

func TestOptionsFlags(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		check func(*CacheOptions, *SelectorLimits) bool
		want  []string // one expected error each, by substring; nil means valid
	}{
		{name: "defaults", check: func(c *CacheOptions, l *SelectorLimits) bool {
			return c.RefreshInterval == 10*time.Second && c.StaleAfter == time.Minute && c.KeepAlive == 5*time.Minute && c.RetryAfterFailure == time.Second &&
				c.EvictAfterIdle == 30*time.Second && c.MaxKeys == 10000 && c.MaxKeysPerNamespace == 100 &&
				c.MaxConcurrentFetches == 8 && c.MaxRefreshesPerInterval == 2000 && c.NoData != nil &&
				l.MaxLength == 1024 && l.MaxValues == 64
		}},
		{name: "every limit set", args: []string{"--max-cache-keys=500", "--max-cache-keys-per-namespace=20", "--max-concurrent-fetches=2",
			"--max-refreshes-per-interval=300", "--max-selector-length=200", "--max-selector-values=8"},
			check: func(c *CacheOptions, l *SelectorLimits) bool {
				return c.MaxKeys == 500 && c.MaxKeysPerNamespace == 20 && c.MaxConcurrentFetches == 2 &&
					c.MaxRefreshesPerInterval == 300 && l.MaxLength == 200 && l.MaxValues == 8
			}},
		{name: "zero refresh", args: []string{"--refresh-interval=0"}, want: []string{"--refresh-interval must be positive"}},
		{name: "staleness below refresh", args: []string{"--refresh-interval=30s", "--max-staleness=20s"},
			want: []string{"--max-staleness (20s) must be longer than --refresh-interval (30s), or every value goes stale before its refresh; raise --max-staleness to at least 1m30s"}},
		{name: "keep-alive below refresh", args: []string{"--refresh-interval=30s", "--keep-alive=10s", "--max-staleness=5m"},
			want: []string{"--keep-alive (10s) must be longer than --refresh-interval (30s)"}},
		{name: "retry after failure set", args: []string{"--retry-after-failure=3s"},
			check: func(c *CacheOptions, _ *SelectorLimits) bool { return c.RetryAfterFailure == 3*time.Second }},
		{name: "zero retry after failure", args: []string{"--retry-after-failure=0"}, want: []string{"--retry-after-failure must be positive, got 0s"}},
		{name: "refresh below the default retry after failure", args: []string{"--refresh-interval=500ms"},
			check: func(c *CacheOptions, _ *SelectorLimits) bool {
				return c.withDefaults().RetryAfterFailure == 500*time.Millisecond
			}},
		{name: "zero limits", args: []string{"--max-cache-keys=0", "--max-concurrent-fetches=-1", "--max-refreshes-per-interval=0", "--max-selector-length=0", "--max-selector-values=0"},
			want: []string{"--max-cache-keys must be at least 1, got 0", "--max-concurrent-fetches must be at least 1, got -1",
				"--max-refreshes-per-interval must be at least 1, got 0", "--max-selector-length must be at least 1, got 0", "--max-selector-values must be at least 1, got 0"}},
		{name: "namespace limit above the cache limit", args: []string{"--max-cache-keys=50", "--max-cache-keys-per-namespace=100"},
			want: []string{"--max-cache-keys-per-namespace (100) is above --max-cache-keys (50), so it never applies"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, l := NewCacheOptions(), NewSelectorLimits()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			c.AddFlags(fs)
			l.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("parse %v: %v", tc.args, err)
			}
			if tc.check != nil && !tc.check(c, l) {
				t.Errorf("parsed %v into %+v, %+v", tc.args, *c, *l)
			}
			errs := append(c.Validate(), l.Validate()...)
			if len(errs) != len(tc.want) {
				t.Fatalf("Validate() = %v, want %d errors: %q", errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestSetFetchTimeout(t *testing.T) {
	cluster := func(d time.Duration) config.KafkaCluster {
		return config.KafkaCluster{Name: "c", RequestTimeout: config.Duration{Duration: d}}
	}
	cases := []struct {
		name     string
		prom     time.Duration
		clusters []config.KafkaCluster
		want     time.Duration
	}{
		{"prometheus only", 5 * time.Second, nil, 6 * time.Second},
		{"a slower kafka cluster", 5 * time.Second, []config.KafkaCluster{cluster(3 * time.Second), cluster(10 * time.Second)}, 11 * time.Second},
		{"a faster kafka cluster", 5 * time.Second, []config.KafkaCluster{cluster(2 * time.Second)}, 6 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := NewCacheOptions()
			o.SetFetchTimeout(tc.prom, tc.clusters)
			if o.FetchTimeout != tc.want {
				t.Fatalf("FetchTimeout = %s, want %s", o.FetchTimeout, tc.want)
			}
		})
	}
}
