//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// The start-up fixture: startPods pods labelled app=web in namespace
// startNamespace, each with startHandlers series of http_requests_total
// (1,000 series), read through the built-in http_requests_per_second
// preset, with no catalog file.
const (
	startNamespace = "web"
	startPods      = 50
	startHandlers  = 20
)

// startPodsPath is the warm Pods read an HPA of the fixture sends.
var startPodsPath = customAPI + "/namespaces/" + startNamespace + "/pods/*/http_requests_per_second?labelSelector=" + url.QueryEscape("app=web")

// startFixture is a control plane holding the pods, a Prometheus holding
// their series, and the adapter binary, shared by the starts measured.
type startFixture struct {
	l       *cluster.Local
	prom    *promtest.Server
	promURL string
	bin     string
}

func newStartFixture(ctx context.Context, tb testing.TB) *startFixture {
	tb.Helper()
	bin := buildAdapter(ctx, tb, tb.TempDir())
	l := startLocal(ctx, tb)
	if err := l.CreateNamespace(ctx, startNamespace); err != nil {
		tb.Fatal(err)
	}
	pods := make([]string, startPods)
	for i := range pods {
		pods[i] = fmt.Sprintf("web-%02d", i)
	}
	createPods(ctx, tb, l, startNamespace, "web", pods...)
	prom := promtest.StartWith(tb, promserver.Options{RemoteWrite: true})
	now := time.Now()
	samples := promtest.Linear(now.Add(-5*time.Minute), now.Add(30*time.Minute), 15*time.Second, 1)
	var series []promtest.Series
	for _, pod := range pods {
		for h := range startHandlers {
			series = append(series, promtest.Series{Labels: map[string]string{
				"__name__": "http_requests_total", "namespace": startNamespace, "pod": pod,
				"handler": fmt.Sprintf("h%02d", h), "code": "200", "method": "get",
			}, Samples: samples})
		}
	}
	if err := promtest.RemoteWrite(ctx, prom.URL(), series); err != nil {
		tb.Fatal(err)
	}
	return &startFixture{l: l, prom: prom, promURL: prom.URL(), bin: bin}
}

// startFigures is what one start of the adapter measured: exec to /readyz
// answering 200, exec to the first 200 of startPodsPath with every pod's
// value, and resident memory (VmRSS) right after that answer and after the
// requests that followed, with the peak (VmHWM) over all of it and how much
// of the last figure is anonymous memory (heap, stacks: what GOGC and
// GOMEMLIMIT act on) and file pages (the binary's code and data).
type startFigures struct {
	ready, answer                 time.Duration
	rssStarted, rssLoaded, rssHWM uint64
	anon, file                    uint64
	cpuPerRequest                 time.Duration // the adapter's user+system CPU over the requests
}

func (f startFigures) String() string {
	return fmt.Sprintf("ready %s, first answer %s, RSS %.1f MiB after start, %.1f MiB after requests (anon %.1f, file %.1f), peak %.1f MiB, %s CPU per request",
		f.ready.Round(time.Millisecond), f.answer.Round(time.Millisecond), mib(f.rssStarted), mib(f.rssLoaded), mib(f.anon), mib(f.file), mib(f.rssHWM), f.cpuPerRequest.Round(time.Microsecond))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// measureStart starts the adapter with env, polls /readyz every 5ms until it
// answers 200, then sends the Pods read, which must answer at once, then
// requests more, 16 at a time, and stops the adapter.
func (fx *startFixture) measureStart(ctx context.Context, tb testing.TB, env []string, requests int) startFigures {
	tb.Helper()
	a := launchAdapterProc(tb, fx.l, "hpa-signals", fx.bin, env, "--prometheus-url="+fx.promURL)
	defer func() {
		if err := a.proc.Stop(); err != nil {
			tb.Errorf("stop the adapter: %v", err)
		}
	}()
	var f startFigures
	deadline := time.Now().Add(time.Minute)
	for f.ready == 0 {
		if exited, err := a.proc.ExitErr(); exited {
			tb.Fatalf("the adapter exited: %v\n%s", err, a.proc.LogTail(40))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("/readyz not 200 after a minute\n%s", a.proc.LogTail(40))
		}
		if code, _ := a.get(ctx, "/readyz"); code == http.StatusOK {
			f.ready = time.Since(a.started)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Ready means able to serve: the first read after it must answer.
	ans := a.ask(ctx, tb, startPodsPath)
	f.answer = time.Since(a.started)
	if ans.code != http.StatusOK {
		tb.Fatalf("the first Pods read after /readyz answered 200: %d %s", ans.code, ans.body)
	}
	checkStartAnswer(tb, ans)
	f.rssStarted = rss(tb, a.proc.RSSBytes)

	cpu0 := cpuSeconds(tb, a.proc.PID())
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[int]int{}
	next := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			for range next {
				if code, _ := a.get(ctx, startPodsPath); code != http.StatusOK {
					mu.Lock()
					failed[code]++
					mu.Unlock()
				}
			}
		})
	}
	for range requests {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if requests > 0 {
		f.cpuPerRequest = time.Duration((cpuSeconds(tb, a.proc.PID()) - cpu0) / float64(requests) * float64(time.Second))
	}
	if len(failed) > 0 {
		tb.Errorf("%d requests after the first answer: status codes other than 200: %v", requests, failed)
	}
	f.rssLoaded = rss(tb, a.proc.RSSBytes)
	status := func(field string) func() (uint64, error) {
		return func() (uint64, error) { return a.proc.StatusBytes(field) }
	}
	f.rssHWM = rss(tb, status("VmHWM"))
	f.anon = rss(tb, status("RssAnon"))
	f.file = rss(tb, status("RssFile"))
	return f
}

func rss(tb testing.TB, read func() (uint64, error)) uint64 {
	tb.Helper()
	b, err := read()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkStartAnswer checks the answer holds every pod with its rate.
func checkStartAnswer(tb testing.TB, ans answer) {
	tb.Helper()
	if err := startAnswerErr(ans); err != nil {
		tb.Fatalf("first answer: %v", err)
	}
}

// startAnswerErr says how ans is not a 200 holding every pod with its
// rate: each handler's counter grows by 1 per second, so a pod's sum is
// startHandlers.
func startAnswerErr(ans answer) error {
	if ans.code != http.StatusOK {
		return fmt.Errorf("%d %s", ans.code, clip(ans.body))
	}
	if len(ans.values) != startPods {
		return fmt.Errorf("%d pods, want %d: %s", len(ans.values), startPods, ans)
	}
	for pod, milli := range ans.values {
		if got := float64(milli) / 1000; math.Abs(got-startHandlers) > 0.01*startHandlers {
			return fmt.Errorf("pod %s = %g, want %d (±1%%)", pod, got, startHandlers)
		}
	}
	return nil
}

// TestStartup is the short form of BenchmarkStart, in make test so the
// harness keeps working: one start, its first answer checked, 200 requests.
func TestStartup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fx := newStartFixture(ctx, t)
	f := fx.measureStart(ctx, t, os.Environ(), 200)
	t.Logf("%s (load average %s)", f, loadAverage(t))
}

// startRuns is how many times BenchmarkStart starts the adapter per setting.
const startRuns = 5

// startSettings are the Go runtime settings BenchmarkStart compares: none,
// and the ones a Deployment could set in its env.
var startSettings = []struct{ name, env string }{
	{"default", ""},
	{"GOGC=50", "GOGC=50"},
	{"GOMEMLIMIT=32MiB", "GOMEMLIMIT=32MiB"},
}

// BenchmarkStart measures the adapter's start on a local control plane
// with 50 pods and 1,000 series: exec to /readyz 200, exec to the first 200
// of the warm Pods read, VmRSS after that answer and after 2,000 more reads
// (16 concurrent), VmHWM, the anonymous part of VmRSS (heap and stacks,
// what GOGC and GOMEMLIMIT act on; the rest is the binary's pages) and the
// adapter's CPU time per read; startRuns starts per Go runtime setting,
// reported as median and max. Run it with make bench (BENCH=Start).
func BenchmarkStart(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	fx := newStartFixture(ctx, b)
	b.Logf("load average before: %s", loadAverage(b))
	for _, s := range startSettings {
		b.Run(s.name, func(b *testing.B) {
			env := os.Environ()
			if s.env != "" {
				env = append(env, s.env)
			}
			var ready, answer, started, loaded, peak, anon, cpu []float64
			for i := range startRuns {
				f := fx.measureStart(ctx, b, env, 2000)
				b.Logf("start %d: %s", i+1, f)
				ready = append(ready, f.ready.Seconds()*1000)
				answer = append(answer, f.answer.Seconds()*1000)
				started = append(started, mib(f.rssStarted))
				loaded = append(loaded, mib(f.rssLoaded))
				peak = append(peak, mib(f.rssHWM))
				anon = append(anon, mib(f.anon))
				cpu = append(cpu, float64(f.cpuPerRequest.Microseconds()))
			}
			report := func(unit string, xs []float64) {
				slices.Sort(xs)
				b.ReportMetric(xs[len(xs)/2], unit)
				b.ReportMetric(xs[len(xs)-1], "max-"+unit)
			}
			report("ready-ms", ready)
			report("answer-ms", answer)
			report("RSS-start-MiB", started)
			report("RSS-loaded-MiB", loaded)
			report("RSS-peak-MiB", peak)
			report("RSS-anon-MiB", anon)
			report("CPU-us/req", cpu)
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Logf("load average after: %s", loadAverage(b))
}

// loadAverage is the machine's 1, 5 and 15 minute load averages: the
// machine is shared, and the timings depend on it.
func loadAverage(tb testing.TB) string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
