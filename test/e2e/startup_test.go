//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

// startBaselineVar names another adapter binary (say, the main branch's
// make build) that BenchmarkStart measures too, alternating its starts with
// this tree's, under the name "baseline".
const startBaselineVar = "HPA_SIGNALS_START_BASELINE"

// startFixture is a control plane holding the pods, a Prometheus holding
// their series, and the adapter binaries, shared by the starts measured.
type startFixture struct {
	l       *cluster.Local
	prom    *promtest.Server
	promURL string
	bins    []startBinary // this tree's first
}

// startBinary is an adapter binary installed for the starts.
type startBinary struct{ name, path string }

func newStartFixture(ctx context.Context, tb testing.TB) *startFixture {
	tb.Helper()
	dir := tb.TempDir()
	built := buildAdapter(ctx, tb, tb.TempDir(), "-trimpath", "-ldflags=-s -w")
	bins := []startBinary{{"this", installBinary(tb, built, filepath.Join(dir, "this"))}}
	if base := os.Getenv(startBaselineVar); base != "" {
		bins = append(bins, startBinary{"baseline", installBinary(tb, base, filepath.Join(dir, "baseline"))})
	}
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
	return &startFixture{l: l, prom: prom, promURL: prom.URL(), bins: bins}
}

// installBinary copies the binary src to dst in 32 KiB writes, as an image
// layer's extraction writes it. Run straight from the linker's output, the
// binary maps about 20 MiB more file pages: the linker leaves it in the
// page cache in 2 MiB pages (FilePmdMapped in smaps_rollup), each mapped
// whole at its first touch.
func installBinary(tb testing.TB, src, dst string) string {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		tb.Fatal(err)
	}
	// The wrappers hide ReadFrom and WriteTo: no copy_file_range.
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, make([]byte, 32<<10)); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	return dst
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
func (fx *startFixture) measureStart(ctx context.Context, tb testing.TB, bin string, env []string, requests int) startFigures {
	tb.Helper()
	a := launchAdapterProc(tb, fx.l, "hpa-signals", bin, env, "--prometheus-url="+fx.promURL)
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
	// The client CAs are read before serving, not only by the ConfigMap
	// watch after it (k8s.io/apiserver logs this when that read fails).
	if log, err := os.ReadFile(a.proc.LogPath); err != nil {
		tb.Fatal(err)
	} else if strings.Contains(string(log), "Initial population of client CA failed") {
		tb.Errorf("the client CAs were not read before serving:\n%s", a.proc.LogTail(40))
	}

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
	f := fx.measureStart(ctx, t, fx.bins[0].path, os.Environ(), 200)
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
// reported as median and max. The binary is built as make build builds it.
// With HPA_SIGNALS_START_BASELINE set, it compares that binary's starts with
// this tree's, alternating them, without runtime settings. Run it with make
// bench (BENCH=Start).
func BenchmarkStart(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	fx := newStartFixture(ctx, b)
	settings := startSettings
	if len(fx.bins) > 1 {
		settings = settings[:1]
	}
	b.Logf("load average before: %s", loadAverage(b))
	for _, s := range settings {
		b.Run(s.name, func(b *testing.B) {
			env := os.Environ()
			if s.env != "" {
				env = append(env, s.env)
			}
			figs := make([][]startFigures, len(fx.bins))
			for i := range startRuns {
				for j, bin := range fx.bins {
					f := fx.measureStart(ctx, b, bin.path, env, 2000)
					b.Logf("start %d, %s: %s", i+1, bin.name, f)
					figs[j] = append(figs[j], f)
				}
			}
			if len(fx.bins) == 1 {
				reportStarts(b, figs[0])
				return
			}
			for j, bin := range fx.bins {
				b.Run(bin.name, func(b *testing.B) { reportStarts(b, figs[j]) })
			}
		})
	}
	b.Logf("load average after: %s", loadAverage(b))
}

// reportStarts reports the median and the max of each figure.
func reportStarts(b *testing.B, figs []startFigures) {
	report := func(unit string, x func(startFigures) float64) {
		xs := make([]float64, len(figs))
		for i, f := range figs {
			xs[i] = x(f)
		}
		slices.Sort(xs)
		b.ReportMetric(xs[len(xs)/2], unit)
		b.ReportMetric(xs[len(xs)-1], "max-"+unit)
	}
	report("ready-ms", func(f startFigures) float64 { return f.ready.Seconds() * 1000 })
	report("answer-ms", func(f startFigures) float64 { return f.answer.Seconds() * 1000 })
	report("RSS-start-MiB", func(f startFigures) float64 { return mib(f.rssStarted) })
	report("RSS-loaded-MiB", func(f startFigures) float64 { return mib(f.rssLoaded) })
	report("RSS-peak-MiB", func(f startFigures) float64 { return mib(f.rssHWM) })
	report("RSS-anon-MiB", func(f startFigures) float64 { return mib(f.anon) })
	report("RSS-file-MiB", func(f startFigures) float64 { return mib(f.file) })
	report("CPU-us/req", func(f startFigures) float64 { return float64(f.cpuPerRequest.Microseconds()) })
	b.ReportMetric(0, "ns/op")
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
