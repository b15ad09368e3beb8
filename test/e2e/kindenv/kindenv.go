// Package kindenv is the kind implementation of the end-to-end scenarios'
// environment (env.Env): a kind cluster (Kind, driven through the kind
// CLI, from test/kind/cluster.yaml) running Prometheus
// (test/kind/prometheus), a single-broker Kafka (test/kind/kafka) and the adapter from its own manifests
// (test/kind/adapter, a thin overlay of manifests/base with the
// self-signed certificate of manifests/hack/self-signed-cert.sh), with
// load and Kafka bursts made by in-cluster pods of the sample-app image.
//
// It needs Docker, kind, kubectl, openssl and the two images
// hack/e2e-kind.sh builds (AdapterImage, SampleAppImage). The scenarios use
// it when HPA_SIGNALS_E2E_ENV=kind, through Start(ctx, OptionsFromEnv()).
package kindenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// The images hack/e2e-kind.sh builds. test/kind/adapter and
// test/kind/workloads name the same tags.
const (
	AdapterImage   = "hpa-signals:e2e"
	SampleAppImage = "hpa-signals-sample-app:e2e"
)

// examplesSampleAppImage is the sample-app image manifests/examples (and
// so demo/hpas) name; Start tags SampleAppImage under this name in the
// nodes, so those manifests run unchanged on kind.
const examplesSampleAppImage = "hpa-signals-sample-app:dev"

// Where Start installs things, as in the manifests under test/kind.
const (
	adapterNamespace    = "hpa-signals"
	adapterDeployment   = "hpa-signals"
	prometheusNamespace = "monitoring"
	prometheusName      = "prometheus"
	kafkaNamespace      = "kafka"
	kafkaName           = "kafka"
	kafkaBrokers        = "kafka.kafka.svc:9092"
	topicJob            = "create-topic-orders"
)

// apiServices are the APIServices manifests/base registers.
var apiServices = []string{
	"v1beta1.custom.metrics.k8s.io",
	"v1beta2.custom.metrics.k8s.io",
	"v1beta1.external.metrics.k8s.io",
	"v1alpha1.explain.hpa-signals.io",
}

// Options configure Start. The zero value creates the cluster
// DefaultKindClusterName, fails if it exists, and deletes it at
// Stop.
type Options struct {
	// ClusterName is the kind cluster's name. If empty,
	// DefaultKindClusterName.
	ClusterName string
	// Reuse uses an existing cluster of that name (re-applying the
	// manifests and restarting the adapter on the freshly loaded image);
	// a reused cluster is never deleted.
	Reuse bool
	// Keep leaves a cluster Start created running at Stop.
	Keep bool
	// ExportLogs runs `kind export logs` at Stop (the scenarios ask for it
	// with Kind().SetExportLogs when a test failed).
	ExportLogs bool
	// RepoRoot is the root of the hpa-signals module, where test/kind and
	// manifests are read. If empty, found by walking up from the working
	// directory.
	RepoRoot string
	// WorkDir holds the kubeconfig, the adapter's certificate files and
	// the logs. If empty, a fresh temporary directory.
	WorkDir string
	// Progress receives start-up progress. If nil, os.Stderr.
	Progress io.Writer
	// ReadyTimeout bounds each wait (rollouts, Jobs, APIServices). If
	// zero, 5m: images are pulled from Docker Hub on the first run.
	ReadyTimeout time.Duration
}

// OptionsFromEnv reads what hack/e2e-kind.sh passes: KIND_CLUSTER_NAME
// (the cluster's name) and KEEP_CLUSTER=1 (keep the cluster at the end,
// and reuse it when it already exists).
func OptionsFromEnv() Options {
	keep := os.Getenv("KEEP_CLUSTER") == "1"
	return Options{ClusterName: os.Getenv("KIND_CLUSTER_NAME"), Keep: keep, Reuse: keep}
}

func (o *Options) defaults() error {
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 5 * time.Minute
	}
	if o.RepoRoot == "" {
		root, err := cluster.RepoRoot()
		if err != nil {
			return err
		}
		o.RepoRoot = root
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "hpa-signals-kindenv-")
		if err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		o.WorkDir = dir
	}
	return nil
}

// Env is a running kind environment. It implements env.Env; its methods
// are safe for concurrent use, except Stop.
type Env struct {
	opts    Options
	began   time.Time
	logsDir string
	kind    *Kind

	stopOnce sync.Once
	stopErr  error
}

var _ env.Env = (*Env)(nil)

// Start starts (or, with opts.Reuse, reuses) the kind cluster, loads the
// images, installs Prometheus, Kafka and the adapter, and returns once the
// APIServices are Available and answer through the aggregator,
// Prometheus and Kafka are ready and topic "demo.orders" exists. On error what
// was started is stopped (a created cluster deleted unless opts.Keep,
// after its logs are exported) and the error names the kept logs.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("start kind environment: %w", err)
	}
	e := &Env{opts: opts, began: time.Now(), logsDir: filepath.Join(opts.WorkDir, "logs")}
	if err := os.MkdirAll(e.logsDir, 0o755); err != nil {
		return nil, fmt.Errorf("start kind environment: %w", err)
	}
	k, err := StartKind(ctx, KindOptions{
		Name:       opts.ClusterName,
		Config:     filepath.Join(opts.RepoRoot, "test", "kind", "cluster.yaml"),
		Reuse:      opts.Reuse,
		Keep:       opts.Keep,
		Images:     []string{AdapterImage, SampleAppImage},
		WorkDir:    filepath.Join(opts.WorkDir, "cluster"),
		ExportLogs: opts.ExportLogs,
		Progress:   opts.Progress,
	})
	if err != nil {
		if errors.Is(err, ErrDockerImageMissing) {
			err = fmt.Errorf("%w (hack/e2e-kind.sh builds %s and %s)", err, AdapterImage, SampleAppImage)
		}
		return nil, fmt.Errorf("start kind environment: %w", err)
	}
	e.kind = k
	if err := e.install(ctx); err != nil {
		k.SetExportLogs(true)
		stopErr := e.Stop()
		return nil, fmt.Errorf("start kind environment (logs kept in %s and %s): %w", e.logsDir, k.LogsDir(), errors.Join(err, stopErr))
	}
	e.progress("ready: cluster %s, kubeconfig %s", k.Name(), k.Kubeconfig())
	return e, nil
}

// Cluster is the kind cluster.
func (e *Env) Cluster() cluster.Cluster { return e.kind }

// Kind is the kind cluster, with its kind-specific methods.
func (e *Env) Kind() *Kind { return e.kind }

// LogsDir holds the logs Stop saves: every container of the adapter,
// Prometheus and Kafka (and the previous instance of restarted ones),
// the pods and the events of the cluster. The nodes' logs, when exported,
// are in Kind().LogsDir().
func (e *Env) LogsDir() string { return e.logsDir }

// WorkloadsDir is test/kind/workloads: the e2e HPAs and workloads
// (demo/hpas) with the SampleAppImage tag. Applying demo/hpas
// itself works too (see Start).
func (e *Env) WorkloadsDir() string {
	return filepath.Join(e.opts.RepoRoot, "test", "kind", "workloads")
}

// Stop saves the logs, removes the loads and bursts this package made when
// the cluster stays, and stops the cluster (deleting it if Start created
// it and Options.Keep is false). Stop is idempotent.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var errs []error
		if err := e.saveLogs(ctx); err != nil {
			errs = append(errs, err)
		}
		if !e.kind.Created() || e.opts.Keep {
			if err := e.deleteManaged(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, e.kind.Stop())
		if err := errors.Join(errs...); err != nil {
			e.stopErr = fmt.Errorf("stop kind environment: %w", err)
		}
	})
	return e.stopErr
}

// Remove deletes the work directory. Call it after Stop. With
// Options.Keep it does nothing: the directory holds the kept cluster's
// kubeconfig.
func (e *Env) Remove() error {
	if e.opts.Keep {
		return nil
	}
	if err := os.RemoveAll(e.opts.WorkDir); err != nil {
		return fmt.Errorf("remove kind environment work dir: %w", err)
	}
	return nil
}

func (e *Env) progress(format string, args ...any) {
	fmt.Fprintf(e.opts.Progress, "kindenv (%5.1fs): "+format+"\n", append([]any{time.Since(e.began).Seconds()}, args...)...)
}
