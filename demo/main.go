// Command demo is `make demo`: it starts the local stack (control plane,
// Prometheus, Kafka, the adapter, the sample workloads), plays a scripted
// story against the example HPAs (a QPS wave, a latency spike, a goroutine
// burst, a Kafka burst that drains) while a live view shows every HPA's
// signal, target, replicas and last scaling plus the adapter's own figures,
// and writes a timeline picture of the run. Everything it started is torn
// down at the end, on failure and on Ctrl-C.
//
//	go run ./demo [--short] [--out DIR] [--keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command line.
type options struct {
	short    bool
	keep     bool
	out      string
	interval time.Duration
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.short, "short", getenv("DEMO_SHORT") == "1", "the short, non-interactive CI run (also DEMO_SHORT=1)")
	fs.BoolVar(&o.keep, "keep", false, "after the story, keep everything running until Ctrl-C")
	fs.StringVar(&o.out, "out", "", "directory for the timeline picture (default: a new temporary directory)")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "how often the live view refreshes")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.interval < 500*time.Millisecond {
		return o, fmt.Errorf("--interval must be at least 500ms, got %s", o.interval)
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	if opts.out == "" {
		if opts.out, err = os.MkdirTemp("", "hpa-signals-demo-"); err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 1
		}
	} else if err := os.MkdirAll(opts.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	fmt.Fprintln(stderr, "demo: starting the stack (the first run builds the control plane: ~13 minutes on 2 cores)")
	driver, info, stopStack, err := startStack(ctx, stackOptions{Progress: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "demo: start the stack:", err)
		if stopErr := stopStack(); stopErr != nil {
			fmt.Fprintln(stderr, "demo: stop the stack:", stopErr)
		}
		return 1
	}
	code := play(ctx, opts, driver, info, stdout, stderr)

	stopSignals() // a second Ctrl-C now kills the demo outright
	fmt.Fprintln(stderr, "demo: stopping everything it started")
	if err := stopStack(); err != nil {
		fmt.Fprintln(stderr, "demo: stop the stack:", err)
		code = max(code, 1)
	}
	fmt.Fprintf(stdout, "logs: %s\n", info.LogsDir)
	return code
}

// play runs the live view and the story, then writes the timeline.
func play(ctx context.Context, opts options, driver Driver, info stackInfo, stdout, stderr io.Writer) int {
	if len(info.Namespaces) == 0 {
		info.Namespaces = []string{demoNamespace}
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", info.Kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "demo: load kubeconfig:", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintln(stderr, "demo: client:", err)
		return 1
	}
	watcher, err := NewWatcher(WatcherOptions{
		Client: client, Namespaces: info.Namespaces, Interval: opts.interval,
		MetricsURL: info.MetricsURL, HTTPClient: info.MetricsClient,
	})
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	hint := pokeHint(info.Kubeconfig, info.Namespaces[0], info.PluginDir)
	tty := isTerminal(stdout)
	if !tty {
		fmt.Fprintln(stdout, hint)
	}

	var timeline Timeline
	screen := &screen{out: stdout, tty: tty}
	viewCtx, stopView := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watcher.Run(viewCtx, func(s Snapshot) {
			timeline.Record(s)
			if tty {
				s.Hint = hint
			}
			screen.show(s)
		})
	}()

	story := NewStory(opts.short)
	results, storyErr := story.Run(ctx, driver, RunOptions{
		Latest: watcher.Latest,
		OnStep: func(i int, st Step) {
			title := fmt.Sprintf("step %d/%d: %s", i+1, len(story.Steps), st.Title)
			screen.setStep(title, st.Expect)
			timeline.Mark(time.Now(), st.Title)
		},
	})
	screen.setStep("story over", "")
	if storyErr == nil && opts.keep {
		fmt.Fprintln(stderr, "demo: story over; everything keeps running until Ctrl-C")
		<-ctx.Done()
	}
	stopView()
	wg.Wait()

	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, Summary(results))
	code := 0
	for _, r := range results {
		if !r.Met {
			code = 1
		}
	}
	switch {
	case errors.Is(storyErr, context.Canceled):
		fmt.Fprintln(stderr, "demo: interrupted")
		code = 130
	case storyErr != nil:
		fmt.Fprintln(stderr, "demo:", storyErr)
		code = 1
	}
	svg := filepath.Join(opts.out, "timeline.svg")
	if err := writeTimeline(&timeline, svg, opts.short); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		code = max(code, 1)
	} else {
		fmt.Fprintf(stdout, "timeline: %s\n", svg)
	}
	return code
}

func writeTimeline(t *Timeline, path string, short bool) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	title := "hpa-signals demo, " + time.Now().UTC().Format("2006-01-02 15:04 UTC")
	if short {
		title += " (short run)"
	}
	if err := t.WriteSVG(f, title); err != nil {
		f.Close()
		return fmt.Errorf("write timeline %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write timeline %s: %w", path, err)
	}
	return nil
}

// pokeHint says how to look at the cluster while the demo runs; with
// pluginDir, how to ask kubectl hpa-signals explain about an HPA.
func pokeHint(kubeconfig, namespace, pluginDir string) string {
	external := fmt.Sprintf("/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/kafka_consumer_lag?labelSelector=%s",
		namespace, url.QueryEscape("group=demo.billing,topic="+demoTopic))
	hint := fmt.Sprintf("poke it meanwhile:\n  export KUBECONFIG=%s\n  kubectl get hpa -n %s\n  kubectl get --raw '%s'",
		kubeconfig, namespace, external)
	if pluginDir != "" {
		hint += fmt.Sprintf("\n  PATH=%s:$PATH kubectl hpa-signals explain -n %s billing-consumer   # every step of an HPA's metrics, ✓ or ✗ with the fix", pluginDir, namespace)
	}
	return hint
}

// isTerminal reports whether w is a terminal, where frames replace each
// other; elsewhere (CI logs, pipes, /dev/null) they are appended.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// screen prints frames. On a terminal every frame is drawn; in a log only
// frames where the step or a replica count changed, and one every
// plainEvery, so CI logs stay short. Safe for concurrent use.
type screen struct {
	out io.Writer
	tty bool

	mu           sync.Mutex
	step, expect string
	lastKey      string
	lastPrinted  time.Time
}

const plainEvery = 30 * time.Second

func (s *screen) setStep(step, expect string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step, s.expect = step, expect
}

func (s *screen) show(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap.Step, snap.Expect = s.step, s.expect
	key := frameKey(snap)
	if !s.tty && key == s.lastKey && snap.Time.Sub(s.lastPrinted) < plainEvery {
		return
	}
	s.lastKey, s.lastPrinted = key, snap.Time
	_, _ = io.WriteString(s.out, Render(snap, s.tty)) // a frame that cannot be written is not worth stopping the story for
}

// frameKey is what makes a frame worth printing in a log.
func frameKey(s Snapshot) string {
	var b strings.Builder
	b.WriteString(s.Step)
	for _, h := range s.HPAs {
		fmt.Fprintf(&b, "|%s %d %d", h.Key(), h.CurrentReplicas, h.DesiredReplicas)
	}
	return b.String()
}
