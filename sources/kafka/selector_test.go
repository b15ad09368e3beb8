package kafka

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
)

func TestQueryFromSelector(t *testing.T) {
	m := kafkaEntry(t, "signal: lag, offsetReset: earliest, stallWindow: 1m, isolationLevel: read_committed")
	one := []string{"main"}
	two := []string{"main", "dr"}
	for _, tc := range []struct {
		name     string
		sel      string
		clusters []string
		want     Query
		wantErr  string // substring; also must wrap ErrInvalidSelector
	}{
		{"group only, one cluster", "group=billing", one,
			Query{Cluster: "main", Group: "billing", Signal: config.KafkaLag, OffsetReset: "earliest", StallWindow: time.Minute, DrainWindow: 2 * time.Minute, Entry: "m", IsolationLevel: config.IsolationReadCommitted}, ""},
		{"one topic", "group=billing,topic=orders", one,
			Query{Cluster: "main", Group: "billing", Topics: []string{"orders"}, Signal: config.KafkaLag, OffsetReset: "earliest", StallWindow: time.Minute, DrainWindow: 2 * time.Minute, Entry: "m", IsolationLevel: config.IsolationReadCommitted}, ""},
		{"topics with in, sorted", "group=billing,topic in (payments,orders)", one,
			Query{Cluster: "main", Group: "billing", Topics: []string{"orders", "payments"}, Signal: config.KafkaLag, OffsetReset: "earliest", StallWindow: time.Minute, DrainWindow: 2 * time.Minute, Entry: "m", IsolationLevel: config.IsolationReadCommitted}, ""},
		{"double equals", "group==billing,cluster==dr", two,
			Query{Cluster: "dr", Group: "billing", Signal: config.KafkaLag, OffsetReset: "earliest", StallWindow: time.Minute, DrainWindow: 2 * time.Minute, Entry: "m", IsolationLevel: config.IsolationReadCommitted}, ""},
		{"missing group", "topic=orders", one, Query{}, `key "group" is required`},
		{"empty selector", "", one, Query{}, `key "group" is required`},
		{"group with in", "group in (a,b)", one, Query{}, `key "group" supports only "="`},
		{"group not equal", "group!=a", one, Query{}, `key "group" supports only "="`},
		{"topic notin", "group=a,topic notin (x)", one, Query{}, `key "topic" supports "=" or "in"`},
		{"topic exists", "group=a,topic", one, Query{}, `key "topic" supports "=" or "in"`},
		{"unknown key", "group=a,namespace=x", one, Query{}, `key "namespace" is not supported`},
		{"cluster required with two", "group=a", two, Query{}, `set it to one of "main", "dr"`},
		{"unknown cluster", "group=a,cluster=eu", two, Query{}, `cluster "eu" is not configured; set "cluster" to one of "main", "dr"`},
		{"cluster with in", "group=a,cluster in (main,dr)", two, Query{}, `key "cluster" supports only "="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := labels.Parse(tc.sel)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.sel, err)
			}
			got, err := QueryFromSelector(m, tc.clusters, sel)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidSelector) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want ErrInvalidSelector containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("query = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestQueryKeyIsCanonical(t *testing.T) {
	a := fromCatalog(t, Query{Cluster: "c", Group: "g"})
	a.Topics = []string{"b", "a"}
	b := fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a", "b"}})
	if a.Key() != b.Key() {
		t.Errorf("equal queries have different keys %q and %q", a.Key(), b.Key())
	}
	for _, other := range []Query{
		fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a"}}),
		fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a", "b"}, Signal: config.KafkaLagMax}),
		fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a", "b"}, OffsetReset: config.OffsetResetEarliest}),
		fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a", "b"}, StallWindow: time.Minute}),
		fromCatalog(t, Query{Cluster: "c2", Group: "g", Topics: []string{"a", "b"}}),
		// A query that allows a topic may be answered where a with none is not.
		fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a", "b"}, AllowedTopics: []string{"team-a.*"}}),
		withWindow(fromCatalog(t, Query{Cluster: "c", Group: "g", Topics: []string{"a", "b"}}), time.Minute),
	} {
		if other.Key() == a.Key() {
			t.Errorf("%+v has the same key as %+v", other, a)
		}
	}
	// Topic names with commas cannot come from a selector; the key still
	// tells them apart.
	joined := b
	joined.Topics = []string{"a,b"}
	if joined.Key() == a.Key() {
		t.Errorf("%+v has the same key as %+v", joined, a)
	}
	x := fromCatalog(t, Query{Cluster: "c", Group: "g", AllowedTopics: []string{"y.*", "x.*"}})
	y := fromCatalog(t, Query{Cluster: "c", Group: "g", AllowedTopics: []string{"x.*", "y.*"}})
	if x.Key() != y.Key() {
		t.Errorf("allowed topics in another order give another key: %q, %q", x.Key(), y.Key())
	}
	if a.Topics[0] != "b" {
		t.Error("Key reordered the query's own topics")
	}
}

func TestQueryFromSelectorWindow(t *testing.T) {
	for _, tc := range []struct {
		settings, sel string
		want          time.Duration
		wantErr       string
	}{
		{"signal: lag", "group=g,window=5m", 5 * time.Minute, ""},
		{"signal: lag_max", "group=g,window=90s", 90 * time.Second, ""},
		{"signal: lag_seconds", "group=g,window=1h", time.Hour, ""},
		{"signal: lag", "group=g", 0, ""},
		{"signal: lag", "group=g,window=2h", 0, `key "window": "2h" is not a duration from 1s to 1h0m0s; use e.g. window=5m`},
		{"signal: lag", "group=g,window=500ms", 0, `"500ms" is not a duration from 1s`},
		{"signal: lag", "group=g,window=soon", 0, `"soon" is not a duration`},
		{"signal: lag", "group=g,window in (1m,2m)", 0, `key "window" supports only "=" with one duration`},
		{"signal: time_to_drain_seconds", "group=g,window=5m", 0, `key "window" applies to the signals lag, lag_max, lag_seconds, share_backlog, share_backlog_max and share_backlog_seconds, not time_to_drain_seconds; remove it`},
		{"signal: stalled_partitions", "group=g,window=5m", 0, `not stalled_partitions`},
	} {
		t.Run(tc.settings+" "+tc.sel, func(t *testing.T) {
			sel, err := labels.Parse(tc.sel)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.sel, err)
			}
			q, err := QueryFromSelector(kafkaEntry(t, tc.settings), []string{"main"}, sel)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidSelector) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want ErrInvalidSelector containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || q.Window != tc.want {
				t.Fatalf("window = %v, %v; want %v", q.Window, err, tc.want)
			}
		})
	}
}

func withWindow(q Query, w time.Duration) Query {
	q.Window = w
	return q
}
