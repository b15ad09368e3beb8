package provider

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/hpa-signals/hpa-signals/explain"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
)

// explainKafka is the source step of a Kafka entry: what the cluster holds
// about the consumer group (its state, members and the topics it has
// committed offsets for) and whether the selector's topics can be read.
// QueryFor has already checked that the namespace owns the group, so
// nothing is asked about a group it does not own.
func (p *Provider) explainKafka(ctx context.Context, sq *SourceQuery) explain.Step {
	step := explain.Step{Name: explain.StepSource, Result: explain.Failed}
	in, ok := p.Kafka.(KafkaInspector)
	if !ok {
		return skipped(explain.StepSource, "not checked: this adapter's Kafka source cannot be inspected")
	}
	q := sq.Kafka
	d, err := in.DescribeGroup(ctx, q.Cluster, q.Group)
	switch {
	case errors.Is(err, kafka.ErrUnknownGroup):
		step.Summary = err.Error()
		step.Fix = "check the group's name in the HPA against the consumers' group.id (kafka-consumer-groups.sh --list); a group exists once a consumer joined it or committed offsets"
		return step
	case err != nil:
		step.Summary = "Kafka does not answer: " + p.redact(safeMessage(err))
		step.Fix = fmt.Sprintf("the adapter cannot read cluster %q: check the brokers and the catalog's tls and sasl settings (the adapter's log has the addresses); meanwhile the adapter serves its last value for up to --max-staleness, then the HPA holds its replica count", q.Cluster)
		return step
	}
	members := fmt.Sprintf("%d members", d.Members)
	if d.Members == 1 {
		members = "1 member"
	}
	state := fmt.Sprintf("group %q on cluster %q: state %s, %s", q.Group, q.Cluster, d.State, members)
	committed := "no committed offsets yet"
	if len(d.Topics) > 0 {
		parts := make([]string, len(d.Topics))
		for i, t := range d.Topics {
			parts[i] = fmt.Sprintf("%s (%d partitions)", t.Topic, t.Committed)
		}
		committed = "committed offsets on " + strings.Join(parts, ", ")
	}
	step.Details = []string{state, committed}
	reset := sq.Metric.Kafka.OffsetReset
	if len(d.Topics) == 0 && len(q.Topics) == 0 {
		step.Summary = fmt.Sprintf("consumer group %q has never committed an offset", q.Group)
		step.Fix = fmt.Sprintf("name its topic with the topic selector key (one matching %s): the adapter then counts its partitions by offsetReset %s; for a consumer that starts at the earliest offset use an entry with offsetReset: earliest (kafka_consumer_lag_earliest in manifests/base)",
			allowed(q.AllowedTopics), reset)
		return step
	}
	var notes []string
	for _, t := range q.Topics {
		if slices.ContainsFunc(d.Topics, func(o kafka.TopicOffsets) bool { return o.Topic == t }) {
			continue
		}
		if !matchesAny(q.AllowedTopics, t) {
			step.Summary = fmt.Sprintf("topic %q: group %q has no committed offsets for it, and the entry's allowedTopics (%s) do not allow it, so it is answered like a topic that does not exist", t, q.Group, allowed(q.AllowedTopics))
			step.Fix = fmt.Sprintf("name a topic the group consumes (%s), or ask the adapter's admin to allow it in the entry's allowedTopics", topicNames(d.Topics))
			return step
		}
		notes = append(notes, fmt.Sprintf("topic %q: no committed offsets; its partitions count by offsetReset %s until the group commits", t, reset))
	}
	return explain.Step{Name: explain.StepSource, Result: explain.OK, Summary: state + "; " + committed, Details: notes}
}

func topicNames(ts []kafka.TopicOffsets) string {
	if len(ts) == 0 {
		return "none yet"
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Topic
	}
	return strings.Join(names, ", ")
}

func allowed(globs []string) string {
	if len(globs) == 0 {
		return "none"
	}
	return strings.Join(quoted(globs), ", ")
}

func matchesAny(globs []string, name string) bool {
	return slices.ContainsFunc(globs, func(g string) bool {
		ok, err := path.Match(g, name)
		return ok && err == nil
	})
}
