package kafka

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
)

// broker is a 3-broker kfake cluster with a franz-go client to seed it and
// a counter of the requests it receives.
type broker struct {
	t      testing.TB
	c      *kfake.Cluster
	kcl    *kgo.Client
	counts *reqCounter
}

func newBroker(t testing.TB, opts ...kfake.Opt) *broker {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	b := &broker{t: t, c: c, counts: newReqCounter()}
	c.Control(func(r kmsg.Request) (kmsg.Response, error, bool) {
		name := kmsg.NameForKey(r.Key())
		if lo, ok := r.(*kmsg.ListOffsetsRequest); ok && len(lo.Topics) > 0 && len(lo.Topics[0].Partitions) > 0 {
			// Count by offset kind too: ListOffsets(-1) end, (-2) log start.
			b.counts.add(fmt.Sprintf("kind:%s(%d)", name, lo.Topics[0].Partitions[0].Timestamp), c.CurrentNode())
		}
		b.counts.add(name, c.CurrentNode())
		return nil, nil, false
	})
	t.Cleanup(c.Close)
	return b
}

// seedClient is a franz-go client for producing and committing; opts add
// e.g. SASL.
func (b *broker) seedClient(opts ...kgo.Opt) {
	b.t.Helper()
	kcl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(b.c.ListenAddrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(100_000),
		kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.LeaderAck()),
		// OffsetCommit v10 addresses topics by ID; commit by name.
		kgo.MaxVersions(kversion.V3_8_0()),
	}, opts...)...)
	if err != nil {
		b.t.Fatalf("franz-go client: %v", err)
	}
	b.kcl = kcl
	b.t.Cleanup(kcl.Close)
}

func (b *broker) createTopic(topic string, partitions int32) {
	b.t.Helper()
	if err := b.c.CreateTopic(topic, partitions, nil); err != nil {
		b.t.Fatalf("create topic %s: %v", topic, err)
	}
}

// produce writes n records to topic/partition; ts gives record i's time
// (nil: now).
func (b *broker) produce(topic string, partition int32, n int, ts func(i int) time.Time) {
	b.t.Helper()
	if b.kcl == nil {
		b.seedClient()
	}
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i))}
		if ts != nil {
			rs[i].Timestamp = ts(i)
		}
	}
	if err := b.kcl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		b.t.Fatalf("produce %s/%d: %v", topic, partition, err)
	}
}

// commit commits offsets for group as an admin tool would (generation -1,
// no member).
func (b *broker) commit(group string, offsets map[string]map[int32]int64) {
	b.t.Helper()
	if b.kcl == nil {
		b.seedClient()
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	topics := make([]string, 0, len(offsets))
	for t := range offsets {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = t
		for p, o := range offsets[t] {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, o, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(context.Background(), b.kcl)
	if err != nil {
		b.t.Fatalf("commit for %s: %v", group, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				b.t.Fatalf("commit %s %s/%d: error code %d", group, t.Topic, p.Partition, p.ErrorCode)
			}
		}
	}
}

func (b *broker) clusterConfig(name string) config.KafkaCluster {
	b.t.Helper()
	return catalogCluster(b.t, fmt.Sprintf("{name: %s, brokers: [%s], metadataTTL: 200ms}", name, strings.Join(b.c.ListenAddrs(), ", ")))
}

// catalogCluster is a cluster written as YAML ("{name: main, brokers:
// [...]}") as config decodes, defaults and validates it: New gets every
// setting set, as from the adapter's catalog.
func catalogCluster(t testing.TB, yaml string) config.KafkaCluster {
	t.Helper()
	cat, err := config.Parse([]byte("kafka:\n  clusters:\n    - " + yaml + "\n"))
	if err != nil {
		t.Fatalf("catalog cluster %s: %v", yaml, err)
	}
	return cat.Kafka.Clusters[0]
}

func newSource(t testing.TB, clusters []config.KafkaCluster, opts Options) *Source {
	t.Helper()
	s, err := New(clusters, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// reqCounter counts requests by API name and receiving broker. Safe for
// concurrent use.
type reqCounter struct {
	mu     sync.Mutex
	counts map[string]map[int32]int
}

func newReqCounter() *reqCounter { return &reqCounter{counts: map[string]map[int32]int{}} }

func (r *reqCounter) add(api string, node int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts[api] == nil {
		r.counts[api] = map[int32]int{}
	}
	r.counts[api][node]++
}

func (r *reqCounter) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]map[int32]int{}
}

// byBroker returns the count of api per broker.
func (r *reqCounter) byBroker(api string) map[int32]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int32]int{}
	for n, c := range r.counts[api] {
		out[n] = c
	}
	return out
}

func (r *reqCounter) total(api string) int {
	n := 0
	for _, c := range r.byBroker(api) {
		n += c
	}
	return n
}

func (r *reqCounter) all() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for api, m := range r.counts {
		if strings.HasPrefix(api, "kind:") {
			continue // also counted under the API name
		}
		for _, c := range m {
			n += c
		}
	}
	return n
}

func (r *reqCounter) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for api, m := range r.counts {
		parts = append(parts, fmt.Sprintf("%s=%v", api, m))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// fromCatalog is the Query the provider builds for q's cluster, group and
// topics from a kafka catalog entry with q's signal (lag when empty) and,
// where q sets them, its offsetReset and stallWindow: config decodes,
// defaults and validates the entry, QueryFromSelector reads the selector.
// The allowed topics are q's, which the provider sets per namespace.
func fromCatalog(t testing.TB, q Query) Query {
	t.Helper()
	settings := []string{"signal: " + string(cmp.Or(q.Signal, config.KafkaLag))}
	if q.OffsetReset != "" {
		settings = append(settings, "offsetReset: "+q.OffsetReset)
	}
	if q.StallWindow != 0 {
		settings = append(settings, "stallWindow: "+q.StallWindow.String())
	}
	m := kafkaEntry(t, strings.Join(settings, ", "))
	sel := "group=" + q.Group
	if len(q.Topics) > 0 {
		sel += ",topic in (" + strings.Join(q.Topics, ",") + ")"
	}
	parsed, err := labels.Parse(sel)
	if err != nil {
		t.Fatalf("selector %q: %v", sel, err)
	}
	built, err := QueryFromSelector(m, []string{q.Cluster}, parsed)
	if err != nil {
		t.Fatalf("query for %q: %v", sel, err)
	}
	built.AllowedTopics = q.AllowedTopics
	return built
}

// kafkaEntry is a kafka catalog entry with the given kafka settings
// ("signal: lag, offsetReset: earliest"), as config decodes, defaults and
// validates it.
func kafkaEntry(t testing.TB, settings string) *config.Metric {
	t.Helper()
	cat, err := config.Parse([]byte("presets: false\nmetrics:\n  - {name: m, apis: [external], source: kafka, kafka: {" + settings + "}}\n"))
	if err != nil {
		t.Fatalf("catalog entry with kafka settings %s: %v", settings, err)
	}
	return cat.Lookup("m")
}
