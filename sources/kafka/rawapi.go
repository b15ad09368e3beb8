package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
)

// Requests kafka-go has no types for. kafka-go's protocol package sizes its
// table of request types at API key 51 (protocol.Register panics above it),
// so the group APIs of Kafka 3.7+ cannot be registered with it. They travel
// as rawRequest instead: kafka-go's Transport still routes them (Broker),
// pools the connections and does TLS, SASL and version negotiation, and
// the request writes its own frame on the connection it is given
// (protocol.RawExchanger) and reads the answer. The bodies are encoded by
// hand below (flexible versions: compact strings and arrays, tagged fields),
// for exactly the fields this package reads.
const (
	apiConsumerGroupDescribe     protocol.ApiKey = 69 // KIP-848, Kafka 3.7+ (stable in 4.0)
	apiShareGroupDescribe        protocol.ApiKey = 77 // KIP-932, Kafka 4.1+ (v1)
	apiDescribeShareGroupOffsets protocol.ApiKey = 90 // KIP-932, Kafka 4.1+ (v0); v1 adds Lag (KIP-1226, 4.2)
)

// apiNames names the raw APIs in errors.
var apiNames = map[protocol.ApiKey]string{
	apiConsumerGroupDescribe:     "ConsumerGroupDescribe",
	apiShareGroupDescribe:        "ShareGroupDescribe",
	apiDescribeShareGroupOffsets: "DescribeShareGroupOffsets",
}

// rawCorrelation numbers raw requests; a connection carries one request at
// a time, so any value matches its answer, but distinct ones read better
// in broker logs.
var rawCorrelation atomic.Int32

// rawRequest is one request of an API kafka-go does not know, sent whole to
// one broker. Use it for one round trip.
type rawRequest struct {
	key      protocol.ApiKey
	version  int16
	clientID string
	broker   int32
	body     []byte

	// advertised is set by Required: whether the connection's broker
	// listed key in its ApiVersions answer.
	advertised bool
}

// rawResponse is the body of the answer to a rawRequest, after the
// response header.
type rawResponse struct {
	key  protocol.ApiKey
	body []byte
}

func (r *rawRequest) ApiKey() protocol.ApiKey  { return r.key }
func (r *rawResponse) ApiKey() protocol.ApiKey { return r.key }

func (r *rawRequest) Broker(c protocol.Cluster) (protocol.Broker, error) {
	return brokerOf(c, r.broker)
}

// Required is always true: kafka-go cannot encode the request itself. It
// records whether the broker advertised the API, which RawExchange checks.
func (r *rawRequest) Required(versions map[protocol.ApiKey]int16) bool {
	_, r.advertised = versions[r.key]
	return true
}

// RawExchange writes the request with a v2 request header (flexible
// versions) and reads the answer, skipping the v1 response header.
func (r *rawRequest) RawExchange(rw io.ReadWriter) (protocol.Message, error) {
	if !r.advertised {
		return nil, fmt.Errorf("the broker does not support %s", apiNames[r.key])
	}
	correlation := rawCorrelation.Add(1)
	var w encoder
	w.int32(0) // size, set below
	w.int16(int16(r.key))
	w.int16(r.version)
	w.int32(correlation)
	w.int16(int16(len(r.clientID))) // client ID: a nullable, non-compact string
	w.b = append(w.b, r.clientID...)
	w.uvarint(0) // no tagged fields
	w.b = append(w.b, r.body...)
	binary.BigEndian.PutUint32(w.b, uint32(len(w.b)-4))
	if _, err := rw.Write(w.b); err != nil {
		return nil, err
	}

	var size [4]byte
	if _, err := io.ReadFull(rw, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxRawResponse {
		return nil, fmt.Errorf("%s response of %d bytes is over the %d bytes this client reads", apiNames[r.key], n, maxRawResponse)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(rw, frame); err != nil {
		return nil, err
	}
	d := decoder{b: frame}
	if got := d.int32(); got != correlation {
		return nil, fmt.Errorf("%s: correlation ID %d in the response, want %d", apiNames[r.key], got, correlation)
	}
	d.skipTags()
	if d.err != nil {
		return nil, fmt.Errorf("%s response header: %w", apiNames[r.key], d.err)
	}
	return &rawResponse{key: r.key, body: d.b}, nil
}

// maxRawResponse bounds the answer to one raw request (a share group's
// offsets over 10,000 partitions are about 400 KiB).
const maxRawResponse = 64 << 20

var (
	_ protocol.BrokerMessage = (*rawRequest)(nil)
	_ protocol.RawExchanger  = (*rawRequest)(nil)
)

// apiRange is the versions of one API a broker accepts.
type apiRange struct{ min, max int16 }

// apiVersionsCache keeps which versions of the raw APIs the cluster
// accepts, asked with one ApiVersions request (to any broker) at most once
// per ttl. Safe for concurrent use.
type apiVersionsCache struct {
	ttl time.Duration

	mu     sync.Mutex
	ranges map[protocol.ApiKey]apiRange
	readAt time.Time
}

// rangeOf returns the versions the cluster accepts for key; ok is false
// when it does not support key at all.
func (c *cluster) rangeOf(ctx context.Context, key protocol.ApiKey) (r apiRange, ok bool, err error) {
	v := c.apiVersions
	now := c.clock.Now()
	v.mu.Lock()
	fresh := v.ranges != nil && now.Before(v.readAt.Add(v.ttl))
	if fresh {
		r, ok = v.ranges[key]
	}
	v.mu.Unlock()
	if fresh {
		return r, ok, nil
	}
	msg, err := c.transport.RoundTrip(ctx, c.client.Addr, &apiversions.Request{})
	if err != nil {
		return apiRange{}, false, c.wrap("api versions", err)
	}
	res := msg.(*apiversions.Response)
	if res.ErrorCode != 0 {
		return apiRange{}, false, c.wrap("api versions", kafkago.Error(res.ErrorCode))
	}
	ranges := make(map[protocol.ApiKey]apiRange, len(res.ApiKeys))
	for _, k := range res.ApiKeys {
		ranges[protocol.ApiKey(k.ApiKey)] = apiRange{k.MinVersion, k.MaxVersion}
	}
	v.mu.Lock()
	v.ranges, v.readAt = ranges, now
	v.mu.Unlock()
	r, ok = ranges[key]
	return r, ok, nil
}

// pickVersion returns the highest of the versions this package encodes
// (lowest to highest) that the cluster accepts for key.
func (c *cluster) pickVersion(ctx context.Context, key protocol.ApiKey, ours ...int16) (int16, error) {
	r, ok, err := c.rangeOf(ctx, key)
	if err != nil {
		return 0, err
	}
	for i := len(ours) - 1; ok && i >= 0; i-- {
		if ours[i] >= r.min && ours[i] <= r.max {
			return ours[i], nil
		}
	}
	return 0, &unsupportedError{cluster: c.name, api: apiNames[key], ours: ours, theirs: r, known: ok}
}

// unsupportedError says that the cluster does not accept any version of an
// API this package can send.
type unsupportedError struct {
	cluster string
	api     string
	ours    []int16
	theirs  apiRange
	known   bool
}

func (e *unsupportedError) Error() string {
	if !e.known {
		return fmt.Sprintf("kafka: cluster %q does not support %s", e.cluster, e.api)
	}
	return fmt.Sprintf("kafka: cluster %q accepts %s v%d-v%d, and this adapter sends v%d-v%d",
		e.cluster, e.api, e.theirs.min, e.theirs.max, e.ours[0], e.ours[len(e.ours)-1])
}

// roundTripRaw sends body as version of key to broker and returns the
// answer's body.
func (c *cluster) roundTripRaw(ctx context.Context, key protocol.ApiKey, version int16, broker int32, body []byte) ([]byte, error) {
	msg, err := c.transport.RoundTrip(ctx, c.client.Addr, &rawRequest{key: key, version: version, clientID: c.transport.ClientID, broker: broker, body: body})
	if err != nil {
		return nil, err
	}
	return msg.(*rawResponse).body, nil
}

// encoder appends the Kafka wire encoding of values to b.
type encoder struct{ b []byte }

func (e *encoder) int8(v int8)   { e.b = append(e.b, byte(v)) }
func (e *encoder) int16(v int16) { e.b = binary.BigEndian.AppendUint16(e.b, uint16(v)) }
func (e *encoder) int32(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }
func (e *encoder) uvarint(v uint64) {
	e.b = binary.AppendUvarint(e.b, v)
}

func (e *encoder) bool(v bool) {
	if v {
		e.int8(1)
	} else {
		e.int8(0)
	}
}

// compactString is a length+1 uvarint and the bytes.
func (e *encoder) compactString(s string) {
	e.uvarint(uint64(len(s)) + 1)
	e.b = append(e.b, s...)
}

// compactArrayLen starts an array of n elements; n < 0 is a null array.
func (e *encoder) compactArrayLen(n int) { e.uvarint(uint64(n + 1)) }

// decoder reads the Kafka wire encoding from b; the first error sticks and
// makes every later read return zero.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("response ends early")

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) int16() int16 {
	if b := d.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (d *decoder) int32() int32 {
	if b := d.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

// compactString reads a compact (nullable) string; null reads as "".
func (d *decoder) compactString() string {
	n := d.uvarint()
	if n == 0 {
		return ""
	}
	return string(d.take(int(n - 1)))
}

// compactArrayLen reads an array length; a null array reads as 0.
func (d *decoder) compactArrayLen() int {
	n := d.uvarint()
	if n == 0 {
		return 0
	}
	if n-1 > uint64(len(d.b)) { // every element takes at least a byte
		d.err = errShort
		return 0
	}
	return int(n - 1)
}

// skipTags skips a tagged-fields section.
func (d *decoder) skipTags() {
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		d.uvarint() // tag
		d.take(int(d.uvarint()))
	}
}
