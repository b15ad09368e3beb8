package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
)

// ConsumerConfig configures consumer mode. parseFlags sets the defaults.
type ConsumerConfig struct {
	// Listen is the address of the /metrics, /healthz and /readyz server.
	Listen string
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Topic and Group are what is consumed, and as which consumer group.
	Topic, Group string
	// Rate caps the messages per second this replica processes; 0 means no
	// cap. The cap is what makes lag a function of the replica count.
	Rate float64
	// CommitInterval is how often processed offsets are committed. Offsets
	// are always committed on shutdown.
	CommitInterval time.Duration
	// GracePeriod bounds the final commit and leaving the group.
	GracePeriod time.Duration
	// Share makes the replica a member of share group Group (KIP-932,
	// --mode=share-consumer) instead of a consumer group: it acknowledges
	// records instead of committing offsets, and CommitInterval is how
	// often acknowledgements are flushed at least.
	Share bool
}

// addFlags registers the consumer flags; Listen and GracePeriod are the
// server's flags.
func (c *ConsumerConfig) addFlags(fs *flag.FlagSet) {
	fs.Func("brokers", "Consumer and produce modes: comma-separated bootstrap brokers host:port.", func(v string) error {
		c.Brokers = nil
		if v != "" {
			c.Brokers = strings.Split(v, ",")
		}
		return nil
	})
	fs.StringVar(&c.Topic, "topic", "", "Consumer and produce modes: topic to consume or produce to.")
	fs.StringVar(&c.Group, "group", "", "Consumer modes: consumer group, or share group in share-consumer mode.")
	fs.Float64Var(&c.Rate, "rate", 10, "Consumer modes: messages per second this replica processes at most; 0 means unlimited.")
	fs.DurationVar(&c.CommitInterval, "commit-interval", time.Second, "Consumer modes: how often processed offsets are committed, or acknowledgements flushed (and always on shutdown).")
}

func (c ConsumerConfig) validate() error {
	var errs []error
	if len(c.Brokers) == 0 || c.Topic == "" || c.Group == "" {
		mode := "consumer"
		if c.Share {
			mode = "share-consumer"
		}
		errs = append(errs, fmt.Errorf("%s mode needs --brokers, --topic and --group", mode))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("--rate must not be negative, got %g", c.Rate))
	}
	if c.CommitInterval <= 0 || c.GracePeriod <= 0 {
		errs = append(errs, errors.New("--commit-interval and --shutdown-grace-period must be positive"))
	}
	return errors.Join(errs...)
}

// Consumer is one consumer-group member that processes messages at a
// bounded rate and commits what it processed. Run it once.
type Consumer struct {
	cfg      ConsumerConfig
	log      *slog.Logger
	reg      *prometheus.Registry
	handler  http.Handler
	draining atomic.Bool

	consumed     prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter

	// processed, when set (by tests), is called after each message is
	// processed, before it is committed.
	processed func(kafka.Message)
}

// NewConsumer returns a consumer with its own metrics registry and HTTP
// handler; nothing runs until Run.
func NewConsumer(cfg ConsumerConfig, log *slog.Logger) *Consumer {
	c := &Consumer{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	labels := prometheus.Labels{"topic": cfg.Topic, "group": cfg.Group}
	c.consumed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sample_app_messages_consumed_total", Help: "Messages processed.", ConstLabels: labels,
	})
	c.commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sample_app_offset_commits_total", Help: "Successful offset commits.", ConstLabels: labels,
	})
	c.commitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sample_app_offset_commit_errors_total", Help: "Failed offset commits (retried at the next interval).", ConstLabels: labels,
	})
	c.reg.MustRegister(c.consumed, c.commits, c.commitErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if c.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	c.handler = mux
	return c
}

// Handler serves /metrics, /healthz and /readyz.
func (c *Consumer) Handler() http.Handler { return c.handler }

// Run consumes until ctx is done, then commits what it processed and
// leaves the group. A message fetched but not yet processed is not
// committed, so the group redelivers it.
func (c *Consumer) Run(ctx context.Context) error {
	if c.cfg.Share {
		return c.runShare(ctx)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.cfg.Brokers,
		GroupID: c.cfg.Group,
		Topic:   c.cfg.Topic,
		// A new group starts at the oldest message: a backlog produced
		// before the first replica started is still lag to work off.
		StartOffset: kafka.FirstOffset,
		MaxWait:     500 * time.Millisecond,
		// Commits are explicit (below), so an offset is committed only after
		// its message was processed.
		CommitInterval: 0,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn("kafka reader", "msg", fmt.Sprintf(msg, args...))
		}),
	})
	c.log.Info("consuming", "brokers", c.cfg.Brokers, "topic", c.cfg.Topic, "group", c.cfg.Group, "rate", c.cfg.Rate)

	pending := map[int]kafka.Message{} // the last processed message of each partition
	p := newPacer(c.cfg.Rate)
	nextCommit := time.Now().Add(c.cfg.CommitInterval)
	var runErr error
	for ctx.Err() == nil {
		// Fetch only until the next commit is due, so offsets are committed
		// on time even when the topic goes quiet. A fetch cut short loses
		// nothing: the message stays buffered in the reader.
		fctx, cancel := context.WithDeadline(ctx, nextCommit)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err == nil {
			if err := p.wait(ctx); err != nil {
				break // shutting down: m stays uncommitted and is redelivered
			}
			c.consumed.Inc()
			if c.processed != nil {
				c.processed(m)
			}
			pending[m.Partition] = m
		} else if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			runErr = fmt.Errorf("fetch from topic %q as group %q: %w", c.cfg.Topic, c.cfg.Group, err)
			break
		}
		if !time.Now().Before(nextCommit) {
			if err := c.commit(ctx, r, pending); err != nil {
				c.log.Warn("commit offsets; retrying at the next interval", "err", err)
			}
			nextCommit = time.Now().Add(c.cfg.CommitInterval)
		}
	}

	c.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), c.cfg.GracePeriod)
	defer cancel()
	if err := c.commit(sctx, r, pending); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("final commit: %w", err))
	}
	if err := r.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close the reader: %w", err))
	}
	c.log.Info("consumer stopped")
	return runErr
}

// commit commits the pending offsets and forgets them once committed.
func (c *Consumer) commit(ctx context.Context, r *kafka.Reader, pending map[int]kafka.Message) error {
	if len(pending) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, 0, len(pending))
	for _, m := range pending {
		msgs = append(msgs, m)
	}
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		c.commitErrors.Inc()
		return fmt.Errorf("commit %d partitions of topic %q for group %q: %w", len(msgs), c.cfg.Topic, c.cfg.Group, err)
	}
	c.commits.Inc()
	clear(pending)
	return nil
}

// pacer spaces calls to wait at least 1/rate apart. It gives no credit for
// idle time, so a replica never bursts above its rate after a pause. Not
// safe for concurrent use; Run owns it.
type pacer struct {
	interval time.Duration // 0: no limit
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) wait(ctx context.Context) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(p.interval)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RunConsumer serves the consumer's HTTP endpoints on cfg.Listen and
// consumes until ctx is done; it returns when both have stopped.
func RunConsumer(ctx context.Context, cfg ConsumerConfig, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	c := NewConsumer(cfg, log)
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	runErr := c.Run(ctx)

	sctx, cancel := context.WithTimeout(context.Background(), cfg.GracePeriod)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		runErr = errors.Join(runErr, fmt.Errorf("serve on %s: %w", ln.Addr(), err))
	}
	return runErr
}
