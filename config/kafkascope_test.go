package config

import (
	"slices"
	"strings"
	"testing"
)

// namespaces whose names are prefixes or suffixes of each other: the pairs
// a spoofable pattern confuses.
var spoofNamespaces = []string{"a", "team", "team-a", "team-a-b", "teamx", "team1", "x-team"}

// claimants returns, for each candidate name, the namespaces whose
// rendering of glob matches it.
func claimants(glob string) map[string][]string {
	out := map[string][]string{}
	for _, owner := range spoofNamespaces {
		for _, prefix := range []string{"", "kafka-", "x-"} {
			for _, suffix := range []string{"", ".billing", "-billing", "billing", "_billing", "A", "-a", "-a.billing", "xa.billing", "1a-billing", ".events"} {
				name := prefix + owner + suffix
				for _, ns := range spoofNamespaces {
					if globMatch(strings.ReplaceAll(glob, NamespacePlaceholder, ns), name) && !slices.Contains(out[name], ns) {
						out[name] = append(out[name], ns)
					}
				}
			}
		}
	}
	return out
}

// The groupPattern rule accepts exactly the patterns under which no group
// name matches for two namespaces (checked over names built from
// namespaces that are prefixes and suffixes of each other), and a rejected
// pattern's message shows a name that really matches for both namespaces.
func TestGroupPatternRule(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		ok      bool
		// spoof: a group matches for two namespaces (false for patterns the
		// rule rejects although no name is shared, e.g. "{namespace}-billing").
		spoof bool
	}{
		{"{namespace}.*", true, false},
		{"{namespace}_*", true, false},
		{"{namespace}:*", true, false},
		{"{namespace}A*", true, false},
		{"{namespace}", true, false},
		{"kafka-{namespace}.*", true, false},
		{"{namespace}.billing", true, false},
		{"{namespace}.[a-z]*", true, false},
		{"{namespace}-*", false, true},
		{"{namespace}*", false, true},
		{"kafka-{namespace}*", false, true},
		{"{namespace}-a*", false, true},
		{"*{namespace}.*", false, true},
		{"x-*{namespace}.*", false, true},
		{"{namespace}?*", false, true},
		{`{namespace}[\-.]*`, false, true},
		{"{namespace}-billing", false, false},
		{"?{namespace}.*", false, false},
		{"billing", false, false},
		{"{namespace}.{namespace}", false, false},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			msg := namespaceGlobProblem(tc.pattern, "groups")
			if got := msg == ""; got != tc.ok {
				t.Fatalf("accepted = %v (%q), want %v", got, msg, tc.ok)
			}
			var shared []string
			for name, nss := range claimants(tc.pattern) {
				if len(nss) > 1 {
					shared = append(shared, name+" "+strings.Join(nss, ","))
				}
			}
			if got := len(shared) > 0; got != tc.spoof {
				t.Errorf("names matching for two namespaces: %v; want some: %v", shared, tc.spoof)
			}
			// The example in the message matches for both namespaces named.
			if _, rest, found := strings.Cut(msg, "lets namespace "); found {
				var ns, other, name string
				fields := strings.Split(rest, `"`)
				ns, other, name = fields[1], fields[3], fields[5]
				for _, n := range []string{ns, other} {
					if !globMatch(strings.ReplaceAll(tc.pattern, NamespacePlaceholder, n), name) {
						t.Errorf("message %q: %q does not match the pattern for namespace %q", msg, name, n)
					}
				}
			}
		})
	}
}

func TestMayReadGroup(t *testing.T) {
	c, err := Parse([]byte(`
presets: false
kafka:
  groupOwners:
    - namespace: demo
      groups: [billing, "legacy-*"]
    - namespace: team-a
      groups: [shared-audit]
metrics:
  - name: lag
    apis: [external]
    source: kafka
    kafka: {signal: lag}
  - name: prefixed_lag
    apis: [external]
    source: kafka
    kafka: {signal: lag, groupPattern: "kafka-{namespace}.*"}
  - name: platform_lag
    apis: [external]
    source: kafka
    namespaced: false
    callerNamespaces: [platform]
    kafka: {signal: lag, groupPattern: "platform-*"}
  - name: any_lag
    apis: [external]
    source: kafka
    namespaced: false
    callerNamespaces: ["*"]
    kafka: {signal: lag}
  - name: prom
    apis: [external]
    source: prometheus
    query: sum(up{<<.LabelMatchers>>})
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		metric, namespace, group string
		want                     bool
	}{
		{"lag", "team-a", "team-a.billing", true},
		{"lag", "team-a", "team-a.x.y", true},
		{"lag", "team", "team-a.billing", false},
		{"lag", "team", "team.billing", true},
		{"lag", "team-a", "team.billing", false},
		{"lag", "team-a", "team-a", false},
		{"lag", "team-a", "team-a-billing", false},
		{"lag", "team-a", "billing", false},
		{"lag", "demo", "billing", true},
		{"lag", "demo", "legacy-orders", true},
		{"lag", "demo", "demo.orders", true},
		{"lag", "team-a", "legacy-orders", false},
		{"lag", "team-a", "shared-audit", true},
		{"lag", "demo", "shared-audit", false},
		{"prefixed_lag", "team-a", "kafka-team-a.billing", true},
		{"prefixed_lag", "team-a", "team-a.billing", false},
		{"prefixed_lag", "demo", "billing", true},
		// namespaced: false reads its pattern's groups, not groupOwners'.
		{"platform_lag", "platform", "platform-events", true},
		{"platform_lag", "platform", "platform.events", false},
		{"platform_lag", "demo", "billing", false},
		{"any_lag", "team-a", "team-b.billing", true},
		{"prom", "demo", "billing", false},
	} {
		if got := c.MayReadGroup(c.Lookup(tc.metric), tc.namespace, tc.group); got != tc.want {
			t.Errorf("MayReadGroup(%s, %q, %q) = %v, want %v", tc.metric, tc.namespace, tc.group, got, tc.want)
		}
	}
	if m := c.Lookup("any_lag"); m.Kafka.GroupPattern != DefaultKafkaSharedGroupPattern {
		t.Errorf("groupPattern of a namespaced: false entry defaults to %q, want %q", m.Kafka.GroupPattern, DefaultKafkaSharedGroupPattern)
	}
}

func TestAllowedTopicsFor(t *testing.T) {
	k := &KafkaMetric{AllowedTopics: []string{"{namespace}.*", "shared-orders"}}
	if got, want := k.AllowedTopicsFor("team-a"), []string{"team-a.*", "shared-orders"}; !slices.Equal(got, want) {
		t.Errorf("AllowedTopicsFor(team-a) = %q, want %q", got, want)
	}
	if k.AllowedTopics[0] != "{namespace}.*" {
		t.Errorf("AllowedTopicsFor changed the entry: %q", k.AllowedTopics)
	}
	if got := (&KafkaMetric{}).AllowedTopicsFor("team-a"); got != nil {
		t.Errorf("no allowedTopics: %q, want nil", got)
	}
}

// The catalog manifests/base ships is owned-only: every kafka entry reads
// only a namespace's own groups, and the scale-to-zero entry may name the
// namespace's own topics for a group that never committed.
func TestShippedCatalogIsOwnedOnly(t *testing.T) {
	c, err := Load("../manifests/base/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kafkaEntries := 0
	for i := range c.Metrics {
		m := &c.Metrics[i]
		if m.Source != SourceKafka {
			continue
		}
		kafkaEntries++
		if !m.IsNamespaced() || m.Kafka.GroupPattern != "{namespace}.*" {
			t.Errorf("%s: namespaced %v, groupPattern %q; want a namespaced entry with {namespace}.*", m.Name, m.IsNamespaced(), m.Kafka.GroupPattern)
		}
		if !c.MayReadGroup(m, "demo", "demo.audit") || c.MayReadGroup(m, "demo", "audit") || c.MayReadGroup(m, "team", "team-a.audit") {
			t.Errorf("%s: group ownership is not the namespace's own groups", m.Name)
		}
	}
	if kafkaEntries != 9 {
		t.Errorf("%d kafka entries, want the 8 presets and kafka_consumer_lag_earliest", kafkaEntries)
	}
	if got := c.Lookup("kafka_consumer_lag_earliest").Kafka.AllowedTopicsFor("demo"); !slices.Equal(got, []string{"demo.*"}) {
		t.Errorf("kafka_consumer_lag_earliest allows topics %q for demo, want [demo.*]", got)
	}
	if got := c.Lookup("kafka_consumer_lag").Kafka.AllowedTopicsFor("demo"); !slices.Equal(got, []string{"demo.*"}) {
		t.Errorf("kafka_consumer_lag allows topics %q for demo, want [demo.*] (the default)", got)
	}
}

// allowedTopics defaults to the namespace's own topics; written empty it
// allows none beyond the group's committed ones; a namespaced: false entry
// allows every topic.
func TestAllowedTopicsDefault(t *testing.T) {
	c, err := Parse([]byte(`
presets: false
kafka:
  clusters: [{name: main, brokers: ["k:9092"]}]
metrics:
  - {name: absent, apis: [external], source: kafka, kafka: {signal: lag}}
  - {name: empty, apis: [external], source: kafka, kafka: {signal: lag, allowedTopics: []}}
  - {name: shared, apis: [external], source: kafka, kafka: {signal: lag}, namespaced: false, callerNamespaces: [ops]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"absent": {"team-a.*"}, "empty": nil, "shared": {"*"}} {
		if got := c.Lookup(name).Kafka.AllowedTopicsFor("team-a"); !slices.Equal(got, want) {
			t.Errorf("%s: allowed topics for team-a %q, want %q", name, got, want)
		}
	}
}
