package config

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

const (
	// reloadDelay lets a burst of file events (an editor's save, a
	// ConfigMap's symlink swap) settle into one reload.
	reloadDelay = 250 * time.Millisecond
	// resyncPeriod re-reads the file even without events, in case the
	// watch missed one or the file is a symlink into another directory.
	resyncPeriod = time.Minute
)

// Watcher holds the current catalog and replaces it when the file changes.
// Current is safe for concurrent use; Run is called once.
//
// Everything in the file reloads but kafka.clusters: the Kafka clients are
// made once at start, so a reloaded catalog keeps the clusters of the one
// the adapter started with, and a changed kafka.clusters section is logged
// as needing a restart.
type Watcher struct {
	path    string
	current atomic.Pointer[Catalog]
	// last is the content of the file as last read by reload, applied or
	// not, so unchanged content is neither parsed nor logged again. Only
	// Run touches it after NewWatcher.
	last []byte

	delay, resync time.Duration
	// clock runs the debounce timer and the resync ticker.
	clock clock.WithTicker

	// Hooks for tests, nil otherwise. applied is called with each catalog
	// Run applies, after Current returns it; reloaded after each parse Run
	// attempts, with its error; armed after a file event has (re)armed the
	// debounce timer, so a fake clock can be stepped past it.
	applied  func(*Catalog)
	reloaded func(error)
	armed    func()
}

// NewWatcher loads the catalog file at path and returns a Watcher serving
// it. An empty path serves Default and never changes. An invalid file is an
// error here; later, Run keeps the previous catalog instead.
func NewWatcher(path string) (*Watcher, error) {
	w := &Watcher{path: path, delay: reloadDelay, resync: resyncPeriod, clock: clock.RealClock{}}
	if path == "" {
		w.current.Store(Default())
		return w, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	w.last = data
	w.current.Store(c)
	return w, nil
}

// Current returns the catalog in effect. It never returns nil for a Watcher
// made by NewWatcher.
func (w *Watcher) Current() *Catalog { return w.current.Load() }

// Run watches the file's directory (a ConfigMap volume replaces the file by
// swapping the ..data symlink, which a watch on the file itself misses) and
// reloads the catalog when it changes, until ctx is done. A file that does
// not parse or validate is logged and the previous catalog kept; so is an
// empty file, which is what a writer leaves between truncating and writing
// (write "{}" for a catalog of presets only).
func (w *Watcher) Run(ctx context.Context) {
	if w.path == "" {
		<-ctx.Done()
		return
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	fw, err := fsnotify.NewWatcher()
	if err == nil {
		if err = fw.Add(filepath.Dir(w.path)); err != nil {
			_ = fw.Close()
		}
	}
	if err != nil {
		klog.ErrorS(err, "Cannot watch the catalog file; re-reading it periodically instead", "path", w.path, "period", w.resync)
	} else {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
	}
	w.loop(ctx, events, errs)
}

// loop reloads the file once a burst of events has been quiet for the
// delay, and every resync period, until ctx is done.
func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) {
	// The file may have changed between NewWatcher and the watch.
	w.reload()
	debounce := w.clock.NewTimer(w.delay)
	debounce.Stop()
	defer debounce.Stop()
	resync := w.clock.NewTicker(w.resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// Restart the quiet period. A fire not read yet is dropped, so
			// the reload waits the whole delay after this event: Go's own
			// timers do that in Reset, other clock.Timer implementations
			// (the fake clock's) keep the value until it is read.
			if !debounce.Stop() {
				select {
				case <-debounce.C():
				default:
				}
			}
			debounce.Reset(w.delay)
			if w.armed != nil {
				w.armed()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			klog.ErrorS(err, "Watching the catalog file", "path", w.path)
		case <-debounce.C():
			w.reload()
		case <-resync.C():
			w.reload()
		}
	}
}

// reload reads and applies the file if its content changed.
func (w *Watcher) reload() {
	data, err := os.ReadFile(w.path)
	if err != nil {
		klog.ErrorS(err, "Cannot read the catalog file; keeping the previous catalog", "path", w.path)
		return
	}
	if len(data) == 0 {
		// Most likely a writer that truncated the file and has not written
		// it yet; an intentionally empty catalog is written as {}.
		klog.V(2).InfoS("Catalog file is empty; waiting for it to be written", "path", w.path)
		return
	}
	if bytes.Equal(data, w.last) {
		return
	}
	w.last = data
	c, err := Parse(data)
	if w.reloaded != nil {
		defer w.reloaded(err)
	}
	if err != nil {
		klog.ErrorS(err, "Catalog file is invalid; keeping the previous catalog", "path", w.path)
		return
	}
	if running := w.current.Load().Kafka.Clusters; !reflect.DeepEqual(c.Kafka.Clusters, running) {
		klog.InfoS("The catalog file changes kafka.clusters, which is read at start only; restart the adapter to apply it. Until then the adapter keeps its Kafka clusters and applies the rest of the file",
			"path", w.path, "running", clusterNames(running), "inFile", clusterNames(c.Kafka.Clusters))
		c.Kafka.Clusters = running
	}
	w.current.Store(c)
	klog.InfoS("Reloaded the catalog", "path", w.path, "metrics", len(c.Metrics), "kafkaClusters", len(c.Kafka.Clusters))
	if w.applied != nil {
		w.applied(c)
	}
}

func clusterNames(clusters []KafkaCluster) []string {
	names := make([]string, len(clusters))
	for i, c := range clusters {
		names[i] = c.Name
	}
	return names
}
