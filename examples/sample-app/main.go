// Command sample-app is the workload hpa-signals' examples and end-to-end
// tests scale, and the tool that drives it in a cluster. It runs in one of
// five modes:
//
//   - server (default): an HTTP service instrumented with client_golang the
//     way the catalog presets expect (http_requests_total,
//     http_request_duration_seconds, the Go and process collectors). Its
//     /work handler runs on a fixed pool of workers, so latency rises once
//     concurrency exceeds the pool, and can hold goroutines for a while so
//     go_goroutines follows load. On SIGTERM it turns /readyz false, drains
//     in-flight requests within a bounded grace period and exits.
//   - consumer: a Kafka consumer-group member that consumes one topic at a
//     bounded per-replica rate and commits offsets, so consumer lag grows
//     when producers outpace the replicas and shrinks when the HPA adds some.
//   - share-consumer: the same as a member of a share group (KIP-932,
//     franz-go's client): it acknowledges each record it processed instead
//     of committing offsets, so the group's backlog follows the replica count.
//   - load: an HTTP load generator that sends --rps requests per second to
//     <--target-url>/work (optionally holding goroutines there), keeping the
//     rate on average with a bounded number of requests in flight.
//   - produce: produces --messages records to --topic, round robin over its
//     partitions, and exits once they are acknowledged.
//
// Server and the consumer modes serve /metrics, /healthz and /readyz on --listen.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// config is every flag, grouped by mode.
type config struct {
	mode     string
	server   ServerConfig
	consumer ConsumerConfig
	load     LoadConfig
	produce  ProduceConfig
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("sample-app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.mode, "mode", "server", "server (HTTP service), consumer (Kafka consumer group member), share-consumer (Kafka share group member), load (HTTP load generator) or produce (one burst of Kafka records).")

	s, k := &c.server, &c.consumer
	s.addFlags(fs)
	k.addFlags(fs)
	c.load.addFlags(fs)
	c.produce.addFlags(fs)

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// Flags several modes share are registered once, by the server and the
	// consumer.
	k.Listen, k.GracePeriod = s.Listen, s.GracePeriod
	c.produce.Brokers, c.produce.Topic = k.Brokers, k.Topic
	switch c.mode {
	case "server":
		return c, s.validate()
	case "consumer":
		return c, k.validate()
	case "share-consumer":
		k.Share = true
		return c, k.validate()
	case "load":
		return c, c.load.validate()
	case "produce":
		return c, c.produce.validate()
	default:
		return nil, fmt.Errorf("--mode %q: want server, consumer, share-consumer, load or produce", c.mode)
	}
}

func run(args []string, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sample-app:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	switch c.mode {
	case "consumer", "share-consumer":
		err = RunConsumer(ctx, c.consumer, log)
	case "load":
		err = RunLoad(ctx, c.load, log)
	case "produce":
		err = RunProduce(ctx, c.produce, log)
	default:
		err = NewServer(c.server, log).ListenAndServe(ctx)
	}
	if err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}
