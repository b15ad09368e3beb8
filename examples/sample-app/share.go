package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// shareMaxRecords caps the records one share fetch acquires for this
// replica. A replica holds what it acquired until it acknowledges it (the
// broker's acquisition lock is 30s by default), so at a bounded rate it
// should acquire little at a time and leave the rest of the backlog
// available to the other members.
const shareMaxRecords = 10

// runShare is Run for a member of share group cfg.Group (KIP-932), with
// franz-go's client: kafka-go has no share-group consumer. Records are
// acquired from the broker a few at a time, processed at the bounded rate
// and accepted; there are no offsets to commit. Acknowledgements are sent
// with the next fetch, and flushed at least every CommitInterval (counted
// by the commit metrics). On shutdown the records acquired but not
// processed are released, so another member gets them at once.
func (c *Consumer) runShare(ctx context.Context) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.ConsumeTopics(c.cfg.Topic),
		kgo.ShareGroup(c.cfg.Group),
		kgo.ShareMaxRecords(shareMaxRecords),
		kgo.ShareMaxRecordsStrict(),
	)
	if err != nil {
		return fmt.Errorf("share group %q: create client: %w", c.cfg.Group, err)
	}
	c.log.Info("consuming as a share group member", "brokers", c.cfg.Brokers, "topic", c.cfg.Topic, "group", c.cfg.Group, "rate", c.cfg.Rate)

	p := newPacer(c.cfg.Rate)
	nextFlush := time.Now().Add(c.cfg.CommitInterval)
	accepted := 0 // since the last flush
	var runErr error
poll:
	for ctx.Err() == nil {
		// Poll only until the next flush is due, so acknowledgements leave
		// on time even when the topic goes quiet.
		fctx, cancel := context.WithDeadline(ctx, nextFlush)
		fs := cl.PollRecords(fctx, shareMaxRecords)
		cancel()
		var fetchErr error
		fs.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = errors.Join(fetchErr, fmt.Errorf("partition %s/%d: %w", topic, partition, err))
			}
		})
		if fetchErr != nil {
			c.log.Warn("share fetch; retrying", "group", c.cfg.Group, "err", fetchErr)
		}
		for _, r := range fs.Records() {
			if err := p.wait(ctx); err != nil {
				break poll // shutting down: the rest is released below
			}
			c.consumed.Inc()
			if c.processed != nil {
				c.processed(kafka.Message{Topic: r.Topic, Partition: int(r.Partition), Offset: r.Offset, Value: r.Value})
			}
			r.Ack(kgo.AckAccept)
			accepted++
		}
		if !time.Now().Before(nextFlush) {
			if accepted > 0 && c.flushAcks(ctx, cl) == nil {
				accepted = 0
			}
			nextFlush = time.Now().Add(c.cfg.CommitInterval)
		}
	}

	c.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), c.cfg.GracePeriod)
	defer cancel()
	if err := c.flushAcks(sctx, cl); err != nil {
		runErr = fmt.Errorf("final acknowledgement: %w", err)
	}
	// Close releases the records of the last poll that were not accepted
	// above, so another member gets them at once.
	cl.Close()
	c.log.Info("consumer stopped")
	return runErr
}

// flushAcks sends the pending acknowledgements and waits for the broker.
// One cut short by shutdown is not an error worth counting: the final
// flush sends it.
func (c *Consumer) flushAcks(ctx context.Context, cl *kgo.Client) error {
	if err := cl.FlushAcks(ctx); err != nil {
		if ctx.Err() == nil {
			c.commitErrors.Inc()
			c.log.Warn("acknowledge records; retrying at the next interval", "group", c.cfg.Group, "err", err)
		}
		return fmt.Errorf("acknowledge records of topic %q for share group %q: %w", c.cfg.Topic, c.cfg.Group, err)
	}
	c.commits.Inc()
	return nil
}
