package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/config/promadapter"
	"github.com/hpa-signals/hpa-signals/provider"
)

// seriesNames answers discovery from a map of series selector to names,
// as Prometheus would for the fixture's series.
type seriesNames map[string][]string

func (s seriesNames) LabelValues(_ context.Context, _ string, matches []string, _, _ time.Time) ([]string, error) {
	return s[matches[0]], nil
}

func (s seriesNames) LabelNames(context.Context, []string, time.Time, time.Time) ([]string, error) {
	return nil, nil
}

// TestImportPrometheusAdapter imports the rules of the shapes users write
// and pins the output; the output must load as a catalog that serves the
// same entries the adapter serves from the rules directly.
func TestImportPrometheusAdapter(t *testing.T) {
	const file = "../../config/promadapter/testdata/valid-user-shapes.yaml"
	rules, err := promadapter.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	names := seriesNames{
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_requests_total"}`:                                           {"http_requests_total"},
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_requests_total",kubernetes_namespace!=""}`:                  {"http_requests_total"},
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_requests_total",kubernetes_pod_name!=""}`:                   {"http_requests_total"},
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_requests_total",service!=""}`:                               {"http_requests_total"},
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_request_duration_seconds_bucket"}`:                          {"http_request_duration_seconds_bucket"},
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_request_duration_seconds_bucket",kubernetes_namespace!=""}`: {"http_request_duration_seconds_bucket"},
		`{kubernetes_namespace!="",kubernetes_pod_name!="",__name__="http_request_duration_seconds_bucket",kubernetes_pod_name!=""}`:  {"http_request_duration_seconds_bucket"},
		`{__name__=~"^queue_messages_ready$",queue!=""}`:                                                                              {"queue_messages_ready"},
		`{kubernetes_namespace!="",__name__="http_requests_total"}`:                                                                   {"http_requests_total"},
	}
	var out bytes.Buffer
	if err := importRules(context.Background(), &out, "user-shapes.yaml", rules, names, provider.BuiltinMapper(), time.Minute); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/import-user-shapes.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, out.String())
	}

	imported, err := config.Parse(out.Bytes())
	if err != nil {
		t.Fatalf("the imported catalog does not load: %v", err)
	}
	base, _ := config.Parse([]byte("presets: false\n"))
	d := provider.NewDiscovery(provider.DiscoveryOptions{
		Rules: func() *promadapter.Config { return rules }, Catalog: func() *config.Catalog { return base },
		Prometheus: names, Mapper: provider.BuiltinMapper(),
	})
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	direct := d.Catalog()
	if len(imported.Metrics) != len(direct.Metrics) || len(direct.Metrics) != 4 {
		t.Fatalf("imported %d entries, served directly %d, want 4", len(imported.Metrics), len(direct.Metrics))
	}
	for _, m := range direct.Metrics {
		i := imported.Lookup(m.Name)
		if i == nil {
			t.Errorf("%s is served directly but not imported", m.Name)
			continue
		}
		qd := config.QueryData{LabelMatchers: `x="1"`, GroupBy: []string{"y"}}
		a, errA := m.RenderQuery(qd)
		b, errB := i.RenderQuery(qd)
		if a != b || errA != nil || errB != nil || direct.LabelsFor(&m) != imported.LabelsFor(i) || i.IsNamespaced() != m.IsNamespaced() {
			t.Errorf("%s: imported renders %q (%v), labels %v; served directly %q (%v), labels %v", m.Name, b, errB, imported.LabelsFor(i), a, errA, direct.LabelsFor(&m))
		}
	}
}

// TestImportRefusedEntry shows an entry the catalog refuses as a comment
// with the reason.
func TestImportRefusedEntry(t *testing.T) {
	rules, err := promadapter.Parse([]byte(`
rules:
- seriesQuery: 'cheddar{sharp="true",namespace!=""}'
  name: {as: "cheesy_goodness"}
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'count(cheddar{sharp="true"})'
`))
	if err != nil {
		t.Fatal(err)
	}
	names := seriesNames{
		`{sharp="true",namespace!="",__name__="cheddar"}`:               {"cheddar"},
		`{sharp="true",namespace!="",__name__="cheddar",namespace!=""}`: {"cheddar"},
	}
	var out bytes.Buffer
	if err := importRules(context.Background(), &out, "cheese.yaml", rules, names, provider.BuiltinMapper(), time.Minute); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(out.Bytes())
	if err != nil {
		t.Fatalf("output does not load: %v\n%s", err, out.String())
	}
	if len(c.Metrics) != 0 || !bytes.Contains(out.Bytes(), []byte("# not imported: cheesy_goodness.query: the vector selector cheddar{sharp=\"true\"} does not carry")) {
		t.Errorf("the refused entry is not a comment with its reason:\n%s", out.String())
	}
}
