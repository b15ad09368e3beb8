package kafka

import (
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
	defaultRateMinInterval       = time.Second
	defaultStateTTL              = time.Hour
)

// tracker keeps the committed-offset history per cluster+group+topics that
// time_to_drain_seconds and stalled_partitions need. Safe for concurrent
// use: every method holds mu.
type tracker struct {
	minInterval time.Duration
	ttl         time.Duration

	mu        sync.Mutex
	states    map[string]*progress
	lastPrune time.Time
}

type progress struct {
	lastSeen time.Time
	// base is the sample the next rate is measured from.
	baseAt time.Time
	base   map[topicPartition]int64
	// rate is the last measured consume rate in messages per second.
	rate     float64
	haveRate bool
	// since records when each partition's committed offset took its value.
	since map[topicPartition]offsetSince
}

type offsetSince struct {
	offset int64
	since  time.Time
}

func newTracker(minInterval, ttl time.Duration) *tracker {
	return &tracker{minInterval: minInterval, ttl: ttl, states: map[string]*progress{}}
}

// observe records the committed offsets of parts sampled at now, sets
// parts[i].Stalled, and returns the consume rate (messages/s) measured
// between the base sample and now. ok is false until two samples at least
// minInterval apart exist.
func (t *tracker) observe(key string, parts []PartitionLag, now time.Time, window time.Duration) (rate float64, ok bool) {
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
		p.Stalled = p.Lag > 0 && now.Sub(s.since) >= window
	}

	switch {
	case st.base == nil:
		st.base, st.baseAt = committedOf(parts), now
	case now.Sub(st.baseAt) >= t.minInterval:
		var progressed int64
		for _, p := range parts {
			if before, ok := st.base[topicPartition{p.Topic, p.Partition}]; ok && before >= 0 && p.Committed > before {
				progressed += p.Committed - before
			}
		}
		st.rate = float64(progressed) / now.Sub(st.baseAt).Seconds()
		st.haveRate = true
		st.base, st.baseAt = committedOf(parts), now
	}
	return st.rate, st.haveRate
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

// timeToDrain is backlog / rate, 0 without backlog, NoProgressDrainSeconds
// when the group has a backlog and made no progress.
func timeToDrain(backlog int64, rate float64) float64 {
	switch {
	case backlog <= 0:
		return 0
	case rate <= 0:
		return NoProgressDrainSeconds
	}
	return float64(backlog) / rate
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
