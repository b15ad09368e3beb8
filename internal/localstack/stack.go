// Package localstack is the project's local stack: everything the adapter
// needs around a Kubernetes cluster, as local processes on 127.0.0.1, for
// make demo, the end-to-end suite and any tool that wants a cluster here.
// It runs a control plane (package cluster) unless given a cluster,
// Prometheus (package promserver, scraping through a file_sd file the
// stack rewrites), an in-process Kafka (kfake), the adapter registered
// through the project's own manifests, one sample-app process per Running
// pod of a sample-app Deployment, and a load generator (internal/loadgen)
// that spreads a total request rate over those processes like a load
// balancer.
//
// The API takes contexts and returns errors and never imports package
// testing, so the end-to-end suite and the demo program use it alike
// (Start, then Stop, then Remove or keep the logs). A Stack is safe for
// concurrent use after Start.
//
// Dependencies point one way: localstack -> cluster, promserver,
// internal/loadgen; nothing here imports test/ or the product packages
// (the adapter and the sample-app run as binaries built from ./cmd/adapter
// and ./examples/sample-app).
package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
)

// Options configure Start. The zero value starts a local cluster and
// builds everything from the repository the working directory is in.
type Options struct {
	// Cluster is the cluster to run against. If nil, Start starts a
	// cluster.Local with Local in <WorkDir>/cluster, and Stop stops it.
	// The aggregator must be able to reach the adapter at 127.0.0.1, so
	// another Cluster only works when its kube-apiserver runs on this host.
	Cluster cluster.Cluster
	// Local configures the local cluster started when Cluster is nil.
	// Its WorkDir and Progress are set by Start.
	Local cluster.LocalOptions
	// WorkDir holds binaries, certificates, the manifests overlay,
	// Prometheus' data and every log. If empty, a fresh temporary
	// directory. It must not hold a previous run.
	WorkDir string
	// RepoRoot is the root of the hpa-signals module: where the adapter and
	// sample-app are built from and manifests/ is read. If empty, found by
	// walking up from the working directory.
	RepoRoot string
	// AdapterBinary, SampleAppBinary and PluginBinary (the kubectl
	// plugin, kubectl-hpa_signals) are prebuilt binaries. If empty, they
	// are built from RepoRoot into <WorkDir>/bin.
	AdapterBinary, SampleAppBinary, PluginBinary string
	// AdapterArgs are appended to the adapter's flags (a repeated flag
	// overrides the stack's value).
	AdapterArgs []string
	// KafkaTopic is the topic seeded in the Kafka cluster. If empty, "demo.orders".
	KafkaTopic string
	// KafkaPartitions is its partition count. If zero, 12.
	KafkaPartitions int32
	// Progress receives start-up progress. If nil, os.Stderr.
	Progress io.Writer
	// ReadyTimeout bounds each wait of the start-up (adapter ready,
	// APIServices Available). If zero, 2m.
	ReadyTimeout time.Duration
}

func (o *Options) defaults() error {
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.KafkaTopic == "" {
		o.KafkaTopic = "demo.orders"
	}
	if o.KafkaPartitions == 0 {
		o.KafkaPartitions = 12
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.RepoRoot == "" {
		root, err := cluster.RepoRoot()
		if err != nil {
			return err
		}
		o.RepoRoot = root
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "hpa-signals-stack-")
		if err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		o.WorkDir = dir
	}
	return nil
}

// Stack is a running stack; it is the local environment of the
// end-to-end scenarios and the demo's driver. Methods are safe for
// concurrent use.
type Stack struct {
	opts    Options
	workDir string
	logsDir string
	began   time.Time

	cluster    cluster.Cluster
	ownCluster *cluster.Local // set when Start started the cluster

	prom      *promserver.Instance
	fileSD    string
	relabelSD string // targets of pods annotated RelabeledScrapeAnnotation
	kafka     *kfake.Cluster

	adapterBin, sampleAppBin, pluginBin string
	adapter                             *adapterRunner
	pods                                *podRunner
	loads                               *loadGenerator
	producer                            *producer

	stopOnce sync.Once
	stopErr  error
}

// Start starts the stack and returns once the adapter's APIServices are
// Available and the pod watcher runs. On error everything started is
// stopped and the work directory with the logs is kept; the error names it.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	s := &Stack{
		opts:    opts,
		workDir: opts.WorkDir,
		logsDir: filepath.Join(opts.WorkDir, "logs"),
		began:   time.Now(),
	}
	if err := os.MkdirAll(s.logsDir, 0o755); err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	if err := s.start(ctx); err != nil {
		stopErr := s.Stop()
		return nil, fmt.Errorf("start stack (work dir and logs kept in %s): %w", s.workDir, errors.Join(err, stopErr))
	}
	s.progress("ready: %s", strings.ReplaceAll(strings.TrimSpace(s.Summary()), "\n", "\n  "))
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	// The cluster, the two builds, Kafka and Prometheus do not depend on
	// each other: start them together.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if s.opts.Cluster != nil {
			s.cluster = s.opts.Cluster
			return nil
		}
		lo := s.opts.Local
		lo.WorkDir = filepath.Join(s.workDir, "cluster")
		lo.Progress = s.opts.Progress
		l, err := cluster.StartLocal(gctx, lo)
		if err != nil {
			return err
		}
		s.ownCluster, s.cluster = l, l
		return nil
	})
	g.Go(func() error {
		bin, err := s.binary(gctx, s.opts.AdapterBinary, "adapter", "./cmd/adapter")
		s.adapterBin = bin
		return err
	})
	g.Go(func() error {
		bin, err := s.binary(gctx, s.opts.SampleAppBinary, "sample-app", "./examples/sample-app")
		s.sampleAppBin = bin
		return err
	})
	g.Go(func() error {
		bin, err := s.binary(gctx, s.opts.PluginBinary, "kubectl-hpa_signals", "./cmd/kubectl-hpa_signals")
		s.pluginBin = bin
		return err
	})
	g.Go(func() error {
		k, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(s.opts.KafkaPartitions, s.opts.KafkaTopic))
		if err != nil {
			return fmt.Errorf("start Kafka (kfake): %w", err)
		}
		s.kafka = k
		s.progress("Kafka (kfake, 3 brokers) on %s, topic %q with %d partitions", strings.Join(k.ListenAddrs(), ","), s.opts.KafkaTopic, s.opts.KafkaPartitions)
		return nil
	})
	g.Go(func() error { return s.startPrometheus() })
	err := g.Wait()
	// Record what did start even on error, so Stop stops it.
	if err != nil {
		return err
	}

	s.producer = newProducer(s.kafka.ListenAddrs())
	s.pods = newPodRunner(s)
	if err := s.pods.start(ctx); err != nil {
		return err
	}
	s.loads = newLoadGenerator(s.pods)

	s.adapter = &adapterRunner{s: s}
	if err := s.adapter.install(ctx); err != nil {
		return err
	}
	return s.adapter.start(ctx)
}

func (s *Stack) startPrometheus() error {
	dir := filepath.Join(s.workDir, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("start Prometheus: %w", err)
	}
	s.fileSD = filepath.Join(dir, "targets.json")
	s.relabelSD = filepath.Join(dir, "targets-relabeled.json")
	for _, f := range []string{s.fileSD, s.relabelSD} {
		if err := promserver.WriteFileSD(f, nil); err != nil {
			return fmt.Errorf("start Prometheus: %w", err)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(s.logsDir, "prometheus.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start Prometheus: %w", err)
	}
	p, err := promserver.Launch(promserver.Options{Dir: dir, FileSD: s.fileSD, RelabeledFileSD: s.relabelSD, Log: logFile})
	if err != nil {
		logFile.Close()
		return fmt.Errorf("start Prometheus: %w", err)
	}
	s.prom = p
	s.progress("Prometheus on %s, targets from %s", p.URL(), s.fileSD)
	return nil
}

// Stop stops everything the stack started, in reverse order: load, pod
// processes, the adapter, Prometheus, Kafka, and the cluster if Start
// started it. Files are kept (see Remove). Stop is idempotent.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.loads != nil {
			s.loads.stopAll()
		}
		if s.producer != nil {
			s.producer.close()
		}
		if s.pods != nil {
			errs = append(errs, s.pods.stop())
		}
		if s.adapter != nil {
			errs = append(errs, s.adapter.stop())
		}
		if s.prom != nil {
			s.prom.Stop()
		}
		if s.kafka != nil {
			s.kafka.Close()
		}
		if s.ownCluster != nil {
			errs = append(errs, s.ownCluster.Stop())
		}
		if err := errors.Join(errs...); err != nil {
			s.stopErr = fmt.Errorf("stop stack: %w", err)
		}
	})
	return s.stopErr
}

// Remove deletes the work directory (with the logs). Call it after Stop.
func (s *Stack) Remove() error {
	if err := os.RemoveAll(s.workDir); err != nil {
		return fmt.Errorf("remove stack work dir: %w", err)
	}
	return nil
}

// Cluster is the cluster the stack runs against.
func (s *Stack) Cluster() cluster.Cluster { return s.cluster }

// Kubeconfig is the path of a cluster-admin kubeconfig.
func (s *Stack) Kubeconfig() string { return s.cluster.Kubeconfig() }

// WorkDir holds everything the stack wrote.
func (s *Stack) WorkDir() string { return s.workDir }

// LogsDir holds one log per process the stack started (the adapter,
// Prometheus, each pod's sample-app); the cluster's logs are in
// ClusterLogsDir.
func (s *Stack) LogsDir() string { return s.logsDir }

// ClusterLogsDir holds the cluster's logs.
func (s *Stack) ClusterLogsDir() string { return s.cluster.LogsDir() }

// PluginBinary is the kubectl plugin built for the stack
// (kubectl-hpa_signals): on $PATH, kubectl hpa-signals runs it.
func (s *Stack) PluginBinary() string { return s.pluginBin }

// RepoRoot is the root of the hpa-signals module the stack runs.
func (s *Stack) RepoRoot() string { return s.opts.RepoRoot }

// PrometheusURL is Prometheus' base URL; it stays the same across
// StopPrometheus and StartPrometheus.
func (s *Stack) PrometheusURL() string { return s.prom.URL() }

// StopPrometheus stops Prometheus (to show an outage); StartPrometheus
// brings it back on the same port with the same data.
func (s *Stack) StopPrometheus(context.Context) error {
	s.prom.Stop()
	return nil
}

// StartPrometheus starts Prometheus again after StopPrometheus and waits
// until it is ready.
func (s *Stack) StartPrometheus(context.Context) error { return s.prom.Start() }

// KafkaBrokers are the kfake brokers' addresses.
func (s *Stack) KafkaBrokers() []string { return s.kafka.ListenAddrs() }

// KafkaTopic is the seeded topic.
func (s *Stack) KafkaTopic() string { return s.opts.KafkaTopic }

func (s *Stack) progress(format string, args ...any) {
	fmt.Fprintf(s.opts.Progress, "stack (%4.1fs): "+format+"\n", append([]any{time.Since(s.began).Seconds()}, args...)...)
}

// httpGetStatus returns the status code and body of a GET.
func httpGetStatus(ctx context.Context, client *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}
