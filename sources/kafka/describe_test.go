package kafka

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hpa-signals/hpa-signals/config"
)

func TestDescribeGroup(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode brokerMode) {
		b := newBroker(t, mode)
		b.createTopic("orders", 3)
		b.createTopic("refunds", 2)
		b.produce("orders", 0, 5, nil)
		b.commit("shop.billing", map[string]map[int32]int64{"orders": {0: 2, 1: 0, 2: 0}, "refunds": {1: 0}})
		b.joinWithoutCommit("shop.idle", "orders")
		s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
		ctx := context.Background()

		t.Run("committed offsets by topic", func(t *testing.T) {
			d, err := s.DescribeGroup(ctx, "main", "shop.billing")
			if err != nil {
				t.Fatal(err)
			}
			want := []TopicOffsets{{"orders", 3}, {"refunds", 1}}
			if d.Cluster != "main" || d.Group != "shop.billing" || !reflect.DeepEqual(d.Topics, want) || d.Members != 0 {
				t.Errorf("got %+v, want topics %v and no members", d, want)
			}
		})

		t.Run("a group that joined and never committed", func(t *testing.T) {
			d, err := s.DescribeGroup(ctx, "main", "shop.idle")
			if err != nil {
				t.Fatal(err)
			}
			if d.State != "Empty" || len(d.Topics) != 0 {
				t.Errorf("got %+v, want state Empty without committed topics", d)
			}
		})

		t.Run("a member that is consuming", func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...), kgo.ConsumerGroup("shop.live"), kgo.ConsumeTopics("orders"),
				kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for got := 0; got == 0 && pctx.Err() == nil; {
				got = cl.PollFetches(pctx).NumRecords()
			}
			d, err := s.DescribeGroup(ctx, "main", "shop.live")
			if err != nil {
				t.Fatal(err)
			}
			if d.State != "Stable" || d.Members != 1 || len(d.Topics) != 0 {
				t.Errorf("got %+v, want a Stable group of 1 member without committed topics", d)
			}
			// Evaluate asks the same when a group has no offsets: a live
			// member's metadata (franz-go's consumer protocol) must not fail it.
			_, err = s.Evaluate(ctx, Query{Cluster: "main", Group: "shop.live"})
			if !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "has no committed offsets yet") {
				t.Errorf("Evaluate of a live group without offsets: %v, want no data: no committed offsets yet", err)
			}
		})

		t.Run("unknown group", func(t *testing.T) {
			_, err := s.DescribeGroup(ctx, "main", "shop.nothing")
			if !errors.Is(err, ErrUnknownGroup) || err.Error() != GroupNotFound("main", "shop.nothing").Error() {
				t.Errorf("err = %v, want the GroupNotFound error", err)
			}
		})

		t.Run("unknown cluster", func(t *testing.T) {
			if _, err := s.DescribeGroup(ctx, "other", "shop.billing"); !errors.Is(err, ErrInvalidSelector) {
				t.Errorf("err = %v, want ErrInvalidSelector", err)
			}
		})
	})
}
