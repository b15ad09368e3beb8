package kafka

import (
	"sort"
	"sync"
	"time"
)

// NoProgressDrainSeconds is what time_to_drain_seconds reports when the
// group has a backlog but committed no progress between the two samples
// the rate is computed from: about 31.7 years, a finite value far above
// any sensible HPA target, so the HPA scales out instead of reading 0.
const NoProgressDrainSeconds = 1e9

// Defaults for zero Options fields.
const (
	defaultLagSecondsConcurrency = 8
	defaultStateTTL              = time.Hour
)

// historySamples is how many samples of committed offsets a history keeps
// over its span (one every span/historySamples), besides the oldest one.
const historySamples = 16

// tracker keeps the committed-offset history that time_to_drain_seconds
// and stalled_partitions need, per cluster, group, topic set and catalog
// entry (Query.stateKey), so that entries with other windows, or other
// signals of the same group read in between, never cut a measurement
// short. Safe for concurrent use: every method holds mu.
type tracker struct {
	ttl time.Duration

	mu        sync.Mutex
	states    map[string]*progress
	lastPrune time.Time
}

type progress struct {
	lastSeen time.Time
	// samples are committed offsets by time, oldest first: one at most
	// every span/historySamples, covering the last span and one more
	// before it, so that a sample at least span old exists once the
	// history is that long.
	samples []sample
	// since records when each partition's committed offset took its value.
	since map[topicPartition]offsetSince
}

type sample struct {
	at        time.Time
	committed map[topicPartition]int64
}

type offsetSince struct {
	offset int64
	since  time.Time
}

// drain is what the history says about a group's consume rate.
type drain struct {
	rate float64 // messages per second
	// known is false while the history is too short to tell a rate: it
	// spans less than the drain window, or the offsets have not moved in
	// it and it spans less than the stall window.
	known bool
	// stopped: no committed offset moved for the stall window.
	stopped bool
}

func newTracker(ttl time.Duration) *tracker {
	return &tracker{ttl: ttl, states: map[string]*progress{}}
}

// observe records the committed offsets of parts sampled at now, sets
// parts[i].Stalled (lagging, and its committed offset unchanged for
// stallWindow) and measures the consume rate: the progress of the
// committed offsets from the newest sample at least drainWindow old to
// now, divided by the time between. When the offsets did not move since
// that sample, the rate is measured from the newest older sample they
// moved on from, at most stallWindow old (a consumer that slowed down or
// commits seldom); the group is stopped when they have not moved since a
// sample stallWindow old.
func (t *tracker) observe(key string, parts []PartitionLag, now time.Time, drainWindow, stallWindow time.Duration) drain {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	st := t.states[key]
	if st == nil {
		st = &progress{since: make(map[topicPartition]offsetSince, len(parts))}
		t.states[key] = st
	}
	st.lastSeen = now

	if len(st.since) > len(parts) { // partitions went away: start over
		st.since = make(map[topicPartition]offsetSince, len(parts))
		st.samples = nil
	}
	for i := range parts {
		p := &parts[i]
		tp := topicPartition{p.Topic, p.Partition}
		s, seen := st.since[tp]
		if !seen || s.offset != p.Committed {
			st.since[tp] = offsetSince{offset: p.Committed, since: now}
			p.Stalled = false
			continue
		}
		p.Stalled = p.Lag > 0 && now.Sub(s.since) >= stallWindow
	}

	d := st.drain(parts, now, drainWindow, stallWindow)
	st.record(parts, now, max(drainWindow, stallWindow))
	return d
}

func (st *progress) drain(parts []PartitionLag, now time.Time, drainWindow, stallWindow time.Duration) drain {
	// The newest sample at least drainWindow old; without progress since,
	// older ones, back to the first that is stallWindow old.
	i := sort.Search(len(st.samples), func(i int) bool { return st.samples[i].at.After(now.Add(-drainWindow)) }) - 1
	for ; i >= 0; i-- {
		base := st.samples[i]
		if moved := progressSince(parts, base.committed); moved > 0 {
			return drain{rate: float64(moved) / now.Sub(base.at).Seconds(), known: true}
		}
		if !base.at.After(now.Add(-stallWindow)) {
			return drain{known: true, stopped: true}
		}
	}
	return drain{}
}

// progressSince is how many messages parts' committed offsets moved on
// from base. A partition without a commit in base counts from its first
// commit on.
func progressSince(parts []PartitionLag, base map[topicPartition]int64) (moved int64) {
	for _, p := range parts {
		if before, ok := base[topicPartition{p.Topic, p.Partition}]; ok && before >= 0 && p.Committed > before {
			moved += p.Committed - before
		}
	}
	return moved
}

// record keeps parts' committed offsets as a sample, unless the newest
// sample is younger than span/historySamples, and drops the samples that
// a sample span old makes useless.
func (st *progress) record(parts []PartitionLag, now time.Time, span time.Duration) {
	if n := len(st.samples); n == 0 || now.Sub(st.samples[n-1].at) >= span/historySamples {
		st.samples = append(st.samples, sample{at: now, committed: committedOf(parts)})
	}
	drop := 0
	for drop+1 < len(st.samples) && !st.samples[drop+1].at.After(now.Add(-span)) {
		drop++
	}
	st.samples = append(st.samples[:0], st.samples[drop:]...)
}

// prune drops groups nobody evaluated within ttl, at most once a minute.
func (t *tracker) prune(now time.Time) {
	if now.Sub(t.lastPrune) < time.Minute {
		return
	}
	t.lastPrune = now
	for k, st := range t.states {
		if now.Sub(st.lastSeen) > t.ttl {
			delete(t.states, k)
		}
	}
}

func committedOf(parts []PartitionLag) map[topicPartition]int64 {
	m := make(map[topicPartition]int64, len(parts))
	for _, p := range parts {
		m[topicPartition{p.Topic, p.Partition}] = p.Committed
	}
	return m
}

// timeToDrain is backlog / rate: 0 without backlog, whatever the history;
// NoProgressDrainSeconds when the group has a backlog and stopped; ok is
// false when the history cannot tell yet.
func timeToDrain(backlog int64, d drain) (seconds float64, ok bool) {
	switch {
	case backlog <= 0:
		return 0, true
	case !d.known:
		return 0, false
	case d.stopped || d.rate <= 0:
		return NoProgressDrainSeconds, true
	}
	return float64(backlog) / d.rate, true
}

// lagSeconds is now minus the oldest unconsumed record's time over parts,
// 0 when no partition lags; never negative (producer clocks may run ahead).
func lagSeconds(parts []PartitionLag, now time.Time) float64 {
	var oldest time.Time
	for _, p := range parts {
		if p.Lag > 0 && !p.Oldest.IsZero() && (oldest.IsZero() || p.Oldest.Before(oldest)) {
			oldest = p.Oldest
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return max(0, now.Sub(oldest).Seconds())
}

// windows keeps, per Query.Key of a query with a Window, the values read
// within that window, so that the query answers their maximum. Safe for
// concurrent use: every method holds mu.
type windows struct {
	ttl time.Duration

	mu        sync.Mutex
	states    map[string]*levels
	lastPrune time.Time
}

type levels struct {
	lastSeen time.Time
	values   []level // oldest first
}

type level struct {
	at    time.Time
	value float64
}

func newWindows(ttl time.Duration) *windows {
	return &windows{ttl: ttl, states: map[string]*levels{}}
}

// max records value read at now under key and returns the largest value
// read within window up to now (value itself when it is the first).
func (w *windows) max(key string, value float64, now time.Time, window time.Duration) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.lastPrune) >= time.Minute {
		w.lastPrune = now
		for k, st := range w.states {
			if now.Sub(st.lastSeen) > w.ttl {
				delete(w.states, k)
			}
		}
	}
	st := w.states[key]
	if st == nil {
		st = &levels{}
		w.states[key] = st
	}
	st.lastSeen = now
	// A value above an older one makes the older one useless: the
	// values kept fall from the oldest to the newest.
	for n := len(st.values); n > 0 && st.values[n-1].value <= value; n-- {
		st.values = st.values[:n-1]
	}
	st.values = append(st.values, level{now, value})
	drop := 0
	for drop < len(st.values) && now.Sub(st.values[drop].at) > window {
		drop++
	}
	st.values = append(st.values[:0], st.values[drop:]...)
	return st.values[0].value
}
