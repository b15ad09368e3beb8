package promadapter

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/config"
)

// testMapper knows a few resources of a cluster, singular or plural, with
// or without their group, as a RESTMapper does.
func testMapper(gr schema.GroupResource) (schema.GroupResource, error) {
	known := []schema.GroupResource{
		{Resource: "pods"}, {Resource: "namespaces"}, {Resource: "services"}, {Resource: "nodes"},
		{Group: "apps", Resource: "deployments"}, {Group: "batch", Resource: "jobs"}, {Group: "cheese.io", Resource: "brands"},
	}
	for _, k := range known {
		if (gr.Resource == k.Resource || gr.Resource+"s" == k.Resource) && (gr.Group == "" || gr.Group == k.Group) {
			return k, nil
		}
	}
	return schema.GroupResource{}, fmt.Errorf("no resource %s", gr)
}

func load(t *testing.T, file string) *Config {
	t.Helper()
	c, err := Load(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMetricName(t *testing.T) {
	c := load(t, "valid-sample-shapes.yaml")
	tests := []struct {
		rule, series, want string
	}{
		{"rules[0]", "container_cpu_usage_seconds_total", "cpu_usage"},
		{"rules[0]", "container_memory_usage_bytes", ""}, // name.matches leaves it out
		{"rules[1]", "container_network_receive_bytes_total", "network_receive_bytes"},
		{"rules[1]", "container_cpu_usage_seconds_total", ""}, // isNot
		{"rules[2]", "http_requests_total", "http_requests"},
		{"rules[3]", "cheddar", "cheesy_goodness"},
		{"externalRules[0]", "queue_consumer_lag", "queue_consumer_lag"},
	}
	for _, tc := range tests {
		r := rule(t, c, tc.rule)
		got, ok := r.MetricName(tc.series)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: MetricName(%q) = %q, %v; want %q", tc.rule, tc.series, got, ok, tc.want)
		}
	}
	u := load(t, "valid-user-shapes.yaml")
	if got, _ := rule(t, u, "rules[0]").MetricName("http_requests_total"); got != "http_requests_per_second" {
		t.Errorf(`matches "^(.*)_total$", as "${1}_per_second": %q`, got)
	}
}

func rule(t *testing.T, c *Config, path string) *Rule {
	t.Helper()
	for _, r := range c.Rules {
		if r.Path == path {
			return r
		}
	}
	t.Fatalf("no rule %s", path)
	return nil
}

func TestResourceLabels(t *testing.T) {
	c := load(t, "valid-sample-shapes.yaml")
	labels := []string{"__name__", "container", "namespace", "pod", "service", "deployment", "job", "node", "instance", "le", "brand"}
	tests := map[string][]string{
		"rules[0]": {"namespace=namespaces", "pod=pods"},
		// The template maps every label that names a resource of the cluster.
		"rules[2]": {"brand=brands.cheese.io", "deployment=deployments.apps", "job=jobs.batch", "namespace=namespaces", "node=nodes", "pod=pods", "service=services"},
		"rules[3]": {"brand=brands.cheese.io"},
	}
	for path, want := range tests {
		var got []string
		for l, gr := range rule(t, c, path).ResourceLabels(labels, testMapper) {
			got = append(got, l+"="+gr.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: ResourceLabels = %v, want %v", path, got, want)
		}
	}
	// A template with a group: kube_<group>_<resource>.
	r, errs, _ := compile(ruleSpec{SeriesQuery: "x", MetricsQuery: "x", Resources: resourceMapping{Template: "kube_<<.Group>>_<<.Resource>>"}}, "rules[0]", false)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := r.ResourceLabels([]string{"kube_apps_deployment", "kube_apps", "deployment"}, testMapper)
	if len(got) != 1 || got["kube_apps_deployment"] != (schema.GroupResource{Group: "apps", Resource: "deployments"}) {
		t.Errorf("kube_<<.Group>>_<<.Resource>>: %v", got)
	}
}

// TestEntries translates rules of the fixtures for series and labels as
// discovery finds them, adds them to a catalog and renders the queries
// each API runs.
func TestEntries(t *testing.T) {
	sample, user := load(t, "valid-sample-shapes.yaml"), load(t, "valid-user-shapes.yaml")
	defaults := config.PrometheusLabels{Namespace: "namespace", Pod: "pod"}
	type query struct {
		api   string
		scope string
		want  string
	}
	tests := []struct {
		name      string
		rule      *Rule
		series    string
		labels    []string
		wantName  string
		wantAPIs  []config.API
		wantRes   map[string]string
		wantNotes []string
		queries   []query
	}{
		{
			name: "cAdvisor seconds", rule: rule(t, sample, "rules[0]"), series: "container_cpu_usage_seconds_total",
			labels: []string{"namespace", "pod", "container", "node"}, wantName: "cpu_usage", wantAPIs: []config.API{config.APIPods, config.APIObject},
			queries: []query{{"pods", "ns", `sum(rate(container_cpu_usage_seconds_total{namespace="shop",container!="POD"}[2m])) by (pod)`}},
		},
		{
			name: "template rule", rule: rule(t, sample, "rules[2]"), series: "http_requests_total",
			labels: []string{"namespace", "pod", "service", "node", "instance"}, wantName: "http_requests", wantAPIs: []config.API{config.APIPods, config.APIObject},
			wantRes:   map[string]string{"services": "service"},
			wantNotes: []string{"not served for [nodes]: cluster-scoped objects belong to no namespace, and HPAs cannot read them"},
			queries: []query{
				{"pods", "ns", `sum(rate(http_requests_total{namespace="shop",container!="POD"}[2m])) by (pod)`},
				{"object", "service", `sum(rate(http_requests_total{namespace="shop",container!="POD"}[2m])) by (service)`},
			},
		},
		{
			name: "relabelled", rule: rule(t, user, "rules[0]"), series: "http_requests_total",
			labels: []string{"kubernetes_namespace", "kubernetes_pod_name", "service"}, wantName: "http_requests_per_second",
			wantAPIs: []config.API{config.APIPods, config.APIObject}, wantRes: map[string]string{"services": "service"},
			queries: []query{{"pods", "ns", `sum(rate(http_requests_total{kubernetes_namespace="shop"}[2m])) by (kubernetes_pod_name)`}},
		},
		{
			name: "histogram quantile", rule: rule(t, user, "rules[1]"), series: "http_request_duration_seconds_bucket",
			labels: []string{"kubernetes_namespace", "kubernetes_pod_name", "le"}, wantName: "http_request_duration_seconds_p90",
			wantAPIs: []config.API{config.APIPods, config.APIObject},
			queries:  []query{{"pods", "ns", `histogram_quantile(0.9, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace="shop"}[2m])) by (le, kubernetes_pod_name))`}},
		},
		{
			name: "external, not namespaced", rule: rule(t, user, "externalRules[0]"), series: "queue_messages_ready",
			wantName: "queue_messages_ready", wantAPIs: []config.API{config.APIExternal},
			wantNotes: []string{"resources.namespaced is false: the queries carry no namespace matcher and every namespace may read them, as with prometheus-adapter; narrow callerNamespaces to the namespaces that need them"},
			queries:   []query{{"external", "", `max(queue_messages_ready{}) by (queue)`}},
		},
		{
			name: "external without a namespace label", rule: rule(t, sample, "externalRules[0]"), series: "queue_consumer_lag",
			wantName: "queue_consumer_lag", wantAPIs: []config.API{config.APIExternal},
			wantNotes: []string{`the rule maps no label to namespaces, so the queries read the namespace from label "namespace" (prometheus.labels.namespace); prometheus-adapter could not build its namespaced queries`},
			queries:   []query{{"external", "ns", `sum(queue_consumer_lag{namespace="shop"}) by (name)`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := tc.rule.Entry(tc.series, tc.rule.ResourceLabels(tc.labels, testMapper), defaults)
			if !ok {
				t.Fatal("no entry")
			}
			m := e.Metric
			if m.Name != tc.wantName || !slices.Equal(m.APIs, tc.wantAPIs) || fmt.Sprint(m.Resources) != fmt.Sprint(tc.wantRes) || m.Series != tc.series {
				t.Errorf("entry %s %v resources %v series %s; want %s %v %v %s", m.Name, m.APIs, m.Resources, m.Series, tc.wantName, tc.wantAPIs, tc.wantRes, tc.series)
			}
			if !slices.Equal(e.Notes, tc.wantNotes) {
				t.Errorf("notes\n%s\nwant\n%s", strings.Join(e.Notes, "\n"), strings.Join(tc.wantNotes, "\n"))
			}
			base, err := config.Parse([]byte("presets: false\n"))
			if err != nil {
				t.Fatal(err)
			}
			cat, err := base.With([]config.Metric{m})
			if err != nil {
				t.Fatalf("the entry does not join a catalog: %v", err)
			}
			got := cat.Lookup(m.Name)
			l := cat.LabelsFor(got)
			for _, q := range tc.queries {
				d := config.QueryData{}
				switch q.api {
				case "pods":
					d = config.QueryData{LabelMatchers: l.Namespace + `="shop"`, GroupBy: []string{l.Pod}}
				case "object":
					d = config.QueryData{LabelMatchers: l.Namespace + `="shop"`, GroupBy: []string{got.Resources["services"]}}
				case "external":
					if got.IsNamespaced() {
						d = config.QueryData{LabelMatchers: l.Namespace + `="shop"`}
					}
				}
				s, err := got.RenderQuery(d)
				if err != nil || s != q.want {
					t.Errorf("%s query %q, %v; want %q", q.api, s, err, q.want)
				}
			}
		})
	}
}

// TestEntriesLeftOut checks the series a rule does not serve, and an
// entry the catalog refuses: a query that would read every namespace.
func TestEntriesLeftOut(t *testing.T) {
	sample := load(t, "valid-sample-shapes.yaml")
	defaults := config.PrometheusLabels{Namespace: "namespace", Pod: "pod"}
	r := rule(t, sample, "rules[0]")
	if _, ok := r.Entry("container_fs_usage_bytes", nil, defaults); ok {
		t.Error("a series name.matches leaves out has an entry")
	}
	if _, ok := r.Entry("container_cpu_usage_seconds_total", r.ResourceLabels([]string{"node"}, testMapper), defaults); ok {
		t.Error("a series on nodes only has an entry")
	}
	cheddar := rule(t, sample, "rules[3]")
	e, ok := cheddar.Entry("cheddar", cheddar.ResourceLabels([]string{"brand", "sharp"}, testMapper), defaults)
	if !ok {
		t.Fatal("no entry for cheddar")
	}
	base, _ := config.Parse([]byte("presets: false\n"))
	_, err := base.With([]config.Metric{e.Metric})
	want := `cheesy_goodness.query: the vector selector cheddar{sharp="true"} does not carry <<.LabelMatchers>>, so it would read every namespace's data; write cheddar{sharp="true",<<.LabelMatchers>>}, or, if the entry reads data no namespace owns, set namespaced: false and list callerNamespaces (an admin decision)`
	if err == nil || err.Error() != want {
		t.Errorf("With error %v, want %q", err, want)
	}
}
