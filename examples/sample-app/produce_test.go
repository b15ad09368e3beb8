package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestProduceSpreadsTheBurstOverEveryPartition(t *testing.T) {
	const (
		topic      = "demo.orders"
		partitions = 12
		messages   = 1000
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg := ProduceConfig{Brokers: cluster.ListenAddrs(), Topic: topic, Messages: messages, Timeout: 30 * time.Second}
	if err := RunProduce(ctx, cfg, testLogger(t)); err != nil {
		t.Fatalf("RunProduce: %v", err)
	}

	// Read everything back from the start.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	perPartition := map[int32]int{}
	total := 0
	for total < messages && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachError(func(_ string, _ int32, err error) { t.Errorf("fetch: %v", err) })
		fetches.EachRecord(func(r *kgo.Record) {
			perPartition[r.Partition]++
			total++
			if !strings.HasPrefix(string(r.Value), "order-") || r.Timestamp.IsZero() {
				t.Errorf("record %q at %s, want an order-N value and a timestamp", r.Value, r.Timestamp)
			}
		})
	}
	// Nothing more than the burst arrives.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	cl.PollFetches(short).EachRecord(func(*kgo.Record) { total++ })
	if total != messages {
		t.Fatalf("read %d records back, want %d", total, messages)
	}
	// Round robin: 1000 over 12 partitions is 83 or 84 each.
	if len(perPartition) != partitions {
		t.Errorf("records landed on %d partitions, want all %d: %v", len(perPartition), partitions, perPartition)
	}
	for p, n := range perPartition {
		if n < messages/partitions || n > messages/partitions+1 {
			t.Errorf("partition %d got %d records, want %d or %d (round robin)", p, n, messages/partitions, messages/partitions+1)
		}
	}
}

func TestProduceFailsWithinItsTimeout(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "demo.orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg := ProduceConfig{Brokers: cluster.ListenAddrs(), Topic: "no-such-topic", Messages: 10, Timeout: 2 * time.Second}
	began := time.Now()
	err = RunProduce(context.Background(), cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), `produce 10 records to "no-such-topic"`) {
		t.Errorf("RunProduce to a missing topic = %v, want an error naming the topic", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("RunProduce failed after %s, want within --produce-timeout (2s) and a little", took)
	}
}
