//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/hpa-signals/hpa-signals/internal/closedloop"
	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// podsReadConcurrency is how many requests the load keeps in flight.
const podsReadConcurrency = 16

const customV1beta2 = "/apis/custom.metrics.k8s.io/v1beta2"

// podsReadPath is the main request of hpa-signals, an HPA's read of a Pods
// metric of the start fixture: 50 pods, each the sum of 20 series.
var podsReadPath = customV1beta2 + "/namespaces/" + startNamespace + "/pods/*/http_requests_per_second?labelSelector=" + url.QueryEscape("app=web")

// podsReadRules gives prometheus-adapter the metric of the
// http_requests_per_second preset with the preset's query (its default
// window, 2m), so both adapters answer podsReadPath with the same values.
const podsReadRules = `rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum by (<<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[2m]))'
`

// apiServiceNamespace is where the adapters' Services are: their serving
// certificates name <adapter>.test.svc (launchAdapterProc).
const apiServiceNamespace = "test"

// podsReadFixture is the start fixture with both adapters running on it,
// hpa-signals with its default flags and prometheus-adapter v0.12.0 with
// podsReadRules, and the kube-apiserver as a client reaches them through
// the aggregator.
type podsReadFixture struct {
	*startFixture
	hs, pa *adapterProc
	// api asks the kube-apiserver as the cluster admin; its proc is the
	// kube-apiserver's process.
	api *adapterProc
	// served is the adapter the APIService points at, nil before the first
	// registration.
	served *adapterProc
}

func newPodsReadFixture(ctx context.Context, tb testing.TB) *podsReadFixture {
	tb.Helper()
	paBin, err := localstack.EnsurePrometheusAdapter(ctx, localstack.PrometheusAdapterVersion, os.Stderr)
	if err != nil {
		tb.Fatal(err)
	}
	fx := &podsReadFixture{startFixture: newStartFixture(ctx, tb)}
	rules := filepath.Join(tb.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(podsReadRules), 0o644); err != nil {
		tb.Fatal(err)
	}
	fx.hs = startAdapterProc(ctx, tb, fx.l, "hpa-signals", fx.bins[0].path, "--prometheus-url="+fx.promURL)
	fx.pa = startAdapterProc(ctx, tb, fx.l, "prometheus-adapter", paBin, "--prometheus-url="+fx.promURL, "--config="+rules,
		"--client-qps=1000", "--client-burst=2000")
	if err := fx.l.CreateNamespace(ctx, apiServiceNamespace); err != nil {
		tb.Fatal(err)
	}
	rc := fx.l.RESTConfig()
	cfg, err := rest.TLSConfigFor(rc)
	if err != nil {
		tb.Fatal(err)
	}
	i := slices.IndexFunc(fx.l.Processes(), func(p *cluster.Process) bool { return p.Name == "kube-apiserver" })
	if i < 0 {
		tb.Fatal("the local control plane has no kube-apiserver process")
	}
	fx.api = &adapterProc{name: "kube-apiserver", url: strings.TrimSuffix(rc.Host, "/"), proc: fx.l.Processes()[i],
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}}
	// prometheus-adapter lists its metrics in the background after
	// /readyz; both take the client CA from the cluster moments after it.
	for _, a := range []*adapterProc{fx.hs, fx.pa} {
		fx.waitPodsRead(ctx, tb, a, a.name+" directly")
	}
	return fx
}

// waitPodsRead waits until a answers podsReadPath with every pod's value.
func (fx *podsReadFixture) waitPodsRead(ctx context.Context, tb testing.TB, a *adapterProc, what string) {
	tb.Helper()
	err := cluster.WaitFor(ctx, what+" to answer the Pods read", 2*time.Minute, func(ctx context.Context) (bool, error) {
		err := startAnswerErr(a.ask(ctx, tb, podsReadPath))
		return err == nil, err
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// serveThroughAggregator points the APIService of custom.metrics.k8s.io
// v1beta2 at a (an ExternalName Service for 127.0.0.1 on its port, its
// CA), and waits until the aggregator answers discovery as a does and
// the Pods read with every value. Switching from one adapter to the other
// is one apply: the aggregator's proxy follows the APIService.
func (fx *podsReadFixture) serveThroughAggregator(ctx context.Context, tb testing.TB, a *adapterProc) {
	tb.Helper()
	manifest := localAPIService(a.name, apiServiceNamespace, a.port, "custom.metrics.k8s.io", "v1beta2", 200, a.caBundle)
	if err := cluster.Apply(ctx, fx.l, manifest); err != nil {
		tb.Fatal(err)
	}
	if err := cluster.WaitAPIServiceAvailable(ctx, fx.l, "v1beta2.custom.metrics.k8s.io", time.Minute); err != nil {
		tb.Fatal(err)
	}
	want := a.ask(ctx, tb, customV1beta2)
	err := cluster.WaitFor(ctx, "the aggregator to serve "+a.name+"'s discovery", time.Minute, func(ctx context.Context) (bool, error) {
		if got := fx.api.ask(ctx, tb, customV1beta2); !got.sameAs(want) {
			return false, fmt.Errorf("%s, want %s", clip(got.String()), clip(want.String()))
		}
		return true, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	fx.waitPodsRead(ctx, tb, fx.api, a.name+" through the aggregator")
	fx.served = a
}

// podsReadRow is one measurement: an adapter answering one request,
// directly or through the aggregator.
type podsReadRow struct {
	name       string // adapter/request/route
	adapter    *adapterProc
	path       string
	accept     string // the Accept header; empty: the load tool's (JSON)
	aggregator bool
}

// protobufAccept is what the kube-controller-manager's HPA controller asks
// the metrics APIs for by default (--kube-api-content-type).
const protobufAccept = "application/vnd.kubernetes.protobuf"

// forEachRow calls measure for the rows in order: hpa-signals, then
// prometheus-adapter, each directly and then through the aggregator (the
// APIService switched to it before), each the Pods read and discovery;
// directly to hpa-signals also the Pods read in protobuf, as the HPA
// controller asks for it.
func (fx *podsReadFixture) forEachRow(ctx context.Context, tb testing.TB, measure func(podsReadRow)) {
	tb.Helper()
	for _, a := range []*adapterProc{fx.hs, fx.pa} {
		for _, aggregator := range []bool{false, true} {
			route := "direct"
			if aggregator {
				route = "aggregator"
				fx.serveThroughAggregator(ctx, tb, a)
			}
			reqs := []struct{ name, path, accept string }{{"pods", podsReadPath, ""}, {"discovery", customV1beta2, ""}}
			if a == fx.hs && !aggregator {
				reqs = append(reqs, struct{ name, path, accept string }{"pods-protobuf", podsReadPath, protobufAccept})
			}
			for _, req := range reqs {
				measure(podsReadRow{name: a.name + "/" + req.name + "/" + route, adapter: a, path: req.path, accept: req.accept, aggregator: aggregator})
			}
		}
	}
}

// rowFigures is what one row measured: the load's result, the CPU time
// per request of the adapter, of the kube-apiserver (which proxies the
// aggregator's requests and answers prometheus-adapter's pod lists) and
// of Prometheus (which answers prometheus-adapter's query per request and
// hpa-signals' refreshes), and the bytes the adapter allocated per request
// (negative when its /metrics has no go_memstats_alloc_bytes_total). CPU
// and allocations are the processes' totals over the load, background work
// included.
type rowFigures struct {
	closedloop.Result
	cpu, apiserverCPU, promCPU time.Duration
	alloc                      float64
}

func (f rowFigures) String() string {
	s := fmt.Sprintf("%s; CPU per request: adapter %s, kube-apiserver %s, Prometheus %s", f.Result,
		f.cpu.Round(time.Microsecond), f.apiserverCPU.Round(time.Microsecond), f.promCPU.Round(time.Microsecond))
	if f.alloc >= 0 {
		s += fmt.Sprintf("; adapter allocated %.1f KB/req", f.alloc/1000)
	}
	return s
}

// measure runs the closed-loop load of row for d.
func (fx *podsReadFixture) measure(ctx context.Context, tb testing.TB, row podsReadRow, d time.Duration) rowFigures {
	tb.Helper()
	if row.aggregator && fx.served != row.adapter {
		tb.Fatalf("%s: the APIService points at %v", row.name, fx.served)
	}
	target := row.adapter
	if row.aggregator {
		target = fx.api
	}
	pids := []int{row.adapter.proc.PID(), fx.api.proc.PID(), fx.prom.PID()}
	cpu := func() []float64 {
		out := make([]float64, len(pids))
		for i, pid := range pids {
			out[i] = cpuSeconds(tb, pid)
		}
		return out
	}
	// Reading /metrics allocates too: two reads in a row tell how much,
	// which the count over the load then leaves out.
	a0, exposed := allocatedBytes(ctx, row.adapter)
	a1, _ := allocatedBytes(ctx, row.adapter)
	cpu0 := cpu()
	var header http.Header
	if row.accept != "" {
		header = http.Header{"Accept": {row.accept}}
	}
	res, err := closedloop.Run(ctx, closedloop.Options{
		URL:         target.url + row.path,
		TLS:         target.client.Transport.(*http.Transport).TLSClientConfig,
		Header:      header,
		Concurrency: podsReadConcurrency,
		Duration:    d,
	})
	if err != nil {
		tb.Fatalf("%s: %v", row.name, err)
	}
	cpu1 := cpu()
	a2, _ := allocatedBytes(ctx, row.adapter)
	f := rowFigures{Result: res, alloc: -1}
	if n := float64(res.Requests); n > 0 {
		perRequest := func(i int) time.Duration { return time.Duration((cpu1[i] - cpu0[i]) / n * float64(time.Second)) }
		f.cpu, f.apiserverCPU, f.promCPU = perRequest(0), perRequest(1), perRequest(2)
		if exposed {
			f.alloc = max(0, (a2-a1)-(a1-a0)) / n
		}
	}
	return f
}

// allocatedBytes is the adapter's go_memstats_alloc_bytes_total, false
// when its /metrics does not have it.
func allocatedBytes(ctx context.Context, a *adapterProc) (float64, bool) {
	code, body := a.get(ctx, "/metrics")
	if code != http.StatusOK {
		return 0, false
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "go_memstats_alloc_bytes_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// loadDuration is how long each row's load runs in BenchmarkPodsRead:
// $HPA_SIGNALS_LOAD_DURATION, else 5s.
func loadDuration(tb testing.TB) time.Duration {
	const name = "HPA_SIGNALS_LOAD_DURATION"
	v := os.Getenv(name)
	if v == "" {
		return 5 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive Go duration such as 5s or 30s", name, v)
	}
	return d
}
