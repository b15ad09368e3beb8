package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
)

// Share groups (KIP-932). A share group has no committed offsets: its
// consumers acquire records one by one and acknowledge them, and the
// broker keeps per partition the share-partition start offset (SPSO), the
// first record not yet delivery-complete (acknowledged, or archived after
// too many delivery attempts). DescribeShareGroupOffsets (API key 90)
// reads it, and from v1 (KIP-1226) the partition's lag: the records from
// the SPSO to the high watermark that are not delivery-complete, which is
// the backlog the share_backlog signals count. A v0 broker gives the SPSO
// only; the backlog is then end - SPSO, which also counts the records
// after the SPSO already acknowledged (out of order) or in flight.

// shareOffsets reads group's share-partition start offsets, in the shape
// of committed offsets (-1: no share state yet), and the backlog per
// partition where the broker states it (v1).
func (c *cluster) shareOffsets(ctx context.Context, group string, m *metrics) (starts map[string]map[int32]int64, backlogs map[topicPartition]int64, err error) {
	version, err := c.pickVersion(ctx, apiDescribeShareGroupOffsets, 0, 1)
	var unsupported *unsupportedError
	if errors.As(err, &unsupported) {
		return nil, nil, fmt.Errorf("kafka: %w: cluster %q has no share groups (KIP-932, Kafka 4.1+): %w", ErrNoData, c.name, err)
	}
	if err != nil {
		return nil, nil, err
	}
	// Groups: [GroupId, Topics (null: every topic the group has state
	// for), tags], tags.
	var req encoder
	req.compactArrayLen(1)
	req.compactString(group)
	req.compactArrayLen(-1)
	req.uvarint(0)
	req.uvarint(0)
	op := fmt.Sprintf("describe share group offsets of %q", group)
	err = c.atCoordinator(ctx, group, op, func(id int32) error {
		body, err := c.roundTripRaw(ctx, apiDescribeShareGroupOffsets, version, id, req.b)
		if err != nil {
			return err
		}
		var perr []partitionError
		starts, backlogs, perr, err = decodeShareOffsets(body, version)
		if err != nil {
			return err
		}
		if len(perr) > 0 {
			return c.partialRead(op, "describe_share_group_offsets", perr, m)
		}
		return nil
	})
	if errors.Is(err, kafkago.GroupIdNotFound) {
		return nil, nil, GroupNotFound(c.name, group)
	}
	return starts, backlogs, err
}

// decodeShareOffsets reads a DescribeShareGroupOffsets v0-v1 answer for
// one group.
func decodeShareOffsets(body []byte, version int16) (starts map[string]map[int32]int64, backlogs map[topicPartition]int64, perr []partitionError, err error) {
	d := decoder{b: body}
	d.int32() // ThrottleTimeMs
	if n := d.compactArrayLen(); d.err == nil && n != 1 {
		return nil, nil, nil, fmt.Errorf("%d groups in the response, want 1", n)
	}
	d.compactString() // GroupId
	starts = map[string]map[int32]int64{}
	if version >= 1 {
		backlogs = map[topicPartition]int64{}
	}
	for nt := d.compactArrayLen(); nt > 0 && d.err == nil; nt-- {
		topic := d.compactString()
		d.take(16) // TopicId
		ps := map[int32]int64{}
		for np := d.compactArrayLen(); np > 0 && d.err == nil; np-- {
			partition := d.int32()
			start := d.int64()
			d.int32() // LeaderEpoch
			lag := int64(-1)
			if version >= 1 {
				lag = d.int64()
			}
			code := d.int16()
			d.compactString() // ErrorMessage
			d.skipTags()
			if code != 0 {
				perr = append(perr, partitionError{topicPartition{topic, partition}, kafkago.Error(code)})
				continue
			}
			ps[partition] = start
			if backlogs != nil && start >= 0 && lag >= 0 {
				backlogs[topicPartition{topic, partition}] = lag
			}
		}
		d.skipTags()
		starts[topic] = ps
	}
	code := d.int16()
	d.compactString() // ErrorMessage
	d.skipTags()
	d.skipTags()
	if d.err != nil {
		return nil, nil, nil, fmt.Errorf("decode the response: %w", d.err)
	}
	if code != 0 {
		return nil, nil, nil, kafkago.Error(code)
	}
	return starts, backlogs, perr, nil
}

// dateShareBacklog sets Oldest on every partition of parts with a backlog:
// the time of the first record a share consumer would receive at or after
// the share-partition start offset. The start offset is by definition the
// first record not yet delivery-complete, so that record is the backlog's
// oldest (records after it may be acknowledged out of order, never one
// before it). It is the Fetch lag_seconds sends for a consumer group, one
// per partition with a backlog; the backlog the broker stated stays the
// partition's Lag (the Fetch may only find markers: then there is none).
func (c *cluster) dateShareBacklog(ctx context.Context, group string, parts []PartitionLag, earliest, readCommitted bool, concurrency int, m *metrics) error {
	stated := make([]int64, len(parts))
	for i, p := range parts {
		stated[i] = p.Lag
	}
	if err := c.settleLag(ctx, group, parts, earliest, readCommitted, true, concurrency, m); err != nil {
		return err
	}
	for i := range parts {
		if parts[i].Lag > 0 {
			parts[i].Lag = stated[i]
		}
	}
	return nil
}

// shareGroupExists reports whether the coordinator knows group as a share
// group (ShareGroupDescribe, API key 77).
func (c *cluster) shareGroupExists(ctx context.Context, group string) (bool, error) {
	state, err := c.describeNextGen(ctx, apiShareGroupDescribe, group, 1)
	var unsupported *unsupportedError
	if errors.As(err, &unsupported) {
		return false, nil
	}
	return state != "", err
}

func (d *decoder) int64() int64 {
	if b := d.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}
