package provider

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

var errNoDataForTest = errors.New("no data for this test")

// limitCache returns a cache with opts' limits on a fake clock, the
// standard durations, metrics to read and "no data" meaning errNoDataForTest.
func limitCache(opts CacheOptions) (*Cache, *clocktesting.FakeClock, *Metrics) {
	opts.RefreshInterval, opts.StaleAfter, opts.KeepAlive, opts.FetchTimeout =
		testCacheOptions.RefreshInterval, testCacheOptions.StaleAfter, testCacheOptions.KeepAlive, testCacheOptions.FetchTimeout
	opts.NoData = func(err error) bool { return errors.Is(err, errNoDataForTest) }
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := NewMetrics(nil)
	return NewCache(opts, clk, m), clk, m
}

func key(ns, query string) Key { return Key{Namespace: ns, Source: "prometheus", Query: query} }

func constant(v any) Fetch { return func(context.Context) (any, error) { return v, nil } }

func limitHits(m *Metrics, limit string) float64 {
	return testutil.ToFloat64(m.limitHits.WithLabelValues(limit))
}

// cachedKeys returns the cached keys as namespace/query, sorted.
func cachedKeys(c *Cache) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.entries {
		out = append(out, k.Namespace+"/"+k.Query)
	}
	slices.Sort(out)
	return out
}

// TestCacheKeyLimits fills a cache, reads keys at chosen times and adds one
// more key: either the least recently read key that was not read within
// the last 30s makes room, or the read is refused naming the limit.
func TestCacheKeyLimits(t *testing.T) {
	type read struct {
		key Key
		at  time.Duration // since the start
	}
	cases := []struct {
		name     string
		opts     CacheOptions
		reads    []read
		add      read
		wantKeys []string // after the add
		// wantErr: the add fails with a *LimitError of this limit whose
		// message holds wantMsg; "" means it succeeds.
		wantErr   string
		wantMsg   []string
		evictions float64
	}{
		{
			name:  "namespace full: its least recently read key is evicted, not the oldest",
			opts:  CacheOptions{MaxKeys: 10, MaxKeysPerNamespace: 3},
			reads: []read{{key("a", "1"), 0}, {key("a", "2"), time.Second}, {key("a", "3"), 2 * time.Second}, {key("a", "1"), 3 * time.Second}, {key("b", "1"), 40 * time.Second}},
			add:   read{key("a", "4"), 40 * time.Second},
			// a/2 was read 39s ago, a/3 38s ago, a/1 37s ago: a/2 goes.
			wantKeys: []string{"a/1", "a/3", "a/4", "b/1"}, evictions: 1,
		},
		{
			name:     "namespace full and every key read within 30s: 429 naming the namespace and flag",
			opts:     CacheOptions{MaxKeys: 10, MaxKeysPerNamespace: 2},
			reads:    []read{{key("a", "1"), 0}, {key("a", "2"), time.Second}, {key("a", "1"), 20 * time.Second}},
			add:      read{key("a", "3"), 30 * time.Second}, // a/2 was read 29s ago
			wantErr:  LimitCacheKeysPerNamespace,
			wantMsg:  []string{`namespace "a" has 2 cached values`, "--max-cache-keys-per-namespace", "within the last 30s"},
			wantKeys: []string{"a/1", "a/2"},
		},
		{
			name:     "a key read exactly 30s ago may be evicted",
			opts:     CacheOptions{MaxKeys: 10, MaxKeysPerNamespace: 2},
			reads:    []read{{key("a", "1"), 0}, {key("a", "2"), time.Second}},
			add:      read{key("a", "3"), 30 * time.Second},
			wantKeys: []string{"a/2", "a/3"}, evictions: 1,
		},
		{
			name:     "one namespace full does not limit another",
			opts:     CacheOptions{MaxKeys: 10, MaxKeysPerNamespace: 2},
			reads:    []read{{key("a", "1"), 0}, {key("a", "2"), 0}},
			add:      read{key("b", "1"), time.Second},
			wantKeys: []string{"a/1", "a/2", "b/1"},
		},
		{
			name:     "cache full: the least recently read key of any namespace is evicted",
			opts:     CacheOptions{MaxKeys: 3, MaxKeysPerNamespace: 3},
			reads:    []read{{key("a", "1"), 0}, {key("b", "1"), time.Second}, {key("a", "2"), 2 * time.Second}, {key("a", "1"), 3 * time.Second}},
			add:      read{key("c", "1"), 45 * time.Second},
			wantKeys: []string{"a/1", "a/2", "c/1"}, evictions: 1,
		},
		{
			name:     "cache full and every key read within 30s: 429 naming the namespace and flag",
			opts:     CacheOptions{MaxKeys: 3, MaxKeysPerNamespace: 3},
			reads:    []read{{key("a", "1"), 0}, {key("b", "1"), 10 * time.Second}, {key("a", "2"), 10 * time.Second}},
			add:      read{key("c", "1"), 29 * time.Second},
			wantErr:  LimitCacheKeys,
			wantMsg:  []string{`namespace "c"`, "the cache holds 3 values", "raise --max-cache-keys"},
			wantKeys: []string{"a/1", "a/2", "b/1"},
		},
		{
			name:     "cluster-scoped requests are charged to their own bucket",
			opts:     CacheOptions{MaxKeys: 10, MaxKeysPerNamespace: 1},
			reads:    []read{{key("", "1"), 0}},
			add:      read{key("", "2"), time.Second},
			wantErr:  LimitCacheKeysPerNamespace,
			wantMsg:  []string{"the cluster scope (requests outside any namespace) has 1 cached values"},
			wantKeys: []string{"/1"},
		},
		{
			name:     "zero limits mean the defaults",
			opts:     CacheOptions{},
			reads:    []read{{key("a", "1"), 0}},
			add:      read{key("a", "2"), 0},
			wantKeys: []string{"a/1", "a/2"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, clk, m := limitCache(tc.opts)
			start := clk.Now()
			for _, r := range append(tc.reads, tc.add) {
				clk.SetTime(start.Add(r.at))
				_, err := c.Get(context.Background(), r.key, constant(1))
				if r != tc.add {
					if err != nil {
						t.Fatalf("read %v at %s: %v", r.key, r.at, err)
					}
					continue
				}
				if tc.wantErr == "" {
					if err != nil {
						t.Fatalf("add %v: %v, want room", r.key, err)
					}
					continue
				}
				var le *LimitError
				if !errors.As(err, &le) || le.Limit != tc.wantErr || le.Namespace != r.key.Namespace {
					t.Fatalf("add %v = %v, want a *LimitError of %s for namespace %q", r.key, err, tc.wantErr, r.key.Namespace)
				}
				for _, w := range tc.wantMsg {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("message lacks %q: %s", w, err)
					}
				}
				if got := limitHits(m, tc.wantErr); got != 1 {
					t.Errorf("hpa_signals_limit_hits_total{limit=%q} = %v, want 1", tc.wantErr, got)
				}
			}
			if got := cachedKeys(c); !slices.Equal(got, tc.wantKeys) {
				t.Errorf("cached keys %v, want %v", got, tc.wantKeys)
			}
			if got := testutil.ToFloat64(m.cacheEvictions); got != tc.evictions {
				t.Errorf("evictions %v, want %v", got, tc.evictions)
			}
		})
	}
}

func TestCacheKeepsNamespacesApart(t *testing.T) {
	c, _, _ := limitCache(CacheOptions{})
	src := &source{value: 1}
	for _, ns := range []string{"a", "b", "a"} {
		if _, err := c.Get(context.Background(), key(ns, "same query"), src.fetch); err != nil {
			t.Fatal(err)
		}
	}
	if got := src.count(); got != 2 {
		t.Fatalf("one query read from two namespaces fetched %d times, want 2 (one entry per namespace)", got)
	}
	if got := cachedKeys(c); !slices.Equal(got, []string{"a/same query", "b/same query"}) {
		t.Fatalf("cached keys %v", got)
	}
}

// waitForWaiter returns once something waits on clk: the fetch-slot wait.
func waitForWaiter(clk *clocktesting.FakeClock) {
	for !clk.HasWaiters() {
		runtime.Gosched()
	}
}

// TestCacheFetchSlots holds the only fetch slot of prometheus with a
// foreground or a background fetch: another source is not affected, and a
// foreground fetch of prometheus that gets no slot within the fetch timeout
// is refused naming the source and flag.
func TestCacheFetchSlots(t *testing.T) {
	for _, holder := range []string{"foreground", "background"} {
		t.Run("slot held by a "+holder+" fetch", func(t *testing.T) {
			c, clk, m := limitCache(CacheOptions{MaxConcurrentFetches: 1})
			started, release := make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			// The first call answers at once (so a background holder has a
			// value to refresh); later calls hold the slot until release.
			holdAfterFirst := func(context.Context) (any, error) {
				if calls.Add(1) == 1 && holder == "background" {
					return 1, nil
				}
				close(started)
				<-release
				return 2, nil
			}
			var wg sync.WaitGroup
			switch holder {
			case "foreground":
				wg.Go(func() { _, _ = c.Get(context.Background(), key("a", "held"), holdAfterFirst) })
			case "background":
				if _, err := c.Get(context.Background(), key("a", "held"), holdAfterFirst); err != nil {
					t.Fatal(err)
				}
				clk.Step(testCacheOptions.RefreshInterval)
				wg.Go(func() { c.RefreshDue(context.Background()) })
			}
			<-started

			other := Key{Namespace: "a", Source: "kafka", Query: "lag"}
			if v, err := c.Get(context.Background(), other, constant(3)); err != nil || v != 3 {
				t.Fatalf("kafka read while prometheus' slot is held = %v, %v; want 3 at once", v, err)
			}

			errc := make(chan error, 1)
			go func() {
				_, err := c.Get(context.Background(), key("a", "waiting"), constant(4))
				errc <- err
			}()
			waitForWaiter(clk)
			clk.Step(testCacheOptions.FetchTimeout)
			err := <-errc
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != LimitConcurrentFetches || le.Source != "prometheus" || le.Flag != "--max-concurrent-fetches" {
				t.Fatalf("read without a slot for the fetch timeout = %#v, want a *LimitError of concurrent_fetches for prometheus", err)
			}
			for _, w := range []string{"prometheus source: all 1 fetch slots stayed busy for 1s", "raise --max-concurrent-fetches"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q: %s", w, err)
				}
			}
			if got := limitHits(m, LimitConcurrentFetches); got != 1 {
				t.Errorf("limit hits of concurrent_fetches = %v, want 1", got)
			}

			close(release)
			wg.Wait()
			if v, err := c.Get(context.Background(), key("a", "waiting"), constant(4)); err != nil || v != 4 {
				t.Fatalf("read once the slot is free = %v, %v; want 4", v, err)
			}
		})
	}
}

// TestCacheRefreshBudget refreshes at most MaxRefreshesPerInterval keys per
// interval, the most recently read first, and counts a key left out once
// per interval.
func TestCacheRefreshBudget(t *testing.T) {
	c, clk, m := limitCache(CacheOptions{MaxRefreshesPerInterval: 2})
	var mu sync.Mutex
	var fetched []string
	fetchOf := func(name string) Fetch {
		return func(context.Context) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			fetched = append(fetched, name)
			return 1, nil
		}
	}
	// Read k1, k2, k3 a second apart: k3 is the most recently read.
	for _, name := range []string{"k1", "k2", "k3"} {
		if _, err := c.Get(context.Background(), key("a", name), fetchOf(name)); err != nil {
			t.Fatal(err)
		}
		clk.Step(time.Second)
	}
	refreshed := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(fetched)
		fetched = nil
		slices.Sort(out)
		return out
	}
	refreshed() // the foreground fetches

	steps := []struct {
		step      time.Duration
		want      []string
		wantHits  float64
		narrative string
	}{
		{10 * time.Second, []string{"k2", "k3"}, 1, "all three due, budget 2: the two most recently read"},
		{time.Second, nil, 1, "same interval: budget spent, k1 still waits and is not counted again"},
		{9 * time.Second, []string{"k2", "k3"}, 2, "next interval: the same two again, k1 counted once more"},
	}
	for _, s := range steps {
		clk.Step(s.step)
		c.RefreshDue(context.Background())
		if got := refreshed(); !slices.Equal(got, s.want) {
			t.Fatalf("%s: refreshed %v, want %v", s.narrative, got, s.want)
		}
		if got := limitHits(m, LimitRefreshesPerInterval); got != s.wantHits {
			t.Fatalf("%s: limit hits %v, want %v", s.narrative, got, s.wantHits)
		}
	}
	// k1, read now, is the most recently read and is refreshed first.
	if _, err := c.Get(context.Background(), key("a", "k1"), fetchOf("k1")); err != nil {
		t.Fatal(err)
	}
	refreshed()
	clk.Step(10 * time.Second)
	c.RefreshDue(context.Background())
	if got := refreshed(); !slices.Contains(got, "k1") || len(got) != 2 {
		t.Fatalf("after k1 was read: refreshed %v, want k1 and one other", got)
	}
}

// TestCacheRefreshStopsStartingFetches ends a refresh pass's context while
// its first fetch runs: no other fetch starts, and the pass returns.
func TestCacheRefreshStopsStartingFetches(t *testing.T) {
	c, clk, _ := limitCache(CacheOptions{MaxConcurrentFetches: 1})
	var calls atomic.Int32
	started, release := make(chan struct{}, 3), make(chan struct{})
	fetch := func(context.Context) (any, error) {
		if calls.Add(1) > 3 { // the three foreground fetches answer at once
			started <- struct{}{}
			<-release
		}
		return 1, nil
	}
	for i := range 3 {
		if _, err := c.Get(context.Background(), key("a", fmt.Sprint(i)), fetch); err != nil {
			t.Fatal(err)
		}
	}
	clk.Step(testCacheOptions.RefreshInterval)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.RefreshDue(ctx)
		close(done)
	}()
	<-started
	cancel()
	close(release)
	<-done
	if got := calls.Load() - 3; got != 1 {
		t.Fatalf("%d background fetches after the context ended during the first, want 1", got)
	}

	clk.Step(testCacheOptions.RefreshInterval)
	c.RefreshDue(ctx) // already done: starts nothing
	if got := calls.Load() - 3; got != 1 {
		t.Fatalf("a pass with a done context fetched %d times, want 0", got-1)
	}
}

// TestCacheNoDataIsAnAnswer: a "no data" fetch result replaces the cached
// value, so the next read gets it at once without asking the source; a
// failure does not.
func TestCacheNoDataIsAnAnswer(t *testing.T) {
	c, clk, m := limitCache(CacheOptions{})
	src := &source{value: 7}
	get := func() (any, error) { return c.Get(context.Background(), testKey, src.fetch) }
	if v, err := get(); err != nil || v != 7 {
		t.Fatalf("first read = %v, %v", v, err)
	}

	src.set(0, fmt.Errorf("query: %w", errNoDataForTest))
	clk.Step(testCacheOptions.RefreshInterval)
	c.RefreshDue(context.Background())
	calls := src.count()
	for range 3 {
		if v, err := get(); !errors.Is(err, errNoDataForTest) || v != nil {
			t.Fatalf("read after a no-data refresh = %v, %v; want the no-data error, not the old value", v, err)
		}
	}
	if src.count() != calls {
		t.Fatalf("reads of a no-data answer asked the source %d times, want 0", src.count()-calls)
	}
	if got := testutil.ToFloat64(m.cacheRefreshes.WithLabelValues("no_data")); got != 1 {
		t.Fatalf(`refreshes{result="no_data"} = %v, want 1`, got)
	}

	src.set(9, nil)
	clk.Step(testCacheOptions.RefreshInterval)
	c.RefreshDue(context.Background())
	if v, err := get(); err != nil || v != 9 {
		t.Fatalf("read after data came back = %v, %v; want 9", v, err)
	}

	// A cold key whose first answer is no data: answered from memory next.
	cold := key("a", "cold")
	src.set(0, errNoDataForTest)
	calls = src.count()
	for range 2 {
		if _, err := c.Get(context.Background(), cold, src.fetch); !errors.Is(err, errNoDataForTest) {
			t.Fatalf("cold no-data read = %v", err)
		}
	}
	if got := src.count() - calls; got != 1 {
		t.Fatalf("two reads of a cold no-data key fetched %d times, want 1", got)
	}
}

// TestCacheRefreshWaitingForASlotStops: a refresh pass waiting for a slot
// that a foreground fetch holds returns when its context ends, without
// fetching.
func TestCacheRefreshWaitingForASlotStops(t *testing.T) {
	c, clk, _ := limitCache(CacheOptions{MaxConcurrentFetches: 1})
	src := &source{value: 1}
	if _, err := c.Get(context.Background(), key("a", "due"), src.fetch); err != nil {
		t.Fatal(err)
	}
	clk.Step(testCacheOptions.RefreshInterval)

	started, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), key("a", "holder"), func(context.Context) (any, error) {
			close(started)
			<-release
			return 2, nil
		})
		held <- err
	}()
	<-started

	waiting := make(chan Key, 1)
	c.onSlotWait = func(k Key, background bool) {
		if background {
			waiting <- k
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.RefreshDue(ctx)
		close(done)
	}()
	if k := <-waiting; k != key("a", "due") {
		t.Fatalf("the refresh waits for a slot for %v, want a/due", k)
	}
	cancel()
	<-done // returns while the slot is still held
	if got := src.count(); got != 1 {
		t.Fatalf("the refresh fetched after its context ended: %d calls, want 1", got)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}
