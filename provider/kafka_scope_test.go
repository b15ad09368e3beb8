package provider_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
)

// groupsKafka knows some consumer groups on cluster "main" and answers the
// others as the real source does for a group that does not exist. It
// records every query.
type groupsKafka struct {
	groups map[string]float64

	mu      sync.Mutex
	queries []kafka.Query
}

func (f *groupsKafka) Evaluate(_ context.Context, q kafka.Query) (kafka.Result, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	v, ok := f.groups[q.Group]
	if !ok {
		return kafka.Result{}, kafka.GroupNotFound(q.Cluster, q.Group)
	}
	return kafka.Result{Value: v, Time: sampleTime}, nil
}

func (f *groupsKafka) asked() []kafka.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

const scopeCatalog = `
presets: false
kafka:
  clusters:
    - name: main
      brokers: ["127.0.0.1:9092"]
  groupOwners:
    - namespace: demo
      groups: [billing]
%s
metrics:
  - name: kafka_consumer_lag
    apis: [external]
    source: kafka
    kafka: {signal: lag}
  - name: kafka_consumer_lag_earliest
    apis: [external]
    source: kafka
    kafka: {signal: lag, offsetReset: earliest, allowedTopics: ["{namespace}.*"]}
  - name: kafka_share_group_backlog
    apis: [external]
    source: kafka
    kafka: {signal: share_backlog}
  - name: platform_lag
    apis: [external]
    source: kafka
    namespaced: false
    callerNamespaces: [platform]
    kafka: {signal: lag}
`

func kafkaScopeServer(t *testing.T, extraOwners string, k *groupsKafka) func(ns, metric, selector string) (int, string) {
	t.Helper()
	cat, err := config.Parse([]byte(fmt.Sprintf(scopeCatalog, extraOwners)))
	if err != nil {
		t.Fatal(err)
	}
	p := provider.New(provider.Options{
		Catalog: func() *config.Catalog { return cat },
		Kafka:   k,
		Pods:    providertest.Pods{},
		Cache:   provider.NewCache(provider.CacheOptions{RefreshInterval: time.Hour, StaleAfter: 2 * time.Hour, KeepAlive: 3 * time.Hour, FetchTimeout: time.Second}, nil, nil),
	})
	srv := providertest.NewServer(t, p)
	return func(ns, metric, selector string) (int, string) {
		return get(t, srv, "/apis/external.metrics.k8s.io/v1beta1/namespaces/"+ns+"/"+metric+"?labelSelector="+url.QueryEscape(selector))
	}
}

// A consumer group of another namespace answers exactly like a group of
// the caller's own that does not exist: same status, same body, byte for
// byte, and Kafka is never asked about it.
func TestKafkaForeignGroupAnswersLikeAnUnknownOne(t *testing.T) {
	// Namespace "team" does not own team-a.billing, which Kafka knows.
	foreignKafka := &groupsKafka{groups: map[string]float64{"team-a.billing": 7}}
	foreign := kafkaScopeServer(t, "", foreignKafka)
	// Here the catalog gives team-a.billing to "team", and Kafka does not
	// know it.
	unknownKafka := &groupsKafka{groups: map[string]float64{}}
	unknown := kafkaScopeServer(t, "    - namespace: team\n      groups: [team-a.billing]", unknownKafka)

	for _, sel := range []string{"group=team-a.billing", "group=team-a.billing,topic=team-a.orders"} {
		fc, fb := foreign("team", "kafka_consumer_lag", sel)
		uc, ub := unknown("team", "kafka_consumer_lag", sel)
		if fc != 404 || uc != 404 || fb != ub {
			t.Errorf("%s from namespace team:\n foreign group: %d %s\n unknown group: %d %s\nwant the same 404", sel, fc, fb, uc, ub)
		}
		want := `external metric \"kafka_consumer_lag\": consumer group \"team-a.billing\" on cluster \"main\": not found for namespace \"team\"`
		if !strings.Contains(fb, want) {
			t.Errorf("body %s lacks %s", fb, want)
		}
	}
	// Share groups obey the same rule.
	fc, fb := foreign("team", "kafka_share_group_backlog", "group=team-a.billing")
	uc, ub := unknown("team", "kafka_share_group_backlog", "group=team-a.billing")
	if fc != 404 || uc != 404 || fb != ub {
		t.Errorf("share group from namespace team:\n foreign: %d %s\n unknown: %d %s\nwant the same 404", fc, fb, uc, ub)
	}
	// Scale from zero reads a group that never existed (an earliest entry
	// with a topic), but only one the namespace owns: a foreign name is the
	// same 404, without asking Kafka.
	code, body := foreign("team", "kafka_consumer_lag_earliest", "group=team-a.reports,topic=team-a.orders")
	if want := `consumer group \"team-a.reports\" on cluster \"main\": not found for namespace \"team\"`; code != 404 || !strings.Contains(body, want) {
		t.Errorf("a foreign group that never existed, under earliest with a topic: %d %s, want 404 with %s", code, body, want)
	}
	if q := foreignKafka.asked(); len(q) != 0 {
		t.Errorf("Kafka was asked about a group the namespace does not own: %+v", q)
	}
	if q := unknownKafka.asked(); len(q) != 3 {
		t.Errorf("Kafka was asked %d times about an owned group, want 3 (one per selector and entry): %+v", len(q), q)
	}
	// The owner reads it.
	if code, body := foreign("team-a", "kafka_consumer_lag", "group=team-a.billing"); code != 200 || !strings.Contains(body, `"value":"7"`) {
		t.Errorf("team-a reading its own group: %d %s", code, body)
	}
}

// Which groups a namespace reads, and the allowed topics each query
// carries, follow the catalog.
func TestKafkaGroupOwnership(t *testing.T) {
	k := &groupsKafka{groups: map[string]float64{"team-a.billing": 1, "team.billing": 2, "billing": 3, "demo.audit": 4, "anything": 5}}
	get := kafkaScopeServer(t, "", k)
	for _, tc := range []struct {
		ns, metric, group string
		wantCode          int
		wantAllowed       []string // the query's AllowedTopics, when 200
	}{
		{"team-a", "kafka_consumer_lag", "team-a.billing", 200, []string{"team-a.*"}}, // the default allowedTopics
		{"team", "kafka_consumer_lag", "team.billing", 200, []string{"team.*"}},
		{"team", "kafka_consumer_lag", "team-a.billing", 404, nil},
		{"team-a", "kafka_consumer_lag", "team.billing", 404, nil},
		{"demo", "kafka_consumer_lag", "billing", 200, []string{"demo.*"}}, // kafka.groupOwners
		{"team-a", "kafka_consumer_lag", "billing", 404, nil},              // given to demo only
		{"demo", "kafka_consumer_lag", "anything", 404, nil},               // neither pattern nor owners
		{"demo", "kafka_consumer_lag_earliest", "demo.audit", 200, []string{"demo.*"}},
		{"team-a", "kafka_consumer_lag_earliest", "team-a.billing", 200, []string{"team-a.*"}},
		{"team-a", "kafka_share_group_backlog", "team-a.billing", 200, []string{"team-a.*"}},
		{"team", "kafka_share_group_backlog", "team-a.billing", 404, nil},
		{"platform", "platform_lag", "anything", 200, []string{"*"}}, // namespaced: false: any group, any topic
		{"team-a", "platform_lag", "anything", 404, nil},             // not a caller
	} {
		t.Run(tc.ns+" "+tc.metric+" "+tc.group, func(t *testing.T) {
			before := len(k.asked())
			code, body := get(tc.ns, tc.metric, "group="+tc.group)
			if code != tc.wantCode {
				t.Fatalf("%d %s, want %d", code, body, tc.wantCode)
			}
			asked := k.asked()[before:]
			if code != 200 {
				if len(asked) != 0 {
					t.Errorf("Kafka was asked %+v for a group the namespace may not read", asked)
				}
				return
			}
			if len(asked) != 1 || asked[0].Group != tc.group || !slices.Equal(asked[0].AllowedTopics, tc.wantAllowed) {
				t.Errorf("Kafka was asked %+v, want one query for group %q with allowed topics %q", asked, tc.group, tc.wantAllowed)
			}
		})
	}
}
