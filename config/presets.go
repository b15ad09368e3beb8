package config

import (
	"fmt"
	"maps"
)

// windowParameter is the rate window of the Prometheus presets.
var windowParameter = Parameter{
	Name:    "window",
	Default: "2m",
	Pattern: "[1-9][0-9]{0,3}(s|m|h)",
}

// httpResources maps the objects a promhttp-instrumented service is usually
// scraped through to the labels Prometheus' Kubernetes service discovery
// relabels them to.
var httpResources = map[string]string{
	"services":         "service",
	"deployments.apps": "deployment",
}

// presets returns fresh copies of the built-in entries, for any Go service
// instrumented with client_golang: promhttp middleware and the default Go
// collector, and for Kafka consumer groups.
func presets() []Metric {
	all := []API{APIPods, APIObject, APIExternal}
	out := []Metric{{
		Name:           "http_requests_per_second",
		Description:    "HTTP requests per second served (promhttp http_requests_total).",
		APIs:           all,
		Source:         SourcePrometheus,
		Query:          `sum by (<<.GroupBy>>) (rate(http_requests_total{<<.LabelMatchers>>}[<<.Params.window>>]))`,
		Parameters:     []Parameter{windowParameter},
		SelectorLabels: []string{"handler", "code", "method"},
		Resources:      maps.Clone(httpResources),
	}}
	for _, q := range []struct{ name, phi string }{{"p50", "0.5"}, {"p90", "0.9"}, {"p99", "0.99"}} {
		out = append(out, Metric{
			Name:        "http_request_duration_seconds_" + q.name,
			Description: fmt.Sprintf("%s quantile of HTTP request latency in seconds (promhttp http_request_duration_seconds histogram).", q.phi),
			APIs:        all,
			Source:      SourcePrometheus,
			Query: fmt.Sprintf("histogram_quantile(%s, sum by (<<.GroupByWith \"le\">>) "+
				"(rate(http_request_duration_seconds_bucket{<<.LabelMatchers>>}[<<.Params.window>>])))", q.phi),
			Parameters:     []Parameter{windowParameter},
			SelectorLabels: []string{"handler", "code", "method"},
			Resources:      maps.Clone(httpResources),
		})
	}
	out = append(out, Metric{
		Name:        "go_goroutines",
		Description: "Goroutines (Go collector go_goroutines): per pod on the pods API, summed otherwise.",
		APIs:        all,
		Source:      SourcePrometheus,
		Query:       `sum by (<<.GroupBy>>) (go_goroutines{<<.LabelMatchers>>})`,
		Resources:   maps.Clone(httpResources),
	})
	for _, k := range []struct {
		name   string
		signal KafkaSignal
		desc   string
	}{
		{"kafka_consumer_lag", KafkaLag, "Consumer group lag in messages, summed over the selected topics' partitions."},
		{"kafka_consumer_lag_max", KafkaLagMax, "Largest lag of one partition, in messages."},
		{"kafka_consumer_lag_seconds", KafkaLagSeconds, "How far behind the consumer group is, in seconds."},
		{"kafka_consumer_time_to_drain_seconds", KafkaTimeToDrain, "Estimated seconds for the group to consume its lag at its recent rate."},
		{"kafka_consumer_stalled_partitions", KafkaStalledPartitions, "Lagging partitions whose committed offset has not moved for the stall window."},
		{"kafka_share_group_backlog", KafkaShareBacklog, "Share group records not yet acknowledged or archived, summed over the selected topics' partitions."},
		{"kafka_share_group_backlog_max", KafkaShareBacklogMax, "Largest share group backlog of one partition, in records."},
		{"kafka_share_group_backlog_seconds", KafkaShareBacklogSeconds, "Age of the oldest share group record not yet acknowledged or archived, in seconds."},
	} {
		out = append(out, Metric{
			Name:        k.name,
			Description: k.desc,
			APIs:        []API{APIExternal},
			Source:      SourceKafka,
			Kafka:       &KafkaMetric{Signal: k.signal},
		})
	}
	for i := range out {
		out[i].setDefaults()
	}
	return out
}
