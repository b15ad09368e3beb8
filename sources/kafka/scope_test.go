package kafka

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// topicReads records, per topic, the requests that read something of it:
// Metadata, ListOffsets and Fetch. Safe for concurrent use.
type topicReads struct {
	mu    sync.Mutex
	reads map[string][]string
}

func watchTopicReads(b *broker) *topicReads {
	r := &topicReads{reads: map[string][]string{}}
	b.c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		var topics []string
		switch q := req.(type) {
		case *kmsg.MetadataRequest:
			for _, t := range q.Topics {
				if t.Topic != nil {
					topics = append(topics, *t.Topic)
				}
			}
		case *kmsg.ListOffsetsRequest:
			for _, t := range q.Topics {
				topics = append(topics, t.Topic)
			}
		case *kmsg.FetchRequest:
			for _, t := range q.Topics {
				topics = append(topics, t.Topic)
			}
		}
		r.mu.Lock()
		for _, t := range topics {
			r.reads[t] = append(r.reads[t], kmsg.NameForKey(req.Key()))
		}
		r.mu.Unlock()
		return nil, nil, false
	})
	return r
}

// of returns the requests that named topic since the last reset, sorted.
func (r *topicReads) of(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.reads[topic]...)
	sort.Strings(out)
	return out
}

func (r *topicReads) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = map[string][]string{}
}

// joinWithoutCommit makes group known to the cluster the way a consumer
// that has not committed yet does: it joins, consumes topic, and leaves
// without committing.
func (b *broker) joinWithoutCommit(group, topic string) {
	b.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for got := 0; got == 0; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.t.Fatalf("join group %s: no records within 20s", group)
		}
		got = fs.NumRecords()
	}
	cl.Close() // leaves the group; DisableAutoCommit: no commit
}

// A topic key reads only topics the group has committed offsets for or
// that the entry allows. Any other topic is answered exactly like a topic
// that does not exist, and nothing of it is read from the brokers: no
// Metadata, no ListOffsets, no Fetch for lag_seconds.
func TestTopicScope(t *testing.T) { forEachMode(t, testTopicScope) }

func testTopicScope(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 6)
	b.createTopic("payroll", 3)
	b.createTopic("team-a.orders", 3)
	old := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	offsets := map[int32]int64{}
	for p := int32(0); p < 6; p++ {
		b.produce("orders", p, 10, old)
		offsets[p] = 4
	}
	for p := int32(0); p < 3; p++ {
		b.produce("payroll", p, 50, old)
		b.produce("team-a.orders", p, 7, old)
	}
	b.commit("team-a.billing", map[string]map[int32]int64{"orders": offsets})
	b.joinWithoutCommit("team-a.audit", "team-a.orders")
	reads := watchTopicReads(b)
	now := t0.Add(time.Hour)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: testingclock.NewFakeClock(now)})

	payroll := `topic "payroll" of group "team-a.billing" on cluster "main": not found`
	for _, tc := range []struct {
		name    string
		q       Query
		want    float64
		wantErr string
		// unread are topics of which nothing may be read.
		unread []string
	}{
		{"a topic the group never committed to", Query{Group: "team-a.billing", Topics: []string{"payroll"}, OffsetReset: config.OffsetResetEarliest},
			0, payroll, []string{"payroll"}},
		{"the same for lag_seconds", Query{Group: "team-a.billing", Topics: []string{"payroll"}, Signal: config.KafkaLagSeconds, OffsetReset: config.OffsetResetEarliest},
			0, payroll, []string{"payroll"}},
		{"with a topic the group did commit to", Query{Group: "team-a.billing", Topics: []string{"orders", "payroll"}, OffsetReset: config.OffsetResetEarliest},
			0, payroll, []string{"payroll", "orders"}},
		{"allowed topics that do not match it", Query{Group: "team-a.billing", Topics: []string{"payroll"}, AllowedTopics: []string{"team-a.*"}},
			0, payroll, []string{"payroll"}},
		{"a topic that does not exist", Query{Group: "team-a.billing", Topics: []string{"ledger"}},
			0, `topic "ledger" of group "team-a.billing" on cluster "main": not found`, []string{"ledger"}},
		{"an allowed topic that does not exist", Query{Group: "team-a.billing", Topics: []string{"team-a.ledger"}, AllowedTopics: []string{"team-a.*"}},
			0, `topic "team-a.ledger" of group "team-a.billing" on cluster "main": not found`, nil},
		{"the committed topic: exact lag", Query{Group: "team-a.billing", Topics: []string{"orders"}},
			6 * 6, "", []string{"payroll", "team-a.orders"}},
		{"lag_seconds of the committed topic: the record at offset 4", Query{Group: "team-a.billing", Topics: []string{"orders"}, Signal: config.KafkaLagSeconds},
			now.Sub(old(4)).Seconds(), "", []string{"payroll", "team-a.orders"}},
		{"never committed, allowed topic, earliest", Query{Group: "team-a.audit", Topics: []string{"team-a.orders"}, OffsetReset: config.OffsetResetEarliest, AllowedTopics: []string{"team-a.*"}},
			3 * 7, "", []string{"payroll", "orders"}},
		{"never committed, topic not allowed", Query{Group: "team-a.audit", Topics: []string{"team-a.orders"}, OffsetReset: config.OffsetResetEarliest},
			0, `topic "team-a.orders" of group "team-a.audit" on cluster "main": not found`, []string{"team-a.orders"}},
		{"unknown group", Query{Group: "team-a.nobody", Topics: []string{"payroll"}, AllowedTopics: []string{"*"}},
			0, GroupNotFound("main", "team-a.nobody").Error(), []string{"payroll"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads.reset()
			tc.q.Cluster = "main"
			r, err := s.Evaluate(context.Background(), fromCatalog(t, tc.q))
			switch {
			case tc.wantErr != "":
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("Evaluate = %v, %v; want the error %q", r.Value, err, tc.wantErr)
				} else if !errors.Is(err, ErrUnknownTopic) && !errors.Is(err, ErrUnknownGroup) {
					t.Errorf("error %v is neither ErrUnknownTopic nor ErrUnknownGroup", err)
				}
			case err != nil:
				t.Fatalf("Evaluate: %v", err)
			case r.Value != tc.want:
				t.Errorf("value = %v, want %v", r.Value, tc.want)
			}
			for _, topic := range tc.unread {
				if got := reads.of(topic); len(got) > 0 {
					t.Errorf("requests read topic %q: %v", topic, got)
				}
			}
		})
	}
	if got := reads.of("team-a.orders"); len(got) != 0 {
		t.Fatalf("reads leaked between cases: %v", got)
	}
	// The watcher does see reads: the committed topic was read above.
	reads.reset()
	evaluate(t, s, fromCatalog(t, Query{Cluster: "main", Group: "team-a.billing", Topics: []string{"orders"}, Signal: config.KafkaLagSeconds}))
	if got := reads.of("orders"); !containsAll(got, "ListOffsets", "Fetch") {
		t.Errorf("requests naming orders for lag_seconds: %v, want ListOffsets and Fetch among them", got)
	}
}

func containsAll(have []string, want ...string) bool {
	return !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(have, w) })
}

// Whether a topic the group may not be asked about exists does not change
// the answer: on a cluster where it exists and on one where it does not,
// the error is the same string.
func TestForeignTopicAnswersLikeAMissingOne(t *testing.T) {
	forEachMode(t, testForeignTopicAnswersLikeAMissingOne)
}

func testForeignTopicAnswersLikeAMissingOne(t *testing.T, mode brokerMode) {
	answer := func(withPayroll bool, allowed []string) string {
		b := newBroker(t, mode)
		b.createTopic("orders", 1)
		b.produce("orders", 0, 5, nil)
		if withPayroll {
			b.createTopic("payroll", 1)
			b.produce("payroll", 0, 5, nil)
		}
		b.commit("team-a.billing", map[string]map[int32]int64{"orders": {0: 1}})
		s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
		_, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "team-a.billing", Topics: []string{"payroll"}, AllowedTopics: allowed, OffsetReset: config.OffsetResetEarliest}))
		if !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("payroll exists %v, allowed %v: error %v, want ErrUnknownTopic", withPayroll, allowed, err)
		}
		return err.Error()
	}
	exists, missing, allowedMissing := answer(true, nil), answer(false, nil), answer(false, []string{"*"})
	if exists != missing || missing != allowedMissing {
		t.Errorf("answers differ:\n existing, not allowed: %s\n missing, not allowed:  %s\n missing, allowed:      %s", exists, missing, allowedMissing)
	}
}
