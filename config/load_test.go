package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// invalidFixtures maps each testdata/invalid-*.yaml to its exact error text,
// one problem per line.
var invalidFixtures = []struct {
	file string
	want []string
}{
	{
		file: "invalid-apis-sources.yaml",
		want: []string{
			`line 3: metrics[0].apis[1]: unknown API "Pods"; use pods, object or external`,
			`line 3: metrics[0].apis[2]: "pods" is listed twice; list each API once`,
			`line 8: metrics[1].source: unknown source "graphite"; use prometheus or kafka`,
		},
	},
	{
		file: "invalid-duplicate-keys.yaml",
		want: []string{
			`line 6: metrics[0].name: duplicate key, first set on line 2; keep one`,
			`line 9: metrics[0].resources["services"]: duplicate key, first set on line 8; keep one`,
		},
	},
	{
		file: "invalid-durations.yaml",
		want: []string{
			`line 5: kafka.clusters[0].requestTimeout: time: unknown unit " minute" in duration "1 minute"; write a Go duration such as 30s, 5m or 1h30m`,
			`line 6: kafka.clusters[0].idleTimeout: expected a single value, got a list`,
		},
	},
	{
		file: "invalid-kafka-clusters.yaml",
		want: []string{
			`line 3: kafka.clusters[0].name: missing; name the cluster, e.g. name: main (HPAs select it with the selector key cluster)`,
			`line 3: kafka.clusters[0].brokers: missing; list at least one bootstrap broker as host:port, e.g. [kafka-0.kafka:9092]`,
			`line 5: kafka.clusters[1].brokers[1]: "kafka" is not host:port: address kafka: missing port in address; write e.g. kafka-0.kafka:9092`,
			`line 5: kafka.clusters[1].brokers[2]: ":9092" is not host:port: missing host; write e.g. kafka-0.kafka:9092`,
			`line 5: kafka.clusters[1].brokers[3]: "kafka:http" is not host:port: invalid port "http"; write e.g. kafka-0.kafka:9092`,
			`line 6: kafka.clusters[1].clientID: empty; remove the key to use "hpa-signals" or set a client ID`,
			`line 7: kafka.clusters[1].dialTimeout: must be positive, got -1s; remove the key to use the default`,
			`line 9: kafka.clusters[1].tls: certFile and keyFile must be set together for a client certificate; set both or neither`,
			`line 11: kafka.clusters[1].sasl.mechanism: unknown mechanism "scram-sha-256"; use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`,
			`line 11: kafka.clusters[1].sasl.username: missing; set the SASL user name`,
			`line 11: kafka.clusters[1].sasl: set exactly one of passwordFile and passwordEnv; the password itself never goes in the catalog`,
			`line 14: kafka.clusters[2].name: duplicate name "main", first used by kafka.clusters[1]; names must be unique`,
			`line 17: kafka.clusters[2].sasl.mechanism: missing; use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`,
			`line 17: kafka.clusters[2].sasl: set exactly one of passwordFile and passwordEnv; the password itself never goes in the catalog`,
			`line 18: kafka.clusters[3].name: "-bad-" is not a valid label value; use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
		},
	},
	{
		file: "invalid-kafka-entries.yaml",
		want: []string{
			`line 2: metrics[0].kafka: missing; a kafka entry needs a kafka block, e.g. kafka: {signal: lag}`,
			`line 6: metrics[1].apis[0]: kafka entries are served on the external API only; set apis: [external]`,
			`line 8: metrics[1].query: not used by a kafka entry; remove it (kafka entries take the selector keys group, topic, cluster and window)`,
			`line 9: metrics[1].selectorLabels: not used by a kafka entry; remove it (kafka entries take the selector keys group, topic, cluster and window)`,
			`line 11: metrics[1].kafka.signal: unknown signal "offset"; use one of lag, lag_max, lag_seconds, time_to_drain_seconds, stalled_partitions, share_backlog, share_backlog_max, share_backlog_seconds`,
			`line 12: metrics[1].kafka.offsetReset: unknown value "smallest"; use latest or earliest`,
			`line 13: metrics[1].kafka.groupPattern: "[{namespace}" is not a valid glob: syntax error in pattern; use *, ?, [...] and {namespace}, e.g. "{namespace}.*"`,
			`line 14: metrics[1].kafka.stallWindow: must be positive, got -1m0s; remove the key to use the default`,
			`line 15: metrics[1].kafka.isolationLevel: unknown value "committed"; use read_uncommitted or read_committed`,
			`line 16: metrics[1].kafka.drainWindow: must be positive and at most 1h0m0s, got 2h0m0s; remove the key to use the default (2m0s)`,
			`line 21: metrics[2].kafka.signal: missing; set one of lag, lag_max, lag_seconds, time_to_drain_seconds, stalled_partitions, share_backlog, share_backlog_max, share_backlog_seconds`,
			`line 27: metrics[3].kafka: set on a prometheus entry; remove it, or set source: kafka`,
		},
	},
	{
		file: "invalid-kafka-scope.yaml",
		want: []string{
			`line 3: kafka.groupOwners[0].namespace: "Team_A" is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
			`line 4: kafka.groupOwners[0].groups[1]: "[legacy" is not a valid glob: syntax error in pattern; use *, ? and [...], e.g. "legacy-*"`,
			`line 4: kafka.groupOwners[0].groups[2]: "{namespace}.jobs" uses {namespace}, which groupOwners does not replace; write the groups of namespace "Team_A" as they are named, or use the entries' groupPattern`,
			`line 4: kafka.groupOwners[0].groups[3]: empty; write a consumer group name or glob`,
			`line 5: kafka.groupOwners[1].namespace: missing; name the namespace that owns the groups, e.g. namespace: demo`,
			`line 5: kafka.groupOwners[1].groups: missing; list the consumer groups (names or globs) the namespace owns, e.g. groups: [billing, "legacy-*"]`,
			`line 12: metrics[0].kafka.groupPattern: "{namespace}-*" lets namespace "team" read the groups of namespace "team-a" ("team-a-billing" matches both); follow {namespace} with a character namespace names cannot contain, e.g. "{namespace}.*", or list the groups under kafka.groupOwners`,
			`line 18: metrics[1].kafka.groupPattern: "shared-*" does not contain {namespace}, so every namespace would own the same groups; write a pattern with {namespace}, e.g. "{namespace}.*", list the groups under kafka.groupOwners, or set namespaced: false with callerNamespaces`,
			`line 24: metrics[2].kafka.groupPattern: "{namespace}.{namespace}" contains {namespace} 2 times; use it once, e.g. "{namespace}.*"`,
			`line 30: metrics[3].kafka.groupPattern: "*{namespace}.*" has a wildcard before {namespace}, so it lets namespace "a" read the groups of namespace "team-a" ("team-a.billing" matches both); write only literal text before {namespace}, e.g. "{namespace}.*"`,
			`line 36: metrics[4].kafka.groupPattern: "kafka-{namespace}*" lets namespace "team" read the groups of namespace "team-a" ("kafka-team-a-billing" matches both); follow {namespace} with a character namespace names cannot contain, e.g. "kafka-{namespace}.*", or list the groups under kafka.groupOwners`,
			`line 42: metrics[5].kafka.allowedTopics[2]: "{namespace}-events" follows {namespace} with "-", which namespace names may contain; follow {namespace} with a character namespace names cannot contain, e.g. "{namespace}.events"`,
			`line 42: metrics[5].kafka.allowedTopics[3]: "[x" is not a valid glob: syntax error in pattern; use *, ?, [...] and {namespace}, e.g. "{namespace}.*"`,
			`line 42: metrics[5].kafka.allowedTopics[4]: empty; write a topic name or glob, e.g. "{namespace}.*"`,
			`line 51: metrics[6].kafka.allowedTopics[1]: "[bad" is not a valid glob: syntax error in pattern; use *, ?, [...] and {namespace}, e.g. "{namespace}.*"`,
		},
	},
	{
		file: "invalid-labels-resources-namespaces.yaml",
		want: []string{
			`line 3: prometheus.labels.namespace: "k8s-namespace" is not a valid Prometheus label name; use letters, digits and underscores, not starting with a digit`,
			`line 9: metrics[0].selectorLabels[0]: "app.kubernetes.io/name" is not a valid Prometheus label name; use letters, digits and underscores, or "*" for any valid label name`,
			`line 9: metrics[0].selectorLabels[3]: "handler" is listed twice; list each label once`,
			`line 11: metrics[0].resources["Deployments"]: "Deployments" is not a resource name; write the lowercase plural resource with its API group unless it is core, e.g. services or deployments.apps`,
			`line 12: metrics[0].resources["namespaces"]: namespaces always map to prometheus.labels.namespace; remove this entry`,
			`line 13: metrics[0].resources["services"]: "service-name" is not a valid Prometheus label name; name the label holding the object's name, e.g. deployment`,
			`line 14: metrics[0].externalNamespaces: only used by the external API; add external to apis or remove externalNamespaces`,
			`line 20: metrics[1].resources: only used by the object API; add object to apis or remove resources`,
			`line 21: metrics[1].externalNamespaces[0]: "Monitoring" is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
			`line 21: metrics[1].externalNamespaces[2]: "a.b" is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
		},
	},
	{
		file: "invalid-max-range.yaml",
		want: []string{
			`line 2: prometheus.maxRange: must be positive, got -1h0m0s; remove the key to use the default 1h`,
		},
	},
	{
		file: "invalid-missing.yaml",
		want: []string{
			`line 2: metrics[0].name: missing; every entry needs the metric name HPAs use, e.g. name: orders_per_second`,
			`line 2: metrics[0].apis: missing; list where the entry is served: pods, object and/or external`,
			`line 2: metrics[0].source: missing; set prometheus or kafka`,
			`line 3: metrics[1].query: missing; a prometheus entry needs a PromQL template, e.g. sum by (<<.GroupBy>>) (rate(orders_total{<<.LabelMatchers>>}[2m]))`,
			`line 6: metrics[2].kafka: missing; a kafka entry needs a kafka block, e.g. kafka: {signal: lag}`,
		},
	},
	{
		file: "invalid-multiple-documents.yaml",
		want: []string{
			`line 2: more than one YAML document; a catalog is one document, remove the --- separator`,
		},
	},
	{
		file: "invalid-names.yaml",
		want: []string{
			`line 2: metrics[0].name: "orders-per-second" is not a valid metric name; use letters, digits, underscores and colons, not starting with a digit`,
			`line 6: metrics[1].name: "2xx_rate" is not a valid metric name; use letters, digits, underscores and colons, not starting with a digit`,
			`line 14: metrics[3].name: duplicate name "orders", first used by metrics[2]; names must be unique (an entry named like a preset replaces the preset)`,
		},
	},
	{
		file: "invalid-namespaced.yaml",
		want: []string{
			`line 3: metrics[0].apis[0]: a namespaced: false entry is served on the external API only; set apis: [external]`,
			`line 6: metrics[0].namespaced: false needs callerNamespaces: the entry reads data no namespace owns, so list the namespaces that may read it, or ["*"] for every namespace`,
			`line 7: metrics[0].externalNamespaces: not used by a namespaced: false entry, which reads no namespace's data; remove it`,
			`line 12: metrics[1].namespaced: false needs callerNamespaces: the entry reads data no namespace owns, so list the namespaces that may read it, or ["*"] for every namespace`,
			`line 18: metrics[2].callerNamespaces[1]: "Team_A" is not a namespace name; use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit, or "*" for every namespace`,
			`line 23: metrics[3].callerNamespaces: only used with namespaced: false; remove it (a namespaced entry is readable by every namespace, for its own data)`,
		},
	}, {
		file: "invalid-not-a-mapping.yaml",
		want: []string{
			`line 1: expected a mapping of key: value lines, got a list`,
		},
	},
	{
		file: "invalid-parameters.yaml",
		want: []string{
			`line 7: metrics[0].parameters[0].pattern: missing; every parameter needs a pattern so selector values cannot change the query's shape, e.g. pattern: '[1-9][0-9]{0,3}(s|m|h)'`,
			`line 8: metrics[0].parameters[1].name: duplicate parameter "window"; declare each parameter once`,
			"line 11: metrics[0].parameters[2].pattern: does not compile: error parsing regexp: missing closing ]: `[0-9+m`; write an RE2 regular expression such as [1-9][0-9]*m",
			`line 13: metrics[0].parameters[3].default: "5x" does not match the pattern "[0-9]+m"; change the default or the pattern`,
			`line 15: metrics[0].parameters[4].name: "my-param" is not a valid parameter name; use letters, digits and underscores, not starting with a digit`,
			`line 17: metrics[0].parameters[5].name: missing; name the parameter, e.g. name: window (HPAs set it as a selector key)`,
			`line 18: metrics[0].parameters[6].name: "handler" is also listed in selectorLabels; a selector key is either a parameter or a label, remove it from one`,
		},
	},
	{
		file: "invalid-ranges.yaml",
		want: []string{
			`line 2: prometheus.maxRange: 1m30s is shorter than the 2m range the presets http_request_duration_seconds_p50, http_request_duration_seconds_p90, http_request_duration_seconds_p99 use; raise it to at least 2m, replace those presets with entries of the same name, or set presets: false`,
			`line 11: metrics[1].query: the range [5m] of a{namespace="<namespace>"}[5m] is longer than prometheus.maxRange (1m30s); shorten it, or raise prometheus.maxRange`,
			`line 15: metrics[2].query: the subquery range [10m] of sum(rate(b{namespace="<namespace>"}[1m]))[10m:30s] is longer than prometheus.maxRange (1m30s); shorten it, or raise prometheus.maxRange`,
			`line 19: metrics[3].query: rendered with window=2m, the range [2m] of c{namespace="<namespace>"}[2m] is longer than prometheus.maxRange (1m30s); shorten the range or the parameter's default, or raise prometheus.maxRange`,
		},
	},
	{
		file: "invalid-scope.yaml",
		want: []string{
			`line 5: metrics[0].query: the vector selector queue_depth does not carry <<.LabelMatchers>>, so it would read every namespace's data; write queue_depth{<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`,
			`line 9: metrics[1].query: the vector selector b does not carry <<.LabelMatchers>>, so it would read every namespace's data; write b{<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`,
			`line 13: metrics[2].query: the vector selector b{job="x"} does not carry <<.LabelMatchers>>, so it would read every namespace's data; write b{job="x",<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`,
			`line 17: metrics[3].query: the vector selector c does not carry <<.LabelMatchers>>, so it would read every namespace's data; write c{<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`,
			`line 21: metrics[4].query: the vector selector d does not carry <<.LabelMatchers>>, so it would read every namespace's data; write d{<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`,
			`line 25: metrics[5].query: the vector selector e{namespace="default"} does not carry <<.LabelMatchers>>, so it would read every namespace's data; write e{namespace="default",<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`,
		},
	},
	{
		file: "invalid-series-labels.yaml",
		want: []string{
			`line 5: metrics[0].query: uses .Series, but the entry sets no series; set series: to the Prometheus metric name the query reads, or write the name in the query`,
			`line 9: metrics[1].series: "http-requests-total" is not a valid Prometheus metric name; use letters, digits, underscores and colons, not starting with a digit`,
			`line 14: metrics[2].labels.namespace: "kubernetes.namespace" is not a valid Prometheus label name; use letters, digits and underscores, not starting with a digit, or remove it to use prometheus.labels`,
			`line 19: metrics[3].query: does not render: template: values_of_the_pod:1:70: executing "values_of_the_pod" at <.LabelValuesByName.pod>: map has no entry for key "pod"; use only .LabelMatchers, .GroupBy, .GroupByWith "label", .GroupBySlice, .LabelValuesByName, .Series and .Params.<name>`,
		},
	},
	{
		file: "invalid-shapes.yaml",
		want: []string{
			`line 1: presets: expected true or false, got "no"`,
			`line 3: metrics[0].name: expected a single value, got a list`,
			`line 4: metrics[0].apis: expected a list, got "pods"; write a YAML list such as [a, b] or one "- item" per line`,
			`line 7: metrics[0].resources: expected a mapping of key: value lines, got a list`,
			`line 13: metrics[1].kafka.stallWindow: time: missing unit in duration "5"; write a Go duration such as 30s, 5m or 1h30m`,
		},
	},
	{
		file: "invalid-templates.yaml",
		want: []string{
			`line 5: metrics[0].query: template does not parse: template: unparsable:1: bad character U+003E '>'; write the query as a Go template with << >> delimiters, e.g. sum by (<<.GroupBy>>) (rate(x_total{<<.LabelMatchers>>}[<<.Params.window>>]))`,
			`line 9: metrics[1].query: uses .Params.window, which is not declared; declare it under parameters (name, pattern, default) or remove it from the query`,
			`line 13: metrics[2].query: does not render: template: unknown_field:1:8: executing "unknown_field" at <.Labels>: can't evaluate field Labels in type config.templateData; use only .LabelMatchers, .GroupBy, .GroupByWith "label", .GroupBySlice, .LabelValuesByName, .Series and .Params.<name>`,
			`line 17: metrics[3].query: renders invalid PromQL when .GroupBy is "" and .LabelMatchers is namespace="<namespace>": 1:33: parse error: unexpected "," in grouping opts, expected label; the query was: histogram_quantile(0.9, sum by (, le) (rate(x_bucket{namespace="<namespace>"}[5m]))); make the template valid with and without grouping and matchers (write by (<<.GroupByWith "le">>), not by (<<.GroupBy>>, le))`,
			`line 21: metrics[4].query: renders a range vector, not an instant vector: x{namespace="<namespace>"}[5m]; wrap range selectors in a function such as rate(...)`,
		},
	},
	{
		file: "invalid-unknown-keys.yaml",
		want: []string{
			`line 4: prometheus.labels.container: unknown key; known keys are namespace, pod`,
			`line 9: kafka.clusters[0].clientId: unknown key; did you mean "clientID"? (keys are case-sensitive)`,
			`line 15: metrics[0].parameter: unknown key; known keys are apis, callerNamespaces, description, externalNamespaces, kafka, labels, name, namespaced, parameters, query, resources, selectorLabels, series, source`,
		},
	},
	{
		file: "invalid-yaml-syntax.yaml",
		want: []string{
			`yaml: line 1: did not find expected '-' indicator; fix the YAML syntax`,
		},
	},
}

func TestParseInvalidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tc := range invalidFixtures {
		listed = append(listed, filepath.Join("testdata", tc.file))
	}
	slices.Sort(files)
	if !slices.Equal(files, listed) {
		t.Fatalf("fixtures on disk %v, in the table %v: add each file to invalidFixtures", files, listed)
	}
	for _, tc := range invalidFixtures {
		t.Run(tc.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatalf("Load returned a catalog with %d metrics, want an error", len(c.Metrics))
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("error text:\n%s\nwant:\n%s", got, want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("errors.As(%T, *FieldError) = false", err)
			}
		})
	}
}

func TestParseValidFixtures(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, c *Catalog)
	}{
		{"valid-empty.yaml", func(t *testing.T, c *Catalog) {
			if got, want := names(c), names(Default()); !slices.Equal(got, want) {
				t.Errorf("metrics %v, want the presets %v", got, want)
			}
		}},
		{"valid-full.yaml", func(t *testing.T, c *Catalog) {
			if l := c.Prometheus.Labels; l != (PrometheusLabels{Namespace: "kubernetes_namespace", Pod: "kubernetes_pod_name"}) {
				t.Errorf("labels %+v", l)
			}
			k := c.Kafka.Clusters[0]
			if k.ClientID != "adapter" || k.DialTimeout.Duration != 2*time.Second || k.RequestTimeout.Duration != 3*time.Second ||
				k.MetadataTTL.Duration != time.Minute || k.IdleTimeout.Duration != 10*time.Minute {
				t.Errorf("cluster main %+v: explicit values not kept", k)
			}
			if k.TLS == nil || k.TLS.KeyFile != "/etc/kafka/tls.key" || k.SASL == nil || k.SASL.Mechanism != "SCRAM-SHA-512" {
				t.Errorf("cluster main TLS %+v SASL %+v", k.TLS, k.SASL)
			}
			if l := c.Kafka.Clusters[1]; l.ClientID != DefaultKafkaClientID || l.SASL.PasswordEnv != "LEGACY_KAFKA_PASSWORD" {
				t.Errorf("cluster legacy %+v", l)
			}
			if c.Prometheus.MaxRange.Duration != 30*time.Minute {
				t.Errorf("maxRange %s, want 30m", c.Prometheus.MaxRange.Duration)
			}
			want := append(names(Default()), "orders_per_second", "shared_queue_depth", "orders_lag")
			if got := names(c); !slices.Equal(got, want) {
				t.Errorf("metrics %v, want %v (override in place, new entries appended)", got, want)
			}
			m := c.Lookup("http_requests_per_second")
			if m.Description != "Requests per second, 5xx excluded." || !slices.Equal(m.APIs, []API{APIPods, APIExternal}) || m.Resources != nil {
				t.Errorf("override not applied as a whole: %+v", m)
			}
			q, err := c.Lookup("orders_per_second").RenderQuery(QueryData{Params: map[string]string{"scale": "3"}})
			if want := `sum by () (rate(orders_total{}[2m])) * 3`; err != nil || q != want {
				t.Errorf("orders_per_second renders %q, %v; want %q", q, err, want)
			}
			if m := c.Lookup("shared_queue_depth"); m.IsNamespaced() || !m.AllowsCaller("shop") || m.AllowsCaller("team-a") {
				t.Errorf("shared_queue_depth: namespaced %v, callers %v", m.IsNamespaced(), m.CallerNamespaces)
			}
			if k := c.Lookup("orders_lag").Kafka; !reflect.DeepEqual(*k, KafkaMetric{Signal: KafkaLag, OffsetReset: "earliest", GroupPattern: "kafka-{namespace}.*",
				AllowedTopics: []string{"{namespace}.*", "shared-orders"}, StallWindow: Duration{10 * time.Minute}, DrainWindow: Duration{30 * time.Second}, IsolationLevel: IsolationReadCommitted}) {
				t.Errorf("orders_lag kafka %+v", k)
			}
			if o := c.Kafka.GroupOwners; !reflect.DeepEqual(o, []KafkaGroupOwner{{Namespace: "shop", Groups: []string{"billing", "legacy-*"}}}) {
				t.Errorf("groupOwners %+v", o)
			}
		}},
		{"valid-no-presets.yaml", func(t *testing.T, c *Catalog) {
			if got := names(c); !slices.Equal(got, []string{"queue_depth"}) {
				t.Errorf("metrics %v, want only the file's", got)
			}
		}},
		{"valid-anchors.yaml", func(t *testing.T, c *Catalog) {
			m := c.Lookup("jobs_failed_per_second")
			if m == nil || len(m.Parameters) != 1 || m.Parameters[0] != (Parameter{Name: "window", Default: "30s", Pattern: "[1-9][0-9]*s"}) {
				t.Fatalf("alias not resolved: %+v", m)
			}
			if !slices.Equal(m.APIs, []API{APIExternal}) {
				t.Errorf("apis %v", m.APIs)
			}
			if p := c.Lookup("jobs_per_second").Parameters[1]; p.Default != "4" {
				t.Errorf("number default decoded as %q, want \"4\"", p.Default)
			}
		}},
	}
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	if len(files) != len(tests) {
		t.Errorf("%d valid fixtures on disk, %d tested", len(files), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func names(c *Catalog) []string {
	var out []string
	for _, m := range c.Metrics {
		out = append(out, m.Name)
	}
	return out
}

func TestDefault(t *testing.T) {
	c := Default()
	want := []string{
		"http_requests_per_second",
		"http_request_duration_seconds_p50",
		"http_request_duration_seconds_p90",
		"http_request_duration_seconds_p99",
		"go_goroutines",
		"kafka_consumer_lag",
		"kafka_consumer_lag_max",
		"kafka_consumer_lag_seconds",
		"kafka_consumer_time_to_drain_seconds",
		"kafka_consumer_stalled_partitions",
		"kafka_share_group_backlog",
		"kafka_share_group_backlog_max",
		"kafka_share_group_backlog_seconds",
	}
	if got := names(c); !slices.Equal(got, want) {
		t.Errorf("presets %v, want %v", got, want)
	}
	if l := c.Prometheus.Labels; l != (PrometheusLabels{Namespace: "namespace", Pod: "pod"}) {
		t.Errorf("labels %+v", l)
	}
	if d := c.Prometheus.MaxRange.Duration; d != time.Hour {
		t.Errorf("maxRange %s, want 1h", d)
	}
	if len(c.Kafka.Clusters) != 0 {
		t.Errorf("clusters %v, want none", c.Kafka.Clusters)
	}
	// The presets pass the same validation as file entries.
	for i := range c.Metrics {
		p := &problems{prefix: c.Metrics[i].Name}
		c.Metrics[i].validate(p, c.Prometheus, true)
		for _, e := range p.errs {
			t.Errorf("preset invalid: %v", e)
		}
	}
	for _, m := range c.Metrics {
		if m.Source == SourceKafka {
			if m.Kafka.OffsetReset != "latest" || m.Kafka.GroupPattern != "{namespace}.*" || m.Kafka.StallWindow.Duration != 5*time.Minute {
				t.Errorf("%s kafka defaults %+v", m.Name, m.Kafka)
			}
		}
	}
	// Each call returns a catalog of its own.
	Default().Metrics[0].Resources["services"] = "changed"
	if got := Default().Metrics[0].Resources["services"]; got != "service" {
		t.Errorf("presets share state between catalogs: %q", got)
	}
}

func TestKafkaClusterDefaults(t *testing.T) {
	c, err := Parse([]byte("kafka:\n  clusters:\n    - name: main\n      brokers: [k:9092]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Kafka.Clusters[0]
	want := KafkaCluster{
		Name: "main", Brokers: []string{"k:9092"}, ClientID: "hpa-signals",
		DialTimeout: Duration{5 * time.Second}, RequestTimeout: Duration{10 * time.Second},
		MetadataTTL: Duration{30 * time.Second}, IdleTimeout: Duration{5 * time.Minute},
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("cluster\n%s\nwant\n%s", g, w)
	}
}

func TestOverrideAndExtend(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"override keeps the preset's position", `
metrics:
  - name: go_goroutines
    apis: [external]
    source: prometheus
    query: max(go_goroutines{<<.LabelMatchers>>})
`, names(Default())},
		{"new entries come after the presets in file order", `
metrics:
  - {name: b, apis: [external], source: prometheus, query: "sum(b{<<.LabelMatchers>>})"}
  - {name: a, apis: [external], source: prometheus, query: "sum(a{<<.LabelMatchers>>})"}
`, append(names(Default()), "b", "a")},
		{"presets false drops them", `
presets: false
metrics:
  - {name: a, apis: [external], source: prometheus, query: "sum(a{<<.LabelMatchers>>})"}
`, []string{"a"}},
		{"a preset name can become a kafka entry", `
metrics:
  - {name: go_goroutines, apis: [external], source: kafka, kafka: {signal: lag}}
`, names(Default())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := names(c); !slices.Equal(got, tc.want) {
				t.Errorf("metrics %v, want %v", got, tc.want)
			}
			for i, m := range c.Metrics {
				if got := c.Lookup(m.Name); got != &c.Metrics[i] {
					t.Errorf("Lookup(%q) = %p, want %p", m.Name, got, &c.Metrics[i])
				}
			}
		})
	}
	c, _ := Parse([]byte(tests[0].file))
	q, err := c.Lookup("go_goroutines").RenderQuery(QueryData{LabelMatchers: `namespace="a"`})
	if want := `max(go_goroutines{namespace="a"})`; err != nil || q != want {
		t.Errorf("override renders %q, %v; want %q", q, err, want)
	}
	if c.Lookup("nope") != nil {
		t.Error("Lookup of an unknown name is not nil")
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // substring: encoding/json words its own part
	}{
		{`"30s"`, 30 * time.Second, ""},
		{`"1h30m"`, 90 * time.Minute, ""},
		{`"5"`, 0, `time: missing unit in duration "5"; write a Go duration such as 30s, 5m or 1h30m`},
		{`30`, 0, "cannot unmarshal number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || d.Duration != tc.want {
				t.Fatalf("got %v, %v; want %v", d, err, tc.want)
			}
		})
	}
	out, err := json.Marshal(struct{ D Duration }{Duration{90 * time.Second}})
	if err != nil || string(out) != `{"D":"1m30s"}` {
		t.Errorf("Marshal = %s, %v", out, err)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want an os.ErrNotExist", err)
	}
	_, err = Parse([]byte("metrics:\n  - name: a\n    apis: [pods]\n    source: prometheus\n    query: up\n    sorce: x\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 6 || fe.Path != "metrics[0].sorce" {
		t.Errorf("FieldError %+v from %v", fe, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWith checks how entries added to a catalog after loading (those a
// prometheus-adapter rule yields) rank: the file's entries first, then the
// added ones, then presets, which they replace.
func TestWith(t *testing.T) {
	c, err := Parse([]byte(`
metrics:
  - {name: orders, apis: [external], source: prometheus, query: "sum(orders{<<.LabelMatchers>>})"}
`))
	if err != nil {
		t.Fatal(err)
	}
	entry := func(name, series string) Metric {
		return Metric{Name: name, APIs: []API{APIPods}, Source: SourcePrometheus, Series: series,
			Query: "sum by (<<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[2m]))"}
	}
	got, err := c.With([]Metric{
		entry("http_requests_per_second", "http_requests_total"), // replaces the preset
		entry("orders", "orders_total"),                          // the file's entry stays
		entry("jobs_per_second", "jobs_total"),                   // added
		entry("jobs_per_second", "jobs_v2_total"),                // the first of a name stays
		entry("broken", "bad-name"),                              // invalid: left out
	})
	wantErr := []string{
		`orders: the catalog already has an entry of this name, which is served instead; rename one of them`,
		`jobs_per_second: the catalog already has an entry of this name, which is served instead; rename one of them`,
		`broken.series: "bad-name" is not a valid Prometheus metric name; use letters, digits, underscores and colons, not starting with a digit`,
	}
	if err == nil || err.Error() != strings.Join(wantErr, "\n") {
		t.Errorf("With error:\n%v\nwant:\n%s", err, strings.Join(wantErr, "\n"))
	}
	if want := append(names(c), "jobs_per_second"); !slices.Equal(names(got), want) {
		t.Errorf("metrics %v, want %v", names(got), want)
	}
	for name, series := range map[string]string{"http_requests_per_second": "http_requests_total", "orders": "", "jobs_per_second": "jobs_total"} {
		if m := got.Lookup(name); m == nil || m.Series != series {
			t.Errorf("Lookup(%q) = %+v, want the entry with series %q", name, m, series)
		}
	}
	q, err := got.Lookup("jobs_per_second").RenderQuery(QueryData{LabelMatchers: `namespace="a"`, GroupBy: []string{"pod"}})
	if want := `sum by (pod) (rate(jobs_total{namespace="a"}[2m]))`; err != nil || q != want {
		t.Errorf("added entry renders %q, %v; want %q", q, err, want)
	}
	if c.Lookup("jobs_per_second") != nil || c.Lookup("http_requests_per_second").Series != "" {
		t.Error("With changed the catalog it was called on")
	}
	// A preset replaced by the file is the file's entry: With keeps it.
	c2, err := Parse([]byte(`
metrics:
  - {name: go_goroutines, apis: [external], source: prometheus, query: "max(go_goroutines{<<.LabelMatchers>>})"}
`))
	if err != nil {
		t.Fatal(err)
	}
	got2, err := c2.With([]Metric{entry("go_goroutines", "go_goroutines")})
	if err == nil || got2.Lookup("go_goroutines").Series != "" {
		t.Errorf("With replaced an entry the file wrote (error %v)", err)
	}
}

// TestReadmeFileFormat parses the catalog of the README's file format
// section, so the documented keys are the ones the decoder knows.
func TestReadmeFileFormat(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n### File format\n")
	_, block, _ := strings.Cut(section, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if _, err := Parse([]byte(block)); err != nil {
		t.Errorf("the README's file format example does not load:\n%v", err)
	}
}
