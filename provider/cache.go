package provider

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// CacheOptions tune the cache. All durations must be positive and
// RefreshInterval must be shorter than StaleAfter and KeepAlive.
type CacheOptions struct {
	// RefreshInterval is how often a key that is being read is fetched again
	// in the background. Keep it below the HPA sync period (15s by default)
	// so every HPA evaluation sees a value refreshed since the last one.
	RefreshInterval time.Duration
	// StaleAfter bounds how old a served value may be. When refreshes fail
	// for longer than this, reads answer with the refresh error instead of
	// the old value, so HPAs hold their replica count.
	StaleAfter time.Duration
	// KeepAlive is how long a key stays cached and refreshed after its last
	// read. Keys nobody reads for this long are dropped.
	KeepAlive time.Duration
	// FetchTimeout bounds one fetch. A foreground fetch is also bounded by
	// the request's context.
	FetchTimeout time.Duration
	// RefreshConcurrency bounds how many background refreshes run at once.
	// Zero means 4.
	RefreshConcurrency int
}

// Fetch reads a fresh value for one key from a source. The value's sample
// time is returned with it so served values carry when they were measured.
type Fetch func(ctx context.Context) (any, error)

// Cache keeps source answers by key and refreshes the keys that are being
// read in the background, so warm reads never wait for a source.
//
// The first read of a key fetches in the foreground; concurrent reads of the
// same missing key share that one fetch. Values are served until StaleAfter
// past their last successful fetch; a failed fetch is remembered for one
// refresh interval so a failing source is not asked again by every reader.
//
// A Cache is safe for concurrent use. Run must be called for background
// refreshes and expiry to happen.
type Cache struct {
	opts    CacheOptions
	clock   clock.WithTicker
	metrics *Metrics

	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	fetch Fetch

	value     any
	fetchedAt time.Time // last successful fetch; zero if none

	err       error     // error of the last fetch if it failed
	attempted time.Time // last fetch attempt, successful or not

	lastRead time.Time

	// fetches counts completed fetches. A caller notes it when it decides
	// to fetch; if it has moved by the time the shared fetch starts, a
	// fetch finished in between and its outcome is used instead.
	fetches uint64
}

// NewCache returns an empty cache. A nil clock means the real clock; nil
// metrics record nothing.
func NewCache(opts CacheOptions, clk clock.WithTicker, m *Metrics) *Cache {
	if clk == nil {
		clk = clock.RealClock{}
	}
	if opts.RefreshConcurrency <= 0 {
		opts.RefreshConcurrency = 4
	}
	return &Cache{opts: opts, clock: clk, metrics: m, entries: map[string]*cacheEntry{}}
}

// Get returns the value cached under key, fetching it with fetch when there
// is none or it is older than the staleness bound.
func (c *Cache) Get(ctx context.Context, key string, fetch Fetch) (any, error) {
	now := c.clock.Now()

	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok {
		e = &cacheEntry{fetch: fetch}
		c.entries[key] = e
		c.metrics.setCacheEntries(len(c.entries))
	}
	e.lastRead = now
	value, fetchedAt, lastErr, attempted, seen := e.value, e.fetchedAt, e.err, e.attempted, e.fetches
	c.mu.Unlock()

	if value != nil && now.Sub(fetchedAt) <= c.opts.StaleAfter {
		c.metrics.cacheHit(now.Sub(fetchedAt))
		return value, nil
	}
	if lastErr != nil && now.Sub(attempted) < c.opts.RefreshInterval {
		// The source failed moments ago: answer with that failure instead of
		// piling another request onto it. The background refresh retries.
		c.metrics.cacheErrorHit()
		return nil, lastErr
	}
	c.metrics.cacheMiss()
	return c.fetch(ctx, key, seen)
}

// fetch runs the key's fetch once for all concurrent callers and stores the
// outcome. A caller whose context ends stops waiting; the shared fetch goes
// on (bounded by FetchTimeout) so the other callers still get its answer.
func (c *Cache) fetch(ctx context.Context, key string, seen uint64) (any, error) {
	ch := c.flight.DoChan(key, func() (any, error) {
		c.mu.Lock()
		e, ok := c.entries[key]
		if ok && e.fetches != seen {
			// A fetch completed after this caller looked at the entry.
			v, err := e.value, e.err
			c.mu.Unlock()
			return v, err
		}
		c.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("cache key %q expired while fetching", key)
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FetchTimeout)
		defer cancel()
		v, err := e.fetch(fctx)

		now := c.clock.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		e.attempted = now
		e.fetches++
		if err != nil {
			e.err = err
			return nil, err
		}
		e.value, e.fetchedAt, e.err = v, now, nil
		return v, nil
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for source: %w", ctx.Err())
	}
}

// Run refreshes keys read within KeepAlive every RefreshInterval and drops
// the others, until ctx is done.
func (c *Cache) Run(ctx context.Context) {
	tick := c.opts.RefreshInterval / 4
	if tick > time.Second {
		tick = time.Second
	}
	t := c.clock.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			c.RefreshDue(ctx)
		}
	}
}

// RefreshDue runs one pass of the background loop: it drops expired keys and
// refetches the keys whose last fetch attempt is at least RefreshInterval
// old, and returns when those fetches are done.
func (c *Cache) RefreshDue(ctx context.Context) {
	now := c.clock.Now()
	type dueKey struct {
		key  string
		seen uint64
	}
	var due []dueKey
	c.mu.Lock()
	for key, e := range c.entries {
		switch {
		case now.Sub(e.lastRead) > c.opts.KeepAlive:
			delete(c.entries, key)
			c.metrics.cacheExpired()
		case now.Sub(e.attempted) >= c.opts.RefreshInterval:
			due = append(due, dueKey{key, e.fetches})
		}
	}
	c.metrics.setCacheEntries(len(c.entries))
	c.mu.Unlock()

	var g errgroup.Group
	g.SetLimit(c.opts.RefreshConcurrency)
	for _, d := range due {
		g.Go(func() error {
			_, err := c.fetch(ctx, d.key, d.seen)
			c.metrics.cacheRefresh(err)
			if err != nil {
				klog.V(2).InfoS("Background refresh failed", "key", d.key, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// Len returns the number of cached keys.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
