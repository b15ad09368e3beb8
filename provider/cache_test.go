package provider

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

var testKey = Key{Namespace: "team-a", Source: "prometheus", Query: "k"}

var testCacheOptions = CacheOptions{
	RefreshInterval: 10 * time.Second,
	StaleAfter:      time.Minute,
	KeepAlive:       5 * time.Minute,
	FetchTimeout:    time.Second,
}

// source is a fetch whose answers a test scripts.
type source struct {
	mu    sync.Mutex
	calls int
	value int
	err   error
}

func (s *source) fetch(context.Context) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return s.value, nil
}

func (s *source) set(value int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value, s.err = value, err
}

func (s *source) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func newTestCache() (*Cache, *clocktesting.FakeClock) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return NewCache(testCacheOptions, clk, nil), clk
}

func mustGet(t *testing.T, c *Cache, src *source, want int) {
	t.Helper()
	v, err := c.Get(context.Background(), testKey, src.fetch)
	if err != nil {
		t.Fatalf("Get: unexpected error %v", err)
	}
	if v.(int) != want {
		t.Fatalf("Get = %v, want %d", v, want)
	}
}

func TestCacheServesWarmReadsFromMemory(t *testing.T) {
	c, clk := newTestCache()
	src := &source{value: 1}
	mustGet(t, c, src, 1)
	clk.Step(9 * time.Second)
	mustGet(t, c, src, 1)
	if got := src.count(); got != 1 {
		t.Fatalf("source called %d times, want 1", got)
	}
}

func TestCacheRefreshesReadKeysInBackground(t *testing.T) {
	c, clk := newTestCache()
	src := &source{value: 1}
	mustGet(t, c, src, 1)

	src.set(2, nil)
	clk.Step(5 * time.Second)
	c.RefreshDue(context.Background())
	if got := src.count(); got != 1 {
		t.Fatalf("refreshed before the interval: %d calls", got)
	}
	clk.Step(5 * time.Second)
	c.RefreshDue(context.Background())
	if got := src.count(); got != 2 {
		t.Fatalf("source called %d times after one interval, want 2", got)
	}
	mustGet(t, c, src, 2)
	if got := src.count(); got != 2 {
		t.Fatalf("read after refresh went to the source: %d calls", got)
	}
}

func TestCacheServesLastValueUntilStaleThenFails(t *testing.T) {
	c, clk := newTestCache()
	src := &source{value: 7}
	mustGet(t, c, src, 7)

	outage := errors.New("connection refused")
	src.set(0, outage)
	for elapsed := 10 * time.Second; elapsed <= time.Minute; elapsed += 10 * time.Second {
		clk.Step(10 * time.Second)
		c.RefreshDue(context.Background())
		mustGet(t, c, src, 7) // the last good value, never a zero
	}

	clk.Step(time.Second) // 61s since the last good fetch
	_, err := c.Get(context.Background(), testKey, src.fetch)
	if !errors.Is(err, outage) {
		t.Fatalf("Get past the staleness bound = %v, want the refresh error", err)
	}

	src.set(8, nil)
	clk.Step(10 * time.Second)
	c.RefreshDue(context.Background())
	mustGet(t, c, src, 8)
}

// TestCacheRetriesAFailureAfterTheRetryDelay: a failure answers the reads
// of a key without a value for RetryAfterFailure, without asking the source
// again; the first read after it asks again, so a source that is back
// serves it, and concurrent readers then still share one fetch.
func TestCacheRetriesAFailureAfterTheRetryDelay(t *testing.T) {
	c, clk := newTestCache()
	outage := errors.New("connection refused")
	src := &source{err: outage}
	// The key's fetch waits for gate, open until the concurrent reads.
	var gateMu sync.Mutex
	gate := make(chan struct{})
	close(gate)
	fetch := func(ctx context.Context) (any, error) {
		gateMu.Lock()
		g := gate
		gateMu.Unlock()
		<-g
		return src.fetch(ctx)
	}
	for range 3 {
		if _, err := c.Get(context.Background(), testKey, fetch); !errors.Is(err, outage) {
			t.Fatalf("Get = %v, want %v", err, outage)
		}
	}
	if got := src.count(); got != 1 {
		t.Fatalf("a failing source was asked %d times within the retry delay, want 1", got)
	}

	src.set(3, nil) // the source is back
	clk.Step(DefaultRetryAfterFailure - time.Millisecond)
	if _, err := c.Get(context.Background(), testKey, fetch); !errors.Is(err, outage) {
		t.Fatalf("Get within the retry delay = %v, want the remembered %v", err, outage)
	}
	if got := src.count(); got != 1 {
		t.Fatalf("a read within the retry delay asked the source: %d calls, want 1", got)
	}

	// Past the delay: 50 concurrent readers, one fetch, the fresh value.
	clk.Step(time.Millisecond)
	release := make(chan struct{})
	gateMu.Lock()
	gate = release
	gateMu.Unlock()
	var missed, wg sync.WaitGroup
	missed.Add(50)
	c.onMiss = func(Key) { missed.Done() }
	for range 50 {
		wg.Go(func() {
			if v, err := c.Get(context.Background(), testKey, fetch); err != nil || v != 3 {
				t.Errorf("Get after the retry delay = %v, %v; want 3", v, err)
			}
		})
	}
	missed.Wait()
	close(release)
	wg.Wait()
	if got := src.count(); got != 2 {
		t.Fatalf("50 concurrent reads after the retry delay made %d fetches in all, want 2 (the failure and one retry)", got)
	}
}

// TestCacheRetryAfterFailureOption: the delay is the option's, not a fixed
// one.
func TestCacheRetryAfterFailureOption(t *testing.T) {
	opts := testCacheOptions
	opts.RetryAfterFailure = 5 * time.Second
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := NewCache(opts, clk, nil)
	outage := errors.New("timeout")
	src := &source{err: outage}
	if _, err := c.Get(context.Background(), testKey, src.fetch); !errors.Is(err, outage) {
		t.Fatalf("Get = %v, want %v", err, outage)
	}
	src.set(4, nil)
	clk.Step(4 * time.Second)
	if _, err := c.Get(context.Background(), testKey, src.fetch); !errors.Is(err, outage) {
		t.Fatalf("Get 4s after the failure = %v, want the remembered failure (retry after 5s)", err)
	}
	clk.Step(time.Second)
	mustGet(t, c, src, 4)
}

// TestCacheBacksOffRefreshesOfAFailingKey: a failing key that still has a
// value to serve is refreshed 1s, 2s, 4s, 8s after each failure, then every
// RefreshInterval (10s), and at the interval again once it answers.
func TestCacheBacksOffRefreshesOfAFailingKey(t *testing.T) {
	c, clk := newTestCache()
	src := &source{value: 1}
	mustGet(t, c, src, 1)
	src.set(0, errors.New("connection refused"))
	clk.Step(testCacheOptions.RefreshInterval)
	c.RefreshDue(context.Background()) // fails: 1 failure

	// pass steps the clock by d and runs a refresh pass, and reports whether
	// it asked the source.
	pass := func(d time.Duration) bool {
		before := src.count()
		clk.Step(d)
		c.RefreshDue(context.Background())
		return src.count() > before
	}
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if pass(wait - time.Millisecond) {
			t.Fatalf("refreshed a failing key before its %s backoff", wait)
		}
		if !pass(time.Millisecond) {
			t.Fatalf("did not refresh a failing key after its %s backoff", wait)
		}
	}
	src.set(2, nil)
	if !pass(testCacheOptions.RefreshInterval) {
		t.Fatal("did not refresh a failing key after a full interval")
	}
	if pass(testCacheOptions.RefreshInterval - time.Millisecond) {
		t.Fatal("a key that answered again is still refreshed on the failure backoff")
	}
	mustGet(t, c, src, 2)
}

func TestCacheExpiresKeysNobodyReads(t *testing.T) {
	c, clk := newTestCache()
	src := &source{value: 1}
	mustGet(t, c, src, 1)
	for range 29 { // 290s: still within keep-alive, refreshed all along
		clk.Step(10 * time.Second)
		c.RefreshDue(context.Background())
	}
	if c.Len() != 1 {
		t.Fatalf("key dropped within keep-alive")
	}
	calls := src.count()
	clk.Step(11 * time.Second)
	c.RefreshDue(context.Background())
	if c.Len() != 0 {
		t.Fatalf("key still cached %s after its last read", 301*time.Second)
	}
	if src.count() != calls {
		t.Fatalf("expired key was refreshed")
	}
}

func TestCacheSharesOneFetchAmongConcurrentMisses(t *testing.T) {
	c, _ := newTestCache()
	release := make(chan struct{})
	var calls atomic.Int32
	fetch := func(context.Context) (any, error) {
		calls.Add(1)
		<-release
		return 42, nil
	}
	// The fetch is held until all 100 readers have missed.
	var missed sync.WaitGroup
	missed.Add(100)
	c.onMiss = func(Key) { missed.Done() }
	var wg sync.WaitGroup
	results := make(chan any, 100)
	for range 100 {
		wg.Go(func() {
			v, err := c.Get(context.Background(), testKey, fetch)
			if err != nil {
				t.Errorf("Get: %v", err)
			}
			results <- v
		})
	}
	missed.Wait()
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 42 {
			t.Fatalf("a caller got %v, want 42", v)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("100 concurrent misses caused %d fetches, want 1", got)
	}
}

func TestCacheCallerContextEndsWaitNotFetch(t *testing.T) {
	c, _ := newTestCache()
	release := make(chan struct{})
	var calls atomic.Int32
	fetch := func(context.Context) (any, error) {
		calls.Add(1)
		<-release
		return 5, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, testKey, fetch); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled context = %v, want context.Canceled", err)
	}
	close(release)
	// The fetch the canceled caller started went on: the next caller joins
	// it, or takes its answer.
	v, err := c.Get(context.Background(), testKey, fetch)
	if err != nil || v != 5 {
		t.Fatalf("Get after the fetch was released = %v, %v; want 5", v, err)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("%d fetches, want the one the canceled caller started", got)
	}
}

// TestCacheNeverFetchesTwiceForOneMiss forces the interleaving in which a
// fetch completes between a reader's look at the entry and its joining the
// shared fetch: the late reader must take the completed fetch's answer
// instead of fetching again.
func TestCacheNeverFetchesTwiceForOneMiss(t *testing.T) {
	c, _ := newTestCache()
	var calls atomic.Int32
	fetch := func(context.Context) (any, error) {
		return int(calls.Add(1)), nil
	}
	held := make(chan struct{})    // the late reader has missed
	proceed := make(chan struct{}) // and may now go on to fetch
	var first atomic.Bool
	c.onMiss = func(Key) {
		if first.CompareAndSwap(false, true) {
			close(held)
			<-proceed
		}
	}
	late := make(chan any, 1)
	go func() {
		v, err := c.Get(context.Background(), testKey, fetch)
		if err != nil {
			v = err
		}
		late <- v
	}()
	<-held
	// Another reader misses too, and its fetch completes while the late
	// reader is held between its look and the fetch.
	mustGetFrom(t, c, fetch, 1)
	close(proceed)
	if v := <-late; v != 1 {
		t.Errorf("the late reader got %v, want the completed fetch's answer 1", v)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("one miss fetched %d times, want 1", got)
	}
}

func mustGetFrom(t *testing.T, c *Cache, fetch Fetch, want int) {
	t.Helper()
	v, err := c.Get(context.Background(), testKey, fetch)
	if err != nil || v != want {
		t.Fatalf("Get = %v, %v; want %d", v, err, want)
	}
}
