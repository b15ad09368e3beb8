package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig configures server mode. parseFlags sets the defaults.
type ServerConfig struct {
	// Listen is the address of the HTTP server.
	Listen string
	// Workers is the size of the worker pool behind /work.
	Workers int
	// Queue is how many /work requests may wait for a worker.
	Queue int
	// ServiceTime is how long a worker spends on one request.
	ServiceTime time.Duration
	// MaxHeld caps the goroutines /work holds at once, so a load test
	// cannot exhaust memory.
	MaxHeld int
	// DrainDelay is how long to keep serving, with /readyz failing, after
	// shutdown starts. Zero stops accepting at once.
	DrainDelay time.Duration
	// GracePeriod bounds how long in-flight requests may take after the
	// server stops accepting.
	GracePeriod time.Duration
}

func (c *ServerConfig) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "Address for the HTTP server: /work, /metrics, /healthz, /readyz.")
	fs.IntVar(&c.Workers, "workers", 4, "Requests to /work served at once; more wait in the queue, so latency grows with concurrency beyond this.")
	fs.IntVar(&c.Queue, "queue", 1000, "Requests that may wait for a worker; beyond it /work answers 503 at once.")
	fs.DurationVar(&c.ServiceTime, "service-time", 20*time.Millisecond, "Time a worker spends on one /work request.")
	fs.IntVar(&c.MaxHeld, "max-held-goroutines", 100000, "Cap on goroutines held by /work?goroutines=K&hold=D at once.")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 0, "On SIGTERM, how long to keep serving with /readyz failing before refusing new connections, so endpoints stop routing here first (e.g. 5s in Kubernetes).")
	fs.DurationVar(&c.GracePeriod, "shutdown-grace-period", 10*time.Second, "On SIGTERM, how long in-flight requests may take before they are cut off.")
}

func (c ServerConfig) validate() error {
	var errs []error
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("--workers must be at least 1, got %d", c.Workers))
	}
	if c.Queue < 0 {
		errs = append(errs, fmt.Errorf("--queue must not be negative, got %d", c.Queue))
	}
	if c.ServiceTime < 0 || c.DrainDelay < 0 {
		errs = append(errs, errors.New("--service-time and --drain-delay must not be negative"))
	}
	if c.GracePeriod <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-grace-period must be positive, got %s", c.GracePeriod))
	}
	if c.MaxHeld < 0 {
		errs = append(errs, fmt.Errorf("--max-held-goroutines must not be negative, got %d", c.MaxHeld))
	}
	return errors.Join(errs...)
}

var (
	errQueueFull = errors.New("all workers are busy and the queue is full")
	errStopping  = errors.New("the server is stopping")
)

// Server is the HTTP service of server mode. Its methods are safe for
// concurrent use. Start (or Serve) launches its workers; Stop ends them and
// every goroutine /work holds, and waits for them.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler

	jobs     chan job
	quit     chan struct{}
	draining atomic.Bool
	busy     atomic.Int64 // workers serving a request
	held     atomic.Int64 // goroutines held by /work?goroutines=

	mu      sync.Mutex // orders wg.Add against Stop's wg.Wait
	started bool
	stopped bool
	wg      sync.WaitGroup // workers and held goroutines
}

// job is one /work request waiting for, or served by, a worker.
type job struct {
	ctx  context.Context
	done chan struct{} // closed by the worker when the work is done
}

// NewServer returns a server with its own metrics registry: the request
// metrics, the Go collector (go_goroutines, ...) and the process collector.
func NewServer(cfg ServerConfig, log *slog.Logger) *Server {
	s := &Server{
		cfg:  cfg,
		log:  log,
		reg:  prometheus.NewRegistry(),
		jobs: make(chan job, cfg.Queue),
		quit: make(chan struct{}),
	}
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sample_app_workers_busy", Help: "Workers serving a /work request.",
		}, func() float64 { return float64(s.busy.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sample_app_queue_length", Help: "/work requests waiting for a worker.",
		}, func() float64 { return float64(len(s.jobs)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sample_app_held_goroutines", Help: "Goroutines held by /work?goroutines=K&hold=D.",
		}, func() float64 { return float64(s.held.Load()) }),
	)
	s.handler = s.routes()
	return s
}

// Handler routes /work (instrumented), /metrics, /healthz and /readyz.
// Only /work is instrumented, so probes and scrapes do not count as load.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests served, by status code, method and handler.",
	}, []string{"code", "method", "handler"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency in seconds, queueing included, by status code, method and handler.",
		Buckets: prometheus.DefBuckets,
	}, []string{"code", "method", "handler"})
	s.reg.MustRegister(requests, duration)
	instrument := func(handler string, h http.HandlerFunc) http.Handler {
		l := prometheus.Labels{"handler": handler}
		return promhttp.InstrumentHandlerDuration(duration.MustCurryWith(l),
			promhttp.InstrumentHandlerCounter(requests.MustCurryWith(l), h))
	}

	mux := http.NewServeMux()
	// The handler label is "work", not "/work": HPA selectors pass it as a
	// label value, and those cannot contain "/".
	mux.Handle("/work", instrument("work", s.work))
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.readyz)
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// work serves one request on the worker pool. With ?goroutines=K&hold=D it
// also holds K goroutines for D after answering, so go_goroutines follows
// the request rate (K x D x rate at steady state).
func (s *Server) work(w http.ResponseWriter, r *http.Request) {
	k, hold, err := parseHold(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.do(r.Context()); err != nil {
		if errors.Is(err, errQueueFull) {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if k > 0 && !s.hold(k, hold) {
		http.Error(w, fmt.Sprintf("holding %d more goroutines would exceed --max-held-goroutines=%d", k, s.cfg.MaxHeld), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func parseHold(r *http.Request) (int, time.Duration, error) {
	q := r.URL.Query()
	if q.Get("goroutines") == "" {
		return 0, 0, nil
	}
	k, err := strconv.Atoi(q.Get("goroutines"))
	if err != nil || k < 0 {
		return 0, 0, fmt.Errorf("goroutines=%q: want a non-negative integer", q.Get("goroutines"))
	}
	hold := time.Second
	if v := q.Get("hold"); v != "" {
		if hold, err = time.ParseDuration(v); err != nil || hold < 0 {
			return 0, 0, fmt.Errorf("hold=%q: want a non-negative duration such as 1s", v)
		}
	}
	return k, hold, nil
}

// do queues one unit of work and waits until a worker has done it. A full
// queue fails at once rather than letting waits grow without bound.
func (s *Server) do(ctx context.Context) error {
	j := job{ctx: ctx, done: make(chan struct{})}
	select {
	case s.jobs <- j:
	default:
		return errQueueFull
	}
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a worker: %w", ctx.Err())
	case <-s.quit:
		return errStopping
	}
}

// Start launches the workers. Calling it again does nothing.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.wg.Add(s.cfg.Workers)
	for range s.cfg.Workers {
		go s.worker()
	}
}

func (s *Server) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.quit:
			return
		case j := <-s.jobs:
			if j.ctx.Err() != nil {
				continue // the client left while queued: nobody waits for this work
			}
			s.busy.Add(1)
			t := time.NewTimer(s.cfg.ServiceTime)
			select {
			case <-t.C:
				close(j.done)
			case <-s.quit:
				t.Stop()
			}
			s.busy.Add(-1)
		}
	}
}

// hold starts k goroutines that each wait for d or until Stop. It reports
// false, starting none, when that would exceed MaxHeld or Stop has run.
func (s *Server) hold(k int, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.held.Add(int64(k)) > int64(s.cfg.MaxHeld) {
		s.held.Add(-int64(k))
		return false
	}
	s.wg.Add(k)
	for range k {
		go func() {
			defer s.wg.Done()
			defer s.held.Add(-1)
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.quit:
			}
		}()
	}
	return true
}

// Stop ends the workers and held goroutines and waits for them. Requests
// still waiting for a worker answer 503.
func (s *Server) Stop() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// ListenAndServe listens on cfg.Listen and runs Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down in order: /readyz
// fails at once; the server keeps serving for DrainDelay so endpoints stop
// routing here; it stops accepting and gives in-flight requests up to
// GracePeriod; whatever is still running is then cut off. Serve returns
// once every goroutine it started has ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.Start()
	defer s.Stop()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "workers", s.cfg.Workers, "serviceTime", s.cfg.ServiceTime)

	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down: readiness now fails", "drainDelay", s.cfg.DrainDelay, "gracePeriod", s.cfg.GracePeriod)
	if s.cfg.DrainDelay > 0 {
		t := time.NewTimer(s.cfg.DrainDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("serve on %s while draining: %w", ln.Addr(), err)
		}
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.GracePeriod)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("grace period over: cutting off in-flight requests", "inFlight", s.busy.Load()+int64(len(s.jobs)))
		err = srv.Close()
	}
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), serveErr)
	}
	if err != nil {
		return fmt.Errorf("shut down the HTTP server: %w", err)
	}
	s.log.Info("stopped")
	return nil
}
