package kafka

import (
	"context"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// describeNextGen asks group's coordinator for the state of a group of the
// consumer protocol (ConsumerGroupDescribe, KIP-848) or a share group
// (ShareGroupDescribe, KIP-932), key, at the highest of versions the
// cluster accepts. It returns "" when the coordinator knows no such group
// (GROUP_ID_NOT_FOUND, which Kafka also answers for a group of another
// kind), and an *unsupportedError when the cluster has no such API.
//
// Only the group's state is read; the members and their assignments that
// follow it in the answer are not decoded.
func (c *cluster) describeNextGen(ctx context.Context, key protocol.ApiKey, group string, versions ...int16) (string, error) {
	version, err := c.pickVersion(ctx, key, versions...)
	if err != nil {
		return "", err
	}
	// ConsumerGroupDescribe v0-v1 and ShareGroupDescribe v1 requests:
	// GroupIds, IncludeAuthorizedOperations, tagged fields.
	var req encoder
	req.compactArrayLen(1)
	req.compactString(group)
	req.bool(false)
	req.uvarint(0)
	var state string
	err = c.atCoordinator(ctx, group, fmt.Sprintf("%s of group %q", apiNames[key], group), func(id int32) error {
		body, err := c.roundTripRaw(ctx, key, version, id, req.b)
		if err != nil {
			return err
		}
		// ThrottleTimeMs, then Groups: ErrorCode, ErrorMessage, GroupId,
		// GroupState, ... (the same start in both APIs).
		d := decoder{b: body}
		d.int32()
		if n := d.compactArrayLen(); d.err == nil && n != 1 {
			return fmt.Errorf("%d groups in the response, want 1", n)
		}
		code := d.int16()
		d.compactString()
		d.compactString()
		state = d.compactString()
		if d.err != nil {
			return fmt.Errorf("decode the response: %w", d.err)
		}
		if code != 0 {
			return kafkago.Error(code)
		}
		return nil
	})
	switch {
	case errors.Is(err, kafkago.GroupIdNotFound):
		return "", nil
	case err != nil:
		return "", err
	case state == "Dead":
		return "", nil
	}
	return state, nil
}
