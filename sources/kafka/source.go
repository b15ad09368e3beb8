// Package kafka owns reading consumer-group signals straight from Kafka
// brokers: one long-lived kafka-go client per configured cluster, group
// lag that is retention-aware and batched per leader broker, lag in
// seconds, time to drain and stalled partitions. It answers Query values
// that the provider builds from an HPA's metric selector
// (QueryFromSelector). A query reads only topics its group has committed
// offsets for or that Query.AllowedTopics allows; any other topic is
// answered like one that does not exist, without reading it. Caching and
// which groups a namespace may read are the provider's.
//
// Cost of one evaluation, warm: one OffsetFetch to the cached group
// coordinator and one ListOffsets (end offsets) per leader broker;
// metadata comes from the transport's cache and log-start offsets from the
// cluster's, both kept for MetadataTTL. An evaluation that meets new
// partitions or expired log starts sends a second ListOffsets (log-start
// offsets) to their leaders, after the first: at most two per broker.
// lag_seconds adds one Fetch per lagging partition, and one more
// ListOffsets per leader if retention moved a log start past a fetched
// offset since it was cached.
//
// Permissions (ACLs): Describe on the group (OffsetFetch, DescribeGroups),
// Describe on the topics (Metadata, ListOffsets), and for lag_seconds Read
// on the topics (Fetch).
package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/hpa-signals/hpa-signals/config"
)

// Options tune a Source. The zero value is usable.
type Options struct {
	// Clock gives sample times, record ages, rates and stall windows, and
	// ages the cached log-start offsets. Nil means the real clock.
	Clock clock.PassiveClock
	// Registerer receives the source's own metrics. Nil means they are
	// kept but not exposed.
	Registerer prometheus.Registerer
	// LagSecondsConcurrency bounds the Fetch requests one lag_seconds or
	// share_backlog_seconds evaluation has in flight. Zero means 8.
	LagSecondsConcurrency int
	// StateTTL drops the offset history of a group nobody evaluated for
	// this long. Zero means 1h; it should exceed the longest stall window.
	StateTTL time.Duration
}

// Result is one evaluation's answer.
type Result struct {
	// Value is the signal's value (see config.KafkaSignal).
	Value float64
	// Time is when the offsets were read.
	Time time.Time
	// Partitions are the partitions evaluated, sorted by topic and
	// partition. Callers must not modify them.
	Partitions []PartitionLag
}

// Source evaluates consumer-group signals on the configured clusters. It
// is safe for concurrent use; Close it when done.
type Source struct {
	clusters    map[string]*cluster
	clock       clock.PassiveClock
	concurrency int
	tracker     *tracker
	windows     *windows
	metrics     *metrics
	cancel      context.CancelFunc
}

// New creates one long-lived client per cluster of a catalog that config
// has defaulted and validated (names unique, settings set). It reads TLS
// files and SASL passwords now (errors name the file or variable, never
// the secret) and does not connect: an unreachable cluster fails its
// evaluations, not New.
func New(clusters []config.KafkaCluster, opts Options) (*Source, error) {
	if err := checkWireTypes(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{
		clusters:    make(map[string]*cluster, len(clusters)),
		clock:       opts.Clock,
		concurrency: opts.LagSecondsConcurrency,
		tracker:     newTracker(orDefault(opts.StateTTL, defaultStateTTL)),
		windows:     newWindows(orDefault(opts.StateTTL, defaultStateTTL)),
		cancel:      cancel,
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.concurrency <= 0 {
		s.concurrency = defaultLagSecondsConcurrency
	}
	names := make([]string, 0, len(clusters))
	for _, c := range clusters {
		cl, err := newCluster(ctx, c, s.clock)
		if err != nil {
			cancel()
			return nil, err
		}
		s.clusters[c.Name] = cl
		names = append(names, c.Name)
	}
	m, err := newMetrics(opts.Registerer, names)
	if err != nil {
		cancel()
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// Close stops the clients' background work and closes their connections.
func (s *Source) Close() error {
	s.cancel()
	for _, c := range s.clusters {
		c.close()
	}
	return nil
}

// Evaluate reads the group's offsets and computes q.Signal:
//   - lag: messages behind, summed over partitions;
//   - lag_max: the worst partition's lag;
//   - lag_seconds: now minus the timestamp of the oldest unconsumed record,
//     worst partition; 0 when caught up (see firstReceivedIn for records
//     without timestamps);
//   - time_to_drain_seconds: lag / consume rate, the rate measured from
//     committed-offset progress over q.DrainWindow of the entry's history
//     (tracker.observe); ErrNoData until the history is long enough; 0
//     without lag; NoProgressDrainSeconds when lagging with no commit for
//     q.StallWindow;
//   - stalled_partitions: partitions with lag whose committed offset has
//     not moved for q.StallWindow.
//
// With q.Window, the lag signals answer the maximum of the values this
// query read within the window, this one included.
//
// Errors: ErrUnknownGroup (GroupNotFound), ErrUnknownTopic (a named topic
// that does not exist, or that the group has no committed offsets for and
// q.AllowedTopics does not allow: the same text), ErrNoData,
// ErrInvalidSelector (unknown cluster), or a broker/transport error naming
// the cluster. A per-partition
// broker error fails the whole evaluation; no value is computed from a
// partial read.
func (s *Source) Evaluate(ctx context.Context, q Query) (Result, error) {
	c := s.clusters[q.Cluster]
	if c == nil {
		err := fmt.Errorf("kafka: %w: cluster %q is not configured", ErrInvalidSelector, q.Cluster)
		s.metrics.observe(q.Cluster, err)
		return Result{}, err
	}
	r, err := s.evaluate(ctx, c, q)
	s.metrics.observe(c.name, err)
	return r, err
}

func (s *Source) evaluate(ctx context.Context, c *cluster, q Query) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()
	parts, err := c.readGroup(ctx, q, s.metrics)
	if err != nil {
		return Result{}, err
	}
	// Lag counts from the first record a consumer would receive: past
	// transaction markers, and records of aborted transactions under
	// read_committed (records.go). lag_seconds reads that record of every
	// lagging partition for its time. A share group's backlog is the
	// broker's or end - start offset (share.go), left as it is;
	// share_backlog_seconds reads the first record at or after the start
	// offset of every partition with a backlog for its time.
	earliest := q.OffsetReset == config.OffsetResetEarliest
	readCommitted := q.IsolationLevel == config.IsolationReadCommitted
	switch {
	case q.Signal == config.KafkaShareBacklogSeconds:
		if err := c.dateShareBacklog(ctx, q.Group, parts, earliest, readCommitted, s.concurrency, s.metrics); err != nil {
			return Result{}, err
		}
	case !q.Signal.IsShare():
		if err := c.settleLag(ctx, q.Group, parts, earliest, readCommitted, q.Signal == config.KafkaLagSeconds, s.concurrency, s.metrics); err != nil {
			return Result{}, err
		}
	}
	now := s.clock.Now()
	var d drain
	if q.Signal == config.KafkaTimeToDrain || q.Signal == config.KafkaStalledPartitions {
		d = s.tracker.observe(q.stateKey(), parts, now, q.DrainWindow, q.StallWindow)
	}

	r := Result{Time: now, Partitions: parts}
	var total, worst int64
	stalled := 0
	for _, p := range parts {
		total += p.Lag
		worst = max(worst, p.Lag)
		if p.Stalled {
			stalled++
		}
	}
	switch q.Signal {
	case config.KafkaLag, config.KafkaShareBacklog:
		r.Value = float64(total)
	case config.KafkaLagMax, config.KafkaShareBacklogMax:
		r.Value = float64(worst)
	case config.KafkaLagSeconds, config.KafkaShareBacklogSeconds:
		r.Value = lagSeconds(parts, now)
	case config.KafkaStalledPartitions:
		r.Value = float64(stalled)
	case config.KafkaTimeToDrain:
		v, ok := timeToDrain(total, d)
		if !ok {
			return Result{}, fmt.Errorf("kafka: time to drain of group %q on cluster %q: %w: the consume rate needs %s of history (drainWindow), or %s (stallWindow) to tell a stopped group",
				q.Group, c.name, ErrNoData, q.DrainWindow, q.StallWindow)
		}
		r.Value = v
	default:
		return Result{}, fmt.Errorf("kafka: unknown signal %q; build the query with QueryFromSelector from a catalog entry", q.Signal)
	}
	if q.Window > 0 {
		r.Value = s.windows.max(q.Key(), r.Value, now, q.Window)
	}
	return r, nil
}
