package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// committed sums the group's committed offsets over the topic's partitions.
func committed(ctx context.Context, client *kafka.Client, group, topic string, partitions int) (int64, error) {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return 0, p.Error
		}
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum, nil
}

func TestConsumerCommitsEverythingAtABoundedRate(t *testing.T) {
	const (
		topic, group = "demo.orders", "demo.billing"
		partitions   = 3
		messages     = 100
		rate         = 200.0 // messages/s: 100 messages take at least 99/200 s
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: messages, RequiredAcks: kafka.RequireAll}
	batch := make([]kafka.Message, messages)
	for i := range batch {
		batch[i] = kafka.Message{Value: fmt.Appendf(nil, "order-%d", i)}
	}
	if err := w.WriteMessages(ctx, batch...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	c := NewConsumer(ConsumerConfig{Brokers: brokers, Topic: topic, Group: group, Rate: rate,
		CommitInterval: 100 * time.Millisecond, GracePeriod: 5 * time.Second}, testLogger(t))
	var (
		mu    sync.Mutex
		times []time.Time
		seen  = map[string]int{}
	)
	c.processed = func(m kafka.Message) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		seen[string(m.Value)]++
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	var sum int64
	for sum < messages {
		if ctx.Err() != nil {
			t.Fatalf("committed offsets sum to %d after a minute, want %d", sum, messages)
		}
		time.Sleep(20 * time.Millisecond)
		if sum, err = committed(ctx, client, group, topic, partitions); err != nil {
			t.Logf("offset fetch: %v", err)
		}
	}
	if sum != messages {
		t.Errorf("committed offsets sum to %d, want %d", sum, messages)
	}

	stop() // what SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if got, err := committed(ctx, client, group, topic, partitions); err != nil || got != messages {
		t.Errorf("after shutdown, committed offsets sum to %d (%v), want %d", got, err, messages)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(times) != messages || len(seen) != messages {
		t.Fatalf("processed %d messages, %d distinct, want %d each", len(times), len(seen), messages)
	}
	span := times[len(times)-1].Sub(times[0])
	minSpan := time.Duration(float64(messages-1) / rate * float64(time.Second))
	var maxGap time.Duration
	for i := 1; i < len(times); i++ {
		maxGap = max(maxGap, times[i].Sub(times[i-1]))
	}
	t.Logf("processed %d messages in %s (%.0f/s, cap %.0f/s; longest gap %s)", messages, span, float64(messages-1)/span.Seconds(), rate, maxGap)
	if span < minSpan*95/100 {
		t.Errorf("processed %d messages in %s, faster than the %g/s cap allows (%s)", messages, span, rate, minSpan)
	}
	// Loose: a group rebalance or a loaded CI machine may pause consumption
	// for a few seconds; this only catches a consumer far below its cap.
	if span > 20*minSpan {
		t.Errorf("processed %d messages in %s, want close to %s at %g/s: with a backlog the consumer should run near its cap", messages, span, minSpan, rate)
	}
}

func TestPacerSpacesCalls(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    float64
		calls   int
		atLeast time.Duration
	}{
		{"100 per second", 100, 11, 100 * time.Millisecond},
		{"unlimited", 0, 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPacer(tc.rate)
			start := time.Now()
			for range tc.calls {
				if err := p.wait(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if d := time.Since(start); d < tc.atLeast || (tc.atLeast == 0 && d > 100*time.Millisecond) {
				t.Errorf("%d waits took %s, want at least %s", tc.calls, d, tc.atLeast)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		p := newPacer(0.001)
		if err := p.wait(context.Background()); err != nil {
			t.Fatalf("first wait: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.wait(ctx); err == nil {
			t.Error("wait on a cancelled context returned nil")
		}
	})
}

func TestConsumerCommitsOnShutdown(t *testing.T) {
	const topic, group, messages = "demo.orders", "demo.audit", 20
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: messages}
	batch := make([]kafka.Message, messages)
	for i := range batch {
		batch[i] = kafka.Message{Value: fmt.Appendf(nil, "%d", i)}
	}
	if err := w.WriteMessages(ctx, batch...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	w.Close()

	// No periodic commit during the test: only the shutdown commits.
	c := NewConsumer(ConsumerConfig{Brokers: brokers, Topic: topic, Group: group,
		CommitInterval: time.Hour, GracePeriod: 5 * time.Second}, testLogger(t))
	var processed sync.WaitGroup
	processed.Add(messages)
	c.processed = func(kafka.Message) { processed.Done() }
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	processed.Wait()

	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	if got, err := committed(ctx, client, group, topic, 2); err != nil || got != 0 {
		t.Errorf("before shutdown, committed offsets sum to %d (%v), want 0 with a 1h commit interval", got, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got, err := committed(ctx, client, group, topic, 2); err != nil || got != messages {
		t.Errorf("after shutdown, committed offsets sum to %d (%v), want %d", got, err, messages)
	}
}
