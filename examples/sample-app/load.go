package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig configures load mode: an HTTP load generator for /work of a
// sample-app Service, run in the cluster next to the workload it loads.
type LoadConfig struct {
	// TargetURL is the base URL of the loaded service, e.g.
	// http://sample-app.demo.svc; requests go to <TargetURL>/work.
	TargetURL string
	// RPS is the request rate kept on average, even when ticks run late.
	RPS float64
	// Goroutines and Hold make each request hold that many goroutines in
	// the sample-app for that long after it is answered
	// (/work?goroutines=K&hold=D). Zero Goroutines sends plain /work.
	Goroutines int
	Hold       time.Duration
	// MaxInFlight bounds the requests waiting for an answer; a request due
	// while the bound is reached is skipped and counted, never queued, so
	// an overloaded service cannot make the generator grow without bound.
	MaxInFlight int
	// Timeout bounds each request.
	Timeout time.Duration
	// ReconnectInterval is how often requests move to new connections, so
	// the Service spreads them over pods added since (kube-proxy balances
	// connections, not requests). Zero keeps connections.
	ReconnectInterval time.Duration
	// Duration stops the load after that long; zero runs until SIGTERM.
	Duration time.Duration
}

func (c *LoadConfig) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TargetURL, "target-url", "", "Load mode: base URL of the service to load, e.g. http://sample-app.demo.svc; requests go to <target-url>/work.")
	fs.Float64Var(&c.RPS, "rps", 10, "Load mode: requests per second, kept on average.")
	fs.IntVar(&c.Goroutines, "goroutines", 0, "Load mode: goroutines each request holds in the sample-app (/work?goroutines=K&hold=D); 0 sends plain /work.")
	fs.DurationVar(&c.Hold, "hold", time.Second, "Load mode: how long each request's goroutines are held (with --goroutines).")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 1000, "Load mode: requests waiting for an answer at most; requests due beyond it are skipped, not queued.")
	fs.DurationVar(&c.Timeout, "request-timeout", 10*time.Second, "Load mode: bound on each request.")
	fs.DurationVar(&c.ReconnectInterval, "reconnect-interval", time.Second, "Load mode: move to new connections this often, so a Service spreads them over pods added since; 0 keeps connections.")
	fs.DurationVar(&c.Duration, "duration", 0, "Load mode: stop after this long; 0 runs until SIGTERM.")
}

func (c LoadConfig) validate() error {
	var errs []error
	if _, err := c.workURL(); err != nil {
		errs = append(errs, err)
	}
	if c.RPS <= 0 {
		errs = append(errs, fmt.Errorf("--rps must be positive, got %g", c.RPS))
	}
	if c.Goroutines < 0 {
		errs = append(errs, fmt.Errorf("--goroutines must not be negative, got %d", c.Goroutines))
	}
	if c.Hold < 0 {
		errs = append(errs, fmt.Errorf("--hold must not be negative, got %s", c.Hold))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("--max-in-flight must be at least 1, got %d", c.MaxInFlight))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--request-timeout must be positive, got %s", c.Timeout))
	}
	if c.ReconnectInterval < 0 || c.Duration < 0 {
		errs = append(errs, errors.New("--reconnect-interval and --duration must not be negative"))
	}
	return errors.Join(errs...)
}

// workURL is the URL every request of the load gets.
func (c LoadConfig) workURL() (string, error) {
	if c.TargetURL == "" {
		return "", errors.New("load mode needs --target-url")
	}
	u, err := url.Parse(c.TargetURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--target-url %q: want an http(s) base URL such as http://sample-app.demo.svc", c.TargetURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--target-url %q: want a base URL without query or fragment; use --goroutines and --hold for the query", c.TargetURL)
	}
	u = u.JoinPath("work")
	if c.Goroutines > 0 {
		u.RawQuery = url.Values{"goroutines": {strconv.Itoa(c.Goroutines)}, "hold": {c.Hold.String()}}.Encode()
	}
	return u.String(), nil
}

// LoadStats counts what a load has done.
type LoadStats struct {
	// Sent requests were started; OK ones answered 200.
	Sent, OK int64
	// Failed requests got an error or a status other than 200.
	Failed int64
	// Skipped requests were due while MaxInFlight requests were waiting.
	Skipped int64
}

// Load sends requests at a fixed average rate. Run it once; Stats may be
// called concurrently with Run.
type Load struct {
	cfg LoadConfig
	url string
	log *slog.Logger

	sent, ok, failed, skipped atomic.Int64
}

// connPool is one generation of connections. Every ReconnectInterval Run
// sends new requests through a new pool and closes the old one's
// connections once its requests are answered: closing idle connections of
// a transport still in use can break a connection a request is about to
// reuse.
type connPool struct {
	tr       *http.Transport
	client   *http.Client
	inflight sync.WaitGroup
}

func (l *Load) newPool() *connPool {
	tr := &http.Transport{
		MaxIdleConnsPerHost: min(l.cfg.MaxInFlight, 256),
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &connPool{tr: tr, client: &http.Client{Transport: tr}}
}

// retire closes p's connections once its requests are answered.
func (p *connPool) retire() {
	p.inflight.Wait()
	p.tr.CloseIdleConnections()
}

// NewLoad checks cfg and returns a load that sends nothing until Run.
func NewLoad(cfg LoadConfig, log *slog.Logger) (*Load, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := cfg.workURL()
	return &Load{cfg: cfg, url: u, log: log}, nil
}

// Stats returns the counters so far.
func (l *Load) Stats() LoadStats {
	return LoadStats{Sent: l.sent.Load(), OK: l.ok.Load(), Failed: l.failed.Load(), Skipped: l.skipped.Load()}
}

// Run sends requests until ctx is done or cfg.Duration has passed, then
// waits for the requests in flight (each bounded by cfg.Timeout, not by
// ctx, so stopping does not turn them into failures).
func (l *Load) Run(ctx context.Context) {
	if l.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Duration)
		defer cancel()
	}
	// inflight holds the requests and the retiring pools.
	var inflight sync.WaitGroup
	defer inflight.Wait()
	pool := l.newPool()
	defer func() { inflight.Go(pool.retire) }()
	slots := make(chan struct{}, l.cfg.MaxInFlight)
	start := time.Now()
	lastReconnect, lastReport := start, start
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var due int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if l.cfg.ReconnectInterval > 0 && now.Sub(lastReconnect) >= l.cfg.ReconnectInterval {
				inflight.Go(pool.retire)
				pool, lastReconnect = l.newPool(), now
			}
			if now.Sub(lastReport) >= 10*time.Second {
				l.report("load running")
				lastReport = now
			}
		}
		// Catch up on every request due by now, so the average rate holds
		// when a tick is late.
		target := int64(time.Since(start).Seconds() * l.cfg.RPS)
		for ; due < target; due++ {
			select {
			case slots <- struct{}{}:
			default:
				l.skipped.Add(1)
				continue
			}
			l.sent.Add(1)
			// Added here, before the pool can be retired by this loop.
			p := pool
			p.inflight.Add(1)
			inflight.Go(func() {
				defer func() { <-slots }()
				defer p.inflight.Done()
				l.do(p.client)
			})
		}
	}
}

func (l *Load) do(client *http.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err != nil {
		l.failed.Add(1)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		l.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		l.ok.Add(1)
	} else {
		l.failed.Add(1)
	}
}

func (l *Load) report(msg string) {
	s := l.Stats()
	l.log.Info(msg, "url", l.url, "rps", l.cfg.RPS, "sent", s.Sent, "ok", s.OK, "failed", s.Failed, "skipped", s.Skipped)
}

// RunLoad runs load mode until ctx is done (SIGTERM) or cfg.Duration has
// passed. Failed requests are counted and logged, not an error: the load
// generator's job is to keep the rate while the workload struggles.
func RunLoad(ctx context.Context, cfg LoadConfig, log *slog.Logger) error {
	l, err := NewLoad(cfg, log)
	if err != nil {
		return err
	}
	log.Info("load started", "url", l.url, "rps", cfg.RPS, "max_in_flight", cfg.MaxInFlight)
	l.Run(ctx)
	l.report("load stopped")
	return nil
}
