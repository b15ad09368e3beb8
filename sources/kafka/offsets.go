package kafka

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/listoffsets"
	meta "github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/offsetfetch"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/hpa-signals/hpa-signals/config"
)

// PartitionLag is one partition's offsets as read in one evaluation.
type PartitionLag struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset; -1 when it has none.
	Committed int64
	// LogStart is the first offset still in the log (retention and
	// DeleteRecords move it forward), as read at most the cluster's
	// metadataTTL ago: it may trail the broker's by what retention deleted
	// since (see logstart.go).
	LogStart int64
	// End is the log end offset (high watermark): the next offset to be
	// written.
	End int64
	// Lag is the number of messages behind: End - max(Committed, LogStart),
	// never below 0; for Committed -1 it follows the offset-reset policy.
	Lag int64
	// Oldest is the timestamp of the oldest unconsumed record. Set only by
	// the lag_seconds signal and only for partitions with Lag > 0.
	Oldest time.Time
	// Stalled reports whether the committed offset has stood still for the
	// stall window while Lag > 0. Set by every signal; false until the
	// window has been observed.
	Stalled bool

	leader int32 // the partition's leader broker in this evaluation's metadata
}

type topicPartition struct {
	topic     string
	partition int32
}

// partitionError records one per-partition error code from the broker.
type partitionError struct {
	tp  topicPartition
	err error
}

// coordinator returns the cached coordinator of group, asking the cluster
// (one FindCoordinator) when none is cached.
func (c *cluster) coordinator(ctx context.Context, group string) (int32, error) {
	c.mu.Lock()
	id, ok := c.coordinators[group]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	res, err := c.client.FindCoordinator(ctx, &kafkago.FindCoordinatorRequest{Key: group, KeyType: kafkago.CoordinatorKeyTypeConsumer})
	if err != nil {
		return 0, c.wrap(fmt.Sprintf("find coordinator for group %q", group), err)
	}
	if res.Error != nil {
		return 0, c.wrap(fmt.Sprintf("find coordinator for group %q", group), res.Error)
	}
	c.mu.Lock()
	c.coordinators[group] = int32(res.Coordinator.NodeID)
	c.mu.Unlock()
	return int32(res.Coordinator.NodeID), nil
}

func (c *cluster) forgetCoordinator(group string) {
	c.mu.Lock()
	delete(c.coordinators, group)
	c.mu.Unlock()
}

// committedOffsets returns every offset group has committed, by topic and
// partition (OffsetFetch with null topics: one request to the cached
// coordinator). A moved coordinator is looked up again once.
func (c *cluster) committedOffsets(ctx context.Context, group string, m *metrics) (map[string]map[int32]int64, error) {
	var out map[string]map[int32]int64
	err := c.atCoordinator(ctx, group, fmt.Sprintf("offset fetch for group %q", group), func(id int32) error {
		msg, err := c.transport.RoundTrip(ctx, c.client.Addr, &offsetFetchAt{GroupID: group, broker: id})
		if err != nil {
			return err
		}
		res := msg.(*offsetfetch.Response)
		if res.ErrorCode != 0 {
			return kafkago.Error(res.ErrorCode)
		}
		out, err = c.collectCommitted(group, res, m)
		return err
	})
	if errors.Is(err, kafkago.GroupIdNotFound) {
		return nil, GroupNotFound(c.name, group)
	}
	return out, err
}

// atCoordinator runs send with the cached coordinator of group. When the
// coordinator moved (or its connection failed) it forgets it, and sends
// once more to the one FindCoordinator then names. Errors other than
// GROUP_ID_NOT_FOUND, which is returned as is, are wrapped with op.
func (c *cluster) atCoordinator(ctx context.Context, group, op string, send func(coordinator int32) error) error {
	for attempt := 0; ; attempt++ {
		id, err := c.coordinator(ctx, group)
		if err != nil {
			return err
		}
		err = send(id)
		if err == nil {
			return nil
		}
		var gone errBrokerGone
		retriable := errors.Is(err, kafkago.NotCoordinatorForGroup) || errors.Is(err, kafkago.GroupCoordinatorNotAvailable) || errors.As(err, &gone)
		if retriable || errors.Is(err, kafkago.BrokerNotAvailable) || isConnError(err) {
			c.forgetCoordinator(group)
		}
		switch {
		case errors.Is(err, kafkago.GroupIdNotFound):
			return err
		case retriable && attempt == 0:
			continue
		default:
			return c.wrap(op, err)
		}
	}
}

func (c *cluster) collectCommitted(group string, res *offsetfetch.Response, m *metrics) (map[string]map[int32]int64, error) {
	out := make(map[string]map[int32]int64, len(res.Topics))
	var perr []partitionError
	for _, t := range res.Topics {
		ps := make(map[int32]int64, len(t.Partitions))
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				perr = append(perr, partitionError{topicPartition{t.Name, p.PartitionIndex}, kafkago.Error(p.ErrorCode)})
				continue
			}
			ps[p.PartitionIndex] = p.CommittedOffset
		}
		out[t.Name] = ps
	}
	if len(perr) > 0 {
		return nil, c.partialRead(fmt.Sprintf("offset fetch for group %q", group), "offset_fetch", perr, m)
	}
	return out, nil
}

// partialRead counts per-partition errors and turns them into one error:
// a value is never computed from an incomplete read.
func (c *cluster) partialRead(op, api string, perr []partitionError, m *metrics) error {
	for _, e := range perr {
		m.partitionError(c.name, api, e.err)
	}
	first := perr[0]
	return c.wrap(op, fmt.Errorf("%d partition(s) failed, first %s/%d: %w", len(perr), first.tp.topic, first.tp.partition, first.err))
}

// groupExists reports whether the coordinator knows group. Used only when
// the group has no committed offsets at all. DescribeGroups answers for a
// classic group. Kafka 4 answers it with "Dead" and no members for a group
// of the consumer protocol (KIP-848), which is the default of new clients
// on 4.x (and, from DescribeGroups v6, with GROUP_ID_NOT_FOUND: "not a
// classic group"), so a group DescribeGroups does not know is asked for
// with ConsumerGroupDescribe where the cluster supports it (Kafka 3.7+).
func (c *cluster) groupExists(ctx context.Context, group string) (bool, error) {
	state, _, err := c.groupState(ctx, group)
	if err != nil {
		return false, err
	}
	if state != "Dead" && state != "" {
		return true, nil
	}
	state, err = c.describeNextGen(ctx, apiConsumerGroupDescribe, group, 0)
	var unsupported *unsupportedError
	if errors.As(err, &unsupported) {
		return false, nil // no group of the consumer protocol before Kafka 3.7
	}
	return state != "", err
}

// metadata returns the cached metadata of topics (no broker request unless
// the transport's cache has expired).
func (c *cluster) metadata(ctx context.Context, topics []string) (*meta.Response, error) {
	msg, err := c.transport.RoundTrip(ctx, c.client.Addr, &meta.Request{TopicNames: topics})
	if err != nil {
		return nil, c.wrap("metadata", err)
	}
	return msg.(*meta.Response), nil
}

// listOffsets sends one ListOffsets request per leader broker for the
// given timestamp (-1 end, -2 log start) and returns the offsets by
// partition. Leaders are asked concurrently. A request carries one
// timestamp per partition, so the two kinds never share a request. With
// readCommitted, the end offsets are the last stable offsets: before the
// first record of a transaction still open.
func (c *cluster) listOffsets(ctx context.Context, byLeader map[int32][]listoffsets.RequestTopic, timestamp int64, readCommitted bool, m *metrics) (map[topicPartition]int64, error) {
	kind := "end"
	switch {
	case timestamp == kafkago.FirstOffset:
		kind = "log start"
	case readCommitted:
		kind = "last stable"
	}
	isolation := int8(0)
	if readCommitted {
		isolation = 1
	}
	op := fmt.Sprintf("list %s offsets", kind)
	var (
		mu   sync.Mutex
		out  = make(map[topicPartition]int64)
		perr []partitionError
	)
	g, gctx := errgroup.WithContext(ctx)
	for leader, topics := range byLeader {
		req := &listOffsetsAt{ReplicaID: -1, IsolationLevel: isolation, broker: leader, Topics: make([]listoffsets.RequestTopic, len(topics))}
		want := 0
		for i, t := range topics {
			parts := make([]listoffsets.RequestPartition, len(t.Partitions))
			for j, p := range t.Partitions {
				parts[j] = listoffsets.RequestPartition{Partition: p.Partition, CurrentLeaderEpoch: -1, Timestamp: timestamp}
			}
			req.Topics[i] = listoffsets.RequestTopic{Topic: t.Topic, Partitions: parts}
			want += len(parts)
		}
		g.Go(func() error {
			msg, err := c.transport.RoundTrip(gctx, c.client.Addr, req)
			if err != nil {
				return c.wrap(fmt.Sprintf("%s from broker %d", op, leader), err)
			}
			res := msg.(*listoffsets.Response)
			mu.Lock()
			defer mu.Unlock()
			got := 0
			for _, t := range res.Topics {
				for _, p := range t.Partitions {
					tp := topicPartition{t.Topic, p.Partition}
					if p.ErrorCode != 0 {
						perr = append(perr, partitionError{tp, kafkago.Error(p.ErrorCode)})
						continue
					}
					out[tp] = p.Offset
					got++
				}
			}
			if got+len(perr) < want {
				return c.wrap(fmt.Sprintf("%s from broker %d", op, leader), fmt.Errorf("the response covers %d of %d partitions", got, want))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(perr) > 0 {
		sort.Slice(perr, func(i, j int) bool { return lessTP(perr[i].tp, perr[j].tp) })
		return nil, c.partialRead(op, "list_offsets", perr, m)
	}
	return out, nil
}

func lessTP(a, b topicPartition) bool {
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.partition < b.partition
}

// readGroup reads the group's committed offsets and the end and log-start
// offsets of its partitions: one OffsetFetch, and per leader broker one
// ListOffsets for end offsets. Log-start offsets come from the cluster's
// cache; those it cannot vouch for (logstart.go) are read after the end
// offsets, one more ListOffsets per leader that has any. Metadata comes
// from the transport cache. A topic the query names that the group has no
// committed offsets for and that q.AllowedTopics does not match fails the
// read before anything of it is asked for, with the error of a topic that
// does not exist. A group without any committed offset is looked up
// (groupExists) unless the query names its topics under offsetReset
// earliest: then it counts them from the log start whether Kafka knows the
// group or not (scale from zero).
func (c *cluster) readGroup(ctx context.Context, q Query, m *metrics) ([]PartitionLag, error) {
	explicit := len(q.Topics) > 0
	earliest := q.OffsetReset == config.OffsetResetEarliest
	// A share group's start offsets stand in for committed offsets; the
	// broker may also state each partition's backlog (share.go).
	var (
		committed map[string]map[int32]int64
		backlogs  map[topicPartition]int64
		err       error
	)
	if q.Signal.IsShare() {
		committed, backlogs, err = c.shareOffsets(ctx, q.Group, m)
	} else {
		committed, err = c.committedOffsets(ctx, q.Group, m)
	}
	switch {
	case errors.Is(err, ErrUnknownGroup) && explicit && earliest:
		committed = nil // some coordinators answer OffsetFetch for an unknown group so
	case err != nil:
		return nil, err
	}
	anyCommitted := false
	var groupTopics []string
	for t, ps := range committed {
		for _, o := range ps {
			if o >= 0 {
				anyCommitted = true
				groupTopics = append(groupTopics, t)
				break
			}
		}
	}
	sort.Strings(groupTopics)
	topics := q.Topics
	if !explicit {
		topics = groupTopics
	}
	switch {
	case anyCommitted:
	case explicit && earliest:
		// Scale from zero: a group that never committed, or whose offsets
		// expired and which Kafka then deleted, counts the named topics
		// from their log start, where its consumers will start. Whether
		// the coordinator knows it changes nothing, so it is not asked.
	default:
		lookup := c.groupExists
		if q.Signal.IsShare() {
			lookup = c.shareGroupExists
		}
		exists, err := lookup(ctx, q.Group)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, GroupNotFound(c.name, q.Group)
		}
		if !explicit {
			return nil, fmt.Errorf("kafka: %w: consumer group %q on cluster %q has no committed offsets yet; "+
				"to apply the offsetReset policy, name with a topic selector a topic the catalog entry's allowedTopics allow", ErrNoData, q.Group, c.name)
		}
	}
	// Nothing of a topic is read unless the group may be asked about it.
	for _, t := range q.Topics {
		if _, committed := slices.BinarySearch(groupTopics, t); !committed && !allowedTopic(q.AllowedTopics, t) {
			return nil, topicNotFound(c.name, q.Group, t)
		}
	}

	md, err := c.metadata(ctx, topics)
	if err != nil {
		return nil, err
	}
	byLeader := map[int32][]listoffsets.RequestTopic{}
	var parts []PartitionLag
	var perr []partitionError
	for _, t := range md.Topics {
		if t.ErrorCode != 0 {
			terr := kafkago.Error(t.ErrorCode)
			if errors.Is(terr, kafkago.UnknownTopicOrPartition) {
				if explicit {
					return nil, topicNotFound(c.name, q.Group, t.Name)
				}
				// Offsets left behind by a deleted topic are not lag.
				klog.V(2).InfoS("Skipping a committed topic that no longer exists", "cluster", c.name, "group", q.Group, "topic", t.Name)
				continue
			}
			return nil, c.wrap(fmt.Sprintf("metadata of topic %q", t.Name), terr)
		}
		for _, p := range t.Partitions {
			tp := topicPartition{t.Name, p.PartitionIndex}
			if p.ErrorCode != 0 && p.LeaderID < 0 {
				perr = append(perr, partitionError{tp, kafkago.Error(p.ErrorCode)})
				continue
			}
			if p.LeaderID < 0 {
				perr = append(perr, partitionError{tp, kafkago.LeaderNotAvailable})
				continue
			}
			off, ok := committed[t.Name][p.PartitionIndex]
			if !ok || off < 0 {
				off = -1
			}
			parts = append(parts, PartitionLag{Topic: t.Name, Partition: p.PartitionIndex, Committed: off, leader: p.LeaderID})
			byLeader[p.LeaderID] = appendPartition(byLeader[p.LeaderID], t.Name, p.PartitionIndex)
		}
	}
	if len(perr) > 0 {
		return nil, c.partialRead("metadata", "metadata", perr, m)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("kafka: %w: none of the topics of group %q exist on cluster %q", ErrNoData, q.Group, c.name)
	}

	ends, err := c.listOffsets(ctx, byLeader, kafkago.LastOffset, q.IsolationLevel == config.IsolationReadCommitted, m)
	if err != nil {
		return nil, err
	}
	for i := range parts {
		parts[i].End = ends[topicPartition{parts[i].Topic, parts[i].Partition}]
	}
	// After the end offsets: an end below a cached log start marks it wrong.
	if err := c.setLogStarts(ctx, parts, m); err != nil {
		return nil, err
	}
	for i := range parts {
		p := &parts[i]
		p.Lag = partitionLag(p.Committed, p.LogStart, p.End, earliest)
		if b, ok := backlogs[topicPartition{p.Topic, p.Partition}]; ok {
			p.Lag = b
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		return lessTP(topicPartition{parts[i].Topic, parts[i].Partition}, topicPartition{parts[j].Topic, parts[j].Partition})
	})
	return parts, nil
}

// allowedTopic reports whether topic matches one of the globs.
func allowedTopic(globs []string, topic string) bool {
	for _, g := range globs {
		if ok, err := path.Match(g, topic); ok && err == nil {
			return true
		}
	}
	return false
}

// partitionLag is the messages a consumer still has to read. Messages that
// retention or DeleteRecords removed (below logStart) never count. A
// partition without a committed offset counts 0 under "latest" and
// end - logStart under "earliest", as the consumer would start there.
func partitionLag(committed, logStart, end int64, earliest bool) int64 {
	from := committed
	switch {
	case committed < 0 && !earliest:
		return 0
	case committed < 0 || committed < logStart:
		from = logStart
	}
	if lag := end - from; lag > 0 {
		return lag
	}
	return 0
}

func appendPartition(topics []listoffsets.RequestTopic, topic string, partition int32) []listoffsets.RequestTopic {
	if n := len(topics); n > 0 && topics[n-1].Topic == topic {
		topics[n-1].Partitions = append(topics[n-1].Partitions, listoffsets.RequestPartition{Partition: partition})
		return topics
	}
	return append(topics, listoffsets.RequestTopic{Topic: topic, Partitions: []listoffsets.RequestPartition{{Partition: partition}}})
}
