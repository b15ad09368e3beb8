//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// benchRules is one broad rule over every series of the benchmark, of the
// shape of prometheus-adapter's sample rule for non-cAdvisor counters.
const benchRules = `rules:
- seriesQuery: '{__name__=~"^bench_.*_total$",namespace!="",pod!=""}'
  resources:
    template: "<<.Resource>>"
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
`

// benchNames is how many metric names the series are spread over.
const benchNames = 20

// BenchmarkDiscovery measures what discovering the metrics of a broad rule
// costs, for 10,000 and 100,000 series over 20 metric names, with
// hpa-signals (--prometheus-adapter-config, which asks Prometheus for
// names) and prometheus-adapter v0.12.0 (which lists every series) side by
// side on the same Prometheus and rules file, relisting every 10s: each
// adapter's peak resident memory over six relists and its CPU seconds per
// relist. hpa-signals' memory must not grow with the series count. Run it
// with make bench (BENCH=Discovery).
func BenchmarkDiscovery(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	paBin, err := localstack.EnsurePrometheusAdapter(ctx, localstack.PrometheusAdapterVersion, os.Stderr)
	if err != nil {
		b.Fatal(err)
	}
	hsBin := buildAdapter(ctx, b, b.TempDir())
	l := startLocal(ctx, b)
	rules := filepath.Join(b.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(benchRules), 0o644); err != nil {
		b.Fatal(err)
	}
	const relist = 10 * time.Second
	var smallest uint64 // hpa-signals' peak RSS with the fewest series
	for _, n := range []int{10_000, 100_000} {
		b.Run("series="+strconv.Itoa(n), func(b *testing.B) {
			prom := promtest.StartWith(b, promserver.Options{RemoteWrite: true})
			began := time.Now()
			if err := promtest.RemoteWrite(ctx, prom.URL(), benchSeries(time.Now(), n)); err != nil {
				b.Fatal(err)
			}
			b.Logf("wrote %d series in %s", n, time.Since(began).Round(time.Millisecond))
			args := []string{"--prometheus-url=" + prom.URL(), "--metrics-relist-interval=" + relist.String(), "--metrics-max-age=10m"}
			adapters := []*adapterProc{
				startAdapterProc(ctx, b, l, "hpa-signals", hsBin, append(args, "--prometheus-adapter-config="+rules)...),
				startAdapterProc(ctx, b, l, "prometheus-adapter", paBin, append(args, "--config="+rules)...),
			}
			for _, a := range adapters {
				err := cluster.WaitFor(ctx, a.name+" to list the rule's metrics", 2*time.Minute, func(ctx context.Context) (bool, error) {
					ans := a.ask(ctx, b, customAPI)
					if got := countPrefix(ans.names, "pods/bench_"); got != benchNames {
						return false, fmt.Errorf("%d pods metrics listed (%d)", got, ans.code)
					}
					return true, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu0 := make([]float64, len(adapters))
			for i, a := range adapters {
				cpu0[i] = cpuSeconds(b, a.proc.PID())
			}
			const relists = 6
			peak := make([]uint64, len(adapters))
			for end := time.Now().Add(relists * relist); time.Now().Before(end); time.Sleep(time.Second) {
				for i, a := range adapters {
					if rss, err := a.proc.RSSBytes(); err == nil && rss > peak[i] {
						peak[i] = rss
					}
				}
			}
			for i, a := range adapters {
				cpu := (cpuSeconds(b, a.proc.PID()) - cpu0[i]) / relists
				b.ReportMetric(float64(peak[i])/(1<<20), a.name+"-RSS-MiB")
				b.ReportMetric(cpu, a.name+"-CPU-s/relist")
				b.Logf("%s: peak RSS %d MiB, %.3f CPU-s per relist", a.name, peak[i]>>20, cpu)
			}
			// hpa-signals holds metric names, not series: ten times the
			// series (over the same names) must not grow its memory
			// beyond noise.
			if smallest == 0 {
				smallest = peak[0]
			} else if hs := peak[0]; hs > smallest+8<<20 {
				b.Errorf("hpa-signals' peak RSS is %d MiB with %d series, %d MiB with the fewest: it grows with series, want flat (within 8 MiB)", hs>>20, n, smallest>>20)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchSeries returns n counters spread over benchNames metric names, 100
// namespaces and n/benchNames pods, with samples from 3 minutes ago to 10
// minutes ahead.
func benchSeries(now time.Time, n int) []promtest.Series {
	from, to := now.Add(-3*time.Minute), now.Add(10*time.Minute)
	samples := promtest.Linear(from, to, time.Minute, 1)
	out := make([]promtest.Series, n)
	for i := range out {
		pod := i / benchNames
		out[i] = promtest.Series{Labels: map[string]string{
			"__name__":  fmt.Sprintf("bench_metric_%02d_total", i%benchNames),
			"namespace": fmt.Sprintf("ns-%02d", pod%100),
			"pod":       fmt.Sprintf("pod-%05d", pod),
			"service":   fmt.Sprintf("svc-%02d", pod%50),
			"instance":  fmt.Sprintf("10.0.%d.%d:8080", pod/250, pod%250),
		}, Samples: samples}
	}
	return out
}

func countPrefix(names []string, prefix string) int {
	n := 0
	for _, s := range names {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// cpuSeconds is the user and system CPU time pid has used.
func cpuSeconds(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}
