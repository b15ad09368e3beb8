//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/hpa-signals/hpa-signals/config/promadapter"
	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// diffRequest is one metrics API request sent to both adapters. Either
// the answers agree (want: hpa-signals' answer, which prometheus-adapter's
// must match up to a milli-unit), or they differ as the README's table of
// differences says (pa and hs: each adapter's answer; readme: the phrase
// of the README row that gives the reason).
type diffRequest struct {
	name   string
	path   string
	want   string
	pa, hs string
	readme string
}

const (
	customAPI   = "/apis/custom.metrics.k8s.io/v1beta1"
	externalAPI = "/apis/external.metrics.k8s.io/v1beta1"
)

// TestPrometheusAdapterDifferential runs prometheus-adapter v0.12.0 (built
// from the Go module proxy into the cache) and hpa-signals with
// --prometheus-adapter-config side by side on one real Prometheus holding
// known series and one real control plane (for both adapters' pod lists,
// resource discovery and delegated authentication), with the same rules
// files: prometheus-adapter's own docs/sample-config.yaml and
// deploy/manifests/config-map.yaml (read from the module, not copied), and
// a file of the shapes users write. Every request's answers must agree, or
// differ exactly as the README documents.
func TestPrometheusAdapterDifferential(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	paBin, err := localstack.EnsurePrometheusAdapter(ctx, localstack.PrometheusAdapterVersion, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	paSource, err := localstack.PrometheusAdapterSource(ctx, localstack.PrometheusAdapterVersion)
	if err != nil {
		t.Fatal(err)
	}
	hsBin := buildAdapter(ctx, t, t.TempDir())
	l := startLocal(ctx, t)
	for _, ns := range []string{"shop", "other"} {
		if err := l.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	createPods(ctx, t, l, "shop", "web", "web-1", "web-2", "web-3")
	createPods(ctx, t, l, "shop", "idle", "idle-1")
	createPods(ctx, t, l, "other", "web", "other-1")
	// sample-config.yaml maps a label to brands of group cheese.io;
	// prometheus-adapter does not start unless the cluster has them.
	if err := cluster.Apply(ctx, l, brandsCRD); err != nil {
		t.Fatal(err)
	}
	prom := promtest.StartWith(t, promserver.Options{RemoteWrite: true})
	if err := promtest.RemoteWrite(ctx, prom.URL(), differentialSeries(time.Now())); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, differences, _ := strings.Cut(string(readme), "**What changes for HPAs:**")
	differences, _, _ = strings.Cut(differences, "\n## ")

	// docs/sample-config.yaml as released is not valid YAML: its
	// double-quoted metricsQuery values hold unescaped quotes
	// (container!="POD"). Both adapters refuse it; with those values
	// single-quoted, it is what users copied from.
	shipped := filepath.Join(paSource, "docs", "sample-config.yaml")
	t.Run("sample-config as released", func(t *testing.T) {
		if _, err := promadapter.Load(shipped); err == nil || !strings.Contains(err.Error(), "did not find expected key; fix the YAML syntax") {
			t.Errorf("hpa-signals loads %s: %v", shipped, err)
		}
		out, err := exec.CommandContext(ctx, paBin, "--prometheus-url="+prom.URL(), "--config="+shipped, "--lister-kubeconfig="+l.Kubeconfig()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "unable to parse metrics discovery config: yaml: line 29: did not find expected key") {
			t.Errorf("prometheus-adapter with %s: %v\n%s", shipped, err, clip(string(out)))
		}
	})
	// Older sample configurations spell metricsQuery as metricQuery:
	// v0.12 refuses the file (its decoding is strict); hpa-signals reads
	// it as metricsQuery and says so.
	t.Run("metricQuery spelling", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "misspelled.yaml")
		rules := "rules:\n- seriesQuery: 'http_requests_total{namespace!=\"\",pod!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)\n"
		if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := promadapter.Load(file)
		if err != nil || len(c.Notes) != 1 || !strings.Contains(c.Notes[0].String(), "rules[0].metricQuery: read as metricsQuery") {
			t.Errorf("hpa-signals loads %s: %v, notes %v", file, err, c)
		}
		out, err := exec.CommandContext(ctx, paBin, "--prometheus-url="+prom.URL(), "--config="+file, "--lister-kubeconfig="+l.Kubeconfig()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "field metricQuery not found") {
			t.Errorf("prometheus-adapter with %s: %v\n%s", file, err, clip(string(out)))
		}
	})
	sample := filepath.Join(t.TempDir(), "sample-config.yaml")
	if err := os.WriteFile(sample, requote(t, shipped), 0o644); err != nil {
		t.Fatal(err)
	}

	// The README's comparison asks each adapter as the HPA controller
	// does: with a token of its ServiceAccount (kubectl -n kube-system
	// create token horizontal-pod-autoscaler), which the cluster's
	// bootstrap RBAC lets read both metrics APIs.
	token := serviceAccountToken(ctx, t, l, "kube-system", "horizontal-pod-autoscaler")

	cases := []struct {
		name     string
		file     string
		requests []diffRequest
	}{
		{"sample-config", sample, sampleConfigRequests},
		{"user-shapes", "testdata/prometheus-adapter-user-shapes.yaml", userShapesRequests},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--prometheus-url=" + prom.URL(), "--metrics-relist-interval=5s", "--metrics-max-age=5m"}
			pa := startAdapterProc(ctx, t, l, "prometheus-adapter", paBin, append(args, "--config="+tc.file)...)
			hs := startAdapterProc(ctx, t, l, "hpa-signals", hsBin, append(args, "--prometheus-adapter-config="+tc.file)...)
			// prometheus-adapter lists at start, in the background; both
			// take the client CA from the cluster moments after /readyz.
			for _, a := range []*adapterProc{pa, hs} {
				err := cluster.WaitFor(ctx, a.name+" to list metrics to the admin", time.Minute, func(ctx context.Context) (bool, error) {
					ans := a.ask(ctx, t, customAPI)
					if len(ans.names) == 0 {
						return false, fmt.Errorf("%d %s", ans.code, clip(ans.body))
					}
					return true, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range tc.requests {
				t.Run(r.name, func(t *testing.T) {
					p, h := pa.ask(ctx, t, r.path), hs.ask(ctx, t, r.path)
					if r.want != "" {
						if !h.sameAs(parseAnswer(t, r.want)) || !p.sameAs(h) {
							t.Errorf("%s\n  prometheus-adapter: %s %s\n  hpa-signals:        %s %s\n  want both:          %s",
								r.path, p, clip(p.body), h, clip(h.body), r.want)
						}
						return
					}
					if !p.sameAs(parseAnswer(t, r.pa)) || !h.sameAs(parseAnswer(t, r.hs)) || p.String() == h.String() {
						t.Errorf("%s: documented difference %q\n  prometheus-adapter: %s %s (want %s)\n  hpa-signals:        %s %s (want %s)",
							r.path, r.readme, p, clip(p.body), r.pa, h, clip(h.body), r.hs)
					}
					if !strings.Contains(differences, r.readme) {
						t.Errorf("the README's differences do not mention %q", r.readme)
					}
				})
			}
			t.Run("as the HPA controller", func(t *testing.T) {
				i := slices.IndexFunc(tc.requests, func(r diffRequest) bool { return r.name == "pods by label selector" })
				if i < 0 {
					t.Fatal("no request named \"pods by label selector\"")
				}
				for _, path := range []string{customAPI, externalAPI, tc.requests[i].path} {
					for _, a := range []*adapterProc{pa, hs} {
						if got, want := a.as(token).ask(ctx, t, path), a.ask(ctx, t, path); !got.sameAs(want) || got.code != 200 {
							t.Errorf("%s %s with the HPA controller's token: %s %s, want %s as the admin gets", a.name, path, got, clip(got.body), want)
						}
					}
				}
				// Without credentials (what the API server's service
				// proxy sends) neither answers.
				p, h := pa.as("").ask(ctx, t, customAPI), hs.as("").ask(ctx, t, customAPI)
				if p.code != 403 || h.code != 403 {
					t.Errorf("without credentials: prometheus-adapter %s %s, hpa-signals %s %s, want 403 from both", p, clip(p.body), h, clip(h.body))
				}
			})
		})
	}

	// deploy/manifests/config-map.yaml holds resourceRules only: they serve
	// metrics.k8s.io, which hpa-signals does not, so it refuses the file
	// with a message that says so; prometheus-adapter serves that API and
	// no custom metrics.
	t.Run("config-map", func(t *testing.T) {
		manifest := filepath.Join(paSource, "deploy", "manifests", "config-map.yaml")
		var cm struct{ Data map[string]string }
		b, err := os.ReadFile(manifest)
		if err == nil {
			err = yaml.Unmarshal(b, &cm)
		}
		if err != nil || cm.Data["config.yaml"] == "" {
			t.Fatalf("read data.config.yaml of %s: %v", manifest, err)
		}
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o644); err != nil {
			t.Fatal(err)
		}
		want := "no rules or externalRules, so there is nothing to serve (resourceRules serve metrics.k8s.io, which hpa-signals does not: keep metrics-server for it); add rules, or leave prometheus-adapter's configuration out"
		for _, f := range []string{manifest, file} {
			if _, err := promadapter.Load(f); err == nil || err.Error() != want {
				t.Errorf("load %s: %v, want %q", f, err, want)
			}
		}
		pa := startAdapterProc(ctx, t, l, "prometheus-adapter", paBin, "--prometheus-url="+prom.URL(), "--config="+file)
		// It takes the client CA from the cluster moments after /readyz.
		err = cluster.WaitFor(ctx, "prometheus-adapter to serve metrics.k8s.io", time.Minute, func(ctx context.Context) (bool, error) {
			if code, body := pa.get(ctx, "/apis/metrics.k8s.io/v1beta1"); code != 200 {
				return false, fmt.Errorf("%d %s", code, clip(string(body)))
			}
			return true, nil
		})
		if err != nil {
			t.Error(err)
		}
		if code, _ := pa.get(ctx, customAPI); code != 404 {
			t.Errorf("prometheus-adapter with resourceRules only serves custom metrics: %d", code)
		}
	})
}

// serviceAccountToken returns a token of the ServiceAccount
// namespace/name, creating the ServiceAccount if the cluster lacks it (no
// controller-manager runs here to create the controllers' own).
func serviceAccountToken(ctx context.Context, t *testing.T, l *cluster.Local, namespace, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := l.Client().CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := l.Client().CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// requote returns the file with each double-quoted metricsQuery value
// that holds quotes written single-quoted instead.
func requote(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s*metricsQuery: )"(.*"POD".*)"$`)
	out := re.ReplaceAll(b, []byte("${1}'${2}'"))
	if bytes.Equal(out, b) {
		t.Fatalf("%s has no double-quoted metricsQuery with quotes to fix; check the test against the file", file)
	}
	return out
}

// parseAnswer reads an expected answer written as answer.String does:
// "404", "200 [a b*]" or "200 {web-1=2 web-2=500m}".
func parseAnswer(t *testing.T, s string) answer {
	t.Helper()
	code, rest, _ := strings.Cut(s, " ")
	c, err := strconv.Atoi(code)
	if err != nil {
		t.Fatalf("bad expected answer %q", s)
	}
	a := answer{code: c}
	switch {
	case strings.HasPrefix(rest, "["):
		a.names = strings.Fields(strings.Trim(rest, "[]"))
	case strings.HasPrefix(rest, "{"):
		a.values = map[string]int64{}
		for _, kv := range strings.Fields(rest[1 : len(rest)-1]) {
			i := strings.LastIndex(kv, "=")
			q, err := resource.ParseQuantity(kv[i+1:])
			if err != nil {
				t.Fatalf("bad expected value in %q: %v", s, err)
			}
			a.values[kv[:i]] = q.MilliValue()
		}
	}
	return a
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func q(s string) string { return url.QueryEscape(s) }

const brandsCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: brands.cheese.io
spec:
  group: cheese.io
  names: {kind: Brand, plural: brands, singular: brand}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// differentialSeries are the series both adapters read: counters growing
// at fixed rates and gauges at fixed values, from 15 minutes before now
// to 30 minutes after, so every rate and value is the same whenever it is
// evaluated during the test.
func differentialSeries(now time.Time) []promtest.Series {
	from, to, step := now.Add(-15*time.Minute), now.Add(30*time.Minute), 15*time.Second
	var out []promtest.Series
	counter := func(rate float64, labels ...string) {
		out = append(out, promtest.Series{Labels: pairs(labels), Samples: promtest.Linear(from, to, step, rate)})
	}
	gauge := func(v float64, labels ...string) {
		out = append(out, promtest.Series{Labels: pairs(labels), Samples: promtest.Constant(from, to, step, v)})
	}
	for pod, rate := range map[string]float64{"web-1": 2, "web-2": 3, "web-3": 0.5} {
		counter(rate, "__name__", "http_requests_total", "namespace", "shop", "pod", pod, "service", "web", "handler", "api")
	}
	counter(1, "__name__", "http_requests_total", "namespace", "shop", "pod", "web-1", "service", "web", "handler", "health")
	counter(7, "__name__", "http_requests_total", "namespace", "other", "pod", "other-1", "service", "web", "handler", "api")
	counter(4, "__name__", "jobs_processed_total", "kubernetes_namespace", "shop", "kubernetes_pod_name", "web-1")
	counter(1, "__name__", "jobs_processed_total", "kubernetes_namespace", "shop", "kubernetes_pod_name", "web-2")
	for pod, rates := range map[string][]float64{"web-1": {1, 2, 3, 4, 4}, "web-2": {2, 2, 2, 2, 2}} {
		for i, le := range []string{"0.1", "0.25", "0.5", "1", "+Inf"} {
			counter(rates[i], "__name__", "http_request_duration_seconds_bucket", "namespace", "shop", "pod", pod, "le", le)
		}
	}
	counter(0.25, "__name__", "container_cpu_usage_seconds_total", "namespace", "shop", "pod", "web-1", "container", "app")
	counter(0.5, "__name__", "container_cpu_usage_seconds_total", "namespace", "shop", "pod", "web-2", "container", "app")
	counter(100, "__name__", "container_cpu_usage_seconds_total", "namespace", "shop", "pod", "web-1", "container", "POD")
	counter(1000, "__name__", "container_network_receive_bytes_total", "namespace", "shop", "pod", "web-1", "container", "app")
	counter(2000, "__name__", "container_network_receive_bytes_total", "namespace", "shop", "pod", "web-2", "container", "app")
	gauge(3, "__name__", "cheddar", "sharp", "true", "brand", "gouda", "namespace", "shop")
	gauge(12.3456, "__name__", "queue_consumer_lag", "name", "orders", "namespace", "shop")
	gauge(40, "__name__", "queue_depth", "topic", "t1", "name", "orders", "namespace", "other")
	gauge(0.75, "__name__", "queue_ratio", "namespace", "shop", "pod", "web-1")
	gauge(math.NaN(), "__name__", "queue_ratio", "namespace", "shop", "pod", "web-2")
	gauge(1.5, "__name__", "queue_ratio", "namespace", "shop", "pod", "web-3")
	gauge(7.0016, "__name__", "queue_messages_ready", "queue", "orders", "namespace", "other")
	return out
}

func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// sampleConfigRequests are asked with prometheus-adapter's own
// docs/sample-config.yaml.
var sampleConfigRequests = []diffRequest{
	{name: "custom discovery", path: customAPI,
		pa:     "200 [brands.cheese.io/cheesy_goodness* namespaces/container_cpu_usage_seconds namespaces/container_network_receive_bytes namespaces/cpu_usage namespaces/http_requests namespaces/network_receive_bytes pods/container_cpu_usage_seconds* pods/container_network_receive_bytes* pods/cpu_usage* pods/http_requests* pods/network_receive_bytes* services/http_requests*]",
		hs:     "200 [namespaces/container_cpu_usage_seconds namespaces/container_network_receive_bytes namespaces/cpu_usage namespaces/http_requests namespaces/network_receive_bytes pods/container_cpu_usage_seconds* pods/container_network_receive_bytes* pods/cpu_usage* pods/http_requests* pods/network_receive_bytes* services/http_requests*]",
		readme: "a query without `<<.LabelMatchers>>` on some selector"},
	{name: "external discovery", path: externalAPI,
		want: "200 [queue_consumer_lag* queue_depth*]"},
	{name: "pods by label selector", path: customAPI + "/namespaces/shop/pods/*/cpu_usage?labelSelector=" + q("app=web"),
		want: "200 {web-1=250m web-2=500m}"},
	{name: "one pod", path: customAPI + "/namespaces/shop/pods/web-2/network_receive_bytes",
		want: "200 {web-2=2k}"},
	{name: "namespace object", path: customAPI + "/namespaces/shop/metrics/http_requests",
		want: "200 {shop=6500m}"},
	{name: "service object", path: customAPI + "/namespaces/shop/services/web/http_requests",
		want: "200 {web=6500m}"},
	{name: "template rule on pods", path: customAPI + "/namespaces/shop/pods/*/container_cpu_usage_seconds?labelSelector=" + q("app=web"),
		want: "200 {web-1=250m web-2=500m}"},
	{name: "external without a namespace label", path: externalAPI + "/namespaces/shop/queue_consumer_lag?labelSelector=" + q("name=orders"),
		pa: "500", hs: "200 {{name:orders}=12346m}", readme: "a rule without a label for namespaces fails its namespaced queries"},
	{name: "external not namespaced", path: externalAPI + "/namespaces/shop/queue_depth?labelSelector=" + q("topic=t1"),
		want: "200 {{name:orders}=40}"},
}

// userShapesRequests are asked with testdata/prometheus-adapter-user-shapes.yaml.
var userShapesRequests = []diffRequest{
	{name: "custom discovery", path: customAPI,
		want: "200 [namespaces/http_request_duration_seconds_p90 namespaces/http_requests_per_second namespaces/jobs_processed_per_second namespaces/queue_ratio pods/http_request_duration_seconds_p90* pods/http_requests_per_second* pods/jobs_processed_per_second* pods/queue_ratio* services/http_requests_per_second*]"},
	{name: "external discovery", path: externalAPI,
		want: "200 [http_requests_rate* queue_messages_ready*]"},
	{name: "pods by label selector", path: customAPI + "/namespaces/shop/pods/*/http_requests_per_second?labelSelector=" + q("app=web"),
		want: "200 {web-1=3 web-2=3 web-3=500m}"},
	{name: "relabelled pods", path: customAPI + "/namespaces/shop/pods/*/jobs_processed_per_second?labelSelector=" + q("app=web"),
		want: "200 {web-1=4 web-2=1}"},
	{name: "histogram quantile of one pod", path: customAPI + "/namespaces/shop/pods/web-1/http_request_duration_seconds_p90",
		want: "200 {web-1=800m}"},
	{name: "service object", path: customAPI + "/namespaces/shop/services/web/http_requests_per_second",
		want: "200 {web=6500m}"},
	{name: "relabelled namespace object", path: customAPI + "/namespaces/shop/metrics/jobs_processed_per_second",
		want: "200 {shop=5}"},
	{name: "metric selector", path: customAPI + "/namespaces/shop/pods/*/http_requests_per_second?labelSelector=" + q("app=web") + "&metricLabelSelector=" + q("handler=api"),
		want: "200 {web-1=2 web-2=3 web-3=500m}"},
	{name: "NaN in a list", path: customAPI + "/namespaces/shop/pods/*/queue_ratio?labelSelector=" + q("app=web"),
		pa: "200 {web-1=750m web-2=0 web-3=1500m}", hs: "200 {web-1=750m web-3=1500m}", readme: "NaN serves `0`"},
	{name: "NaN of one pod", path: customAPI + "/namespaces/shop/pods/web-2/queue_ratio",
		pa: "200 {web-2=0}", hs: "404", readme: "NaN serves `0`"},
	{name: "no pods selected", path: customAPI + "/namespaces/shop/pods/*/http_requests_per_second?labelSelector=" + q("app=none"),
		want: "404"},
	{name: "pods without series", path: customAPI + "/namespaces/shop/pods/*/http_requests_per_second?labelSelector=" + q("app=idle"),
		pa: "200 {}", hs: "404", readme: "selected pods without series: `200` with an empty list"},
	{name: "pod label as a selector key", path: customAPI + "/namespaces/shop/pods/*/http_requests_per_second?labelSelector=" + q("app=web") + "&metricLabelSelector=" + q("pod=web-1"),
		pa: "200 {web-1=3}", hs: "400", readme: "the namespace and pod labels (and an object's label) may be selector keys"},
	{name: "external with a selector", path: externalAPI + "/namespaces/shop/http_requests_rate?labelSelector=" + q("handler=api"),
		want: "200 {{}=5500m}"},
	{name: "external with a set selector", path: externalAPI + "/namespaces/shop/http_requests_rate?labelSelector=" + q("handler in (api,health)"),
		want: "200 {{}=6500m}"},
	{name: "external naming another namespace", path: externalAPI + "/namespaces/shop/http_requests_rate?labelSelector=" + q("namespace=other"),
		pa: "200 {}", hs: "403", readme: "an external request's `namespace=other` selector"},
	{name: "external not namespaced, rounded", path: externalAPI + "/namespaces/shop/queue_messages_ready?labelSelector=" + q("queue=orders"),
		pa: "200 {{queue:orders}=7001m}", hs: "200 {{queue:orders}=7002m}", readme: "values truncated to milli-units"},
}

// TestMigrationKustomization renders the kustomization of the README's
// migration, step 1, beside a copy of manifests/ with kubectl: hpa-signals
// without its APIServices, serving the copied prometheus-adapter rules
// through --prometheus-adapter-config; and, with the three $patch: delete
// patches removed as step 3 says, with its APIServices.
func TestMigrationKustomization(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, step, _ := strings.Cut(string(readme), "1. **Install hpa-signals next to prometheus-adapter**")
	_, block, ok := strings.Cut(step, "   ```yaml\n")
	block, _, ok2 := strings.Cut(block, "   ```\n")
	if !ok || !ok2 {
		t.Fatal("the README's migration step 1 has no ```yaml block")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "   "))
	}
	kustomization := strings.Join(lines, "\n")

	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "manifests"), os.DirFS("../../manifests")); err != nil {
		t.Fatal(err)
	}
	side := filepath.Join(dir, "side")
	rules, err := os.ReadFile("testdata/prometheus-adapter-user-shapes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(side, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(side, "config.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	render := func(k string) []map[string]any {
		t.Helper()
		if err := os.WriteFile(filepath.Join(side, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(cluster.KubectlPath, "kustomize", side).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s\n%s", err, out, k)
		}
		var objs []map[string]any
		for _, doc := range strings.Split(string(out), "\n---\n") {
			var o map[string]any
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, o)
		}
		return objs
	}
	kinds := func(objs []map[string]any, kind string) []map[string]any {
		var out []map[string]any
		for _, o := range objs {
			if o["kind"] == kind {
				out = append(out, o)
			}
		}
		return out
	}

	// The metrics APIServices are prometheus-adapter's until step 3; the
	// explain API is hpa-signals' own and may be served from step 1.
	apiServices := func(objs []map[string]any) []string {
		var names []string
		for _, o := range kinds(objs, "APIService") {
			names = append(names, fmt.Sprint(o["metadata"].(map[string]any)["name"]))
		}
		slices.Sort(names)
		return names
	}
	objs := render(kustomization)
	if got, want := apiServices(objs), []string{"v1alpha1.explain.hpa-signals.io"}; !slices.Equal(got, want) {
		t.Errorf("step 1 applies the APIServices %v, want only %v", got, want)
	}
	var configMap string
	for _, cm := range kinds(objs, "ConfigMap") {
		md := cm["metadata"].(map[string]any)
		if md["name"] == "prometheus-adapter-rules" && md["namespace"] == "hpa-signals" {
			configMap, _ = cm["data"].(map[string]any)["config.yaml"].(string)
		}
	}
	if configMap != string(rules) {
		t.Errorf("ConfigMap hpa-signals/prometheus-adapter-rules holds %q, want the rules file", configMap)
	}
	deployments := kinds(objs, "Deployment")
	if len(deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deployments))
	}
	pod := deployments[0]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	container := pod["containers"].([]any)[0].(map[string]any)
	if args := fmt.Sprint(container["args"]); !strings.Contains(args, "--prometheus-adapter-config=/etc/prometheus-adapter/config.yaml") {
		t.Errorf("the adapter's args lack --prometheus-adapter-config: %s", args)
	}
	if m := fmt.Sprint(container["volumeMounts"]); !strings.Contains(m, "mountPath:/etc/prometheus-adapter name:prometheus-adapter-rules") {
		t.Errorf("the rules are not mounted at /etc/prometheus-adapter: %s", m)
	}
	if v := fmt.Sprint(pod["volumes"]); !strings.Contains(v, "configMap:map[name:prometheus-adapter-rules]") {
		t.Errorf("no volume of the ConfigMap prometheus-adapter-rules: %s", v)
	}

	// Step 3: without the $patch: delete patches.
	var k map[string]any
	if err := yaml.Unmarshal([]byte(kustomization), &k); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, p := range k["patches"].([]any) {
		if !strings.Contains(fmt.Sprint(p.(map[string]any)["patch"]), "$patch: delete") {
			kept = append(kept, p)
		}
	}
	k["patches"] = kept
	b, err := yaml.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"v1alpha1.explain.hpa-signals.io", "v1beta1.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io"}
	if got := apiServices(render(string(b))); !slices.Equal(got, want) {
		t.Errorf("step 3 applies the APIServices %v, want %v", got, want)
	}
}
