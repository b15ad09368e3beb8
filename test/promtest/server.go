// Package promtest runs a real Prometheus (the Debian package's
// /usr/bin/prometheus) for tests, on 127.0.0.1 with a 1s scrape interval,
// and in-process instrumented Go services (Target) that generate known load,
// so tests can check the adapter's queries against values they control.
package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Binary is the Prometheus executable the harness runs. A test may point it
// elsewhere before calling Start.
var Binary = "/usr/bin/prometheus"

// ScrapeTarget is one address Prometheus scrapes, with the labels it
// attaches to every series it scrapes there (static_configs labels; the
// target's own labels do not override them).
type ScrapeTarget struct {
	// Address is host:port; /metrics is scraped.
	Address string
	// Labels are attached to every scraped series, e.g. namespace and pod.
	Labels map[string]string
}

// Server is a running (or stopped) Prometheus. Its methods are safe for
// concurrent use. It is stopped by the test's cleanup.
type Server struct {
	t       testing.TB
	dataDir string
	cfgFile string

	mu      sync.Mutex
	addr    string // 127.0.0.1:port, fixed after the first start
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	log     *syncBuffer   // every run's output, for failure reports
	targets []ScrapeTarget
}

// Start runs Prometheus scraping targets every second and waits until it is
// ready. It fails the test if Prometheus is not installed or does not come
// up; the process is stopped and, if the test failed, its log is printed
// when the test ends.
func Start(t testing.TB, targets ...ScrapeTarget) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		path, lookErr := exec.LookPath("prometheus")
		if lookErr != nil {
			t.Fatalf("Prometheus is needed by this test but %s is missing (%v); install it: apt-get install -y prometheus", Binary, err)
		}
		Binary = path
	}
	dir := t.TempDir()
	s := &Server{
		t:       t,
		dataDir: filepath.Join(dir, "data"),
		cfgFile: filepath.Join(dir, "prometheus.yml"),
		log:     &syncBuffer{},
		targets: targets,
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("Prometheus log (%s):\n%s", s.cfgFile, s.log.String())
		}
	})
	if err := s.writeConfig(); err != nil {
		t.Fatalf("promtest: %v", err)
	}
	s.Start()
	return s
}

// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr
}

// Start starts Prometheus again after Stop, on the same port and data
// directory, and waits until it is ready. It does nothing if it is running.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	listen := s.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	mark := s.log.Len()
	cmd := exec.Command(Binary,
		"--config.file="+s.cfgFile,
		"--storage.tsdb.path="+s.dataDir,
		"--web.listen-address="+listen,
		"--web.enable-lifecycle",
		"--web.enable-admin-api",
		"--log.level=info",
	)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test binary dies
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("promtest: start %s: %v", Binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(30 * time.Second)
	for s.addr == "" {
		if addr := listenAddr(s.log.String()[mark:]); addr != "" {
			s.addr = addr
			break
		}
		if err := s.waitTick(deadline, exited); err != nil {
			s.t.Fatalf("promtest: Prometheus did not report its listen address: %v\n%s", err, s.log.String()[mark:])
		}
	}
	for !s.ready() {
		if err := s.waitTick(deadline, exited); err != nil {
			s.t.Fatalf("promtest: Prometheus at %s did not become ready: %v\n%s", s.addr, err, s.log.String()[mark:])
		}
	}
}

var listenRE = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

func listenAddr(log string) string {
	if m := listenRE.FindStringSubmatch(log); m != nil {
		return strings.Trim(m[1], `"`)
	}
	return ""
}

func (s *Server) waitTick(deadline time.Time, exited chan struct{}) error {
	if time.Now().After(deadline) {
		return errors.New("timed out after 30s")
	}
	select {
	case <-exited:
		return errors.New("the process exited")
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

func (s *Server) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + s.addr + "/-/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop stops Prometheus (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit. Queries fail until Start is called again. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd, s.exited = nil, nil
}

// SetTargets replaces the scrape targets and reloads Prometheus' config.
func (s *Server) SetTargets(targets ...ScrapeTarget) {
	s.t.Helper()
	s.mu.Lock()
	s.targets = targets
	err := s.writeConfig()
	running := s.cmd != nil
	s.mu.Unlock()
	if err != nil {
		s.t.Fatalf("promtest: %v", err)
	}
	if !running {
		return // read at the next Start
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/-/reload", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("promtest: reload Prometheus config: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		s.t.Fatalf("promtest: reload Prometheus config: %s: %s", resp.Status, b.String())
	}
}

// Log returns everything Prometheus has logged so far.
func (s *Server) Log() string { return s.log.String() }

// writeConfig writes the config for s.targets; s.mu must be held or s not
// yet shared.
func (s *Server) writeConfig() error {
	type staticConfig struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	statics := []staticConfig{}
	for _, t := range s.targets {
		if _, _, err := net.SplitHostPort(t.Address); err != nil {
			return fmt.Errorf("scrape target %q is not host:port: %w", t.Address, err)
		}
		statics = append(statics, staticConfig{Targets: []string{t.Address}, Labels: t.Labels})
	}
	sort.SliceStable(statics, func(i, j int) bool { return statics[i].Targets[0] < statics[j].Targets[0] })
	cfg := map[string]any{
		"global": map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
		"scrape_configs": []any{map[string]any{
			"job_name":       "promtest",
			"honor_labels":   false,
			"static_configs": statics,
		}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode Prometheus config: %w", err)
	}
	tmp := s.cfgFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write Prometheus config: %w", err)
	}
	if err := os.Rename(tmp, s.cfgFile); err != nil {
		return fmt.Errorf("write Prometheus config: %w", err)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the process' writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}
