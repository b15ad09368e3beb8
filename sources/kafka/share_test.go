package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// shareConsumer is a franz-go share-group consumer (KIP-932) that starts
// at the earliest records.
func (b *broker) shareConsumer(t *testing.T, group, topic string) *kgo.Client {
	t.Helper()
	b.setGroupConfig(group, "share.auto.offset.reset", "earliest")
	b.markNextGen(group)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ShareGroup(group))
	if err != nil {
		t.Fatalf("share consumer: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// setGroupConfig sets one group config (IncrementalAlterConfigs, resource
// type GROUP).
func (b *broker) setGroupConfig(group, key, value string) {
	b.t.Helper()
	if b.kcl == nil {
		b.seedClient()
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = key, kmsg.StringPtr(value)
	r.Configs = append(r.Configs, c)
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(context.Background(), b.kcl)
	if err == nil && len(resp.Resources) == 1 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		b.t.Fatalf("set %s=%s on group %s: %v", key, value, group, err)
	}
}

// pollShare returns the records of the first poll that returns any.
// waitBuffered waits until cl has fetched n records that no poll has
// returned yet.
func waitBuffered(t *testing.T, cl *kgo.Client, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for cl.BufferedFetchRecords() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records buffered within 10s, want %d", cl.BufferedFetchRecords(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pollShare(t *testing.T, cl *kgo.Client) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no share records within 10s: %v", ctx.Err())
		}
		if recs := fs.Records(); len(recs) > 0 {
			return recs
		}
	}
}

// The backlog of a share group: records from the share-partition start
// offset to the end that are not yet acknowledged or archived, as the
// broker states it (DescribeShareGroupOffsets v1). A record acknowledged
// ahead of the start offset no longer counts; one acquired or released
// does.
func TestShareGroupBacklog(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("jobs", 3)
	b.produce("jobs", 0, 10, nil)
	b.produce("jobs", 2, 3, nil)
	cl := b.shareConsumer(t, "workers", "jobs")
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	backlog := fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaShareBacklog})
	worst := fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaShareBacklogMax})

	// Records acquired by one poll, none acknowledged: all are backlog.
	// (franz-go accepts a poll's records at the next poll: there is none.)
	// Every partition's records must be in this one poll: the brokers
	// answer the share fetches one by one.
	waitBuffered(t, cl, 13)
	recs := pollShare(t, cl)
	r := evaluate(t, s, backlog)
	if want := map[string]int64{"jobs/0": 10, "jobs/1": 0, "jobs/2": 3}; r.Value != 13 || !maps.Equal(lagsOf(r), want) {
		t.Errorf("backlog with records acquired = %v %v, want 13 %v", r.Value, lagsOf(r), want)
	}

	// Accept the records of odd offset (ahead of the start offset, out of
	// order), release the first one: only accepted records leave the
	// backlog.
	want := map[string]int64{"jobs/0": 10, "jobs/1": 0, "jobs/2": 3}
	var accept, release []*kgo.Record
	for _, rec := range recs {
		switch {
		case rec.Offset%2 == 1:
			accept = append(accept, rec)
			want[fmt.Sprintf("jobs/%d", rec.Partition)]--
		case rec.Offset == 0:
			release = append(release, rec)
		}
	}
	if len(accept) == 0 {
		t.Fatalf("the poll returned no record of odd offset: %d records", len(recs))
	}
	cl.MarkAcks(kgo.AckAccept, accept...)
	cl.MarkAcks(kgo.AckRelease, release...)
	if err := cl.FlushAcks(context.Background()); err != nil {
		t.Fatal(err)
	}
	r = evaluate(t, s, backlog)
	if got := lagsOf(r); r.Value != float64(13-len(accept)) || !maps.Equal(got, want) {
		t.Errorf("backlog after accepting %d records = %v %v, want %d %v", len(accept), r.Value, got, 13-len(accept), want)
	}
	if r := evaluate(t, s, worst); r.Value != float64(max(want["jobs/0"], want["jobs/2"])) {
		t.Errorf("worst partition's backlog = %v, want %v", r.Value, max(want["jobs/0"], want["jobs/2"]))
	}

	// An unknown share group is the usual unknown group; a consumer-group
	// signal of the share group does not read its share state.
	if _, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "nobody", Signal: config.KafkaShareBacklog})); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("backlog of an unknown share group: %v, want ErrUnknownGroup", err)
	}
}

// Kafka before 4.1 has no share groups: the share signals are "no data"
// that says so, not an outage.
func TestShareGroupBacklogOldBroker(t *testing.T) {
	b := newBroker(t, kafka28)
	b.createTopic("jobs", 1)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	_, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaShareBacklog}))
	if !errors.Is(err, ErrNoData) || err.Error() != `kafka: no data: cluster "main" has no share groups (KIP-932, Kafka 4.1+): kafka: cluster "main" does not support DescribeShareGroupOffsets` {
		t.Errorf("share backlog on Kafka 2.8: %v", err)
	}
}

// A broker of DescribeShareGroupOffsets v0 (Kafka 4.1) gives the start
// offsets only: the backlog is end - start offset, which also counts the
// records acknowledged ahead of the start offset.
func TestShareGroupBacklogV0(t *testing.T) {
	v := kversion.V4_1_0()
	v.SetMaxKeyVersion(int16(apiDescribeShareGroupOffsets), 0)
	b := newBroker(t, kafka4, kfake.MaxVersions(v))
	b.createTopic("jobs", 3)
	b.produce("jobs", 0, 10, nil)
	b.produce("jobs", 2, 3, nil)
	cl := b.shareConsumer(t, "workers", "jobs")
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	var accept, release []*kgo.Record
	waitBuffered(t, cl, 13)
	for _, rec := range pollShare(t, cl) {
		switch rec.Offset {
		case 0:
			release = append(release, rec)
		default:
			accept = append(accept, rec)
		}
	}
	cl.MarkAcks(kgo.AckAccept, accept...)
	cl.MarkAcks(kgo.AckRelease, release...)
	if err := cl.FlushAcks(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Offset 0 of partitions 0 and 2 was released, if polled, or not
	// delivered: both start offsets stay at 0.
	r := evaluate(t, s, fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaShareBacklog}))
	if want := map[string]int64{"jobs/0": 10, "jobs/1": 0, "jobs/2": 3}; r.Value != 13 || !maps.Equal(lagsOf(r), want) {
		t.Errorf("v0 backlog = %v %v, want 13 %v", r.Value, lagsOf(r), want)
	}
	if got := b.counts.versionsOf("DescribeShareGroupOffsets"); !slices.Equal(got, []int16{0}) {
		t.Errorf("DescribeShareGroupOffsets versions = %v, want [0]", got)
	}
}

// setShareStartOffsets sets the share-partition start offsets of an empty
// share group (AlterShareGroupOffsets, which creates the group).
func (b *broker) setShareStartOffsets(group, topic string, starts map[int32]int64) {
	b.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...))
	if err != nil {
		b.t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	req.GroupID = group
	rt := kmsg.NewAlterShareGroupOffsetsRequestTopic()
	rt.Topic = topic
	for p, o := range starts {
		rp := kmsg.NewAlterShareGroupOffsetsRequestTopicPartition()
		rp.Partition, rp.StartOffset = p, o
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err == nil {
				err = kerr.ErrorForCode(p.ErrorCode)
			}
		}
	}
	if err != nil {
		b.t.Fatalf("alter share group offsets of %s: %v", group, err)
	}
	b.markNextGen(group)
}

// The age of a share group's backlog: now minus the time of the first
// record at or after the share-partition start offset, the oldest record
// not yet delivery-complete; worst partition; 0 without backlog. One Fetch
// per partition with a backlog, none for the others. Records acknowledged
// past the start offset do not make the backlog younger: the start offset
// does not move.
func TestShareGroupBacklogAge(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("jobs", 3)
	b.produceDated("jobs")
	b.setShareStartOffsets("set", "jobs", map[int32]int64{0: 3, 1: 7, 2: 4})
	fc := testingclock.NewFakeClock(t0.Add(1000 * time.Second))
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	age := fromCatalog(t, Query{Cluster: "main", Group: "set", Signal: config.KafkaShareBacklogSeconds})

	b.counts.reset()
	r := evaluate(t, s, age)
	checkDatedAges(t, r)
	if want := map[string]int64{"jobs/0": 7, "jobs/1": 3, "jobs/2": 0}; !maps.Equal(lagsOf(r), want) {
		t.Errorf("backlogs with the age = %v, want %v", lagsOf(r), want)
	}
	if got := b.counts.total("Fetch"); got != 2 {
		t.Errorf("%d Fetch requests, want 2 (the partitions with a backlog)\n%s", got, b.counts)
	}

	// A consumer acknowledges every record but p0's offset 0: p0's start
	// offset stays 0 and the backlog is one record at t0+0s old.
	cl := b.shareConsumer(t, "workers", "jobs")
	s = newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	age = fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaShareBacklogSeconds})
	waitBuffered(t, cl, 24)
	var accept, release []*kgo.Record
	for _, rec := range pollShare(t, cl) {
		if rec.Partition == 0 && rec.Offset == 0 {
			release = append(release, rec)
			continue
		}
		accept = append(accept, rec)
	}
	if len(accept) != 23 || len(release) != 1 {
		t.Fatalf("one poll returned %d records to accept and %d to release, want 23 and 1", len(accept), len(release))
	}
	cl.MarkAcks(kgo.AckAccept, accept...)
	cl.MarkAcks(kgo.AckRelease, release...)
	if err := cl.FlushAcks(context.Background()); err != nil {
		t.Fatal(err)
	}
	r = evaluate(t, s, age)
	if want := map[string]int64{"jobs/0": 1, "jobs/1": 0, "jobs/2": 0}; r.Value != 1000 || !maps.Equal(lagsOf(r), want) {
		t.Errorf("age with p0's first record released = %v %v, want 1000 %v", r.Value, lagsOf(r), want)
	}

	// Once it is acknowledged too, there is no backlog and no age.
	waitBuffered(t, cl, 1)
	cl.MarkAcks(kgo.AckAccept, pollShare(t, cl)...)
	if err := cl.FlushAcks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := evaluate(t, s, age); r.Value != 0 {
		t.Errorf("age with every record acknowledged = %v %v, want 0", r.Value, lagsOf(r))
	}
}
