package config

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	clocktesting "k8s.io/utils/clock/testing"
)

func catalogWith(name string) string {
	return "presets: false\nmetrics:\n  - {name: " + name + ", apis: [external], source: prometheus, query: 'sum(" + name + "{<<.LabelMatchers>>})'}\n"
}

// writeAtomic replaces path the way editors and kubectl cp do, so a reload
// never sees a half-written file.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startWatcher runs w until the test ends and checks that Run returns.
func startWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// testWatcher is a Watcher on a fake clock whose hooks report to the test.
type testWatcher struct {
	*Watcher
	clock  *clocktesting.FakeClock
	parsed chan error    // each parse Run attempts
	armed  chan struct{} // a file event armed the debounce timer
	mu     sync.Mutex
	seen   []string // first metric of each catalog applied
}

func newTestWatcher(t *testing.T, path string) *testWatcher {
	t.Helper()
	w, err := NewWatcher(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := &testWatcher{
		Watcher: w,
		clock:   clocktesting.NewFakeClock(time.Now()),
		parsed:  make(chan error, 10),
		armed:   make(chan struct{}, 1),
	}
	w.clock = tw.clock
	w.reloaded = func(err error) {
		select {
		case tw.parsed <- err:
		default: // a test that does not read them must not block Run
		}
	}
	w.armed = func() {
		select {
		case tw.armed <- struct{}{}:
		default: // one pending signal is enough to step the clock
		}
	}
	w.applied = func(c *Catalog) {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		tw.seen = append(tw.seen, c.Metrics[0].Name)
	}
	return tw
}

// nextParse returns the error of the next parse Run attempts. Call it
// after changing the file: whenever a file event has armed the debounce
// timer, it steps the fake clock past the delay, so the reload reads the
// file as the test left it. The deadline only bounds a failing test.
func (tw *testWatcher) nextParse(t *testing.T) error {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-tw.parsed:
			return err
		case <-tw.armed:
			tw.clock.Step(tw.delay)
		case <-deadline:
			t.Fatal("the watcher did not reload the changed file")
			return nil
		}
	}
}

func (tw *testWatcher) changed() []string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return slices.Clone(tw.seen)
}

func current(w *Watcher) string { return w.Current().Metrics[0].Name }

func TestWatcherReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeAtomic(t, path, catalogWith("first"))
	w := newTestWatcher(t, path)
	if got := current(w.Watcher); got != "first" {
		t.Fatalf("initial catalog has %q", got)
	}
	startWatcher(t, w.Watcher)

	writeAtomic(t, path, catalogWith("second"))
	if err := w.nextParse(t); err != nil {
		t.Fatalf("second catalog: %v", err)
	}
	if got := current(w.Watcher); got != "second" {
		t.Fatalf("after the second file the catalog has %q", got)
	}

	writeAtomic(t, path, "metrics:\n  - name: broken\n")
	if err := w.nextParse(t); err == nil {
		t.Fatal("an invalid file parsed")
	}
	if got := current(w.Watcher); got != "second" {
		t.Fatalf("after an invalid file the catalog has %q, want the previous one", got)
	}

	// Written in place rather than renamed: other events, same result.
	if err := os.WriteFile(path, []byte(catalogWith("third")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.nextParse(t); err != nil {
		t.Fatalf("third catalog: %v", err)
	}
	if got := current(w.Watcher); got != "third" {
		t.Fatalf("after the third file the catalog has %q", got)
	}
	if got, want := w.changed(), []string{"second", "third"}; !slices.Equal(got, want) {
		t.Errorf("applied %v, want %v", got, want)
	}
}

// TestWatcherWaitsForQuiet checks the debounce with events the test
// sends itself: the file is read once no event has come for the delay, so
// a burst of events (an editor's save, a ConfigMap swap) is one reload of
// the file as the burst left it.
func TestWatcherWaitsForQuiet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeAtomic(t, path, catalogWith("first"))
	w := newTestWatcher(t, path)
	events := make(chan fsnotify.Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.loop(ctx, events, nil) }()
	defer func() { cancel(); <-done }()

	event := func() {
		events <- fsnotify.Event{Name: path, Op: fsnotify.Write}
		<-w.armed
	}
	half := w.delay / 2
	event() // also: the loop's first reload is done
	writeAtomic(t, path, catalogWith("second"))
	w.clock.Step(half)
	event()
	// A delay after the first event, but only half one after the last:
	// a timer that was not restarted would fire now and read "second".
	w.clock.Step(half)
	if n := w.clock.Waiters(); n != 2 {
		t.Fatalf("%d timers wait, want the resync ticker and the debounce timer: the debounce fired a delay after the first event of a burst", n)
	}
	writeAtomic(t, path, catalogWith("third"))
	event()
	w.clock.Step(half)
	w.clock.Step(half)
	// A parse is reported after it is applied; a broken debounce parses twice.
	for done := false; !done; done = current(w.Watcher) == "third" {
		if err := w.nextParse(t); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := w.changed(), []string{"third"}; !slices.Equal(got, want) {
		t.Errorf("catalogs applied: %v, want only %v, read once the events were quiet for %s", got, want, w.delay)
	}
}

// TestWatcherResyncsWithoutEvents checks the fallback for a watch that
// misses events or cannot be set up: the file is read every resync period.
func TestWatcherResyncsWithoutEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeAtomic(t, path, catalogWith("first"))
	w := newTestWatcher(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.loop(ctx, nil, nil) }()
	defer func() { cancel(); <-done }()

	// The loop's timers exist once its first reload is done; only then is
	// the file changed, so only the resync can read the change.
	for !w.clock.HasWaiters() {
		runtime.Gosched()
	}
	writeAtomic(t, path, catalogWith("second"))
	w.clock.Step(w.resync)
	if err := w.nextParse(t); err != nil {
		t.Fatal(err)
	}
	if got := current(w.Watcher); got != "second" {
		t.Fatalf("after a resync period the catalog has %q", got)
	}
}

// TestWatcherIgnoresAnEmptyFile checks what a reload does with the empty
// file a writer leaves between truncating and writing: nothing.
func TestWatcherIgnoresAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeAtomic(t, path, catalogWith("first"))
	w := newTestWatcher(t, path)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.reload()
	select {
	case err := <-w.parsed:
		t.Fatalf("an empty file was parsed (error %v)", err)
	default:
	}
	if got := current(w.Watcher); got != "first" {
		t.Fatalf("after an empty file the catalog has %q, want the previous one", got)
	}
	if err := os.WriteFile(path, []byte(catalogWith("second")), 0o644); err != nil {
		t.Fatal(err)
	}
	w.reload()
	if got := current(w.Watcher); got != "second" {
		t.Fatalf("once written the catalog has %q", got)
	}
}

// TestWatcherConfigMapSwap replays what the kubelet does to a ConfigMap
// volume: the file is a symlink through ..data, and an update points ..data
// at a new directory with one rename.
func TestWatcherConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "catalog.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", catalogWith("first"))
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/catalog.yaml", filepath.Join(dir, "catalog.yaml")); err != nil {
		t.Fatal(err)
	}
	w := newTestWatcher(t, filepath.Join(dir, "catalog.yaml"))
	startWatcher(t, w.Watcher)

	version("..v2", catalogWith("second"))
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	if err := w.nextParse(t); err != nil {
		t.Fatal(err)
	}
	if got := current(w.Watcher); got != "second" {
		t.Fatalf("after the swap the catalog has %q", got)
	}
	if got := w.changed(); !slices.Equal(got, []string{"second"}) {
		t.Errorf("applied %v", got)
	}
}

// TestWatcherKeepsKafkaClusters: kafka.clusters is read at start, so a
// reload applies the rest of the file and keeps the clusters the adapter
// runs with, and the catalog never names a cluster it has no client for.
func TestWatcherKeepsKafkaClusters(t *testing.T) {
	withCluster := func(metric, cluster string) string {
		return catalogWith(metric) + "kafka:\n  clusters:\n    - {name: " + cluster + ", brokers: ['kafka:9092']}\n"
	}
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeAtomic(t, path, withCluster("first", "main"))
	w := newTestWatcher(t, path)
	startWatcher(t, w.Watcher)

	writeAtomic(t, path, withCluster("second", "other"))
	if err := w.nextParse(t); err != nil {
		t.Fatal(err)
	}
	cat := w.Current()
	if got := cat.Metrics[0].Name; got != "second" {
		t.Errorf("after the reload the catalog has %q, want the file's second", got)
	}
	if got := clusterNames(cat.Kafka.Clusters); !slices.Equal(got, []string{"main"}) {
		t.Errorf("after the reload the catalog's Kafka clusters are %q, want those of the start, main", got)
	}
}

func TestWatcherWithoutFile(t *testing.T) {
	w, err := NewWatcher("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(w.Current()), names(Default()); !slices.Equal(got, want) {
		t.Errorf("catalog %v, want the presets %v", got, want)
	}
	startWatcher(t, w)
}

func TestNewWatcherErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.yaml")
	writeAtomic(t, path, "metrics: {}\n")
	_, err := NewWatcher(path)
	if want := path + ": line 1: metrics: expected a list, got a mapping; write a YAML list such as [a, b] or one \"- item\" per line"; err == nil || err.Error() != want {
		t.Errorf("NewWatcher error %v, want %q", err, want)
	}
	if _, err := NewWatcher(filepath.Join(dir, "missing.yaml")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("NewWatcher of a missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
