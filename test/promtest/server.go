// Package promtest runs a real Prometheus (the Debian package's
// /usr/bin/prometheus) on 127.0.0.1 with a 1s scrape interval, and
// in-process instrumented Go services (Target) that generate known load,
// so tests can check the adapter's queries against values they control.
//
// Package promserver (internal/localstack/promserver) runs Prometheus
// without a *testing.T (for the local stack and the demo); Server wraps it
// for tests, failing the test on errors and
// stopping Prometheus in the test's cleanup.
package promtest

import (
	"context"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
)

// Server is a running (or stopped) Prometheus owned by a test. Its methods
// are safe for concurrent use. It is stopped by the test's cleanup.
type Server struct {
	t    testing.TB
	inst *promserver.Instance
}

// Start runs Prometheus scraping targets every second and waits until it is
// ready. It fails the test if Prometheus is not installed or does not come
// up; the process is stopped and, if the test failed, its log is printed
// when the test ends.
func Start(t testing.TB, targets ...promserver.ScrapeTarget) *Server {
	t.Helper()
	return StartWith(t, promserver.Options{Targets: targets})
}

// StartWith is Start with more options, e.g. RemoteWrite; opts.Dir is the
// test's temporary directory.
func StartWith(t testing.TB, opts promserver.Options) *Server {
	t.Helper()
	opts.Dir = t.TempDir()
	inst, err := promserver.Launch(opts)
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	s := &Server{t: t, inst: inst}
	t.Cleanup(func() {
		inst.Stop()
		if t.Failed() {
			t.Logf("Prometheus log (%s):\n%s", inst.ConfigFile(), inst.Log())
		}
	})
	return s
}

// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.inst.URL() }

// Start starts Prometheus again after Stop, on the same port and data
// directory, and waits until it is ready. It does nothing if it is running.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.inst.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// Stop stops Prometheus (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit. Queries fail until Start is called again. Safe to call twice.
func (s *Server) Stop() { s.inst.Stop() }

// SetTargets replaces the scrape targets and reloads Prometheus' config.
func (s *Server) SetTargets(targets ...promserver.ScrapeTarget) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.inst.SetTargets(ctx, targets...); err != nil {
		s.t.Fatal(err)
	}
}

// PID is the process id of the running Prometheus (for its CPU time in
// /proc), 0 when it is stopped.
func (s *Server) PID() int { return s.inst.PID() }

// Log returns everything Prometheus has logged so far.
func (s *Server) Log() string { return s.inst.Log() }
