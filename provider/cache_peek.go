package provider

import (
	"time"
)

// CacheState is what the cache holds for one key, as Peek reads it.
type CacheState struct {
	// Cached reports whether the key is in the cache.
	Cached bool
	// Fetching reports whether a fetch of the key is in flight.
	Fetching bool
	// AnsweredAt is the time of the last answer (a value or "no data");
	// zero if none. NoData is that answer when it was "no data".
	AnsweredAt time.Time
	NoData     error
	// Err is the last fetch failure, cleared by an answer; Attempted is
	// the time of the last fetch, answered or not.
	Err       error
	Attempted time.Time
	// LastRead is when the key was last read.
	LastRead time.Time
	// Dropped says why a key that is not cached left the cache recently
	// (a Drop* constant; empty if it did not, or too long ago to be
	// remembered), and DroppedAt when.
	Dropped   string
	DroppedAt time.Time
}

// Why a key left the cache, for CacheState.Dropped.
const (
	// DropEvicted: evicted to make room under --max-cache-keys.
	DropEvicted = "evicted (--max-cache-keys)"
	// DropEvictedNamespace: evicted to make room under
	// --max-cache-keys-per-namespace.
	DropEvictedNamespace = "evicted (--max-cache-keys-per-namespace)"
	// DropExpired: not read within --keep-alive.
	DropExpired = "expired (not read within --keep-alive)"
)

// rememberDropped bounds how many dropped keys the cache remembers.
const rememberDropped = 256

// droppedKeys remembers the last keys that left the cache and why, in a
// ring, so Peek can tell an evicted key from one never read.
type droppedKeys struct {
	ring []droppedKey
	next int
}

type droppedKey struct {
	key    Key
	reason string
	at     time.Time
}

// noteDroppedLocked records that k left the cache; c.mu must be held.
func (c *Cache) noteDroppedLocked(k Key, reason string, now time.Time) {
	d := &c.dropped
	entry := droppedKey{key: k, reason: reason, at: now}
	if len(d.ring) < rememberDropped {
		d.ring = append(d.ring, entry)
		return
	}
	d.ring[d.next] = entry
	d.next = (d.next + 1) % rememberDropped
}

// Peek returns what the cache holds for k without reading it: the key's
// last read time, keep-alive and place in the eviction order stay as they
// were.
func (c *Cache) Peek(k Key) CacheState {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		var st CacheState
		for _, d := range c.dropped.ring {
			if d.key == k && d.at.After(st.DroppedAt) {
				st.Dropped, st.DroppedAt = d.reason, d.at
			}
		}
		return st
	}
	return CacheState{
		Cached:     true,
		Fetching:   e.fetching,
		AnsweredAt: e.answeredAt,
		NoData:     e.noData,
		Err:        e.err,
		Attempted:  e.attempted,
		LastRead:   e.lastRead,
	}
}

// Now is the cache's clock's time.
func (c *Cache) Now() time.Time { return c.clock.Now() }

// Options returns the cache's options, with defaults applied.
func (c *Cache) Options() CacheOptions { return c.opts }
