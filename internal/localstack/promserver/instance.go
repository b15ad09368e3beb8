// Package promserver runs a real Prometheus (the Debian package's
// /usr/bin/prometheus) as a process on 127.0.0.1 with a 1s scrape
// interval, scraping static targets or a file_sd file, and stops and
// restarts it on the same port and data. The local stack runs it; the
// tests wrap it in test/promtest.
package promserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"time"

	"sigs.k8s.io/yaml"
)

// Binary is the Prometheus executable the harness runs. A test may point it
// elsewhere before calling Launch.
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

// Options configure Launch.
type Options struct {
	// Binary is the Prometheus executable. If empty, the package variable
	// Binary, or else "prometheus" on $PATH.
	Binary string
	// Dir holds the config file (prometheus.yml) and the TSDB (data/).
	// Required; it must exist.
	Dir string
	// Targets are scraped with their labels (job "promtest",
	// static_configs).
	Targets []ScrapeTarget
	// FileSD, if set, adds job "file_sd" reading targets from this JSON
	// file every second (file_sd_configs, refresh_interval 1s), so targets
	// come and go without a reload; write it with WriteFileSD. A missing
	// file means no targets.
	FileSD string
	// RelabeledFileSD, if set, adds job "file_sd_relabeled", like FileSD,
	// whose relabel_configs rename the targets' namespace and pod labels
	// to kubernetes_namespace and kubernetes_pod_name, as Prometheus'
	// Kubernetes scrape configs of old (and many Helm charts) label them.
	RelabeledFileSD string
	// Log, if set, receives Prometheus' output too (it is always kept in
	// memory for Instance.Log).
	Log io.Writer
	// RemoteWrite turns on the remote-write receiver
	// (/api/v1/write), for tests that write series with known samples.
	RemoteWrite bool
}

// Instance is a Prometheus process on 127.0.0.1 with a 1s scrape interval,
// usable without a *testing.T (see Server for tests). It keeps its port and
// data directory across Stop and Start. Methods are safe for concurrent use.
type Instance struct {
	binary    string
	dataDir   string
	cfgFile   string
	fileSD    string
	relabelSD string
	logOut    io.Writer
	extra     []string // flags beyond the defaults

	mu      sync.Mutex
	addr    string // 127.0.0.1:port, fixed after the first start
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	log     *syncBuffer   // every run's output
	targets []ScrapeTarget
}

// Launch writes the config and starts Prometheus, returning once it is
// ready (/-/ready). On error nothing is left running; the error carries
// Prometheus' output.
func Launch(opts Options) (*Instance, error) {
	bin := opts.Binary
	if bin == "" {
		bin = Binary
	}
	if _, err := os.Stat(bin); err != nil {
		path, lookErr := exec.LookPath("prometheus")
		if lookErr != nil {
			return nil, fmt.Errorf("prometheus is needed but %s is missing (%w); install it: apt-get install -y prometheus", bin, err)
		}
		bin = path
	}
	if opts.Dir == "" {
		return nil, errors.New("promserver: Options.Dir is required")
	}
	p := &Instance{
		binary:    bin,
		dataDir:   filepath.Join(opts.Dir, "data"),
		cfgFile:   filepath.Join(opts.Dir, "prometheus.yml"),
		fileSD:    opts.FileSD,
		relabelSD: opts.RelabeledFileSD,
		logOut:    opts.Log,
		log:       &syncBuffer{},
		targets:   opts.Targets,
	}
	if opts.RemoteWrite {
		p.extra = append(p.extra, "--web.enable-remote-write-receiver")
	}
	if err := p.writeConfig(); err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:41234.
func (p *Instance) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addr
}

// ConfigFile is the path of the generated prometheus.yml.
func (p *Instance) ConfigFile() string { return p.cfgFile }

// PID is the process id of the running Prometheus, 0 when it is stopped.
func (p *Instance) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is running (started and not stopped).
func (p *Instance) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Start starts Prometheus again after Stop, on the same port and data
// directory, and waits up to 30s until it is ready. It does nothing if it
// is running.
func (p *Instance) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	listen := p.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	mark := p.log.Len()
	cmd := exec.Command(p.binary, append([]string{
		"--config.file=" + p.cfgFile,
		"--storage.tsdb.path=" + p.dataDir,
		"--web.listen-address=" + listen,
		"--web.enable-lifecycle",
		"--web.enable-admin-api",
		"--log.level=info",
	}, p.extra...)...)
	var out io.Writer = p.log
	if p.logOut != nil {
		out = io.MultiWriter(p.log, p.logOut)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the parent dies
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("promserver: start %s: %w", p.binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	fail := func(what string, err error) error {
		p.stopLocked()
		return fmt.Errorf("promserver: %s: %w\n%s", what, err, p.log.String()[mark:])
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.addr == "" {
		if addr := listenAddr(p.log.String()[mark:]); addr != "" {
			p.addr = addr
			break
		}
		if err := waitTick(deadline, exited); err != nil {
			return fail("Prometheus did not report its listen address", err)
		}
	}
	for !ready(p.addr) {
		if err := waitTick(deadline, exited); err != nil {
			return fail("Prometheus at "+p.addr+" did not become ready", err)
		}
	}
	return nil
}

var listenRE = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

func listenAddr(log string) string {
	if m := listenRE.FindStringSubmatch(log); m != nil {
		return strings.Trim(m[1], `"`)
	}
	return ""
}

func waitTick(deadline time.Time, exited chan struct{}) error {
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

func ready(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/-/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop stops Prometheus (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit. Queries fail until Start is called again. Safe to call twice.
func (p *Instance) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *Instance) stopLocked() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd, p.exited = nil, nil
}

// SetTargets replaces the static scrape targets and reloads Prometheus'
// config (if it is running; otherwise the next Start reads it).
func (p *Instance) SetTargets(ctx context.Context, targets ...ScrapeTarget) error {
	p.mu.Lock()
	p.targets = targets
	err := p.writeConfig()
	running := p.cmd != nil
	p.mu.Unlock()
	if err != nil || !running {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL()+"/-/reload", nil)
	if err != nil {
		return fmt.Errorf("promserver: reload Prometheus config: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("promserver: reload Prometheus config: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("promserver: reload Prometheus config: %s: %s", resp.Status, b.String())
	}
	return nil
}

// Log returns everything Prometheus has logged so far.
func (p *Instance) Log() string { return p.log.String() }

// staticConfig is one static_configs or file_sd entry.
type staticConfig struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

func staticConfigs(targets []ScrapeTarget) ([]staticConfig, error) {
	statics := []staticConfig{}
	for _, t := range targets {
		if _, _, err := net.SplitHostPort(t.Address); err != nil {
			return nil, fmt.Errorf("scrape target %q is not host:port: %w", t.Address, err)
		}
		statics = append(statics, staticConfig{Targets: []string{t.Address}, Labels: t.Labels})
	}
	sort.SliceStable(statics, func(i, j int) bool { return statics[i].Targets[0] < statics[j].Targets[0] })
	return statics, nil
}

// writeConfig writes the config for p.targets; p.mu must be held or p not
// yet shared.
func (p *Instance) writeConfig() error {
	statics, err := staticConfigs(p.targets)
	if err != nil {
		return err
	}
	jobs := []any{map[string]any{
		"job_name":       "promtest",
		"honor_labels":   false,
		"static_configs": statics,
	}}
	if p.fileSD != "" {
		jobs = append(jobs, map[string]any{
			"job_name":     "file_sd",
			"honor_labels": false,
			"file_sd_configs": []any{map[string]any{
				"files":            []string{p.fileSD},
				"refresh_interval": "1s",
			}},
		})
	}
	if p.relabelSD != "" {
		jobs = append(jobs, map[string]any{
			"job_name":     "file_sd_relabeled",
			"honor_labels": false,
			"file_sd_configs": []any{map[string]any{
				"files":            []string{p.relabelSD},
				"refresh_interval": "1s",
			}},
			"relabel_configs": []any{
				map[string]any{"source_labels": []string{"namespace"}, "target_label": "kubernetes_namespace"},
				map[string]any{"source_labels": []string{"pod"}, "target_label": "kubernetes_pod_name"},
				map[string]any{"regex": "namespace|pod", "action": "labeldrop"},
			},
		})
	}
	cfg := map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
		"scrape_configs": jobs,
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode Prometheus config: %w", err)
	}
	return writeAtomic(p.cfgFile, b)
}

// WriteFileSD writes targets to path in Prometheus' file_sd JSON format,
// atomically (a reader never sees a partial file).
func WriteFileSD(path string, targets []ScrapeTarget) error {
	statics, err := staticConfigs(targets)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(statics, "", "  ")
	if err != nil {
		return fmt.Errorf("encode file_sd targets: %w", err)
	}
	return writeAtomic(path, b)
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
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
