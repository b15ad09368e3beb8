package kafka

import (
	"fmt"
	"reflect"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/listoffsets"
	"github.com/segmentio/kafka-go/protocol/offsetfetch"
)

// kafka-go's Transport routes a request by its Go type: a
// listoffsets.Request is split into one request per partition, and an
// offsetfetch.Request looks up the group coordinator on every call. The
// two types below carry the same wire fields (kafka-go encodes them by
// field index with the registered type's codec) plus the broker to send
// to, so one ListOffsets goes to each leader with all of its partitions and
// OffsetFetch goes to a cached coordinator. checkWireTypes verifies the
// field mirroring at New, so a kafka-go upgrade that changes the layout
// fails loudly instead of encoding garbage.
//
// Their tags are kafka-go's, so kafka-go negotiates their versions as for
// its own types: the highest both sides support, ListOffsets v5 and
// OffsetFetch v5 on any broker since Kafka 2.1, above the v1 floor Kafka
// 4.0 set for both (KIP-896; TestNegotiatedVersions).

// listOffsetsAt is listoffsets.Request sent whole to one broker.
type listOffsetsAt struct {
	ReplicaID      int32                      `kafka:"min=v1,max=v5"`
	IsolationLevel int8                       `kafka:"min=v2,max=v5"`
	Topics         []listoffsets.RequestTopic `kafka:"min=v1,max=v5"`

	broker int32
}

func (r *listOffsetsAt) ApiKey() protocol.ApiKey { return protocol.ListOffsets }

func (r *listOffsetsAt) Broker(c protocol.Cluster) (protocol.Broker, error) {
	return brokerOf(c, r.broker)
}

// offsetFetchAt is offsetfetch.Request sent to a known coordinator.
type offsetFetchAt struct {
	GroupID string                     `kafka:"min=v0,max=v5"`
	Topics  []offsetfetch.RequestTopic `kafka:"min=v0,max=v5,nullable"`

	broker int32
}

func (r *offsetFetchAt) ApiKey() protocol.ApiKey { return protocol.OffsetFetch }

func (r *offsetFetchAt) Broker(c protocol.Cluster) (protocol.Broker, error) {
	return brokerOf(c, r.broker)
}

var (
	_ protocol.BrokerMessage = (*listOffsetsAt)(nil)
	_ protocol.BrokerMessage = (*offsetFetchAt)(nil)
)

// errBrokerGone is returned when the cached metadata no longer lists the
// broker a request was addressed to.
type errBrokerGone int32

func (e errBrokerGone) Error() string {
	return fmt.Sprintf("broker %d is not in the cluster metadata", int32(e))
}

func brokerOf(c protocol.Cluster, id int32) (protocol.Broker, error) {
	b, ok := c.Brokers[id]
	if !ok {
		return protocol.Broker{ID: -1}, errBrokerGone(id)
	}
	return b, nil
}

// checkWireTypes reports whether the mirrored request types still match
// kafka-go's: same exported fields, types and tags, in the same order.
func checkWireTypes() error {
	for _, p := range []struct{ ours, theirs reflect.Type }{
		{reflect.TypeOf(listOffsetsAt{}), reflect.TypeOf(listoffsets.Request{})},
		{reflect.TypeOf(offsetFetchAt{}), reflect.TypeOf(offsetfetch.Request{})},
	} {
		if p.ours.NumField() != p.theirs.NumField()+1 {
			return fmt.Errorf("kafka: %v no longer mirrors %v: field count differs", p.ours, p.theirs)
		}
		for i := 0; i < p.theirs.NumField(); i++ {
			a, b := p.ours.Field(i), p.theirs.Field(i)
			if a.Name != b.Name || a.Type != b.Type || a.Tag != b.Tag {
				return fmt.Errorf("kafka: %v no longer mirrors %v: field %d is %s %v %q, want %s %v %q",
					p.ours, p.theirs, i, a.Name, a.Type, a.Tag, b.Name, b.Type, b.Tag)
			}
		}
	}
	return nil
}
