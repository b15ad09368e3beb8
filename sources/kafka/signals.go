package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
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
	lagSecondsFetchMaxBytes      = 1 << 20
	lagSecondsFetchMaxWait       = 50 * time.Millisecond
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

// readOldest sets Oldest on every partition with Lag > 0: the timestamp of
// the first record at or after max(Committed, LogStart), i.e. the oldest
// record the group has not consumed that still exists. One Fetch per such
// partition, at most concurrency at a time. It needs Read on the topic.
//
// A record without a timestamp (message format v0, or a producer that set
// -1 or 0) fails with an error wrapping ErrNoData naming the partition and
// offset: no value is guessed.
//
// A Fetch that fails with OFFSET_OUT_OF_RANGE means the log start moved
// past the offset after LogStart was read: a cached log start may be up
// to metadataTTL old, and retention may also race the read. Those
// partitions' log starts are read again (one ListOffsets per leader),
// their Lag recomputed under the earliest policy or not, and the Fetch
// retried once; a second OFFSET_OUT_OF_RANGE fails the evaluation.
func (c *cluster) readOldest(ctx context.Context, parts []PartitionLag, earliest bool, concurrency int, m *metrics) error {
	var lagging []int
	for i := range parts {
		if parts[i].Lag > 0 {
			lagging = append(lagging, i)
		}
	}
	moved, err := c.fetchOldest(ctx, parts, lagging, concurrency, false, m)
	if err != nil || len(moved) == 0 {
		return err
	}
	if err := c.readLogStarts(ctx, parts, moved, m); err != nil {
		return err
	}
	var retry []int
	for _, i := range moved {
		p := &parts[i]
		if p.Lag = partitionLag(p.Committed, p.LogStart, p.End, earliest); p.Lag > 0 {
			retry = append(retry, i)
		}
	}
	_, err = c.fetchOldest(ctx, parts, retry, concurrency, true, m)
	return err
}

// fetchOldest sets Oldest on parts[i] for every i in idx. Unless final, an
// OFFSET_OUT_OF_RANGE is not an error: those indexes are returned.
func (c *cluster) fetchOldest(ctx context.Context, parts []PartitionLag, idx []int, concurrency int, final bool, m *metrics) (moved []int, err error) {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, i := range idx {
		p := &parts[i]
		g.Go(func() error {
			from := max(p.Committed, p.LogStart)
			ts, err := c.recordTime(gctx, p.Topic, p.Partition, from)
			if !final && errors.Is(err, kafkago.OffsetOutOfRange) {
				mu.Lock()
				moved = append(moved, i)
				mu.Unlock()
				return nil
			}
			if err != nil {
				var kerr kafkago.Error
				if errors.As(err, &kerr) {
					m.partitionError(c.name, "fetch", kerr)
				}
				return err
			}
			p.Oldest = ts
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Ints(moved)
	return moved, nil
}

func (c *cluster) recordTime(ctx context.Context, topic string, partition int32, offset int64) (time.Time, error) {
	op := fmt.Sprintf("fetch %s/%d at offset %d", topic, partition, offset)
	res, err := c.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic: topic, Partition: int(partition), Offset: offset,
		MinBytes: 1, MaxBytes: lagSecondsFetchMaxBytes, MaxWait: lagSecondsFetchMaxWait,
	})
	if err != nil {
		return time.Time{}, c.wrap(op, err)
	}
	if res.Error != nil {
		return time.Time{}, c.wrap(op, res.Error)
	}
	ts, err := firstRecordTime(res.Records, offset)
	if err != nil {
		return time.Time{}, fmt.Errorf("kafka: %s on cluster %q: %w", op, c.name, err)
	}
	return ts, nil
}

// errNoTimestamp is wrapped, with ErrNoData, when the record at the offset
// has no usable timestamp.
var errNoTimestamp = errors.New("no timestamp (message format v0 or a producer timestamp <= 0); use the lag signal or set message.timestamp.type=LogAppendTime on the topic")

// firstRecordTime returns the time of the first record at or after offset
// (fetched batches may start before it; compaction may have removed the
// record itself).
func firstRecordTime(rr kafkago.RecordReader, offset int64) (time.Time, error) {
	for {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return time.Time{}, fmt.Errorf("%w: the broker returned no record at or after the offset", ErrNoData)
		}
		if err != nil {
			return time.Time{}, err
		}
		if rec.Value != nil {
			rec.Value.Close()
		}
		if rec.Key != nil {
			rec.Key.Close()
		}
		if rec.Offset < offset {
			continue
		}
		if rec.Time.IsZero() {
			return time.Time{}, fmt.Errorf("%w: record %d has %w", ErrNoData, rec.Offset, errNoTimestamp)
		}
		return rec.Time, nil
	}
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
