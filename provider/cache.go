package provider

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Fetch reads a fresh answer for one key from a source. The cache stores
// what it returns as is; a sample time, if the source has one, travels
// inside the value. ctx carries the fetch timeout.
type Fetch func(ctx context.Context) (any, error)

// Key names one cached answer.
type Key struct {
	// Namespace is the namespace of the request, charged for the key. Keys
	// of different namespaces are separate entries even when their Source
	// and Query are equal, so one namespace's reads never hold, evict or
	// reveal another's keys.
	Namespace string
	// Source names what the fetch asks, e.g. "prometheus"; the fetches of
	// one source share its MaxConcurrentFetches slots.
	Source string
	// Query identifies the answer within the namespace and source, e.g. the
	// PromQL.
	Query string
}

func (k Key) String() string {
	return fmt.Sprintf("%s query in namespace %q: %q", k.Source, k.Namespace, k.Query)
}

func (k Key) flightKey() string { return k.Namespace + "\x00" + k.Source + "\x00" + k.Query }

// LimitError is the error of a read that a cache limit refused: there is no
// room for a new key, or no fetch slot of the source within the fetch
// timeout. The provider answers it with 429 Too Many Requests.
type LimitError struct {
	// Limit is the limit that refused the read, a Limit* constant.
	Limit string
	// Flag is the flag that raises the limit.
	Flag string
	// Namespace is the namespace whose read was refused.
	Namespace string
	// Source is the source of the refused read.
	Source string

	msg string
}

func (e *LimitError) Error() string { return e.msg }

// errStopped ends a background refresh that had not started its fetch when
// the refresh pass's context ended.
var errStopped = errors.New("refresh pass stopped")

// Cache keeps source answers by key and refreshes the keys that are being
// read in the background, so warm reads never wait for a source.
//
// An answer is a value, or an error that CacheOptions.NoData classifies as
// "no data": both are served until StaleAfter past their fetch, and a new
// answer of either kind replaces the old one. Any other fetch error is a
// failure: the last answer is still served until StaleAfter. A read that
// has no answer to serve gets the failure for RetryAfterFailure, so a
// failing source is not asked again by every reader; the first such read
// after it fetches again, so a source that is back serves the next read.
// Background refreshes of a failing key retry after RetryAfterFailure,
// doubling the wait with each failure up to RefreshInterval.
//
// The first read of a key fetches in the foreground; concurrent reads of the
// same missing key share that one fetch. Keys, fetches and refreshes are
// bounded by the limits of CacheOptions.
//
// A Cache is safe for concurrent use. Run must be called for background
// refreshes and expiry to happen.
type Cache struct {
	opts    CacheOptions
	clock   clock.WithTickerAndDelayedExecution
	metrics *Metrics

	flight singleflight.Group

	// Hooks for tests, nil otherwise. onSlotWait is called when a fetch
	// starts waiting for a busy slot of its source; onMiss when a read has
	// found no answer and is about to join or start the key's fetch, so a
	// test can hold a reader there while others complete a fetch.
	onSlotWait func(k Key, background bool)
	onMiss     func(k Key)

	mu          sync.Mutex
	entries     map[Key]*cacheEntry
	lru         *list.List            // every entry, most recently read first
	byNamespace map[string]*list.List // each namespace's entries, most recently read first
	slots       map[string]*semaphore.Weighted
	window      time.Time // start of the current refresh budget window
	refreshed   int       // background refreshes started in the window
	dropped     droppedKeys
}

type cacheEntry struct {
	key   Key
	fetch Fetch

	value      any       // last answer if it was a value
	noData     error     // last answer if it was "no data"
	answeredAt time.Time // time of the last answer; zero if none

	err       error     // last fetch failure, cleared by an answer
	failures  int       // consecutive failed fetches, reset by an answer
	attempted time.Time // last fetch attempt, answered or not

	lastRead time.Time
	fetching bool // a fetch of the key is in flight

	// fetches counts completed fetches. A caller notes it when it decides
	// to fetch; if it has moved by the time the shared fetch starts, a
	// fetch finished in between and its outcome is used instead.
	fetches uint64

	all, inNamespace *list.Element // positions in Cache.lru and Cache.byNamespace
	leftOut          time.Time     // refresh window in which the budget left this key out
}

// outcome is what the entry's last fetch produced.
func (e *cacheEntry) outcome() (any, error) {
	if e.err != nil {
		return nil, e.err
	}
	return e.value, e.noData
}

// NewCache returns an empty cache. A nil clock means the real clock; nil
// metrics record nothing.
func NewCache(opts CacheOptions, clk clock.WithTickerAndDelayedExecution, m *Metrics) *Cache {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Cache{
		opts:        opts.withDefaults(),
		clock:       clk,
		metrics:     m,
		entries:     map[Key]*cacheEntry{},
		lru:         list.New(),
		byNamespace: map[string]*list.List{},
		slots:       map[string]*semaphore.Weighted{},
	}
}

// Get returns the answer cached under k: a value, or the "no data" error.
// It fetches with fetch when there is no answer or it is older than
// StaleAfter, unless a fetch failed within the last RetryAfterFailure:
// then it returns that failure. fetch is kept with a new key for its background
// refreshes.
//
// A new key is charged to k.Namespace. If the namespace or the cache is
// full, the least recently read key of the namespace (or of the cache) is
// evicted, unless it was read within EvictAfterIdle: then Get fails with a
// *LimitError. A fetch waits at most FetchTimeout for a slot of k.Source,
// or Get fails with a *LimitError.
func (c *Cache) Get(ctx context.Context, k Key, fetch Fetch) (any, error) {
	c.mu.Lock()
	now := c.clock.Now()
	e, ok := c.entries[k]
	if !ok {
		if err := c.makeRoomLocked(k.Namespace, now); err != nil {
			c.mu.Unlock()
			c.metrics.LimitHit(err.Limit)
			return nil, err
		}
		e = c.addLocked(k, fetch)
	}
	c.touchLocked(e, now)
	value, noData, answeredAt, lastErr, attempted, seen := e.value, e.noData, e.answeredAt, e.err, e.attempted, e.fetches
	c.mu.Unlock()

	if !answeredAt.IsZero() && now.Sub(answeredAt) <= c.opts.StaleAfter {
		c.metrics.cacheHit(now.Sub(answeredAt))
		return value, noData
	}
	if lastErr != nil && now.Sub(attempted) < c.opts.RetryAfterFailure {
		// The source failed moments ago: answer with that failure instead of
		// piling another request onto it. Past RetryAfterFailure the next
		// read retries (one fetch for all concurrent readers).
		c.metrics.cacheErrorHit()
		return nil, lastErr
	}
	c.metrics.cacheMiss()
	if c.onMiss != nil {
		c.onMiss(k)
	}
	return c.fetch(ctx, k, seen, false)
}

// makeRoomLocked evicts what a new key of namespace ns needs, or returns
// the limit that refuses it.
func (c *Cache) makeRoomLocked(ns string, now time.Time) *LimitError {
	if l := c.byNamespace[ns]; l != nil && l.Len() >= c.opts.MaxKeysPerNamespace {
		oldest := l.Back().Value.(*cacheEntry)
		if now.Sub(oldest.lastRead) < c.opts.EvictAfterIdle {
			return &LimitError{Limit: LimitCacheKeysPerNamespace, Flag: "--max-cache-keys-per-namespace", Namespace: ns, msg: fmt.Sprintf(
				"%s has %d cached values, the most --max-cache-keys-per-namespace allows, and each was read within the last %s; read fewer distinct metric and selector combinations, or raise --max-cache-keys-per-namespace",
				describeNamespace(ns), l.Len(), c.opts.EvictAfterIdle)}
		}
		c.removeLocked(oldest)
		c.metrics.cacheEvicted()
		c.noteDroppedLocked(oldest.key, DropEvictedNamespace, now)
	}
	if c.lru.Len() >= c.opts.MaxKeys {
		oldest := c.lru.Back().Value.(*cacheEntry)
		if now.Sub(oldest.lastRead) < c.opts.EvictAfterIdle {
			return &LimitError{Limit: LimitCacheKeys, Flag: "--max-cache-keys", Namespace: ns, msg: fmt.Sprintf(
				"no room for a new cached value of %s: the cache holds %d values, the most --max-cache-keys allows, and each was read within the last %s; raise --max-cache-keys",
				describeNamespace(ns), c.lru.Len(), c.opts.EvictAfterIdle)}
		}
		c.removeLocked(oldest)
		c.metrics.cacheEvicted()
		c.noteDroppedLocked(oldest.key, DropEvicted, now)
	}
	return nil
}

func describeNamespace(ns string) string {
	if ns == "" {
		return "the cluster scope (requests outside any namespace)"
	}
	return fmt.Sprintf("namespace %q", ns)
}

func (c *Cache) addLocked(k Key, fetch Fetch) *cacheEntry {
	e := &cacheEntry{key: k, fetch: fetch}
	c.entries[k] = e
	e.all = c.lru.PushFront(e)
	l := c.byNamespace[k.Namespace]
	if l == nil {
		l = list.New()
		c.byNamespace[k.Namespace] = l
	}
	e.inNamespace = l.PushFront(e)
	c.metrics.setCacheEntries(len(c.entries))
	return e
}

func (c *Cache) touchLocked(e *cacheEntry, now time.Time) {
	e.lastRead = now
	c.lru.MoveToFront(e.all)
	c.byNamespace[e.key.Namespace].MoveToFront(e.inNamespace)
}

func (c *Cache) removeLocked(e *cacheEntry) {
	delete(c.entries, e.key)
	c.lru.Remove(e.all)
	l := c.byNamespace[e.key.Namespace]
	l.Remove(e.inNamespace)
	if l.Len() == 0 {
		delete(c.byNamespace, e.key.Namespace)
	}
	c.metrics.setCacheEntries(len(c.entries))
}

// fetch runs the key's fetch once for all concurrent callers and stores the
// outcome. A foreground caller whose context ends stops waiting; the shared
// fetch goes on (bounded by FetchTimeout) so the other callers still get its
// answer. A background fetch waits for a slot of its source until ctx ends
// and starts no fetch after that; a foreground one waits at most
// FetchTimeout.
func (c *Cache) fetch(ctx context.Context, k Key, seen uint64, background bool) (any, error) {
	ch := c.flight.DoChan(k.flightKey(), func() (any, error) {
		c.mu.Lock()
		e, ok := c.entries[k]
		if ok && e.fetches != seen {
			// A fetch completed after this caller looked at the entry.
			v, err := e.outcome()
			c.mu.Unlock()
			return v, err
		}
		if !ok {
			c.mu.Unlock()
			return nil, fmt.Errorf("%s: the cached value was dropped before its fetch started", k)
		}
		e.fetching = true
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			e.fetching = false
			c.mu.Unlock()
		}()
		release, err := c.acquire(ctx, k, background)
		if err != nil {
			return nil, err
		}
		defer release()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FetchTimeout)
		defer cancel()
		v, err := e.fetch(fctx)

		now := c.clock.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		e.attempted = now
		e.fetches++
		switch {
		case err == nil:
			e.value, e.noData, e.answeredAt, e.err, e.failures = v, nil, now, nil, 0
		case c.opts.NoData(err):
			e.value, e.noData, e.answeredAt, e.err, e.failures = nil, err, now, nil, 0
		default:
			e.err = err
			e.failures++
		}
		return v, err
	})
	if background {
		// The refresh pass waits for what it started: the fetch is bounded
		// by FetchTimeout, and a slot wait ends with ctx.
		r := <-ch
		return r.Val, r.Err
	}
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for source: %w", ctx.Err())
	}
}

// acquire takes a fetch slot of k's source and returns its release.
func (c *Cache) acquire(ctx context.Context, k Key, background bool) (release func(), err error) {
	c.mu.Lock()
	sem := c.slots[k.Source]
	if sem == nil {
		sem = semaphore.NewWeighted(int64(c.opts.MaxConcurrentFetches))
		c.slots[k.Source] = sem
	}
	c.mu.Unlock()
	if background && ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", errStopped, ctx.Err())
	}
	release = func() { sem.Release(1) }
	if sem.TryAcquire(1) {
		return release, nil
	}
	if c.onSlotWait != nil {
		c.onSlotWait(k, background)
	}
	if background {
		if err := sem.Acquire(ctx, 1); err != nil {
			return nil, fmt.Errorf("%w: %w", errStopped, err)
		}
		return release, nil
	}
	// The wait is bounded by the cache's clock, not by the caller: the
	// fetch is shared with other callers, who may wait longer.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	timer := c.clock.AfterFunc(c.opts.FetchTimeout, cancel)
	defer timer.Stop()
	if err := sem.Acquire(wctx, 1); err != nil {
		c.metrics.LimitHit(LimitConcurrentFetches)
		return nil, &LimitError{Limit: LimitConcurrentFetches, Flag: "--max-concurrent-fetches", Namespace: k.Namespace, Source: k.Source, msg: fmt.Sprintf(
			"%s source: all %d fetch slots stayed busy for %s, the fetch timeout; raise --max-concurrent-fetches if %s can take more concurrent queries",
			k.Source, c.opts.MaxConcurrentFetches, c.opts.FetchTimeout, k.Source)}
	}
	return release, nil
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

// RefreshDue runs one pass of the background loop: it drops the keys not
// read within KeepAlive and refetches the keys whose last fetch attempt is
// at least RefreshInterval old (for a failing key: RetryAfterFailure,
// doubled for each further consecutive failure, at most RefreshInterval)
// and that are not being fetched already, most
// recently read first, as far as the
// MaxRefreshesPerInterval budget of the current interval allows; the keys
// left out stay due for the next pass. Each source's refreshes run at most
// MaxConcurrentFetches at a time, sharing the source's slots with
// foreground fetches. Once ctx is done no further fetch is started; the
// pass returns when the fetches it started are done.
func (c *Cache) RefreshDue(ctx context.Context) {
	type dueKey struct {
		key      Key
		seen     uint64
		lastRead time.Time
	}
	var due []dueKey
	leftOut := 0
	c.mu.Lock()
	now := c.clock.Now()
	for _, e := range c.entries {
		switch {
		case now.Sub(e.lastRead) > c.opts.KeepAlive:
			c.removeLocked(e)
			c.metrics.cacheExpired()
			c.noteDroppedLocked(e.key, DropExpired, now)
		case !e.fetching && now.Sub(e.attempted) >= c.refreshAfter(e):
			due = append(due, dueKey{e.key, e.fetches, e.lastRead})
		}
	}
	if now.Sub(c.window) >= c.opts.RefreshInterval {
		c.window, c.refreshed = now, 0
	}
	slices.SortFunc(due, func(a, b dueKey) int { return b.lastRead.Compare(a.lastRead) })
	if budget := c.opts.MaxRefreshesPerInterval - c.refreshed; len(due) > budget {
		for _, d := range due[budget:] {
			// Count each key once per interval, not once per pass.
			if e := c.entries[d.key]; !e.leftOut.Equal(c.window) {
				e.leftOut = c.window
				leftOut++
			}
		}
		due = due[:budget]
	}
	c.refreshed += len(due)
	c.mu.Unlock()
	c.metrics.addLimitHits(LimitRefreshesPerInterval, leftOut)

	bySource := map[string][]dueKey{}
	var sources []string
	for _, d := range due {
		if _, ok := bySource[d.key.Source]; !ok {
			sources = append(sources, d.key.Source)
		}
		bySource[d.key.Source] = append(bySource[d.key.Source], d)
	}
	var wg sync.WaitGroup
	for _, source := range sources {
		wg.Go(func() {
			var g errgroup.Group
			g.SetLimit(c.opts.MaxConcurrentFetches)
			for _, d := range bySource[source] {
				g.Go(func() error {
					_, err := c.fetch(ctx, d.key, d.seen, true)
					if errors.Is(err, errStopped) {
						return nil
					}
					c.metrics.cacheRefresh(c.refreshResult(err))
					if err != nil && !c.opts.NoData(err) {
						klog.V(2).InfoS("Background refresh failed", "key", d.key.String(), "err", err)
					}
					return nil
				})
			}
			_ = g.Wait()
		})
	}
	wg.Wait()
}

// refreshAfter is how long after its last fetch attempt entry e is due for
// a background refresh: RefreshInterval, or for a failing key a backoff
// from RetryAfterFailure that doubles with each consecutive failure, so a
// source that comes back is asked again within seconds and a source that
// stays down is not asked more often than a healthy one for long.
func (c *Cache) refreshAfter(e *cacheEntry) time.Duration {
	if e.err == nil {
		return c.opts.RefreshInterval
	}
	wait := c.opts.RetryAfterFailure
	for i := 1; i < e.failures && wait < c.opts.RefreshInterval; i++ {
		wait *= 2
	}
	return min(wait, c.opts.RefreshInterval)
}

func (c *Cache) refreshResult(err error) string {
	switch {
	case err == nil:
		return "success"
	case c.opts.NoData(err):
		return "no_data"
	default:
		return "error"
	}
}

// Len returns the number of cached keys.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
