package kafka

import (
	"context"
	"runtime"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// BenchmarkGroupLag10kPartitions measures one group's lag over 10,000
// partitions on 3 brokers: this package's batched path next to kafka-go's
// per-partition Client.ListOffsets path (naive-per-partition), with the
// requests each sends per evaluation counted at the broker;
// listoffsets/broker/op is the most ListOffsets any one broker received
// per evaluation. hpa-signals is the steady state, log-start offsets
// cached; hpa-signals-log-starts-expired moves the clock past the metadata
// TTL before every evaluation, so each one reads log starts too (what a
// cold evaluation, or one per TTL, costs); hpa-signals-share-group is the
// backlog of a share group with the same start offsets (one
// DescribeShareGroupOffsets instead of the OffsetFetch).
//
//	go test -run '^$' -bench GroupLag10k -benchtime 20x ./sources/kafka/
func BenchmarkGroupLag10kPartitions(b *testing.B) {
	const partitions = 10_000
	start := time.Now()
	br := newBroker(b, kafka4)
	br.createTopic("big", partitions)
	br.seedClient()
	rs := make([]*kgo.Record, 0, 3*partitions)
	committed := make(map[int32]int64, partitions)
	for p := int32(0); p < partitions; p++ {
		n := 1 + int(p%3) // 1..3 records per partition
		for i := 0; i < n; i++ {
			rs = append(rs, &kgo.Record{Topic: "big", Partition: p, Value: []byte{byte(i)}})
		}
		committed[p] = int64(p % 2)
	}
	if err := br.kcl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		b.Fatalf("produce: %v", err)
	}
	br.commit("big-group", map[string]map[int32]int64{"big": committed})
	br.setShareStartOffsets("big-share-group", "big", committed)
	var wantLag int64
	for p := int32(0); p < partitions; p++ {
		wantLag += int64(1+p%3) - int64(p%2)
	}
	b.Logf("setup: %d partitions, %d records, lag %d, in %s", partitions, len(rs), wantLag, time.Since(start).Round(time.Millisecond))

	cfg := br.clusterConfig("main")
	cfg.MetadataTTL = config.Duration{Duration: time.Minute}
	cfg.RequestTimeout = config.Duration{Duration: time.Minute}

	report := func(b *testing.B) {
		n := float64(b.N)
		most := 0
		for _, c := range br.counts.byBroker("ListOffsets") {
			most = max(most, c)
		}
		b.ReportMetric(float64(most)/n, "listoffsets/broker/op")
		b.ReportMetric(float64(br.counts.total("ListOffsets"))/n, "listoffsets-req/op")
		b.ReportMetric(float64(br.counts.total("OffsetFetch"))/n, "offsetfetch-req/op")
		b.ReportMetric(float64(br.counts.total("DescribeShareGroupOffsets"))/n, "describesharegroupoffsets-req/op")
		b.ReportMetric(float64(br.counts.all())/n, "requests/op")
		// Goroutines of the whole process, the in-process brokers included.
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	}

	// ours evaluates once per iteration; advance runs before each, untimed.
	ours := func(advance time.Duration, q Query) func(b *testing.B) {
		return func(b *testing.B) {
			fc := testingclock.NewFakeClock(time.Now())
			s := newSource(b, []config.KafkaCluster{cfg}, Options{Clock: fc})
			q := fromCatalog(b, q)
			if r, err := s.Evaluate(context.Background(), q); err != nil || int64(r.Value) != wantLag {
				b.Fatalf("warm-up: lag %v, %v; want %d", r.Value, err, wantLag)
			}
			br.counts.reset()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fc.Step(advance)
				r, err := s.Evaluate(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if int64(r.Value) != wantLag {
					b.Fatalf("lag = %v, want %d", r.Value, wantLag)
				}
			}
			b.StopTimer()
			report(b)
		}
	}
	group := Query{Cluster: "main", Group: "big-group", Topics: []string{"big"}}
	b.Run("hpa-signals", ours(0, group))
	b.Run("hpa-signals-log-starts-expired", ours(cfg.MetadataTTL.Duration, group))
	b.Run("hpa-signals-share-group", ours(0, Query{Cluster: "main", Group: "big-share-group", Topics: []string{"big"}, Signal: config.KafkaShareBacklog}))

	b.Run("naive-per-partition", func(b *testing.B) {
		t := &kafkago.Transport{MetadataTTL: time.Minute}
		defer t.CloseIdleConnections()
		cl := &kafkago.Client{Addr: kafkago.TCP(br.c.ListenAddrs()...), Transport: t, Timeout: time.Minute}
		ids := make([]int, partitions)
		reqs := make([]kafkago.OffsetRequest, 0, 2*partitions)
		for p := range ids {
			ids[p] = p
			reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
		}
		naive := func() int64 {
			ctx := context.Background()
			of, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: "big-group", Topics: map[string][]int{"big": ids}})
			if err != nil {
				b.Fatal(err)
			}
			lo, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{"big": reqs}})
			if err != nil {
				b.Fatal(err)
			}
			ends := make(map[int]kafkago.PartitionOffsets, partitions)
			for _, p := range lo.Topics["big"] {
				ends[p.Partition] = p
			}
			var lag int64
			for _, p := range of.Topics["big"] {
				e := ends[p.Partition]
				lag += partitionLag(p.CommittedOffset, e.FirstOffset, e.LastOffset, false)
			}
			return lag
		}
		if got := naive(); got != wantLag {
			b.Fatalf("naive lag = %d, want %d", got, wantLag)
		}
		br.counts.reset()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			naive()
		}
		b.StopTimer()
		report(b)
	})
}
