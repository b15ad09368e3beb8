package config

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
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

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
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

func newTestWatcher(t *testing.T, path string) (*Watcher, <-chan error, func() []string) {
	t.Helper()
	w, err := NewWatcher(path)
	if err != nil {
		t.Fatal(err)
	}
	w.delay = 20 * time.Millisecond
	w.resync = time.Hour // only file events trigger reloads here
	parsed := make(chan error, 10)
	w.reloaded = func(err error) {
		select {
		case parsed <- err:
		default: // a test that does not read them must not block Run
		}
	}
	var mu sync.Mutex
	var changed []string
	w.OnChange = func(c *Catalog) {
		mu.Lock()
		defer mu.Unlock()
		changed = append(changed, c.Metrics[0].Name)
	}
	return w, parsed, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(changed)
	}
}

func current(w *Watcher) string { return w.Current().Metrics[0].Name }

func TestWatcherReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeAtomic(t, path, catalogWith("first"))
	w, parsed, changed := newTestWatcher(t, path)
	if got := current(w); got != "first" {
		t.Fatalf("initial catalog has %q", got)
	}
	startWatcher(t, w)

	writeAtomic(t, path, catalogWith("second"))
	waitFor(t, "the second catalog", func() bool { return current(w) == "second" })

	writeAtomic(t, path, "metrics:\n  - name: broken\n")
	// Earlier successful parses may still be reported; wait for the failure.
	timeout := time.After(10 * time.Second)
	for failed := false; !failed; {
		select {
		case err := <-parsed:
			failed = err != nil
		case <-timeout:
			t.Fatal("timed out waiting for the invalid file to be rejected")
		}
	}
	if got := current(w); got != "second" {
		t.Fatalf("after an invalid file the catalog has %q, want the previous one", got)
	}

	// Written in place: the watcher must not apply the truncated file.
	if err := os.WriteFile(path, []byte(catalogWith("third")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the third catalog", func() bool { return current(w) == "third" })
	want := []string{"second", "third"}
	waitFor(t, "OnChange", func() bool { return len(changed()) >= len(want) })
	if got := changed(); !slices.Equal(got, want) {
		t.Errorf("OnChange saw %v, want %v", got, want)
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
	w, _, changed := newTestWatcher(t, filepath.Join(dir, "catalog.yaml"))
	startWatcher(t, w)

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
	waitFor(t, "the second catalog", func() bool { return current(w) == "second" })
	waitFor(t, "OnChange", func() bool { return len(changed()) > 0 })
	if got := changed(); !slices.Equal(got, []string{"second"}) {
		t.Errorf("OnChange saw %v", got)
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
