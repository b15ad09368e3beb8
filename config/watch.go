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
type Watcher = FileWatcher[Catalog]

// FileWatcher holds the value parsed from a file and replaces it when the
// file changes: the catalog (Watcher), or another configuration file the
// adapter reloads alike. Current is safe for concurrent use; Run is called
// once.
//
// A reloaded catalog keeps kafka.clusters of the one the adapter started
// with: the Kafka clients are made once at start, so a changed
// kafka.clusters section is logged as needing a restart and the rest of the
// file applies.
type FileWatcher[T any] struct {
	// OnChange, if not nil, is called from Run with each value Run
	// applies, after Current returns it. Set it before calling Run.
	OnChange func(*T)

	// what names the file in logs, e.g. "catalog"; parse reads it.
	what  string
	parse func([]byte) (*T, error)
	// carry, if not nil, copies into a parsed value what must not change
	// while the adapter runs (the catalog's kafka.clusters).
	carry func(running, next *T)

	path    string
	current atomic.Pointer[T]
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
	applied  func(*T)
	reloaded func(error)
	armed    func()
}

// NewWatcher loads the catalog file at path and returns a Watcher serving
// it. An empty path serves Default and never changes. An invalid file is an
// error here; later, Run keeps the previous catalog instead.
func NewWatcher(path string) (*Watcher, error) {
	if path == "" {
		return Fixed(Default()), nil
	}
	w, err := WatchFile("catalog", path, Parse)
	if err != nil {
		return nil, err
	}
	w.carry = keepKafkaClusters(path)
	return w, nil
}

// Fixed returns a watcher that serves v and never changes, for a value
// that comes from no file.
func Fixed[T any](v *T) *FileWatcher[T] {
	w := &FileWatcher[T]{}
	w.current.Store(v)
	return w
}

// WatchFile reads the file at path with parse and returns a FileWatcher
// serving the result; what names the file in errors and logs. An invalid
// file is an error here; later, Run keeps the previous value instead.
func WatchFile[T any](what, path string, parse func([]byte) (*T, error)) (*FileWatcher[T], error) {
	w := &FileWatcher[T]{what: what, parse: parse, path: path, delay: reloadDelay, resync: resyncPeriod, clock: clock.RealClock{}}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	v, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	w.last = data
	w.current.Store(v)
	return w, nil
}

// Current returns the value in effect. It never returns nil for a watcher
// made by NewWatcher or WatchFile.
func (w *FileWatcher[T]) Current() *T { return w.current.Load() }

// Run watches the file's directory (a ConfigMap volume replaces the file by
// swapping the ..data symlink, which a watch on the file itself misses) and
// reloads the catalog when it changes, until ctx is done. A file that does
// not parse or validate is logged and the previous catalog kept; so is an
// empty file, which is what a writer leaves between truncating and writing
// (write "{}" for a catalog of presets only).
func (w *FileWatcher[T]) Run(ctx context.Context) {
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
		klog.ErrorS(err, "Cannot watch the "+w.what+" file; re-reading it periodically instead", "path", w.path, "period", w.resync)
	} else {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
	}
	w.loop(ctx, events, errs)
}

// loop reloads the file once a burst of events has been quiet for the
// delay, and every resync period, until ctx is done.
func (w *FileWatcher[T]) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) {
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
			klog.ErrorS(err, "Watching the "+w.what+" file", "path", w.path)
		case <-debounce.C():
			w.reload()
		case <-resync.C():
			w.reload()
		}
	}
}

// reload reads and applies the file if its content changed.
func (w *FileWatcher[T]) reload() {
	data, err := os.ReadFile(w.path)
	if err != nil {
		klog.ErrorS(err, "Cannot read the "+w.what+" file; keeping the previous version", "path", w.path)
		return
	}
	if len(data) == 0 {
		// Most likely a writer that truncated the file and has not written
		// it yet; an intentionally empty catalog is written as {}.
		klog.V(2).InfoS("The "+w.what+" file is empty; waiting for it to be written", "path", w.path)
		return
	}
	if bytes.Equal(data, w.last) {
		return
	}
	w.last = data
	v, err := w.parse(data)
	if w.reloaded != nil {
		defer w.reloaded(err)
	}
	if err != nil {
		klog.ErrorS(err, "The "+w.what+" file is invalid; keeping the previous version", "path", w.path)
		return
	}
	if w.carry != nil {
		w.carry(w.current.Load(), v)
	}
	w.current.Store(v)
	klog.InfoS("Reloaded the "+w.what, "path", w.path)
	if w.applied != nil {
		w.applied(v)
	}
	if w.OnChange != nil {
		w.OnChange(v)
	}
}

// keepKafkaClusters returns the catalog watcher's carry: the running
// kafka.clusters replace the file's, with a log line when they differ.
func keepKafkaClusters(path string) func(running, next *Catalog) {
	return func(running, next *Catalog) {
		if !reflect.DeepEqual(next.Kafka.Clusters, running.Kafka.Clusters) {
			klog.InfoS("The catalog file changes kafka.clusters, which is read at start only; restart the adapter to apply it. Until then the adapter keeps its Kafka clusters and applies the rest of the file",
				"path", path, "running", clusterNames(running.Kafka.Clusters), "inFile", clusterNames(next.Kafka.Clusters))
			next.Kafka.Clusters = running.Kafka.Clusters
		}
	}
}

func clusterNames(clusters []KafkaCluster) []string {
	names := make([]string, len(clusters))
	for i, c := range clusters {
		names[i] = c.Name
	}
	return names
}
