package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
)

// LoadConfig configures load mode: an HTTP load generator (package
// loadgen) for /work of a sample-app Service, run in the cluster next to
// the workload it loads.
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
	if _, err := c.base(); err != nil {
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

// base is the validated target URL without a trailing slash.
func (c LoadConfig) base() (string, error) {
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
	return strings.TrimSuffix(u.String(), "/"), nil
}

func (c LoadConfig) shape() loadgen.Shape {
	return loadgen.Shape{Goroutines: c.Goroutines, Hold: c.Hold}
}

// workURL is the URL every request of the load gets.
func (c LoadConfig) workURL() (string, error) {
	base, err := c.base()
	return base + c.shape().Path(), err
}

// RunLoad runs load mode until ctx is done (SIGTERM) or cfg.Duration has
// passed, logging the counters every 10 seconds and at the end. Failed
// requests are counted and logged, not an error: the load generator's job
// is to keep the rate while the workload struggles.
func RunLoad(ctx context.Context, cfg LoadConfig, log *slog.Logger) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	base, _ := cfg.base()
	u, _ := cfg.workURL()
	l := loadgen.New(loadgen.Options{
		RPS:               cfg.RPS,
		Shape:             cfg.shape(),
		Targets:           func() []string { return []string{base} },
		MaxInFlight:       cfg.MaxInFlight,
		Timeout:           cfg.Timeout,
		ReconnectInterval: cfg.ReconnectInterval,
	})
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	report := func(msg string) {
		s := l.Stats()
		log.Info(msg, "url", u, "rps", cfg.RPS, "sent", s.Sent, "ok", s.OK, "failed", s.Failed, "skipped", s.Skipped)
	}
	log.Info("load started", "url", u, "rps", cfg.RPS, "max_in_flight", cfg.MaxInFlight)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				report("load running")
			}
		}
	}()
	l.Run(ctx)
	close(done)
	report("load stopped")
	return nil
}
