package localstack

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

// producer is a lazily created franz-go client for ProduceBurst.
type producer struct {
	brokers []string
	mu      sync.Mutex
	cl      *kgo.Client
}

func newProducer(brokers []string) *producer { return &producer{brokers: brokers} }

func (p *producer) client() (*kgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil {
		return p.cl, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(p.brokers...),
		// Spread a burst over every partition, so every consumer of the
		// group gets a share of it.
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(1_000_000),
		kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.MaxVersions(kversion.V3_8_0()),
	)
	if err != nil {
		return nil, fmt.Errorf("create Kafka producer: %w", err)
	}
	p.cl = cl
	return cl, nil
}

func (p *producer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
}

// ProduceBurst produces n messages to topic as fast as the broker takes
// them, spread round robin over its partitions, each stamped with the time
// it was produced, and returns once all are acknowledged.
func (s *Stack) ProduceBurst(ctx context.Context, topic string, n int) error {
	cl, err := s.producer.client()
	if err != nil {
		return err
	}
	now := time.Now()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: []byte("burst-" + strconv.Itoa(i)), Timestamp: now}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d messages to %q: %w", n, topic, err)
	}
	return nil
}
