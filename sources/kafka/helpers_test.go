package kafka

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
)

// brokerMode is one kind of Kafka cluster the suite runs against: every
// test that starts a broker runs once per mode (forEachMode) and asserts
// the same exact values.
type brokerMode struct {
	name string
	opts []kfake.Opt
	// kafka4 makes the broker behave as Apache Kafka 4 where kfake does
	// not: it refuses the protocol versions Kafka 4.0 removed (kip896Min),
	// and answers DescribeGroups for a group of the consumer protocol
	// (KIP-848) or a share group as Kafka 4 does (see describeGroups4).
	kafka4 bool
}

var (
	// kafka4 is kfake at the versions it implements (Kafka 4.x: the
	// consumer group protocol, share groups) with Kafka 4.0's floor.
	kafka4 = brokerMode{name: "kafka4", kafka4: true}
	// kafka28 is kfake capped at Kafka 2.8's versions (kfake refuses and
	// does not advertise anything newer).
	kafka28 = brokerMode{name: "kafka2.8", opts: []kfake.Opt{kfake.MaxVersions(kversion.V2_8_0())}}
)

// forEachMode runs test once per broker mode, as a subtest named after it.
func forEachMode(t *testing.T, test func(t *testing.T, mode brokerMode)) {
	for _, m := range []brokerMode{kafka4, kafka28} {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// kip896Min is the lowest version of each API that Apache Kafka 4.0
// accepts; KIP-896 removed the older ones ("KIP-896: Remove old client
// protocol API versions in Kafka 4.0"). APIs not listed kept version 0.
// Source: the validVersions of Apache Kafka 4.0's
// clients/src/main/resources/common/message/*Request.json, whose comments
// read e.g. "Version 0 was removed in Apache Kafka 4.0, Version 1 is the
// new baseline" (ListOffsetsRequest.json, OffsetFetchRequest.json) and
// "Versions 0-3 were removed in Apache Kafka 4.0, Version 4 is the new
// baseline" (FetchRequest.json); the same table is franz-go's
// kversion.V4_0_0 (its "KIP-896" setmin list). Metadata, FindCoordinator,
// DescribeGroups, ListGroups, ApiVersions and SaslHandshake keep v0.
// Kafka 4.0 closes the connection on a request below its floor (it cannot
// parse it), which is what the test broker does too.
var kip896Min = map[int16]int16{
	0:  3, // Produce (4.0 still advertises v0, for librdkafka: KAFKA-18659)
	1:  4, // Fetch
	2:  1, // ListOffsets
	8:  2, // OffsetCommit
	9:  1, // OffsetFetch
	11: 2, // JoinGroup (4.1 accepts v0 again: KAFKA-19444)
	19: 2, // CreateTopics
	20: 1, // DeleteTopics
	23: 2, // OffsetForLeaderEpoch
	27: 1, // WriteTxnMarkers
	29: 1, // DescribeAcls
	30: 1, // CreateAcls
	31: 1, // DeleteAcls
	32: 1, // DescribeConfigs
	34: 1, // AlterReplicaLogDirs
	35: 1, // DescribeLogDirs
	38: 1, // CreateDelegationToken
	39: 1, // RenewDelegationToken
	40: 1, // ExpireDelegationToken
	41: 1, // DescribeDelegationToken
}

// broker is a 3-broker kfake cluster with a franz-go client to seed it and
// a counter of the requests it receives.
type broker struct {
	t      testing.TB
	mode   brokerMode
	c      *kfake.Cluster
	kcl    *kgo.Client
	counts *reqCounter

	mu sync.Mutex
	// refused are the requests the kafka4 floor refused.
	refused []string
	// nextGen are the groups of the consumer protocol or share groups,
	// which a kafka4 broker does not describe as classic groups.
	nextGen map[string]bool
}

func newBroker(t testing.TB, mode brokerMode, opts ...kfake.Opt) *broker {
	t.Helper()
	c, err := kfake.NewCluster(append(append([]kfake.Opt{kfake.NumBrokers(3)}, mode.opts...), opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	b := &broker{t: t, mode: mode, c: c, counts: newReqCounter(), nextGen: map[string]bool{}}
	c.Control(func(r kmsg.Request) (kmsg.Response, error, bool) {
		name := kmsg.NameForKey(r.Key())
		if lo, ok := r.(*kmsg.ListOffsetsRequest); ok && len(lo.Topics) > 0 && len(lo.Topics[0].Partitions) > 0 {
			// Count by offset kind too: ListOffsets(-1) end, (-2) log start.
			b.counts.add(fmt.Sprintf("kind:%s(%d)", name, lo.Topics[0].Partitions[0].Timestamp), c.CurrentNode())
		}
		b.counts.add(name, c.CurrentNode())
		b.counts.addVersion(name, r.GetVersion())
		if !mode.kafka4 {
			return nil, nil, false
		}
		if min, ok := kip896Min[r.Key()]; ok && r.GetVersion() < min {
			b.mu.Lock()
			b.refused = append(b.refused, fmt.Sprintf("%s v%d", name, r.GetVersion()))
			b.mu.Unlock()
			c.KeepControl()
			return nil, fmt.Errorf("%s v%d was removed in Kafka 4.0 (KIP-896)", name, r.GetVersion()), true
		}
		if dg, ok := r.(*kmsg.DescribeGroupsRequest); ok {
			if resp := b.describeGroups4(dg); resp != nil {
				c.KeepControl()
				return resp, nil, true
			}
		}
		return nil, nil, false
	})
	t.Cleanup(func() {
		c.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.refused) > 0 {
			t.Errorf("the broker received protocol versions Kafka 4.0 removed: %v", b.refused)
		}
	})
	return b
}

// describeGroups4 answers a DescribeGroups request that names only groups
// of the consumer protocol or share groups as Apache Kafka 4 does: such a
// group is "Dead" with no members, and from v6 on it also carries
// GROUP_ID_NOT_FOUND ("Group g is not a classic group."), from
// GroupMetadataManager.describeGroups. kfake describes them as Stable
// classic groups without members. Nil: let kfake answer.
func (b *broker) describeGroups4(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, g := range req.Groups {
		if !b.nextGen[g] {
			return nil
		}
	}
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, g := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group, rg.State = g, "Dead"
		if req.Version >= 6 {
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			rg.ErrorMessage = kmsg.StringPtr("Group " + g + " is not a classic group.")
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// markNextGen records that group is a consumer-protocol or share group.
func (b *broker) markNextGen(group string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextGen[group] = true
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

// reqCounter counts requests by API name and receiving broker, and the
// versions each API was sent at. Safe for concurrent use.
type reqCounter struct {
	mu       sync.Mutex
	counts   map[string]map[int32]int
	versions map[string]map[int16]bool
}

func newReqCounter() *reqCounter {
	return &reqCounter{counts: map[string]map[int32]int{}, versions: map[string]map[int16]bool{}}
}

func (r *reqCounter) addVersion(api string, v int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.versions[api] == nil {
		r.versions[api] = map[int16]bool{}
	}
	r.versions[api][v] = true
}

// versionsOf returns the versions api was sent at since the last reset,
// sorted.
func (r *reqCounter) versionsOf(api string) []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.versions[api]))
}

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
	r.versions = map[string]map[int16]bool{}
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
	if q.DrainWindow != 0 {
		settings = append(settings, "drainWindow: "+q.DrainWindow.String())
	}
	if q.IsolationLevel != "" {
		settings = append(settings, "isolationLevel: "+q.IsolationLevel)
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
