package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProduceConfig configures produce mode: one burst of records, then exit.
type ProduceConfig struct {
	// Brokers are the bootstrap brokers, host:port (--brokers, shared with
	// consumer mode).
	Brokers []string
	// Topic receives the records (--topic, shared with consumer mode). It
	// must exist.
	Topic string
	// Messages is how many records are produced.
	Messages int
	// Timeout bounds the whole burst, connecting included.
	Timeout time.Duration
}

func (c *ProduceConfig) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Messages, "messages", 1000, "Produce mode: records to produce, round robin over the topic's partitions, before exiting.")
	fs.DurationVar(&c.Timeout, "produce-timeout", 2*time.Minute, "Produce mode: bound on the whole burst; past it the command fails.")
}

func (c ProduceConfig) validate() error {
	var errs []error
	if len(c.Brokers) == 0 || c.Topic == "" {
		errs = append(errs, errors.New("produce mode needs --brokers and --topic"))
	}
	if c.Messages < 1 {
		errs = append(errs, fmt.Errorf("--messages must be at least 1, got %d", c.Messages))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--produce-timeout must be positive, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// RunProduce produces cfg.Messages records to cfg.Topic, spread round robin
// over its partitions (so every consumer of a group gets a share), each
// stamped with the time it was produced, and returns once the broker has
// acknowledged all of them.
func RunProduce(ctx context.Context, cfg ProduceConfig, log *slog.Logger) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		// A burst is sent at once; lingering would only delay it.
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(max(cfg.Messages, 10_000)),
	)
	if err != nil {
		return fmt.Errorf("produce to %q: create client: %w", cfg.Topic, err)
	}
	defer cl.Close()

	began := time.Now()
	recs := make([]*kgo.Record, cfg.Messages)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: cfg.Topic, Value: []byte("order-" + strconv.Itoa(i)), Timestamp: began}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d records to %q: %w", cfg.Messages, cfg.Topic, err)
	}
	log.Info("produced", "topic", cfg.Topic, "records", cfg.Messages, "took", time.Since(began).Round(time.Millisecond))
	return nil
}
