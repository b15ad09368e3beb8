package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestValidateRejectsBadFlagCombinations(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // substring of the one expected error; "" means valid
	}{
		{"defaults", nil, ""},
		{"prometheus with timeout", []string{"--prometheus-url=http://127.0.0.1:9090", "--prometheus-query-timeout=2s"}, ""},
		{"cache flag", []string{"--refresh-interval=0"}, "--refresh-interval must be positive"},
		{"min window after restart", []string{"--prometheus-url=http://127.0.0.1:9090", "--prometheus-min-window-after-restart=0s"}, "--prometheus-min-window-after-restart must be at least 1s"},
		{"selector flag", []string{"--max-selector-values=0"}, "--max-selector-values must be at least 1"},
		{"negative grace period", []string{"--shutdown-grace-period=-1s"}, "--shutdown-grace-period must be positive"},
		{"prometheus flags without url", []string{"--prometheus-bearer-token-file=/tmp/t"}, "--prometheus-url is empty"},
		{"rules without prometheus", []string{"--prometheus-adapter-config=rules.yaml"}, "--prometheus-adapter-config needs --prometheus-url"},
		{"rules with prometheus", []string{"--prometheus-adapter-config=rules.yaml", "--prometheus-url=http://127.0.0.1:9090", "--metrics-relist-interval=30s"}, ""},
		{"relist interval", []string{"--metrics-relist-interval=0"}, "--metrics-relist-interval must be positive"},
		{"discovered metrics", []string{"--max-discovered-metrics=0"}, "--max-discovered-metrics must be at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.addFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("parse %v: %v", tc.args, err)
			}
			errs := o.validate()
			if tc.want == "" {
				if len(errs) != 0 {
					t.Fatalf("validate() = %v, want no error", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("validate() = %v, want one error containing %q", errs, tc.want)
			}
		})
	}
}

// TestReadmeFlagsTable checks that the README's flags table lists every
// flag of the adapter's own with its default.
func TestReadmeFlagsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Flags\n")
	section, _, _ = strings.Cut(section, "\n#")
	rows := map[string]string{} // flag name -> default cell
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`--") {
			continue
		}
		for _, f := range strings.Split(cells[1], ",") {
			name := strings.Fields(strings.Trim(strings.TrimSpace(f), "`"))[0]
			rows[strings.TrimPrefix(name, "--")] = strings.Trim(strings.TrimSpace(cells[2]), "`")
		}
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	newOptions().addOwnFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		def, ok := rows[f.Name]
		if !ok {
			t.Errorf("README flags table lacks --%s", f.Name)
			return
		}
		same := def == f.DefValue
		if f.Value.Type() == "duration" { // the README writes 1m for 1m0s
			d1, err1 := time.ParseDuration(def)
			d2, err2 := time.ParseDuration(f.DefValue)
			same = err1 == nil && err2 == nil && d1 == d2
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && !same {
			t.Errorf("README gives --%s the default %q, the code %q", f.Name, def, f.DefValue)
		}
	})
}

func TestCheckConfigPrintsThePromQLOfEachEntry(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := checkConfig([]string{"testdata/catalog.yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("check-config exit %d, stderr: %s", code, stderr.String())
	}
	golden := "testdata/catalog.golden"
	if *update {
		if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run go test ./cmd/adapter -update to create it): %v", err)
	}
	if got := stdout.String(); got != string(want) {
		t.Fatalf("check-config output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// TestCheckConfigPrintsTheQueriesRequestsRun asks a provider serving the
// same catalog for every entry on everything it is served for, and finds
// each query the provider sent to Prometheus in check-config's output, on
// the line of that API and resource.
func TestCheckConfigPrintsTheQueriesRequestsRun(t *testing.T) {
	cat, err := config.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	if err := printCatalog(&printed, cat); err != nil {
		t.Fatal(err)
	}
	prom := &recordingPrometheus{}
	cache := provider.NewCacheOptions()
	cache.FetchTimeout = time.Second
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: prom,
		Pods:       providertest.Pods{},
		Cache:      provider.NewCache(*cache, nil, nil),
	})
	ctx := context.Background()
	everything := labels.Everything()
	lines := 0
	for i := range cat.Metrics {
		m := &cat.Metrics[i]
		if m.Source != config.SourcePrometheus {
			continue
		}
		caller := "NAMESPACE" // check-config's stand-in for the request's namespace
		if !m.IsNamespaced() {
			caller = m.CallerNamespaces[0]
		}
		for _, target := range provider.Targets(m) {
			info := cmprovider.CustomMetricInfo{GroupResource: target.Resource, Namespaced: true, Metric: m.Name}
			var err error
			switch {
			case target.API == config.APIExternal:
				_, err = p.GetExternalMetric(ctx, caller, everything, cmprovider.ExternalMetricInfo{Metric: m.Name})
			case target.API == config.APIPods:
				_, err = p.GetMetricBySelector(ctx, caller, everything, info, everything)
			default:
				// A namespace names itself; other objects lie in the namespace.
				_, err = p.GetMetricByName(ctx, types.NamespacedName{Namespace: caller, Name: caller}, info, everything)
			}
			if !apierrors.IsNotFound(err) {
				t.Errorf("%s on %s: %v, want the 404 of no data", m.Name, target, err)
			}
			line := fmt.Sprintf("  %-28s %s\n", target.String()+":", prom.last())
			if !strings.Contains(printed.String(), line) {
				t.Errorf("check-config does not print the query a request for %s on %s runs:\n%s\noutput:\n%s", m.Name, target, line, printed.String())
			}
			lines++
		}
	}
	if lines != 6 {
		t.Errorf("compared %d queries, want 6 (pods, object namespaces, services and deployments.apps, external, and the shared entry's external)", lines)
	}
}

// recordingPrometheus records the last query and answers it with no data.
type recordingPrometheus struct {
	mu      sync.Mutex
	queries []string
}

func (r *recordingPrometheus) Query(_ context.Context, promql string) ([]prometheus.Sample, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, promql)
	return nil, fmt.Errorf("%w for %s", prometheus.ErrNoData, promql)
}

func (r *recordingPrometheus) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queries) == 0 {
		return "(no query)"
	}
	return r.queries[len(r.queries)-1]
}

func TestCheckConfigRejectsAnInvalidFile(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := checkConfig([]string{"testdata/invalid.yaml"}, &stdout, &stderr); code != 1 {
		t.Fatalf("check-config exit %d, want 1", code)
	}
	want := "testdata/invalid.yaml is invalid:\nline 5: metrics[0].query:"
	if !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "window") {
		t.Fatalf("stderr = %q, want it to start with %q and name the undeclared parameter", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Fatalf("an invalid catalog printed output: %s", stdout.String())
	}
}

func TestCheckConfigUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := checkConfig(nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage: adapter check-config FILE") {
		t.Fatalf("check-config without a file: exit %d, stderr %q", code, stderr.String())
	}
}
