package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/describegroups"
)

// GroupDescription is what a cluster holds about one consumer group: its
// state as the coordinator reports it and the offsets it has committed.
type GroupDescription struct {
	// Cluster and Group name the group.
	Cluster, Group string
	// State is the coordinator's group state: Stable, Empty (no members,
	// offsets kept), PreparingRebalance, CompletingRebalance, or Dead.
	State string
	// Members is the number of consumers in the group.
	Members int
	// Topics are the topics with committed offsets, sorted by name.
	Topics []TopicOffsets
}

// TopicOffsets are a group's committed offsets on one topic.
type TopicOffsets struct {
	Topic string
	// Committed is the number of partitions with a committed offset.
	Committed int
}

// DescribeGroup asks the cluster about a consumer group: one OffsetFetch
// and one DescribeGroups, both to the group's coordinator, and a
// ConsumerGroupDescribe when DescribeGroups does not know the group. It reads offsets
// only, never records or topic metadata. A group the coordinator does not
// know and that has no committed offsets is GroupNotFound. Which groups a
// caller may ask about is the provider's decision, as for Evaluate.
func (s *Source) DescribeGroup(ctx context.Context, clusterName, group string) (GroupDescription, error) {
	c := s.clusters[clusterName]
	if c == nil {
		return GroupDescription{}, fmt.Errorf("kafka: %w: cluster %q is not configured", ErrInvalidSelector, clusterName)
	}
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()
	committed, err := c.committedOffsets(ctx, group, s.metrics)
	if err != nil {
		return GroupDescription{}, err
	}
	d := GroupDescription{Cluster: c.name, Group: group}
	for topic, parts := range committed {
		n := 0
		for _, o := range parts {
			if o >= 0 {
				n++
			}
		}
		if n > 0 {
			d.Topics = append(d.Topics, TopicOffsets{Topic: topic, Committed: n})
		}
	}
	sort.Slice(d.Topics, func(i, j int) bool { return d.Topics[i].Topic < d.Topics[j].Topic })

	if d.State, d.Members, err = c.groupState(ctx, group); err != nil {
		return GroupDescription{}, err
	}
	if d.State == "Dead" || d.State == "" {
		// A group of the consumer protocol (KIP-848) is unknown to
		// DescribeGroups; its members are not counted.
		state, err := c.describeNextGen(ctx, apiConsumerGroupDescribe, group, 0)
		var unsupported *unsupportedError
		switch {
		case errors.As(err, &unsupported):
		case err != nil:
			return GroupDescription{}, err
		case state != "":
			d.State = state
		}
	}
	if (d.State == "Dead" || d.State == "") && len(d.Topics) == 0 {
		return GroupDescription{}, GroupNotFound(c.name, group)
	}
	return d, nil
}

// groupState asks the group's coordinator for the group's state and its
// number of members (one DescribeGroups). A group the coordinator does not
// know is "Dead". It sends the protocol-level request: kafka-go's
// Client.DescribeGroups decodes the members' metadata and fails on the
// consumer protocol versions of current Java and franz-go clients.
func (c *cluster) groupState(ctx context.Context, group string) (string, int, error) {
	op := fmt.Sprintf("describe group %q", group)
	msg, err := c.transport.RoundTrip(ctx, c.client.Addr, &describegroups.Request{Groups: []string{group}})
	if err != nil {
		return "", 0, c.wrap(op, err)
	}
	res := msg.(*describegroups.Response)
	if len(res.Groups) != 1 {
		return "", 0, c.wrap(op, fmt.Errorf("%d groups in the response, want 1", len(res.Groups)))
	}
	g := res.Groups[0]
	if g.ErrorCode == 0 {
		return g.GroupState, len(g.Members), nil
	}
	err = kafkago.Error(g.ErrorCode)
	if errors.Is(err, kafkago.GroupIdNotFound) {
		return "Dead", 0, nil
	}
	return "", 0, c.wrap(op, err)
}
