package kafka

import (
	"context"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/listoffsets"
)

// Log-start offsets are cached per partition so that a warm evaluation
// sends one ListOffsets per leader broker (end offsets) instead of two.
// A request cannot carry both kinds: a partition may appear only once per
// ListOffsets request, with one timestamp.
//
// A cached log start is used only if the rules say it is fresh:
//   - it was read less than the cluster's metadataTTL ago (the staleness
//     the adapter already accepts for partition leaders and topic lists);
//   - the end offset read in the same evaluation is not below it. An end
//     below a log start means the log went backward (the topic was deleted
//     and created again, or an unclean leader election truncated it), so
//     the cached value is wrong, not merely old.
//
// Otherwise it is read again, batched per leader with every other
// partition that needs one, before any lag is computed: lag is never
// computed from a value these rules call stale. A cold evaluation (new
// partitions, or the TTL just expired) therefore sends two ListOffsets to
// a leader, one after the other; a warm one sends one.
//
// What a fresh cached value can cost. Within one incarnation of a
// partition the log start only moves forward (retention, DeleteRecords),
// so a cached value L' is at most the current log start L. Lag counts from
// max(committed, logStart) (or logStart under earliest without a commit),
// so using L' instead of L can only raise the lag, by at most L - L': the
// records retention deleted since the value was read, less than one TTL
// ago. Lag is never under-counted, and the excess is records that existed
// within the last TTL and that the group had not consumed.
//
// A committed offset below the cached log start is not a reason to read
// again: it is the normal state of a group retention has overtaken, where
// the clamp applies and the cached value errs as above. Reading on it
// would make such a group cost two ListOffsets per leader on every
// evaluation. The one case it could reveal that the rules above miss is a
// topic recreated and refilled past its old log start within one TTL.
//
// lag_seconds is the exception that reads within the TTL: it fetches the
// record at max(committed, logStart), which fails with OFFSET_OUT_OF_RANGE
// when retention moved the log start past it since the cached read; that
// partition's log start is then read again (see settleLag).

// logStartCache holds the log-start offsets of one cluster's partitions.
// Safe for concurrent use: every method holds mu. Two evaluations that
// miss at the same time both read; the value read last is kept.
type logStartCache struct {
	// ttl is how long a read value is used; the cluster's metadataTTL.
	ttl time.Duration

	mu        sync.Mutex
	entries   map[topicPartition]logStartEntry
	lastPrune time.Time
}

type logStartEntry struct {
	offset int64
	readAt time.Time // when the request that returned offset was sent
}

func newLogStartCache(ttl time.Duration) *logStartCache {
	return &logStartCache{ttl: ttl, entries: map[topicPartition]logStartEntry{}}
}

// fill sets LogStart on every part whose cached value is fresh at now,
// given the End already read, and returns the indexes of the others.
func (c *logStartCache) fill(parts []PartitionLag, now time.Time) (stale []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now)
	for i := range parts {
		p := &parts[i]
		e, ok := c.entries[topicPartition{p.Topic, p.Partition}]
		if !ok || !now.Before(e.readAt.Add(c.ttl)) || p.End < e.offset {
			stale = append(stale, i)
			continue
		}
		p.LogStart = e.offset
	}
	return stale
}

func (c *logStartCache) store(offsets map[topicPartition]int64, readAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, off := range offsets {
		if e, ok := c.entries[tp]; ok && e.readAt.After(readAt) {
			continue // a concurrent evaluation stored a later read
		}
		c.entries[tp] = logStartEntry{offset: off, readAt: readAt}
	}
}

// prune drops entries past their TTL, at most once per TTL, so the cache
// holds only partitions evaluated within the last two TTLs (topics that
// were deleted or are no longer asked for go away). A dropped entry would
// have been read again anyway.
func (c *logStartCache) prune(now time.Time) {
	if now.Sub(c.lastPrune) < c.ttl {
		return
	}
	c.lastPrune = now
	for tp, e := range c.entries {
		if !now.Before(e.readAt.Add(c.ttl)) {
			delete(c.entries, tp)
		}
	}
}

// setLogStarts sets LogStart on every part (End already set): from the
// cache where it is fresh, else read from the brokers.
func (c *cluster) setLogStarts(ctx context.Context, parts []PartitionLag, m *metrics) error {
	stale := c.logStarts.fill(parts, c.clock.Now())
	if len(stale) == 0 {
		return nil
	}
	return c.readLogStarts(ctx, parts, stale, m)
}

// readLogStarts reads the log start of parts[i] for every i in idx, one
// ListOffsets(-2) per leader broker, sets LogStart and caches the values.
func (c *cluster) readLogStarts(ctx context.Context, parts []PartitionLag, idx []int, m *metrics) error {
	byLeader := map[int32][]listoffsets.RequestTopic{}
	for _, i := range idx {
		p := parts[i]
		byLeader[p.leader] = appendPartition(byLeader[p.leader], p.Topic, p.Partition)
	}
	readAt := c.clock.Now()
	starts, err := c.listOffsets(ctx, byLeader, kafkago.FirstOffset, false, m)
	if err != nil {
		return err
	}
	for _, i := range idx {
		p := &parts[i]
		p.LogStart = starts[topicPartition{p.Topic, p.Partition}]
	}
	c.logStarts.store(starts, readAt)
	return nil
}
