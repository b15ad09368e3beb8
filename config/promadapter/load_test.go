package promadapter

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// invalidFixtures maps each testdata/invalid-*.yaml to its exact error
// text, one problem per line.
var invalidFixtures = map[string][]string{
	"invalid-config-map-key.yaml": {
		`line 6: data: has no key "config.yaml" (keys: adapter.yaml); prometheus-adapter reads its configuration from the key "config.yaml" of its ConfigMap`,
	},
	"invalid-helm-existing.yaml": {
		`line 3: rules.existing: the rules are in the ConfigMap "my-adapter-rules", not in this file; import that ConfigMap (kubectl get configmap my-adapter-rules -o yaml > rules.yaml)`,
	},
	"invalid-helm-unknown.yaml": {
		`line 3: rules.customs: unknown key; known keys are custom, default, existing, external`,
	},
	"invalid-resource-rules-only.yaml": {
		`no rules or externalRules, so there is nothing to serve (resourceRules serve metrics.k8s.io, which hpa-signals does not: keep metrics-server for it); add rules, or leave prometheus-adapter's configuration out`,
	},
	"invalid-rules.yaml": {
		`line 2: rules[0].seriesQuery: "http_requests_total{namespace!=\"\"" is not a series selector: 1:34: parse error: unexpected end of input inside braces; write a selector such as 'http_requests_total{namespace!=""}' or '{__name__=~"^http_.*"}'`,
		`line 6: rules[1].seriesFilters[0]: set exactly one of is and isNot; write one filter per list item`,
		"line 8: rules[1].seriesFilters[1].isNot: does not compile: error parsing regexp: missing closing ): `(unclosed`; write an RE2 regular expression such as ^container_.*_seconds_total$",
		`line 10: rules[1].name.as: missing, and name.matches has 2 capture groups; say which to use, e.g. as: "${1}_per_second"`,
		`line 14: rules[2].resources.template: does not use .Resource; write a Go template with << >> delimiters that uses .Resource (and optionally .Group), e.g. "<<.Resource>>" or "kube_<<.Group>>_<<.Resource>>"`,
		`line 16: rules[2].resources.overrides["kubernetes.pod"]: "kubernetes.pod" is not a Prometheus label name; write the label that holds the object's name`,
		`line 17: rules[2].resources.overrides["deployment"].resource: missing; name the Kubernetes resource the label holds, e.g. {resource: pod} or {group: apps, resource: deployment}`,
		`line 19: rules[2].metricQuery: set together with metricsQuery; remove the misspelled metricQuery`,
		`line 21: externalRules[0].seriesQuery: missing; write the series selector that finds the rule's series, e.g. '{__name__=~"^http_.*_total$",namespace!="",pod!=""}'`,
		`line 22: externalRules[1].metricsQuery: missing; write the query template, e.g. sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)`,
	},
	"invalid-unknown-keys.yaml": {
		`line 3: rules[0].metricsQuerry: unknown key; known keys are metricQuery, metricsQuery, name, resources, seriesFilters, seriesQuery`,
		`line 5: rules[0].resources.override: unknown key; known keys are namespaced, overrides, template`,
		`line 7: externalrules: unknown key; did you mean "externalRules"? (keys are case-sensitive)`,
	},
}

func TestParseInvalidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := invalidFixtures[filepath.Base(f)]; !ok {
			t.Errorf("%s is not in invalidFixtures; add its exact error text", f)
		}
	}
	for file, want := range invalidFixtures {
		t.Run(file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", file))
			if err == nil {
				t.Fatalf("loaded %d rules, want an error", len(c.Rules))
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("error text:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T has no *config.FieldError", err)
			}
		})
	}
}

func TestParseValidFixtures(t *testing.T) {
	type rule struct {
		path, selector    string
		line              int
		external, unscope bool
	}
	tests := map[string]struct {
		rules []rule
		notes []string
	}{
		"valid-sample-shapes.yaml": {
			rules: []rule{
				{"rules[0]", `{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}`, 6, false, false},
				{"rules[1]", `{__name__=~"^container_.*_total",container!="POD",namespace!="",pod!=""}`, 14, false, false},
				{"rules[2]", `{namespace!="",__name__!="^container_.*"}`, 23, false, false},
				{"rules[3]", `{sharp="true",__name__="cheddar"}`, 28, false, false},
				{"externalRules[0]", `{__name__="queue_consumer_lag",name!=""}`, 35, true, false},
				{"externalRules[1]", `{__name__="queue_depth",topic!=""}`, 37, true, true},
			},
			notes: []string{
				`line 33: rules[3].metricQuery: read as metricsQuery, the spelling prometheus-adapter knows: v0.12 refuses a file with metricQuery and older versions ignored it (the rule's metrics answered nothing there); rename the key`,
			},
		},
		"valid-user-shapes.yaml": {
			rules: []rule{
				{"rules[0]", `{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_requests_total"}`, 6, false, false},
				{"rules[1]", `{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_request_duration_seconds_bucket"}`, 16, false, false},
				{"externalRules[0]", `{__name__=~"^queue_messages_ready$",queue!=""}`, 26, true, true},
				{"externalRules[1]", `{kubernetes_namespace!="",__name__="http_requests_total"}`, 30, true, false},
			},
		},
		"valid-helm-values.yaml": {
			rules: []rule{
				{"rules.custom[0]", `{namespace!="",pod!="",__name__="http_requests_total"}`, 9, false, false},
				{"rules.external[0]", `{namespace!="",__name__="kafka_consumergroup_lag"}`, 17, true, false},
			},
			notes: []string{
				`line 8: rules.default: the chart adds its default rules, which are not in this file and are not read; if HPAs use them, import the ConfigMap the chart renders (kubectl get configmap prometheus-adapter -o yaml) instead of the values file`,
				`line 22: rules.resource: not read: resource rules serve metrics.k8s.io (kubectl top, HPAs on cpu and memory), which hpa-signals does not serve; keep metrics-server (or prometheus-adapter for that API alone) serving it, and move only custom.metrics.k8s.io and external.metrics.k8s.io to hpa-signals`,
			},
		},
		"valid-config-map.yaml": {
			rules: []rule{
				{"rules[0]", `{namespace!="",pod!="",__name__="http_requests_total"}`, 9, false, false},
			},
			notes: []string{
				`line 18: resourceRules: not read: resource rules serve metrics.k8s.io (kubectl top, HPAs on cpu and memory), which hpa-signals does not serve; keep metrics-server (or prometheus-adapter for that API alone) serving it, and move only custom.metrics.k8s.io and external.metrics.k8s.io to hpa-signals`,
			},
		},
	}
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("%s is not tested; add it to the table", f)
		}
	}
	for file, tc := range tests {
		t.Run(file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			var got []rule
			for _, r := range c.Rules {
				got = append(got, rule{r.Path, r.Selector(), r.Line, r.External, !r.Namespaced})
			}
			if !slices.Equal(got, tc.rules) {
				t.Errorf("rules\n%v\nwant\n%v", got, tc.rules)
			}
			var notes []string
			for _, n := range c.Notes {
				notes = append(notes, n.String())
			}
			if !slices.Equal(notes, tc.notes) {
				t.Errorf("notes\n%s\nwant\n%s", strings.Join(notes, "\n"), strings.Join(tc.notes, "\n"))
			}
		})
	}
}

func TestParseShapes(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "the file is empty; write the prometheus-adapter configuration (rules:, externalRules:)"},
		{"a list", "- a\n", "line 1: expected a mapping of key: value lines, such as rules and externalRules"},
		{"two documents", "rules: []\n---\nrules: []\n", "line 2: more than one YAML document; give one configuration, without --- separators"},
		{"no rules", "rules: []\n", "no rules or externalRules, so there is nothing to serve; add rules, or leave prometheus-adapter's configuration out"},
		{"helm without rules", "rules:\n  default: false\n", "line 2: rules: no custom or external rules, so there is nothing to serve; add rules.custom or rules.external"},
		{"bad syntax", "rules: [\n", "yaml: line 1: did not find expected node content; fix the YAML syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse error %v, want %q", err, tc.want)
			}
		})
	}
}
