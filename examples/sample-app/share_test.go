package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareBacklog is what the broker states a share group has not yet
// acknowledged on topic, summed over partitions (DescribeShareGroupOffsets
// v1's Lag; -1 for a partition without share state yet).
func shareBacklog(ctx context.Context, cl *kgo.Client, group, topic string, partitions int32) (int64, error) {
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	rg.GroupID = group
	rt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
	rt.Topic = topic
	for p := range partitions {
		rt.Partitions = append(rt.Partitions, p)
	}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, g := range resp.Groups {
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			return 0, err
		}
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return 0, err
				}
				if p.Lag < 0 {
					return 0, fmt.Errorf("partition %d has no share state yet", p.Partition)
				}
				sum += p.Lag
			}
		}
	}
	return sum, nil
}

// setShareAutoOffsetReset sets share.auto.offset.reset of a share group:
// at "earliest" its members get records produced before they joined.
func setShareAutoOffsetReset(ctx context.Context, cl *kgo.Client, group, value string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = "share.auto.offset.reset", kmsg.StringPtr(value)
	r.Configs = append(r.Configs, c)
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Resources) != 1 {
		err = errors.New("no answer for the group")
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	return err
}

func TestShareConsumerAcknowledgesEverythingAtABoundedRate(t *testing.T) {
	const (
		topic, group = "demo.jobs", "demo.workers"
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
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := setShareAutoOffsetReset(ctx, admin, group, "earliest"); err != nil {
		t.Fatalf("set share.auto.offset.reset: %v", err)
	}
	recs := make([]*kgo.Record, messages)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "job-%d", i)}
	}
	if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	c := NewConsumer(ConsumerConfig{Brokers: brokers, Topic: topic, Group: group, Rate: rate, Share: true,
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

	// The broker's backlog of the group reaches 0 once every record is
	// acknowledged.
	backlog := int64(-1)
	for backlog != 0 {
		if ctx.Err() != nil {
			t.Fatalf("share backlog %d after a minute, want 0", backlog)
		}
		time.Sleep(20 * time.Millisecond)
		b, err := shareBacklog(ctx, admin, group, topic, partitions)
		if err != nil {
			t.Logf("share backlog: %v", err)
			continue
		}
		backlog = b
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

	mu.Lock()
	defer mu.Unlock()
	if len(times) != messages || len(seen) != messages {
		t.Fatalf("processed %d messages, %d distinct, want %d each", len(times), len(seen), messages)
	}
	span := times[len(times)-1].Sub(times[0])
	minSpan := time.Duration(float64(messages-1) / rate * float64(time.Second))
	t.Logf("processed %d messages in %s (%.0f/s, cap %.0f/s)", messages, span, float64(messages-1)/span.Seconds(), rate)
	if span < minSpan*95/100 {
		t.Errorf("processed %d messages in %s, faster than the %g/s cap allows (%s)", messages, span, rate, minSpan)
	}
	if span > 20*minSpan {
		t.Errorf("processed %d messages in %s, want close to %s at %g/s", messages, span, minSpan, rate)
	}
}

// A replica told to stop releases the records it acquired but did not
// process: another member gets them at once, long before the broker's
// acquisition lock (30s) would have expired, and the record it did
// process is not delivered again.
func TestShareConsumerReleasesWhatItDidNotProcess(t *testing.T) {
	const (
		topic, group = "demo.jobs", "demo.workers"
		messages     = 20
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := setShareAutoOffsetReset(ctx, admin, group, "earliest"); err != nil {
		t.Fatalf("set share.auto.offset.reset: %v", err)
	}
	recs := make([]*kgo.Record, messages)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "job-%d", i)}
	}
	if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cfg := ConsumerConfig{Brokers: brokers, Topic: topic, Group: group, Share: true,
		CommitInterval: 100 * time.Millisecond, GracePeriod: 5 * time.Second}

	// The first replica processes one record at 2/s, with more acquired
	// (up to shareMaxRecords), and is told to stop right after it.
	first := NewConsumer(ConsumerConfig{Brokers: cfg.Brokers, Topic: topic, Group: group, Share: true, Rate: 2,
		CommitInterval: cfg.CommitInterval, GracePeriod: cfg.GracePeriod}, testLogger(t))
	runCtx, stop := context.WithCancel(ctx)
	var processedFirst string
	first.processed = func(m kafka.Message) {
		processedFirst = string(m.Value)
		stop()
	}
	if err := first.Run(runCtx); err != nil {
		t.Fatalf("first replica: Run = %v", err)
	}
	if processedFirst == "" {
		t.Fatal("the first replica processed nothing")
	}

	second := NewConsumer(cfg, testLogger(t))
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	all := make(chan struct{})
	runCtx2, stop2 := context.WithCancel(ctx)
	defer stop2()
	second.processed = func(m kafka.Message) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(m.Value)]++
		if len(seen) == messages-1 {
			close(all)
		}
	}
	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- second.Run(runCtx2) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
	}
	took := time.Since(began)
	stop2()
	if err := <-done; err != nil {
		t.Errorf("second replica: Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != messages-1 {
		t.Fatalf("the second replica got %d distinct records within %s, want the %d the first did not process", len(seen), took.Round(time.Millisecond), messages-1)
	}
	for v, n := range seen {
		if v == processedFirst || n != 1 {
			t.Errorf("the second replica processed %s %d times; the first had processed %s", v, n, processedFirst)
		}
	}
	t.Logf("the second replica got the %d records left within %s", len(seen), took.Round(time.Millisecond))
}
