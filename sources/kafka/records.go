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
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
	"golang.org/x/sync/errgroup"
)

// Records a consumer never receives. A transaction ends with a marker (a
// control record) in each of its partitions: it takes an offset, and no
// consumer is ever handed it. A consumer that has read everything commits
// the offset after the last record it received, which is the marker's:
// without care, an idle, fully consumed partition of a transactional topic
// lags by 1 forever, has no record to date for lag_seconds, never drains
// and, after the stall window, is stalled. Under read_committed, the
// records of aborted transactions are never received either.
//
// So a lagging partition may be read from where its consumers stand:
// the first record there that a consumer would receive (firstReceived) is
// where the lag counts from. lag_seconds reads that record for its time
// anyway, for every lagging partition, on every evaluation. The other
// signals read it only for a partition whose lag can be unreceivable
// records alone, so that a warm evaluation of a busy group sends no Fetch:
//   - its lag is at most tailCheckLag (the markers of that many
//     transactions that ended after the group's last record) and it is
//     seen for the first time or its end offset did not move since the
//     last evaluation (nothing was produced: the tail is what it is);
//   - under read_committed, whatever its lag, it is seen for the first
//     time or its end offset did not move since the last evaluation
//     (aborted transactions leave tails of any length).
//
// Elsewhere markers count: a lag of more than tailCheckLag under
// read_uncommitted counts the markers among and ahead of its records.
//
// The answer is kept while the committed and end offsets stay where they
// are, so a quiet partition is read once.

const (
	// tailCheckLag is the lag up to which a partition may be markers
	// alone: those of as many transactions that ended after the group's
	// last record (one per transactional producer of the partition, in
	// practice).
	tailCheckLag = 4
	// firstReceivedMaxFetches bounds the Fetches that look for the first
	// record a consumer would receive past markers and aborted records.
	firstReceivedMaxFetches = 8

	fetchMaxBytes = 1 << 20
	fetchMaxWait  = 50 * time.Millisecond
)

// tailKey names one partition as one group consumes it at one isolation
// level.
type tailKey struct {
	group         string
	tp            topicPartition
	readCommitted bool
}

// tailEntry is what is known of a partition at one pair of offsets.
type tailEntry struct {
	from, end int64     // where the group stands and the end offset
	read      bool      // whether first and firstTime were read
	first     int64     // the first offset at or after from a consumer receives; end if none
	firstTime time.Time // that record's timestamp
	seen      time.Time
}

// tailCache keeps tailEntries per cluster. Safe for concurrent use.
type tailCache struct {
	ttl time.Duration

	mu        sync.Mutex
	entries   map[tailKey]tailEntry
	lastPrune time.Time
}

func newTailCache(ttl time.Duration) *tailCache {
	return &tailCache{ttl: ttl, entries: map[tailKey]tailEntry{}}
}

func (c *tailCache) get(k tailKey) (tailEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return e, ok
}

func (c *tailCache) put(k tailKey, e tailEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[k] = e
	if e.seen.Sub(c.lastPrune) < c.ttl {
		return
	}
	c.lastPrune = e.seen
	for k, old := range c.entries {
		if e.seen.Sub(old.seen) > c.ttl {
			delete(c.entries, k)
		}
	}
}

// readFrom is where a group's consumers read partition p from: their
// committed offset, or the log start when retention deleted it or, under
// earliest, when there is none. ok is false when they would start at the
// end (no commit under latest).
func readFrom(p PartitionLag, earliest bool) (int64, bool) {
	switch {
	case p.Committed < 0 && !earliest:
		return 0, false
	case p.Committed < 0:
		return p.LogStart, true
	}
	return max(p.Committed, p.LogStart), true
}

// settleLag counts the lag of parts from the first record a consumer would
// receive, where it read that (see above). With all, it reads every
// lagging partition and sets Oldest (lag_seconds); otherwise only those
// whose lag may be markers alone. Fetches run at most concurrency at a
// time; each needs Read on the topic.
//
// A Fetch that fails with OFFSET_OUT_OF_RANGE means the log start moved
// past the offset after LogStart was read: a cached log start may be up to
// metadataTTL old, and retention may also race the read. Those partitions'
// log starts are read again (one ListOffsets per leader), their Lag
// recomputed, and the Fetch retried once; a second OFFSET_OUT_OF_RANGE
// fails the evaluation.
func (c *cluster) settleLag(ctx context.Context, group string, parts []PartitionLag, earliest, readCommitted, all bool, concurrency int, m *metrics) error {
	now := c.clock.Now()
	var read []int
	for i := range parts {
		p := &parts[i]
		from, ok := readFrom(*p, earliest)
		if p.Lag <= 0 || !ok {
			continue
		}
		k := tailKey{group, topicPartition{p.Topic, p.Partition}, readCommitted}
		e, known := c.tails.get(k)
		quiet := known && e.end == p.End
		switch {
		case all:
			read = append(read, i)
		case quiet && e.from == from && e.read:
			e.seen = now
			c.tails.put(k, e)
			apply(p, e)
		case (!known || quiet) && (p.Lag <= tailCheckLag || readCommitted):
			read = append(read, i)
		default:
			c.tails.put(k, tailEntry{from: from, end: p.End, seen: now})
		}
	}
	moved, err := c.readFirstReceived(ctx, group, parts, read, earliest, readCommitted, concurrency, !all, false, m)
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
	_, err = c.readFirstReceived(ctx, group, parts, retry, earliest, readCommitted, concurrency, !all, true, m)
	return err
}

// apply counts p's lag from e.first and dates it.
func apply(p *PartitionLag, e tailEntry) {
	p.Lag = max(0, p.End-e.first)
	if p.Lag > 0 {
		p.Oldest = e.firstTime
	}
}

// readFirstReceived reads, for parts[i] of every i in idx, the first
// record a consumer would receive, applies it and keeps it. Unless final,
// an OFFSET_OUT_OF_RANGE is not an error: those indexes are returned. With
// checkOnly (no signal needs the record's time), a principal without Read
// on the topic (TOPIC_AUTHORIZATION_FAILED) is not an error either: the lag
// stays as the offsets give it, markers included.
func (c *cluster) readFirstReceived(ctx context.Context, group string, parts []PartitionLag, idx []int, earliest, readCommitted bool, concurrency int, checkOnly, final bool, m *metrics) (moved []int, err error) {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, i := range idx {
		p := &parts[i]
		g.Go(func() error {
			from, _ := readFrom(*p, earliest)
			first, ts, err := c.firstReceived(gctx, p.Topic, p.Partition, from, p.End, readCommitted)
			if !final && errors.Is(err, kafkago.OffsetOutOfRange) {
				mu.Lock()
				moved = append(moved, i)
				mu.Unlock()
				return nil
			}
			if checkOnly && errors.Is(err, kafkago.TopicAuthorizationFailed) {
				return nil
			}
			if err != nil {
				var kerr kafkago.Error
				if errors.As(err, &kerr) {
					m.partitionError(c.name, "fetch", kerr)
				}
				return err
			}
			e := tailEntry{from: from, end: p.End, read: true, first: first, firstTime: ts, seen: c.clock.Now()}
			c.tails.put(tailKey{group, topicPartition{p.Topic, p.Partition}, readCommitted}, e)
			apply(p, e)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Ints(moved)
	return moved, nil
}

// firstReceived returns the offset and time of the first record at or
// after from and before end that a consumer would receive: not a marker,
// and under readCommitted not a record of an aborted transaction. It
// returns end (and no time) when there is none. It fetches from where the
// last answer ended until it finds one, at most firstReceivedMaxFetches
// times; past that, the rest counts as received.
func (c *cluster) firstReceived(ctx context.Context, topic string, partition int32, from, end int64, readCommitted bool) (int64, time.Time, error) {
	next := from
	for range firstReceivedMaxFetches {
		if next >= end {
			return end, time.Time{}, nil
		}
		op := fmt.Sprintf("fetch %s/%d at offset %d", topic, partition, next)
		res, err := c.fetch(ctx, topic, partition, next, readCommitted)
		if err != nil {
			return 0, time.Time{}, c.wrap(op, err)
		}
		offset, ts, found, after, err := firstReceivedIn(res, next, readCommitted)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("kafka: %s on cluster %q: %w", op, c.name, err)
		}
		if found {
			return offset, ts, nil
		}
		if after <= next {
			break // nothing more to read yet (an open transaction, under read_committed)
		}
		next = after
	}
	return min(next, end), time.Time{}, nil
}

// fetch reads records of one partition from offset: one Fetch to its
// leader, without a fetch session. kafka-go's Client.Fetch would drop the
// aborted transactions read_committed needs.
func (c *cluster) fetch(ctx context.Context, topic string, partition int32, offset int64, readCommitted bool) (*fetch.ResponsePartition, error) {
	isolation := int8(0)
	if readCommitted {
		isolation = 1
	}
	msg, err := c.transport.RoundTrip(ctx, c.client.Addr, &fetch.Request{
		ReplicaID:      -1,
		MaxWaitTime:    int32(fetchMaxWait / time.Millisecond),
		MinBytes:       1,
		MaxBytes:       fetchMaxBytes,
		IsolationLevel: isolation,
		SessionID:      -1,
		SessionEpoch:   -1,
		Topics: []fetch.RequestTopic{{Topic: topic, Partitions: []fetch.RequestPartition{{
			Partition: partition, CurrentLeaderEpoch: -1, FetchOffset: offset, LogStartOffset: -1, PartitionMaxBytes: fetchMaxBytes,
		}}}},
	})
	if err != nil {
		return nil, err
	}
	res := msg.(*fetch.Response)
	if res.ErrorCode != 0 {
		return nil, kafkago.Error(res.ErrorCode)
	}
	if len(res.Topics) != 1 || len(res.Topics[0].Partitions) != 1 {
		return nil, errors.New("the response does not hold the partition asked for")
	}
	p := &res.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		return nil, kafkago.Error(p.ErrorCode)
	}
	return p, nil
}

// controlAbort is the type of the marker that ends an aborted transaction.
const controlAbort = 0

// firstReceivedIn walks the record batches of one Fetch answer, in offset
// order, for the first record at or after from that a consumer would
// receive; as Kafka's Java consumer does under read_committed, a batch of
// a transaction the answer lists as aborted is skipped until that
// producer's abort marker. Without one, after is the offset following the
// last batch read. A received record without a timestamp (message format
// v0, or a producer that set -1 or 0) is an error wrapping ErrNoData.
func firstReceivedIn(p *fetch.ResponsePartition, from int64, readCommitted bool) (offset int64, ts time.Time, found bool, after int64, err error) {
	after = from
	var batches []protocol.RecordReader
	switch rr := p.RecordSet.Records.(type) {
	case nil:
	case *protocol.RecordStream:
		batches = rr.Records
	default:
		batches = []protocol.RecordReader{rr}
	}
	aborted := append([]fetch.ResponseTransaction(nil), p.AbortedTransactions...)
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].FirstOffset < aborted[j].FirstOffset })
	inAborted := map[int64]bool{} // producers inside an aborted transaction
	for _, b := range batches {
		switch b := b.(type) {
		case *protocol.ControlBatch:
			last, isAbort, err := lastControl(b)
			if err != nil {
				return 0, time.Time{}, false, 0, err
			}
			if isAbort {
				delete(inAborted, b.ProducerID)
			}
			after = max(after, last+1)
			continue
		case *protocol.RecordBatch:
			for len(aborted) > 0 && aborted[0].FirstOffset <= b.BaseOffset {
				inAborted[aborted[0].ProducerID] = true
				aborted = aborted[1:]
			}
			if readCommitted && b.Attributes.Transactional() && inAborted[b.ProducerID] {
				last, err := lastOffset(b)
				if err != nil {
					return 0, time.Time{}, false, 0, err
				}
				after = max(after, last+1)
				continue
			}
		}
		for {
			rec, err := b.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return 0, time.Time{}, false, 0, err
			}
			closeRecord(rec)
			after = max(after, rec.Offset+1)
			if rec.Offset < from {
				continue // batches may start before the offset asked for
			}
			if rec.Time.IsZero() || rec.Time.UnixMilli() <= 0 {
				return 0, time.Time{}, false, 0, fmt.Errorf("%w: record %d has %w", ErrNoData, rec.Offset, errNoTimestamp)
			}
			return rec.Offset, rec.Time, true, after, nil
		}
	}
	return 0, time.Time{}, false, after, nil
}

// errNoTimestamp is wrapped, with ErrNoData, when the record at the offset
// has no usable timestamp.
var errNoTimestamp = errors.New("no timestamp (message format v0 or a producer timestamp <= 0); use the lag signal or set message.timestamp.type=LogAppendTime on the topic")

// lastControl returns the offset of b's last marker and whether it ends an
// aborted transaction.
func lastControl(b *protocol.ControlBatch) (last int64, isAbort bool, err error) {
	last = b.BaseOffset
	for {
		cr, err := b.ReadControlRecord()
		if errors.Is(err, io.EOF) {
			return last, isAbort, nil
		}
		if err != nil {
			return 0, false, err
		}
		last, isAbort = cr.Offset, cr.Type == controlAbort
	}
}

// lastOffset returns the offset of b's last record.
func lastOffset(b protocol.RecordReader) (int64, error) {
	var last int64 = -1
	for {
		rec, err := b.ReadRecord()
		if errors.Is(err, io.EOF) {
			return last, nil
		}
		if err != nil {
			return 0, err
		}
		closeRecord(rec)
		last = rec.Offset
	}
}

func closeRecord(rec *protocol.Record) {
	if rec.Key != nil {
		rec.Key.Close()
	}
	if rec.Value != nil {
		rec.Value.Close()
	}
}
