package kafka

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/hpa-signals/hpa-signals/config"
)

// Errors callers classify with errors.Is.
var (
	// ErrInvalidSelector means the HPA's metric selector cannot be turned
	// into a Query. The message names the offending key and the fix. The
	// provider answers 400.
	ErrInvalidSelector = errors.New("invalid metric selector")
	// ErrUnknownGroup means the consumer group does not exist on the
	// cluster: it has no committed offsets and the coordinator does not know
	// it. Errors wrapping it read as GroupNotFound. The provider answers 404.
	ErrUnknownGroup = errors.New("unknown consumer group")
	// ErrNoData means the question is valid but has no answer yet, e.g.
	// time_to_drain_seconds before two samples exist, or a record without a
	// timestamp for lag_seconds. The provider answers 404.
	ErrNoData = errors.New("no data")
	// ErrUnknownTopic means a topic named by the selector does not exist,
	// or is neither one the group has committed offsets for nor one of
	// Query.AllowedTopics: both read alike (see topicNotFound). It wraps
	// ErrNoData.
	ErrUnknownTopic = fmt.Errorf("unknown topic: %w", ErrNoData)
)

// notFoundError is a not-found answer whose text is the whole message, so
// that answers that must not be told apart are equal strings.
type notFoundError struct {
	msg  string
	kind error
}

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return e.kind }

// GroupNotFound is the error of a consumer group that does not exist on
// cluster; it wraps ErrUnknownGroup. The provider answers a group the
// caller's namespace may not read with this same error, so an answer never
// tells another namespace's group from one that does not exist.
func GroupNotFound(cluster, group string) error {
	return &notFoundError{fmt.Sprintf("consumer group %q on cluster %q: not found", group, cluster), ErrUnknownGroup}
}

// topicNotFound is the error of a topic the selector names that does not
// exist, or that the group may not be asked about: whether such a topic
// exists is none of the caller's business. It wraps ErrUnknownTopic.
func topicNotFound(cluster, group, topic string) error {
	return &notFoundError{fmt.Sprintf("topic %q of group %q on cluster %q: not found", topic, group, cluster), ErrUnknownTopic}
}

// Selector keys an HPA's metric selector may set.
const (
	keyGroup   = "group"
	keyTopic   = "topic"
	keyCluster = "cluster"
	keyWindow  = "window"
)

// MaxWindow bounds the window selector key; a value outside [1s,
// MaxWindow] is an invalid selector.
const MaxWindow = time.Hour

// Query is one question about one consumer group. Build it with
// QueryFromSelector from a catalog entry, which config has defaulted and
// validated; a Query is a value and safe to share.
type Query struct {
	// Cluster is the configured cluster name. Required.
	Cluster string
	// Group is the consumer group. Required.
	Group string
	// Topics restricts the evaluation to these topics, sorted. Empty means
	// every topic the group has committed offsets for, never other topics.
	// A topic the group has no committed offsets for must match
	// AllowedTopics, or it is answered like a topic that does not exist.
	Topics []string
	// AllowedTopics are globs (path.Match syntax) of the topics Topics may
	// name although the group has no committed offsets for them: the
	// catalog entry's allowedTopics for the caller's namespace
	// (config.KafkaMetric.AllowedTopicsFor). Nil allows none.
	AllowedTopics []string
	// Signal is what Evaluate computes (the entry's kafka.signal).
	Signal config.KafkaSignal
	// OffsetReset is config.OffsetResetLatest or config.OffsetResetEarliest
	// (the entry's kafka.offsetReset); it decides how a partition without a
	// committed offset counts.
	OffsetReset string
	// StallWindow is how long a lagging partition's committed offset must
	// stand still to count as stalled (the entry's kafka.stallWindow).
	StallWindow time.Duration
	// DrainWindow is the span time_to_drain_seconds measures the consume
	// rate over (the entry's kafka.drainWindow).
	DrainWindow time.Duration
	// Window, when set (selector key window, lag signals only), makes the
	// value the maximum of the values read within the last Window instead
	// of the value read now.
	Window time.Duration
	// Entry is the catalog entry's name: the offset history behind
	// time_to_drain_seconds and stalled_partitions is kept per entry.
	Entry string
	// IsolationLevel is config.IsolationReadUncommitted or
	// config.IsolationReadCommitted (the entry's kafka.isolationLevel);
	// read_committed counts up to the last stable offset and skips records
	// of aborted transactions.
	IsolationLevel string
}

// Key is the canonical form of q, usable as a cache key: equal queries
// (topics and allowed topics in any order) have equal keys. Queries that
// allow different topics have different keys, since one may be answered
// where the other is not.
func (q Query) Key() string {
	topics := append([]string(nil), q.Topics...)
	sort.Strings(topics)
	allowed := append([]string(nil), q.AllowedTopics...)
	sort.Strings(allowed)
	var b strings.Builder
	for _, s := range []string{q.Entry, q.Cluster, q.Group, string(q.Signal), q.OffsetReset, q.StallWindow.String(), q.DrainWindow.String(), q.Window.String(), q.IsolationLevel, strconv.Itoa(len(topics))} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.WriteString(strings.Join(topics, "\x00"))
	b.WriteByte(0)
	b.WriteString(strconv.Itoa(len(allowed)))
	for _, a := range allowed {
		b.WriteByte(0)
		b.WriteString(a)
	}
	return b.String()
}

// stateKey identifies the committed-offset history of one group over one
// topic set as one catalog entry reads it.
func (q Query) stateKey() string {
	topics := append([]string(nil), q.Topics...)
	sort.Strings(topics)
	return q.Entry + "\x00" + q.Cluster + "\x00" + q.Group + "\x00" + strings.Join(topics, "\x00")
}

// QueryFromSelector builds the Query for kafka entry m of a catalog (as
// config decoded, defaulted and validated it) from an HPA's metric
// selector. Keys: group (required, "="), topic (optional, "=" or
// "in"), cluster (optional when clusterNames has exactly one entry, "=").
// Any other key or operator, a missing group or an unknown cluster is an
// error wrapping ErrInvalidSelector that names the key and the fix.
func QueryFromSelector(m *config.Metric, clusterNames []string, sel labels.Selector) (Query, error) {
	q := Query{
		Signal:         m.Kafka.Signal,
		OffsetReset:    m.Kafka.OffsetReset,
		StallWindow:    m.Kafka.StallWindow.Duration,
		DrainWindow:    m.Kafka.DrainWindow.Duration,
		Entry:          m.Name,
		IsolationLevel: m.Kafka.IsolationLevel,
	}

	var reqs labels.Requirements
	if sel != nil {
		var selectable bool
		reqs, selectable = sel.Requirements()
		if !selectable {
			return Query{}, fmt.Errorf("%w: the selector matches nothing; set group=<consumer group>", ErrInvalidSelector)
		}
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		key, op, values := r.Key(), r.Operator(), r.Values().List()
		if seen[key] {
			return Query{}, fmt.Errorf("%w: key %q is given more than once; give it once (use %q in (a,b) for several topics)", ErrInvalidSelector, key, keyTopic)
		}
		seen[key] = true
		isEq := op == selection.Equals || op == selection.DoubleEquals
		switch key {
		case keyGroup:
			if !isEq || len(values) != 1 || values[0] == "" {
				return Query{}, fmt.Errorf("%w: key %q supports only %q with one consumer group, got operator %q", ErrInvalidSelector, key, "=", op)
			}
			q.Group = values[0]
		case keyTopic:
			if !isEq && op != selection.In {
				return Query{}, fmt.Errorf("%w: key %q supports %q or %q, got operator %q", ErrInvalidSelector, key, "=", "in", op)
			}
			q.Topics = values // sorted by Values().List()
		case keyCluster:
			if !isEq || len(values) != 1 {
				return Query{}, fmt.Errorf("%w: key %q supports only %q with one cluster name, got operator %q", ErrInvalidSelector, key, "=", op)
			}
			q.Cluster = values[0]
		case keyWindow:
			w, err := windowOf(q.Signal, isEq, values)
			if err != nil {
				return Query{}, err
			}
			q.Window = w
		default:
			return Query{}, fmt.Errorf("%w: key %q is not supported by kafka metric %q; use %q (required), %q, %q and %q", ErrInvalidSelector, key, m.Name, keyGroup, keyTopic, keyCluster, keyWindow)
		}
	}
	if q.Group == "" {
		return Query{}, fmt.Errorf("%w: key %q is required: add matchLabels {group: <consumer group>} to the HPA's metric selector", ErrInvalidSelector, keyGroup)
	}
	switch {
	case q.Cluster == "" && len(clusterNames) == 1:
		q.Cluster = clusterNames[0]
	case q.Cluster == "":
		return Query{}, fmt.Errorf("%w: key %q is required when several clusters are configured; set it to one of %s", ErrInvalidSelector, keyCluster, quoteList(clusterNames))
	default:
		found := false
		for _, n := range clusterNames {
			found = found || n == q.Cluster
		}
		if !found {
			return Query{}, fmt.Errorf("%w: cluster %q is not configured; set %q to one of %s", ErrInvalidSelector, q.Cluster, keyCluster, quoteList(clusterNames))
		}
	}
	return q, nil
}

// windowOf parses the window key: one duration ("5m") from 1s to
// MaxWindow, on the signals whose value is a level (lag, lag_max,
// lag_seconds and the share backlogs).
func windowOf(signal config.KafkaSignal, isEq bool, values []string) (time.Duration, error) {
	switch signal {
	case config.KafkaLag, config.KafkaLagMax, config.KafkaLagSeconds, config.KafkaShareBacklog, config.KafkaShareBacklogMax, config.KafkaShareBacklogSeconds:
	default:
		return 0, fmt.Errorf("%w: key %q applies to the signals lag, lag_max, lag_seconds, share_backlog, share_backlog_max and share_backlog_seconds, not %s; remove it", ErrInvalidSelector, keyWindow, signal)
	}
	if !isEq || len(values) != 1 {
		return 0, fmt.Errorf("%w: key %q supports only %q with one duration, e.g. window=5m", ErrInvalidSelector, keyWindow, "=")
	}
	w, err := time.ParseDuration(values[0])
	if err != nil || w < time.Second || w > MaxWindow {
		return 0, fmt.Errorf("%w: key %q: %q is not a duration from 1s to %s; use e.g. window=5m", ErrInvalidSelector, keyWindow, values[0], MaxWindow)
	}
	return w, nil
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "(none configured)"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
